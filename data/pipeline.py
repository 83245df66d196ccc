"""From a raw trajectory table to a scene: smoothing, quality flags, splits, metadata.

Real NGSIM files and SUMO-generated traffic go through the same steps, so the
NGSIM path is exercised on every generated scene too.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ppuu.data.quality import detect_bad_vehicles
from ppuu.data.scene import Scene, SceneMeta
from ppuu.data.schema import OPTIONAL_COLUMNS, validate_table
from ppuu.data.sites import LANE_WIDTH, SITES, get_site
from ppuu.data.smoothing import SmoothingConfig, smooth_table
from ppuu.data.splits import assign_splits

#: Combined-CSV Location names (lower case) of the known sites.
LOCATION_SITES = {"i-80": "i80", "us-101": "us101"}


def vehicle_table(trajectories: pd.DataFrame) -> pd.DataFrame:
    """One row per vehicle (sorted by id): first/last frame, length, width, class (m, m, NGSIM class)."""
    grouped = trajectories.groupby("vehicle_id", sort=True)
    vehicles = grouped.agg(first_frame=("frame", "min"), last_frame=("frame", "max"),
                           length=("length", "first"), width=("width", "first"), vclass=("vclass", "first"))
    return vehicles.reset_index()


def build_scene(raw: pd.DataFrame, meta: SceneMeta, source: str = "<table>",
                smoothing: SmoothingConfig | None = None) -> Scene:
    """Smooth a raw canonical table, flag bad vehicles, split by vehicle, and wrap it all in a Scene.

    Args:
        raw: raw canonical table (:mod:`ppuu.data.schema`), optional columns allowed (a recorded
            speed is checked against the positions, then dropped).
        meta: scene metadata; ``meta.seed`` and ``meta.split_fractions`` set the split.
        source: name used in error messages.
        smoothing: smoothing parameters (default: :meth:`SmoothingConfig.for_source` of ``meta.source``).
    """
    validate_table(raw, source=source)
    smoothing = smoothing or SmoothingConfig.for_source(meta.source)
    trajectories = smooth_table(raw, frame_rate=meta.frame_rate, config=smoothing)
    quality = detect_bad_vehicles(trajectories, frame_rate=meta.frame_rate)
    trajectories = trajectories.drop(columns=[c for c in OPTIONAL_COLUMNS if c in trajectories.columns])
    vehicles = vehicle_table(trajectories)
    vehicles = vehicles.merge(quality[["vehicle_id", "flags"]], on="vehicle_id", how="left")
    vehicles["flags"] = vehicles["flags"].fillna("").astype(str)
    vehicles["usable_as_ego"] = vehicles["flags"] == ""
    vehicles["split"] = assign_splits(vehicles["vehicle_id"].to_numpy(), meta.seed, meta.split_fractions)
    return Scene(meta=meta, trajectories=trajectories, vehicles=vehicles)


def meta_for_site(name: str, site: str, source: str, raw: pd.DataFrame, **kwargs) -> SceneMeta:
    """Scene metadata for a known site (``i80``, ``us101``) or, for any other name, one inferred from the data.

    An inferred layout has ``max(Lane_ID)`` lanes of the NGSIM width (12 ft) and a
    section reaching the furthest recorded vehicle front.
    """
    if site in SITES:
        layout = get_site(site)
        return SceneMeta(name=name, site=site, source=source, lane_widths=list(layout.lane_widths),
                         section_length=layout.section_length, ramps=list(layout.ramps), **kwargs)
    lanes = int(raw["lane"].max()) if len(raw) else 1
    front = float((raw["x"] + raw["length"] / 2).max()) if len(raw) else 0.0
    return SceneMeta(name=name, site=site, source=source, lane_widths=[LANE_WIDTH] * max(lanes, 1),
                     section_length=math.ceil(front), **kwargs)


def import_ngsim_scene(paths: list[str | Path], site: str | None = None, name: str | None = None,
                       location: str | None = None, seed: int = 0) -> Scene:
    """Read NGSIM files (raw text, gzip, combined CSV, arterial) and build a scene.

    Args:
        paths: the files; several are concatenated (e.g. the three I-80 periods).
        site: layout to use: ``i80``, ``us101``, or any other name to infer the layout
            from the data; default from the CSV Location, else the first file's name.
        name: scene name in the workspace; default ``site`` plus the first file's stem.
        location: the Location to select from a combined CSV export.
        seed: seed of the train/val/test split.
    """
    from ppuu.data.ngsim import read_ngsim

    paths = [Path(p) for p in paths]
    raw, info = read_ngsim(paths, location=location)
    if site is None:
        site = LOCATION_SITES.get(str(info.get("location") or "").lower(), _stem(paths[0]))
    if name is None:
        name = site if site == _stem(paths[0]) else f"{site}-{_stem(paths[0])}"
    meta = meta_for_site(name, site, "ngsim", raw, seed=seed,
                         source_files=[str(p.resolve()) for p in paths],
                         notes={"reader": {k: v for k, v in info.items() if k != "files"}})
    return build_scene(raw, meta, source=str(paths[0]))


def generate_sumo_scene(site: str = "i80", minutes: float = 15.0, seed: int = 0, name: str | None = None,
                        progress: bool = True, **generator_options) -> Scene:
    """Generate traffic with SUMO on a network shaped like ``site`` and build a scene from it.

    ``generator_options`` go to :func:`ppuu.data.sumo.generate_traffic` (e.g. ``warmup`` in s).
    """
    from ppuu.data.sumo import generate_traffic

    raw, info = generate_traffic(site=site, minutes=minutes, seed=seed, progress=progress, **generator_options)
    name = name or f"{site}-sumo-{_minutes_tag(minutes)}-s{seed}"
    meta = meta_for_site(name, site, "sumo", raw, seed=seed, notes={"generator": info})
    return build_scene(raw, meta, source=f"SUMO {site} seed {seed}")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".txt", ".csv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _minutes_tag(minutes: float) -> str:
    return f"{int(minutes)}min" if float(minutes).is_integer() else f"{minutes:g}min".replace(".", "p")

