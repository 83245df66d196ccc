"""Model-predictive control by back-propagation through the world model, for every episode at once (SPEC §6).

At a decision, every running episode gets a plan of ``horizon`` normalised actions, optimised
against ``futures`` imagined futures (latents from the prior, independent dropout masks): the
world model is rolled forward under the plan from the episode's real context, the simulator's
costs score each step (:mod:`ppuu.planner.imagination`), the futures' costs are aggregated (their
mean, or the worst), and the plan takes a few optimiser steps. The first action is executed; the
plan is kept and executed step by step until the next decision (``replan_every``), which starts
from it shifted by the steps taken (a warm start), or from a trained policy's proposal. A new
episode in a slot resets its plan.

Everything is one batched program: S deciding episodes x F futures x H steps per forward and
backward pass, no loop over episodes. Actions stay inside the simulator's bounds by projection
after every update (the bounds in normalised units).

Optimisers (``optimizer``):

* ``adam``: Adam on the plan, learning rate ``lr`` (0.1), ``iterations`` steps (5).
* ``lbfgs``: torch's L-BFGS with a strong-Wolfe line search. The line search is shared by the
  batch (one step length for all deciding episodes), so results depend on who decides together.
* ``cem``: the cross-entropy method: ``population`` plans sampled around the current one, the
  ``elites`` best refit its mean and spread, ``iterations`` times; no gradients.

With a kinematic ego model whose traffic does not read the ego (``ego_conditioning="none"``),
the futures do not depend on the plan: they are imagined once per decision, and every iteration
only moves the ego through them (the kinematic model and the pose-aware costs): an MPC that runs
on a CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import Tensor

from ppuu.planner.imagination import CostModel, imagine
from ppuu.planner.objective import CostWeights, action_terms, discounts, speed_deficit
from ppuu.planner.policy import normalised_bounds
from ppuu.planner.uncertainty import UncertaintyStats, copy_variance
from ppuu.simulator.constants import outside_inference_mode
from ppuu.simulator.dynamics import ActionBounds
from ppuu.world_model.interface import physical_actions, speeds
from ppuu.world_model.kinematics import kinematic_rollout
from ppuu.world_model.models import slide
from ppuu.world_model.train import LoadedModel

OPTIMIZERS = ("adam", "lbfgs", "cem")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
AGGREGATES = ("mean", "worst")


ROWS_PER_CALL = {"cpu": 32}
"""Rows (sampled future x plan) that the planner sends through the world model and its costs at once,
by device type; a device not listed takes every row at once. On a CPU the images of small batches stay
in cache: the plans of a decision are solved ``ROWS_PER_CALL // F`` at a time (they are independent
problems: Adam and CEM act on each plan's own numbers) and the plan-free futures imagined 32 rows at a
time. Measured on the 2-core VM, 1 thread: a decision for the 157 test contexts (H 15, F 2, 3 iterations)
took 9.3-9.6 s in chunks of 16 plans against 19.0-20.5 s in one batch; for 16 contexts at H 30, F 10,
5 iterations, 10.6-10.8 s in chunks of 3 against 22.6 s; the whole test split driven by MPC, 399 s
against 732 s (BENCHMARKS.md)."""


@dataclass
class MPCConfig:
    """Settings of the planner (module docstring).

    Attributes:
        horizon: H, planned steps (0.1 s each).
        futures: F, imagined futures per plan (latents from the prior, dropout masks).
        iterations: optimiser iterations per decision.
        lr: Adam's learning rate (normalised action units).
        optimizer: "adam", "lbfgs" or "cem".
        aggregate: "mean" or "worst" over the futures.
        replan_every: steps between decisions (1 = every step).
        population, elites: CEM's samples per iteration and the best kept.
        cem_std: CEM's initial spread (normalised units).
        weights: the cost weights (uncertainty included: 0 turns it off).
        cuda_graph: on a GPU, replay Adam's decisions from CUDA graphs (one per padded batch size,
            :mod:`ppuu.planner.mpc_graph`) instead of launching every kernel from Python.
    """

    horizon: int = 30
    futures: int = 10
    iterations: int = 5
    lr: float = 0.1
    optimizer: str = "adam"
    aggregate: str = "mean"
    replan_every: int = 1
    population: int = 32
    elites: int = 6
    cem_std: float = 0.5
    weights: CostWeights = field(default_factory=CostWeights)
    cuda_graph: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.weights, dict):
            self.weights = CostWeights(**self.weights)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"MPCConfig.optimizer {self.optimizer!r}: expected one of {OPTIMIZERS}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"MPCConfig.aggregate {self.aggregate!r}: expected one of {AGGREGATES}")
        for name in ("horizon", "futures", "iterations", "replan_every", "population", "elites"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MPCConfig.{name} = {getattr(self, name)}: expected >= 1")
        if self.elites > self.population:
            raise ValueError(f"MPCConfig: {self.elites} elites out of a population of {self.population}")
        if self.replan_every > self.horizon:
            raise ValueError(f"MPCConfig.replan_every {self.replan_every} > horizon {self.horizon}")

    def to_json(self) -> dict:
        out = asdict(self)
        out["weights"] = self.weights.to_json()
        return out


@dataclass
class Decision:
    """What one decision saw and did (for figures and tests).

    Attributes:
        plan: (S, H, 2) the optimised plan, normalised.
        costs: (n, S) the objective at every evaluation, the first before any update and the last of
            the final plan (n = iterations + 1 for Adam; iterations + 2 for CEM, whose middle rows are each
            round's best sample; more for L-BFGS's line search).
        images: (F, S, H, C, H_img, W) the futures imagined under the final plan when they do not depend
            on it (plan-free traffic), else an empty tensor; on the planner's device.
        states: (S, H, 4) the plan's predicted normalised ego states (future 0).
        seconds: wall time of the decision.
    """

    plan: Tensor
    costs: Tensor
    images: Tensor
    states: Tensor
    seconds: float


class Planner:
    """Plans for a batch of contexts against a frozen world model (no simulator involved).

    Args:
        world: the loaded world model.
        cost_model: how predictions are scored (:mod:`ppuu.planner.costs`).
        config: the :class:`MPCConfig`.
        uncertainty: statistics for the uncertainty cost (None: that term is 0).
        bounds: the simulator's action bounds (physical).
    """

    def __init__(self, world: LoadedModel, cost_model: CostModel, config: MPCConfig,
                 uncertainty: UncertaintyStats | None = None, bounds: ActionBounds = ActionBounds()):
        self.world, self.cost_model, self.config, self.uncertainty = world, cost_model, config, uncertainty
        for p in world.model.parameters():
            p.requires_grad_(False)
        box = normalised_bounds(world.normaliser, bounds)
        self.low, self.high = torch.tensor(box["action_low"]), torch.tensor(box["action_high"])
        mc = world.model_config
        self.plan_free_traffic = mc.ego_model == "kinematic" and mc.ego_conditioning == "none"
        self._boxes: dict = {}
        self._graphs: dict | None = {}          # CUDA graphs of the Adam decision (mpc_graph.graph_key; None: refused)
        self._graph_pool = None                  # their shared memory pool

    def fit_uncertainty(self, data, batches: int = 8, batch_size: int = 8, seed: int = 0) -> UncertaintyStats:
        """Statistics of the futures' disagreement under the recorded actions (the planner's own
        configuration: F futures with their own latents), on training windows of ``data`` (a
        :class:`~ppuu.world_model.dataset.WindowDataset` of at least ``horizon`` predicted steps). Sets and
        returns :attr:`uncertainty`."""
        from ppuu.world_model.dataset import sample_indices

        c, mc = self.config, self.world.model_config
        if c.futures < 2:
            raise ValueError("the uncertainty of one future is undefined: futures >= 2")
        if data.predicted_steps < c.horizon:
            raise ValueError(f"fit_uncertainty: the data's windows predict {data.predicted_steps} steps, fewer than the "
                             f"plan's horizon of {c.horizon}: make the WindowDataset with predicted_steps >= "
                             f"{c.horizon}")
        samples = []
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            for i in range(batches):
                batch = data.batch(sample_indices(len(data), seed + 104729, i, batch_size))
                S = len(batch)
                z = torch.randn(c.futures * S, c.horizon, mc.latent_dim) if mc.stochastic else None
                fixed = self._futures(batch.context_images, batch.context_states, z) if self.plan_free_traffic \
                    else None
                _, var, _, _ = self.predict(batch.actions[:, :c.horizon], batch.context_images, batch.context_states,
                                            batch.size, z, fixed)
                samples.append(var.reshape(-1, 3))
        self.uncertainty = UncertaintyStats.from_samples(torch.cat(samples))
        return self.uncertainty

    # ------------------------------------------------------------------ the objective
    def _aggregate(self, per_future: Tensor) -> Tensor:
        """(F, S) -> (S,)."""
        return per_future.max(dim=0).values if self.config.aggregate == "worst" else per_future.mean(dim=0)

    def _score(self, plan: Tensor, copy_costs: Tensor, var: Tensor, ego: Tensor, last: Tensor) -> Tensor:
        """Objective (S,) of plans (S, H, 2) from per-future task costs (F, S, H, 3), variances (S, H, 3),
        the ego's normalised states under the plan (S, H, 4) and at the end of the context (S, 4)."""
        w = self.config.weights
        gamma = discounts(plan.shape[1], w.discount, plan)                                    # (H,)
        task = copy_costs @ w.task(copy_costs)                                               # (F, S, H)
        magnitude, jerk = action_terms(plan)
        shared = w.action * magnitude + w.jerk * jerk                                         # (S, H)
        if w.speed > 0:
            norm = self.world.normaliser
            shared = shared + w.speed * speed_deficit(speeds(ego, norm), speeds(last, norm))
        if self.uncertainty is not None and w.uncertainty > 0 and copy_costs.shape[0] > 1:
            shared = shared + w.uncertainty * self.uncertainty.cost(var)
        per_future = ((task + shared[None]) * gamma).sum(-1)                                  # (F, S)
        return self._aggregate(per_future)

    def predict(self, plan: Tensor, images: Tensor, states: Tensor, size: Tensor, z: Tensor | None,
                fixed: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """The futures of plans (S, H, 2): per-future task costs (F, S, H, 3), variances (S, H, 3), the future
        images (F, S, H, C, h, w) when they do not depend on the plan (else None), ego states (S, H, 4)."""
        c, F = self.config, self.config.futures
        if fixed is None:
            rollout = imagine(self.world.model, images, states, size, lambda i, s, t: plan[:, t], plan.shape[1],
                              self.cost_model, c.weights, copies=F, z=z, stats=self.world.normaliser)
            return rollout.copy_costs, rollout.variances, None, rollout.states
        traffic, image_var = fixed                              # (F * S, H, C, h, w), (S, H)
        ego = self._kinematic_states(states[:, -1], plan)      # (S, H, 4)
        S, H = plan.shape[:2]
        costs = self.cost_model(traffic.flatten(0, 1), ego.repeat(F, 1, 1).flatten(0, 1),
                                size.repeat_interleave(H, 0).repeat(F, 1)).view(F, S, H, 3)
        total = costs @ c.weights.task(costs)
        var = torch.stack([image_var, torch.zeros_like(image_var),
                           copy_variance(total) if F > 1 else torch.zeros_like(image_var)], -1)
        return costs, var, traffic.view(F, S, *traffic.shape[1:]), ego

    def objective(self, plan: Tensor, images: Tensor, states: Tensor, size: Tensor, z: Tensor | None,
                  fixed: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
        """(objective (S,), future images or None, ego states (S, H, 4)) of plans (S, H, 2) (:meth:`predict`)."""
        costs, var, futures, ego = self.predict(plan, images, states, size, z, fixed)
        return self._score(plan, costs, var, ego, states[:, -1]), futures, ego

    def _kinematic_states(self, last: Tensor, plan: Tensor) -> Tensor:
        """Normalised states (S, H, 4) of the ego driven by a plan from normalised state ``last`` (S, 4)."""
        norm = self.world.normaliser
        physical = kinematic_rollout(norm.denormalise_states(last), norm.denormalise_actions(plan),
                                     self.world.model_config.dt)       # all H steps at once (few launches)
        return norm.normalise_states(physical)

    def _futures(self, images: Tensor, states: Tensor, z: Tensor | None) -> tuple[Tensor, Tensor]:
        """Plan-independent traffic: (F * S, H, C, h, w) futures and their per-step image variance (S, H).

        Row r imagines future r // S of context r % S. The rows go through the model
        :data:`ROWS_PER_CALL` at a time (on a CPU, small batches stay in cache: measured per episode,
        51 ms in batches of 32 rows against 83 ms in one batch of 314)."""
        model, F, H = self.world.model, self.config.futures, self.config.horizon
        was = model.training
        model.train(F > 1)
        S = images.shape[0]
        rows = F * S
        chunk = ROWS_PER_CALL.get(images.device.type, rows)
        parts = []
        try:
            with torch.no_grad():
                for lo in range(0, rows, chunk):
                    hi = min(lo + chunk, rows)
                    context = torch.arange(lo, hi, device=images.device) % S
                    window_i, window_s = images[context], states[context]
                    action = window_s.new_zeros(hi - lo, 2)
                    out = []
                    for t in range(H):
                        step = model.step(window_i, window_s, action, "given" if z is not None else "prior",
                                          None if z is None else z[lo:hi, t], stats=self.world.normaliser)
                        out.append(step.image)
                        window_i, window_s = slide(window_i, step.image), slide(window_s, step.state)
                    parts.append(torch.stack(out, 1))
        finally:
            model.train(was)
        traffic = torch.cat(parts)                                                   # (F * S, H, C, h, w)
        image_var = copy_variance(traffic.view(F, S, H, -1)).mean(-1) if F > 1 else traffic.new_zeros(S, H)
        return traffic, image_var

    # ------------------------------------------------------------------ one decision
    def plan(self, images: Tensor, states: Tensor, size: Tensor, init: Tensor) -> Decision:
        """Optimise plans for S contexts.

        Args:
            images: (S, T, C, h, w) model-ready context; states (S, T, 4) normalised; size (S, 2) m.
            init: (S, H, 2) the starting plans (normalised).
        """
        started = time.perf_counter()
        c = self.config
        S = images.shape[0]
        if tuple(init.shape) != (S, c.horizon, 2):
            raise ValueError(f"init: plans of shape (S, H, 2) = ({S}, {c.horizon}, 2) expected (the planner's "
                             f"horizon is {c.horizon}), got {tuple(init.shape)}")
        if S == 0:                                 # no episode decides: an empty decision
            empty = init.new_zeros(0, c.horizon, 2)
            return Decision(empty, init.new_zeros(1, 0), init.new_zeros(0), init.new_zeros(0, c.horizon, 4),
                            time.perf_counter() - started)
        rows = ROWS_PER_CALL.get(images.device.type)
        chunk = max(1, rows // c.futures) if rows else S
        if S > chunk and c.optimizer != "lbfgs":                # L-BFGS's line search couples the plans
            parts = [self.plan(images[lo:lo + chunk], states[lo:lo + chunk], size[lo:lo + chunk], init[lo:lo + chunk])
                     for lo in range(0, S, chunk)]
            futures = torch.cat([p.images for p in parts], 1) if parts[0].images.numel() else parts[0].images
            return Decision(torch.cat([p.plan for p in parts]), torch.cat([p.costs for p in parts], 1), futures,
                            torch.cat([p.states for p in parts]), time.perf_counter() - started)
        if c.optimizer == "adam":
            plan, costs, futures, ego = self._adam_decision(images, states, size, init)
            if plan.is_cuda:                      # the work is queued, not done: time it done
                torch.cuda.synchronize(plan.device)
            return Decision(plan, costs, futures, ego, time.perf_counter() - started)
        plan, history, evaluate = self._start(images, states, size, init)
        if c.optimizer == "cem":
            plan, history = self._cem(plan, evaluate)
        else:
            plan.requires_grad_(True)
            optimiser = torch.optim.LBFGS([plan], lr=1.0, max_iter=1, line_search_fn="strong_wolfe")
            low, high = self._box(plan)
            for _ in range(c.iterations):
                def closure():
                    optimiser.zero_grad()
                    # the cost of the plan as it will be executed: a step that only pays outside the bounds
                    # would be clamped back afterwards to a worse plan, so the line search must not take it
                    cost = evaluate(torch.clamp(plan, low, high))[0]
                    history.append(cost.detach())
                    cost.sum().backward()
                    return cost.sum()
                optimiser.step(closure)
                with torch.no_grad():
                    plan.clamp_(low, high)
            plan = plan.detach()
        final, futures, ego = self._finish(plan, evaluate)
        history.append(final)
        if plan.is_cuda:
            torch.cuda.synchronize(plan.device)
        return Decision(plan, torch.stack(history), futures, ego, time.perf_counter() - started)

    def _box(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """The action bounds (2,) and (2,) on ``like``'s device and dtype, kept per device (no copy per call)."""
        key = (like.device, like.dtype)
        if key not in self._boxes:
            with outside_inference_mode():
                self._boxes[key] = (self.low.to(like), self.high.to(like))
        return self._boxes[key]

    def _start(self, images: Tensor, states: Tensor, size: Tensor, init: Tensor):
        """(the clamped starting plans, an empty cost history, ``evaluate(plans) -> objective()``): the
        decision's futures drawn (latents; the plan-free traffic imagined once)."""
        c, mc = self.config, self.world.model_config
        S = images.shape[0]
        z = torch.randn(c.futures * S, c.horizon, mc.latent_dim, device=images.device) if mc.stochastic else None
        fixed = self._futures(images, states, z) if self.plan_free_traffic else None
        low, high = self._box(init)
        plan = init.detach().clamp(low, high)

        def evaluate(p: Tensor):
            return self.objective(p, images, states, size, z, fixed)

        return plan, [], evaluate

    @staticmethod
    def _finish(plan: Tensor, evaluate) -> tuple[Tensor, Tensor, Tensor]:
        """(objective (S,), futures (F, S, H, C, h, w) or an empty tensor, ego states (S, H, 4)) of the final plans."""
        with torch.no_grad():
            final, futures, ego = evaluate(plan)
        return final, (futures.detach() if futures is not None else plan.new_zeros(0)), ego.detach()

    def _adam_decision(self, images: Tensor, states: Tensor, size: Tensor, init: Tensor):
        """One Adam decision: (plans (S, H, 2), costs (iterations + 1, S), futures, ego states (S, H, 4)).

        On a GPU it is replayed from a CUDA graph (:mod:`ppuu.planner.mpc_graph`) unless
        ``MPCConfig.cuda_graph`` is off; elsewhere it runs as written (:meth:`adam_body`)."""
        if images.device.type == "cuda" and self.config.cuda_graph and self._graphs is not None:
            from ppuu.planner.mpc_graph import graphed_decision

            out = graphed_decision(self, images, states, size, init)
            if out is not None:
                return out
        return self.adam_body(images, states, size, init)

    def adam_body(self, images: Tensor, states: Tensor, size: Tensor, init: Tensor):
        """The Adam decision as one straight program: torch.optim.Adam's arithmetic (betas 0.9 / 0.999,
        eps 1e-8) written out on the plans, with ``torch.autograd.grad`` for the gradient, the bounds
        applied by projection after every update. It has no host synchronisation and no shape that depends
        on data, so a GPU can capture it whole as a CUDA graph (``tests/planner/test_mpc_graph.py`` checks
        both, and its equality with ``torch.optim.Adam``). Returns what :meth:`_adam_decision` does."""
        c = self.config
        plan, history, evaluate = self._start(images, states, size, init)
        low, high = self._box(plan)
        first, second = torch.zeros_like(plan), torch.zeros_like(plan)
        for t in range(1, c.iterations + 1):
            leaf = plan.detach().requires_grad_(True)
            with torch.enable_grad():                             # a caller under no_grad still plans
                cost = evaluate(leaf)[0]
                (grad,) = torch.autograd.grad(cost.sum(), leaf)
            history.append(cost.detach())
            first.lerp_(grad, 1 - ADAM_BETAS[0])
            second.mul_(ADAM_BETAS[1]).addcmul_(grad, grad, value=1 - ADAM_BETAS[1])
            denom = (second.sqrt() / math.sqrt(1 - ADAM_BETAS[1] ** t)).add_(ADAM_EPS)
            plan = torch.addcdiv(plan.detach(), first, denom, value=-c.lr / (1 - ADAM_BETAS[0] ** t)).clamp_(low, high)
        final, futures, ego = self._finish(plan, evaluate)
        history.append(final)
        return plan, torch.stack(history), futures, ego

    def _cem(self, mean: Tensor, evaluate) -> tuple[Tensor, list[Tensor]]:
        c = self.config
        S, H, A = mean.shape
        std = torch.full_like(mean, c.cem_std)
        history = []
        with torch.no_grad():
            history.append(evaluate(mean)[0])
            for _ in range(c.iterations):
                samples = mean[:, None] + std[:, None] * torch.randn(S, c.population, H, A, device=mean.device)
                samples[:, 0] = mean                                            # keep the incumbent
                samples = samples.clamp(self.low.to(mean), self.high.to(mean))
                flat = samples.reshape(S * c.population, H, A)
                cost = self._population_cost(flat, evaluate, S).view(c.population, S).T        # (S, P)
                elite = cost.topk(c.elites, dim=1, largest=False).indices
                chosen = samples.gather(1, elite[..., None, None].expand(-1, -1, H, A))
                mean, std = chosen.mean(1), chosen.std(1, unbiased=False).clamp(min=1e-3)
                history.append(cost.gather(1, elite[:, :1])[:, 0])
        return mean, history

    def _population_cost(self, flat: Tensor, evaluate, S: int) -> Tensor:
        """Costs (P * S,), population-major, of episode-major plans (S * P, H, A), each against its own
        episode's context."""
        P = flat.shape[0] // S
        plans = flat.view(S, P, *flat.shape[1:]).transpose(0, 1).reshape(P * S, *flat.shape[1:])
        costs = []
        for p in range(P):                     # a chunk per member keeps memory at one plan per episode
            costs.append(evaluate(plans[p * S:(p + 1) * S])[0])
        return torch.stack(costs, 0).reshape(-1)


class MPCController:
    """The planner at the wheel of the simulator: a closed-loop controller (``ppuu.simulator.evaluate``).

    Args:
        planner: the :class:`Planner`.
        context: a callable ``(slots, observation, sim) -> (images, states)`` giving model-ready
            contexts of the deciding slots (:func:`ppuu.planner.controller.context_source`).
        proposal: optional ``(images, states, size) -> plan (S, H, 2)``, a trained policy's proposal used as the
            starting plan of every decision (instead of the shifted previous plan).
    """

    needs_grad = True

    def __init__(self, planner: Planner, context, proposal=None):
        self.planner, self.context, self.proposal = planner, context, proposal
        self.plans: Tensor | None = None
        self.offset: Tensor | None = None
        self.decisions: list[float] = []          # seconds per decision call
        self.deciding: list[int] = []             # episodes per decision call
        self.last: Decision | None = None
        self.first: tuple[Decision, Tensor] | None = None   # the first decision and its contexts (figures)

    def on_episode_start(self, slots: Tensor, sim) -> None:
        c = self.planner.config
        if self.plans is None or self.plans.shape[0] != sim.batch_size:
            self.plans = torch.zeros(sim.batch_size, c.horizon, 2, device=sim.device)
            self.offset = torch.full((sim.batch_size,), c.replan_every, dtype=torch.int64, device=sim.device)
        self.plans[slots] = 0.0
        self.offset[slots] = c.replan_every                     # decide at the next call

    def __call__(self, observation, sim) -> Tensor:
        c = self.planner.config
        if self.plans is None or self.plans.shape[0] != sim.batch_size:
            self.on_episode_start(torch.arange(sim.batch_size, device=sim.device), sim)
        running = ~sim.done
        deciding = running & (self.offset >= c.replan_every)
        if bool(deciding.any()):
            slots = deciding.nonzero().squeeze(1)
            images, states = self.context(slots, observation, sim)
            shift = self.offset[slots]
            index = (torch.arange(c.horizon, device=sim.device)[None] + shift[:, None]).clamp(max=c.horizon - 1)
            warm = self.plans[slots].gather(1, index[..., None].expand(-1, -1, 2))         # shifted plans
            if self.proposal is not None:
                with torch.no_grad():
                    warm = self.proposal(images, states, sim.size[slots].to(images))
            decision = self.planner.plan(images, states, sim.size[slots].to(images), warm.to(images))
            self.plans[slots] = decision.plan.to(self.plans)
            self.offset[slots] = 0
            self.decisions.append(decision.seconds)
            self.deciding.append(len(slots))
            self.last = decision
            if self.first is None:                              # kept on the CPU, for the figure
                self.first = (replace(decision, plan=decision.plan.cpu(), costs=decision.costs.cpu(),
                                      images=decision.images.cpu(), states=decision.states.cpu()), images.detach().cpu())
        step = self.offset.clamp(max=c.horizon - 1)
        action = self.plans.gather(1, step[:, None, None].expand(-1, 1, 2))[:, 0]
        self.offset += running.long()
        return physical_actions(action, self.planner.world.normaliser).to(sim.device, sim.dtype)
