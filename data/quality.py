"""Automatic detection of bad tracked trajectories.

Why: some NGSIM trajectories are simply wrong: the tracker loses a vehicle, the
position freezes and then jumps metres in one frame, or two tracks run through
each other. The reference implementation keeps hand-made blacklists of vehicle
ids per period; here the same decision is made from the data, with thresholds
that say what is physically implausible. A flagged vehicle still drives in the
replayed traffic (removing it would open a hole in the traffic) but is never
used as an ego episode.

Problems (one boolean column each in :func:`detect_bad_vehicles`):

* ``jump``: a raw step longer than any vehicle can travel in one frame
  (``max_speed * dt + jump_tolerance``), or raw positions that stay far from the
  smoothed trajectory for a while (a frozen-then-jumping track: a single-sample
  spike, which the smoother removes, does not count);
* ``kinematics``: after smoothing, a speed above ``max_speed``, or a longitudinal
  or lateral (``curvature * speed^2``) acceleration above its bound for a sustained
  time: motion no vehicle makes (a crawling car's sharp turn is no such thing: at
  0.5 m/s a 5 m radius is 0.05 m/s^2);
* ``overlap``: the footprint overlaps another vehicle's: at any frame in the smoothed
  table (what the simulator replays, where an ego replaying either vehicle would
  collide), or for a sustained time in the raw positions (tracks running through each
  other; a one-frame overlap there is a position spike, which smoothing removes). Both
  vehicles are flagged. Footprints are turned by the heading, as the simulator's are;
* ``short``: too few frames for an episode (20 context frames + some steps);
* ``speed_column``: the speed the source recorded (NGSIM ``v_Vel``, when the table
  has a ``speed_recorded`` column) contradicts the positions: a corrupted record;
* ``unfollowable``: the ego car could not replay the vehicle where an episode lets
  it drive: some frame after the context is not ``followable`` (its actions exceed
  the ego's bounds, :func:`ppuu.data.smoothing.derive_dynamics`). Frames in the
  context do not count, since an episode replays those from the recording.

Only the last one is not a fault of the data, but all six keep a vehicle from
being an ego (``usable_as_ego = flags == ""``); per frame, ``followable`` in the
trajectory table lets a user of windows of frames (the world model) skip only the
frames that cannot be followed.

All tests are vectorised over the whole table: run lengths with cumulative
sums, per-vehicle maxima with ``np.maximum.reduceat``, and overlaps by sorting
each frame's vehicles along the road and comparing each with its next
neighbours (a loop over the neighbour rank, a dozen steps in dense traffic,
never over vehicles or frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ppuu.data.schema import validate_table

PROBLEMS = ("jump", "kinematics", "overlap", "short", "speed_column", "unfollowable")
"""The problem names, in the order they appear in the ``flags`` string (new ones at the end, so that
the flags of older scenes keep their spelling)."""


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of :func:`detect_bad_vehicles`.

    Attributes:
        max_speed: m/s, the fastest plausible vehicle (144 km/h): a smoothed speed above it is
            a ``kinematics`` problem, a raw step above ``max_speed * dt + jump_tolerance`` a ``jump``.
        jump_tolerance: m, position noise allowed on top of ``max_speed * dt`` in one raw step.
        max_deviation: m, distance between raw and smoothed position that counts as a broken track...
        deviation_duration: s, ...when it lasts at least this long (shorter: a spike, smoothed away).
        max_acceleration: m/s^2, bound on |acceleration| (hard braking is about 8-9 m/s^2)...
        max_lateral_acceleration: m/s^2, bound on |curvature| * speed^2 (lane changes stay below 2)...
        kinematics_duration: s, ...exceeded for at least this long.
        overlap_tolerance: m, footprints must interpenetrate by more than this to overlap (0: any
            overlap, as the simulator's collision test).
        overlap_duration: s, an overlap of the smoothed footprints lasting at least this long flags
            both vehicles (0.1: one frame)...
        raw_overlap_duration: s, ...and one of the raw footprints lasting at least this long.
        min_frames: fewer frames than this is ``short`` (an episode needs 20 context frames and
            some steps).
        context_frames: frames an episode replays from the recording before the ego car drives
            (SPEC: 20); the ego's first own action is that of the last context frame.
        speed_tolerance: m/s, recorded and derived speeds may differ by this much...
        speed_ratio: ...plus this fraction of the derived speed, before they contradict each other.
    """

    max_speed: float = 40.0
    jump_tolerance: float = 2.0
    max_deviation: float = 2.5
    deviation_duration: float = 0.3
    max_acceleration: float = 8.0
    max_lateral_acceleration: float = 4.0
    kinematics_duration: float = 0.5
    overlap_tolerance: float = 0.0
    overlap_duration: float = 0.1
    raw_overlap_duration: float = 0.5
    min_frames: int = 30
    context_frames: int = 20
    speed_tolerance: float = 5.0
    speed_ratio: float = 0.5


def _frames(duration: float, frame_rate: float) -> int:
    """A duration in s as a number of frames, at least 1."""
    return max(1, int(math.ceil(duration * frame_rate - 1e-9)))


def _starts(vehicle_id: np.ndarray) -> np.ndarray:
    """Row index of each vehicle's first frame (table sorted by vehicle): (V,) int64."""
    return np.flatnonzero(np.r_[True, vehicle_id[1:] != vehicle_id[:-1]])


def longest_run(flag: np.ndarray, vehicle_id: np.ndarray) -> np.ndarray:
    """Per vehicle, the longest run of consecutive rows where ``flag`` holds.

    Args:
        flag: (N,) bool, rows sorted by (vehicle_id, frame) with consecutive frames.
        vehicle_id: (N,) vehicle ids.

    Returns:
        (V,) int64 run lengths in frames, vehicles in sorted id order.
    """
    flag = np.asarray(flag, dtype=bool)
    starts = _starts(vehicle_id)
    boundary = np.ones(len(flag), dtype=bool)
    boundary[1:] = (flag[1:] != flag[:-1]) | (vehicle_id[1:] != vehicle_id[:-1])
    run = np.cumsum(boundary) - 1
    length = np.bincount(run)[run]
    return np.maximum.reduceat(np.where(flag, length, 0), starts)


def _per_vehicle_max(values: np.ndarray, vehicle_id: np.ndarray) -> np.ndarray:
    """(V,) maximum of ``values`` (N,) per vehicle."""
    return np.maximum.reduceat(values, _starts(vehicle_id))


def jump_problem(table: pd.DataFrame, frame_rate: float, config: QualityConfig) -> np.ndarray:
    """(V,) bool: an impossible raw step, or raw positions far from the smoothed ones for a while."""
    vid = table["vehicle_id"].to_numpy()
    x_raw, y_raw = table["x_raw"].to_numpy(), table["y_raw"].to_numpy()
    step = np.zeros(len(table))
    step[1:] = np.hypot(np.diff(x_raw), np.diff(y_raw))
    step[_starts(vid)] = 0.0
    too_far = step > config.max_speed / frame_rate + config.jump_tolerance
    deviation = np.hypot(table["x"].to_numpy() - x_raw, table["y"].to_numpy() - y_raw)
    broken = longest_run(deviation > config.max_deviation, vid) >= _frames(config.deviation_duration, frame_rate)
    return (_per_vehicle_max(too_far, vid) > 0) | broken


def kinematics_problem(table: pd.DataFrame, frame_rate: float, config: QualityConfig) -> np.ndarray:
    """(V,) bool: smoothed speed too high, or longitudinal/lateral acceleration too high for a sustained time."""
    vid = table["vehicle_id"].to_numpy()
    speed = table["speed"].to_numpy()
    sustained = _frames(config.kinematics_duration, frame_rate)
    hard = np.abs(table["acceleration"].to_numpy()) > config.max_acceleration
    lateral = np.abs(table["curvature"].to_numpy()) * speed**2 > config.max_lateral_acceleration
    return ((_per_vehicle_max(speed, vid) > config.max_speed)
            | (longest_run(hard, vid) >= sustained)
            | (longest_run(lateral, vid) >= sustained))


def unfollowable_problem(table: pd.DataFrame, config: QualityConfig) -> np.ndarray:
    """(V,) bool: a frame from the ego's first own action on (row ``context_frames - 1`` of the vehicle)
    is not ``followable``."""
    vid = table["vehicle_id"].to_numpy()
    starts = _starts(vid)
    row = np.arange(len(vid)) - np.repeat(starts, np.diff(np.r_[starts, len(vid)]))
    driven = row >= config.context_frames - 1
    return _per_vehicle_max(driven & ~table["followable"].to_numpy(dtype=bool), vid) > 0


def speed_column_problem(table: pd.DataFrame, frame_rate: float, config: QualityConfig) -> np.ndarray:
    """(V,) bool: the recorded speed (column ``speed_recorded``, m/s; NaN = not recorded) contradicts
    the positions at some frame.

    It contradicts them when it differs by more than ``speed_tolerance + speed_ratio * v`` from both
    the smoothed speed and the raw one (central differences of the raw positions), where v is that
    speed: a source whose speeds are computed from its noisy positions (a spike in both) or from
    cleaner ones (no spike where the positions jump) agrees with one of the two.
    """
    vid = table["vehicle_id"].to_numpy()
    if "speed_recorded" not in table.columns:
        return np.zeros(len(_starts(vid)), dtype=bool)
    recorded = table["speed_recorded"].to_numpy(dtype=np.float64)
    speed_of_raw = raw_speed(table, frame_rate)

    def contradicts(speed: np.ndarray) -> np.ndarray:
        return np.abs(recorded - speed) > config.speed_tolerance + config.speed_ratio * speed

    bad = contradicts(table["speed"].to_numpy()) & contradicts(speed_of_raw)  # False where NaN
    return _per_vehicle_max(bad, vid) > 0


def raw_speed(table: pd.DataFrame, frame_rate: float) -> np.ndarray:
    """(N,) m/s from the raw positions (``x_raw``, ``y_raw``, m) of a smoothed table: central differences
    within each vehicle, one-sided at its ends, 0 for one-row vehicles."""
    vid = table["vehicle_id"].to_numpy()
    return np.hypot(_central_difference(table["x_raw"].to_numpy(), vid),
                    _central_difference(table["y_raw"].to_numpy(), vid)) * frame_rate


def _central_difference(values: np.ndarray, vehicle_id: np.ndarray) -> np.ndarray:
    """Per-vehicle d(values)/d(frame) (N,): central inside, one-sided at the ends, 0 for one-row vehicles."""
    same = vehicle_id[1:] == vehicle_id[:-1]
    has_next, has_prev = np.r_[same, False], np.r_[False, same]
    ahead = np.where(has_next, np.r_[values[1:], 0.0], values)
    behind = np.where(has_prev, np.r_[0.0, values[:-1]], values)
    return (ahead - behind) / np.maximum(has_next.astype(np.int64) + has_prev, 1)


def overlapping_pairs(table: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    """All (vehicle, vehicle, frame) where two footprints overlap.

    Footprints are rectangles of ``length`` x ``width`` centred on (x, y), turned by ``heading``
    when the table has that column (the simulator draws and collides them so), else along the
    road axis. Per frame, vehicles are sorted by x and each is compared with its k-th next
    neighbour, for k = 1, 2, ... until no neighbour is within reach: vectorised over all rows for
    each k. A pair whose bounding boxes overlap is then tested exactly with the separating axes
    of both rectangles (as :func:`ppuu.simulator.collision.boxes_overlap`).

    Args:
        table: canonical table (x, y, length, width in m; frame; vehicle_id; heading in rad, optional).
        tolerance: m, the rectangles must interpenetrate by more than this along every separating
            axis (for footprints along the road: along the road and across it).

    Returns:
        DataFrame with columns a, b (vehicle ids, a < b) and frame, sorted by (a, b, frame).
    """
    order = np.lexsort((table["x"].to_numpy(), table["frame"].to_numpy()))
    frame = table["frame"].to_numpy()[order]
    x, y = table["x"].to_numpy()[order], table["y"].to_numpy()[order]
    half_length = table["length"].to_numpy()[order] / 2
    half_width = table["width"].to_numpy()[order] / 2
    heading = table["heading"].to_numpy()[order] if "heading" in table.columns else np.zeros(len(x))
    cos, sin = np.cos(heading), np.sin(heading)
    reach_x = half_length * np.abs(cos) + half_width * np.abs(sin)      # half extents of the bounding box
    reach_y = half_length * np.abs(sin) + half_width * np.abs(cos)
    vid = table["vehicle_id"].to_numpy()[order]
    longest = float(reach_x.max()) if len(x) else 0.0
    found_a, found_b, found_frame = [], [], []
    active = np.arange(len(x) - 1)
    k = 1
    while len(active):
        other = active + k
        keep = other < len(x)
        active, other = active[keep], other[keep]
        # (a row drops out once its k-th neighbour is beyond its own reach plus the longest one)
        keep = (frame[other] == frame[active]) & (x[other] - x[active] < reach_x[active] + longest)
        active, other = active[keep], other[keep]
        near = ((x[other] - x[active] < reach_x[active] + reach_x[other] - tolerance)
                & (np.abs(y[other] - y[active]) < reach_y[active] + reach_y[other] - tolerance))
        i, j = active[near], other[near]
        hit = _rectangles_overlap(x[j] - x[i], y[j] - y[i], cos[i], sin[i], half_length[i], half_width[i],
                                  cos[j], sin[j], half_length[j], half_width[j], tolerance)
        found_a.append(np.minimum(vid[i[hit]], vid[j[hit]]))
        found_b.append(np.maximum(vid[i[hit]], vid[j[hit]]))
        found_frame.append(frame[i[hit]])
        k += 1
    pairs = pd.DataFrame({
        "a": np.concatenate(found_a) if found_a else np.zeros(0, np.int64),
        "b": np.concatenate(found_b) if found_b else np.zeros(0, np.int64),
        "frame": np.concatenate(found_frame) if found_frame else np.zeros(0, np.int64),
    })
    return pairs.sort_values(["a", "b", "frame"], kind="stable").reset_index(drop=True)


def _rectangles_overlap(dx, dy, cos_a, sin_a, half_length_a, half_width_a, cos_b, sin_b, half_length_b,
                        half_width_b, tolerance: float) -> np.ndarray:
    """(M,) bool: rectangles a and b (centre offset (dx, dy) m from a to b, unit heading (cos, sin),
    half sizes m) interpenetrate by more than ``tolerance`` m along each of their four edge normals."""
    overlap = np.full(len(dx), np.inf)
    for ax, ay in ((cos_a, sin_a), (-sin_a, cos_a), (cos_b, sin_b), (-sin_b, cos_b)):
        radius_a = half_length_a * np.abs(cos_a * ax + sin_a * ay) + half_width_a * np.abs(-sin_a * ax + cos_a * ay)
        radius_b = half_length_b * np.abs(cos_b * ax + sin_b * ay) + half_width_b * np.abs(-sin_b * ax + cos_b * ay)
        overlap = np.minimum(overlap, radius_a + radius_b - np.abs(dx * ax + dy * ay))
    return overlap > tolerance


def overlap_problem(table: pd.DataFrame, frame_rate: float, config: QualityConfig,
                    vehicle_ids: np.ndarray) -> np.ndarray:
    """(V,) bool aligned with ``vehicle_ids``: overlapping another vehicle in the smoothed positions for
    ``overlap_duration``, or in the raw positions (``x_raw``, ``y_raw``: the data as imported, turned by
    the smoothed heading) for ``raw_overlap_duration`` (both vehicles flagged)."""
    raw = table[["vehicle_id", "frame", "length", "width", "heading"]].assign(x=table["x_raw"], y=table["y_raw"])
    return (_lasting_overlaps(table, frame_rate, config.overlap_tolerance, config.overlap_duration, vehicle_ids)
            | _lasting_overlaps(raw, frame_rate, config.overlap_tolerance, config.raw_overlap_duration, vehicle_ids))


def _lasting_overlaps(table: pd.DataFrame, frame_rate: float, tolerance: float, duration: float,
                      vehicle_ids: np.ndarray) -> np.ndarray:
    """(V,) bool aligned with ``vehicle_ids``: in an overlap of ``table``'s footprints lasting ``duration`` s."""
    pairs = overlapping_pairs(table, tolerance)
    if len(pairs) == 0:
        return np.zeros(len(vehicle_ids), dtype=bool)
    a, b, frame = (pairs[c].to_numpy() for c in ("a", "b", "frame"))
    boundary = np.ones(len(pairs), dtype=bool)
    boundary[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (frame[1:] != frame[:-1] + 1)
    run = np.cumsum(boundary) - 1
    long_run = np.bincount(run)[run] >= _frames(duration, frame_rate)
    flagged = np.union1d(a[long_run], b[long_run])
    return np.isin(vehicle_ids, flagged)


def detect_bad_vehicles(table: pd.DataFrame, frame_rate: float = 10.0,
                        config: QualityConfig | None = None) -> pd.DataFrame:
    """One row per vehicle: which quality problems its trajectory has.

    Args:
        table: smoothed canonical table (:func:`ppuu.data.smoothing.smooth_table`: x, y smoothed,
            x_raw, y_raw, speed, acceleration, curvature, followable), N rows sorted by (vehicle_id,
            frame); with a ``speed_recorded`` column (m/s, NaN where not recorded) the recorded
            speeds are checked against the positions.
        frame_rate: Hz.
        config: thresholds (:class:`QualityConfig`).

    Returns:
        DataFrame, one row per vehicle_id (sorted), with one bool column per problem of
        :data:`PROBLEMS` (see the module docstring) and ``flags``: the names of the problems
        found, comma-separated in that order, ``""`` for a clean vehicle. The caller sets
        ``usable_as_ego = flags == ""``.

    Raises:
        data.errors.DataFormatError: the table is not a valid smoothed table.
    """
    config = config or QualityConfig()
    if not frame_rate > 0:
        raise ValueError(f"frame_rate {frame_rate} Hz: expected > 0")
    columns = ["vehicle_id", *PROBLEMS, "flags"]
    if len(table) == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "vehicle_id" else bool if c in PROBLEMS else str)
                             for c in columns})
    validate_table(table, source="<smoothed table>", derived=True)
    vid = table["vehicle_id"].to_numpy()
    starts = _starts(vid)
    vehicle_ids = vid[starts]
    n_frames = np.diff(np.r_[starts, len(vid)])
    result = pd.DataFrame({
        "vehicle_id": vehicle_ids.astype(np.int64),
        "jump": jump_problem(table, frame_rate, config),
        "kinematics": kinematics_problem(table, frame_rate, config),
        "overlap": overlap_problem(table, frame_rate, config, vehicle_ids),
        "short": n_frames < config.min_frames,
        "speed_column": speed_column_problem(table, frame_rate, config),
        "unfollowable": unfollowable_problem(table, config),
    })
    result["flags"] = _flag_strings(result[list(PROBLEMS)].to_numpy())
    return result[columns]


def _flag_strings(problems: np.ndarray) -> np.ndarray:
    """(V,) comma-separated names of the True columns of ``problems`` (V, len(PROBLEMS)), by lookup."""
    code = (problems.astype(np.int64) << np.arange(len(PROBLEMS))).sum(axis=1)
    table = np.array([",".join(name for bit, name in enumerate(PROBLEMS) if c >> bit & 1)
                      for c in range(2 ** len(PROBLEMS))], dtype=object)
    return table[code]
