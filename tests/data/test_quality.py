"""Bad-trajectory detection: each injected problem is flagged, clean traffic is not, the
vectorised overlap sweep agrees with a brute-force check, and the real lane-1 data is
mostly clean."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ppuu.data.errors import DataFormatError
from ppuu.data.quality import (
    PROBLEMS,
    QualityConfig,
    detect_bad_vehicles,
    longest_run,
    overlapping_pairs,
)
from ppuu.data.schema import RAW_COLUMNS, as_raw_table
from ppuu.data.smoothing import SmoothingConfig, smooth_table
from tests.shared_data import read_ngsim_table as read_ngsim
from tests.shared_data import shared_data

DT = 0.1



LANE_Y = {lane: -(lane - 0.5) * 3.7 for lane in range(1, 7)}


def traffic(n_frames: int = 80, seed: int = 0) -> dict[int, list[np.ndarray]]:
    """Clean dense traffic: 3 lanes x 5 cars, 20 m apart, 10-15 m/s, noisy positions.

    Returns {vehicle_id: [x (T,), y (T,)]} (mutable, to inject problems)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * DT
    tracks = {}
    for lane, k in itertools.product((1, 2, 3), range(5)):
        speed = 10 + lane
        x = 20 * k + speed * t + rng.normal(0, 0.2, n_frames)
        y = LANE_Y[lane] + rng.normal(0, 0.1, n_frames)
        tracks[lane * 10 + k] = [x, y]
    return tracks


def smoothed(tracks: dict[int, list[np.ndarray]], config: SmoothingConfig | None = None) -> pd.DataFrame:
    cols = {c: [] for c in RAW_COLUMNS}
    for vid, (x, y) in tracks.items():
        n = len(x)
        for name, value in (("vehicle_id", vid), ("length", 4.5), ("width", 1.8), ("vclass", 2), ("lane", 1)):
            cols[name].append(np.full(n, value))
        cols["frame"].append(np.arange(n))
        cols["x"].append(np.asarray(x, float))
        cols["y"].append(np.asarray(y, float))
    return smooth_table(as_raw_table({c: np.concatenate(v) for c, v in cols.items()}), config=config)


def flags_of(quality: pd.DataFrame) -> dict[int, str]:
    return dict(zip(quality["vehicle_id"], quality["flags"]))


def test_clean_traffic_has_no_flags():
    quality = detect_bad_vehicles(smoothed(traffic()))
    assert list(quality.columns) == ["vehicle_id", *PROBLEMS, "flags"]
    assert len(quality) == 15
    assert (quality["flags"] == "").all()
    assert not quality[list(PROBLEMS)].to_numpy().any()


def test_frozen_then_jumping_track_is_a_jump():
    tracks = traffic()
    x = tracks[21][0]
    x[30:40] = x[30]                     # the tracker freezes for 1 s, then catches up 11 m at once
    flags = flags_of(detect_bad_vehicles(smoothed(tracks)))
    assert flags[21] == "jump"
    assert all(f == "" for vid, f in flags.items() if vid != 21)


def test_impossible_single_step_is_a_jump_but_small_spikes_are_not():
    tracks = traffic()
    tracks[12][0][50:] += 7.0            # teleport 7 m forward in one frame
    tracks[32][0][40] += 1.5             # an ordinary NGSIM spike, smoothed away
    flags = flags_of(detect_bad_vehicles(smoothed(tracks)))
    assert "jump" in flags[12].split(",")
    assert flags[32] == ""


def test_persistent_overlap_flags_both_vehicles_only():
    tracks = traffic(n_frames=120, seed=1)
    # vehicle 13 closes smoothly (3.5 m/s^2 at most) on vehicle 14, 20 m ahead in the same lane,
    # to 2 m centre to centre, and stays there: 4.5 m cars overlapping for about 6 s
    t = np.arange(120) * DT
    u = np.clip((t - 1) / 5, 0, 1)
    tracks[13][0] = tracks[13][0] + 18 * (3 * u**2 - 2 * u**3)
    table = smoothed(tracks)
    flags = flags_of(detect_bad_vehicles(table))
    assert flags[13] == "overlap" and flags[14] == "overlap"
    assert all(f == "" for vid, f in flags.items() if vid not in (13, 14))
    pairs = overlapping_pairs(table, 0.1)
    assert set(zip(pairs["a"], pairs["b"])) == {(13, 14)}
    assert 50 <= len(pairs) <= 70
    # an overlap shorter than overlap_duration (smoothed) and raw_overlap_duration (raw) is not a problem
    longer = QualityConfig(overlap_duration=8.0, raw_overlap_duration=8.0)
    assert not detect_bad_vehicles(table, config=longer)["overlap"].any()


def test_side_by_side_in_adjacent_lanes_is_not_an_overlap():
    t = np.arange(60) * DT
    tracks = {1: [10 + 12 * t, LANE_Y[1] + 0 * t], 2: [10 + 12 * t, LANE_Y[2] + 0 * t]}
    quality = detect_bad_vehicles(smoothed(tracks))
    assert not quality["overlap"].any()


def test_implausible_acceleration_is_kinematics():
    tracks = traffic()
    t = np.arange(80) * DT
    # 15 m/s^2 braking from 25 m/s for 1.5 s: smooth positions (no jump), impossible dynamics
    speed = np.clip(25 - 15 * np.clip(t - 2, 0, None), 2.5, None)
    tracks[99] = [200 + np.concatenate([[0], np.cumsum(speed[:-1] * DT)]), LANE_Y[4] + 0 * t]
    # weaving 1.85 m left and right with a 3 s period at 20 m/s: 8 m/s^2 lateral
    tracks[98] = [400 + 20 * t, LANE_Y[5] + 1.85 * np.sin(2 * np.pi * t / 3)]
    quality = detect_bad_vehicles(smoothed(tracks)).set_index("vehicle_id")
    # (the smoother cannot follow such braking either, so its raw positions may also count as a jump)
    assert "kinematics" in quality.loc[99, "flags"].split(",")
    assert quality.loc[98, "kinematics"]
    assert (quality.drop(index=[98, 99])["flags"] == "").all()


def test_crawling_sideways_slide_is_unfollowable_not_kinematics():
    """A car creeping at 0.5 m/s while moving 1 m sideways in 1 s: a turning radius the ego car does
    not have (so no ego episode), but no implausible motion (0.5 m/s^2 at most: not kinematics)."""
    tracks = traffic()
    t = np.arange(80) * DT
    lateral = np.clip(t - 3, 0, 1)                               # 1 m to the left between 3 and 4 s
    tracks[97] = [250 + 0.5 * t, LANE_Y[2] + lateral]
    table = smoothed(tracks)
    quality = detect_bad_vehicles(table).set_index("vehicle_id")
    assert quality.loc[97, "flags"] == "unfollowable"
    assert (quality.drop(index=[97])["flags"] == "").all()
    # the frames are flagged, the track is kept (the slide is in the smoothed positions)
    slide = table[(table["vehicle_id"] == 97)]
    assert not slide["followable"].all()
    assert slide["y"].iloc[-1] - slide["y"].iloc[0] > 0.9


def test_short_and_combined_flags():
    tracks = traffic()
    tracks[7] = [np.linspace(300, 320, 20), np.full(20, LANE_Y[3])]
    tracks[8] = [np.r_[np.linspace(500, 510, 10), np.linspace(520, 530, 10)], np.full(20, LANE_Y[3])]
    flags = flags_of(detect_bad_vehicles(smoothed(tracks)))
    assert flags[7] == "short"
    assert flags[8] == "jump,short"


def test_overlap_sweep_matches_brute_force():
    rng = np.random.default_rng(7)
    n = 400
    table = pd.DataFrame({
        "vehicle_id": np.arange(n), "frame": rng.integers(0, 5, n),
        "x": rng.uniform(0, 60, n), "y": rng.uniform(-12, 0, n),
        "length": rng.uniform(3, 15, n), "width": rng.uniform(1.5, 2.6, n),
    })
    pairs = overlapping_pairs(table, tolerance=0.1)
    expected = set()
    rows = table.to_dict("records")
    for p, q in itertools.combinations(rows, 2):
        if (p["frame"] == q["frame"]
                and abs(p["x"] - q["x"]) < (p["length"] + q["length"]) / 2 - 0.1
                and abs(p["y"] - q["y"]) < (p["width"] + q["width"]) / 2 - 0.1):
            expected.add((min(p["vehicle_id"], q["vehicle_id"]), max(p["vehicle_id"], q["vehicle_id"]), p["frame"]))
    assert set(zip(pairs["a"], pairs["b"], pairs["frame"])) == expected
    assert len(expected) > 20


def test_turned_footprints_overlap_as_in_the_simulator():
    """Footprints are turned by the heading, as the simulator draws and collides them: a truck turned
    0.5 rad beside a car overlaps it, though their boxes along the road do not; random rectangles
    agree with the simulator's exact test (ppuu.simulator.collision.boxes_overlap)."""
    import torch

    from ppuu.simulator.collision import boxes_overlap

    pair = pd.DataFrame({"vehicle_id": [1, 2], "frame": [0, 0], "x": [0.0, 2.0], "y": [0.0, -3.4],
                         "length": [13.0, 4.5], "width": [2.5, 1.8], "heading": [-0.5, 0.0]})
    assert len(overlapping_pairs(pair)) == 1
    assert len(overlapping_pairs(pair.drop(columns=["heading"]))) == 0

    rng = np.random.default_rng(8)
    n = 300
    table = pd.DataFrame({
        "vehicle_id": np.arange(n), "frame": rng.integers(0, 4, n), "x": rng.uniform(0, 60, n),
        "y": rng.uniform(-12, 0, n), "length": rng.uniform(3, 15, n), "width": rng.uniform(1.5, 2.6, n),
        "heading": rng.uniform(-1.6, 1.6, n),
    })
    found = set(zip(*(overlapping_pairs(table)[c] for c in ("a", "b", "frame"))))
    t = {c: torch.tensor(table[c].to_numpy(), dtype=torch.float64) for c in ("x", "y", "length", "width", "heading")}
    centre, size = torch.stack([t["x"], t["y"]], -1), torch.stack([t["length"], t["width"]], -1)
    hit = boxes_overlap(centre, t["heading"], size, centre.expand(n, n, 2), t["heading"].expand(n, n),
                        size.expand(n, n, 2)).numpy()
    frame = table["frame"].to_numpy()
    i, j = np.nonzero(np.triu(hit & (frame[:, None] == frame[None, :]), k=1))
    assert found == set(zip(i.tolist(), j.tolist(), frame[i].tolist()))
    assert len(found) > 20


def test_recorded_speed_contradicting_the_positions_is_flagged():
    """Issue 7: a recorded speed (NGSIM v_Vel) of 500 ft/s while the positions move at 30 ft/s is a
    corrupted record; one that agrees with the smoothed speed or with the raw positions' (spiky)
    speed is not, nor is a table without recorded speeds."""
    tracks = traffic()
    tracks[32][0][40] += 1.5                                   # a position spike (smoothed away)
    table = smoothed(tracks)
    assert (detect_bad_vehicles(table)["flags"] == "").all()
    vid = table["vehicle_id"].to_numpy()
    recorded = table["speed"].to_numpy().copy()
    recorded[vid == 21] = 500 * 0.3048                         # 152 m/s while it drives at 11 m/s
    # vehicle 32's source differentiated its raw positions: the spike shows in its recorded speed too
    spike = vid == 32
    x_raw = table["x_raw"].to_numpy()
    recorded[spike] = np.abs(np.gradient(x_raw[spike])) / DT
    recorded[vid == 13] = np.nan                                # not recorded
    flags = flags_of(detect_bad_vehicles(table.assign(speed_recorded=recorded)))
    assert flags[21] == "speed_column"
    assert all(f == "" for v, f in flags.items() if v != 21)
    # a single corrupted row is enough
    one = table["speed"].to_numpy().copy()
    one[np.flatnonzero(vid == 12)[30]] = 150.0
    assert flags_of(detect_bad_vehicles(table.assign(speed_recorded=one)))[12] == "speed_column"


def test_unfollowable_counts_only_where_the_ego_drives():
    """A crawling slide inside the 20 context frames (replayed, not driven, by an episode) does not
    make a vehicle unfollowable; the same slide later does (noise-free tracks, smoothed as generated
    data, so that the slide stays where it is)."""
    t = np.arange(80) * DT
    early = [250 + 0.5 * t, LANE_Y[2] + np.clip((t - 0.1) / 0.7, 0, 1)]   # 1 m left between 0.1 and 0.8 s
    late = [400 + 0.5 * t, LANE_Y[2] + np.clip((t - 4) / 0.7, 0, 1)]      # ... between 4 and 4.7 s
    table = smoothed({1: early, 2: late}, SmoothingConfig.for_source("sumo"))
    assert not table.loc[table["vehicle_id"] == 1, "followable"].all()
    flags = flags_of(detect_bad_vehicles(table))
    assert flags == {1: "", 2: "unfollowable"}


def test_longest_run():
    flag = np.array([1, 1, 0, 1, 1, 1, 1, 0, 0, 1], dtype=bool)
    vid = np.array([1, 1, 1, 1, 1, 2, 2, 2, 3, 3])
    np.testing.assert_array_equal(longest_run(flag, vid), [2, 2, 1])


def test_input_checks():
    table = smoothed(traffic(40))
    with pytest.raises(DataFormatError):
        detect_bad_vehicles(table.drop(columns=["x_raw"]))
    with pytest.raises(ValueError):
        detect_bad_vehicles(table, frame_rate=0)
    empty = detect_bad_vehicles(table.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == ["vehicle_id", *PROBLEMS, "flags"]


def test_real_lane1_data_is_mostly_clean():
    """Measured on the 374 real I-80 lane-1 vehicles: 332 clean; jump 21, overlap 14
    (vehicles passing through each other: the extract keeps only lane 1 and no lateral
    position), short 8, kinematics 1 (a 2-frame track at 50 m/s); its v_Vel (differences
    of its positions) agrees with them, and the ego car can follow every other vehicle."""
    raw = read_ngsim(shared_data("ngsim-i80-lane1") / "i80-lane1-original.txt.gz")
    quality = detect_bad_vehicles(smooth_table(raw))
    assert len(quality) == 374
    n_frames = raw.groupby("vehicle_id").size()
    assert quality["short"].sum() == (n_frames < 30).sum() == 8
    clean = (quality["flags"] == "").sum()
    assert clean >= 0.85 * 374
    assert 10 <= quality["jump"].sum() <= 30
    assert quality["overlap"].sum() <= 20
    assert "speed_recorded" in raw.columns and quality["speed_column"].sum() == 0
    assert quality["unfollowable"].sum() == 0
