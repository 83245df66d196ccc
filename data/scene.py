"""A scene: the smoothed trajectory table, its per-vehicle table and metadata, cached on disk.

Layout in the workspace (``--workdir``, default ``./ppuu-work``)::

    <workdir>/scenes/<name>/
        trajectories.parquet   canonical smoothed table (ppuu.data.schema)
        vehicles.parquet       one row per vehicle: size, class, frames, split, quality flags
        scene.json             SceneMeta: site, lanes, section, ramps, frame rate, sources
        road.json              the road layout as a geometry file (ppuu.data.geometry): edit it and
                               import again with ``--geometry`` to correct the road

A scene folder is written to a temporary sibling and renamed into place, so a
crash never leaves a half-written scene.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ppuu.data.errors import DataFormatError

SCENE_FORMAT_VERSION = 2
"""1: tracks smoothed with a capped heading (a crawling car could end metres off its track), no
``followable`` column; 2: tracks kept exact, ``followable`` per frame, quality flags
``speed_column`` and ``unfollowable``."""
DEFAULT_WORKDIR = Path("ppuu-work")


@dataclass
class Ramp:
    """An extra lane segment beside the main road (on-ramp, off-ramp, auxiliary lane).

    All in metres in the world frame of :mod:`ppuu.data.schema`.
    """

    lane: int            #: NGSIM Lane_ID of the segment
    kind: str            #: "on", "off" or "auxiliary"
    x_start: float       #: m, where the segment begins along the road
    x_end: float         #: m, where it ends (merges or leaves)
    y_left: float        #: m, its left edge (usually the right edge of the main road)
    y_right: float       #: m, its right edge (y_right < y_left)


@dataclass
class SceneMeta:
    """What a scene is: where, how the road looks, where the data came from."""

    name: str
    site: str                          #: "i80", "us101", or a user's name
    source: str                        #: "ngsim" or "sumo"
    lane_widths: list[float]           #: m, main-road lanes from the left (lane 1) to the right
    section_length: float              #: m, the observed section [0, section_length] along x
    frame_rate: float = 10.0           #: Hz
    ramps: list[Ramp] = field(default_factory=list)
    source_files: list[str] = field(default_factory=list)
    seed: int = 0                      #: seed of the split (and of generation, for SUMO scenes)
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    notes: dict = field(default_factory=dict)  #: free-form provenance (generator settings, ...)
    format_version: int = SCENE_FORMAT_VERSION

    @property
    def lane_count(self) -> int:
        return len(self.lane_widths)

    @property
    def dt(self) -> float:
        """Seconds per frame."""
        return 1.0 / self.frame_rate

    def lane_centre_y(self, lane: int) -> float:
        """Centre of main-road lane ``lane`` (1-based from the left), metres (negative)."""
        left = -sum(self.lane_widths[: lane - 1])
        return left - self.lane_widths[lane - 1] / 2

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "SceneMeta":
        obj = dict(obj)
        obj["ramps"] = [Ramp(**r) for r in obj.get("ramps", [])]
        obj["split_fractions"] = tuple(obj.get("split_fractions", (0.8, 0.1, 0.1)))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass
class Scene:
    """A scene in memory.

    Attributes:
        meta: the metadata.
        trajectories: the smoothed canonical table (:mod:`ppuu.data.schema`).
        vehicles: one row per vehicle, indexed 0..V-1 in vehicle_id order, with columns
            vehicle_id, first_frame, last_frame, length, width, vclass, split
            ("train" / "val" / "test"), flags (comma-separated quality problems, "" if none),
            usable_as_ego (bool: no flag).
    """

    meta: SceneMeta
    trajectories: pd.DataFrame
    vehicles: pd.DataFrame

    def save(self, directory: str | Path) -> Path:
        """Write the scene to ``directory`` atomically (temporary folder, then rename)."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self.trajectories.to_parquet(tmp / "trajectories.parquet", index=False)
            self.vehicles.to_parquet(tmp / "vehicles.parquet", index=False)
            (tmp / "scene.json").write_text(json.dumps(self.meta.to_json(), indent=2))
            from ppuu.data.geometry import site_of, write_geometry

            write_geometry(site_of(self.meta), tmp / "road.json")
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
                os.replace(tmp, directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Scene":
        """Read a scene folder written by :meth:`save`."""
        directory = Path(directory)
        meta_path = directory / "scene.json"
        if not meta_path.is_file():
            raise DataFormatError("not a scene folder (no scene.json); create one with "
                                  "`ppuu data generate` or `ppuu data import`", path=directory)
        try:
            meta = SceneMeta.from_json(json.loads(meta_path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataFormatError(f"unreadable scene metadata: {exc}", path=meta_path) from exc
        trajectories = pd.read_parquet(directory / "trajectories.parquet")
        vehicles = pd.read_parquet(directory / "vehicles.parquet")
        if meta.format_version < SCENE_FORMAT_VERSION and "followable" not in trajectories.columns:
            _upgrade_format_1(directory, trajectories)
        return cls(meta=meta, trajectories=trajectories, vehicles=vehicles)

    def split_vehicle_ids(self, split: str, ego_only: bool = True) -> list[int]:
        """Vehicle ids of a split ("train", "val", "test"); by default only those usable as ego."""
        v = self.vehicles
        mask = v["split"] == split
        if ego_only:
            mask &= v["usable_as_ego"]
        return v.loc[mask, "vehicle_id"].astype(int).tolist()


def _upgrade_format_1(directory: Path, trajectories: pd.DataFrame) -> None:
    """Give a scene of format 1 its ``followable`` column (from its stored actions) and warn that its
    tracks and flags come from the older smoothing."""
    from ppuu.data.smoothing import followable_actions

    trajectories["followable"] = followable_actions(trajectories["acceleration"].to_numpy(),
                                                    trajectories["curvature"].to_numpy())
    warnings.warn(f"{directory}: scene of format 1, written by an older ppuu: its smoothing capped the "
                  "heading, so crawling cars may lie metres off their recorded track, and its quality flags "
                  "differ; regenerate it (`ppuu data generate` or `ppuu data import`)", UserWarning, stacklevel=3)


def scenes_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "scenes"


def scene_path(workdir: str | Path, name: str) -> Path:
    return scenes_dir(workdir) / name


def list_scenes(workdir: str | Path) -> list[str]:
    """Names of the scenes in a workspace, sorted."""
    root = scenes_dir(workdir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "scene.json").is_file() and not p.name.startswith("."))
