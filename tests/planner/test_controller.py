"""The trained policy at the wheel: actions for the running slots only, in batches, the same as one call,
for both controllers (egocentric and anchored)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world and tiny-policy (anchored) as real checkpoints)
from tests.planner.conftest import save_tiny_runs


@pytest.fixture(scope="module")
def egocentric_policy(runs, scene, ego_recording):  # noqa: F811
    """WORKDIR/runs/tiny-ego-policy: a tiny policy of an egocentric (learned-ego) world model, two IL steps."""
    save_tiny_runs(runs, ego_recording, scene.split_vehicle_ids("train"), "learned", "tiny-ego-world", "tiny-ego-policy")
    return "tiny-ego-policy"


def _evaluate(workdir, scene, run, episodes=6):  # noqa: F811
    from ppuu.planner.controller import make_controller, sim_config_for
    from ppuu.planner.train import load_policy
    from ppuu.simulator.evaluate import evaluate
    from ppuu.simulator.sim import SimConfig

    loaded = load_policy(workdir / "runs" / run / "checkpoint.pt", torch.device("cpu"))
    calls = []
    forward = loaded.policy.forward

    def spy(images, states, sample=False):
        calls.append(len(images))
        return forward(images, states, sample=sample)

    loaded.policy.forward = spy
    config = sim_config_for(loaded, SimConfig(course="full"))
    controller = make_controller(loaded)
    table = evaluate(scene, controller, split="test", config=config, progress=False, episodes=episodes)
    return table, calls, type(controller).__name__


@pytest.mark.parametrize("run", ["tiny-policy", "tiny-ego-policy"])
def test_the_policy_acts_for_running_slots_in_batches_as_in_one_call(runs, scene, egocentric_policy,  # noqa: F811
                                                                       monkeypatch, run):
    import ppuu.planner.controller as controller

    monkeypatch.setitem(controller.POLICY_ROWS, "cpu", 10 ** 6)
    whole, whole_calls, kind = _evaluate(runs, scene, run)
    assert kind == {"tiny-policy": "AnchoredPolicyController", "tiny-ego-policy": "PolicyController"}[run]
    monkeypatch.setitem(controller.POLICY_ROWS, "cpu", 4)
    chunked, chunked_calls, _ = _evaluate(runs, scene, run)
    # the same episodes (convolutions of other batch sizes may round differently: on the default scene 5 of
    # 157 episodes of the demo's policy ended up to 0.3 mm apart, with the same outcomes)
    assert (chunked["outcome"] == whole["outcome"]).all()
    pd.testing.assert_frame_equal(chunked, whole, check_exact=False, rtol=1e-4, atol=1e-3)
    assert max(chunked_calls) <= 4 < max(whole_calls)
    # finished slots are not driven: the batch shrinks as episodes end
    assert whole_calls[0] == len(whole) and min(whole_calls) < len(whole)


def test_policy_actions_of_no_context_is_empty():
    from ppuu.planner.controller import policy_actions

    policy = lambda images, states, sample=False: torch.ones(len(images), 2)   # noqa: E731
    assert policy_actions(policy, torch.zeros(0, 2, 3, 8, 4), torch.zeros(0, 2, 4)).shape == (0, 2)
    assert policy_actions(policy, torch.zeros(5, 2, 3, 8, 4), torch.zeros(5, 2, 4)).shape == (5, 2)


def test_an_anchored_policy_is_re_anchored_every_step_unless_told_otherwise(runs):  # noqa: F811
    import dataclasses

    from ppuu.planner.controller import AnchoredPolicyController
    from ppuu.planner.train import load_policy

    loaded = load_policy(runs / "runs" / "tiny-policy" / "checkpoint.pt", torch.device("cpu"))
    for method in ("mpur", "il", "mpc-il"):
        policy = dataclasses.replace(loaded, method=method)
        assert AnchoredPolicyController(policy).reanchor_every == 1
        assert AnchoredPolicyController(policy, reanchor_every=5).reanchor_every == 5
    with pytest.raises(ValueError, match="reanchor_every = 0"):
        AnchoredPolicyController(loaded, reanchor_every=0)


def test_an_anchored_window_slides_between_anchors_and_is_rendered_afresh_at_each(runs, scene):  # noqa: F811
    """With anchors renewed every step the policy reads the history re-rendered around its current pose;
    with one anchor kept, the window slides: frame k at step t is frame k + t of the first step's."""
    from ppuu.planner.controller import AnchoredPolicyController, sim_config_for
    from ppuu.planner.train import load_policy
    from ppuu.simulator.evaluate import evaluate
    from ppuu.simulator.sim import SimConfig

    def seen_windows(reanchor_every):
        loaded = load_policy(runs / "runs" / "tiny-policy" / "checkpoint.pt", torch.device("cpu"))
        windows = []

        def spy(images, states, sample=False):       # records what the policy reads; the egos keep going
            windows.append(images.clone())
            return torch.zeros(len(images), 2)

        loaded.policy.forward = spy
        controller = AnchoredPolicyController(loaded, reanchor_every)
        evaluate(scene, controller, split="test", config=sim_config_for(loaded, SimConfig(course="full")),
                 progress=False, episodes=1)
        return windows

    fresh, kept = seen_windows(1), seen_windows(10 ** 6)
    assert len(fresh) == len(kept) > 3
    torch.testing.assert_close(fresh[0], kept[0])                     # the first step anchors both
    for t in (1, 3):
        torch.testing.assert_close(kept[t][:, :-t], kept[0][:, t:])   # slid by t frames
        assert not torch.equal(fresh[t], kept[t])                     # re-rendered around a pose that moved


def test_an_anchored_policy_with_no_running_episode_returns_zero_actions(runs, scene):  # noqa: F811
    from ppuu.planner.controller import AnchoredPolicyController, sim_config_for
    from ppuu.planner.train import load_policy
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    loaded = load_policy(runs / "runs" / "tiny-policy" / "checkpoint.pt", torch.device("cpu"))
    sim = BatchedSimulator(scene, sim_config_for(loaded, SimConfig(course="full")), device="cpu")
    observation = sim.reset(sim.episode_vehicles("test")[:2])
    controller = AnchoredPolicyController(loaded)
    sim.outcome[:] = 1                          # both episodes over (any outcome but RUNNING)
    actions = controller(observation, sim)
    assert actions.shape == (2, 2) and not bool(actions.any())
