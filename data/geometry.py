"""Road geometry from the data: which lanes a site has, and where its ramps begin and end.

Why: the simulator draws the road (drivable area, lane lines, off-road) from a scene's
:class:`~ppuu.data.sites.Site`-like layout. For I-80 and US-101 the layout is known
(:mod:`ppuu.data.sites`); for any other site it must come from where vehicles actually drive.

Inference (:func:`infer_site`), all in metres in the world frame of :mod:`ppuu.data.schema`:

* **occupancy**: for every Lane_ID and every ``bin_size`` m along x, the number of distinct
  vehicles whose footprint (x +- length/2) comes within ``window / 2`` of there while labelled
  with that lane. A lane's extent runs from the first to the last bin used by at least ``k``
  vehicles, ``k = max(min_vehicles, min_share x all vehicles there)`` (a quantile of the
  occupancy): a few bad tracks (a mislabelled lane, a jump) among thousands of vehicles never
  reach ``k``, while the queue at the end of an acceleration lane does; a stretch that no
  vehicle happened to use between two used ones is still the lane. A ramp's extent also
  covers every footprint (heading included) that reaches into its band, whatever its label:
  a car changing lanes is relabelled when its centre crosses the line, its corners cross
  earlier. Extents within ``snap`` m of a section end are snapped to it.
* **section**: ``[0, L]`` with L the ``k``-th largest recorded centre x over vehicles (a
  robust maximum).
* **main lanes**: lanes 1..K from the left, K the highest Lane_ID used along the whole
  section (a lane left of it cannot be a ramp, however little it is used); K main lanes of
  one width, the median spacing of their median centres (the NGSIM 12 ft when within
  :data:`SNAP_WIDTH`).
* **ramps**: every other Lane_ID becomes a :class:`~ppuu.data.scene.Ramp` with its extent
  along x and a band one lane wide around its median centre y over the samples that keep to
  their lane (on the lane grid when within :data:`SNAP_WIDTH` of it; elsewhere, e.g. beyond a
  gore, where its vehicles drive); its kind from its extent:
  ``on`` (from the section entry, ends inside: an acceleration lane or a lane drop, whose
  traffic must merge), ``off`` (begins inside, runs to the section end: a deceleration
  lane), ``auxiliary`` (anything else).

The geometry file (``road.json``, :func:`read_geometry` / :func:`write_geometry`) states or
corrects a layout; :func:`check_site` names what in the data does not fit a layout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ppuu.data.errors import DataFormatError
from ppuu.data.scene import Ramp
from ppuu.data.sites import LANE_WIDTH, Site

GEOMETRY_FORMAT = "ppuu-road"
"""The ``format`` tag of a geometry file."""
GEOMETRY_VERSION = 1
RAMP_KINDS = ("on", "off", "auxiliary")

class GeometryWarning(UserWarning):
    """The trajectories do not fit a stated road layout (a known site's or a geometry file's)."""


LATERAL_TOLERANCE = 0.05
"""m: a footprint reaching less than this into a lane's band does not use it (the simulator allows as much)."""
SNAP_WIDTH = 0.15
"""m: an inferred lane width this close to the NGSIM 12 ft (3.6576 m) is taken to be it, and a ramp centred
this close to the lane grid of the main lanes is put on it."""
STEADY_SWAY = 0.3
"""m: samples whose centre moves less than this sideways over +-0.5 s keep to their lane; lane centres are
the median of these (vehicles changing lanes would pull them off centre)."""


# --------------------------------------------------------------------------- inference

def lane_occupancy(raw: pd.DataFrame, x_min: float, x_max: float, bin_size: float = 1.0,
                   reach: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct vehicles per lane and x-bin.

    Args:
        raw: canonical table (vehicle_id, x, length, lane; metres).
        x_min, x_max: m; the bins cover [x_min, x_max] (or a little more: whole bins).
        bin_size: m.
        reach: m; count the vehicles whose stretch comes within ``reach`` of the bin (0: that cover it).

    Returns:
        ``(lanes, edges, counts)``: (Ln,) Lane_IDs present, (B + 1,) bin edges in m, (Ln, B)
        int64 number of vehicles whose footprint covers (comes within ``reach`` of) each bin
        while in that lane (a vehicle's stretch in a lane is taken from its rearmost to its
        foremost sample there).
    """
    n_bins = max(int(math.ceil((x_max - x_min) / bin_size)), 1)
    edges = x_min + np.arange(n_bins + 1) * bin_size
    half = raw["length"].to_numpy() / 2
    spans = pd.DataFrame({"vehicle_id": raw["vehicle_id"].to_numpy(), "lane": raw["lane"].to_numpy(),
                          "rear": raw["x"].to_numpy() - half, "front": raw["x"].to_numpy() + half})
    spans = spans.groupby(["lane", "vehicle_id"], sort=True).agg(rear=("rear", "min"), front=("front", "max"))
    lanes, lane_row = np.unique(spans.index.get_level_values("lane").to_numpy(), return_inverse=True)
    first = np.clip(np.floor((spans["rear"].to_numpy() - reach - x_min) / bin_size).astype(np.int64), 0, n_bins)
    last = np.clip(np.floor((spans["front"].to_numpy() + reach - x_min) / bin_size).astype(np.int64) + 1, 0, n_bins)
    diff = np.zeros((len(lanes), n_bins + 1), dtype=np.int64)
    np.add.at(diff, (lane_row, first), 1)
    np.add.at(diff, (lane_row, last), -1)
    return lanes, edges, np.cumsum(diff, axis=1)[:, :n_bins]


def _hull(mask: np.ndarray) -> tuple[int, int] | None:
    """(first, last + 1) indices of the True entries of a 1-D mask; None if none."""
    where = np.flatnonzero(mask)
    return (int(where[0]), int(where[-1]) + 1) if len(where) else None


def robust_section_length(raw: pd.DataFrame, min_vehicles: int = 3, min_share: float = 0.002) -> float:
    """m, the end of the recorded section: the k-th largest per-vehicle maximum of the centre x
    (k = max(min_vehicles, min_share x vehicles)), so a few runaway tracks do not stretch it."""
    reach = raw.groupby("vehicle_id", sort=False)["x"].max().to_numpy()
    if len(reach) == 0:
        raise ValueError("no trajectories to infer a road from")
    k = min(max(min_vehicles, int(math.ceil(min_share * len(reach)))), len(reach))
    return float(np.partition(reach, len(reach) - k)[len(reach) - k])


def infer_site(raw: pd.DataFrame, name: str = "inferred", bin_size: float = 1.0, window: float = 20.0,
               min_vehicles: int = 1, min_share: float = 0.002, snap: float = 10.0, margin: float = 1.0) -> Site:
    """Infer a road layout from where vehicles drive (see the module docstring).

    Args:
        raw: canonical table (raw or smoothed; :mod:`ppuu.data.schema`), N rows.
        name: the layout's name.
        bin_size: m, resolution of the occupancy along x.
        window: m; a bin belongs to a lane when at least ``k = max(min_vehicles, min_share x
            the vehicles there)`` distinct vehicles use that lane within ``window / 2`` of it,
            "the vehicles there" counting every lane (a quantile of the occupancy: a lane is
            where more than that share of the traffic drives). A few bad tracks among thousands
            of vehicles stay below ``k``; in a small recording every vehicle counts. The ends of a
            lane so found lie at the k-th furthest vehicle's footprint.
        snap: m; extents ending this close to a section end reach it.
        margin: m added to each end of an inner extent (a vehicle at the end of an acceleration
            lane is on its last metre; the bins only know whole metres).

    Returns:
        a :class:`Site` whose main lanes span the section and whose ramps carry the other Lane_IDs.
    """
    if len(raw) == 0:
        raise ValueError("no trajectories to infer a road from")
    raw = raw[["vehicle_id", "frame", "x", "y", "length", "width", "lane"]].sort_values(["vehicle_id", "frame"],
                                                                                      kind="stable")
    length = math.ceil(robust_section_length(raw) * 10) / 10
    half = window / 2
    lanes, edges, counts = lane_occupancy(raw, -half, length + half, bin_size, reach=half)
    _, _, everyone = lane_occupancy(raw.assign(lane=0), -half, length + half, bin_size, reach=half)
    k = np.maximum(min_vehicles, np.ceil(min_share * everyone[0]))            # (B,) per bin

    def extent(count: np.ndarray) -> tuple[float, float] | None:
        run = _hull((count >= k) & (count > 0))
        if run is None:
            return None
        x0, x1 = edges[run[0]] + half, edges[run[1]] - half
        x0 = 0.0 if x0 <= snap else max(0.0, x0 - margin)
        x1 = length if x1 >= length - snap else min(length, x1 + margin)
        return float(x0), float(x1)

    # lane centres from the samples that keep to their lane (no lane change under way)
    by_vehicle = raw.groupby("vehicle_id", sort=False)["y"]
    sway = np.abs((by_vehicle.shift(-5) - by_vehicle.shift(5)).to_numpy())
    steady = raw[np.nan_to_num(sway, nan=np.inf) < STEADY_SWAY]
    centre_y = steady.groupby("lane")["y"].median().reindex(lanes)
    centre_y = centre_y.fillna(raw.groupby("lane")["y"].median().reindex(lanes)).to_numpy()
    extents = {int(lane): e for lane, e in zip(lanes, map(extent, counts)) if e is not None}
    if not extents:
        raise ValueError("no lane is used by enough vehicles to infer a road from")

    # lanes are numbered from the left: every lane left of a full-length one is a main lane too
    full = [lane for lane, (x0, x1) in extents.items() if x0 == 0.0 and x1 == length]
    n_main = max(full, default=1)
    main_y = np.array([centre_y[np.searchsorted(lanes, j)] if j in extents else np.nan for j in range(1, n_main + 1)])
    spacing = np.diff(main_y[np.isfinite(main_y)])
    width = float(-np.median(spacing)) if len(spacing) else LANE_WIDTH
    width = LANE_WIDTH if not np.isfinite(width) or width <= 0 or abs(width - LANE_WIDTH) <= SNAP_WIDTH \
        else round(width, 4)
    reach = _lateral_reach(raw)
    ramps = []
    for lane, (x0, x1) in sorted(extents.items()):
        if lane <= n_main:
            continue
        y = float(centre_y[np.searchsorted(lanes, lane)])
        # a lane one width wide around its centre, its edges on the lane grid when it is near it
        slot = -y / width - 0.5
        if abs(slot - round(slot)) * width <= SNAP_WIDTH:
            y = -(round(slot) + 0.5) * width
        y_left, y_right = y + width / 2, y - width / 2
        # every footprint reaching into the band uses it, whatever its label: a car changing lanes
        # is relabelled when its centre crosses the line, its corners cross earlier
        inside = (raw["y"].to_numpy() + reach > y_right + LATERAL_TOLERANCE) & \
                 (raw["y"].to_numpy() - reach < y_left - LATERAL_TOLERANCE)
        _, _, used = lane_occupancy(raw[inside].assign(lane=lane), -half, length + half, bin_size, reach=half)
        seen = extent(used[0]) if len(used) else None
        if seen is not None:
            x0, x1 = min(x0, seen[0]), max(x1, seen[1])
        kind = "on" if x0 == 0.0 and x1 < length else "off" if x0 > 0.0 and x1 == length else "auxiliary"
        ramps.append(Ramp(lane=lane, kind=kind, x_start=x0, x_end=x1, y_left=y_left, y_right=y_right))
    return Site(name=name, lane_widths=(width,) * n_main, section_length=float(length), ramps=tuple(ramps))


def _lateral_reach(raw: pd.DataFrame, frames: int = 5, max_heading: float = 0.3) -> np.ndarray:
    """(N,) m, how far each footprint reaches to either side of its centre: half its width, plus what
    its heading turns of its length (the heading of the motion over +-``frames`` frames, at most
    ``max_heading`` rad, so that position noise does not inflate it)."""
    by_vehicle = raw.groupby("vehicle_id", sort=False)
    dx = (by_vehicle["x"].shift(-frames) - by_vehicle["x"].shift(frames)).to_numpy()
    dy = (by_vehicle["y"].shift(-frames) - by_vehicle["y"].shift(frames)).to_numpy()
    heading = np.where(np.isfinite(dx) & np.isfinite(dy) & (np.abs(dx) > 0.5), np.arctan2(dy, np.abs(dx)), 0.0)
    heading = np.abs(np.clip(heading, -max_heading, max_heading))
    return raw["width"].to_numpy() / 2 * np.cos(heading) + raw["length"].to_numpy() / 2 * np.sin(heading)


def lane_bands(site: Site) -> dict[int, tuple[float, float, float, float]]:
    """Every Lane_ID of a layout as ``(x_start, x_end, y_left, y_right)`` m: main lanes span the section."""
    out = {}
    y = 0.0
    for lane, w in enumerate(site.lane_widths, start=1):
        out[lane] = (0.0, site.section_length, y, y - w)
        y -= w
    for r in site.ramps:
        out[r.lane] = (r.x_start, r.x_end, r.y_left, r.y_right)
    return out


def check_site(site: Site, raw: pd.DataFrame, tolerance: float = 10.0, offroad_share: float = 0.01) -> list[str]:
    """What in the data does not fit a layout, one sentence per problem (empty: it fits).

    Compares the layout with :func:`infer_site` of the data: main-lane count, every Lane_ID's
    extent along x (beyond ``tolerance`` m) and band across, the section length, and the share
    of samples whose centre lies off the layout's road (more than ``offroad_share``).
    """
    if len(raw) == 0:
        return ["the data has no trajectories"]
    seen = infer_site(raw)
    problems = []
    if len(seen.lane_widths) != len(site.lane_widths):
        n = len(seen.lane_widths)
        problems.append(f"the data has {n} main lane{'s' if n != 1 else ''} (used along the whole section), "
                        f"{site.name} has {len(site.lane_widths)}")
    if abs(seen.section_length - site.section_length) > tolerance:
        problems.append(f"vehicles are recorded up to x={seen.section_length:.0f} m, the {site.name} section is "
                        f"{site.section_length:.0f} m long")
    known = lane_bands(site)
    for lane, (x0, x1, yl, yr) in sorted(lane_bands(seen).items()):
        if lane not in known:
            problems.append(f"Lane_ID {lane} is used from x={x0:.0f} to {x1:.0f} m but {site.name} has no lane {lane}")
            continue
        k0, k1, kl, kr = known[lane]
        # (a main lane's extent is the section's, compared above)
        if lane > len(site.lane_widths) and (x0 < k0 - tolerance or x1 > k1 + tolerance):
            problems.append(f"Lane_ID {lane} is used from x={x0:.0f} to {x1:.0f} m but the {site.name} layout has it "
                            f"from {k0:.0f} to {k1:.0f} m")
        centre, known_centre = (yl + yr) / 2, (kl + kr) / 2
        if abs(centre - known_centre) > abs(kl - kr) / 2:
            problems.append(f"Lane_ID {lane} is centred at y={centre:.1f} m but the {site.name} layout has it at "
                            f"y={known_centre:.1f} m")
    off = _off_layout(site, raw["x"].to_numpy(), raw["y"].to_numpy())
    if off.mean() > offroad_share:
        problems.append(f"{100 * off.mean():.1f} % of the samples lie off the {site.name} road")
    return problems


def _off_layout(site: Site, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) bool: the point (x, y) m lies outside every lane band of ``site`` (main road unbounded along x)."""
    inside = (y <= 0.0) & (y >= -site.road_width)
    for r in site.ramps:
        inside |= (x >= r.x_start) & (x <= r.x_end) & (y <= r.y_left) & (y >= r.y_right)
    return ~inside


# --------------------------------------------------------------------------- geometry file

def site_to_json(site: Site) -> dict:
    """The geometry-file form of a layout (see README, "Road geometry")."""
    return {
        "format": GEOMETRY_FORMAT, "version": GEOMETRY_VERSION, "name": site.name,
        "lane_widths": [float(w) for w in site.lane_widths],
        "section_length": float(site.section_length),
        "ramps": [{"lane": int(r.lane), "kind": r.kind, "x_start": float(r.x_start), "x_end": float(r.x_end),
                   "y_left": float(r.y_left), "y_right": float(r.y_right)} for r in site.ramps],
        "hov_lanes": [int(v) for v in site.hov_lanes],
    }


def write_geometry(site: Site, path: str | Path) -> Path:
    """Write a layout as a geometry file (JSON), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(site_to_json(site), indent=2) + "\n")
    tmp.replace(path)
    return path


def _number(obj: dict, key: str, where: str, path: Path, positive: bool = False) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFormatError(f"{where}: expected a number (m), got {value!r}", path=path, field=key)
    if positive and value <= 0:
        raise DataFormatError(f"{where}: expected a positive number (m), got {value!r}", path=path, field=key)
    return float(value)


def site_from_json(obj: dict, path: str | Path = "<geometry>", default_name: str = "custom") -> Site:
    """A layout from the geometry-file form; raises DataFormatError naming the file and the field."""
    path = Path(path)
    if not isinstance(obj, dict):
        raise DataFormatError("expected a JSON object", path=path)
    if obj.get("format", GEOMETRY_FORMAT) != GEOMETRY_FORMAT:
        raise DataFormatError(f"format {obj.get('format')!r}; expected {GEOMETRY_FORMAT!r}", path=path, field="format")
    unknown = set(obj) - {"format", "version", "name", "lane_widths", "section_length", "ramps", "hov_lanes"}
    if unknown:
        raise DataFormatError(f"unknown fields {sorted(unknown)}", path=path, field=sorted(unknown)[0])
    widths = obj.get("lane_widths")
    if not isinstance(widths, list) or not widths:
        raise DataFormatError(f"expected a non-empty list of lane widths in m, got {widths!r}", path=path,
                              field="lane_widths")
    widths = [_number({"lane_widths": w}, "lane_widths", f"lane_widths[{i}]", path, positive=True)
              for i, w in enumerate(widths)]
    length = _number(obj, "section_length", "section_length", path, positive=True)
    road = sum(widths)
    ramps_in = obj.get("ramps", [])
    if not isinstance(ramps_in, list):
        raise DataFormatError(f"expected a list of ramps, got {ramps_in!r}", path=path, field="ramps")
    ramps, used = [], set(range(1, len(widths) + 1))
    for i, r in enumerate(ramps_in):
        where = f"ramps[{i}]"
        if not isinstance(r, dict):
            raise DataFormatError(f"{where}: expected an object", path=path, field="ramps")
        extra = set(r) - {"lane", "kind", "x_start", "x_end", "y_left", "y_right"}
        if extra:
            raise DataFormatError(f"{where}: unknown fields {sorted(extra)}", path=path,
                                  field=f"{where}.{sorted(extra)[0]}")
        lane = r.get("lane")
        if isinstance(lane, bool) or not isinstance(lane, int) or lane in used:
            raise DataFormatError(f"{where}: lane {lane!r}; expected a Lane_ID above the {len(widths)} main lanes, "
                                  "each used once", path=path, field=f"{where}.lane")
        used.add(lane)
        kind = r.get("kind", "auxiliary")
        if kind not in RAMP_KINDS:
            raise DataFormatError(f"{where}: kind {kind!r}; expected one of {RAMP_KINDS}", path=path,
                                  field=f"{where}.kind")
        x0 = _number(r, "x_start", where, path)
        x1 = _number(r, "x_end", where, path)
        if not 0.0 <= x0 < x1 <= length:
            raise DataFormatError(f"{where}: x_start {x0} .. x_end {x1}; expected 0 <= x_start < x_end <= "
                                  f"section_length ({length})", path=path, field=f"{where}.x_end")
        # default: beside the main road, one NGSIM lane wide
        y_left = _number(r, "y_left", where, path) if "y_left" in r else -road
        y_right = _number(r, "y_right", where, path) if "y_right" in r else y_left - LANE_WIDTH
        if not y_right < y_left <= 0.0:
            raise DataFormatError(f"{where}: y_left {y_left}, y_right {y_right}; expected y_right < y_left <= 0 "
                                  "(m, y to the left of the road's left edge)", path=path, field=f"{where}.y_right")
        ramps.append(Ramp(lane=lane, kind=kind, x_start=x0, x_end=x1, y_left=y_left, y_right=y_right))
    hov = obj.get("hov_lanes", [])
    if not isinstance(hov, list) or any(isinstance(v, bool) or v not in range(1, len(widths) + 1) for v in hov):
        raise DataFormatError(f"expected a list of main-lane numbers 1..{len(widths)}, got {hov!r}", path=path,
                              field="hov_lanes")
    name = obj.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise DataFormatError(f"expected a non-empty name, got {name!r}", path=path, field="name")
    return Site(name=name, lane_widths=tuple(widths), section_length=length, ramps=tuple(ramps),
                hov_lanes=tuple(int(v) for v in hov))


def site_of(meta) -> Site:
    """The layout of a scene (:class:`~ppuu.data.scene.SceneMeta`) as a :class:`Site`."""
    return Site(name=meta.site, lane_widths=tuple(meta.lane_widths), section_length=float(meta.section_length),
                ramps=tuple(meta.ramps))


def read_geometry(path: str | Path) -> Site:
    """Read a geometry file (JSON, see README "Road geometry"); raises DataFormatError naming the field."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError("no such geometry file", path=path) from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    stem = path.name.split(".")[0]
    return site_from_json(obj, path=path, default_name=stem)
