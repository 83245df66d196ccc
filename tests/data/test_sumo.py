"""Tests of the SUMO scene generator (ppuu.data.sumo): short runs, a few seconds each.

The generated scenes are shared per module (one I-80 and one US-101 run), so the
whole file runs in about 30 s on two cores.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from ppuu.data.pipeline import build_scene, import_ngsim_scene, meta_for_site
from ppuu.data.report import lane_statistics
from ppuu.data.schema import RAW_COLUMNS, validate_table
from ppuu.data.sites import LANE_WIDTH, get_site
from ppuu.data.sumo import SumoError, generate_traffic
from ppuu.data.sumo.demand import DEFAULT_DEMAND, class_rates
from ppuu.data.sumo.fcd import count_lane_changes, fcd_to_raw_table, longest_runs
from ppuu.data.quality import overlapping_pairs
from ppuu.data.schema import as_raw_table
from ppuu.data.sumo.lateral import lane_at, motion_heading, off_road, retime_lateral_motion, retimed_lateral_positions
from ppuu.data.sumo.network import HOV_CLASSES, HOV_SPEED, i80_layout, write_plain_xml
from ppuu.data.sumo.tools import find_binary, run_tool
from tests.shared_data import shared_data_dir
from tests.sumo_available import needs_sumo


MAX_LATERAL_STEP = 0.25
"""m per 0.1 s frame. A lane change of 3.66 m over 3 s moves 0.122 m per frame; a jump would be metres."""


@pytest.fixture(scope="module")
def i80():
    # the default warm-up (300 s) fills the section with the queue (150 s no longer does, with the
    # general traffic in five lanes); the HOV lane is full after a minute (its carpools cross the 650 m
    # from their source to the section's end in under a minute); two minutes give it about 50-70
    # vehicles to compare with the real lane 1
    return generate_traffic("i80", minutes=2.0, seed=0, progress=False, warmup=300.0)


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


def _scene(table: pd.DataFrame, site: str):
    """The table as a scene (smoothed, per-lane statistics available), as data.pipeline.generate_sumo_scene builds it."""
    return build_scene(table, meta_for_site(f"{site}-test", site, "sumo", table, seed=0), source=f"SUMO {site}")


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


def test_i80_has_an_hov_lane_with_its_own_source():
    """Lane 1 of every I-80 main edge admits only carpools and motorcycles, at the HOV speed limit; the
    carpools have a route of their own, starting on a one-lane source edge (see data.sumo.network)."""
    layout = i80_layout()
    assert layout.routes["hov"][0] == "hov_up" and layout.edge("hov_up").lanes == (1,)
    assert layout.routes["hov"][1:] == layout.routes["main"][1:]
    rates = class_rates(layout, DEFAULT_DEMAND["i80"])
    assert rates[("hov", "hov")] == 1300.0 and not any(r == "hov" for r, p in rates if p != "hov")
    assert ("main", "hov") not in rates


def test_hov_lane_restriction_in_netconvert_input(tmp_path):
    """Every edge holding Lane_ID 1 restricts exactly that lane (and no other) in netconvert's input."""
    layout = i80_layout()
    _, edges, _ = write_plain_xml(layout, tmp_path)
    restricted = []
    for edge in ET.parse(edges).getroot():
        spec = layout.edge(edge.get("id"))
        lanes = edge.findall("lane")
        assert len(lanes) == (1 if 1 in spec.lanes else 0)
        for lane in lanes:
            assert spec.lanes[int(lane.get("index"))] == 1
            assert lane.get("allow") == HOV_CLASSES and float(lane.get("speed")) == HOV_SPEED
            restricted.append(spec.id)
    assert restricted == ["hov_up", "up2", "merge", "sec", "bneck", "exit"]


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


# --- lane changes re-drawn over the forward motion (no SUMO) ------------------------------------

def _crab(stop_x: float = 50.0, lane_y: float = -12.8) -> pd.DataFrame:
    """One car as SUMO moves it in a queue: driving at 2 m/s for 8 s, then standing at ``stop_x`` for
    6 s while it slides a lane to the left (3.66 m at 1.22 m/s from 0.5 s into the stop), then driving
    off at 2 m/s for 10 s."""
    t = np.arange(240) * 0.1
    x = stop_x - 16.0 + 2.0 * (np.minimum(t, 8.0) + np.clip(t - 14.0, 0, None))
    y = lane_y + np.clip((t - 8.5) * 1.22, 0, LANE_WIDTH)
    n = len(t)
    return as_raw_table({"vehicle_id": np.ones(n, int), "frame": np.arange(n), "x": x, "y": y,
                         "length": np.full(n, 4.5), "width": np.full(n, 1.8), "vclass": np.full(n, 2),
                         "lane": np.full(n, 4)})


def _headings(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each row's direction of motion as heading (as the simulator will turn it)."""
    return table.assign(heading=motion_heading(table["vehicle_id"].to_numpy(), table["x"].to_numpy(),
                                               table["y"].to_numpy()))


def test_lane_change_is_redrawn_over_the_forward_motion():
    """No sideways motion while standing; the lateral path spread over enough road for the car's
    corners to swing out by at most 0.5 m (24 m for a 4.5 m car), ending where SUMO ends it."""
    table = _crab()
    x, y = table["x"].to_numpy(), table["y"].to_numpy()
    new, manoeuvre = retimed_lateral_positions(table["vehicle_id"].to_numpy(), x, y, table["length"].to_numpy())
    standing = np.diff(x) == 0
    assert standing.sum() == 60 and np.abs(np.diff(new))[standing].max() == 0
    sideways = np.flatnonzero(np.abs(np.diff(new)) > 1e-9)
    assert x[sideways[-1] + 1] - x[sideways[0]] > 20.0
    slope = np.abs(np.diff(new))[~standing] / np.diff(x)[~standing]
    assert slope.max() < np.tan(np.arcsin(1 / 4.5)) * 1.01                 # 0.5 m / (4.5 m / 2)
    assert new[-1] == pytest.approx(y[-1]) and new[0] == pytest.approx(y[0])
    assert new.min() >= y.min() and new.max() <= y.max()
    assert (manoeuvre >= 0).sum() > 100


def test_redrawn_lane_change_gives_way_to_neighbours_and_stays_on_the_road():
    """A re-drawn manoeuvre that would overlap another vehicle (a car standing in the target lane,
    close to the lane line, beside the road the changing car drifts over) or leave the road (a merge at
    the end of the on-ramp) is drawn another way, never worse than SUMO's; lane labels follow the
    re-drawn positions."""
    site = get_site("i80")
    car = _crab()
    neighbour = car.assign(vehicle_id=2, x=42.5, y=-10.4, lane=3)
    table = pd.concat([car, neighbour], ignore_index=True)
    assert len(overlapping_pairs(_headings(table))) == 0
    out, info = retime_lateral_motion(table, site)
    centred, _ = retimed_lateral_positions(table["vehicle_id"].to_numpy(), table["x"].to_numpy(),
                                           table["y"].to_numpy(), table["length"].to_numpy())
    assert len(overlapping_pairs(_headings(table.assign(y=centred)))) > 0      # drawn centred, it touches
    assert len(overlapping_pairs(_headings(out))) == 0
    assert info["manoeuvres"] == 1 and info["manoeuvres_by_choice"]["after"] == 1
    assert (out["y"] != table["y"]).any()
    np.testing.assert_array_equal(out["lane"], lane_at(site, out["x"].to_numpy(), out["y"].to_numpy()))

    ramp = _crab(stop_x=210.5, lane_y=-23.78)              # lane 7 ends at 213 m: its front stops at 212.75
    merged, info = retime_lateral_motion(ramp, site)

    def off(t: pd.DataFrame) -> np.ndarray:
        h = _headings(t)
        return off_road(site, h["x"].to_numpy(), h["y"].to_numpy(), h["heading"].to_numpy(),
                        h["length"].to_numpy(), h["width"].to_numpy())

    assert not (off(merged) & ~off(ramp)).any()
    assert info["manoeuvres_by_choice"]["centred"] == 0 and (merged["y"] != ramp["y"]).any()


# --- generated scenes -------------------------------------------------------------------------

@needs_sumo
@pytest.mark.parametrize("scene", ["i80", "us101"])
def test_table_shape_and_dtypes(scene, request):
    table, info = request.getfixturevalue(scene)
    validate_table(table, source=scene)
    assert {c: str(t) for c, t in table.dtypes.items()} == RAW_COLUMNS
    assert table["frame"].min() == 0 and table["frame"].max() == info["n_frames"] - 1
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


LATERAL_SPEED_BOUND = (0.15, 0.05)
"""|dy/dt| <= 0.15 v + 0.05 m/s: a heading under about 9 degrees (real lane changes: 2-6 degrees)."""


def _share_within_lateral_bound(table: pd.DataFrame) -> float:
    """Share of the samples (every vehicle, every frame) whose lateral speed |dy/dt| is within
    :data:`LATERAL_SPEED_BOUND` of the forward speed v = dx/dt (finite differences over 0.1 s)."""
    vid = table["vehicle_id"].to_numpy()
    same = vid[1:] == vid[:-1]
    vx = np.diff(table["x"].to_numpy())[same] * 10.0
    vy = np.abs(np.diff(table["y"].to_numpy()))[same] * 10.0
    factor, offset = LATERAL_SPEED_BOUND
    return float(np.mean(vy <= factor * vx + offset))


@needs_sumo
@pytest.mark.xfail(strict=True, reason="lane changes are re-drawn at up to 13 degrees (a car's corners swing out "
                   "0.5 m at most, ppuu.data.sumo.lateral), not 9")
def test_lateral_speed_bounded_by_forward_speed(i80):
    """Target: vehicles move sideways like real cars: |dy/dt| <= 0.15 v + 0.05 m/s, a heading under
    about 9 degrees, for >= 99.9 % of the samples. Not met (measured on this scene: 98.2 % from SUMO
    as is, 98.6 % with its lane changes re-drawn over the forward motion); strict, so that it fails
    once it holds and the marker can go. test_lateral_speed_no_worse_than_measured guards today's level."""
    table, _ = i80
    assert _share_within_lateral_bound(table) >= 0.999


@needs_sumo
def test_lateral_speed_no_worse_than_measured(i80):
    """Today's level of the lateral-speed bound above (98.6 % of this scene's samples), with some
    margin; and no crabbing: a vehicle moves sideways faster than forwards (a heading over 45
    degrees, which SUMO's lane changes at crawling speed had in 0.5 % of the samples) in under
    0.05 % of them (measured: 0.02 %)."""
    table, _ = i80
    assert _share_within_lateral_bound(table) >= 0.97
    vid = table["vehicle_id"].to_numpy()
    same = vid[1:] == vid[:-1]
    forward = np.diff(table["x"].to_numpy())[same]
    sideways = np.abs(np.diff(table["y"].to_numpy()))[same]
    assert np.mean(sideways > forward + 0.005) < 0.0005


@needs_sumo
def test_generated_scene_flags_few_vehicles(i80):
    """Issue 7: on a generated scene under 2 % of the vehicles are flagged kinematics or unfollowable
    (20 % were flagged kinematics before, 92 % of them for crawling); under 3 % overlap (trucks that
    change lanes at walking pace, turned along their path, touch a neighbour)."""
    table, _ = i80
    vehicles = _scene(table, "i80").vehicles
    flags = vehicles["flags"].str.split(",")
    assert flags.map(lambda f: "kinematics" in f or "unfollowable" in f).mean() < 0.02
    assert flags.map(lambda f: "overlap" in f).mean() < 0.03
    assert not flags.map(lambda f: "jump" in f).any()


HUMAN_SCENES = ((1.0, 1, 150.0), (1.0, 2, 150.0))
"""(minutes, seed, warm-up s) of the short scenes on which the recorded human must arrive, besides the
suite's 90-second scene (seed 0): about 10 s each to generate and replay on two cores."""


@needs_sumo
def test_recorded_human_arrives_on_generated_scenes(small_scene):
    """Issue 7: replaying its own recorded actions, the ego car arrives in >= 99 % of the episodes of
    every split, on several seeds and lengths (measured by hand on 1-, 2-, 4- and 15-minute scenes: see
    the report of this change). Before, a 4-minute scene (seed 5) saw 2 collisions in 28 test episodes,
    with tracks that smoothing had moved sideways and cars crawling sideways at 40-90 degrees."""
    from ppuu.data.pipeline import generate_sumo_scene
    from ppuu.simulator.evaluate import evaluate

    scenes = [small_scene] + [generate_sumo_scene("i80", minutes=m, seed=s, progress=False, warmup=w)
                              for m, s, w in HUMAN_SCENES]
    for scene in scenes:
        episodes = evaluate(scene, "human", split=None, progress=False)
        assert len(episodes) > 50, scene.meta.name
        arrived = (episodes["outcome_name"] == "arrived").mean()
        assert arrived >= 0.99, (scene.meta.name, episodes.loc[episodes["outcome_name"] != "arrived"])


@needs_sumo
def test_generated_hov_lane_is_like_real_lane1(i80):
    """The HOV lane (lane 1) of a generated I-80 scene carries the same kind of traffic as the real lane 1
    of I-80 at 4:00-4:15 (shared data, ngsim-i80-lane1): mean speed and median bumper-to-bumper gap
    within a factor of 2 of the real ones, and both lanes stopped (< 1 m/s) in under 10 % of their
    samples; meanwhile the general lanes beside it are in stop-and-go, far slower.

    Why a factor of 2: it tells traffic states apart and no more. Free flow and congestion differ by a
    factor of 3-5 in speed and in gap (in this scene: about 14 m/s and 20 m in the HOV lane against
    5-7 m/s and 9-11 m in the general lanes), so two lanes within a factor of 2 of each other are in
    the same state; a tighter band would test one seed's two minutes against one real quarter-hour.
    Measured (2 minutes after the default 300 s warm-up; the default 15-minute scene gives 14.4 m/s and
    22 m): speed ratio about 0.85, gap ratio about 0.75.
    """
    path = shared_data_dir() / "ngsim-i80-lane1" / "i80-lane1-original.txt.gz"
    real = lane_statistics(import_ngsim_scene([path], site="lane1")).set_index("lane").loc[1]
    table, _ = i80
    stats = lane_statistics(_scene(table, "i80")).set_index("lane")
    hov = stats.loc[1]
    assert 0.5 <= hov["mean_speed"] / real["mean_speed"] <= 2.0
    assert 0.5 <= hov["median_gap"] / real["median_gap"] <= 2.0
    assert hov["stopped"] < 0.1 and real["stopped"] < 0.1
    assert hov["vehicles"] >= 25
    general = stats.loc[2:6]
    assert (general["mean_speed"] < 10.0).all() and (general["mean_speed"] < hov["mean_speed"] / 1.5).all()


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
