"""The canonical trajectory table: one row per (vehicle, frame), SI units, world frame.

Every reader (NGSIM raw text, NGSIM combined CSV, SUMO floating-car data) ends
in this table, and everything downstream (smoothing, splits, the simulator)
reads only this table.

World frame (DESIGN.md): x along the road in the direction of travel, y to the
left, metres; heading counter-clockwise from +x, radians.

* ``x`` is measured from the entry edge of the observed section (NGSIM Local_Y).
* ``y`` is measured from the left edge of the section (NGSIM Local_X = 0), so the
  road lies at negative y: lane k of width w has its centre at ``-(k - 0.5) w``.
* Reference point: the **centre of the vehicle's footprint** (NGSIM records the
  front centre). Readers convert front to centre by moving half a length back
  along the road axis; the heading of highway traffic stays within a few degrees
  of the axis, so the error of ignoring it is below ``L/2 * (1 - cos 5 deg) < 1 cm``.

Columns of a *raw* table (straight from a reader):

========== ======= =====================================================
column     dtype   meaning
========== ======= =====================================================
vehicle_id int64   id, unique within a scene
frame      int64   frame number; time = frame / frame_rate seconds
x          float64 centre, metres along the road
y          float64 centre, metres to the left (negative on the road)
length     float64 metres (> 0), constant per vehicle
width      float64 metres (> 0), constant per vehicle
vclass     int8    1 motorcycle, 2 car, 3 truck (NGSIM v_Class)
lane       int16   NGSIM Lane_ID convention: 1 = leftmost lane
========== ======= =====================================================

A raw table may also carry, when its source records it:

============== ======= =================================================
column         dtype   meaning
============== ======= =================================================
speed_recorded float64 the speed the source recorded (NGSIM v_Vel), m/s;
                       NaN where it has none. Never used as the speed
                       (that comes from the positions); only checked
                       against them (:mod:`ppuu.data.quality`).
============== ======= =================================================

A *smoothed* table (:func:`ppuu.data.smoothing.smooth_table`) adds, per row:

============ ======= ===================================================
column       dtype   meaning
============ ======= ===================================================
x_raw, y_raw float64 the positions before smoothing (metres)
speed        float64 m/s, >= 0
heading      float64 radians, counter-clockwise from +x
acceleration float64 action a at this frame (m/s^2): frame -> frame + 1
curvature    float64 action b at this frame (1/m): frame -> frame + 1
followable   bool    the ego car can take this frame's actions: both lie
                     within its bounds (acceleration -8..4 m/s^2,
                     |curvature| <= 0.2 1/m). Where not (a car crawling
                     sideways, a jolt), the track is kept as recorded
                     and the frame is flagged here, never bent.
============ ======= ===================================================

Rows are sorted by (vehicle_id, frame) and each vehicle's frames are
consecutive (no gaps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ppuu.data.errors import DataFormatError

FEET = 0.3048
"""Metres per international foot (NGSIM lengths are in feet)."""

RAW_COLUMNS: dict[str, str] = {
    "vehicle_id": "int64",
    "frame": "int64",
    "x": "float64",
    "y": "float64",
    "length": "float64",
    "width": "float64",
    "vclass": "int8",
    "lane": "int16",
}

DERIVED_COLUMNS: dict[str, str] = {
    "x_raw": "float64",
    "y_raw": "float64",
    "speed": "float64",
    "heading": "float64",
    "acceleration": "float64",
    "curvature": "float64",
    "followable": "bool",
}

OPTIONAL_COLUMNS: dict[str, str] = {
    "speed_recorded": "float64",
}

VEHICLE_CLASSES = {1: "motorcycle", 2: "car", 3: "truck"}


def empty_raw_table() -> pd.DataFrame:
    """A raw table with no rows and the canonical dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in RAW_COLUMNS.items()})


def as_raw_table(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Build a raw table from arrays keyed by :data:`RAW_COLUMNS`, cast, sorted by (vehicle, frame)."""
    df = pd.DataFrame({c: np.asarray(columns[c]).astype(t, copy=False) for c, t in RAW_COLUMNS.items()})
    return df.sort_values(["vehicle_id", "frame"], kind="stable").reset_index(drop=True)


def validate_table(df: pd.DataFrame, source: str = "<table>", derived: bool = False) -> None:
    """Check the invariants of the canonical table; raise :class:`DataFormatError` naming the row.

    Args:
        df: raw or smoothed table.
        source: name used in error messages (a file path, usually).
        derived: also require the columns of a smoothed table.
    """
    required = dict(RAW_COLUMNS)
    if derived:
        required.update(DERIVED_COLUMNS)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(f"missing columns {missing}; expected {list(required)}", path=source)
    if len(df) == 0:
        raise DataFormatError("no rows; expected at least one vehicle trajectory", path=source)
    for col in required:
        values = df[col].to_numpy()
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataFormatError(f"non-finite value {values[row]!r}; expected a finite number",
                                      path=source, line=row + 1, field=col)
    for col in ("length", "width"):
        values = df[col].to_numpy()
        bad = values <= 0
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataFormatError(f"size {values[row]!r} m; expected > 0", path=source, line=row + 1, field=col)
    vid = df["vehicle_id"].to_numpy()
    frame = df["frame"].to_numpy()
    same = vid[1:] == vid[:-1]
    step = frame[1:] - frame[:-1]
    order = (vid[1:] < vid[:-1]) | (same & (step <= 0))
    if order.any():
        row = int(np.flatnonzero(order)[0]) + 1
        what = "duplicate (vehicle, frame)" if step[row - 1] == 0 and same[row - 1] else "rows out of order"
        raise DataFormatError(f"{what} at vehicle {vid[row]} frame {frame[row]}; expected rows sorted by "
                              "(vehicle_id, frame) without repeats", path=source, line=row + 1, field="frame")
    gaps = same & (step != 1)
    if gaps.any():
        row = int(np.flatnonzero(gaps)[0]) + 1
        raise DataFormatError(f"vehicle {vid[row]} jumps from frame {frame[row - 1]} to {frame[row]}; "
                              "expected consecutive frames", path=source, line=row + 1, field="frame")


def vehicle_starts(vehicle_id: np.ndarray) -> np.ndarray:
    """Row index where each vehicle's block starts, for a table sorted by vehicle: (V,) int64."""
    vehicle_id = np.asarray(vehicle_id)
    if len(vehicle_id) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.flatnonzero(vehicle_id[1:] != vehicle_id[:-1]) + 1]).astype(np.int64)
