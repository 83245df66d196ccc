"""MPC by back-propagation: the plan improves, stays in bounds, warm-starts, batches, drives the simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.planner.conftest import CONTEXT, cost_model, tiny_world
from ppuu.planner.mpc import MPCConfig, MPCController, Planner
from ppuu.simulator.dynamics import ActionBounds


def _close_calls(world, data, count=6, horizon=10):
    """Contexts whose recorded future is close to other vehicles (a proximity cost to lower)."""
    from ppuu.world_model.dataset import WindowDataset

    long = WindowDataset(data.source, np.unique(data.vehicle_ids), CONTEXT, horizon, world.normaliser)
    idx = long.fixed_indices(400, seed=3)
    raw = long.raw(idx)
    busy = raw.costs[:, CONTEXT:, 0].max(1).values > 0.2
    chosen = idx[busy.numpy()][:count]
    assert len(chosen) >= 2, "the small scene should have close calls"
    return long.batch(chosen)


@pytest.fixture(scope="module")
def kinematic(fixed_recording, train_ids):
    return tiny_world(fixed_recording, train_ids, "kinematic", "state")


@pytest.mark.parametrize("optimizer", ["adam", "cem"])
def test_plan_cost_decreases_and_stays_in_bounds(kinematic, fixed_recording, optimizer):
    world, data = kinematic
    batch = _close_calls(world, data)
    planner = Planner(world, cost_model(world, fixed_recording),
                      MPCConfig(horizon=10, futures=2, iterations=5, optimizer=optimizer, population=12, elites=3))
    torch.manual_seed(0)
    fast = world.normaliser.normalise_actions(torch.tensor([4.0, 0.0])).expand(len(batch), 10, 2)   # full throttle
    decision = planner.plan(batch.context_images, batch.context_states, batch.size, fast.clone())
    assert float(decision.costs[-1].sum()) < float(decision.costs[0].sum())
    physical = world.normaliser.denormalise_actions(decision.plan)
    bounds = ActionBounds()
    assert bool((physical[..., 0] >= bounds.acceleration_min - 1e-4).all())
    assert bool((physical[..., 0] <= bounds.acceleration_max + 1e-4).all())
    assert bool((physical[..., 1].abs() <= bounds.curvature_max + 1e-6).all())


@pytest.mark.parametrize("conditioning", ["none", "state"])
def test_lbfgs_never_ends_worse_than_it_started(fixed_recording, train_ids, conditioning):
    """Its line search runs on the bounded plan: a step that looks good outside the action bounds and is
    clamped back afterwards must not be taken (it was, from a zero plan: every plan ended pinned at the
    curvature bound, at more than twice the starting cost)."""
    world, data = tiny_world(fixed_recording, train_ids, "kinematic", conditioning, dropout=0.0)
    batch = data.batch(torch.arange(0, 400, 25))
    planner = Planner(world, cost_model(world, fixed_recording),
                      MPCConfig(horizon=3, futures=2, iterations=5, optimizer="lbfgs"))
    torch.manual_seed(0)
    decision = planner.plan(batch.context_images, batch.context_states, batch.size, torch.zeros(len(batch), 3, 2))
    assert float(decision.costs[-1].sum()) <= float(decision.costs[0].sum()) + 1e-5
    physical = world.normaliser.denormalise_actions(decision.plan)
    assert bool((physical[..., 1].abs() <= ActionBounds().curvature_max + 1e-6).all())


def test_a_plan_of_another_horizon_is_refused_and_no_episode_gives_an_empty_decision(kinematic, fixed_recording):
    world, data = kinematic
    batch = data.batch(torch.arange(0, 40, 10))
    planner = Planner(world, cost_model(world, fixed_recording), MPCConfig(horizon=4, futures=1, iterations=1))
    with pytest.raises(ValueError, match=r"\(4, 4, 2\) expected .* got \(4, 6, 2\)"):
        planner.plan(batch.context_images, batch.context_states, batch.size, torch.zeros(4, 6, 2))
    none = planner.plan(batch.context_images[:0], batch.context_states[:0], batch.size[:0], torch.zeros(0, 4, 2))
    assert none.plan.shape == (0, 4, 2) and none.states.shape == (0, 4, 4) and none.costs.shape[1] == 0


def test_plan_free_traffic_is_imagined_once_and_gives_the_same_objective(fixed_recording, train_ids):
    world, data = tiny_world(fixed_recording, train_ids, "kinematic", "none", dropout=0.0)
    batch = _close_calls(world, data, horizon=5)
    planner = Planner(world, cost_model(world, fixed_recording), MPCConfig(horizon=5, futures=1, iterations=2))
    assert planner.plan_free_traffic
    plan = torch.zeros(len(batch), 5, 2)
    z = torch.randn(len(batch), 5, world.model_config.latent_dim)
    fast, _, fast_states = planner.objective(plan, batch.context_images, batch.context_states, batch.size, z,
                                             planner._futures(batch.context_images, batch.context_states, z))
    slow, _, slow_states = planner.objective(plan, batch.context_images, batch.context_states, batch.size, z)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast_states, slow_states, atol=1e-5, rtol=1e-4)


def test_futures_imagined_in_chunks_equal_one_batch(fixed_recording, train_ids, monkeypatch):
    """The plan-free futures go through the model a few rows at a time on a CPU (ROWS_PER_CALL): each
    row (future f of context s) is the same as in one batch, given the same latents."""
    import ppuu.planner.mpc as mpc

    world, data = tiny_world(fixed_recording, train_ids, "kinematic", "none", dropout=0.0)
    batch = _close_calls(world, data, count=4, horizon=5)
    planner = Planner(world, cost_model(world, fixed_recording), MPCConfig(horizon=5, futures=3, iterations=1))
    z = torch.randn(3 * len(batch), 5, world.model_config.latent_dim)
    monkeypatch.setitem(mpc.ROWS_PER_CALL, "cpu", 10 ** 6)
    whole, whole_var = planner._futures(batch.context_images, batch.context_states, z)
    monkeypatch.setitem(mpc.ROWS_PER_CALL, "cpu", 5)                 # 12 rows in chunks of 5, 5 and 2
    chunked, chunked_var = planner._futures(batch.context_images, batch.context_states, z)
    assert chunked.shape == (3 * len(batch), 5, *whole.shape[2:])
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(chunked_var, whole_var, atol=1e-6, rtol=1e-4)


def test_batched_plans_equal_separate_plans(fixed_recording, train_ids):
    world, data = tiny_world(fixed_recording, train_ids, "kinematic", "state", latent_dim=0, dropout=0.0)
    batch = _close_calls(world, data, count=4, horizon=6)
    planner = Planner(world, cost_model(world, fixed_recording), MPCConfig(horizon=6, futures=1, iterations=3))
    init = torch.zeros(len(batch), 6, 2)
    together = planner.plan(batch.context_images, batch.context_states, batch.size, init).plan
    for b in range(len(batch)):
        alone = planner.plan(batch.context_images[b:b + 1], batch.context_states[b:b + 1], batch.size[b:b + 1],
                             init[b:b + 1]).plan
        torch.testing.assert_close(alone[0], together[b], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("conditioning", ["state", "none"])
def test_plans_solved_in_chunks_equal_one_batch(fixed_recording, train_ids, monkeypatch, conditioning):
    """On a CPU the plans of a batch are optimised ROWS_PER_CALL // F at a time: the same plans, costs,
    states and (plan-free traffic) futures as one batch."""
    import ppuu.planner.mpc as mpc

    world, data = tiny_world(fixed_recording, train_ids, "kinematic", conditioning, latent_dim=0, dropout=0.0)
    batch = _close_calls(world, data, count=5, horizon=6)
    planner = Planner(world, cost_model(world, fixed_recording), MPCConfig(horizon=6, futures=2, iterations=3))
    init = torch.zeros(len(batch), 6, 2)
    monkeypatch.setitem(mpc.ROWS_PER_CALL, "cpu", 10 ** 6)
    whole = planner.plan(batch.context_images, batch.context_states, batch.size, init)
    monkeypatch.setitem(mpc.ROWS_PER_CALL, "cpu", 4)                # F = 2: plans 2 at a time
    chunked = planner.plan(batch.context_images, batch.context_states, batch.size, init)
    assert chunked.costs.shape == whole.costs.shape == (4, len(batch))
    for a, b in ((chunked.plan, whole.plan), (chunked.costs, whole.costs), (chunked.states, whole.states),
                 (chunked.images, whole.images)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert (chunked.images.numel() > 0) == (conditioning == "none")           # plan-free traffic keeps its futures


def test_controller_warm_starts_shift_and_reset_in_the_closed_loop(small_scene, fixed_recording, train_ids):
    from ppuu.planner.controller import context_source
    from ppuu.simulator.evaluate import run_episodes
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    world, _ = tiny_world(fixed_recording, train_ids, "kinematic", "none")
    planner = Planner(world, cost_model(world, fixed_recording),
                      MPCConfig(horizon=6, futures=2, iterations=2, replan_every=3))
    settings = fixed_recording.settings()
    controller = MPCController(planner, context_source(settings, world.normaliser, 3, CONTEXT))
    grads = []
    original = planner.plan

    def spy(images, states, size, init):
        grads.append(torch.is_grad_enabled())
        spy.inits.append(init.clone())
        out = original(images, states, size, init)
        spy.plans.append(out.plan.clone())
        return out

    spy.inits, spy.plans = [], []
    planner.plan = spy
    sim = BatchedSimulator(small_scene, SimConfig(history=CONTEXT, context_steps=CONTEXT, keep_traffic=True),
                           device="cpu")
    ids = sim.episode_vehicles(None)[:3]
    table = run_episodes(sim, ids, controller, progress=False, max_steps=7)
    assert len(table) == 3 and all(grads)                                  # gradients on inside the loop
    assert len(spy.plans) == 3                                             # steps 0, 3, 6
    assert float(spy.inits[0].abs().sum()) == 0                            # a new episode starts from zero
    # the next decision starts from the previous plan shifted by the 3 steps taken (last action repeated)
    expected = torch.cat([spy.plans[0][:, 3:], spy.plans[0][:, -1:].expand(-1, 3, -1)], 1)
    torch.testing.assert_close(spy.inits[1], expected)
    controller.on_episode_start(torch.tensor([1]), sim)
    assert float(controller.plans[1].abs().sum()) == 0 and int(controller.offset[1]) == 3


def test_speed_keeping_lifts_a_braking_plan(fixed_recording, train_ids):
    from ppuu.planner.objective import CostWeights

    world, data = tiny_world(fixed_recording, train_ids, "kinematic", "none", dropout=0.0)
    batch = _close_calls(world, data, count=3, horizon=6)
    only_speed = CostWeights(proximity=0, lane=0, offroad=0, uncertainty=0, speed=1.0)
    planner = Planner(world, cost_model(world, fixed_recording),
                      MPCConfig(horizon=6, futures=1, iterations=5, weights=only_speed))
    braking = world.normaliser.normalise_actions(torch.tensor([-3.0, 0.0])).expand(len(batch), 6, 2).clone()
    decision = planner.plan(batch.context_images, batch.context_states, batch.size, braking)
    assert float(decision.costs[-1].sum()) < float(decision.costs[0].sum())
    before = world.normaliser.denormalise_actions(braking)[..., 0]
    after = world.normaliser.denormalise_actions(decision.plan)[..., 0]
    assert bool((after.mean(1) > before.mean(1) + 0.1).all())


def test_the_decision_figure_draws_the_plan_where_the_raster_puts_the_ego(kinematic, fixed_recording, tmp_path):
    from ppuu.planner.decision_figure import decision_figure, path_pixels

    world, data = kinematic
    norm = world.normaliser
    ahead = float(world.observation["frame"]["centre_ahead"])
    ppm = float(world.observation["raster"]["pixels_per_metre"])
    physical = torch.tensor([[ahead, 0.0, 10.0, 0.0], [ahead + 2.0, 1.0, 10.0, 0.0]])
    px = path_pixels(norm.normalise_states(physical), norm, ahead, ppm, 101, 21)
    assert px[0] == pytest.approx([10.0, 50.0], abs=1e-4)                 # the image centre
    assert px[1] == pytest.approx([10.0 - ppm, 50.0 - 2 * ppm], abs=1e-4)  # ahead is up, left is left

    batch = _close_calls(world, data, count=2)
    planner = Planner(world, cost_model(world, fixed_recording), MPCConfig(horizon=6, futures=3, iterations=2))
    init = torch.zeros(len(batch), 6, 2)
    decision = planner.plan(batch.context_images, batch.context_states, batch.size, init)
    path = decision_figure(decision, batch.context_images, world, tmp_path / "decision.png", episode=1)
    assert path.stat().st_size > 10_000
