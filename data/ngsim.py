"""NGSIM trajectory files <-> the canonical table of :mod:`ppuu.data.schema`.

Why this module: NGSIM data reaches users in three shapes (the raw 18-column
I-80/US-101 text files, the 24-column Lankershim/Peachtree text files, and the
later combined CSV export with a header and a Location column), in feet, with
the front centre of the vehicle as reference. Everything downstream speaks the
canonical table (SI units, footprint centre, sorted, gap-free), so the feet and
the front-to-centre shift are converted here, at the edge, and nowhere else.

The reader is built for whole 15-minute files (about 1.2 M rows, 100 MB): one
pass of pandas' C tokenizer, then vectorised checks. Bad input raises one
:class:`~ppuu.data.errors.DataFormatError` naming the file, the 1-based line of the
file (a header counts) and the field, and saying what was expected. The writer
produces the raw 18-column format (used for test fixtures and for exporting
smoothed or generated traffic) through pyarrow's CSV writer, atomically.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ppuu.data.errors import DataFormatError
from ppuu.data.schema import FEET, OPTIONAL_COLUMNS, RAW_COLUMNS, validate_table, vehicle_starts

RAW_FIELDS = ("Vehicle_ID", "Frame_ID", "Total_Frames", "Global_Time", "Local_X", "Local_Y", "Global_X",
              "Global_Y", "v_Length", "v_Width", "v_Class", "v_Vel", "v_Acc", "Lane_ID", "Preceding",
              "Following", "Space_Headway", "Time_Headway")
"""The 18 columns of the raw I-80 / US-101 files (feet, seconds, ms since the epoch)."""

ARTERIAL_FIELDS = RAW_FIELDS[:14] + ("O_Zone", "D_Zone", "Int_ID", "Section_ID", "Direction", "Movement") \
    + RAW_FIELDS[14:]
"""The 24 columns of the Lankershim / Peachtree text files."""

CSV_FIELDS = ARTERIAL_FIELDS + ("Location",)
"""The 25 columns of the combined CSV export (header names matched case-insensitively)."""

FORMAT_RAW, FORMAT_ARTERIAL, FORMAT_CSV = "ngsim-raw-18", "ngsim-arterial-24", "ngsim-csv"
ID_OFFSET_STEP = 100_000
"""Vehicle ids of a later file that collide with earlier ones are shifted by a multiple of this."""

# The fields the canonical table is built from; all must be numbers on every kept row. v_Vel is
# kept too (as speed_recorded, checked against the positions by ppuu.data.quality), where present.
_USED = ("Vehicle_ID", "Frame_ID", "Local_X", "Local_Y", "v_Length", "v_Width", "v_Class", "Lane_ID")
_SPEED = "v_Vel"
_CANONICAL_NAME = {name.lower(): name for name in CSV_FIELDS}
_THOUSANDS = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d*)?")
_MAX_INT = 2 ** 31


# ----------------------------------------------------------------------------------------------- reading

def read_ngsim(paths, location: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Read one or more NGSIM trajectory files into one raw canonical table.

    Each file is auto-detected: raw 18-column whitespace text (I-80, US-101), the 24-column
    arterial text (Lankershim, Peachtree), or the combined CSV export with a header row; any of
    them plain or gzip-compressed (detected by the magic bytes, not the name).

    Args:
        paths: a path (str or Path) or a list of them. Several files are concatenated; if a
            later file's vehicle ids collide with earlier ones, its ids are shifted by the
            smallest multiple of 100,000 above every id read so far.
        location: for the combined CSV, the Location to keep ("i-80", "us-101", "lankershim",
            "peachtree"; case, dashes and spaces ignored). Required when the file holds several.

    Returns:
        ``(table, info)``: table is the raw canonical table of :mod:`ppuu.data.schema` (N rows, metres,
        footprint centre, sorted by (vehicle_id, frame), consecutive frames) with the optional
        column ``speed_recorded`` (v_Vel in m/s; NaN for a CSV without v_Vel); info is a dict with
        ``files`` (list of str), ``format`` (list, one per file), ``rows``, ``vehicles``,
        ``frame_range`` ((lo, hi) frames), ``lanes`` (sorted Lane_IDs), ``location`` (as the CSV
        spells it, else the argument)
        and ``id_offsets`` ({file: offset added to its vehicle ids}).

    Raises:
        DataFormatError: a missing or unreadable file, or bad content (naming file, line, field).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise DataFormatError("no files given; expected at least one NGSIM trajectory file")
    parts, formats, offsets, locations = [], [], {}, []
    seen = np.zeros(0, dtype=np.int64)  # vehicle ids used so far, sorted
    for p in paths:
        cols, fmt, loc = _read_file(Path(p), location)
        ids = np.unique(cols["vehicle_id"])
        offset = 0
        if np.intersect1d(ids, seen, assume_unique=True).size:
            offset = ID_OFFSET_STEP * (int(seen[-1]) // ID_OFFSET_STEP + 1)
            cols["vehicle_id"] = cols["vehicle_id"] + offset
        seen = np.union1d(seen, ids + offset)
        parts.append(cols)
        formats.append(fmt)
        offsets[str(p)] = offset
        if loc is not None:
            locations.append(loc)
    columns = {**RAW_COLUMNS, **OPTIONAL_COLUMNS}
    cols = {c: np.concatenate([part[c] for part in parts]) for c in columns}
    vid, frame = cols["vehicle_id"], cols["frame"]
    if len(parts) > 1 and np.any((vid[1:] < vid[:-1]) | ((vid[1:] == vid[:-1]) & (frame[1:] <= frame[:-1]))):
        order = np.lexsort((frame, vid))
        cols = {c: v[order] for c, v in cols.items()}
    table = pd.DataFrame({c: cols[c].astype(t, copy=False) for c, t in columns.items()})
    if len(set(locations)) == 1:
        location = locations[0]  # as the file spells it
    info = {
        "files": [str(p) for p in paths],
        "format": formats,
        "rows": len(table),
        "vehicles": int(len(vehicle_starts(table["vehicle_id"].to_numpy()))),
        "frame_range": (int(table["frame"].min()), int(table["frame"].max())),
        "lanes": sorted(int(v) for v in np.unique(table["lane"].to_numpy())),
        "location": location,
        "id_offsets": offsets,
    }
    return table, info


class _Source:
    """The decoded bytes of one file, with line lookup for error messages."""

    def __init__(self, path: Path, data: bytes):
        self.path, self.data = path, data
        self._starts = None

    def fail(self, message: str, line: int | None = None, field: str | None = None) -> DataFormatError:
        return DataFormatError(message, path=self.path, line=line, field=field)

    def line_of_offset(self, offset: int) -> int:
        return self.data.count(b"\n", 0, offset) + 1

    def line(self, lineno: int) -> str:
        """The text of 1-based line ``lineno`` (error path only)."""
        if self._starts is None:
            nl = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == 10)
            self._starts = np.concatenate([[0], nl + 1])
        start = int(self._starts[lineno - 1])
        end = self.data.find(b"\n", start)
        return self.data[start:end if end >= 0 else len(self.data)].decode("latin-1").rstrip("\r")


def _load(path: Path) -> _Source:
    """Read a file's bytes, gunzip when it starts with the gzip magic, reject binary and empty input."""
    if not path.exists():
        raise DataFormatError("no such file; expected an NGSIM trajectory file", path=path)
    if path.is_dir():
        raise DataFormatError("is a folder; expected an NGSIM trajectory file", path=path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"cannot read the file: {exc}", path=path) from exc
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataFormatError(f"truncated or corrupt gzip data ({exc}); expected a complete .gz file",
                                  path=path) from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    src = _Source(path, data)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise src.fail("binary data (NUL byte); expected text", line=src.line_of_offset(nul))
    if b"\r" in data:
        src.data = data = data.replace(b"\r\n", b"\n")
        cr = data.find(b"\r")
        if cr >= 0:
            raise src.fail("carriage return inside a line; expected \\n or \\r\\n line ends",
                           line=src.line_of_offset(cr))
    if not data.strip():
        raise src.fail("empty file; expected NGSIM trajectory rows")
    return src


def _read_file(path: Path, location: str | None) -> tuple[dict, str, str | None]:
    """One file -> (canonical column arrays sorted by (vehicle, frame), format name, location)."""
    src = _load(path)
    data = src.data
    start = re.match(rb"(?:[ \t\f\v]*\n)*", data).end()  # skip leading blank lines
    end = len(data)
    while data[end - 1:end].isspace():  # and trailing white space (a file of blanks is caught by _load)
        end -= 1
    first_line = src.line_of_offset(start)
    stop = data.find(b"\n", start, end)
    first = data[start:stop if stop >= 0 else end]
    body = data[start:end] + b"\n"
    if b"vehicle_id" in first.lower():
        fmt = FORMAT_CSV
        df, lines = _parse(src, body, first_line, header=True)
    else:
        if b"," in first:
            raise src.fail("comma-separated data without a header row; expected whitespace-separated NGSIM "
                           "text or the combined CSV with its header (Vehicle_ID,Frame_ID,...)", line=first_line)
        n = len(first.split())
        if n not in (len(RAW_FIELDS), len(ARTERIAL_FIELDS)):
            raise src.fail(f"found {n} fields; expected {len(RAW_FIELDS)} (raw I-80/US-101 text) or "
                           f"{len(ARTERIAL_FIELDS)} (Lankershim/Peachtree text)", line=first_line)
        fmt = FORMAT_RAW if n == len(RAW_FIELDS) else FORMAT_ARTERIAL
        df, lines = _parse(src, body, first_line, names=RAW_FIELDS if fmt == FORMAT_RAW else ARTERIAL_FIELDS)
    loc = None
    if fmt == FORMAT_CSV:
        df, lines, loc = _select_location(src, df, lines, location)
    checked = (_USED + ((_SPEED,) if _SPEED in df.columns else ())) if fmt == FORMAT_CSV else df.columns
    values = _numbers(src, df, lines, checked)
    values = {name: values[name] for name in _USED + (_SPEED,) if name in values}
    return _to_canonical(src, values, lines, sort_frames=fmt == FORMAT_CSV), fmt, loc


def _parse(src: _Source, body: bytes, first_line: int, header: bool = False,
           names=None) -> tuple[pd.DataFrame, np.ndarray]:
    """Tokenize ``body`` (lines from ``first_line`` on, ending in a newline) with pandas' C parser.

    Blank lines are dropped; returns (frame, 1-based file line of each row: (rows,) int64).
    """
    kw = dict(sep=",", header=0) if header else dict(sep=r"\s+", header=None, names=list(names),
                                                     index_col=False, quoting=csv.QUOTE_NONE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = pd.read_csv(io.BytesIO(body), engine="c", skip_blank_lines=False, keep_default_na=False,
                             na_values=[""], encoding="latin-1", low_memory=False, **kw)
    except (ValueError, OverflowError, csv.Error) as exc:  # pandas' ParserError is a ValueError
        msg = str(exc).strip().replace("Error tokenizing data. C error: ", "")
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
        if m:
            raise src.fail(f"found {m[3]} fields; expected {m[1]}", line=int(m[2]) + first_line - 1) from exc
        raise src.fail(f"cannot parse: {msg}") from exc
    if header:
        df.columns = [_CANONICAL_NAME.get(str(c).strip().lower(), str(c).strip()) for c in df.columns]
        missing = [c for c in _USED if c not in df.columns]
        if missing:
            raise src.fail(f"header lacks {missing}; expected the combined NGSIM columns {list(CSV_FIELDS)}",
                           line=first_line)
    lines = np.arange(len(df), dtype=np.int64) + first_line + (1 if header else 0)
    if len(df) != body.count(b"\n") - header:  # a quoted CSV field ran over a line end
        spans = np.zeros(len(df), dtype=bool)
        for name in df.columns[[dt.kind not in "iufb" for dt in df.dtypes]]:
            spans |= df[name].astype(str).str.contains("\n", regex=False).to_numpy()
        line = int(lines[np.argmax(spans)]) if spans.any() else None
        raise src.fail("a record runs over a line end (quoted field?); expected one record per line", line=line)
    blank = df.isna().all(axis=1).to_numpy()
    if blank.any():
        df, lines = df[~blank], lines[~blank]
    if len(df) == 0:
        raise src.fail("no data rows; expected NGSIM trajectory rows")
    return df, lines


def _select_location(src: _Source, df: pd.DataFrame, lines: np.ndarray,
                     location: str | None) -> tuple[pd.DataFrame, np.ndarray, str | None]:
    """Keep the rows of one Location of a combined CSV; error when the choice is missing or ambiguous."""
    if "Location" not in df.columns:
        if location is not None:
            raise src.fail(f"no Location column, so location {location!r} cannot be chosen; "
                           "expected the combined NGSIM CSV", line=int(lines[0]) - 1, field="Location")
        return df, lines, None
    col = df["Location"]
    empty = col.isna().to_numpy()
    if empty.any():
        _missing_field(src, int(lines[np.argmax(empty)]), "Location", len(df.columns))
    codes, names = pd.factorize(col.astype(str).str.strip())
    names = list(names)
    if location is None:
        if len(names) > 1:
            raise src.fail(f"the file holds several locations {names}; choose one with location=",
                           field="Location")
        return df, lines, names[0]
    wanted = [i for i, n in enumerate(names) if _loc_key(n) == _loc_key(location)]
    if not wanted:
        raise src.fail(f"location {location!r} is absent; the file holds {names}", field="Location")
    keep = np.isin(codes, wanted)
    return df[keep], lines[keep], names[wanted[0]]


def _loc_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _missing_field(src: _Source, line: int, field: str, n_fields: int):
    """Raise for an empty value: a short line (say how many fields) or an empty field."""
    text = src.line(line)
    found = len(next(csv.reader([text]), [])) if "," in text else len(text.split())
    if found != n_fields:
        raise src.fail(f"found {found} fields; expected {n_fields}", line=line, field=field)
    raise src.fail("empty value; expected a number", line=line, field=field)


def _numbers(src: _Source, df: pd.DataFrame, lines: np.ndarray, fields) -> dict[str, np.ndarray]:
    """The given columns as finite float64 arrays; error at the first bad line (leftmost field)."""
    out, bad = {}, {}
    for name in fields:
        col = df[name]
        if col.dtype.kind in "iuf":
            values = col.to_numpy(dtype=np.float64)
        else:  # some token was not a number (or needed thousands separators removed)
            s = col.astype(str).str.strip()
            num = pd.to_numeric(s, errors="coerce")
            grouped = num.isna() & s.str.fullmatch(_THOUSANDS).fillna(False).astype(bool)
            if grouped.any():
                num[grouped] = pd.to_numeric(s[grouped].str.replace(",", ""), errors="coerce")
            values = num.to_numpy(dtype=np.float64)
        out[name] = values
        nonfinite = ~np.isfinite(values)
        if nonfinite.any():
            row = int(np.argmax(nonfinite))
            raw = col.iloc[row]
            bad[name] = (row, "missing" if pd.isna(raw) else "nonfinite" if np.isinf(values[row]) else "text")
    if bad:
        name = min(bad, key=lambda n: bad[n][0])  # dicts keep field order: ties go to the leftmost
        row, kind = bad[name]
        line = int(lines[row])
        if kind == "missing":
            _missing_field(src, line, name, len(df.columns))
        raw = df[name].iloc[row]
        what = "not a number" if kind == "text" else "not finite"
        raise src.fail(f"value {str(raw)[:40]!r} is {what}; expected a finite number", line=line, field=name)
    return out


def _to_canonical(src: _Source, v: dict[str, np.ndarray], lines: np.ndarray, sort_frames: bool) -> dict:
    """Check values and per-vehicle structure, sort, convert feet/front-centre to metres/centre."""
    ints = {"Vehicle_ID": (0, _MAX_INT - 1), "Frame_ID": (0, _MAX_INT - 1), "v_Class": (1, 3), "Lane_ID": (0, 32767)}
    for name, (lo, hi) in ints.items():
        x = v[name]
        bad = (x != np.floor(x)) | (x < lo) | (x > hi)
        if bad.any():
            row = int(np.argmax(bad))
            expected = "1 (motorcycle), 2 (auto) or 3 (truck)" if name == "v_Class" else f"an integer in [{lo}, {hi}]"
            raise src.fail(f"value {x[row]:g}; expected {expected}", line=int(lines[row]), field=name)
    for name in ("v_Length", "v_Width"):
        bad = v[name] <= 0
        if bad.any():
            row = int(np.argmax(bad))
            raise src.fail(f"size {v[name][row]:g} ft; expected > 0", line=int(lines[row]), field=name)
    vid, frame = v["Vehicle_ID"].astype(np.int64), v["Frame_ID"].astype(np.int64)
    if np.any(vid[1:] < vid[:-1]) or (sort_frames and np.any((vid[1:] == vid[:-1]) & (frame[1:] < frame[:-1]))):
        # raw files keep each vehicle's rows in file order (checked below); the CSV may interleave them
        order = np.lexsort((frame, vid)) if sort_frames else np.argsort(vid, kind="stable")
        vid, frame, lines = vid[order], frame[order], lines[order]
        v = {name: x[order] for name, x in v.items()}
    same = vid[1:] == vid[:-1]
    step = frame[1:] - frame[:-1]
    checks = [
        (same & (step == 0), "duplicate row for vehicle {vid} frame {frame} (also at line {prev}); "
                             "expected one row per vehicle and frame", "Frame_ID"),
        (same & (step < 0), "vehicle {vid} goes back from frame {pframe} (line {prev}) to {frame}; "
                            "expected increasing frames within a vehicle", "Frame_ID"),
        (same & (step > 1), "vehicle {vid} jumps from frame {pframe} (line {prev}) to {frame}; "
                            "expected consecutive frames", "Frame_ID"),
    ] + [(same & (v[name][1:] != v[name][:-1]),
          f"{name} of vehicle {{vid}} changes from {{pval:g}} (line {{prev}}) to {{val:g}}; expected it constant",
          name) for name in ("v_Length", "v_Width", "v_Class")]
    for mask, message, field in checks:
        if mask.any():
            i = int(np.argmax(mask)) + 1
            x = v.get(field, frame)
            raise src.fail(message.format(vid=vid[i], frame=frame[i], pframe=frame[i - 1], prev=lines[i - 1],
                                          val=x[i], pval=x[i - 1]), line=int(lines[i]), field=field)
    length = v["v_Length"] * FEET
    return {
        "speed_recorded": v[_SPEED] * FEET if _SPEED in v else np.full(len(vid), np.nan),
        "vehicle_id": vid,
        "frame": frame,
        "x": v["Local_Y"] * FEET - length / 2,
        "y": -v["Local_X"] * FEET,
        "length": length,
        "width": v["v_Width"] * FEET,
        "vclass": v["v_Class"].astype(np.int8),
        "lane": v["Lane_ID"].astype(np.int16),
    }


# ----------------------------------------------------------------------------------------------- writing

def write_ngsim(table: pd.DataFrame, path, frame_rate: float = 10.0, epoch_ms: int = 1113433200000) -> Path:
    """Write a canonical table (raw or smoothed) as an NGSIM raw 18-column text file.

    Converts back to feet and the front-centre reference (Local_Y = (x + length/2) / ft,
    Local_X = -y / ft). Total_Frames is the vehicle's row count; Global_Time = epoch_ms +
    frame * 1000 / frame_rate; Global_X = Global_Y = 0. v_Vel (ft/s) and v_Acc (ft/s^2) come
    from the ``speed`` / ``acceleration`` columns when present, else from per-vehicle finite
    differences of x. Preceding / Following (vehicle ids, 0 = none), Space_Headway (ft, front to
    front) and Time_Headway (s; 9999.99 when standing) come from the order of the vehicles'
    fronts in the same lane at the same frame. Positions and sizes carry 3 decimals of a foot
    (0.15 mm), so :func:`read_ngsim` gives the table back within 1e-3 m.

    Args:
        table: canonical table (N rows, :mod:`ppuu.data.schema`), sorted by (vehicle_id, frame).
        path: output file; gzip-compressed when the name ends in ``.gz``. Written to a temporary
            file in the same folder, then renamed, so a crash leaves no partial file.
        frame_rate: frames per second (Hz) for Global_Time and the finite differences.
        epoch_ms: Global_Time of frame 0, ms since 1970 (default: 13 Apr 2005, 4:00 pm PDT).

    Returns:
        The path written.
    """
    validate_table(table, source="<table>")
    for name, ok in (("vclass", table["vclass"].isin([1, 2, 3])), ("lane", table["lane"] >= 0)):
        if not ok.all():
            row = int(np.argmax(~ok.to_numpy()))
            raise DataFormatError(f"value {table[name].iloc[row]} cannot be written to NGSIM",
                                  path="<table>", line=row + 1, field=name)
    vid = table["vehicle_id"].to_numpy(np.int64)
    frame = table["frame"].to_numpy(np.int64)
    lane = table["lane"].to_numpy(np.int64)
    length = table["length"].to_numpy(np.float64)
    front = (table["x"].to_numpy(np.float64) + length / 2) / FEET
    starts = vehicle_starts(vid)
    counts = np.diff(np.append(starts, len(vid)))
    if "speed" in table.columns:
        vel = table["speed"].to_numpy(np.float64) / FEET
    else:
        vel = _gradient(front, vid) * frame_rate
    if "acceleration" in table.columns:
        acc = table["acceleration"].to_numpy(np.float64) / FEET
    else:
        acc = _gradient(vel, vid) * frame_rate
    preceding, following, space, time = _headways(vid, frame, lane, front, vel)
    zeros = np.zeros(len(vid))
    columns = {
        "Vehicle_ID": vid, "Frame_ID": frame, "Total_Frames": np.repeat(counts, counts),
        "Global_Time": epoch_ms + np.round(frame * (1000.0 / frame_rate)).astype(np.int64),
        "Local_X": _fixed(-table["y"].to_numpy(np.float64) / FEET, 3), "Local_Y": _fixed(front, 3),
        "Global_X": zeros, "Global_Y": zeros, "v_Length": _fixed(length / FEET, 3),
        "v_Width": _fixed(table["width"].to_numpy(np.float64) / FEET, 3),
        "v_Class": table["vclass"].to_numpy(np.int64), "v_Vel": _fixed(vel, 2), "v_Acc": _fixed(acc, 2),
        "Lane_ID": lane, "Preceding": preceding, "Following": following,
        "Space_Headway": _fixed(space, 2), "Time_Headway": _fixed(time, 2),
    }
    return _write_atomic(pa.table(columns), Path(path))


def _fixed(values: np.ndarray, decimals: int) -> np.ndarray:
    """Round for printing (pyarrow prints the shortest repr of the rounded double); no -0."""
    return np.round(values, decimals) + 0.0


def _gradient(values: np.ndarray, vid: np.ndarray) -> np.ndarray:
    """Per-vehicle d(values)/d(frame): central inside, one-sided at the ends, 0 for one-row vehicles. (N,)"""
    same = vid[1:] == vid[:-1]
    has_next, has_prev = np.append(same, False), np.insert(same, 0, False)
    ahead = np.where(has_next, np.append(values[1:], 0.0), values)
    behind = np.where(has_prev, np.insert(values[:-1], 0, 0.0), values)
    span = has_next.astype(np.int64) + has_prev
    return (ahead - behind) / np.maximum(span, 1)


def _headways(vid, frame, lane, front, vel):
    """Neighbours in the same lane and frame, ordered by front position (ft).

    Returns (preceding id, following id, space headway ft, time headway s), each (N,); 0 = none.
    """
    order = np.lexsort((front, lane, frame))
    group = (frame[order][1:] == frame[order][:-1]) & (lane[order][1:] == lane[order][:-1])
    ids, pos = vid[order], front[order]
    preceding, following, space = np.zeros_like(vid), np.zeros_like(vid), np.zeros(len(vid))
    preceding[order] = np.append(np.where(group, ids[1:], 0), 0)
    following[order] = np.insert(np.where(group, ids[:-1], 0), 0, 0)
    space[order] = np.append(np.where(group, pos[1:] - pos[:-1], 0.0), 0.0)
    moving = vel >= 0.005
    time = np.where(preceding == 0, 0.0,
                    np.where(moving, np.minimum(space / np.where(moving, vel, 1.0), 9999.99), 9999.99))
    return preceding, following, space, time


def _write_atomic(table: pa.Table, path: Path) -> Path:
    """Space-separated, no header, to a temporary sibling, then os.replace (gzip for *.gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    options = pacsv.WriteOptions(include_header=False, delimiter=" ", quoting_style="none")
    try:
        with os.fdopen(fd, "wb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=3, mtime=0) as gz:
                    pacsv.write_csv(table, gz, write_options=options)
            else:
                pacsv.write_csv(table, raw, write_options=options)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
