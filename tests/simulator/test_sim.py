"""The batched simulator on a small generated scene: replay, fidelity, outcomes, reactive traffic, bad actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppuu.simulator.episodes import ARRIVED, COLLISION, OUTCOMES, RUNNING
from ppuu.simulator.evaluate import evaluate, markdown_summary, run_episodes, summarise
from ppuu.simulator.sim import BatchedSimulator, SimConfig


@pytest.fixture(scope="module")
def sim(small_scene):
    return BatchedSimulator(small_scene, SimConfig(), device="cpu")


def test_replay_places_vehicles_where_the_table_says(sim, small_scene):
    t = small_scene.trajectories
    frame = int(t["frame"].median())
    traffic = sim.log.at(torch.tensor([frame]))
    rows = t[t["frame"] == frame].sort_values("vehicle_id")
    got = traffic.vehicle_id[0][traffic.mask[0]].numpy()
    np.testing.assert_array_equal(np.sort(got), rows["vehicle_id"].to_numpy())
    order = np.argsort(got)
    centre = traffic.centre[0][traffic.mask[0]].numpy()[order]
    np.testing.assert_allclose(centre, rows[["x", "y"]].to_numpy(), atol=1e-4)


def test_frames_outside_the_recording_are_empty(sim):
    traffic = sim.log.at(torch.tensor([sim.log.first_frame - 5, sim.log.last_frame + 1]))
    assert not traffic.mask.any()


@pytest.mark.parametrize("course", ["i80-reference", "full"])
def test_human_actions_reproduce_the_recording(small_scene, course):
    """Fidelity (issue 3): the recorded actions arrive in >= 99 % of episodes and stay within 0.5 m,
    on the reference's course (the default on I-80) and on the full section."""
    table = evaluate(small_scene, "human", split=None, progress=False, course=course)
    assert len(table) >= 50 and (table["course"] == course).all()
    assert (table["outcome"] == ARRIVED).mean() >= 0.99, table["outcome_name"].value_counts()
    assert table["max_deviation"].max() <= 0.5
    # distance counts from the end of the context: arrived egos are within one step past the line
    sim = BatchedSimulator(small_scene, SimConfig(course=course), device="cpu")
    arrived = table[table["outcome"] == ARRIVED]
    start = sim.episodes.loc[arrived["vehicle_id"], "start_frame"].to_numpy()
    x = small_scene.trajectories.set_index(["vehicle_id", "frame"])["x"]
    context_end = x.loc[list(zip(arrived["vehicle_id"], start + sim.config.context_steps - 1))].to_numpy()
    overshoot = context_end + arrived["distance"].to_numpy() - sim.course.arrival_x
    assert (overshoot >= -1e-3).all() and (overshoot < 4.0).all()
    # a smooth driver: comfort figures of recorded driving
    assert 0 < table["mean_abs_acceleration"].mean() < 1.5 and 0 < table["mean_abs_jerk"].mean() < 2.0


def test_no_action_baseline_runs_and_fails_in_dense_traffic(small_scene):
    table = evaluate(small_scene, "no_action", split=None, progress=False)
    assert (table["outcome"] != RUNNING).all()
    assert (table["outcome"] == COLLISION).mean() > 0.1       # constant speed into stop-and-go waves
    text = markdown_summary({"no_action": table})
    assert text.startswith("| controller |") and "no_action" in text
    assert summarise(table)["episodes"] == len(table)


def test_reactive_followers_brake_for_a_stopping_ego(small_scene):
    """The ego brakes to a stop: replayed followers drive into it, reactive (IDM) ones stop behind it."""
    def brake(observation, sim):
        action = torch.zeros(sim.batch_size, 2)
        action[:, 0] = -4.0
        return action

    results = {}
    for traffic in ("replay", "reactive"):
        sim = BatchedSimulator(small_scene, SimConfig(traffic=traffic), device="cpu")
        ids = sim.episode_vehicles(None)
        results[traffic] = run_episodes(sim, ids, brake, progress=False, max_steps=80)
    replay = (results["replay"]["outcome"] == COLLISION).mean()
    reactive = (results["reactive"]["outcome"] == COLLISION).mean()
    assert replay > 0.2
    assert reactive < replay / 3


def test_reset_of_some_slots_keeps_the_others(sim):
    ids = sim.episode_vehicles(None)[:4]
    sim.reset(ids)
    for _ in range(3):
        sim.step(torch.zeros(4, 2))
    frames = sim.frame.clone()
    sim.reset(ids[2:3], slots=torch.tensor([2]))
    assert sim.frame[0] == frames[0] and sim.frame[3] == frames[3]
    assert sim.frame[2] == sim.first_frame[2] + sim.config.context_steps - 1
    assert sim.steps[2] == 0 and sim.steps[0] == 3


@pytest.mark.parametrize("bad", [torch.full((2, 2), float("nan")), torch.full((2, 2), float("inf")),
                                 torch.zeros(3, 2), torch.zeros(2)])
def test_bad_actions_are_rejected(sim, bad):
    sim.reset(sim.episode_vehicles(None)[:2])
    with pytest.raises(ValueError, match="action"):
        sim.step(bad)


def test_out_of_bound_actions_are_clipped(sim):
    sim.reset(sim.episode_vehicles(None)[:2])
    speed = sim.ego.speed.clone()
    sim.step(torch.tensor([[100.0, 0.0], [-100.0, 0.0]]))
    bounds = sim.config.bounds
    expected = torch.stack([speed[0] + bounds.acceleration_max * sim.dt,
                            (speed[1] + bounds.acceleration_min * sim.dt).clamp(min=0)])
    torch.testing.assert_close(sim.ego.speed, expected)


def test_step_hands_out_plain_tensors_and_stops_gradients(sim):
    """Parts of the step run in inference mode: nothing it returns or keeps may be an inference
    tensor (a controller differentiates through observations, states and costs), and an action
    that carries a gradient must not tie the ego's state to its graph."""
    sim.reset(sim.episode_vehicles(None)[:3])
    weight = torch.ones(3, 2, requires_grad=True)
    for _ in range(3):
        result = sim.step(weight * torch.tensor([0.5, 0.0]))
    returned = [result.observation.image, result.observation.state, result.action, result.reward, result.outcome,
                result.done, result.just_done, *result.costs, *sim.ego, *sim.last_costs]
    assert not any(t.is_inference() for t in returned)
    assert not any(t.requires_grad for t in (*sim.ego, result.action))
    # usable in a differentiable computation, e.g. a cost weighted by a learnable factor
    (weight.sum() * (result.costs.proximity + result.observation.image.mean() + sim.ego.speed).sum()).backward()
    assert weight.grad is not None


def test_same_episodes_same_result(small_scene):
    a = evaluate(small_scene, "no_action", split="test", progress=False)
    b = evaluate(small_scene, "no_action", split="test", progress=False)
    assert a.equals(b)


def test_observation_shapes_and_history(small_scene):
    sim = BatchedSimulator(small_scene, SimConfig(history=3), device="cpu")
    obs = sim.reset(sim.episode_vehicles(None)[:5])
    assert obs.image.shape == (5, 3, 4, 117, 24) and obs.state.shape == (5, 3, 4)
    assert float(obs.image.min()) >= 0 and float(obs.image.max()) <= 1
    # The context frames are 0.1 s apart: x advances by about speed * dt between them.
    dx = obs.state[:, 1:, 0] - obs.state[:, :-1, 0]
    torch.testing.assert_close(dx, obs.state[:, :-1, 2] * sim.dt, atol=0.05, rtol=0.05)
    result = sim.step(torch.zeros(5, 2))
    assert result.reward.shape == (5,) and (result.reward <= 0).all()
    assert [OUTCOMES[int(o)] for o in result.outcome] == ["running"] * 5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(small_scene):
    a = evaluate(small_scene, "human", split="test", device="cpu", progress=False)
    b = evaluate(small_scene, "human", split="test", device="cuda", progress=False)
    assert (a["outcome"] == b["outcome"]).mean() >= 0.98


def test_recorded_windows_match_the_simulator(small_scene):
    """The world model's training observations are the simulator's own observations of the recording."""
    from ppuu.simulator.recording import RecordedObservations

    sim = BatchedSimulator(small_scene, SimConfig(history=3), device="cpu")
    ids = sim.episode_vehicles(None)[:4]
    observation = sim.reset(ids)
    recorded = RecordedObservations(small_scene, log=sim.log)
    starts = sim.first_frame[:4].numpy() + sim.config.context_steps - 3
    windows = recorded.windows(ids, starts, 3)
    torch.testing.assert_close(windows.images, observation.image)
    torch.testing.assert_close(windows.states, observation.state)
    vehicles, first = recorded.window_starts(ids, 40)
    assert len(vehicles) == sum(int(sim.log.vehicle_span(torch.tensor([v]))[1]) -
                                int(sim.log.vehicle_span(torch.tensor([v]))[0]) - 38 for v in ids)
    assert (first >= sim.first_frame[:4].min().item()).all()
