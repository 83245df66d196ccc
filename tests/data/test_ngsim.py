"""NGSIM reader and writer: round trips, the three file formats, real data, and every bad-input case."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pandas as pd
import pytest

from ppuu.data.errors import DataFormatError
from ppuu.data.ngsim import ARTERIAL_FIELDS, CSV_FIELDS, FORMAT_ARTERIAL, FORMAT_CSV, FORMAT_RAW, read_ngsim, write_ngsim
from ppuu.data.schema import FEET, as_raw_table, validate_table
from tests.shared_data import shared_data_dir


def synthetic_table(vehicles: int = 6, frames: int = 12, seed: int = 0) -> pd.DataFrame:
    """A small valid raw table: staggered vehicles in lanes 1-3, mixed classes and sizes (metres)."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("vehicle_id", "frame", "x", "y", "length", "width", "vclass", "lane")}
    for i in range(vehicles):
        n = frames - i % 3
        lane = np.full(n, 1 + i % 3)
        lane[n // 2:] = 1 + (i + 1) % 3 if i == 0 else lane[0]  # vehicle 1 changes lane
        cols["vehicle_id"] += [10 + 7 * i] * n
        cols["frame"] += list(range(100 + 2 * i, 100 + 2 * i + n))
        cols["x"] += list(5.0 * i + np.cumsum(rng.uniform(0.5, 2.0, n)))
        cols["y"] += list(-(lane - 0.5) * 3.6576 + rng.normal(0, 0.2, n))
        cols["length"] += [rng.uniform(3.0, 15.0)] * n
        cols["width"] += [rng.uniform(1.5, 2.6)] * n
        cols["vclass"] += [1 + i % 3] * n
        cols["lane"] += list(lane)
    return as_raw_table({k: np.asarray(v) for k, v in cols.items()})


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame, tol: float = 1e-3) -> None:
    for col in ("vehicle_id", "frame", "vclass", "lane"):
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy(), err_msg=col)
    for col in ("x", "y", "length", "width"):
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=0, atol=tol, err_msg=col)


def lines_of(path) -> list[str]:
    return open(path).read().splitlines()


def write_lines(path, lines, end="\n"):
    path.write_text(end.join(lines) + end)
    return path


def expect_error(path, line=None, field=None, match=None, **kw) -> DataFormatError:
    with pytest.raises(DataFormatError, match=match) as info:
        read_ngsim(path, **kw)
    err = info.value
    assert err.path == str(path)
    if line is not None:
        assert err.line == line, str(err)
    if field is not None:
        assert err.field == field, str(err)
    return err


@pytest.fixture
def table():
    return synthetic_table()


@pytest.fixture
def raw_file(tmp_path, table):
    return write_ngsim(table, tmp_path / "traj.txt")


# ------------------------------------------------------------------------------------------ round trips

@pytest.mark.parametrize("name", ["traj.txt", "traj.txt.gz"])
def test_round_trip(tmp_path, table, name):
    path = write_ngsim(table, tmp_path / name)
    assert (open(path, "rb").read(2) == b"\x1f\x8b") == name.endswith(".gz")
    back, info = read_ngsim(path)
    validate_table(back)
    assert list(back.dtypes.astype(str)) == ["int64", "int64", "float64", "float64", "float64", "float64",
                                             "int8", "int16", "float64"]
    assert back.columns[-1] == "speed_recorded"     # v_Vel, kept to be checked against the positions
    assert_same_table(table, back)
    assert info["format"] == [FORMAT_RAW]
    assert info["rows"] == len(table) and info["vehicles"] == table.vehicle_id.nunique()
    assert info["frame_range"] == (table.frame.min(), table.frame.max())
    assert info["lanes"] == [1, 2, 3]
    assert info["id_offsets"] == {str(path): 0}
    assert sorted(os.listdir(tmp_path)) == [name]  # no temporary file left behind


def test_gzip_detected_by_magic_not_name(tmp_path, table):
    path = write_ngsim(table, tmp_path / "traj.txt.gz")
    renamed = tmp_path / "traj.dat"
    path.rename(renamed)
    assert_same_table(table, read_ngsim(renamed)[0])
    plain = write_ngsim(table, tmp_path / "plain.txt")
    fake = tmp_path / "plain_named.gz"
    fake.write_bytes(plain.read_bytes())
    # a name ending in .gz but plain content still reads
    assert_same_table(table, read_ngsim(fake)[0])


def test_written_fields(tmp_path):
    """Two cars in one lane: units, front reference, neighbours and headways as NGSIM defines them."""
    t = as_raw_table(dict(vehicle_id=[1, 1, 1, 2, 2], frame=[0, 1, 2, 1, 2],
                          x=[10.0, 11.0, 12.0, 30.0, 30.0], y=[-1.8288] * 5, length=[4.0] * 3 + [6.0] * 2,
                          width=[2.0] * 5, vclass=[2, 2, 2, 3, 3], lane=[1] * 5))
    path = write_ngsim(t, tmp_path / "two.txt", epoch_ms=1000)
    rows = np.array([line.split() for line in lines_of(path)], dtype=float)
    assert rows.shape == (5, 18)
    np.testing.assert_array_equal(rows[:, 2], [3, 3, 3, 2, 2])             # Total_Frames
    np.testing.assert_array_equal(rows[:, 3], [1000, 1100, 1200, 1100, 1200])  # Global_Time
    np.testing.assert_allclose(rows[:, 4], 6.0, atol=1e-3)                  # Local_X ft
    np.testing.assert_allclose(rows[0, 5], 12.0 / FEET, atol=1e-3)         # front = centre + L/2
    np.testing.assert_allclose(rows[:, 8], [4 / FEET] * 3 + [6 / FEET] * 2, atol=1e-3)
    np.testing.assert_allclose(rows[1, 11], 10.0 / FEET, atol=0.01)        # v_Vel ft/s (central diff)
    np.testing.assert_array_equal(rows[:, 14], [0, 2, 2, 0, 0])            # Preceding
    np.testing.assert_array_equal(rows[:, 15], [0, 0, 0, 1, 1])            # Following
    np.testing.assert_allclose(rows[1, 16], (33.0 - 13.0) / FEET, atol=0.01)  # Space_Headway, front to front
    np.testing.assert_allclose(rows[1, 17], rows[1, 16] / rows[1, 11], atol=0.01)
    assert rows[3, 11] == 0 and rows[3, 16] == 0 and rows[3, 17] == 0      # no leader: zeros


def test_standing_vehicle_time_headway(tmp_path):
    t = as_raw_table(dict(vehicle_id=[1, 1, 2, 2], frame=[0, 1, 0, 1], x=[10.0, 10.0, 20.0, 21.0],
                          y=[-1.8] * 4, length=[4.0] * 4, width=[2.0] * 4, vclass=[2] * 4, lane=[1] * 4))
    rows = np.array([line.split() for line in lines_of(write_ngsim(t, tmp_path / "s.txt"))], dtype=float)
    np.testing.assert_array_equal(rows[:2, 17], [9999.99, 9999.99])


def test_write_uses_speed_and_acceleration_columns(tmp_path, table):
    smoothed = table.assign(x_raw=table.x, y_raw=table.y, speed=12.5, heading=0.0, acceleration=-0.5,
                            curvature=0.0)
    path = write_ngsim(smoothed, tmp_path / "smooth.txt")
    rows = np.array([line.split() for line in lines_of(path)], dtype=float)
    np.testing.assert_allclose(rows[:, 11], round(12.5 / FEET, 2))
    np.testing.assert_allclose(rows[:, 12], round(-0.5 / FEET, 2))
    assert_same_table(table, read_ngsim(path)[0])


def test_write_rejects_bad_table_and_leaves_nothing(tmp_path, table):
    bad = table.copy()
    bad.loc[3, "vclass"] = 5
    with pytest.raises(DataFormatError) as info:
        write_ngsim(bad, tmp_path / "bad.txt")
    assert info.value.line == 4 and info.value.field == "vclass"
    with pytest.raises(DataFormatError):
        write_ngsim(table.iloc[::-1], tmp_path / "bad.txt")
    assert os.listdir(tmp_path) == []


def test_write_replaces_existing_file(tmp_path, table):
    path = tmp_path / "t.txt"
    path.write_text("old")
    write_ngsim(table, path)
    assert_same_table(table, read_ngsim(path)[0])


# ------------------------------------------------------------------------------------------ real data

def test_real_i80_lane1():
    path = shared_data_dir() / "ngsim-i80-lane1" / "i80-lane1-original.txt.gz"
    table, info = read_ngsim(path)
    validate_table(table)
    assert info["rows"] == len(table) == 68_923
    assert info["vehicles"] == 374
    assert info["lanes"] == [1]
    assert info["format"] == [FORMAT_RAW]
    first = table.iloc[0]  # "1 338 333 1113433233800 6.000 66.048 ... 15.0 6.0 2 ..."
    assert (first.vehicle_id, first.frame, first.vclass, first.lane) == (1, 338, 2, 1)
    assert first.x == pytest.approx(66.048 * FEET - 15.0 * FEET / 2)
    assert first.y == pytest.approx(-6.0 * FEET)
    assert first.length == pytest.approx(15.0 * FEET) and first.width == pytest.approx(6.0 * FEET)


def test_real_i80_round_trip(tmp_path):
    path = shared_data_dir() / "ngsim-i80-lane1" / "i80-lane1-reconstructed.txt.gz"
    table, _ = read_ngsim(path)
    back, _ = read_ngsim(write_ngsim(table, tmp_path / "r.txt.gz"))
    assert_same_table(table, back)


# ------------------------------------------------------------------------------------------ other formats

def to_arterial(raw_lines: list[str]) -> list[str]:
    """Insert O_Zone, D_Zone, Int_ID, Section_ID, Direction, Movement after Lane_ID."""
    return [" ".join(f[:14] + ["101", "202", "0", "3", "2", "1"] + f[14:]) for f in (l.split() for l in raw_lines)]


def to_csv(raw_lines: list[str], location: str = "i-80", header=CSV_FIELDS) -> list[str]:
    rows = [",".join(f) + f",{location}" for f in (l.split() for l in to_arterial(raw_lines))]
    return [",".join(header)] + rows


def test_arterial_24_columns(tmp_path, raw_file, table):
    path = write_lines(tmp_path / "lankershim.txt", to_arterial(lines_of(raw_file)))
    back, info = read_ngsim(path)
    assert info["format"] == [FORMAT_ARTERIAL]
    assert_same_table(table, back)
    assert len(ARTERIAL_FIELDS) == 24


def test_recorded_speed_is_kept_and_checked_on_import(tmp_path, table):
    """v_Vel is read as speed_recorded (m/s) in every format, and a vehicle whose v_Vel contradicts its
    positions (500 ft/s while they move at a few m/s) is flagged speed_column when imported (issue 7)."""
    from ppuu.data.pipeline import import_ngsim_scene

    path = write_ngsim(table, tmp_path / "traj.txt")
    back, _ = read_ngsim(path)
    written = np.array([float(line.split()[11]) for line in lines_of(path)])
    np.testing.assert_allclose(back["speed_recorded"], written * FEET)
    csv_back, _ = read_ngsim(write_lines(tmp_path / "c.csv", to_csv(lines_of(path))))
    np.testing.assert_allclose(csv_back["speed_recorded"], back["speed_recorded"])
    corrupted = [" ".join(f[:11] + ["500.0"] + f[12:]) if f[0] == "24" else line
                 for line, f in ((line, line.split()) for line in lines_of(path))]
    scene = import_ngsim_scene([write_lines(tmp_path / "bad.txt", corrupted)], site="test")
    flags = scene.vehicles.set_index("vehicle_id")["flags"]
    assert "speed_column" in flags[24].split(",")
    assert not flags.drop(index=24).str.contains("speed_column").any()
    assert "speed_recorded" not in scene.trajectories.columns      # checked, then dropped


def test_combined_csv_interleaved_and_case_tolerant(tmp_path, raw_file, table):
    header = [h.lower() if h.startswith("v_") else h.upper() for h in CSV_FIELDS]  # v_length, VEHICLE_ID...
    lines = to_csv(lines_of(raw_file), header=header)
    rng = np.random.default_rng(1)
    body = [lines[1 + i] for i in rng.permutation(len(lines) - 1)]  # vehicles interleaved, frames shuffled
    path = write_lines(tmp_path / "combined.csv", [lines[0]] + body, end="\r\n")
    back, info = read_ngsim(path)
    assert info["format"] == [FORMAT_CSV] and info["location"] == "i-80"
    assert_same_table(table, back)


def test_combined_csv_real_style_values(tmp_path, raw_file, table):
    """The public export writes NA in unused columns; thousands separators appear in some copies."""
    lines = to_csv(lines_of(raw_file))
    body = []
    for line in lines[1:]:
        f = line.split(",")
        f[14:20] = ["NA"] * 6
        f[3] = f'"{int(f[3]):,}"'
        body.append(",".join(f))
    back, _ = read_ngsim(write_lines(tmp_path / "c.csv", [lines[0]] + body))
    assert_same_table(table, back)


def test_combined_csv_locations(tmp_path, raw_file, table):
    raw = lines_of(raw_file)
    other = [f"{int(l.split()[0]) + 1} " + l.split(" ", 1)[1] for l in raw[:5]]  # a few us-101 rows
    lines = to_csv(raw, "i-80") + to_csv(other, "us-101")[1:]
    path = write_lines(tmp_path / "all.csv", lines)
    back, info = read_ngsim(path, location="I80")  # case and dash ignored
    assert_same_table(table, back)
    assert info["location"] == "i-80"
    us, _ = read_ngsim(path, location="us-101")
    assert len(us) == 5
    err = expect_error(path, field="Location", match="several locations")
    assert "i-80" in str(err) and "us-101" in str(err)
    err = expect_error(path, location="peachtree", field="Location", match="absent")
    assert "i-80" in str(err) and "us-101" in str(err)


def test_location_with_csv_lacking_location_column(tmp_path, raw_file):
    lines = [",".join(CSV_FIELDS[:-1])] + [",".join(l.split()) for l in to_arterial(lines_of(raw_file))]
    path = write_lines(tmp_path / "noloc.csv", lines)
    assert len(read_ngsim(path)[0]) == len(lines) - 1
    expect_error(path, location="i-80", line=1, field="Location")


def test_several_files_and_id_offsets(tmp_path, table):
    a = write_ngsim(table, tmp_path / "a.txt")
    b = write_ngsim(table, tmp_path / "b.txt.gz")
    other = table.assign(vehicle_id=table.vehicle_id + 1000)
    c = write_ngsim(other, tmp_path / "c.txt")
    both, info = read_ngsim([a, b, str(c)])
    validate_table(both)
    assert info["id_offsets"] == {str(a): 0, str(b): 100_000, str(c): 0}
    assert info["rows"] == 3 * len(table)
    assert info["vehicles"] == 3 * table.vehicle_id.nunique()
    assert_same_table(table, both[both.vehicle_id < 1000])
    assert_same_table(table.assign(vehicle_id=table.vehicle_id + 100_000), both[both.vehicle_id >= 100_000])


def test_blank_lines_and_crlf_are_tolerated(tmp_path, raw_file, table):
    lines = lines_of(raw_file)
    path = write_lines(tmp_path / "blank.txt", ["", "   "] + lines[:5] + [""] + lines[5:] + ["", ""], end="\r\n")
    assert_same_table(table, read_ngsim(path)[0])


# ------------------------------------------------------------------------------------------ bad input

def corrupt(tmp_path, raw_file, row: int, field: int, value: str | None, name="bad.txt"):
    """Copy raw_file with field ``field`` of data line ``row`` (0-based) replaced (None: removed)."""
    lines = lines_of(raw_file)
    f = lines[row].split()
    if value is None:
        del f[field]
    else:
        f[field] = value
    lines[row] = " ".join(f)
    return write_lines(tmp_path / name, lines)


def test_missing_path(tmp_path):
    err = expect_error(tmp_path / "nope.txt", match="no such file")
    assert "nope.txt" in str(err)
    expect_error(tmp_path, match="folder")


def test_no_paths():
    with pytest.raises(DataFormatError):
        read_ngsim([])


@pytest.mark.parametrize("content", [b"", b"\n \n\t\n", gzip.compress(b""), gzip.compress(b"\n\n")])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    expect_error(path, match="empty")


def test_header_only_csv(tmp_path):
    path = write_lines(tmp_path / "h.csv", [",".join(CSV_FIELDS)])
    expect_error(path, match="no data rows")


def test_truncated_and_corrupt_gzip(tmp_path, table):
    data = write_ngsim(table, tmp_path / "t.txt.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    expect_error(tmp_path / "cut.gz", match="truncated or corrupt gzip")
    (tmp_path / "bad.gz").write_bytes(data[:10] + b"garbage" * 20 + data[150:])
    expect_error(tmp_path / "bad.gz", match="gzip")


def test_short_line(tmp_path, raw_file):
    path = corrupt(tmp_path, raw_file, 4, 7, None)
    expect_error(path, line=5, match="found 17 fields; expected 18")


def test_long_line(tmp_path, raw_file):
    path = corrupt(tmp_path, raw_file, 6, 3, "1 2")
    expect_error(path, line=7, match="found 19 fields; expected 18")


def test_first_line_wrong_count(tmp_path, raw_file):
    lines = lines_of(raw_file)
    path = write_lines(tmp_path / "w.txt", ["", lines[0] + " 5 6"] + lines[1:])
    expect_error(path, line=2, match="found 20 fields; expected 18 .* or 24")


def test_csv_short_and_long_rows(tmp_path, raw_file):
    lines = to_csv(lines_of(raw_file))
    short = write_lines(tmp_path / "s.csv", lines[:3] + [lines[3].rsplit(",", 2)[0]] + lines[4:])
    expect_error(short, line=4, match="found 23 fields; expected 25")
    long = write_lines(tmp_path / "l.csv", lines[:5] + [lines[5] + ",9"] + lines[6:])
    expect_error(long, line=6, match="found 26 fields; expected 25")
    empty = lines[7].split(",")
    empty[5] = ""
    path = write_lines(tmp_path / "e.csv", lines[:7] + [",".join(empty)] + lines[8:])
    expect_error(path, line=8, field="Local_Y", match="empty value")


def test_csv_missing_header_column(tmp_path, raw_file):
    lines = to_csv(lines_of(raw_file))
    lines[0] = lines[0].replace("Local_Y", "Local_Q")
    expect_error(write_lines(tmp_path / "h.csv", lines), line=1, match="Local_Y")


def test_comma_data_without_header(tmp_path, raw_file):
    lines = to_csv(lines_of(raw_file))[1:]
    expect_error(write_lines(tmp_path / "nh.csv", lines), line=1, match="without a header")


@pytest.mark.parametrize("field,name", [(5, "Local_Y"), (0, "Vehicle_ID"), (16, "Space_Headway")])
def test_non_numeric(tmp_path, raw_file, field, name):
    expect_error(corrupt(tmp_path, raw_file, 8, field, "12a"), line=9, field=name, match="not a number")


def test_non_numeric_in_csv_with_blank_lines_counts_header(tmp_path, raw_file):
    lines = to_csv(lines_of(raw_file))
    f = lines[3].split(",")
    f[4] = "left"
    path = write_lines(tmp_path / "c.csv", [lines[0], ""] + lines[1:3] + [",".join(f)] + lines[4:])
    expect_error(path, line=5, field="Local_X", match="'left' is not a number")


@pytest.mark.parametrize("value", ["nan", "NaN", "NA", "inf", "-inf", "1e999"])
def test_non_finite(tmp_path, raw_file, value):
    expect_error(corrupt(tmp_path, raw_file, 2, 4, value), line=3, field="Local_X")


@pytest.mark.parametrize("field,name,value", [(8, "v_Length", "0"), (9, "v_Width", "-6.0"),
                                              (8, "v_Length", "-1")])
def test_bad_size(tmp_path, raw_file, field, name, value):
    lines = lines_of(raw_file)
    vid = lines[0].split()[0]
    lines = [" ".join(f[:field] + [value] + f[field + 1:]) if f[0] == vid else " ".join(f)
             for f in (l.split() for l in lines)]
    expect_error(write_lines(tmp_path / "b.txt", lines), line=1, field=name, match="expected > 0")


def test_size_or_class_changes_within_vehicle(tmp_path, raw_file):
    expect_error(corrupt(tmp_path, raw_file, 3, 8, "99.5"), line=4, field="v_Length", match="constant")
    expect_error(corrupt(tmp_path, raw_file, 3, 9, "7.25"), line=4, field="v_Width", match="constant")


@pytest.mark.parametrize("value", ["4", "0", "2.5"])
def test_bad_class(tmp_path, raw_file, value):
    expect_error(corrupt(tmp_path, raw_file, 5, 10, value), line=6, field="v_Class", match="motorcycle")


@pytest.mark.parametrize("field,name,value", [(0, "Vehicle_ID", "-3"), (0, "Vehicle_ID", "1.5"),
                                              (13, "Lane_ID", "-1"), (13, "Lane_ID", "2.5"),
                                              (1, "Frame_ID", "3e12")])
def test_bad_integers(tmp_path, raw_file, field, name, value):
    expect_error(corrupt(tmp_path, raw_file, 5, field, value), line=6, field=name, match="integer")


def test_duplicate_row(tmp_path, raw_file):
    lines = lines_of(raw_file)
    path = write_lines(tmp_path / "d.txt", lines[:4] + [lines[3]] + lines[4:])
    expect_error(path, line=5, field="Frame_ID", match="duplicate .* line 4")


def test_duplicate_row_in_csv(tmp_path, raw_file):
    lines = to_csv(lines_of(raw_file))
    path = write_lines(tmp_path / "d.csv", lines + [lines[2]])
    expect_error(path, line=len(lines) + 1, field="Frame_ID", match="duplicate .* line 3")


def test_frames_out_of_order(tmp_path, raw_file):
    lines = lines_of(raw_file)
    lines[2], lines[3] = lines[3], lines[2]
    expect_error(write_lines(tmp_path / "o.txt", lines), line=4, field="Frame_ID", match="goes back")


def test_frame_gap(tmp_path, raw_file):
    lines = lines_of(raw_file)
    del lines[5]
    expect_error(write_lines(tmp_path / "g.txt", lines), line=6, field="Frame_ID", match="jumps")


def test_vehicle_blocks_in_any_order(tmp_path, raw_file, table):
    """Raw files need not list vehicles by id, only each vehicle's rows by frame."""
    lines = lines_of(raw_file)
    ids = [l.split()[0] for l in lines]
    last = [l for l, i in zip(lines, ids) if i == ids[-1]]
    path = write_lines(tmp_path / "r.txt", last + [l for l, i in zip(lines, ids) if i != ids[-1]])
    assert_same_table(table, read_ngsim(path)[0])


def test_binary_and_stray_carriage_return(tmp_path, raw_file):
    data = raw_file.read_bytes()
    lines = data.split(b"\n")
    (tmp_path / "nul.txt").write_bytes(b"\n".join(lines[:3] + [lines[3] + b"\x00"] + lines[4:]))
    expect_error(tmp_path / "nul.txt", line=4, match="binary")
    (tmp_path / "cr.txt").write_bytes(b"\n".join(lines[:3] + [lines[3].replace(b" ", b"\r", 1)] + lines[4:]))
    expect_error(tmp_path / "cr.txt", line=4, match="carriage return")


def test_non_utf8_bytes(tmp_path, raw_file):
    expect_error(corrupt(tmp_path, raw_file, 1, 5, "\u00ff12"), line=2, field="Local_Y")
