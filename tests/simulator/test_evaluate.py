"""The closed-loop evaluation interface: controller protocol, trace, comfort, seeds; the history ring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ppuu.simulator.episodes import COLLISION, OFFROAD, RUNNING
from ppuu.simulator.evaluate import (Trace, controller_named, evaluate, evenly_spaced, markdown_summary, run_episodes,
                                     summarise)
from ppuu.simulator.sim import BatchedSimulator, SimConfig


def steer_off(observation, sim):
    """Full speed, full left turn: every episode leaves the road within a few seconds."""
    action = torch.zeros(sim.batch_size, 2)
    action[:, 0] = 1.0
    action[:, 1] = 0.2
    return action


class RecordingPlanner:
    """A toy planner: per-slot plans warm-started across steps, reset per new episode, optimised by autograd."""

    needs_grad = True

    def __init__(self):
        self.starts: list[list[int]] = []
        self.grad_enabled: list[bool] = []
        self.plan: torch.Tensor | None = None

    def on_episode_start(self, slots, sim):
        self.starts.append(slots.tolist())
        if self.plan is None or len(self.plan) != sim.batch_size:
            self.plan = torch.zeros(sim.batch_size, 2)
        self.plan[slots] = torch.tensor([1.0, 0.2])

    def __call__(self, observation, sim):
        self.grad_enabled.append(torch.is_grad_enabled())
        plan = self.plan.clone().requires_grad_()
        loss = ((plan - torch.tensor([1.0, 0.2])) ** 2).sum()      # already optimal: gradient 0
        loss.backward()
        self.plan = (plan - 0.1 * plan.grad).detach()
        return plan                                                 # still attached: the loop detaches


@pytest.fixture(scope="module")
def sim(small_scene):
    return BatchedSimulator(small_scene, SimConfig(), device="cpu")


def test_episode_start_hook_and_gradients_in_the_loop(small_scene, sim):
    planner = RecordingPlanner()
    ids = sim.episode_vehicles(None)[:5]
    table = run_episodes(sim, ids, planner, progress=False)
    assert planner.starts == [[0, 1, 2, 3, 4]]
    assert planner.grad_enabled and all(planner.grad_enabled)
    assert table["outcome"].isin([OFFROAD, COLLISION]).all()          # the plan steers off the road
    sim.reset(ids[:2])                       # the hook is gone after the run
    assert planner.starts == [[0, 1, 2, 3, 4]]
    # chunks: one hook call per batch, with that batch's slots
    planner = RecordingPlanner()
    table = evaluate(small_scene, planner, split=None, batch_size=4, progress=False)
    n = len(table)
    assert planner.starts == [list(range(min(4, n - i))) for i in range(0, n, 4)]


def test_plain_controllers_run_without_gradients(sim):
    seen = []

    def controller(observation, sim):
        seen.append(torch.is_grad_enabled())
        return torch.zeros(sim.batch_size, 2)

    run_episodes(sim, sim.episode_vehicles(None)[:2], controller, progress=False, max_steps=3)
    assert seen == [False, False, False]


def test_partial_resets_call_the_hook_with_their_slots(sim):
    calls = []
    handle = sim.add_episode_start_hook(lambda slots, s: calls.append(slots.tolist()))
    ids = sim.episode_vehicles(None)[:4]
    sim.reset(ids)
    sim.step(torch.zeros(4, 2))
    sim.reset(ids[[1, 3]], slots=torch.tensor([1, 3]))
    handle.remove()
    sim.reset(ids)
    assert calls == [[0, 1, 2, 3], [1, 3]]


def test_trace_records_every_driven_step(sim):
    ids = sim.episode_vehicles(None)[:6]
    trace = Trace()

    def too_much(observation, sim):
        return steer_off(observation, sim) * torch.tensor([100.0, 1.0])     # clipped to 4 m/s^2

    table = run_episodes(sim, ids, too_much, progress=False, trace=trace)
    t = trace.tensors()
    T = t["driven"].shape[0]
    assert t["action"].shape == (T, 6, 2) and t["position"].shape == (T, 6, 2) and t["speed"].shape == (T, 6)
    np.testing.assert_array_equal(t["vehicle_id"].numpy(), table["vehicle_id"].to_numpy())
    steps = t["driven"].sum(0).numpy()
    np.testing.assert_allclose(steps * sim.dt, table["time"].to_numpy(), atol=1e-5)
    assert T == steps.max()
    driven_actions = t["action"][t["driven"]]
    assert torch.allclose(driven_actions, torch.tensor([4.0, 0.2]).expand_as(driven_actions))
    last = torch.as_tensor(steps - 1)
    final_x = t["position"][last, torch.arange(6), 0]
    start_x = final_x - torch.tensor(table["distance"].to_numpy())
    # the distance counts from the end of the context: the x before the first action
    first_x = t["position"][0, :, 0] - t["speed"][0] * sim.dt       # speed changed by 0.4 m/s at most
    assert torch.allclose(start_x, first_x, atol=0.05)
    np.testing.assert_array_equal(t["outcome"][last, torch.arange(6)].numpy(), table["outcome"].to_numpy())
    assert (t["outcome"][:-1][t["driven"][1:]] == RUNNING).all()
    frame = trace.to_dataframe()
    assert len(frame) == steps.sum() and set(frame["outcome_name"]) <= {"running", "offroad", "collision"}
    assert frame.groupby("vehicle_id")["step"].max().to_dict() == dict(zip(table["vehicle_id"], steps))


def test_comfort_metrics_from_the_applied_acceleration(sim):
    ids = sim.episode_vehicles(None)[:6]
    table = run_episodes(sim, ids, steer_off, progress=False)
    steps = np.round(table["time"].to_numpy() / sim.dt)
    np.testing.assert_allclose(table["mean_abs_acceleration"], 1.0, rtol=1e-3)
    # one jump in acceleration, from the recording's at the end of the context to 1 m/s^2
    start = sim.episodes.loc[ids, "start_frame"].to_numpy()
    rows = sim.log.rows_of(torch.as_tensor(ids), torch.as_tensor(start + sim.config.context_steps - 2))
    before = sim.log.acceleration[rows].numpy()
    np.testing.assert_allclose(table["mean_abs_jerk"], np.abs(1.0 - before) / sim.dt / steps, rtol=1e-3, atol=1e-3)


def test_seeds_seed_the_run_and_summaries_report_the_spread(small_scene):
    def random_accelerations(observation, sim):
        action = steer_off(observation, sim)
        action[:, 0] = torch.rand(sim.batch_size) * 8 - 4
        return action

    a = evaluate(small_scene, random_accelerations, split=None, seed=3, progress=False)
    b = evaluate(small_scene, random_accelerations, split=None, seed=3, progress=False)
    c = evaluate(small_scene, random_accelerations, split=None, seed=4, progress=False)
    assert a.equals(b) and not a["distance"].equals(c["distance"])
    assert (a["seed"] == 3).all() and (c["seed"] == 4).all() and (a["course"] == "i80-reference").all()
    both = pd.concat([a, c], ignore_index=True)
    summary = summarise(both)
    assert summary["seeds"] == [3, 4] and summary["episodes"] == len(a) and summary["course"] == "i80-reference"
    distances = [a["distance"].mean(), c["distance"].mean()]
    assert summary["mean_distance_m"] == pytest.approx(np.mean(distances))
    assert summary["mean_distance_m_std"] == pytest.approx(np.std(distances)) and summary["mean_distance_m_std"] > 0
    text = markdown_summary({"random": both})
    assert "| random | i80-reference | 3,4 |" in text and "±" in text
    single = summarise(a)
    assert single["mean_distance_m_std"] == 0 and single["seeds"] == [3]
    with pytest.raises(ValueError, match="mixes courses"):
        summarise(pd.concat([a, a.assign(course="full")]))


def test_history_ring_gives_the_frames_oldest_first(small_scene):
    """K = 3 against K = 1 on the same episodes: frame k of the K = 3 history is the K = 1 frame of
    2 - k steps ago, across steps, partial resets and finished slots (which repeat their last frame)."""
    K = 3
    ring = BatchedSimulator(small_scene, SimConfig(history=K), device="cpu")
    single = BatchedSimulator(small_scene, SimConfig(history=1), device="cpu")
    ids = ring.episode_vehicles(None)[:5]
    obs = ring.reset(ids)
    single.reset(ids)
    assert obs.image.untyped_storage().data_ptr() == ring._image_ring.untyped_storage().data_ptr()   # a view
    frames = []
    for t in range(12):
        action = torch.zeros(5, 2)
        action[0] = torch.tensor([0.0, 0.2])            # slot 0 leaves the road, then is frozen
        if t == 6:
            for sim in (ring, single):
                sim.reset(ids[[2]], slots=torch.tensor([2]))
        obs = ring.step(action).observation
        frames.append(single.step(action).observation.image[:, 0].clone())
        if t >= K - 1:
            for k in range(K):
                expected = frames[t - (K - 1) + k]
                keep = torch.tensor([b != 2 or t - (K - 1) + k > 6 for b in range(5)])   # slot 2 since its reset
                torch.testing.assert_close(obs.image[keep, k], expected[keep])
        assert obs.state.shape == (5, K, 4)
    assert bool(ring.done[0]) and not bool(ring.done[1:].any())
    torch.testing.assert_close(obs.image[0, 0], obs.image[0, -1])       # a finished slot repeats its last frame
    # right after a partial reset, the restarted slot's history is its context, as on a fresh batch
    ring.reset(ids[[4]], slots=torch.tensor([4]))
    fresh = BatchedSimulator(small_scene, SimConfig(history=K), device="cpu").reset(ids[[4]])
    torch.testing.assert_close(ring.observation().image[4], fresh.image[0])
    torch.testing.assert_close(ring.observation().state[4], fresh.state[0])


def test_an_episode_subset_is_evenly_spaced_and_the_same_for_every_controller(small_scene):
    everything = evaluate(small_scene, "human", split=None, progress=False)
    subset = evaluate(small_scene, "no_action", split=None, progress=False, episodes=3)
    again = evaluate(small_scene, "human", split=None, progress=False, episodes=3)
    assert len(everything) > 3 and len(subset) == 3
    expected = everything["vehicle_id"].to_numpy()[evenly_spaced(len(everything), 3)]
    assert list(subset["vehicle_id"]) == list(expected) == list(again["vehicle_id"])
    assert list(expected[[0, -1]]) == list(everything["vehicle_id"].to_numpy()[[0, -1]])
    assert len(evaluate(small_scene, "human", split=None, progress=False, episodes=10_000)) == len(everything)
    with pytest.raises(ValueError, match="episodes = 0"):
        evaluate(small_scene, "human", split=None, progress=False, episodes=0)


def test_constant_controllers_by_name_drive_as_the_same_fixed_actions(small_scene):
    columns = ["vehicle_id", "outcome", "distance", "time"]
    by_name = evaluate(small_scene, "constant:1,0.2", split=None, progress=False)
    by_function = evaluate(small_scene, steer_off, split=None, progress=False)
    pd.testing.assert_frame_equal(by_name[columns], by_function[columns])
    assert (by_name["outcome"] == OFFROAD).any()
    zero = evaluate(small_scene, "constant:0,0", split=None, progress=False)
    pd.testing.assert_frame_equal(zero[columns], evaluate(small_scene, "no_action", split=None, progress=False)[columns])
    assert not zero[columns].equals(by_name[columns])


@pytest.mark.parametrize("name", ["constant:1", "constant:a,0", "constant:0,nan", "constant:1,2,3", "brake"])
def test_bad_controller_names_are_refused_with_the_accepted_forms(name):
    with pytest.raises(ValueError, match="constant:ACC,CURV"):
        controller_named(name)
