"""Fuzzing the NGSIM reader: a corrupted file either reads to a complete valid table or raises DataFormatError.

"Complete" means one row per non-blank data line: nothing is silently dropped or merged.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppuu.data.errors import DataFormatError
from ppuu.data.ngsim import read_ngsim, write_ngsim
from ppuu.data.schema import validate_table
from tests.data.test_ngsim import synthetic_table, to_arterial, to_csv

_DIR = tempfile.TemporaryDirectory(prefix="ngsim-fuzz-")
_RAW = write_ngsim(synthetic_table(vehicles=4, frames=6, seed=3), Path(_DIR.name) / "base.txt").read_text()
_RAW_LINES = _RAW.splitlines()
BASES = {
    "raw": _RAW_LINES,
    "arterial": to_arterial(_RAW_LINES),
    "csv": to_csv(_RAW_LINES),
}
TOKENS = ["", "nan", "NaN", "NA", "inf", "-inf", "1e999", "-1", "0", "2.5", "x", ",", '"', "\t", "\r", "\x00",
          "99999999999999999999999", "1e5", "4", " ", "\n", "\xff", "3,000"]


def _split(line: str, sep: str) -> list[str]:
    return line.split(sep) if sep == "," else line.split()


corruption = st.one_of(
    st.tuples(st.just("delete_field"), st.integers(0, 10_000), st.integers(0, 30)),
    st.tuples(st.just("replace_field"), st.integers(0, 10_000), st.integers(0, 30),
              st.one_of(st.sampled_from(TOKENS), st.text(max_size=6))),
    st.tuples(st.just("insert_text"), st.integers(0, 10_000), st.one_of(st.sampled_from(TOKENS), st.text(max_size=8))),
    st.tuples(st.just("delete_line"), st.integers(0, 10_000)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 10_000)),
    st.tuples(st.just("swap_lines"), st.integers(0, 10_000), st.integers(0, 10_000)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
)


def apply(lines: list[str], sep: str, op: tuple) -> list[str]:
    lines = list(lines)
    if not lines:
        return lines
    kind, i = op[0], op[1] % len(lines)
    if kind in ("delete_field", "replace_field"):
        fields = _split(lines[i], sep)
        if fields:
            j = op[2] % len(fields)
            if kind == "delete_field":
                del fields[j]
            else:
                fields[j] = op[3]
            lines[i] = (sep if sep == "," else " ").join(fields)
    elif kind == "insert_text":
        text = "\n".join(lines)
        pos = op[1] % (len(text) + 1)
        return (text[:pos] + op[2] + text[pos:]).split("\n")
    elif kind == "delete_line":
        del lines[i]
    elif kind == "duplicate_line":
        lines.insert(i, lines[i])
    elif kind == "swap_lines":
        j = op[2] % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "truncate":
        text = "\n".join(lines)
        return text[: op[1] % (len(text) + 1)].split("\n")
    return lines


def data_lines(data: bytes, header: bool) -> int:
    """Non-blank lines of a file's text, less the header of a CSV."""
    text = data.replace(b"\r\n", b"\n")
    count = sum(1 for line in text.split(b"\n") if line.strip())
    return count - (1 if header and count else 0)


def check(data: bytes, header: bool, stored: bytes | None = None) -> None:
    """Read ``stored`` (default ``data``) from a file; the outcome must be a full valid table or DataFormatError."""
    with tempfile.TemporaryDirectory(prefix="ngsim-case-") as tmp:
        path = Path(tmp) / "case.txt"
        path.write_bytes(data if stored is None else stored)
        try:
            table, info = read_ngsim(path)
        except DataFormatError as err:
            assert err.path == str(path)
            return
    validate_table(table)
    assert len(table) == info["rows"] == data_lines(data, header)
    assert np.isfinite(table[["x", "y", "length", "width"]].to_numpy()).all()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(sorted(BASES)), ops=st.lists(corruption, min_size=1, max_size=3))
def test_corrupted_text(base, ops):
    lines, sep = BASES[base], "," if base == "csv" else " "
    for op in ops:
        lines = apply(lines, sep, op)
    check("\n".join(lines).encode("utf-8", "surrogatepass"), header=base == "csv")


@settings(max_examples=40, deadline=None)
@given(base=st.sampled_from(sorted(BASES)), cut=st.integers(0, 10_000), flip=st.integers(0, 10_000),
       byte=st.integers(0, 255))
def test_corrupted_gzip(base, cut, flip, byte):
    data = ("\n".join(BASES[base]) + "\n").encode()
    packed = bytearray(gzip.compress(data))
    if flip % 2:
        packed[flip % len(packed)] = byte
    else:
        del packed[cut % len(packed):]
    check(data, header=base == "csv", stored=bytes(packed))
