"""Smoothing tracked positions and deriving speed, heading and the ego actions from them.

Why: raw NGSIM positions are noisy (finite-difference speeds reach 60+ m/s and
accelerations hundreds of m/s^2), so speeds, headings and actions cannot be read
off the raw data. We smooth the positions first and derive everything else from
the smoothed positions, so that the derived actions, integrated with the ego
dynamics of SPEC section 2, give back the smoothed trajectory.

Method: a robust, Gaussian-weighted **local quadratic regression** (LOESS with a
Gaussian kernel, Cleveland 1979; the kernel-weighted family of Savitzky-Golay
filters) of x(t) and y(t) per vehicle:

* in the interior of a trajectory it is unbiased for constant-acceleration
  motion (a plain Gaussian moving average, as in Thiemann, Treiber & Kesting
  2008, shifts a trajectory by ``sigma^2 a / 2``: 0.3 m at 1.5 s and 3 m/s^2);
* at the first and last frames the fit uses only the samples that exist, so the
  edges are unbiased too (no padding, no shrinking of the window needed);
* single-sample outliers (the NGSIM "spikes") are down-weighted by a few
  iteratively reweighted passes with Huber weights on the 2-D residual.

Then x is made non-decreasing (highway vehicles do not reverse), and speed,
heading and actions are derived so that the ego's kinematic model, a unicycle,
follows the smoothed track exactly (:func:`derive_dynamics`): the heading is the
direction of motion wherever the vehicle moves, however steep, and is only held
where it (almost) stands and that direction is noise. Where the actions needed
exceed what the ego car can do (a car crawling sideways, as SUMO moves them), the
track is kept and the frame is flagged ``followable = False``; it is never bent
to fit the bounds. Generated data, and any file whose positions show no noise, is
smoothed with short windows (:meth:`SmoothingConfig.for_data`).

Vectorised over all vehicles: the trajectories are laid end to end in one long
array with zero-weight gaps as wide as the kernel between them, so the
weighted moment sums of the local fits are a handful of ``np.convolve`` calls;
per-vehicle scans (cumulative max, forward fill, cumulative sums) are pandas
group-by scans or prefix sums. No Python loop runs over vehicles or frames (a
few passes over the whole table hold the rare frames that would turn sharper
than ``max_turn``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ppuu.data.schema import DERIVED_COLUMNS, OPTIONAL_COLUMNS, RAW_COLUMNS, validate_table


@dataclass(frozen=True)
class SmoothingConfig:
    """Parameters of :func:`smooth_table`.

    Attributes:
        window: s, standard deviation of the Gaussian kernel weighting the local fit of x (along
            the road). Larger is smoother (measured on real I-80 data: 1.0 s leaves 0.02 % of the
            accelerations above 8 m/s^2, 1.5 s none).
        lateral_window: s, the same for y. Shorter, so that a 4 s lane change keeps its shape
            (a minimum-jerk lane change is off by 0.13 m at 1.0 s, by 0.33 m at 1.5 s).
        truncate: kernel half-width in units of ``window`` (samples further away get weight 0).
        degree: degree of the local polynomial: 2 (local quadratic, unbiased for constant
            acceleration), 1 (local linear: smoother, but biased by ``window^2 a / 2`` in m)
            or 0 (a plain Gaussian moving average, biased at the edges too).
        robust_iterations: number of reweighting passes against outliers (0 = plain fit).
        robust_scale: m, Huber threshold: samples further than this from the fit get
            weight ``robust_scale / residual``.
        standing_speed: m/s, below this speed the direction of motion is noise: the heading is held
            there (see :func:`derive_dynamics`) and turns only where the vehicle moves again.
        max_turn: rad, the sharpest turn of the heading in one frame (below pi/2, so that the
            curvature ``tan(turn) / (s dt)`` exists); a frame that would need more is held.
        turn_passes: at most this many passes that hold frames turning sharper than ``max_turn``
            (each joins one frame to a held stretch; 3 frames absorb any turn).
        drift_distance: m, the sideways creep that a held heading cannot follow is paid back over
            this many metres of driving, so a heading change of ``creep / drift_distance`` rad at most.
        ego_acceleration: m/s^2, (min, max) acceleration the ego car can apply...
        ego_curvature: 1/m, ...and the largest |curvature|: a frame whose actions exceed these is
            not ``followable``. The defaults are :class:`ppuu.simulator.dynamics.ActionBounds`'s (the
            data package does not import the simulator; a test holds them equal).
    """

    window: float = 1.5
    lateral_window: float = 1.0
    truncate: float = 3.0
    degree: int = 2
    robust_iterations: int = 2
    robust_scale: float = 0.5
    standing_speed: float = 0.2
    max_turn: float = 1.2
    turn_passes: int = 8
    drift_distance: float = 5.0
    ego_acceleration: tuple[float, float] = (-8.0, 4.0)
    ego_curvature: float = 0.2

    @classmethod
    def for_source(cls, source: str) -> "SmoothingConfig":
        """The configuration for data of a scene source (:attr:`ppuu.data.scene.SceneMeta.source`).

        Measured data ("ngsim", or anything else) gets the defaults, made for its noise. Simulated
        data ("sumo") has no noise: its positions are exact, and its speed changes at every step as
        the car-following model says, braking included, which a 1.5 s window would round off by up
        to a metre (measured on a 4-minute I-80 scene: 0.97 m; 0.1 m with 0.5 s). It keeps the
        lateral window, which rounds the corners of SUMO's lane changes (a lateral speed that jumps
        from 0 to 1.2 m/s in one step), and needs no robust reweighting.
        """
        if source == "sumo":
            return cls.noiseless()
        return cls()

    @classmethod
    def noiseless(cls) -> "SmoothingConfig":
        """Short windows and no reweighting: for exact (simulated, or already smoothed) positions."""
        return cls(window=0.3, lateral_window=0.3, robust_iterations=0)

    @classmethod
    def for_data(cls, raw: pd.DataFrame, source: str, frame_rate: float = 10.0) -> "SmoothingConfig":
        """:meth:`for_source`, unless measured data shows no noise at all (:func:`position_noise`: median
        under :data:`NOISELESS_M` and no residual over :data:`NOISELESS_MAX_M`): then :meth:`noiseless`.

        An NGSIM-format file need not hold measured data: a simulator's export (SUMO through
        ``ppuu data generate --format ngsim``, or another's) has no noise, and the 1.5 s window made
        for tracker noise would only round off its braking (measured on the 5-minute recordings of
        the road fixtures, imported: up to 1.03 m from the raw positions; 0.25 m with these
        windows). A single spike keeps the measured-data windows and their robust reweighting.
        """
        if source != "sumo" and len(raw):
            median, largest = position_noise(raw, frame_rate)
            if median < NOISELESS_M and largest < NOISELESS_MAX_M:
                return cls.noiseless()
        return cls.for_source(source)

    def __post_init__(self):
        if not (self.window > 0 and self.lateral_window > 0 and self.truncate > 0):
            raise ValueError(f"window ({self.window} s), lateral_window ({self.lateral_window} s) and "
                             f"truncate ({self.truncate}) must be > 0")
        if self.degree not in (0, 1, 2):
            raise ValueError(f"degree {self.degree}: expected 0, 1 or 2")
        if self.robust_iterations < 0 or not self.robust_scale > 0:
            raise ValueError("robust_iterations must be >= 0 and robust_scale > 0")
        if not self.standing_speed > 0:
            raise ValueError(f"standing_speed {self.standing_speed} m/s: expected > 0")
        if not 0 < self.max_turn < math.pi / 2:
            raise ValueError(f"max_turn {self.max_turn} rad: expected within (0, pi/2)")
        if self.turn_passes < 1 or not self.drift_distance > 0:
            raise ValueError("turn_passes must be >= 1 and drift_distance > 0")
        low, high = self.ego_acceleration
        if not (low < high and self.ego_curvature > 0):
            raise ValueError(f"ego bounds {self.ego_acceleration} m/s^2, {self.ego_curvature} 1/m: expected "
                             "min < max and a positive curvature")


NOISELESS_M = 0.002
"""m: a median :func:`position_noise` below this is no measurement noise. Measured: NGSIM exports of
SUMO recordings (three road fixtures, 5 minutes each; positions written in feet to three decimals)
0.0002-0.0005 m; the real I-80 lane-1 file 0.0164 m, its published reconstruction 0.0048 m."""
NOISELESS_MAX_M = 0.1
"""m: and no residual above this (the exports: at most 0.054 m; the lane-1 file 2.76 m, its
reconstruction 0.81 m)."""


def position_noise(raw: pd.DataFrame, frame_rate: float = 10.0) -> tuple[float, float]:
    """Median and largest distance (m) along the road between the raw positions and a short (0.3 s) local
    quadratic fit of them: what a smoother would remove at the finest scale. Tracker noise leaves
    centimetres and spikes of metres; a simulator's exact positions leave rounding and the corners of
    its speed steps (a few centimetres at most).

    Args:
        raw: raw canonical table, rows sorted by (vehicle_id, frame).
        frame_rate: Hz.
    """
    config = SmoothingConfig.noiseless()
    x = raw[["x"]].to_numpy(dtype=np.float64)
    fitted, _ = robust_smooth(x, raw["vehicle_id"].to_numpy(), (config.window,), frame_rate, config)
    residual = np.abs(x - fitted)
    return float(np.median(residual)), float(residual.max())


# --------------------------------------------------------------------------- segments


def _ordinal(vehicle_id: np.ndarray) -> np.ndarray:
    """Per row, the index 0..V-1 of its vehicle's block (rows sorted by vehicle): (N,) int64."""
    change = np.empty(len(vehicle_id), dtype=np.int64)
    if len(vehicle_id):
        change[0] = 0
        change[1:] = vehicle_id[1:] != vehicle_id[:-1]
    return np.cumsum(change)


def _is_last(vehicle_id: np.ndarray) -> np.ndarray:
    """Per row, whether it is the last frame of its vehicle: (N,) bool."""
    last = np.ones(len(vehicle_id), dtype=bool)
    last[:-1] = vehicle_id[1:] != vehicle_id[:-1]
    return last


def _is_first(vehicle_id: np.ndarray) -> np.ndarray:
    """Per row, whether it is the first frame of its vehicle: (N,) bool."""
    first = np.ones(len(vehicle_id), dtype=bool)
    first[1:] = vehicle_id[1:] != vehicle_id[:-1]
    return first


def pad_by_vehicle(values: np.ndarray, vehicle_id: np.ndarray, fill: float = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """Pack a per-row column into a left-aligned padded array, one row per vehicle.

    Args:
        values: (N,) values of a table sorted by (vehicle_id, frame).
        vehicle_id: (N,) the table's vehicle ids.
        fill: value of the padding.

    Returns:
        padded: (V, T) values, T = the longest trajectory; vehicles in order of appearance.
        mask: (V, T) bool, True where a frame exists.
    """
    values = np.asarray(values)
    ordinal = _ordinal(np.asarray(vehicle_id))
    n_vehicles = int(ordinal[-1]) + 1 if len(ordinal) else 0
    starts = np.flatnonzero(_is_first(np.asarray(vehicle_id)))
    position = np.arange(len(values)) - starts[ordinal] if len(values) else np.zeros(0, dtype=np.int64)
    width = int(position.max()) + 1 if len(values) else 0
    padded = np.full((n_vehicles, width), fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
    mask = np.zeros((n_vehicles, width), dtype=bool)
    padded[ordinal, position] = values
    mask[ordinal, position] = True
    return padded, mask


# --------------------------------------------------------------------------- local polynomial fit


def _local_polynomial(values: np.ndarray, weights: np.ndarray, ordinal: np.ndarray,
                      sigma: float, truncate: float, degree: int) -> np.ndarray:
    """Weighted local polynomial regression with a Gaussian kernel, per vehicle, evaluated at every sample.

    At sample t of a vehicle, fits ``sum_k beta_k u^k`` (u = (t' - t) / sigma) to that vehicle's
    samples t' by least squares with weights ``weights[t'] * exp(-u^2 / 2)`` and returns beta_0.

    Args:
        values: (N, C) signals (e.g. C = 2: x and y, metres), rows sorted by vehicle and frame.
        weights: (N,) sample weights >= 0 (robustness weights; 1 = trusted).
        ordinal: (N,) vehicle index of each row (:func:`_ordinal`).
        sigma: kernel standard deviation, frames.
        truncate: half-width of the kernel in units of sigma.
        degree: polynomial degree.

    Returns:
        (N, C) fitted values. A vehicle with a single sample gets that sample back.
    """
    n, channels = values.shape
    half = max(1, int(math.ceil(truncate * sigma)))
    offset = np.arange(-half, half + 1, dtype=np.float64)
    u = offset / sigma
    kernel = np.exp(-0.5 * u**2)
    # Lay the vehicles end to end with `half` zero-weight samples between them: no kernel
    # ever reaches a neighbouring vehicle.
    index = np.arange(n) + (ordinal + 1) * half
    length = n + (int(ordinal[-1]) + 2) * half

    def spread(signal: np.ndarray) -> np.ndarray:
        long = np.zeros(length)
        long[index] = signal
        return long

    def correlate(long: np.ndarray, k: int) -> np.ndarray:
        """sum_j signal[t + j] * kernel[j] * u_j^k, at the table's samples."""
        taps = kernel * u**k
        return np.convolve(long, taps[::-1], mode="same")[index]

    long_weights = spread(weights)
    moments = [correlate(long_weights, k) for k in range(2 * degree + 1)]
    row = _first_row_of_inverse(moments, degree)
    fitted = np.zeros((n, channels))
    for c in range(channels):
        long_values = spread(weights * values[:, c])
        for k in range(degree + 1):
            fitted[:, c] += row[k] * correlate(long_values, k)
    return fitted


def _first_row_of_inverse(moments: list[np.ndarray], degree: int) -> list[np.ndarray]:
    """First row of the inverse of the normal matrix ``M_ij = S_{i+j}`` of a local fit, per sample.

    Closed forms for degree 0..2 (a batched ``np.linalg.solve`` is ten times slower). A tiny
    ridge on the non-constant coefficients keeps M invertible where a vehicle has fewer samples
    than coefficients; there the fit falls back towards a lower degree.

    Args:
        moments: 2 * degree + 1 arrays (N,): S_k = sum_t' w_t' K(u) u^k.
        degree: 0, 1 or 2.

    Returns:
        degree + 1 arrays (N,): the weights of T_0 .. T_degree in the fitted value beta_0.
    """
    s0 = np.maximum(moments[0], 1e-300)
    if degree == 0:
        return [1.0 / s0]
    ridge = 1e-12 * s0
    if degree == 1:
        s1, s2 = moments[1], moments[2] + ridge
        det = s0 * s2 - s1 * s1
        return [s2 / det, -s1 / det]
    m01, m02, m11, m12, m22 = moments[1], moments[2], moments[2] + ridge, moments[3], moments[4] + ridge
    c00 = m11 * m22 - m12 * m12
    c01 = m12 * m02 - m01 * m22
    c02 = m01 * m12 - m11 * m02
    det = s0 * c00 + m01 * c01 + m02 * c02
    return [c00 / det, c01 / det, c02 / det]


def robust_smooth(values: np.ndarray, vehicle_id: np.ndarray, windows: tuple[float, ...],
                  frame_rate: float = 10.0, config: SmoothingConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Robust local polynomial smoothing of per-vehicle signals (no physical constraints).

    The robustness weights are shared by all channels: a sample far off in any channel is an
    outlier as a whole (the residual is the Euclidean norm over channels).

    Args:
        values: (N, C) signals, metres, rows sorted by (vehicle_id, frame) with consecutive frames.
        vehicle_id: (N,) vehicle ids.
        windows: C kernel standard deviations, s, one per channel.
        frame_rate: Hz.
        config: the other smoothing parameters (truncate, degree, robustness).

    Returns:
        fitted: (N, C) smoothed signals, metres.
        weights: (N,) final robustness weights in (0, 1] (small = treated as an outlier).
    """
    config = config or SmoothingConfig()
    values = np.asarray(values, dtype=np.float64)
    ordinal = _ordinal(np.asarray(vehicle_id))
    # Fit relative to each vehicle's first sample: the sums stay small and exact.
    origin = values[np.flatnonzero(_is_first(np.asarray(vehicle_id)))][ordinal]
    relative = values - origin
    windows = np.asarray(windows, dtype=np.float64)

    def fit(weights: np.ndarray) -> np.ndarray:
        fitted = np.empty_like(relative)
        for window in np.unique(windows):
            channels = np.flatnonzero(windows == window)
            fitted[:, channels] = _local_polynomial(relative[:, channels], weights, ordinal, window * frame_rate,
                                                    config.truncate, config.degree)
        return fitted

    weights = np.ones(len(values))
    fitted = fit(weights)
    for _ in range(config.robust_iterations):
        residual = np.sqrt(((relative - fitted) ** 2).sum(axis=1))
        weights = np.minimum(1.0, config.robust_scale / np.maximum(residual, 1e-12))
        fitted = fit(weights)
    return fitted + origin, weights


# --------------------------------------------------------------------------- derivation


def _monotone(x: np.ndarray, vehicle_id: np.ndarray) -> np.ndarray:
    """A non-decreasing version of each vehicle's x (N,) metres: the mean of the running maximum
    from the start and the running minimum from the end. Both are non-decreasing and equal x
    wherever x already increases, and their mean splits any backward wiggle evenly instead of
    shifting the rest of the trajectory."""
    series = pd.Series(x)
    forward = series.groupby(vehicle_id, sort=False).cummax().to_numpy()
    backward = series[::-1].groupby(vehicle_id[::-1], sort=False).cummin().to_numpy()[::-1]
    return 0.5 * (forward + backward)


def _forward_velocity(x: np.ndarray, y: np.ndarray, vehicle_id: np.ndarray, dt: float):
    """Forward-difference velocity (N,), (N,) m/s; the last frame repeats the previous one
    (a single-frame vehicle gets 0)."""
    last = _is_last(vehicle_id)
    vx = np.zeros(len(x))
    vy = np.zeros(len(y))
    vx[:-1] = (x[1:] - x[:-1]) / dt
    vy[:-1] = (y[1:] - y[:-1]) / dt
    vx[last] = 0.0
    vy[last] = 0.0
    repeat = last & ~_is_first(vehicle_id)
    previous = np.flatnonzero(repeat) - 1
    vx[repeat] = vx[previous]
    vy[repeat] = vy[previous]
    return vx, vy


def _turns(heading: np.ndarray, vehicle_id: np.ndarray) -> np.ndarray:
    """Per row, the turn (N,) rad to the next frame's heading, in [-pi, pi); 0 at a vehicle's last frame."""
    turn = np.zeros(len(heading))
    turn[:-1] = _wrap(heading[1:] - heading[:-1])
    turn[_is_last(vehicle_id)] = 0.0
    return turn


def _held_headings(direction: np.ndarray, follows: np.ndarray, step_length: np.ndarray,
                   vehicle_id: np.ndarray) -> np.ndarray:
    """Heading (N,) rad of every row: its own direction of motion where it ``follows`` it, else a held one.

    In a run of held rows between two following rows a and b the heading turns from direction[a] to
    direction[b] in proportion to the distance travelled (``step_length``): at one constant
    curvature, the gentlest turn that gets there, since a heading only turns by curvature x
    distance. A run at the start of a trajectory takes direction[b], one at its end direction[a];
    a vehicle that never moves points along +x.

    Args:
        direction: (N,) rad, direction of motion of each row.
        follows: (N,) bool, rows whose heading is their direction of motion.
        step_length: (N,) m >= 0, distance from each row to the next.
        vehicle_id: (N,) vehicle ids, rows sorted by (vehicle_id, frame).
    """
    first, last = _is_first(vehicle_id), _is_last(vehicle_id)
    held = ~follows
    run_start = held & (first | np.r_[False, follows[:-1]])
    run_end = held & (last | np.r_[follows[1:], False])
    starts, ends = np.flatnonzero(run_start), np.flatnonzero(run_end)
    if len(starts) == 0:
        return direction.copy()
    run = np.maximum(np.cumsum(run_start) - 1, 0)                 # run index of each held row
    before = np.where(first[starts], np.nan, direction[np.maximum(starts - 1, 0)])
    after = np.where(last[ends], np.nan, direction[np.minimum(ends + 1, len(direction) - 1)])
    before = np.where(np.isnan(before), after, before)
    after = np.where(np.isnan(after), before, after)
    before, after = np.nan_to_num(before), np.nan_to_num(after)
    total = _wrap(after - before)
    length = np.where(held, step_length, 0.0)
    done = np.cumsum(length) - length                             # distance before each row (global)
    done = done - done[starts][run]                               # ... within its run
    run_length = np.add.reduceat(length, starts)
    held_heading = before[run] + total[run] * done / np.where(run_length > 0, run_length, 1.0)[run]
    return np.where(follows, direction, held_heading)


def _deferred_offset(residual: np.ndarray, advance: np.ndarray, vehicle_id: np.ndarray,
                     distance: float) -> np.ndarray:
    """The part of a vehicle's motion its heading could not follow, paid back over the next metres.

    ``D_t = sum_{k<t} r_k w(C_t - C_{k+1})``: each residual r_k (a step the unicycle did not take)
    shifts the track until the vehicle has advanced ``distance`` metres more, fading out along the
    smooth step ``w(u) = 1 - 3 (u/L)^2 + 2 (u/L)^3`` (no kink, so no heading jump where the pay-back
    starts or ends). C is the distance advanced so far; only rows that advance move it, so a residual
    is held in full while the vehicle stands. The window sums are differences of per-vehicle prefix
    sums of ``r a^m`` (m = 0..3, a = C_{k+1}), found with one ``searchsorted``: no loop over rows.

    Args:
        residual: (N, 2) m, per row.
        advance: (N,) m >= 0, the distance that counts for the pay-back, per row.
        vehicle_id: (N,) vehicle ids, rows sorted by (vehicle_id, frame).
        distance: m, L.

    Returns:
        (N, 2) m, the offset D of each row from the track (rows sorted as the input).
    """
    group = pd.Series(advance).groupby(vehicle_id, sort=False)
    after = group.cumsum().to_numpy()                            # C_{k+1}
    before = after - advance                                     # C_t
    ordinal = _ordinal(vehicle_id)
    span = float(after.max()) + distance + 1.0 if len(after) else 1.0
    window = np.searchsorted(after + ordinal * span, before + ordinal * span - distance, side="right")
    powers = np.stack([after**m for m in range(4)], axis=1)          # (N, 4)
    terms = residual[:, :, None] * powers[:, None, :]                 # (N, 2, 4)
    flat = pd.DataFrame(terms.reshape(len(residual), 8))
    prefix = flat.groupby(vehicle_id, sort=False).cumsum().to_numpy().reshape(terms.shape) - terms
    sums = prefix - prefix[window]                                   # (N, 2, 4): sum over k in [window, t)
    c, L = before[:, None], distance
    return (sums[..., 0]
            - 3.0 / L**2 * (c**2 * sums[..., 0] - 2 * c * sums[..., 1] + sums[..., 2])
            + 2.0 / L**3 * (c**3 * sums[..., 0] - 3 * c**2 * sums[..., 1] + 3 * c * sums[..., 2] - sums[..., 3]))


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angle in [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def derive_dynamics(x: np.ndarray, y: np.ndarray, vehicle_id: np.ndarray, dt: float,
                    config: SmoothingConfig | None = None) -> dict[str, np.ndarray]:
    """Speed, heading and actions consistent with the ego dynamics, from smoothed positions.

    The ego's kinematic model (SPEC section 2) is a unicycle: it moves along its heading, and its
    heading turns by curvature x distance travelled. Smoothed positions are followed exactly wherever
    that is possible, i.e. wherever the vehicle moves (speed >= ``standing_speed`` at this frame
    and the previous one): there the heading is the direction of motion (forward differences), however
    steep, and the speed its norm. Elsewhere (a vehicle that stands or creeps, whose direction of
    motion is noise) the heading is held, turning at one constant curvature from the last direction
    before the stop to the first after it, and the vehicle moves along it; the sideways part of its creep
    that this drops is paid back over the next ``drift_distance`` metres it drives
    (:func:`_deferred_offset`), so the track never drifts off for good. A turn sharper than
    ``max_turn`` in one frame joins its frame to the held ones (a few passes), so every turn is
    below 90 degrees and has a curvature.

    The positions returned are the integral of speed and heading from the first frame, so the
    actions ``a_t = (s_{t+1} - s_t) / dt`` and ``b_t = tan(theta_{t+1} - theta_t) / (s_t dt)``
    (0 at the last frame), integrated by :func:`integrate_actions`, give them back. They equal the
    input except for the paid-back creep (centimetres). The last frame repeats the previous speed
    and heading. ``followable`` says whether a frame's actions lie within the ego's bounds
    (``ego_acceleration``, ``ego_curvature``): where they do not (a car crawling sideways, a jolt),
    the track is kept and the frame is flagged instead.

    Args:
        x, y: (N,) smoothed positions, metres, rows sorted by (vehicle_id, frame).
        vehicle_id: (N,) vehicle ids.
        dt: s per frame.
        config: :class:`SmoothingConfig` (standing_speed, max_turn, drift_distance, ego bounds).

    Returns:
        dict of (N,) arrays: x, y (m), speed (m/s), heading (rad), acceleration (m/s^2),
        curvature (1/m), followable (bool).
    """
    config = config or SmoothingConfig()
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    vehicle_id = np.asarray(vehicle_id)
    first, last = _is_first(vehicle_id), _is_last(vehicle_id)
    repeat = np.flatnonzero(last & ~first)
    vx, vy = _forward_velocity(x, y, vehicle_id, dt)
    step_speed = np.hypot(vx, vy)
    direction = np.arctan2(vy, vx)
    moving = step_speed >= config.standing_speed
    follows = moving & np.r_[True, moving[:-1]] | (moving & first)
    follows &= ~last

    for _ in range(config.turn_passes):
        heading = _held_headings(direction, follows, step_speed * dt, vehicle_id)
        # Where the heading is held the unicycle moves along it: the rest of the step is deferred.
        residual = np.stack([vx - step_speed * np.cos(heading), vy - step_speed * np.sin(heading)], axis=1) * dt
        residual[follows | last] = 0.0
        offset = _deferred_offset(residual, np.where(follows, step_speed * dt, 0.0), vehicle_id,
                                  config.drift_distance)
        wx, wy = _forward_velocity(x - offset[:, 0], y - offset[:, 1], vehicle_id, dt)
        wx = np.maximum(wx, 0.0)                                       # never backwards
        speed = np.where(follows, np.hypot(wx, wy), step_speed)
        heading = np.where(follows, np.arctan2(wy, wx), heading)
        speed[repeat], heading[repeat] = speed[repeat - 1], heading[repeat - 1]
        turn = _turns(heading, vehicle_id)
        sharp = np.flatnonzero(np.abs(turn) > config.max_turn)
        if len(sharp) == 0:
            break
        # the first following row after each sharp turn joins the held rows (a turn is never at a
        # vehicle's last row, so sharp + 1 is the same vehicle)
        candidate = np.where(follows, np.arange(len(x)), len(x))
        next_follows = np.minimum.accumulate(candidate[::-1])[::-1]
        target = next_follows[sharp + 1]
        keep = target < len(x)
        keep[keep] = vehicle_id[target[keep]] == vehicle_id[sharp[keep]]
        follows[target[keep]] = False
    turn = np.clip(_turns(heading, vehicle_id), -0.5 * np.pi + 1e-6, 0.5 * np.pi - 1e-6)

    # Positions: exclusive per-vehicle cumulative sum of the steps, from the first frame.
    first_index = np.flatnonzero(first)[_ordinal(vehicle_id)]
    step_x = speed * np.cos(heading) * dt
    step_y = speed * np.sin(heading) * dt
    csum_x = pd.Series(step_x).groupby(vehicle_id, sort=False).cumsum().to_numpy() - step_x
    csum_y = pd.Series(step_y).groupby(vehicle_id, sort=False).cumsum().to_numpy() - step_y

    acceleration = np.zeros(len(x))
    acceleration[:-1] = (speed[1:] - speed[:-1]) / dt
    acceleration[last] = 0.0
    curvature = np.zeros(len(x))
    turning = (turn != 0) & (speed > 0)
    curvature[turning] = np.tan(turn[turning]) / (speed[turning] * dt)
    followable = followable_actions(acceleration, curvature, config)
    return {
        "x": x[first_index] + csum_x,
        "y": y[first_index] + csum_y,
        "speed": speed,
        "heading": heading,
        "acceleration": acceleration,
        "curvature": curvature,
        "followable": followable,
    }


def followable_actions(acceleration: np.ndarray, curvature: np.ndarray,
                       config: SmoothingConfig | None = None) -> np.ndarray:
    """(N,) bool: the actions (acceleration m/s^2, curvature 1/m, each (N,)) lie within the ego's
    bounds (``config.ego_acceleration``, ``config.ego_curvature``), up to float rounding."""
    config = config or SmoothingConfig()
    low, high = config.ego_acceleration
    tolerance = 1e-9
    acceleration, curvature = np.asarray(acceleration), np.asarray(curvature)
    return ((acceleration >= low - tolerance) & (acceleration <= high + tolerance)
            & (np.abs(curvature) <= config.ego_curvature + tolerance))


def smooth_table(raw: pd.DataFrame, frame_rate: float = 10.0, config: SmoothingConfig | None = None) -> pd.DataFrame:
    """Smooth positions per vehicle and derive speed, heading, and the ego actions (acceleration, curvature).

    Args:
        raw: raw canonical table (:mod:`ppuu.data.schema`): N rows sorted by (vehicle_id, frame), each
            vehicle's frames consecutive.
        frame_rate: Hz (dt = 1 / frame_rate s).
        config: smoothing parameters (:class:`SmoothingConfig`).

    Returns:
        The smoothed canonical table: the raw columns with x, y smoothed (m), plus x_raw, y_raw (m),
        speed (m/s), heading (rad), acceleration (m/s^2), curvature (1/m) and followable (bool) per
        row, and the optional columns of the raw table (:data:`ppuu.data.schema.OPTIONAL_COLUMNS`)
        unchanged. Integrating the actions from a vehicle's first state with
        :func:`integrate_actions` gives back its smoothed x, y, heading and speed (up to float
        rounding).

    Raises:
        data.errors.DataFormatError: the table breaks the canonical invariants.
    """
    config = config or SmoothingConfig()
    if not frame_rate > 0:
        raise ValueError(f"frame_rate {frame_rate} Hz: expected > 0")
    if len(raw) == 0:
        out = raw.copy()
        for column, dtype in DERIVED_COLUMNS.items():
            out[column] = pd.Series(dtype=dtype)
        return out
    validate_table(raw, source="<raw table>")
    vehicle_id = raw["vehicle_id"].to_numpy()
    positions = raw[["x", "y"]].to_numpy(dtype=np.float64)
    fitted, _ = robust_smooth(positions, vehicle_id, (config.window, config.lateral_window), frame_rate, config)
    x = _monotone(fitted[:, 0], vehicle_id)
    derived = derive_dynamics(x, fitted[:, 1], vehicle_id, 1.0 / frame_rate, config)

    optional = [c for c in OPTIONAL_COLUMNS if c in raw.columns]
    out = raw[list(RAW_COLUMNS)].copy()
    out["x"] = derived["x"]
    out["y"] = derived["y"]
    out["x_raw"] = positions[:, 0]
    out["y_raw"] = positions[:, 1]
    for column in ("speed", "heading", "acceleration", "curvature", "followable"):
        out[column] = derived[column]
    for column in optional:
        out[column] = raw[column].to_numpy()
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- dynamics


def integrate_actions(x0, y0, heading0, speed0, acceleration, curvature, dt: float):
    """Roll the ego dynamics (SPEC section 2) forward from an initial state, batched over vehicles.

    ``p_{t+1} = p_t + s_t h_t dt``; ``h_{t+1} = normalise(h_t + n_t b_t s_t dt)`` (n_t the left
    normal of the unit heading h_t); ``s_{t+1} = s_t + a_t dt``.

    Works on numpy arrays or torch tensors (differentiable; the device of the inputs is kept).

    Args:
        x0, y0: (V,) initial position, metres.
        heading0: (V,) initial heading, radians counter-clockwise from +x.
        speed0: (V,) initial speed, m/s.
        acceleration: (V, T) action a, m/s^2 (the last column is not used).
        curvature: (V, T) action b, 1/m (the last column is not used).
        dt: s per step.

    Returns:
        x, y (m), heading (rad, in (-pi, pi]), speed (m/s): each (V, T), column 0 the initial state.
    """
    ops = _array_ops(acceleration)
    steps = acceleration.shape[1]
    hx, hy = ops.cos(heading0), ops.sin(heading0)
    x, y, s = x0, y0, speed0
    xs, ys, hxs, hys, ss = [x], [y], [hx], [hy], [s]
    for t in range(steps - 1):
        a, b = acceleration[:, t], curvature[:, t]
        x = x + s * hx * dt
        y = y + s * hy * dt
        turn = b * s * dt
        hx, hy = hx - hy * turn, hy + hx * turn
        norm = ops.sqrt(hx * hx + hy * hy)
        hx, hy = hx / norm, hy / norm
        s = s + a * dt
        xs.append(x), ys.append(y), hxs.append(hx), hys.append(hy), ss.append(s)
    heading = ops.atan2(ops.stack(hys), ops.stack(hxs))
    return ops.stack(xs).T, ops.stack(ys).T, heading.T, ops.stack(ss).T


def _array_ops(example) -> SimpleNamespace:
    """numpy's cos, sin, sqrt, atan2 and stack, or torch's when ``example`` is a torch tensor."""
    if type(example).__module__.startswith("torch"):
        import torch

        return SimpleNamespace(cos=torch.cos, sin=torch.sin, sqrt=torch.sqrt, atan2=torch.atan2, stack=torch.stack)
    return SimpleNamespace(cos=np.cos, sin=np.sin, sqrt=np.sqrt, atan2=np.arctan2, stack=np.stack)
