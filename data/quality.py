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
* ``kinematics``: after smoothing, a speed above ``max_speed``, a longitudinal
  or lateral (``curvature * speed^2``) acceleration above its bound for a sustained time,
  or a turn tighter than ``max_curvature`` at any frame;
* ``overlap``: the footprint overlaps another vehicle's for a sustained time;
* ``short``: too few frames for an episode (20 context frames + some steps).

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

PROBLEMS = ("jump", "kinematics", "overlap", "short")
"""The problem names, in the order they appear in the ``flags`` string."""


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
        max_curvature: 1/m, bound on |curvature| at any frame: a turning radius under 5 m is no
            highway manoeuvre (a crawling car "sliding" sideways, as SUMO's lane changes do at
            walking pace), and an ego car with the simulator's action bounds could not replay it.
        overlap_tolerance: m, footprints must interpenetrate by more than this along the road
            and across it to overlap (sizes in the data are approximate).
        overlap_duration: s, an overlap lasting at least this long flags both vehicles.
        min_frames: fewer frames than this is ``short`` (an episode needs 20 context frames and
            some steps).
    """

    max_speed: float = 40.0
    jump_tolerance: float = 2.0
    max_deviation: float = 2.5
    deviation_duration: float = 0.3
    max_acceleration: float = 8.0
    max_lateral_acceleration: float = 4.0
    kinematics_duration: float = 0.5
    max_curvature: float = 0.2
    overlap_tolerance: float = 0.1
    overlap_duration: float = 0.5
    min_frames: int = 30


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
    """(V,) bool: smoothed speed too high, longitudinal/lateral acceleration too high for a sustained
    time, or a curvature tighter than ``max_curvature`` at any frame."""
    vid = table["vehicle_id"].to_numpy()
    speed = table["speed"].to_numpy()
    sustained = _frames(config.kinematics_duration, frame_rate)
    hard = np.abs(table["acceleration"].to_numpy()) > config.max_acceleration
    lateral = np.abs(table["curvature"].to_numpy()) * speed**2 > config.max_lateral_acceleration
    return ((_per_vehicle_max(speed, vid) > config.max_speed)
            | (longest_run(hard, vid) >= sustained)
            | (longest_run(lateral, vid) >= sustained)
            | (_per_vehicle_max(np.abs(table["curvature"].to_numpy()), vid) > config.max_curvature))


def overlapping_pairs(table: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    """All (vehicle, vehicle, frame) where two footprints overlap.

    Footprints are axis-aligned boxes in the road frame: ``x +- length/2``, ``y +- width/2``
    (highway headings stay within a few degrees of the road axis). Per frame, vehicles are sorted
    by x and each is compared with its k-th next neighbour, for k = 1, 2, ... until no neighbour
    is within the longest vehicle length: vectorised over all rows for each k.

    Args:
        table: canonical table (x, y, length, width in m; frame; vehicle_id).
        tolerance: m, required interpenetration on both axes.

    Returns:
        DataFrame with columns a, b (vehicle ids, a < b) and frame, sorted by (a, b, frame).
    """
    order = np.lexsort((table["x"].to_numpy(), table["frame"].to_numpy()))
    frame = table["frame"].to_numpy()[order]
    x, y = table["x"].to_numpy()[order], table["y"].to_numpy()[order]
    half_length = table["length"].to_numpy()[order] / 2
    half_width = table["width"].to_numpy()[order] / 2
    vid = table["vehicle_id"].to_numpy()[order]
    reach = 2 * float(half_length.max()) if len(x) else 0.0
    found_a, found_b, found_frame = [], [], []
    active = np.arange(len(x) - 1)
    k = 1
    while len(active):
        other = active + k
        keep = other < len(x)
        active, other = active[keep], other[keep]
        keep = (frame[other] == frame[active]) & (x[other] - x[active] < reach)
        active, other = active[keep], other[keep]
        hit = ((x[other] - x[active] < half_length[active] + half_length[other] - tolerance)
               & (np.abs(y[other] - y[active]) < half_width[active] + half_width[other] - tolerance))
        found_a.append(np.minimum(vid[active[hit]], vid[other[hit]]))
        found_b.append(np.maximum(vid[active[hit]], vid[other[hit]]))
        found_frame.append(frame[active[hit]])
        k += 1
    pairs = pd.DataFrame({
        "a": np.concatenate(found_a) if found_a else np.zeros(0, np.int64),
        "b": np.concatenate(found_b) if found_b else np.zeros(0, np.int64),
        "frame": np.concatenate(found_frame) if found_frame else np.zeros(0, np.int64),
    })
    return pairs.sort_values(["a", "b", "frame"], kind="stable").reset_index(drop=True)


def overlap_problem(table: pd.DataFrame, frame_rate: float, config: QualityConfig,
                    vehicle_ids: np.ndarray) -> np.ndarray:
    """(V,) bool aligned with ``vehicle_ids``: overlapping another vehicle for a sustained time (both flagged)."""
    pairs = overlapping_pairs(table, config.overlap_tolerance)
    if len(pairs) == 0:
        return np.zeros(len(vehicle_ids), dtype=bool)
    a, b, frame = (pairs[c].to_numpy() for c in ("a", "b", "frame"))
    boundary = np.ones(len(pairs), dtype=bool)
    boundary[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (frame[1:] != frame[:-1] + 1)
    run = np.cumsum(boundary) - 1
    long_run = np.bincount(run)[run] >= _frames(config.overlap_duration, frame_rate)
    flagged = np.union1d(a[long_run], b[long_run])
    return np.isin(vehicle_ids, flagged)


def detect_bad_vehicles(table: pd.DataFrame, frame_rate: float = 10.0,
                        config: QualityConfig | None = None) -> pd.DataFrame:
    """One row per vehicle: which quality problems its trajectory has.

    Args:
        table: smoothed canonical table (:func:`ppuu.data.smoothing.smooth_table`: x, y smoothed,
            x_raw, y_raw, speed, acceleration, curvature), N rows sorted by (vehicle_id, frame).
        frame_rate: Hz.
        config: thresholds (:class:`QualityConfig`).

    Returns:
        DataFrame, one row per vehicle_id (sorted), with bool columns ``jump``, ``kinematics``,
        ``overlap``, ``short`` (see the module docstring) and ``flags``: the names of the problems
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
    })
    result["flags"] = _flag_strings(result[list(PROBLEMS)].to_numpy())
    return result[columns]


def _flag_strings(problems: np.ndarray) -> np.ndarray:
    """(V,) comma-separated names of the True columns of ``problems`` (V, len(PROBLEMS)), by lookup."""
    code = (problems.astype(np.int64) << np.arange(len(PROBLEMS))).sum(axis=1)
    table = np.array([",".join(name for bit, name in enumerate(PROBLEMS) if c >> bit & 1)
                      for c in range(2 ** len(PROBLEMS))], dtype=object)
    return table[code]
