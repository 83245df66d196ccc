"""Contexts the policy reaches: collected in the simulator, reproducible, imagined from in training, resumable."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from tests.planner.conftest import CONTEXT, HORIZON, cost_model, tiny_world
from ppuu.planner.policy import DrivingPolicy, PolicyConfig, normalised_bounds
from ppuu.planner.reached import ReachedContexts
from ppuu.planner.train import PolicyTrainConfig, load_policy, policy_loss, train_policy
from ppuu.simulator.sim import SimConfig
from ppuu.world_model.dataset import sample_indices


@pytest.fixture(scope="module", params=["kinematic", "learned"])
def setup(request, fixed_recording, ego_recording, train_ids, small_scene):
    recording = fixed_recording if request.param == "kinematic" else ego_recording
    world, data = tiny_world(recording, train_ids, request.param)
    mc = world.model_config
    policy = PolicyConfig(context=CONTEXT, image_channels=mc.image_channels, image_height=mc.image_height,
                          image_width=mc.image_width, hidden_channels=(4, 8, 8), hidden_mlp=16,
                          **normalised_bounds(world.normaliser))
    reached = ReachedContexts(small_scene, world, policy, episodes=4, steps=8, stride=4,
                              base=SimConfig(course="full"))
    return world, data, cost_model(world, recording), policy, reached


def _constant_policy(config: PolicyConfig, world, acceleration: float) -> dict[str, torch.Tensor]:
    """Weights of a policy that always answers (acceleration m/s^2, curvature 0)."""
    policy = DrivingPolicy(config)
    action = world.normaliser.to("cpu").normalise_actions(torch.tensor([[acceleration, 0.0]]))
    with torch.no_grad():
        policy.head[-1].weight.zero_()
        policy.head[-1].bias.copy_(policy.unsquash(action)[0])
    return policy.state_dict()


def _speeds(pool, world) -> torch.Tensor:
    last = world.normaliser.to("cpu").denormalise_states(pool.states[:, -1])
    return last[:, 2:].norm(dim=-1)


def test_the_contexts_are_where_the_policy_drove_and_the_same_for_the_same_weights(setup):
    world, _, _, config, reached = setup
    mc = world.model_config
    braking = reached.collect(_constant_policy(config, world, -3.0), seed=0, step=0)
    again = reached.collect(_constant_policy(config, world, -3.0), seed=0, step=0)
    cruising = reached.collect(_constant_policy(config, world, 0.0), seed=0, step=0)
    assert 0 < len(braking) <= 4 and len(cruising) == len(braking)
    assert braking.images.shape[1:] == (CONTEXT, mc.image_channels, mc.image_height, mc.image_width)
    assert braking.states.shape[1:] == (CONTEXT, 4) and braking.size.shape == (len(braking), 2)
    for a, b in ((braking.images, again.images), (braking.states, again.states), (braking.lane, again.lane)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert float(braking.images.float().min()) >= 0 and float(braking.images.float().max()) <= 1
    assert ((braking.lane >= 0) & (braking.lane <= 1)).all()
    # kept after 4 steps of -3 m/s^2 (0.4 s): about 1.2 m/s slower than the same episodes at constant speed
    slower = _speeds(cruising, world) - _speeds(braking, world)
    assert float(slower.min()) > 0.8 and float(slower.max()) < 1.6


def test_reached_contexts_join_the_batch_without_touching_its_imitation_error(setup):
    world, data, costs, config, reached = setup
    train_config = PolicyTrainConfig(method="vg" if not world.stochastic else "svg", horizon=HORIZON, batch_size=4,
                                     policy=config)
    policy = DrivingPolicy(config)
    batch = data.batch(sample_indices(len(data), 0, 0, 4))
    pool = reached.collect(policy.state_dict(), seed=0, step=0)
    contexts = pool.take(torch.arange(len(pool)), "cpu")
    torch.manual_seed(0)
    alone, alone_parts = policy_loss(policy, world, batch, train_config, costs, None)
    torch.manual_seed(0)
    joined, parts = policy_loss(policy, world, batch, train_config, costs, None, reached=contexts)
    torch.testing.assert_close(parts["il_error"], alone_parts["il_error"])
    torch.testing.assert_close(parts["mper_error"], alone_parts["mper_error"])
    assert not torch.equal(joined, alone)          # the reached contexts' costs are in the loss
    joined.backward()
    assert all(p.grad is not None for p in policy.parameters())


def test_training_on_reached_contexts_resumes_to_the_same_result(setup, tmp_path):
    world, data, costs, config, reached = setup
    method = "svg" if world.stochastic else "vg"
    train_config = PolicyTrainConfig(method=method, steps=6, batch_size=4, horizon=HORIZON, lr=3e-3, val_every=0,
                                     checkpoint_every=3, log_every=1, policy=config, reached_fraction=0.5,
                                     reached_every=2, reached_episodes=4, reached_steps=8, reached_stride=4)
    run = dict(progress=False, reached=reached)
    train_policy(train_config, world, costs, data, None, tmp_path / "straight", **run)
    train_policy(train_config, world, costs, data, None, tmp_path / "killed", stop_after=3, **run)
    ckpt = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["reached_step"] == 2 and ckpt["reached_weights"] is not None
    train_policy(train_config, world, costs, data, None, tmp_path / "killed", **run)   # rebuilds step 2's pool
    recorded_only = dataclasses.replace(train_config, reached_fraction=0.0)
    train_policy(recorded_only, world, costs, data, None, tmp_path / "recorded", progress=False)
    a, b, c = (load_policy(tmp_path / name / "checkpoint.pt").policy.state_dict()
               for name in ("straight", "killed", "recorded"))
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert any(not torch.allclose(a[k], c[k]) for k in a)
    metrics = pd.read_csv(tmp_path / "straight" / "metrics.csv")
    assert metrics["reached_lane"].notna().all() and (metrics["reached_lane"] >= 0).all()


def test_reached_contexts_are_checked(setup, tmp_path):
    world, data, costs, config, reached = setup
    with pytest.raises(ValueError, match="no recorded future"):
        PolicyTrainConfig(method="mper", policy=config, reached_fraction=0.5)
    with pytest.raises(ValueError, match="expected in"):
        PolicyTrainConfig(method="vg", policy=config, reached_fraction=1.0)
    with pytest.raises(ValueError, match="between 1 and"):
        PolicyTrainConfig(method="vg", policy=config, batch_size=4, reached_fraction=0.1)
    with pytest.raises(ValueError, match="no context would be kept"):
        PolicyTrainConfig(method="vg", policy=config, reached_fraction=0.5, reached_steps=5, reached_stride=10)
    method = "svg" if world.stochastic else "vg"
    with pytest.raises(ValueError, match="give the ReachedContexts"):
        train_policy(PolicyTrainConfig(method=method, horizon=HORIZON, batch_size=4, policy=config,
                                       reached_fraction=0.5), world, costs, data, None, tmp_path, progress=False)
    with pytest.raises(ValueError, match="expected episodes >= 1"):
        ReachedContexts(reached.sim.scene, world, config, episodes=4, steps=3, stride=4)
