"""Tests of the drivers' lane-keeping wander in generated scenes (ppuu.data.sumo.wander)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ppuu.data.pipeline import build_scene, meta_for_site
from ppuu.data.quality import overlapping_pairs
from ppuu.data.sites import LANE_WIDTH, get_site
from ppuu.data.sumo import generate_traffic
from ppuu.data.sumo.lateral import motion_heading, off_road
from ppuu.data.sumo.wander import add_lane_wander, lane_wander_offsets, manoeuvre_fade
from tests.sumo_available import needs_sumo


def _table(rows: list[tuple]) -> pd.DataFrame:
    """A raw table from (vehicle_id, frame, x, y, width) rows; cars 4.5 m long in lane 2."""
    t = pd.DataFrame(rows, columns=["vehicle_id", "frame", "x", "y", "width"])
    return t.assign(length=4.5, lane=2, vclass=2)


def test_offsets_depend_on_the_position_along_the_road_only_and_stay_in_the_room():
    rng = np.random.default_rng(0)
    n = 20_000
    vid = np.repeat(np.arange(20), n // 20)
    x = np.tile(np.linspace(0.0, 2_000.0, n // 20), 20)
    room = np.full(n, 10.0)                        # room enough that the squashing hardly acts
    offset = lane_wander_offsets(vid, x, room, rng, sdlp=0.2)
    per_vehicle = pd.Series(offset).groupby(vid).std()
    assert 0.12 < per_vehicle.mean() < 0.28        # about the asked standard deviation
    assert np.abs(offset).max() < 1.0
    # a vehicle standing still (x repeated) keeps the same offset: no sideways motion without forward motion
    again = lane_wander_offsets(np.array([0, 0]), np.array([5.0, 5.0]), np.array([1.0, 1.0]),
                                np.random.default_rng(1), sdlp=0.2)
    assert again[0] == again[1]
    tight = lane_wander_offsets(vid, x, np.full(n, 0.1), np.random.default_rng(0), sdlp=0.2)
    assert np.abs(tight).max() <= 0.1
    assert not lane_wander_offsets(vid, x, np.zeros(n), np.random.default_rng(0), sdlp=0.2).any()
    # the curvature of the weave (second difference over x) is that of gentle steering
    curvature = np.diff(offset[:n // 20], 2) / np.diff(x[:n // 20])[0] ** 2
    assert 1e-4 < np.abs(curvature).max() < 0.02
    with pytest.raises(ValueError, match="wavelengths"):
        lane_wander_offsets(vid, x, room, rng, sdlp=0.2, wavelengths=(100.0, 50.0))


def test_the_weave_fades_out_at_a_lane_change_and_not_across_vehicles():
    x = np.arange(0.0, 200.0, 1.0)
    y = np.where(x < 100, -5.0, -1.5)               # vehicle 1 changes lane at x = 100 m in one step
    y = np.r_[y, np.full(len(x), -9.0)]             # vehicle 2 never does
    vid = np.r_[np.ones(len(x), int), np.full(len(x), 2)]
    weight = manoeuvre_fade(vid, np.r_[x, x], y, fade=30.0)
    first, second = weight[:len(x)], weight[len(x):]
    assert first[99] == 0 and first[100] == 0       # the rows either side of the step
    assert first[:60].min() == 1 and first[140:].min() == 1
    assert np.all(np.diff(first[60:100]) <= 0) and np.all(np.diff(first[100:140]) >= 0)
    assert (second == 1).all()


def test_weaving_vehicles_keep_their_lanes_and_never_touch():
    # two cars side by side in neighbouring lanes, a third 1 m ahead of the first, driving 200 m
    frames = np.arange(200)
    rows = []
    for vehicle, y0, dx in ((1, -1.5 * LANE_WIDTH, 0.0), (2, -2.5 * LANE_WIDTH, 0.0), (3, -1.5 * LANE_WIDTH, 5.5)):
        rows += [(vehicle, int(f), 50.0 + dx + f, y0, 2.0) for f in frames]
    table = _table(rows)
    site = get_site("i80")
    out, info = add_lane_wander(table, site, sdlp=0.3, rng=np.random.default_rng(3))
    pd.testing.assert_frame_equal(out.drop(columns="y"), table.drop(columns="y"))
    shift = out["y"].to_numpy() - table["y"].to_numpy()
    assert np.abs(shift).max() > 0.05                                   # they weave
    assert np.abs(shift).max() <= (LANE_WIDTH - 2.0) / 2 - 0.2 + 1e-9  # inside the lane, 0.2 m from its lines
    heading = motion_heading(out["vehicle_id"].to_numpy(), out["x"].to_numpy(), out["y"].to_numpy())
    assert len(overlapping_pairs(out.assign(heading=heading))) == 0
    assert info["vehicles_weaving"] + info["vehicles_kept_on_track"] == 3
    same, _ = add_lane_wander(table, site, sdlp=0.0, rng=np.random.default_rng(3))
    pd.testing.assert_frame_equal(same, table)


def test_a_vehicle_whose_weave_would_touch_another_keeps_its_track():
    # two trucks 2.6 m wide, centred 2.9 m apart: no room to weave without touching
    frames = np.arange(150)
    rows = [(1, int(f), 50.0 + f, -1.8, 2.6) for f in frames] + [(2, int(f), 50.0 + f, -4.7, 2.6) for f in frames]
    table = _table(rows)
    out, info = add_lane_wander(table, get_site("i80"), sdlp=0.3, rng=np.random.default_rng(0), margin=-0.5)
    heading = motion_heading(out["vehicle_id"].to_numpy(), out["x"].to_numpy(), out["y"].to_numpy())
    assert len(overlapping_pairs(out.assign(heading=heading))) == 0
    assert info["vehicles_kept_on_track"] >= 1


@needs_sumo
def test_generated_drivers_steer_with_wander_and_nothing_else_changes():
    kw = dict(site="i80", minutes=0.5, seed=2, progress=False, warmup=120.0)
    plain, _ = generate_traffic(**kw)
    weaving, info = generate_traffic(lane_wander=0.2, **kw)
    # the same SUMO run: the same vehicles at the same positions along the road
    pd.testing.assert_frame_equal(plain.drop(columns=["y", "lane"]), weaving.drop(columns=["y", "lane"]))
    assert 0.1 < info["lane_wander"]["sdlp_m"] < 0.25
    assert info["lane_wander"]["vehicles_weaving"] > 0.9 * info["n_vehicles"]
    site = get_site("i80")
    heading = motion_heading(weaving["vehicle_id"].to_numpy(), weaving["x"].to_numpy(), weaving["y"].to_numpy())
    on_road_before = ~off_road(site, plain["x"].to_numpy(), plain["y"].to_numpy(),
                               motion_heading(plain["vehicle_id"].to_numpy(), plain["x"].to_numpy(),
                                              plain["y"].to_numpy()),
                               plain["length"].to_numpy(), plain["width"].to_numpy())
    off_after = off_road(site, weaving["x"].to_numpy(), weaving["y"].to_numpy(), heading,
                         weaving["length"].to_numpy(), weaving["width"].to_numpy())
    assert not (on_road_before & off_after).any()

    def steering_share(table: pd.DataFrame) -> float:
        scene = build_scene(table, meta_for_site("wander-test", "i80", "sumo", table, seed=0), source="SUMO i80")
        t = scene.trajectories
        moving = t["speed"].to_numpy() > 3.0
        return float((np.abs(t["curvature"].to_numpy()[moving]) > 1e-4).mean())

    # SUMO's drivers steer only in lane changes; weaving, most moving frames have some steering
    assert steering_share(plain) < 0.2
    assert steering_share(weaving) > 0.6
    with pytest.raises(ValueError, match="lane_wander"):
        generate_traffic(lane_wander=2.0, **kw)
