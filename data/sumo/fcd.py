"""SUMO floating-car data (FCD) -> the canonical raw table of :mod:`ppuu.data.schema`.

Why Parquet: SUMO (>= 1.20, built with Parquet support as the eclipse-sumo
wheels are) writes FCD straight to a columnar file when the output name ends in
``.parquet``; pyarrow reads its string columns dictionary-encoded. Measured on
390,000 samples of I-80 (SUMO 1.28, 2 cores): Parquet 0.09 s, CSV 0.16 s,
``xml.etree.ElementTree.iterparse`` over the XML 2.5 s, with SUMO's own run
equally fast for all three; a 15-minute scene (about 1.8 M samples) reads and
converts in about 1 s. CSV (``.csv``) and XML are read too, for SUMO builds
without Parquet.

What the conversion does (vectorised, no Python loop over samples or vehicles):

* time -> frame number, frame 0 at ``t0`` (the end of the warm-up), 10 Hz;
* SUMO's reference point, the *front* bumper centre, -> the footprint centre by
  moving half a length back along the road axis (+x), the convention of
  :mod:`ppuu.data.schema`. Not along SUMO's ``angle``: with ``--lanechange.duration``
  SUMO moves a vehicle sideways at a fixed rate whatever its speed, so in a crawling
  queue its angle reaches tens of degrees and jumps where lanes are renumbered at a
  node; ``L/2 * sin(angle)`` then throws the centre sideways by up to a metre in one
  frame, while the front itself moves smoothly;
* SUMO lane ids -> NGSIM Lane_IDs through the map of :func:`ppuu.data.sumo.network.lane_map`;
* sizes and NGSIM class from the vehicle's vType;
* keep samples whose centre lies in the observed section, and per vehicle only its
  longest run of consecutive frames there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ppuu.data.schema import as_raw_table

FCD_ATTRIBUTES = ("id", "type", "x", "y", "lane")
"""The FCD attributes we ask SUMO for (``--fcd-output.attributes``); time is always written."""


def _column(names: list[str], attr: str) -> str:
    """Find the column of ``attr`` in a SUMO tabular output (headers like ``vehicle_x`` or ``x``)."""
    for name in names:
        if name == attr or name.endswith("_" + attr):
            return name
    raise ValueError(f"FCD file has no column for {attr!r}; columns: {names}")


def read_fcd(path: Path) -> dict[str, np.ndarray]:
    """Read a SUMO FCD file (``.parquet``, ``.csv`` or ``.xml``) into arrays.

    Returns:
        dict with ``time`` (N,) float64 s; ``x``, ``y`` (N,) float64 m (front bumper centre);
        and for each of ``id``, ``type``,
        ``lane`` a pair ``<name>_codes`` (N,) int32 and ``<name>_values`` (K,) object array of
        strings, so that the string of sample i is ``values[codes[i]]``.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        cols = {a: _column(names, a) for a in ("time",) + FCD_ATTRIBUTES}
        table = pq.read_table(path, columns=list(cols.values()),
                              read_dictionary=[cols["id"], cols["type"], cols["lane"]])
        # a time step without vehicles is written as one row of nulls: drop such rows
        if table.column(cols["id"]).null_count:
            table = table.filter(table.column(cols["id"]).is_valid())
        out: dict[str, np.ndarray] = {}
        for attr in ("time", "x", "y"):
            out[attr] = table.column(cols[attr]).to_numpy().astype(np.float64, copy=False)
        for attr in ("id", "type", "lane"):
            chunked = table.column(cols[attr]).unify_dictionaries()
            if chunked.num_chunks == 0:
                out[attr + "_codes"] = np.zeros(0, dtype=np.int32)
                out[attr + "_values"] = np.zeros(0, dtype=object)
                continue
            dictionary = chunked.chunk(0).dictionary
            codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunked.chunks])
            out[attr + "_codes"] = codes.astype(np.int32, copy=False)
            out[attr + "_values"] = np.asarray(dictionary.to_pylist(), dtype=object)
        return out
    if path.suffix == ".csv":
        df = pd.read_csv(path, sep=";")
    elif path.suffix == ".xml":
        df = _read_fcd_xml(path)
    else:
        raise ValueError(f"{path}: unknown FCD format (expected .parquet, .csv or .xml)")
    names = list(df.columns)
    df = df.dropna(subset=[_column(names, "id")])
    out = {attr: df[_column(names, attr)].to_numpy(dtype=np.float64) for attr in ("time", "x", "y")}
    for attr in ("id", "type", "lane"):
        codes, values = pd.factorize(df[_column(names, attr)].astype(str))
        out[attr + "_codes"] = codes.astype(np.int32)
        out[attr + "_values"] = np.asarray(values, dtype=object)
    return out


def _read_fcd_xml(path: Path) -> pd.DataFrame:
    """Slow path for SUMO builds without tabular output: iterparse the FCD XML."""
    import xml.etree.ElementTree as ET

    rows: dict[str, list] = {k: [] for k in ("time",) + FCD_ATTRIBUTES}
    time = 0.0
    for event, el in ET.iterparse(path, events=("start", "end")):
        if event == "start" and el.tag == "timestep":
            time = float(el.get("time"))
        elif event == "end" and el.tag == "vehicle":
            rows["time"].append(time)
            for attr in FCD_ATTRIBUTES:
                rows[attr].append(el.get(attr))
            el.clear()
        elif event == "end" and el.tag == "timestep":
            el.clear()
    df = pd.DataFrame(rows).dropna(subset=["id"])
    for attr in ("x", "y"):
        df[attr] = df[attr].astype(np.float64)
    return df


def longest_runs(vehicle: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Mask of the rows in each vehicle's longest run of consecutive frames.

    Args:
        vehicle: (N,) int, rows sorted by (vehicle, frame), frames unique per vehicle.
        frame: (N,) int.

    Returns:
        (N,) bool; ties go to the earliest run.
    """
    n = len(vehicle)
    if n == 0:
        return np.zeros(0, dtype=bool)
    brk = np.ones(n, dtype=bool)
    brk[1:] = (vehicle[1:] != vehicle[:-1]) | (frame[1:] != frame[:-1] + 1)
    run_id = np.cumsum(brk) - 1
    run_len = np.bincount(run_id)
    run_vehicle = vehicle[brk]
    # best run per vehicle: sort runs by (vehicle, -length, start), take the first of each vehicle
    order = np.lexsort((np.arange(len(run_len)), -run_len, run_vehicle))
    first = np.ones(len(order), dtype=bool)
    first[1:] = run_vehicle[order][1:] != run_vehicle[order][:-1]
    keep_run = np.zeros(len(run_len), dtype=bool)
    keep_run[order[first]] = True
    return keep_run[run_id]


def fcd_to_raw_table(fcd: dict[str, np.ndarray], t0: float, n_frames: int, section_length: float,
                     lane_ids: dict[str, int], type_sizes: dict[str, tuple[float, float, int]],
                     frame_rate: float = 10.0, x0: float = 0.0, y0: float = 0.0) -> pd.DataFrame:
    """Convert FCD arrays (:func:`read_fcd`) to a raw canonical table.

    Args:
        fcd: arrays from :func:`read_fcd`.
        t0: s, simulation time of frame 0.
        n_frames: frames to keep, 0 .. n_frames - 1.
        section_length: m, keep samples whose centre has 0 <= x <= section_length.
        lane_ids: SUMO lane id -> NGSIM Lane_ID; samples on other lanes are dropped.
        type_sizes: SUMO vType id -> (length m, width m, NGSIM v_Class).
        frame_rate: Hz.
        x0, y0: m, SUMO coordinates of the canonical origin (section entry, left road edge).

    Returns:
        the raw table (ppuu.data.schema.RAW_COLUMNS), vehicle ids 1..V numbered by first frame
        in the section, then by SUMO id.
    """
    frame = np.rint((fcd["time"] - t0) * frame_rate).astype(np.int64)
    keep = (frame >= 0) & (frame < n_frames)

    type_values = fcd["type_values"]
    missing = [t for t in type_values if t not in type_sizes]
    if missing:
        raise ValueError(f"FCD names vehicle types {missing} that the demand did not define")
    sizes = np.array([type_sizes[t] for t in type_values], dtype=np.float64).reshape(-1, 3)
    tcode = fcd["type_codes"]
    length = sizes[tcode, 0]
    width = sizes[tcode, 1]
    vclass = sizes[tcode, 2].astype(np.int8)

    lane_lookup = np.array([lane_ids.get(s, -1) for s in fcd["lane_values"]], dtype=np.int16)
    lane = lane_lookup[fcd["lane_codes"]] if len(lane_lookup) else np.zeros(len(frame), dtype=np.int16)
    keep &= lane > 0

    x = fcd["x"] - x0 - 0.5 * length
    y = fcd["y"] - y0
    keep &= (x >= 0.0) & (x <= section_length)

    idx = np.flatnonzero(keep)
    sumo_id = fcd["id_codes"][idx]
    f = frame[idx]
    # number vehicles by first frame in the section, then SUMO id (deterministic)
    n_ids = len(fcd["id_values"])
    first = np.full(n_ids, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, sumo_id, f)
    present = np.flatnonzero(first < np.iinfo(np.int64).max)
    names = fcd["id_values"][present].astype(str)
    order = np.lexsort((names, first[present]))
    new_id = np.zeros(n_ids, dtype=np.int64)
    new_id[present[order]] = np.arange(1, len(present) + 1)
    vid = new_id[sumo_id]

    rows = np.lexsort((f, vid))
    idx, vid, f = idx[rows], vid[rows], f[rows]
    run = longest_runs(vid, f)
    idx, vid, f = idx[run], vid[run], f[run]
    # (a vehicle keeps at least one run, so the ids stay 1..V without gaps)
    return as_raw_table({
        "vehicle_id": vid, "frame": f, "x": x[idx], "y": y[idx], "length": length[idx],
        "width": width[idx], "vclass": vclass[idx], "lane": lane[idx],
    })


def count_lane_changes(table: pd.DataFrame) -> int:
    """Number of times a vehicle's ``lane`` differs from its previous frame's (all vehicles)."""
    vid = table["vehicle_id"].to_numpy()
    lane = table["lane"].to_numpy()
    return int(((vid[1:] == vid[:-1]) & (lane[1:] != lane[:-1])).sum())
