"""Lateral motion of SUMO's lane changes, re-drawn over the forward motion.

Why: SUMO's continuous lane changes (``--lanechange.duration``) move a vehicle
sideways at a rate set by time, not by distance: a car crawling at 0.3 m/s in a
queue, or standing at the end of the on-ramp's acceleration lane, slides a lane
width sideways in a few seconds, at 40-90 degrees to the road, which no car can do
(it turns by curvature x distance travelled, and so does the ego car of the
simulator). For each lateral manoeuvre we keep SUMO's start and end positions and
its lateral path, but let the vehicle cover that path in step with its forward
motion, over a stretch of road long enough for a car: the share of the path done
at frame t is a smooth step ``S(u) = 3u^2 - 2u^3`` of the share ``u`` of the stretch
driven by then (:func:`retimed_lateral_positions`). A vehicle that stands no longer
moves sideways; a lane change takes the road a car needs to turn gently.

A re-drawn vehicle is not always where SUMO had it, so it could touch a neighbour
SUMO never let it touch, or leave the road (a merge drawn past the end of the
on-ramp); :func:`retime_lateral_motion` checks footprints and road for the whole
table, as the simulator will see them, and draws each offending manoeuvre another
way, down to SUMO's own timing (a few passes, until nothing new goes wrong).

Vectorised: manoeuvres are runs of rows found with cumulative sums, each row's
stretch with one ``searchsorted`` and the lateral path read back with another;
the overlap check is :func:`ppuu.data.quality.overlapping_pairs`. No loop runs
over vehicles or frames (only over the five ways of drawing and the passes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ppuu.data.quality import overlapping_pairs
from ppuu.data.sites import Site

LATERAL_EPS = 1e-6
"""m per frame: a smaller lateral step is no lateral motion."""


def retimed_lateral_positions(vehicle_id: np.ndarray, x: np.ndarray, y: np.ndarray, length: np.ndarray | float = 0.0,
                              curvature: float = 0.1, sweep: float = 0.5,
                              lead: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Lateral positions (N,) m with every lateral manoeuvre re-timed to the forward motion.

    A manoeuvre is a maximal run of frames of one vehicle in which it moves sideways at every
    step, from its first frame a to its last frame b, over a lateral path of length P (m). It is
    re-drawn over a stretch of road [s0, s1] long enough that the smooth step S bends the path by at
    most ``curvature`` (``sqrt(6 P / curvature)``: 15 m for a 3.66 m lane change and 0.1 1/m) and
    that the vehicle, turned along its path, sticks out sideways by at most ``sweep`` beyond it
    (``length / 2 * sin(heading) <= sweep``: a 13 m truck needs 70 m for a lane change, a 4.5 m car
    24 m), and never shorter than SUMO's own [x_a, x_b]; ``lead`` of the extra length comes
    before x_a, the rest after x_b, but a stretch never reaches beyond halfway to the vehicle's
    previous or next manoeuvre (so that stretches drawn with different ``lead`` never overlap). At a frame with x_t in [s0, s1] the vehicle has covered S((x_t - s0) / (s1 - s0)) of
    SUMO's lateral path (path length, so a manoeuvre that turns back is followed too).

    Args:
        vehicle_id: (N,) rows sorted by (vehicle_id, frame), consecutive frames.
        x: (N,) m along the road, non-decreasing per vehicle.
        y: (N,) m, SUMO's lateral positions.
        length: (N,) or scalar, m, the vehicles' lengths.
        curvature: 1/m, the sharpest bend of a re-drawn manoeuvre.
        sweep: m, how far a vehicle's corners may swing out sideways beyond its path.
        lead: share (0..1) of the extra length placed before the manoeuvre.

    Returns:
        ``(y, manoeuvre)``: (N,) m, the re-timed lateral positions, and (N,) int64, the index of the
        manoeuvre whose stretch each row lies in (-1: none; there y is SUMO's).
    """
    vehicle_id, x, y = np.asarray(vehicle_id), np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(y)
    if n < 2:
        return y.copy(), np.full(n, -1, dtype=np.int64)
    same = vehicle_id[1:] == vehicle_id[:-1]
    step = np.abs(np.diff(y))
    sideways = same & (step > LATERAL_EPS)                      # (N-1,) steps that move sideways
    into, out = np.r_[False, sideways], np.r_[sideways, False]
    starts = np.flatnonzero(out & ~into)                          # first frame a of each manoeuvre
    ends = np.flatnonzero(into & ~out)                            # last frame b
    if len(starts) == 0:
        return y.copy(), np.full(n, -1, dtype=np.int64)
    ordinal = np.r_[0, np.cumsum(~same)]
    # lateral path length, strictly increasing inside a manoeuvre; vehicles stacked apart
    path = np.r_[0.0, np.cumsum(np.where(sideways, step, 0.0))]
    key = path + ordinal * (path[-1] + 1.0)
    lateral = path[ends] - path[starts]
    size = np.broadcast_to(np.asarray(length, dtype=np.float64), (n,))[starts]
    steepest = np.arcsin(np.clip(2.0 * sweep / np.maximum(size, 1e-9), 1e-6, 1.0))     # heading, rad
    needed = np.maximum(np.sqrt(6.0 * lateral / curvature), 1.5 * lateral / np.tan(steepest))
    extra = np.maximum(needed - (x[ends] - x[starts]), 0.0)
    s0 = x[starts] - lead * extra
    s1 = x[ends] + (1.0 - lead) * extra
    # a vehicle's stretches never overlap: each stays within halfway to its neighbouring manoeuvres
    owner = ordinal[starts]
    same_next = owner[1:] == owner[:-1]
    halfway = 0.5 * (x[ends][:-1] + x[starts][1:])
    s0[1:] = np.where(same_next, np.maximum(s0[1:], halfway), s0[1:])
    s1[:-1] = np.where(same_next, np.minimum(s1[:-1], halfway), s1[:-1])
    # each frame's stretch: its vehicle's last one starting at or before x_t
    road = float(max(s1.max(), x.max()) - min(s0.min(), x.min())) + 1.0
    which = np.searchsorted(s0 + owner * road, x + ordinal * road, side="right") - 1
    valid = which >= 0
    which = np.maximum(which, 0)
    span = s1 - s0
    valid &= (owner[which] == ordinal) & (x <= s1[which]) & (span[which] > 0)    # span 0: SUMO's timing
    u = np.clip((x - s0[which]) / np.where(span > 0, span, 1.0)[which], 0.0, 1.0)
    share = 3 * u**2 - 2 * u**3
    target = key[starts][which] + lateral[which] * share
    at = np.clip(np.searchsorted(key, target, side="right") - 1, 0, n - 2)
    rise = key[at + 1] - key[at]
    frac = np.where(rise > 0, (target - key[at]) / np.where(rise > 0, rise, 1.0), 0.0)
    moved = y[at] + np.clip(frac, 0.0, 1.0) * (y[at + 1] - y[at])
    return np.where(valid, moved, y), np.where(valid, which, -1)


def retime_lateral_motion(table: pd.DataFrame, site: Site | None = None, max_passes: int = 8,
                          **retiming) -> tuple[pd.DataFrame, dict]:
    """Re-time the lane changes of a raw table (:func:`retimed_lateral_positions`) where that hurts nobody.

    Footprints are compared as the simulator will see them, turned along each vehicle's direction of
    motion (:func:`motion_heading`): a re-timed manoeuvre that makes its vehicle overlap another
    (:func:`ppuu.data.quality.overlapping_pairs`, no tolerance) where SUMO's tracks do not, or leave
    the road of ``site`` where SUMO's track does not (a merge drawn past the end of the on-ramp), is
    drawn the next way of: its stretch centred on SUMO's (``lead`` as given), placed after it, placed
    before it, within SUMO's stretch only, with SUMO's own timing; and the check runs again, at most
    ``max_passes`` times. Rows whose y changed get the ``lane`` of the site in which their centre now
    lies, as SUMO labels them.

    Args:
        table: raw canonical table from :func:`ppuu.data.sumo.fcd.fcd_to_raw_table`.
        site: the road (lanes and ramps); None: no road check and no relabelling.
        max_passes: checks before giving up on the remaining conflicts.
        retiming: keyword arguments of :func:`retimed_lateral_positions` (curvature, sweep, lead).

    Returns:
        ``(table, info)``: the table with ``y`` (and ``lane``) re-timed, and counts: ``manoeuvres``
        (lateral manoeuvres), ``vehicles_retimed`` (vehicles with a changed track),
        ``manoeuvres_by_choice`` (how many are drawn each way), ``max_shift_m`` (largest change of y, m).
    """
    vid = table["vehicle_id"].to_numpy()
    x, y_sumo = table["x"].to_numpy(), table["y"].to_numpy()
    length, width = table["length"].to_numpy(), table["width"].to_numpy()
    frame = table["frame"].to_numpy()
    variants = []
    tight = {"curvature": np.inf, "sweep": np.inf}
    for options in ({**retiming}, {**retiming, "lead": 0.0}, {**retiming, "lead": 1.0}, tight):
        variants.append(retimed_lateral_positions(vid, x, y_sumo, length, **options))
    choices = ("centred", "after", "before", "sumo_stretch", "sumo_timing")
    level = np.zeros(_count_manoeuvres(vid, y_sumo), dtype=np.int64)     # chosen way per manoeuvre

    def chosen(index: np.ndarray, v: int) -> np.ndarray:
        return (index >= 0) & (level[np.maximum(index, 0)] == v)

    def assemble() -> np.ndarray:
        y = y_sumo.copy()
        for v, (y_variant, index) in enumerate(variants):
            take = chosen(index, v)
            y[take] = y_variant[take]
        return y

    def manoeuvre_of(rows: np.ndarray) -> np.ndarray:
        """The manoeuvre in whose chosen stretch each row lies (-1: none)."""
        found = np.full(len(rows), -1)
        for v, (_, index) in enumerate(variants):
            mine = chosen(index[rows], v)
            found[mine] = index[rows][mine]
        return found

    widest = float((length / 2 + width / 2).max()) if len(vid) else 0.0     # m, the furthest any footprint reaches
    n_frames = int(frame.max()) + 1 if len(frame) else 1
    n_ids = int(vid.max()) + 1 if len(vid) else 1

    def overlaps_of(y: np.ndarray, heading: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(M, 3) int64 (a, b, frame) of the overlaps that involve one of ``rows``, vehicles at y: the
        footprints compared are those of each such frame within reach of those rows."""
        lo = np.full(n_frames, np.inf)
        hi = np.full(n_frames, -np.inf)
        np.minimum.at(lo, frame[rows], x[rows])
        np.maximum.at(hi, frame[rows], x[rows])
        near = (x >= lo[frame] - 2 * widest) & (x <= hi[frame] + 2 * widest)
        found = overlapping_pairs(table[near].assign(y=y[near], heading=heading[near]))
        found = found[["a", "b", "frame"]].to_numpy(dtype=np.int64).reshape(-1, 3)
        mine = np.zeros(len(vid), dtype=bool)
        mine[rows] = True
        return found[involves(found, mine)]

    def involves(pairs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(M,) bool: pair (a, b, frame) has a or b at a row where ``mask`` (N,) holds."""
        return mask[_rows_of(table, pairs[:, 0], pairs[:, 2])] | mask[_rows_of(table, pairs[:, 1], pairs[:, 2])]

    def pair_key(pairs: np.ndarray) -> np.ndarray:
        return (pairs[:, 0] * n_ids + pairs[:, 1]) * n_frames + pairs[:, 2]

    def off_road_rows(y: np.ndarray, heading: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if site is None:
            return np.zeros(len(rows), dtype=bool)
        return off_road(site, x[rows], y[rows], heading[rows], length[rows], width[rows])

    def update(pairs: np.ndarray, off: np.ndarray, heading: np.ndarray, y: np.ndarray,
               y_then: np.ndarray, heading_then: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Overlaps, off-road flags and headings after the vehicles moved from y_then to y: only the
        rows whose position or heading changed are checked again."""
        heading_now = motion_heading(vid, x, y)
        changed = (y != y_then) | (heading_now != heading_then)
        moved = np.flatnonzero(changed)
        pairs = np.concatenate([pairs[~involves(pairs, changed)], overlaps_of(y, heading_now, moved)])
        off = off.copy()
        off[moved] = off_road_rows(y, heading_now, moved)
        return pairs, off, heading_now

    everything = np.arange(len(vid))
    heading_sumo = motion_heading(vid, x, y_sumo)
    base_pairs = overlaps_of(y_sumo, heading_sumo, everything)
    base_off = off_road_rows(y_sumo, heading_sumo, everything)
    y_new = assemble()
    pairs, off, heading = update(base_pairs, base_off, heading_sumo, y_new, y_sumo, heading_sumo)
    passes = 0
    for passes in range(1, max_passes + 1):
        new = pairs[~np.isin(pair_key(pairs), pair_key(base_pairs))]
        rows = np.r_[_rows_of(table, new[:, 0], new[:, 2]), _rows_of(table, new[:, 1], new[:, 2]),
                     np.flatnonzero(off & ~base_off)]
        culprits = np.unique(manoeuvre_of(rows))
        culprits = culprits[culprits >= 0]
        if len(culprits) == 0:
            break
        level[culprits] += 1
        y_next = assemble()
        pairs, off, heading = update(pairs, off, heading, y_next, y_new, heading)
        y_new = y_next
    changed = np.abs(y_new - y_sumo) > 1e-9
    out = table.assign(y=y_new)
    if site is not None:
        out["lane"] = np.where(changed, lane_at(site, x, y_new), table["lane"].to_numpy()).astype(
            table["lane"].dtype)
    info = {
        "manoeuvres": _count_manoeuvres(vid, y_sumo),
        "vehicles_retimed": int(pd.Series(changed).groupby(vid).any().sum()),
        "manoeuvres_by_choice": {name: int(np.sum(level == v)) for v, name in enumerate(choices)},
        "max_shift_m": round(float(np.abs(y_new - y_sumo).max()) if len(y_new) else 0.0, 3),
        "passes": passes,
    }
    return out, info


def _cells(site: Site) -> np.ndarray:
    """The drivable rectangles of a site, (C, 4) = (x_min, y_min, x_max, y_max) m: the main road
    (unbounded along x) and each ramp or auxiliary lane."""
    main = [(-np.inf, -site.road_width, np.inf, 0.0)]
    return np.array(main + [(r.x_start, r.y_right, r.x_end, r.y_left) for r in site.ramps], dtype=np.float64)


def off_road(site: Site, x: np.ndarray, y: np.ndarray, heading: np.ndarray, length: np.ndarray,
             width: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """(N,) bool: a corner of the footprint (centre x, y m; heading rad; length, width m) lies outside
    every drivable rectangle of ``site`` by more than ``tolerance`` m."""
    cos, sin = np.cos(heading), np.sin(heading)
    inside = np.ones(len(x), dtype=bool)
    cells = _cells(site)
    for along, across in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        cx = x + along * length / 2 * cos - across * width / 2 * sin
        cy = y + along * length / 2 * sin + across * width / 2 * cos
        inside &= ((cx[:, None] >= cells[:, 0] - tolerance) & (cx[:, None] <= cells[:, 2] + tolerance)
                   & (cy[:, None] >= cells[:, 1] - tolerance) & (cy[:, None] <= cells[:, 3] + tolerance)).any(axis=1)
    return ~inside


def lane_at(site: Site, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) int16 NGSIM Lane_ID whose band holds the point (x, y) m: a ramp or auxiliary lane where
    one covers it, else the main lane (clipped to the road: 1 .. number of lanes)."""
    edges = -np.cumsum(site.lane_widths)                           # right edge of each main lane
    lane = np.searchsorted(-edges, -y, side="left") + 1            # first lane whose right edge <= y
    lane = np.clip(lane, 1, len(site.lane_widths))
    for r in site.ramps:
        on = (x >= r.x_start) & (x <= r.x_end) & (y <= r.y_left) & (y >= r.y_right)
        lane = np.where(on, r.lane, lane)
    return lane.astype(np.int16)


def motion_heading(vehicle_id: np.ndarray, x: np.ndarray, y: np.ndarray, min_step: float = 0.02) -> np.ndarray:
    """Direction of motion (N,) rad of each row: of its step to the next frame, held from the last
    step of at least ``min_step`` m while the vehicle stands (the last frame repeats the previous one)."""
    same = np.r_[vehicle_id[1:] == vehicle_id[:-1], False]
    dx, dy = np.r_[np.diff(x), 0.0], np.r_[np.diff(y), 0.0]
    moving = same & (np.hypot(dx, dy) >= min_step)
    angle = pd.Series(np.where(moving, np.arctan2(dy, dx), np.nan))
    angle = angle.groupby(vehicle_id, sort=False).ffill().groupby(vehicle_id, sort=False).bfill()
    return angle.fillna(0.0).to_numpy()


def _rows_of(table: pd.DataFrame, vehicle_id: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Row indices of (vehicle_id, frame) pairs in a table sorted by (vehicle_id, frame), consecutive frames."""
    vid = table["vehicle_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, vid[1:] != vid[:-1]])
    first = starts[np.searchsorted(vid[starts], vehicle_id)]
    return first + (frame - table["frame"].to_numpy()[first])


def _count_manoeuvres(vehicle_id: np.ndarray, y: np.ndarray) -> int:
    """Number of maximal runs of sideways steps (lateral manoeuvres) in the table."""
    sideways = (vehicle_id[1:] == vehicle_id[:-1]) & (np.abs(np.diff(y)) > LATERAL_EPS)
    return int(np.sum(sideways & ~np.r_[False, sideways[:-1]]))
