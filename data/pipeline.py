"""From a raw trajectory table to a scene: smoothing, quality flags, splits, metadata.

Real NGSIM files and SUMO-generated traffic go through the same steps, so the
NGSIM path is exercised on every generated scene too.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from ppuu.data.quality import detect_bad_vehicles
from ppuu.data.scene import Scene, SceneMeta
from ppuu.data.schema import OPTIONAL_COLUMNS, validate_table
from ppuu.data.geometry import GeometryWarning, check_site, infer_site, read_geometry
from ppuu.data.sites import SITES, Site, get_site
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
        smoothing: smoothing parameters (default: :meth:`SmoothingConfig.for_data`: by ``meta.source``, and
            short windows for positions without measurement noise).
    """
    validate_table(raw, source=source)
    smoothing = smoothing or SmoothingConfig.for_data(raw, meta.source, meta.frame_rate)
    trajectories = smooth_table(raw, frame_rate=meta.frame_rate, config=smoothing)
    quality = detect_bad_vehicles(trajectories, frame_rate=meta.frame_rate)
    trajectories = trajectories.drop(columns=[c for c in OPTIONAL_COLUMNS if c in trajectories.columns])
    vehicles = vehicle_table(trajectories)
    vehicles = vehicles.merge(quality[["vehicle_id", "flags"]], on="vehicle_id", how="left")
    vehicles["flags"] = vehicles["flags"].fillna("").astype(str)
    vehicles["usable_as_ego"] = vehicles["flags"] == ""
    vehicles["split"] = assign_splits(vehicles["vehicle_id"].to_numpy(), meta.seed, meta.split_fractions)
    return Scene(meta=meta, trajectories=trajectories, vehicles=vehicles)


def meta_for_site(name: str, site: str, source: str, raw: pd.DataFrame, layout: Site | None = None,
                  **kwargs) -> SceneMeta:
    """Scene metadata on a road layout: ``layout`` if given (e.g. from a geometry file), else the known
    site's (``i80``, ``us101``), else one inferred from the data (:func:`ppuu.data.geometry.infer_site`).

    ``notes["geometry"]`` says which ("file", "site" or "inferred"); other ``kwargs`` go to SceneMeta.
    """
    notes = dict(kwargs.pop("notes", {}) or {})
    if layout is not None:
        origin = "file"
    elif site in SITES:
        layout, origin = get_site(site), "site"
    else:
        layout, origin = infer_site(raw, name=site), "inferred"
    notes.setdefault("geometry", origin)
    return SceneMeta(name=name, site=site, source=source, lane_widths=list(layout.lane_widths),
                     section_length=layout.section_length, ramps=list(layout.ramps), notes=notes, **kwargs)


def import_ngsim_scene(paths: list[str | Path], site: str | None = None, name: str | None = None,
                       location: str | None = None, seed: int = 0, geometry: str | Path | Site | None = None) -> Scene:
    """Read NGSIM files (raw text, gzip, combined CSV, arterial) and build a scene.

    Args:
        paths: the files; several are concatenated (e.g. the three I-80 periods).
        site: layout to use: ``i80``, ``us101``, or any other name to infer the layout
            from the data; default from the CSV Location, else the first file's name.
        name: scene name in the workspace; default ``site`` plus the first file's stem.
        location: the Location to select from a combined CSV export.
        seed: seed of the train/val/test split.
        geometry: a geometry file (or a :class:`Site`) stating the layout; overrides ``site``'s.

    Warns:
        GeometryWarning: the data does not fit a stated layout (a known site's or the file's),
            naming each lane and what does not fit.
    """
    from ppuu.data.ngsim import read_ngsim

    paths = [Path(p) for p in paths]
    layout = read_geometry(geometry) if isinstance(geometry, (str, Path)) else geometry
    raw, info = read_ngsim(paths, location=location)
    if site is None:
        site = layout.name if layout is not None else \
            LOCATION_SITES.get(str(info.get("location") or "").lower(), _stem(paths[0]))
    if name is None:
        name = site if site == _stem(paths[0]) else f"{site}-{_stem(paths[0])}"
    stated = layout if layout is not None else SITES.get(site)
    if stated is not None:
        problems = check_site(stated, raw)
        if problems:
            source = f"geometry file {geometry}" if isinstance(geometry, (str, Path)) else f"site {stated.name!r}"
            warnings.warn(f"{paths[0]}: the data does not fit the layout of {source}: " + "; ".join(problems)
                          + " (import with another --site to infer the road from the data, or correct it with "
                          "--geometry road.json)", GeometryWarning, stacklevel=2)
    meta = meta_for_site(name, site, "ngsim", raw, layout=layout, seed=seed,
                         source_files=[str(p.resolve()) for p in paths],
                         notes={"reader": {k: v for k, v in info.items() if k != "files"}})
    return build_scene(raw, meta, source=str(paths[0]))


def generate_sumo_scene(site: str | Site = "i80", minutes: float = 15.0, seed: int = 0, name: str | None = None,
                        progress: bool = True, **generator_options) -> Scene:
    """Generate traffic with SUMO on a network shaped like ``site`` and build a scene from it.

    ``site``: a known site's name, or any :class:`Site` of whole lanes (e.g. read from a geometry
    file with :func:`ppuu.data.geometry.read_geometry`), which then is the scene's layout.
    ``generator_options`` go to :func:`ppuu.data.sumo.generate_traffic` (e.g. ``warmup`` in s,
    ``lane_wander`` in m: the default name then ends in ``-wander<m>``).
    """
    from ppuu.data.sumo import generate_traffic

    raw, info = generate_traffic(site=site, minutes=minutes, seed=seed, progress=progress, **generator_options)
    layout = site if isinstance(site, Site) else None
    site = layout.name if layout is not None else site
    wander = generator_options.get("lane_wander", 0.0)
    name = name or f"{site}-sumo-{_minutes_tag(minutes)}-s{seed}" + (f"-wander{wander:g}" if wander else "")
    meta = meta_for_site(name, site, "sumo", raw, layout=layout, seed=seed, notes={"generator": info})
    return build_scene(raw, meta, source=f"SUMO {site} seed {seed}")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".txt", ".csv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _minutes_tag(minutes: float) -> str:
    return f"{int(minutes)}min" if float(minutes).is_integer() else f"{minutes:g}min".replace(".", "p")

