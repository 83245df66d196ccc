"""Reactive traffic: the replaced vehicle is gone, vehicles keep to their recording unless something unrecorded is
in their way, return to it afterwards, enter without overlapping, and the law's gaps come from the scene."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ppuu.data.scene import Scene, SceneMeta
from ppuu.simulator.collision import boxes_overlap
from ppuu.simulator.episodes import ARRIVED, COLLISION
from ppuu.simulator.evaluate import evaluate, run_episodes
from ppuu.simulator.reactive import IDMConfig, LaneMap, calibrate, recorded_gaps
from ppuu.simulator.sim import BatchedSimulator, SimConfig
from ppuu.simulator.traffic import TrafficLog

from tests.simulator.conftest import LANE, us101_meta

LENGTH, WIDTH = 4.5, 1.8


def straight_scene(vehicles: list[tuple], lanes: int = 2, section_length: float = 400.0) -> Scene:
    """A scene of vehicles driving at constant speed in their lanes (centred).

    Args:
        vehicles: (vehicle_id, first_frame, x at first frame m, lane, speed m/s, frames) each, optionally
            followed by (frame offset, new lane): a lane change over 30 frames from that offset on.
    """
    meta = SceneMeta(name="straight", site="test", source="test", lane_widths=[LANE] * lanes,
                     section_length=section_length)
    tables = []
    for vid, first, x0, lane, speed, frames, *change in vehicles:
        f = np.arange(frames)
        x = x0 + speed * f * meta.dt
        y = np.full(frames, meta.lane_centre_y(lane))
        lane_id = np.full(frames, lane)
        if change:
            start, new_lane = change
            progress = np.clip((f - start) / 30, 0, 1)
            y = y + progress * (meta.lane_centre_y(new_lane) - meta.lane_centre_y(lane))
            lane_id = np.where(progress > 0.5, new_lane, lane)
        heading = np.arctan2(np.gradient(y), np.gradient(x))
        tables.append(pd.DataFrame({
            "vehicle_id": vid, "frame": first + f, "x": x, "y": y, "length": LENGTH, "width": WIDTH, "vclass": 2,
            "lane": lane_id, "x_raw": x, "y_raw": y, "speed": speed, "heading": heading, "acceleration": 0.0,
            "curvature": 0.0}))
    t = pd.concat(tables, ignore_index=True)
    spans = t.groupby("vehicle_id")["frame"].agg(["min", "max"])
    v = pd.DataFrame({"vehicle_id": spans.index, "first_frame": spans["min"].to_numpy(),
                      "last_frame": spans["max"].to_numpy(), "length": LENGTH, "width": WIDTH, "vclass": 2,
                      "split": "test", "flags": "", "usable_as_ego": True})
    return Scene(meta=meta, trajectories=t, vehicles=v)


def accelerations(*phases: tuple[int, float, float]) -> list[tuple[float, float]]:
    """Actions (acceleration m/s^2, curvature 1/m) repeated over (steps, acceleration, curvature) phases."""
    return [(a, k) for steps, a, k in phases for _ in range(steps)]


def drive(sim: BatchedSimulator, ego_id: int, actions: list[tuple[float, float]], watch: int):
    """Run one episode with the given actions; per step, the watched vehicle's distance behind its recording (m),
    whether it is off its recording, and the bumper-to-bumper gaps between consecutive vehicles of each lane."""
    sim.reset([ego_id])
    index = int(sim.log.vehicle_index(torch.tensor([watch])))
    behind, free, gaps = [], [], []
    for a in actions:
        result = sim.step(torch.tensor([a]))
        assert not bool(result.done[0]), f"episode ended: {result.outcome}"
        traffic = sim.others(torch.tensor([0]), sim.frame)
        rec = sim.log.centre[traffic.rows][0, :, 0]
        x = traffic.centre[0, :, 0]
        here = traffic.mask[0] & (traffic.vehicle_id[0] == watch)
        behind.append(float((rec - x)[here].sum()) if here.any() else float("nan"))
        free.append(bool(sim.reactive.free[0, index]))
        gaps.append(lane_gaps(traffic.centre[0][traffic.mask[0]], traffic.lane[0][traffic.mask[0]],
                              traffic.size[0][traffic.mask[0]]))
    return np.array(behind), np.array(free), gaps


def lane_gaps(centre: torch.Tensor, lane: torch.Tensor, size: torch.Tensor) -> np.ndarray:
    """Bumper-to-bumper gaps (m) between consecutive vehicles of the same lane."""
    order = np.lexsort((centre[:, 0].numpy(), lane.numpy()))
    x, ln, length = centre[order, 0].numpy(), lane[order].numpy(), size[order, 0].numpy()
    same = ln[1:] == ln[:-1]
    return (x[1:] - x[:-1] - (length[1:] + length[:-1]) / 2)[same]


@pytest.fixture(scope="module")
def follower_scene():
    """Ego vehicle 1 at 10 m/s, vehicle 2 following it 5.5 m behind (bumper to bumper), lane 1 of two."""
    return straight_scene([(1, 0, 100.0, 1, 10.0, 300), (2, 0, 90.0, 1, 10.0, 300)])


def test_follower_of_the_replaced_vehicle_closes_up_when_the_ego_accelerates_away(follower_scene):
    """Issue 7: the replaced vehicle is out of the traffic, so once the ego is gone ahead, the follower that
    braked for it drives back onto its own recording instead of keeping a gap to a car that is not there."""
    sim = BatchedSimulator(follower_scene, SimConfig(traffic="reactive"), device="cpu")
    behind, free, _ = drive(sim, 1, accelerations((15, -3.0, 0.0), (40, 3.0, 0.0), (100, 0.0, 0.0)), watch=2)
    assert behind[15] > 1.0 and free[15]                 # it braked for the slowing ego
    assert abs(behind[-1]) < 0.1 and not free[-1]        # and is back on its recording
    # the replaced vehicle itself is never simulated in its slot
    assert not bool(sim.reactive.free[0, int(sim.log.vehicle_index(torch.tensor([1])))])


def test_vehicle_returns_to_its_recording_after_the_ego_leaves_its_lane(follower_scene):
    """The ego slows (the follower brakes behind it), then changes into the other lane: the follower, no longer
    obstructed, returns smoothly to its recorded position and speed."""
    sim = BatchedSimulator(follower_scene, SimConfig(traffic="reactive"), device="cpu")
    actions = accelerations((15, -3.0, 0.0), (15, 0.0, -0.05), (15, 0.0, 0.05), (100, 0.0, 0.0))
    behind, free, _ = drive(sim, 1, actions, watch=2)
    assert float(sim.ego.position[0, 1]) < -LANE - 0.9     # the ego's footprint is in lane 2
    assert behind.max() > 3.0                               # it was held back ...
    assert abs(behind[-1]) < 0.1 and not free[-1]         # ... and is back on its recording
    assert np.all(np.diff(behind[behind.argmax():]) < 0.05)  # closing in steadily, no overshoot forward
    assert behind.min() > -0.1


def test_held_back_vehicle_changes_lanes_where_it_was_recorded_to_not_when():
    """Vehicle 2 was recorded changing into lane 2 at x = 130-160 m. Held back behind the ego, which stops before
    that place, it stays in its lane (no sliding sideways while stopped); once the ego has gone, it changes lanes
    at the recorded place."""
    scene = straight_scene([(1, 0, 100.0, 1, 10.0, 300), (2, 0, 85.0, 1, 10.0, 300, 45, 2)])
    sim = BatchedSimulator(scene, SimConfig(traffic="reactive"), device="cpu")
    sim.reset([1])
    path = []
    for a in accelerations((15, -8.0, 0.0), (30, 0.0, 0.0), (100, 4.0, 0.0)):
        sim.step(torch.tensor([[a[0], 0.0]]))
        traffic = sim.others(torch.tensor([0]), sim.frame)
        k = int((traffic.vehicle_id[0] == 2).nonzero()[0, 0])
        path.append((float(traffic.centre[0, k, 0]), float(traffic.centre[0, k, 1]), float(traffic.speed[0, k])))
        assert float(sim.log.centre[traffic.rows[0, k], 1]) < -LANE or len(path) < 45   # recorded: in lane 2 by then
    x, y, v = np.array(path).T
    lane1 = -LANE / 2
    assert v[40:45].max() < 0.5 and x[:45].max() < 125               # all but stopped behind the ego, before the place
    assert np.abs(y[:45] - lane1).max() < 1e-3                      # ... in its own lane
    moved = np.abs(y - lane1) > 0.01
    assert moved.any() and x[moved].min() > 129                     # the lane change, at the recorded place
    assert abs(y[-1] + 1.5 * LANE) < 1e-3                            # ending in lane 2


def test_vehicles_entering_behind_a_stopped_ego_never_overlap():
    """A stream enters lane 1 (one vehicle per second at 10 m/s, 5.5 m apart) while the ego stops near the entry:
    the queue grows back past the entry and every entering vehicle joins it without overlapping anyone."""
    stream = [(10 + k, 10 * (k + 1), 0.0, 1, 10.0, 400) for k in range(12)]
    scene = straight_scene([(1, 0, 0.0, 1, 10.0, 400), *stream])
    sim = BatchedSimulator(scene, SimConfig(traffic="reactive"), device="cpu")
    actions = accelerations((20, -8.0, 0.0), (90, 0.0, 0.0))
    _, _, gaps = drive(sim, 1, actions, watch=10)
    assert float(sim.ego.speed[0]) == 0.0
    traffic = sim.others(torch.tensor([0]), sim.frame)
    assert min(g.min() for g in gaps if len(g)) > 0.5      # nobody ever overlaps (nor touches)
    queued = (traffic.mask[0] & (traffic.centre[0, :, 0] < 0)).sum()
    assert queued >= 2                                     # the queue reaches back past the entry
    # the ego is not hit either: its follower stopped behind it
    assert sim.outcome[0] != COLLISION


def test_human_arrives_in_reactive_traffic(small_scene):
    """Issue 15: the recorded driver, in reactive traffic, arrives as in replay (>= 99 % of episodes) and the
    other vehicles stay on their recordings."""
    table = evaluate(small_scene, "human", split=None, config=SimConfig(traffic="reactive"), progress=False)
    assert len(table) >= 50
    assert (table["outcome"] == ARRIVED).mean() >= 0.99, table["outcome_name"].value_counts()


def test_human_ego_leaves_the_traffic_as_recorded(small_scene):
    sim = BatchedSimulator(small_scene, SimConfig(traffic="reactive"), device="cpu")
    ids = sim.episode_vehicles(None)[:30]
    run_episodes(sim, ids, lambda obs, s: s.recorded_actions(), progress=False, max_steps=60)
    traffic = sim.others(torch.arange(len(ids)), sim.frame)
    error = (traffic.centre[..., 0] - sim.log.centre[traffic.rows][..., 0]).abs()[traffic.mask]
    assert float(error.max()) < 0.5


def test_stopped_ego_is_braked_for_and_entering_vehicles_do_not_overlap(small_scene):
    """Reactive vehicles stop for an ego that brakes to a stop (far fewer hits than in replay), and vehicles that
    enter behind the queues it causes never appear on top of another vehicle."""
    hits = {}
    for traffic in ("replay", "reactive"):
        sim = BatchedSimulator(small_scene, SimConfig(traffic=traffic), device="cpu")
        ids = sim.episode_vehicles(None)
        B = len(ids)
        sim.reset(ids)
        seen = torch.zeros(B, sim.log.vehicle_ids.size, dtype=torch.bool)
        entered = 0
        for _ in range(100):
            sim.step(torch.tensor([[-4.0, 0.0]]).expand(B, 2))
            t = sim.others(torch.arange(B), sim.frame)
            index = sim.log.vehicle_index(t.vehicle_id, check=False)
            rows = torch.arange(B)[:, None].expand_as(index)
            new = t.mask & ~seen[rows, index] & (sim.steps > 1)[:, None]
            seen[rows[t.mask], index[t.mask]] = True
            if traffic == "reactive" and bool(new.any()):
                b, n = new.nonzero().unbind(1)
                others = t.mask[b].clone()
                others[torch.arange(len(n)), n] = False
                overlap = boxes_overlap(t.centre[b, n], t.heading[b, n], t.size[b, n], t.centre[b], t.heading[b],
                                        t.size[b], others)
                assert not bool(overlap.any()), "a vehicle entered on top of another"
                entered += len(n)
        hits[traffic] = (sim.outcome == COLLISION).float().mean().item()
    assert entered > 20
    assert hits["replay"] > 0.2 and hits["reactive"] < hits["replay"] / 3


def test_same_inputs_same_traffic(small_scene):
    def run():
        sim = BatchedSimulator(small_scene, SimConfig(traffic="reactive"), device="cpu")
        table = run_episodes(sim, sim.episode_vehicles("test"), lambda obs, s: torch.zeros(s.batch_size, 2),
                             progress=False, max_steps=80)
        return table, sim.reactive.x.clone(), sim.reactive.free.clone()

    (a, xa, fa), (b, xb, fb) = run(), run()
    assert a.equals(b)
    assert torch.equal(xa, xb) and torch.equal(fa, fb)
    assert bool(fa.any())          # the no-action egos did push vehicles off their recordings


def test_gaps_are_calibrated_on_the_scene(small_scene):
    """T and s0 are the chosen percentile of the scene's own time headways and standstill gaps."""
    log = TrafficLog(small_scene)
    time_headway, min_gap = calibrate(log, 5.0)
    gap, speed = recorded_gaps(log)
    moving = speed > 5.0
    below = np.mean(gap[moving] < min_gap + time_headway * speed[moving])
    assert below == pytest.approx(0.05, abs=0.005)
    assert 0.5 <= min_gap < 3.0 and 0.1 <= time_headway < 1.5
    assert calibrate(log, 1.0)[0] < time_headway < calibrate(log, 20.0)[0]
    sim = BatchedSimulator(small_scene, SimConfig(traffic="reactive", idm=IDMConfig(time_headway=0.7)), device="cpu")
    assert sim.reactive.time_headway == 0.7 and sim.reactive.min_gap == pytest.approx(min_gap)


def test_lane_map_finds_main_lanes_and_ramps():
    meta = us101_meta()
    lanes = LaneMap(meta, torch.zeros(1))
    x = torch.tensor([10.0, 10.0, 10.0, 10.0, 600.0, 300.0, 10.0])
    y = torch.tensor([-1.0, -LANE - 0.1, -5 * LANE + 0.1, -5.5 * LANE, -6.5 * LANE, -6.5 * LANE, 0.5])
    assert lanes(x, y).tolist() == [1, 2, 5, 6, 8, 6, 1]
    assert lanes(torch.tensor(50.0), torch.tensor(-6.5 * LANE)).item() == 7


@pytest.mark.parametrize("field, value", [("max_braking", 0.0), ("time_headway", -1.0),
                                          ("calibration_percentile", 100.0), ("return_time", -1.0)])
def test_bad_parameters_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        IDMConfig(**{field: value})


def test_cli_flags_reach_the_config():
    from ppuu.app.cli import build_parser
    from ppuu.app.cli_reactive import reactive_config

    args = build_parser().parse_args(["evaluate", "baselines", "--traffic", "reactive", "--reactive-time-headway",
                                      "0.8", "--reactive-min-gap", "1.5", "--reactive-return-time", "2"])
    config = reactive_config(args)
    assert (config.time_headway, config.min_gap, config.return_time) == (0.8, 1.5, 2.0)
    assert reactive_config(build_parser().parse_args(["evaluate", "baselines"])).time_headway is None


def test_ego_on_its_recording_moves_nobody_off_theirs(small_scene):
    """An ego that drives its recorded actions is where its vehicle was, so no reactive vehicle ever
    leaves its recording for it, not even one the ego's recorded lane change starts beside (on the
    default 15-minute scene two such test episodes ended in a collision: the passing car braked to a
    stop in the ego's path)."""
    sim = BatchedSimulator(small_scene, SimConfig(traffic="reactive"), device="cpu")
    ids = sim.episode_vehicles(None)
    sim.reset(ids)
    ever_free = torch.zeros(len(ids), dtype=torch.bool)
    while bool((sim.outcome == 0).any()):          # to the end of the longest episode
        sim.step(sim.recorded_actions())
        ever_free |= sim.reactive.free[:len(ids)].any(1) & (sim.outcome == 0)
    assert not bool(ever_free.any()), ids[ever_free]
    assert bool((sim.outcome == ARRIVED).all())
