"""The optimised simulator step reproduces the old one (issue 13).

The yardstick is a frozen copy of the simulator and rasteriser from before the speed work
(``tests/simulator/reference``). Both drive the same episodes of the small test scene with the
recorded ("human") actions, step by step: outcomes, done flags, states and actions must be
identical, images equal within 1/255 and costs within a small tolerance (both read the images).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppuu.simulator.sim import BatchedSimulator, SimConfig
from tests.simulator.reference.sim import ReferenceSimulator

IMAGE_TOLERANCE = 1 / 255
COST_TOLERANCE = 1e-3


def assert_same_step(new, old, step: int) -> None:
    where = f"step {step}"
    assert torch.equal(new.outcome, old.outcome), where
    assert torch.equal(new.done, old.done), where
    assert torch.equal(new.just_done, old.just_done), where
    assert torch.equal(new.action, old.action), where
    assert torch.equal(new.observation.state, old.observation.state), where
    image_error = (new.observation.image - old.observation.image).abs().max().item()
    assert image_error <= IMAGE_TOLERANCE, f"{where}: images differ by {image_error}"
    for name, a, b in zip(("proximity", "lane", "offroad"), new.costs, old.costs):
        torch.testing.assert_close(a, b, atol=COST_TOLERANCE, rtol=0, msg=f"{where}: {name} cost")
    torch.testing.assert_close(new.reward, old.reward, atol=3 * COST_TOLERANCE, rtol=0)


def run_side_by_side(scene, config: SimConfig, episodes: np.ndarray, steps: int, restart_every: int = 0) -> int:
    """Step both simulators with the recorded actions; restart finished slots every
    ``restart_every`` steps (0: never). Returns how many slots ended (so that callers can
    check that the run saw endings)."""
    new = BatchedSimulator(scene, config, device="cpu")
    old = ReferenceSimulator(scene, config, device="cpu")
    obs_new, obs_old = new.reset(episodes), old.reset(episodes)
    assert torch.equal(obs_new.state, obs_old.state)
    assert (obs_new.image - obs_old.image).abs().max().item() <= IMAGE_TOLERANCE
    queue, ended = list(episodes[::-1]), 0
    for step in range(steps):
        action = old.recorded_actions()
        assert torch.equal(new.recorded_actions(), action)
        result_new, result_old = new.step(action), old.step(action)
        assert_same_step(result_new, result_old, step)
        ended += int(result_old.just_done.sum())
        if restart_every and step % restart_every == restart_every - 1 and bool(result_old.done.any()):
            slots = result_old.done.nonzero().squeeze(1)
            ids = [queue[i % len(queue)] for i in range(len(slots))]
            queue = queue[len(slots):] + queue[:len(slots)]
            obs_new, obs_old = new.reset(ids, slots=slots), old.reset(ids, slots=slots)
            assert torch.equal(obs_new.state, obs_old.state)
            assert (obs_new.image - obs_old.image).abs().max().item() <= IMAGE_TOLERANCE
    for key, value in old.metrics().items():
        torch.testing.assert_close(new.metrics()[key], value, atol=COST_TOLERANCE, rtol=0, msg=key)
    return ended


@pytest.fixture(scope="module")
def episodes(small_scene):
    ids = BatchedSimulator(small_scene, SimConfig(), device="cpu").episode_vehicles(None)
    return ids[np.linspace(0, len(ids) - 1, min(len(ids), 48)).astype(int)]


def test_replay_matches_reference(small_scene, episodes):
    ended = run_side_by_side(small_scene, SimConfig(chunk=20), episodes, steps=400)   # 3 chunks, then fewer
    assert ended >= len(episodes) // 2       # the run covers endings, not just driving


def test_history_and_restarts_match_reference(small_scene, episodes):
    ended = run_side_by_side(small_scene, SimConfig(history=3, keep_traffic=True), episodes[:16], steps=150,
                             restart_every=10)
    assert ended > 0


def test_reactive_matches_reference(small_scene, episodes):
    run_side_by_side(small_scene, SimConfig(traffic="reactive"), episodes[:16], steps=60)


def test_step_is_the_same_on_two_threads(small_scene, episodes):
    """The road is sampled in one group of egos per thread: the images may not depend on it."""
    images = []
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            sim = BatchedSimulator(small_scene, SimConfig(), device="cpu")
            sim.reset(episodes[:8])
            for _ in range(3):
                result = sim.step(sim.recorded_actions())
            images.append(result.observation.image.clone())
        finally:
            torch.set_num_threads(previous)
    assert torch.equal(images[0], images[1])
