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

Then the physical constraints: x never decreases along a trajectory (highway
vehicles do not reverse), and a vehicle that (almost) stands has no defined
heading, so the heading is held and the curvature is 0 there.

Vectorised over all vehicles: the trajectories are laid end to end in one long
array with zero-weight gaps as wide as the kernel between them, so the
weighted moment sums of the local fits are a handful of ``np.convolve`` calls;
per-vehicle scans (cumulative max, forward fill) are pandas group-by scans.
No Python loop runs over vehicles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ppuu.data.schema import DERIVED_COLUMNS, RAW_COLUMNS, validate_table


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
        standing_speed: m/s, below this speed the heading is undefined: it is held from the
            previous frame and the curvature action is 0.
        max_heading: rad, bound on |heading| relative to the road axis (highway traffic stays
            within about 0.2). Keeping it below pi/4 keeps every per-frame turn below 90 deg, so the
            curvature action ``tan(turn) / (s dt)`` exists; only garbage tracks (a few frames of
            pure noise) reach it.
        max_speed: m/s, physical bound on the derived speed (NGSIM freeways are posted at 65 mph,
            29 m/s). Only tracks too short to smooth (2 frames of noise) reach it; the positions
            are re-integrated from the clipped speed, and such tracks are flagged by
            :mod:`ppuu.data.quality` anyway.
    """

    window: float = 1.5
    lateral_window: float = 1.0
    truncate: float = 3.0
    degree: int = 2
    robust_iterations: int = 2
    robust_scale: float = 0.5
    standing_speed: float = 0.2
    max_heading: float = 0.7
    max_speed: float = 35.0

    def __post_init__(self):
        if not (self.window > 0 and self.lateral_window > 0 and self.truncate > 0):
            raise ValueError(f"window ({self.window} s), lateral_window ({self.lateral_window} s) and "
                             f"truncate ({self.truncate}) must be > 0")
        if self.degree not in (0, 1, 2):
            raise ValueError(f"degree {self.degree}: expected 0, 1 or 2")
        if self.robust_iterations < 0 or not self.robust_scale > 0:
            raise ValueError("robust_iterations must be >= 0 and robust_scale > 0")
        if self.standing_speed < 0:
            raise ValueError(f"standing_speed {self.standing_speed} m/s: expected >= 0")
        if not self.max_speed > 0:
            raise ValueError(f"max_speed {self.max_speed} m/s: expected > 0")
        if not 0 < self.max_heading < math.pi / 4:
            raise ValueError(f"max_heading {self.max_heading} rad: expected within (0, pi/4)")


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


def _held_heading(vx: np.ndarray, vy: np.ndarray, vehicle_id: np.ndarray, standing_speed: float) -> np.ndarray:
    """Heading (N,) radians: the velocity direction while moving, held while (almost) standing.

    A frame's own direction is used only if the vehicle moves (speed >= standing_speed) at that
    frame and the previous one, since the heading can only turn while moving (curvature b = 0 at
    standstill). Otherwise the previous heading is held; frames before the first moving one take
    its heading; a vehicle that never moves points along +x.
    """
    speed = np.hypot(vx, vy)
    moving = speed >= standing_speed
    valid = moving.copy()
    valid[1:] &= moving[:-1] | _is_first(vehicle_id)[1:]
    angle = np.where(valid, np.arctan2(vy, vx), np.nan)
    held = pd.Series(angle).groupby(vehicle_id, sort=False).ffill()
    held = held.groupby(vehicle_id, sort=False).bfill()
    return held.fillna(0.0).to_numpy(dtype=np.float64, copy=True)


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angle in [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def derive_dynamics(x: np.ndarray, y: np.ndarray, vehicle_id: np.ndarray, dt: float,
                    standing_speed: float = 0.2, max_heading: float = 0.7,
                    max_speed: float = 35.0) -> dict[str, np.ndarray]:
    """Speed, heading and actions consistent with the ego dynamics, from smoothed positions.

    Velocity by forward differences, speed = its norm, heading = its direction (held while
    standing, see :func:`_held_heading`, and clipped to ``+-max_heading``); the last frame
    repeats the previous speed and heading. The positions are then re-integrated from the first
    frame with ``p += speed * heading * dt``, so they equal the input except where the heading
    was held (the few-centimetre sideways creep of a standing vehicle is dropped) or clipped. Actions:
    ``a_t = (s_{t+1} - s_t) / dt`` and ``b_t = tan(theta_{t+1} - theta_t) / (s_t dt)``
    (0 at the last frame and wherever the heading is held).

    Args:
        x, y: (N,) smoothed positions, metres, rows sorted by (vehicle_id, frame).
        vehicle_id: (N,) vehicle ids.
        dt: s per frame.
        standing_speed: m/s, see :class:`SmoothingConfig`.
        max_heading: rad, see :class:`SmoothingConfig`.
        max_speed: m/s, see :class:`SmoothingConfig`.

    Returns:
        dict of (N,) arrays: x, y (m), speed (m/s), heading (rad), acceleration (m/s^2),
        curvature (1/m).
    """
    vx, vy = _forward_velocity(x, y, vehicle_id, dt)
    speed = np.minimum(np.hypot(vx, vy), max_speed)
    heading = np.clip(_held_heading(vx, vy, vehicle_id, standing_speed), -max_heading, max_heading)
    last = _is_last(vehicle_id)
    repeat = last & ~_is_first(vehicle_id)
    heading[repeat] = heading[np.flatnonzero(repeat) - 1]

    # Positions: exclusive per-vehicle cumulative sum of the steps, from the first frame.
    first_index = np.flatnonzero(_is_first(vehicle_id))[_ordinal(vehicle_id)]
    step_x = speed * np.cos(heading) * dt
    step_y = speed * np.sin(heading) * dt
    csum_x = pd.Series(step_x).groupby(vehicle_id, sort=False).cumsum().to_numpy() - step_x
    csum_y = pd.Series(step_y).groupby(vehicle_id, sort=False).cumsum().to_numpy() - step_y

    acceleration = np.zeros(len(x))
    curvature = np.zeros(len(x))
    acceleration[:-1] = (speed[1:] - speed[:-1]) / dt
    turn = np.zeros(len(x))
    turn[:-1] = _wrap(heading[1:] - heading[:-1])
    turning = (~last) & (speed >= standing_speed) & (speed > 0)
    curvature[turning] = np.tan(turn[turning]) / (speed[turning] * dt)
    acceleration[last] = 0.0
    curvature[last] = 0.0
    return {
        "x": x[first_index] + csum_x,
        "y": y[first_index] + csum_y,
        "speed": speed,
        "heading": heading,
        "acceleration": acceleration,
        "curvature": curvature,
    }


def smooth_table(raw: pd.DataFrame, frame_rate: float = 10.0, config: SmoothingConfig | None = None) -> pd.DataFrame:
    """Smooth positions per vehicle and derive speed, heading, and the ego actions (acceleration, curvature).

    Args:
        raw: raw canonical table (:mod:`ppuu.data.schema`): N rows sorted by (vehicle_id, frame), each
            vehicle's frames consecutive.
        frame_rate: Hz (dt = 1 / frame_rate s).
        config: smoothing parameters (:class:`SmoothingConfig`).

    Returns:
        The smoothed canonical table: the raw columns with x, y smoothed (m), plus x_raw, y_raw (m),
        speed (m/s), heading (rad), acceleration (m/s^2) and curvature (1/m) per row. Integrating
        the actions from a vehicle's first state with :func:`integrate_actions` gives back its
        smoothed x, y, heading and speed (up to float rounding).

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
    derived = derive_dynamics(x, fitted[:, 1], vehicle_id, 1.0 / frame_rate, config.standing_speed,
                              config.max_heading, config.max_speed)

    out = raw[list(RAW_COLUMNS)].copy()
    out["x"] = derived["x"]
    out["y"] = derived["y"]
    out["x_raw"] = positions[:, 0]
    out["y_raw"] = positions[:, 1]
    for column in ("speed", "heading", "acceleration", "curvature"):
        out[column] = derived[column]
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
