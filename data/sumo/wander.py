"""Lane-keeping wander: the slow weave of a driver about the centre of the lane.

Why: between lane changes SUMO keeps every vehicle exactly on its lane's centre line, so the
recorded drivers of a generated scene hold the wheel perfectly still (curvature 0 in 95 % of the
moving frames of the default scene; the rest are lane changes). A world model trained on them
never sees what a small steering input does, and a policy that learns to steer through such a
model drifts across the lanes where the model predicts it stays put. Human drivers weave: the
standard deviation of lateral position (SDLP) of an attentive driver on a highway is about
0.2 m in driving studies, with the weave's period in seconds.

Each vehicle's offset from where SUMO put it is a function of its distance along the road,
``sum_j a_j sin(2 pi x / lambda_j + phi_j)`` with a few wavelengths lambda_j of tens to hundreds of
metres: a standing vehicle does not move sideways, and the heading turns by curvature x distance
as the ego car's does (the curvature of a term is ``-(2 pi / lambda_j)^2`` x its offset, so the
recorded steering leans back towards the lane centre: lane keeping the data can teach). The
offset is squashed smoothly (``tanh``) into the room the vehicle has inside its lane, and faded
out over ``fade`` metres around every lateral manoeuvre (lane changes, merges: SUMO's path, as
re-timed by :mod:`ppuu.data.sumo.lateral`, is kept there). A vehicle whose weave would make it
touch another vehicle or leave the road where its unweaved track does not keeps its unweaved
track (checked as the simulator sees the footprints, until nothing new goes wrong).

Vectorised over rows: no loop over vehicles or frames (only over the few checking passes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ppuu.data.quality import overlapping_pairs
from ppuu.data.sites import Site
from ppuu.data.sumo.lateral import LATERAL_EPS, motion_heading, off_road

DEFAULT_WAVELENGTHS = (60.0, 250.0)
"""m, the range of the weave's wavelengths (drawn log-uniform): 6-25 s at 10 m/s."""


def lane_wander_offsets(vehicle_id: np.ndarray, x: np.ndarray, room: np.ndarray, rng: np.random.Generator,
                        sdlp: float, wavelengths: tuple[float, float] = DEFAULT_WAVELENGTHS,
                        terms: int = 3) -> np.ndarray:
    """(N,) m, each row's lateral weave before fading: a sum of ``terms`` sinusoids of x per vehicle.

    Args:
        vehicle_id: (N,) int, the rows' vehicles (any order).
        x: (N,) m along the road.
        room: (N,) m >= 0, how far the vehicle may move sideways either way (the weave is squashed
            into it with ``room * tanh(offset / room)``).
        rng: draws each vehicle's wavelengths, phases and amplitudes.
        sdlp: m, the standard deviation of the unsquashed weave of every vehicle.
        wavelengths: (min, max) m, the range of the log-uniform wavelengths.
        terms: sinusoids per vehicle.
    """
    low, high = wavelengths
    if not 0 < low <= high:
        raise ValueError(f"wavelengths={wavelengths!r} m; expected 0 < min <= max")
    if sdlp < 0 or terms < 1:
        raise ValueError(f"sdlp={sdlp!r} m, terms={terms!r}; expected sdlp >= 0 and terms >= 1")
    ids, inverse = np.unique(vehicle_id, return_inverse=True)
    shape = (len(ids), terms)
    wavelength = np.exp(rng.uniform(np.log(low), np.log(high), shape))
    phase = rng.uniform(0.0, 2 * np.pi, shape)
    amplitude = rng.uniform(0.5, 1.0, shape)
    # a sum of sinusoids with random phases has variance sum(a^2) / 2
    amplitude *= sdlp * np.sqrt(2.0 / (amplitude ** 2).sum(axis=1, keepdims=True))
    weave = (amplitude[inverse] * np.sin(2 * np.pi * x[:, None] / wavelength[inverse] + phase[inverse])).sum(axis=1)
    room = np.asarray(room, dtype=np.float64)
    safe_room = np.maximum(room, 1e-9)
    return np.where(room > 0, safe_room * np.tanh(weave / safe_room), 0.0)


def manoeuvre_fade(vehicle_id: np.ndarray, x: np.ndarray, y: np.ndarray, fade: float) -> np.ndarray:
    """(N,) in [0, 1]: 0 at the rows of a lateral manoeuvre (y changes from or to the next frame),
    rising smoothly to 1 at ``fade`` m along the road from the nearest one of the same vehicle.

    Rows sorted by (vehicle_id, frame) with consecutive frames.
    """
    same_next = np.r_[vehicle_id[1:] == vehicle_id[:-1], False]
    moves = same_next & (np.abs(np.diff(y, append=y[-1:])) > LATERAL_EPS)
    manoeuvre = moves | np.r_[False, moves[:-1]]
    if not manoeuvre.any() or fade <= 0:
        return np.where(manoeuvre, 0.0, 1.0)
    # one sorted axis for all vehicles: the vehicles' stretches of road laid end to end, far apart
    span = float(np.ptp(x)) + 2 * fade + 1.0
    _, index = np.unique(vehicle_id, return_inverse=True)
    key = index * span + (x - x.min())
    marks = np.sort(key[manoeuvre])
    at = np.searchsorted(marks, key)
    before = marks[np.clip(at - 1, 0, len(marks) - 1)]
    after = marks[np.clip(at, 0, len(marks) - 1)]
    distance = np.minimum(np.abs(key - before), np.abs(after - key))   # > fade across vehicles: span is wide
    u = np.clip(distance / fade, 0.0, 1.0)
    return np.where(manoeuvre, 0.0, u * u * (3 - 2 * u))


def add_lane_wander(table: pd.DataFrame, site: Site, sdlp: float, rng: np.random.Generator,
                    wavelengths: tuple[float, float] = DEFAULT_WAVELENGTHS, margin: float = 0.2,
                    fade: float = 30.0, max_passes: int = 6) -> tuple[pd.DataFrame, dict]:
    """A raw table with every vehicle weaving about its track (``y`` and nothing else changed).

    Args:
        table: raw canonical table (vehicle_id, frame, x, y, length, width, lane), rows sorted by
            (vehicle_id, frame), consecutive frames, as :func:`ppuu.data.sumo.lateral.retime_lateral_motion`
            returns it.
        site: the road: lane widths, and the drivable area checked.
        sdlp: m, the standard deviation of each vehicle's weave before squashing (0: the table as is).
        rng: draws the weaves.
        wavelengths: (min, max) m of the weave's sinusoids.
        margin: m, the least gap kept between a footprint and its lane's lines.
        fade: m along the road over which the weave fades out towards a lateral manoeuvre.
        max_passes: checks for new overlaps and exits from the road; the vehicles found by the last
            one keep their track without a further check (two passes sufficed on the I-80 scenes).

    Returns:
        ``(table, info)``: info holds the settings, ``sdlp_m`` measured over the moving rows, the
        vehicles that weave and those that keep their track, and the passes.
    """
    if len(table) == 0 or sdlp == 0:
        return table, {"sdlp_target_m": float(sdlp), "vehicles_weaving": 0}
    vid = table["vehicle_id"].to_numpy()
    x = table["x"].to_numpy(dtype=np.float64)
    y = table["y"].to_numpy(dtype=np.float64)
    length = table["length"].to_numpy(dtype=np.float64)
    width = table["width"].to_numpy(dtype=np.float64)
    lane_width = float(np.min(site.lane_widths))
    room = np.maximum((lane_width - width) / 2 - margin, 0.0)
    offset = lane_wander_offsets(vid, x, room, rng, sdlp, wavelengths) * manoeuvre_fade(vid, x, y, fade)
    n_ids = int(vid.max()) + 1
    n_frames = int(table["frame"].max()) + 1

    def problems(y_now: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The overlaps as (M, 2) vehicle pairs and (M,) int keys of (a, b, frame), and the (N,) rows off the road."""
        heading = motion_heading(vid, x, y_now)
        found = overlapping_pairs(table.assign(y=y_now, heading=heading))
        pairs = found[["a", "b"]].to_numpy(dtype=np.int64).reshape(-1, 2)
        keys = (pairs[:, 0] * n_ids + pairs[:, 1]) * n_frames + found["frame"].to_numpy(dtype=np.int64)
        return pairs, keys, off_road(site, x, y_now, heading, length, width)

    _, base_keys, base_off = problems(y)
    steady = np.zeros(len(vid), dtype=bool)     # rows of vehicles that keep their track
    passes = 0
    for passes in range(1, max_passes + 1):
        y_new = np.where(steady, y, y + offset)
        pairs, keys, off = problems(y_new)
        culprits = np.r_[pairs[~np.isin(keys, base_keys)].ravel(), vid[off & ~base_off]]
        new = np.isin(vid, culprits) & ~steady
        if not new.any():
            break
        steady |= new
    else:
        y_new = np.where(steady, y, y + offset)
    moving = np.r_[np.abs(np.diff(x)) > 1e-3, False] & np.r_[vid[1:] == vid[:-1], False]
    weave = (y_new - y)[moving & ~steady]
    info = {
        "sdlp_target_m": float(sdlp),
        "sdlp_m": round(float(weave.std()) if len(weave) else 0.0, 4),
        "wavelengths_m": [float(w) for w in wavelengths],
        "margin_m": float(margin),
        "fade_m": float(fade),
        "vehicles_weaving": int(len(np.unique(vid[~steady]))),
        "vehicles_kept_on_track": int(len(np.unique(vid[steady]))),
        "passes": passes,
    }
    return table.assign(y=y_new), info
