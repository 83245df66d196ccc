"""The Adam decision as one capturable program: torch.optim.Adam's result, no host syncs, a CUDA graph."""

from __future__ import annotations

import pytest
import torch

from tests.planner.conftest import cost_model, tiny_world
from tests.planner.test_mpc import _close_calls
from tests.scripts import load_script
from ppuu.planner.mpc import MPCConfig, Planner
from ppuu.planner.mpc_graph import pad_rows, padded_size
from ppuu.planner.uncertainty import UncertaintyStats

HostSyncAudit = load_script("profile_step").HostSyncAudit
"""Counts the operators that would wait for a GPU (or stop a CUDA graph capture); they reach the dispatcher on
a CPU too, so the audit runs anywhere."""


def _contexts(world, data, count=3):
    batch = data.batch(data.fixed_indices(count, seed=1))
    return batch.context_images, batch.context_states, batch.size


def _torch_adam(planner, images, states, size, init):
    """The decision with torch.optim.Adam (the planner's code before it was written out), no randomness."""
    low, high = planner._box(init)
    plan = init.detach().clamp(low, high).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([plan], lr=planner.config.lr)
    fixed = planner._futures(images, states, None) if planner.plan_free_traffic else None
    for _ in range(planner.config.iterations):
        optimiser.zero_grad()
        planner.objective(plan, images, states, size, None, fixed)[0].sum().backward()
        optimiser.step()
        with torch.no_grad():
            plan.clamp_(low, high)
    return plan.detach()


@pytest.mark.parametrize("ego_model, conditioning", [("kinematic", "none"), ("kinematic", "state"),
                                                     ("learned", "state")])
def test_written_out_adam_equals_torch_adam(fixed_recording, ego_recording, train_ids, ego_model, conditioning):
    recording = ego_recording if ego_model == "learned" else fixed_recording
    world, data = tiny_world(recording, train_ids, ego_model, conditioning, latent_dim=0, dropout=0.0)
    planner = Planner(world, cost_model(world, recording), MPCConfig(horizon=6, futures=1, iterations=4, lr=0.3))
    images, states, size = _contexts(world, data)
    init = torch.randn(len(images), 6, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():                                         # the planner needs no caller's gradients
        decision = planner.plan(images, states, size, init)
    expected = _torch_adam(planner, images, states, size, init)
    torch.testing.assert_close(decision.plan, expected, atol=1e-6, rtol=1e-5)
    assert not torch.equal(decision.plan, init.clamp(*planner._box(init)))        # the plans moved


@pytest.mark.parametrize("ego_model, conditioning", [("kinematic", "none"), ("learned", "state")])
def test_the_decision_has_no_host_syncs(fixed_recording, ego_recording, train_ids, ego_model, conditioning):
    recording = ego_recording if ego_model == "learned" else fixed_recording
    world, data = tiny_world(recording, train_ids, ego_model, conditioning)              # a VAE with dropout
    planner = Planner(world, cost_model(world, recording), MPCConfig(horizon=3, futures=3, iterations=2))
    planner.fit_uncertainty(data, batches=2, batch_size=4)
    images, states, size = _contexts(world, data)
    init = torch.zeros(len(images), 3, 2)
    planner.adam_body(images, states, size, init)                    # constants made once, as before a capture
    with HostSyncAudit() as audit:
        planner.adam_body(images, states, size, init)
    assert audit.operators > 100                                      # the audit saw the decision
    assert not audit.found, f"operators that would stop a CUDA graph capture: {dict(audit.found)}"


def test_the_audit_catches_what_a_capture_cannot_take():
    with HostSyncAudit() as audit:
        x = torch.arange(6.0)
        float(x.sum())
        x[x > 2].sum()
        torch.tensor([1.0, 2.0])
    assert {"_local_scalar_dense", "index", "lift_fresh"} <= set(audit.found)


def test_batches_are_padded_to_few_sizes():
    assert [padded_size(s) for s in (1, 2, 3, 4, 5, 16, 17, 32, 33, 141, 160)] == [1, 2, 4, 4, 8, 16, 32, 32, 64,
                                                                                    160, 160]


def _cuda_planner(fixed_recording, train_ids, latent_dim, dropout, futures, **config):
    world, data = tiny_world(fixed_recording, train_ids, "kinematic", "state", latent_dim=latent_dim, dropout=dropout)
    world.model.cuda()
    world.normaliser = world.normaliser.to("cuda")
    planner = Planner(world, cost_model(world, fixed_recording), MPCConfig(horizon=6, futures=futures, iterations=5,
                                                                          **config))
    batch = _close_calls(world, data, count=3, horizon=6)
    full_throttle = world.normaliser.normalise_actions(torch.tensor([4.0, 0.0], device="cuda")).expand(len(batch), 6, 2)
    return planner, batch.context_images.cuda(), batch.context_states.cuda(), batch.size.cuda(), full_throttle


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("futures, latent_dim, dropout", [(1, 0, 0.0), (4, 4, 0.1)])
@pytest.mark.gpu
@needs_cuda
def test_the_decision_makes_no_gpu_wait_once_warm(fixed_recording, train_ids, futures, latent_dim, dropout):
    """The device-side check of what the audit cannot see on a CPU: copies of CPU data to the GPU."""
    planner, images, states, size, init = _cuda_planner(fixed_recording, train_ids, latent_dim, dropout, futures)
    planner.uncertainty = UncertaintyStats(torch.zeros(3), torch.ones(3))    # on the CPU, as a loaded policy's
    planner.adam_body(images, states, size, init)
    torch.cuda.set_sync_debug_mode("error")
    try:
        planner.adam_body(images, states, size, init)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.gpu
@needs_cuda
def test_the_graphed_decision_equals_the_eager_one(fixed_recording, train_ids):
    planner, images, states, size, init = _cuda_planner(fixed_recording, train_ids, 0, 0.0, 1)
    for start in (init, 0.5 * init):                        # a replay with new inputs (3 episodes padded to 4)
        graphed = planner.plan(images, states, size, start)
        assert planner._graphs and len(planner._graphs) == 1
        S = len(images)
        eager = planner.adam_body(*(pad_rows(x, padded_size(S)) for x in (images, states, size, start)))
        torch.testing.assert_close(graphed.plan, eager[0][:S], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(graphed.costs, eager[1][:, :S], atol=1e-5, rtol=1e-4)
    planner.config.lr = 0.05                                 # new settings: a new graph, not the stale one
    planner.plan(images, states, size, init)
    assert len(planner._graphs) == 2


@pytest.mark.gpu
@needs_cuda
def test_a_graphed_stochastic_decision_draws_new_futures_and_improves(fixed_recording, train_ids):
    planner, images, states, size, init = _cuda_planner(fixed_recording, train_ids, 4, 0.1, 4)
    planner.uncertainty = UncertaintyStats(torch.zeros(3), torch.ones(3))
    first, second = planner.plan(images, states, size, init), planner.plan(images, states, size, init)
    assert planner._graphs                                                  # captured, not refused
    assert not torch.equal(first.costs[0], second.costs[0])                 # new latents and dropout masks
    assert float(first.costs[-1].sum()) < float(first.costs[0].sum())       # braking from full throttle pays


@pytest.mark.gpu
@needs_cuda
def test_a_decision_that_waits_is_refused_in_the_warm_up_and_decided_eagerly(fixed_recording, train_ids,
                                                                            monkeypatch):
    planner, images, states, size, init = _cuda_planner(fixed_recording, train_ids, 4, 0.1, 4)
    body = planner.adam_body

    def waiting(*args):
        out = body(*args)
        float(out[1].sum())                                                 # a host sync: not capturable
        return out

    monkeypatch.setattr(planner, "adam_body", waiting)
    with pytest.warns(RuntimeWarning, match="CUDA graph"):
        first = planner.plan(images, states, size, init)
    assert planner._graphs is None and first.plan.shape == init.shape
    second = planner.plan(images, states, size, init)                      # random numbers still work
    assert not torch.equal(first.costs[0], second.costs[0])


def test_fit_uncertainty_names_windows_shorter_than_the_horizon(fixed_recording, train_ids):
    world, data = tiny_world(fixed_recording, train_ids, "kinematic", "none")
    planner = Planner(world, cost_model(world, fixed_recording),
                      MPCConfig(horizon=data.predicted_steps + 1, futures=2, iterations=1))
    with pytest.raises(ValueError, match=f"predict {data.predicted_steps} steps, fewer than the plan's horizon"):
        planner.fit_uncertainty(data, batches=1, batch_size=2)
