"""Imagined futures: the world model rolled forward under an actor, every step scored.

Both planners stand on this: MPUR trains a policy by back-propagating the score of imagined
rollouts into it (:mod:`ppuu.planner.mpur`), MPC optimises a plan of actions against them
(:mod:`ppuu.planner.mpc`). One rollout of B contexts over N steps:

1. The actor (a policy, or a plan indexed by step) sees the current window of copy 0 and
   gives a normalised action (B, A); every copy takes the same action.
2. K copies of the model (one batched pass of K x B samples; the same latents z, independent
   dropout masks: the model is in train mode when K > 1) predict the next frame and state.
3. Each copy's prediction is scored by the simulator's costs (:class:`CostModel`, imported from
   :mod:`ppuu.simulator.costs`; bound to the real context first where it reads the road there,
   :func:`ppuu.planner.costs.at_context`); copy 0 gives the task costs, the spread of the K copies
   the uncertainty cost (:mod:`ppuu.planner.uncertainty`).
4. The window slides: the prediction becomes the newest frame.

Everything stays differentiable: gradients reach the actions (and through them the policy's
parameters) through the model and the costs; the world model's own parameters are frozen by
the caller. Shapes: B contexts, N steps, K copies, C x H x W images, S = 4 states, A = 2 actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor

from ppuu.planner.costs import at_context
from ppuu.planner.objective import CostWeights, action_terms, speed_deficit
from ppuu.planner.uncertainty import UncertaintyStats, variances
from ppuu.simulator.recording import is_fixed_frame
from ppuu.world_model.interface import recentred_states, speeds
from ppuu.world_model.models import ForwardModel, slide
from ppuu.world_model.normalisation import Normaliser

Actor = Callable[[Tensor, Tensor, int], Tensor]
"""``actor(window_images (B, T, C, H, W), window_states (B, T, S), step) -> normalised action (B, A)``."""

WINDOW_ORIGINS = ("newest", "context")
"""Where a policy's imagined window states measure x from (:func:`policy_actor`)."""


def window_origin_for(observation: dict, wanted: str = "newest") -> str:
    """The origin a policy's imagined windows are measured from on a world model whose observation settings
    are ``observation``: "context" on fixed-frame models (their anchored controller measures from the
    anchor, as imagination does), ``wanted`` on egocentric ones (:func:`policy_actor`)."""
    return "context" if is_fixed_frame(observation) else wanted


def policy_actor(policy: Callable[..., Tensor], normaliser: Normaliser, origin: str = "newest",
                 first: Tensor | None = None, **policy_kwargs) -> Actor:
    """An :data:`Actor` that asks ``policy(images, states, **policy_kwargs)`` for every step's action.

    Args:
        policy: e.g. a :class:`~ppuu.planner.policy.DrivingPolicy`.
        normaliser: the world model's statistics.
        origin: "newest": the policy reads each imagined window's states measured from the window's
            newest frame (:func:`~ppuu.world_model.interface.recentred_states`), as the controller
            gives it the simulator's windows; this is right for egocentric (learned-ego) models.
            "context": as the model predicts them, from the real context's last frame: right for
            fixed-frame models, whose controller measures states from the anchor as imagination does,
            and how egocentric policies were trained before 2026-12-07 (to reproduce those runs).
        first: (B, A) the action of step 0 when already computed (its window is the real context).
    """
    if origin not in WINDOW_ORIGINS:
        raise ValueError(f"window origin {origin!r}: expected one of {WINDOW_ORIGINS}")

    def act(images: Tensor, states: Tensor, t: int) -> Tensor:
        if t == 0 and first is not None:
            return first
        if origin == "newest":
            states = recentred_states(states, normaliser)
        return policy(images, states, **policy_kwargs)
    return act


class CostModel(Protocol):
    """Scores predicted steps with the simulator's costs: how a world-model variant places the ego."""

    def __call__(self, images: Tensor, states: Tensor, size: Tensor) -> Tensor:
        """images (M, C, H, W) in [0, 1], normalised states (M, S), ego size (M, 2) m -> (M, 3) costs
        (proximity, lane, off-road)."""
        ...


@dataclass
class Rollout:
    """An imagined rollout of B contexts over N steps.

    Attributes:
        actions: (B, N, A) normalised actions taken.
        terms: (B, N, 7) unweighted per-step costs of copy 0 in the order of
            :data:`ppuu.planner.objective.TERMS` (proximity, lane, off-road, uncertainty, action, jerk,
            speed).
        variances: (B, N, 3) spread of the K copies (images, states, cost); zeros when K = 1.
        images: (B, N, C, H, W) copy 0's predicted frames.
        states: (B, N, S) copy 0's predicted normalised states.
        copy_costs: (K, B, N, 3) the task costs of every copy (MPC aggregates over them).
    """

    actions: Tensor
    terms: Tensor
    variances: Tensor
    images: Tensor
    states: Tensor
    copy_costs: Tensor


def imagine(model: ForwardModel, images: Tensor, states: Tensor, size: Tensor, actor: Actor, steps: int,
            cost_model: CostModel, weights: CostWeights, copies: int = 1, z: Tensor | None = None,
            uncertainty: UncertaintyStats | None = None, stats=None, previous_action: Tensor | None = None,
            speed_reference: Tensor | None = None) -> Rollout:
    """Roll ``model`` forward ``steps`` steps from real contexts under ``actor``, scoring every step.

    Args:
        model: the forward model (its parameters are not touched; freeze them for training).
        images: (B, T, C, H, W) context in [0, 1]; states (B, T, S) normalised.
        size: (B, 2) ego (length, width) m.
        actor: see :data:`Actor`.
        steps: N.
        cost_model: the variant's :class:`CostModel`.
        weights: the cost weights (the uncertainty's variance of the total cost uses them).
        copies: K, dropout copies (1 = no uncertainty estimate, dropout off).
        z: (B, N, Z) latents shared by the copies, or (K * B, N, Z) one per copy (copy-major: MPC's
            independent futures); None = drawn from the prior here, shared.
        uncertainty: statistics that turn variances into the uncertainty cost; None = that term is 0.
        stats: the model's :class:`~ppuu.world_model.normalisation.Normaliser` (kinematic ego; the
            speed term needs it: without it that term is 0).
        previous_action: (B, A) normalised action before the first step (jerk term).
        speed_reference: (B, N) m/s, the speed each step's speed deficit is charged against; None = the
            speed at the end of the context (:func:`~ppuu.planner.objective.speed_deficit`).
    """
    if copies < 1:
        raise ValueError(f"copies = {copies}: expected >= 1")
    c = model.config
    B = images.shape[0]
    if c.stochastic and z is None:
        z = torch.randn(B, steps, c.latent_dim, device=images.device, dtype=images.dtype)
    was_training = model.training
    model.train(copies > 1)
    K = copies
    window_i = images.repeat(K, *([1] * (images.dim() - 1)))
    window_s = states.repeat(K, 1, 1)
    size_k = size.repeat(K, 1)
    z_k = None if z is None else (z if z.shape[0] == K * B and K > 1 else z.repeat(K, 1, 1))
    score = at_context(cost_model, window_i[:, -1], window_s[:, -1])     # the real context, before it slides
    w = weights.task(images)
    actions, task, spread, out_images, out_states, every = [], [], [], [], [], []
    try:
        for t in range(steps):
            action = actor(window_i[:B], window_s[:B], t)
            out = model.step(window_i, window_s, action.repeat(K, 1), z_source="given" if z_k is not None else "prior",
                             z=None if z_k is None else z_k[:, t], stats=stats)
            costs = score(out.image, out.state, size_k).view(K, B, 3)
            if K > 1:
                spread.append(variances(out.image.view(K, B, *out.image.shape[1:]), out.state.view(K, B, -1),
                                        costs @ w))
            actions.append(action)
            task.append(costs[0])
            every.append(costs)
            out_images.append(out.image[:B])
            out_states.append(out.state[:B])
            window_i, window_s = slide(window_i, out.image), slide(window_s, out.state)
    finally:
        model.train(was_training)
    actions_t = torch.stack(actions, 1)
    var = torch.stack(spread, 1) if spread else actions_t.new_zeros(B, steps, 3)
    u = uncertainty.cost(var) if (uncertainty is not None and K > 1) else actions_t.new_zeros(B, steps)
    magnitude, jerk = action_terms(actions_t, previous_action)
    states_t = torch.stack(out_states, 1)
    if stats is None:
        deficit = actions_t.new_zeros(B, steps)
    else:
        reference = speeds(states[:, -1], stats) if speed_reference is None else speed_reference
        deficit = speed_deficit(speeds(states_t, stats), reference)
    terms = torch.cat([torch.stack(task, 1), u[..., None], magnitude[..., None], jerk[..., None],
                       deficit[..., None]], dim=-1)
    return Rollout(actions_t, terms, var, torch.stack(out_images, 1), states_t,
                   torch.stack(every, 2))
