"""Tests of the SUMO scene generator (data.sumo): short runs, a few seconds each.

The generated scenes are shared per module (one I-80 and one US-101 run), so the
whole file runs in about 20 s on two cores.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data.schema import RAW_COLUMNS, validate_table
from data.sites import LANE_WIDTH, get_site
from data.sumo import SumoError, generate_traffic
from data.sumo.fcd import count_lane_changes, fcd_to_raw_table, longest_runs
from data.sumo.tools import find_binary, run_tool

try:
    find_binary("sumo")
    find_binary("netconvert")
    HAVE_SUMO = True
except SumoError:
    HAVE_SUMO = False

needs_sumo = pytest.mark.skipif(not HAVE_SUMO, reason="SUMO not installed (pip install eclipse-sumo)")

MAX_LATERAL_STEP = 0.25
"""m per 0.1 s frame. A lane change of 3.66 m over 3 s moves 0.122 m per frame; a jump would be metres."""


@pytest.fixture(scope="module")
def i80():
    # 150 s of warm-up is enough for the I-80 queue to fill the section
    return generate_traffic("i80", minutes=0.5, seed=0, progress=False, warmup=150.0)


@pytest.fixture(scope="module")
def us101():
    return generate_traffic("us101", minutes=0.5, seed=0, progress=False, warmup=240.0)


def _speeds(table: pd.DataFrame) -> np.ndarray:
    """Finite-difference speeds along x, m/s, within each vehicle."""
    vid = table["vehicle_id"].to_numpy()
    same = vid[1:] == vid[:-1]
    return np.diff(table["x"].to_numpy())[same] * 10.0


def _lateral_steps(table: pd.DataFrame) -> np.ndarray:
    vid = table["vehicle_id"].to_numpy()
    same = vid[1:] == vid[:-1]
    return np.abs(np.diff(table["y"].to_numpy()))[same]


# --- pure functions (no SUMO) -----------------------------------------------------------------

def test_longest_runs_keeps_longest_contiguous_block():
    vehicle = np.array([1, 1, 1, 1, 1, 2, 2, 3])
    frame = np.array([0, 1, 5, 6, 7, 3, 4, 9])
    keep = longest_runs(vehicle, frame)
    assert keep.tolist() == [False, False, True, True, True, True, True, True]


def test_longest_runs_tie_goes_to_first():
    keep = longest_runs(np.array([4, 4, 4, 4]), np.array([0, 1, 3, 4]))
    assert keep.tolist() == [True, True, False, False]


def _fcd(rows):
    """Synthetic FCD arrays from (time, id, type, x, y, lane) tuples."""
    t, ids, types, x, y, lanes = zip(*rows)
    out = {"time": np.array(t, float), "x": np.array(x, float), "y": np.array(y, float)}
    for name, values in (("id", ids), ("type", types), ("lane", lanes)):
        codes, uniques = pd.factorize(pd.Series(values))
        out[name + "_codes"] = codes.astype(np.int32)
        out[name + "_values"] = np.asarray(uniques, dtype=object)
    return out


def test_fcd_conversion_front_to_centre_lanes_and_section():
    rows = [
        # vehicle "a", 4 m car, front at x = 3 (centre 1), then inside, then beyond the section end
        (100.0, "a", "car", 3.0, -1.8, "merge_6"),
        (100.1, "a", "car", 4.0, -1.8, "merge_6"),
        (100.2, "a", "car", 13.0, -1.8, "merge_6"),
        # vehicle "b": centre before the section at its first sample (dropped), then in lane 7
        (100.0, "b", "truck", 5.0, -23.8, "merge_0"),
        (100.1, "b", "truck", 7.0, -23.8, "merge_0"),
        # an unknown lane (outside the section edges) is dropped
        (100.1, "c", "car", 50.0, -60.0, "ramp_0"),
        # before frame 0 (warm-up) is dropped
        (99.9, "a", "car", 2.5, -1.8, "merge_6"),
    ]
    table = fcd_to_raw_table(
        _fcd(rows), t0=100.0, n_frames=10, section_length=10.0,
        lane_ids={"merge_6": 1, "merge_0": 7}, type_sizes={"car": (4.0, 1.8, 2), "truck": (12.0, 2.5, 3)})
    validate_table(table)
    a = table[table.vehicle_id == 1]
    assert a["frame"].tolist() == [0, 1]
    assert a["x"].tolist() == pytest.approx([1.0, 2.0])
    assert a["lane"].tolist() == [1, 1]
    b = table[table.vehicle_id == 2]
    assert b["frame"].tolist() == [1] and b["x"].tolist() == pytest.approx([1.0])
    assert b["lane"].tolist() == [7] and b["vclass"].tolist() == [3]
    assert b["length"].tolist() == [12.0] and b["width"].tolist() == [2.5]
    assert set(table.vehicle_id) == {1, 2}


def test_missing_binary_says_how_to_install():
    with pytest.raises(SumoError, match="pip install eclipse-sumo"):
        find_binary("no-such-sumo-tool")


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        generate_traffic("i80", minutes=0, progress=False)
    with pytest.raises(ValueError, match="known sites"):
        generate_traffic("i405", minutes=1, progress=False)


@needs_sumo
def test_sumo_failure_reports_stderr(tmp_path):
    with pytest.raises(SumoError, match="no-such-option"):
        run_tool("sumo", ["--no-such-option"], cwd=tmp_path)


# --- generated scenes -------------------------------------------------------------------------

@needs_sumo
@pytest.mark.parametrize("scene", ["i80", "us101"])
def test_table_shape_and_dtypes(scene, request):
    table, info = request.getfixturevalue(scene)
    validate_table(table, source=scene)
    assert {c: str(t) for c, t in table.dtypes.items()} == RAW_COLUMNS
    assert table["frame"].min() == 0 and table["frame"].max() == 299
    site = get_site(scene)
    assert table["x"].between(0.0, site.section_length).all()
    assert (table["y"] < 0).all()
    json.dumps(info)  # JSON-able, for SceneMeta.notes
    assert info["seed"] == 0 and info["n_vehicles"] == table["vehicle_id"].nunique()
    assert info["lane_change_duration_s"] == 3.0 and info["sumo_version"][0].isdigit()


@needs_sumo
def test_lanes_i80(i80):
    table, _ = i80
    assert set(table["lane"].unique()) == set(range(1, 8))


@needs_sumo
def test_lanes_us101(us101):
    table, _ = us101
    lanes = set(table["lane"].unique())
    assert set(range(1, 7)) <= lanes <= set(range(1, 9))


@needs_sumo
@pytest.mark.parametrize("scene", ["i80", "us101"])
def test_lane_ids_match_lateral_position(scene, request):
    """A vehicle labelled Lane_ID k is inside that lane's band of data.sites (main lane k: centre at
    -(k - 0.5) w; ramps and auxiliary lanes: their y_left / y_right), within a few cm."""
    table, _ = request.getfixturevalue(scene)
    site = get_site(scene)
    bands = {k: (-k * LANE_WIDTH, -(k - 1) * LANE_WIDTH) for k in range(1, len(site.lane_widths) + 1)}
    bands.update({r.lane: (r.y_right, r.y_left) for r in site.ramps})
    lo = table["lane"].map(lambda k: bands[k][0])
    hi = table["lane"].map(lambda k: bands[k][1])
    assert (table["y"] >= lo - 0.05).all() and (table["y"] <= hi + 0.05).all()
    main = table["lane"] <= len(site.lane_widths)  # (ramp traffic is mostly mid-merge)
    off_centre = (table["y"] - (lo + hi) / 2)[main].groupby(table["lane"][main]).median()
    assert off_centre.abs().max() < 0.2


@needs_sumo
@pytest.mark.parametrize("scene", ["i80", "us101"])
def test_dense_traffic(scene, request):
    table, _ = request.getfixturevalue(scene)
    speeds = _speeds(table)
    assert speeds.mean() < 10.0
    assert speeds.min() > -0.5  # never backwards
    # full road at both ends of the period: about a vehicle per 25 m of lane at frame 0 and the last frame
    per_frame = table.groupby("frame").size()
    lane_metres = get_site(scene).section_length * len(get_site(scene).lane_widths)
    assert per_frame.iloc[0] > lane_metres / 25 and per_frame.iloc[-1] > lane_metres / 25


@needs_sumo
@pytest.mark.parametrize("scene", ["i80", "us101"])
def test_continuous_lateral_motion(scene, request):
    table, info = request.getfixturevalue(scene)
    assert _lateral_steps(table).max() <= MAX_LATERAL_STEP
    assert count_lane_changes(table) > 10 and info["lane_changes"] == count_lane_changes(table)


@needs_sumo
def test_sizes_by_class(i80, us101):
    v = pd.concat([t.groupby("vehicle_id").first() for t, _ in (i80, us101)])  # one row per vehicle
    cars, trucks, motos = (v[v.vclass == c] for c in (2, 3, 1))
    assert len(cars) > 0.85 * len(v) and len(trucks) > 0
    assert cars["length"].between(3.5, 6.0).all() and cars["width"].between(1.5, 2.2).all()
    assert 4.2 < cars["length"].mean() < 4.8 and cars["length"].std() > 0.1
    assert trucks["length"].between(10.0, 16.0).all() and trucks["width"].between(2.3, 2.7).all()
    assert (motos["length"] == 2.2).all() and (motos["width"] == 0.8).all()


@needs_sumo
def test_same_seed_same_table_other_seed_differs():
    kw = dict(site="i80", minutes=0.2, progress=False, warmup=30.0)
    a, info_a = generate_traffic(seed=0, **kw)
    b, info_b = generate_traffic(seed=0, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert info_a["n_vehicles"] == info_b["n_vehicles"]
    c, _ = generate_traffic(seed=1, **kw)
    assert len(a) != len(c) or not np.array_equal(a["x"].to_numpy(), c["x"].to_numpy())


@needs_sumo
def test_keep_files(tmp_path):
    _, info = generate_traffic("us101", minutes=0.1, seed=3, workdir=tmp_path, keep_files=True,
                               progress=False, warmup=20.0)
    folder = tmp_path / "sumo" / "us101-seed3"
    assert info["files"] == str(folder)
    for name in ("net.net.xml", "routes.rou.xml", "fcd.parquet", "net.nod.xml", "net.edg.xml"):
        assert (folder / name).is_file(), name
