"""Policy learning through the world model: gradients, the uncertainty cost, learning, IL, checkpoints, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.planner.conftest import CONTEXT, HORIZON, cost_model, replace, tiny_world
from ppuu.planner.imagination import imagine
from ppuu.planner.objective import CostWeights, trajectory_cost
from ppuu.planner.policy import DrivingPolicy, PolicyConfig, normalised_bounds
from ppuu.planner.train import PolicyTrainConfig, fit_uncertainty_stats, load_policy, policy_loss, train_policy
from ppuu.world_model.dataset import sample_indices


def _config(world, method="mpur", **kw):
    mc = world.model_config
    policy = PolicyConfig(context=CONTEXT, image_channels=mc.image_channels, image_height=mc.image_height,
                          image_width=mc.image_width, hidden_channels=(4, 8, 8), hidden_mlp=16)
    fields = dict(steps=6, batch_size=4, horizon=HORIZON, copies=3, lr=3e-3, val_every=0, checkpoint_every=3,
                  log_every=1, stats_batches=2, policy=policy)
    fields.update(kw)
    return PolicyTrainConfig(method=method, **fields)


@pytest.fixture(scope="module", params=["kinematic", "learned"])
def setup(request, fixed_recording, ego_recording, train_ids):
    recording = fixed_recording if request.param == "kinematic" else ego_recording
    world, data = tiny_world(recording, train_ids, request.param)
    return world, data, cost_model(world, recording)


def test_cost_gradients_reach_the_actions_and_the_policy_not_the_world_model(setup):
    world, data, costs = setup
    for p in world.model.parameters():
        p.requires_grad_(False)
    batch = data.batch(sample_indices(len(data), 0, 0, 4))
    policy = DrivingPolicy(_config(world).policy)
    config = _config(world)
    loss, parts = policy_loss(policy, world, batch, config, costs, None)
    loss.backward()
    assert all(p.grad is None for p in world.model.parameters())
    assert sum(float(p.grad.abs().sum()) for p in policy.parameters() if p.grad is not None) > 0
    # and a plan of actions gets a gradient from the costs alone
    plan = torch.zeros(4, HORIZON, 2, requires_grad=True)
    rollout = imagine(world.model, batch.context_images, batch.context_states, batch.size,
                      lambda i, s, t: plan[:, t], HORIZON, costs, CostWeights(), stats=world.normaliser)
    trajectory_cost(rollout.terms, CostWeights())[0].sum().backward()
    assert float(plan.grad.abs().sum()) > 0


def test_uncertainty_grows_for_actions_unlike_the_recorded_ones(setup):
    world, data, costs = setup
    config = _config(world, copies=6)
    stats = fit_uncertainty_stats(world, data, costs, config, torch.device("cpu"))
    batch = data.batch(sample_indices(len(data), 5, 0, 8))
    torch.manual_seed(1)
    z = torch.randn(8, HORIZON, world.model_config.latent_dim)

    def spread(actions):
        torch.manual_seed(2)
        rollout = imagine(world.model, batch.context_images, batch.context_states, batch.size,
                          lambda i, s, t: actions[:, t], HORIZON, costs, config.weights, copies=6, z=z,
                          uncertainty=stats, stats=world.normaliser)
        return rollout.variances[..., 0].mean(), rollout.terms[..., 3].mean()

    recorded_var, recorded_cost = spread(batch.actions)
    wild = world.normaliser.normalise_actions(torch.tensor([3.5, 0.15])).expand_as(batch.actions) * 4
    wild_var, wild_cost = spread(wild)
    assert float(wild_var) > float(recorded_var)
    assert float(wild_cost) >= float(recorded_cost)


@pytest.mark.parametrize("method", ["mpur", "il"])
def test_a_few_steps_lower_the_training_loss(setup, method, tmp_path):
    world, data, costs = setup
    if method == "mpur" and world.model_config.ego_model == "learned":
        pytest.skip("an untrained egocentric model barely responds to actions: nothing for MPUR to learn from "
                    "(the kinematic ego model's costs respond exactly)")
    config = _config(world, method, steps=40, lr=3e-3, checkpoint_every=40, batch_size=8)
    if method == "il":
        config = replace(config, horizon=1)
    # the training cost: on the windows the run trains on
    seen = np.unique(np.concatenate([sample_indices(len(data), config.seed, s, 8) for s in range(config.steps)]))
    fixed = data.batch(seen)
    torch.manual_seed(config.seed)
    before_policy = DrivingPolicy(config.policy)

    def loss_of(policy, uncertainty=None):
        torch.manual_seed(3)
        with torch.no_grad():
            return float(policy_loss(policy.eval(), world, fixed, config, costs, uncertainty)[0])

    train_policy(config, world, costs, data, None, tmp_path / "run", progress=False)
    loaded = load_policy(tmp_path / "run" / "checkpoint.pt")
    assert loss_of(loaded.policy, loaded.uncertainty) < loss_of(before_policy, loaded.uncertainty)


def test_checkpoint_round_trips_and_a_killed_run_resumes_to_the_same_result(setup, tmp_path):
    world, data, costs = setup
    config = _config(world, steps=6, checkpoint_every=3)
    train_policy(config, world, costs, data, None, tmp_path / "straight", progress=False)
    train_policy(config, world, costs, data, None, tmp_path / "killed", progress=False, stop_after=3)
    train_policy(config, world, costs, data, None, tmp_path / "killed", progress=False)
    ckpt = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    assert ckpt["kind"] == "policy" and ckpt["method"] == "mpur" and ckpt["uncertainty"] is not None
    a = load_policy(tmp_path / "straight" / "checkpoint.pt")
    b = load_policy(tmp_path / "killed" / "checkpoint.pt")
    assert a.step == b.step == 6 and a.observation == world.observation
    for k, v in a.policy.state_dict().items():
        torch.testing.assert_close(v, b.policy.state_dict()[k])
    with pytest.raises(ValueError, match="cannot resume: lr"):
        train_policy(replace(config, lr=0.5, steps=9), world, costs, data, None, tmp_path / "straight",
                     progress=False)


class _Recorder(torch.nn.Module):
    """A policy that keeps the window states it is asked to act on."""

    def __init__(self, policy):
        super().__init__()
        self.policy, self.seen = policy, []

    def forward(self, images, states, sample=True):
        self.seen.append(states.detach().clone())
        return self.policy(images, states, sample)


def test_the_policy_reads_its_imagined_windows_as_its_controller_reads_the_simulators(setup, tmp_path):
    """Egocentric models: at every imagined step the policy's window states are measured from the window's newest
    frame, as the simulator's controller measures them (x 0 there); fixed-frame models keep the context's origin,
    as their anchored controller does. ``window_origin="context"`` keeps the earlier training (and a config saved
    without the field reads as that, so old runs resume as they trained)."""
    world, data, costs = setup
    batch = data.batch(sample_indices(len(data), 0, 0, 4))
    torch.manual_seed(0)
    net = DrivingPolicy(_config(world).policy)
    newest_x = {}
    for origin in ("newest", "context"):
        torch.manual_seed(1)                                          # the same latents and dropout masks
        recorder = _Recorder(net)
        policy_loss(recorder, world, batch, _config(world, window_origin=origin), costs, None)
        assert len(recorder.seen) == HORIZON                          # step 0 on the real context, then imagined
        newest_x[origin] = torch.stack([world.normaliser.denormalise_states(s)[:, -1, 0] for s in recorder.seen])
    assert newest_x["newest"][0].abs().max() < 1e-4                 # a real context: x 0 at its newest frame
    moved = newest_x["context"][1:].abs().max()                     # the ego drove on in imagination ...
    assert moved > 0.1
    if world.model_config.ego_model == "learned":                   # ... and the egocentric policy is not told
        assert newest_x["newest"][1:].abs().max() < 1e-4
    else:
        torch.testing.assert_close(newest_x["newest"], newest_x["context"])
    saved = _config(world).to_json()
    saved.pop("window_origin")
    assert PolicyTrainConfig.from_json(saved).window_origin == "context"
    with pytest.raises(ValueError, match="window_origin"):
        _config(world, window_origin="oldest")
    train_policy(_config(world, steps=1, checkpoint_every=1), world, costs, data, None, tmp_path / "r", progress=False)
    changed = _config(world, steps=2, window_origin="context")
    if world.model_config.ego_model == "learned":
        with pytest.raises(ValueError, match="cannot resume: window_origin.*--window-origin newest"):
            train_policy(changed, world, costs, data, None, tmp_path / "r", progress=False)
    else:                                           # a fixed frame reads "context" whatever the flag: no change
        assert train_policy(changed, world, costs, data, None, tmp_path / "r", progress=False)["step"] == 2
    # imitation never reads an imagined window: its old runs resume whatever the flag says
    train_policy(_config(world, "il", steps=1, checkpoint_every=1), world, costs, data, None, tmp_path / "il",
                 progress=False)
    train_policy(_config(world, "il", steps=2, window_origin="context"), world, costs, data, None, tmp_path / "il",
                 progress=False)


def test_configuration_is_checked(setup):
    world, data, costs = setup
    with pytest.raises(ValueError, match="method"):
        PolicyTrainConfig(method="magic")
    with pytest.raises(ValueError, match="copies >= 2"):
        PolicyTrainConfig(copies=1)
    assert PolicyTrainConfig(method="vg").weights.uncertainty == 0 and PolicyTrainConfig(method="vg").copies == 1
    with pytest.raises(ValueError, match="planner_contexts = 0"):
        PolicyTrainConfig(method="mpc-il", planner_contexts=0)
    with pytest.raises(ValueError, match="planner_lr"):
        PolicyTrainConfig(method="mpc-il", planner_lr=0.0)
    with pytest.raises(ValueError, match="svg imagines with a stochastic"):
        det, _ = tiny_world(data.source, np.unique(data.vehicle_ids)[:30], world.model_config.ego_model,
                            latent_dim=0)
        train_policy(_config(det, "svg"), det, costs, data, None, "/nonexistent", progress=False)


def test_policy_actions_stay_inside_the_simulator_bounds():
    from ppuu.world_model.normalisation import Normaliser

    norm = Normaliser(torch.zeros(4), torch.ones(4), torch.tensor([0.1, 0.0]), torch.tensor([1.2, 0.004]))
    config = PolicyConfig(context=2, image_height=20, image_width=8, hidden_channels=(4,), hidden_mlp=8,
                          **normalised_bounds(norm))
    policy = DrivingPolicy(config)
    raw = torch.tensor([[-50.0, 0.0], [50.0, 0.0], [0.0, 0.0]])
    physical = norm.denormalise_actions(policy.squash(raw))
    assert -8.0 <= float(physical[0, 0]) < -7.9 and 3.9 < float(physical[1, 0]) <= 4.0
    assert abs(float(physical[2, 0]) - 0.1) < 0.2                       # near the middle, nearly the identity
    with pytest.raises(ValueError, match="action bounds"):
        PolicyConfig(action_low=(1.0, 0.0), action_high=(0.0, 1.0))


def test_a_straight_policy_holds_the_wheel_at_zero_curvature_and_learns_the_acceleration():
    from ppuu.planner.policy import straight_curvature
    from ppuu.world_model.normalisation import Normaliser

    norm = Normaliser(torch.zeros(4), torch.ones(4), torch.tensor([0.1, 0.001]), torch.tensor([1.2, 0.004]))
    config = PolicyConfig(context=2, image_height=20, image_width=8, hidden_channels=(4,), hidden_mlp=8,
                          fixed_curvature=straight_curvature(norm), **normalised_bounds(norm))
    policy = DrivingPolicy(PolicyConfig.from_json(config.to_json()))
    images, states = torch.rand(3, 2, 3, 20, 8), torch.randn(3, 2, 4)
    with torch.no_grad():
        policy.head[-1].bias.fill_(2.0)                      # a policy that would steer hard
    action = policy(images, states)
    physical = norm.denormalise_actions(action)
    assert torch.allclose(physical[:, 1], torch.zeros(3), atol=1e-7)
    assert float(physical[:, 0].min()) > 1.0                  # the acceleration is still the network's
    action[:, 0].sum().backward()
    assert policy.head[-1].weight.grad[0].abs().sum() > 0 and policy.head[-1].weight.grad[1].abs().sum() == 0
    with pytest.raises(ValueError, match="fixed_curvature"):
        PolicyConfig(action_dim=3, fixed_curvature=0.0)


def test_releasing_the_wheel_of_a_straight_policy_starts_steering_straight_and_can_learn_to_steer():
    from ppuu.planner.policy import straight_curvature
    from ppuu.world_model.normalisation import Normaliser

    norm = Normaliser(torch.zeros(4), torch.ones(4), torch.tensor([0.1, 0.001]), torch.tensor([1.2, 0.004]))
    free = PolicyConfig(context=2, image_height=20, image_width=8, hidden_channels=(4,), hidden_mlp=8,
                        **normalised_bounds(norm))
    straight = DrivingPolicy(replace(free, fixed_curvature=straight_curvature(norm)))
    with torch.no_grad():
        straight.head[-1].weight.normal_()                 # an untrained steering row: arbitrary curvature
    images, states = torch.rand(3, 2, 3, 20, 8), torch.randn(3, 2, 4)
    released = DrivingPolicy(free)
    released.load_state_dict(straight.state_dict())
    assert norm.denormalise_actions(released(images, states))[:, 1].abs().max() > 1e-4   # steers before
    released.hold_straight(straight_curvature(norm))
    action = released(images, states)
    physical = norm.denormalise_actions(action)
    assert torch.allclose(physical[:, 1], torch.zeros(3), atol=1e-6)
    assert torch.allclose(action[:, 0], straight(images, states)[:, 0])      # the acceleration unchanged
    action[:, 1].sum().backward()
    assert released.head[-1].weight.grad[1].abs().sum() > 0                  # it can learn to steer
    with pytest.raises(ValueError, match="outside the policy's bounds"):
        released.hold_straight(free.action_high[1] + 1.0)


def test_speed_deficit_charges_slowing_down_only():
    from ppuu.planner.objective import speed_deficit

    v0 = torch.tensor([10.0, 0.5])
    speed = torch.tensor([[12.0, 10.0, 5.0, 0.0], [0.5, 0.0, 2.0, 0.25]])
    expected = torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 0.0, 0.25]])       # / max(v0, 1 m/s)
    assert torch.allclose(speed_deficit(speed, v0), expected)


def test_the_speed_term_grows_when_the_plan_brakes_and_pulls_its_gradient_up(setup):
    world, data, costs = setup
    batch = data.batch(sample_indices(len(data), 3, 0, 4))
    norm = world.normaliser
    weights = CostWeights(proximity=0, lane=0, offroad=0, uncertainty=0, speed=1.0)

    def rollout(acceleration):
        plan = norm.normalise_actions(torch.tensor([acceleration, 0.0])).expand(4, HORIZON, 2).clone()
        plan.requires_grad_(True)
        out = imagine(world.model, batch.context_images, batch.context_states, batch.size,
                      lambda i, s, t: plan[:, t], HORIZON, costs, weights, stats=norm)
        return out, plan

    keep, _ = rollout(0.0)
    brake, plan = rollout(-3.0)
    speed_term = brake.terms[..., 6].detach()
    if world.model_config.ego_kinematics:                 # exact ego states: no deficit at constant speed
        assert float(keep.terms[..., 6].detach().abs().max()) < 1e-4
    assert float(speed_term.mean()) > float(keep.terms[..., 6].detach().mean()) + 0.05
    trajectory_cost(brake.terms, weights)[0].sum().backward()
    assert float(plan.grad[..., 0].sum()) < 0          # descending the cost means braking less


def test_the_speed_term_can_charge_the_recorded_drivers_speed_instead_of_the_contexts(setup):
    world, data, costs = setup
    batch = data.batch(sample_indices(len(data), 3, 0, 4))
    norm = world.normaliser
    weights = CostWeights(proximity=0, lane=0, offroad=0, uncertainty=0, speed=1.0)
    policy = DrivingPolicy(_config(world).policy)

    def speed_term(reference, recorded_speed_factor):
        future = norm.denormalise_states(batch.target_states)
        future[..., 2:4] *= recorded_speed_factor            # the recorded driver stopped, or twice as fast
        recorded = replace(batch, target_states=norm.normalise_states(future))
        config = _config(world, weights=weights, speed_reference=reference)
        torch.manual_seed(0)
        return float(policy_loss(policy, world, recorded, config, costs, None)[1]["speed"])

    context = speed_term("context", 1.0)
    assert speed_term("context", 0.0) == pytest.approx(context)             # the recording is not read
    assert speed_term("recorded", 0.0) == 0.0                                # no deficit against a stopped driver
    assert speed_term("recorded", 2.0) > context + 0.1                       # a fast driver sets a higher bar
    assert speed_term("lower", 0.0) == 0.0                                   # the lower of the two references
    assert speed_term("lower", 2.0) <= context + 1e-6
    with pytest.raises(ValueError, match="speed_reference"):
        _config(world, speed_reference="leader")


def test_mpc_il_regresses_on_the_planners_first_action_planned_once(setup, tmp_path, monkeypatch):
    from ppuu.planner import mpc_targets
    from ppuu.planner.mpc import Planner

    world, data, costs = setup
    if world.model_config.ego_model != "kinematic":
        pytest.skip("the planner's plans of an untrained egocentric model are noise; the kinematic ego's are not")
    config = _config(world, "mpc-il", steps=30, lr=3e-3, checkpoint_every=15, batch_size=8, planner_contexts=24,
                     planner_iterations=4, weights=CostWeights(speed=0.5))
    planned = mpc_targets.plan_windows(world, data, costs, config, config.planner_contexts, config.seed,
                                       torch.device("cpu"), tmp_path / "targets.pt", progress=False)
    assert len(planned) == 24 and len(np.unique(planned.indices)) == 24
    assert planned.plans.shape == (24, HORIZON, 2) and planned.plans.abs().sum() > 0     # the plans moved
    batch = planned.batch(np.array([3, 0]))
    rendered = data.batch(planned.indices[[3, 0]])
    torch.testing.assert_close(batch.actions, planned.plans[[3, 0]])
    # the contexts are kept as bytes: within 1/510 of the rendering, the states exactly
    torch.testing.assert_close(batch.context_images, rendered.context_images, atol=1 / 510 + 1e-6, rtol=0)
    torch.testing.assert_close(batch.context_states, rendered.context_states)
    torch.testing.assert_close(batch.size, rendered.size)
    monkeypatch.setattr(mpc_targets, "CACHE_BYTES", 0)                  # too big to keep: rendered per batch
    uncached = mpc_targets.PlannedWindows(data, planned.indices, planned.plans)
    assert uncached.cached is None
    torch.testing.assert_close(uncached.batch(np.array([3, 0])).context_images, rendered.context_images)
    over_budget = mpc_targets.plan_windows(world, data, costs, replace(config, planner_iterations=1), 8, config.seed,
                                           torch.device("cpu"), None, progress=False)
    assert over_budget.cached is None and len(over_budget) == 8
    monkeypatch.undo()
    monkeypatch.setattr(type(data), "batch", lambda *a: pytest.fail("rendered a cached context again"))
    torch.testing.assert_close(planned.batch(np.array([3, 0])).context_images, batch.context_images)
    monkeypatch.undo()

    def no_planning(*args, **kwargs):
        raise AssertionError("planned again instead of reading the cached plans")

    monkeypatch.setattr(Planner, "plan", no_planning)
    again = mpc_targets.plan_windows(world, data, costs, config, config.planner_contexts, config.seed,
                                     torch.device("cpu"), tmp_path / "targets.pt", progress=False)
    torch.testing.assert_close(again.plans, planned.plans)
    (tmp_path / "run").mkdir()
    (tmp_path / "targets.pt").rename(tmp_path / "run" / "mpc-targets-train.pt")      # the run's own cache
    train_policy(config, world, costs, data, None, tmp_path / "run", progress=False)
    loaded = load_policy(tmp_path / "run" / "checkpoint.pt")
    torch.manual_seed(config.seed)
    untrained = DrivingPolicy(config.policy)
    everything = planned.batch(np.arange(24))
    with torch.no_grad():
        error = [float((p.eval()(everything.context_images, everything.context_states) - planned.plans[:, 0])
                       .pow(2).mean()) for p in (untrained, loaded.policy)]
    assert loaded.method == "mpc-il" and error[1] < error[0]
    with pytest.raises(AssertionError, match="planned again"):       # other settings: the cache does not apply
        mpc_targets.plan_windows(world, data, costs, replace(config, planner_iterations=5), 24, config.seed,
                                 torch.device("cpu"), tmp_path / "run" / "mpc-targets-train.pt", progress=False)


def test_warmup_raises_the_learning_rate_linearly(setup, tmp_path):
    world, data, costs = setup
    config = _config(world, "svg", steps=4, warmup_steps=4, lr=2e-3, checkpoint_every=4)
    train_policy(config, world, costs, data, None, tmp_path / "run", progress=False)
    import pandas as pd
    logged = pd.read_csv(tmp_path / "run" / "metrics.csv")["lr"].to_numpy()
    np.testing.assert_allclose(logged, [5e-4, 1e-3, 1.5e-3, 2e-3], rtol=1e-5)


def test_the_anchor_keeps_a_fine_tuned_policy_near_its_warm_start_and_survives_a_resume(setup, tmp_path):
    """``anchor_weight``: a trust region around ``--init`` (the frozen warm start, kept in the checkpoint)."""
    world, data, costs = setup
    if world.model_config.ego_model == "learned":
        pytest.skip("the kinematic ego model's costs respond to the actions exactly: the one to pull away from")
    base = _config(world, "svg", steps=8, lr=3e-2, checkpoint_every=4)
    torch.manual_seed(5)
    warm = DrivingPolicy(base.policy)
    warm_weights = {k: v.clone() for k, v in warm.state_dict().items()}
    fixed = data.batch(np.arange(16))

    def distance_from_warm_start(run):
        policy = load_policy(tmp_path / run / "checkpoint.pt").policy
        with torch.no_grad():
            return float((policy(fixed.context_images, fixed.context_states)
                          - warm.eval()(fixed.context_images, fixed.context_states)).pow(2).mean())

    for run, weight in (("free", 0.0), ("anchored", 100.0)):
        train_policy(replace(base, anchor_weight=weight), world, costs, data, None, tmp_path / run, progress=False,
                     initial_weights=warm_weights)
    assert distance_from_warm_start("anchored") < 0.5 * distance_from_warm_start("free")
    # killed and resumed: the anchor comes back from the checkpoint (no --init the second time)
    anchored = replace(base, anchor_weight=100.0)
    train_policy(anchored, world, costs, data, None, tmp_path / "killed", progress=False, stop_after=4,
                 initial_weights=warm_weights)
    train_policy(anchored, world, costs, data, None, tmp_path / "killed", progress=False)
    a = load_policy(tmp_path / "anchored" / "checkpoint.pt").policy.state_dict()
    b = load_policy(tmp_path / "killed" / "checkpoint.pt").policy.state_dict()
    for k, v in a.items():
        torch.testing.assert_close(v, b[k])
    import pandas as pd
    errors = pd.read_csv(tmp_path / "anchored" / "metrics.csv")["anchor_error"].to_numpy()
    assert errors[0] == 0 and errors[1:].max() > 0          # the first step starts at the warm start


def test_the_anchor_needs_a_warm_start_and_an_imagining_method(setup, tmp_path):
    world, data, costs = setup
    with pytest.raises(ValueError, match="give one"):
        train_policy(_config(world, "svg", anchor_weight=1.0), world, costs, data, None, tmp_path / "run",
                     progress=False)
    with pytest.raises(ValueError, match="imagining methods"):
        PolicyTrainConfig(method="il", anchor_weight=1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        PolicyTrainConfig(warmup_steps=-1)
