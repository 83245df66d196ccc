"""What the world model predicts, for the driving view: K futures sampled from the ego's real context.

Every few steps the session asks :class:`ModelFutures` for K futures of ``horizon`` steps: the
model's context of the ego (what a policy or the planner would read: the egocentric history, or
for fixed-frame models the last frames re-rendered around the ego's pose,
:func:`ppuu.planner.controller.context_source`) is repeated K times and unrolled
(:func:`ppuu.world_model.models.unroll_policy`) with dropout on and latents from the prior, so
each row is its own future. The actor is the policy when one is loaded for this model (it acts
on each row's own imagined window, so the ego's futures differ where the predicted traffic
does), else the last applied action held. Each future is scored with the simulator's costs
(:mod:`ppuu.planner.costs`); their disagreement gives the uncertainty
(:mod:`ppuu.planner.uncertainty`: the cost of the policy's statistics when it has them, else the
mean image variance across the futures).

Everything needed to draw is returned in world coordinates (metres) plus the model view's
pose, so the view can project it onto the top-down camera and the model's own image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ppuu.planner.controller import context_source
from ppuu.planner.costs import at_context
from ppuu.planner.objective import CostWeights
from ppuu.simulator.raster import VEHICLES, RasterConfig
from ppuu.simulator.recording import is_fixed_frame
from ppuu.world_model.interface import normalised_actions, recentred_states, world_states
from ppuu.world_model.models import unroll_policy


@dataclass
class Futures:
    """K sampled futures of N steps (numpy, CPU).

    Attributes:
        step: the simulator step (of the episode) they were sampled at.
        positions: (K, N, 2) m, the ego's predicted centre in the world frame.
        context: (C, h, w) in [0, 1], the model's newest context frame.
        images: (N, C, h, w) in [0, 1], future 0's predicted frames.
        spread: (N, h, w) in [0, 1], where the futures disagree on the vehicles: the range (max - min) of
            the vehicles channel across the K futures.
        centre: (2,) m, world-frame centre of the model's images.
        unit: (2,) unit vector, their up direction (row 0 is ahead along it).
        pixels_per_metre: of the model's images.
        costs: (K, N, 3) proximity, lane, off-road of every future's steps.
        uncertainty: the futures' disagreement (module docstring), one number.
    """

    step: int
    positions: np.ndarray
    context: np.ndarray
    images: np.ndarray
    spread: np.ndarray
    centre: np.ndarray
    unit: np.ndarray
    pixels_per_metre: float
    costs: np.ndarray
    uncertainty: float


class ModelFutures:
    """Samples futures of a loaded world model around the simulator's ego (module docstring).

    Args:
        world: the :class:`~ppuu.world_model.train.LoadedModel`.
        cost_model: its :mod:`ppuu.planner.costs` adapter (:func:`ppuu.app.cli_policy.cost_model_for`).
        policy: a :class:`~ppuu.planner.train.LoadedPolicy` trained on this model (its actor), or None.
        futures: K.
        horizon: N steps (0.1 s each).
        seed: of the latents and dropout masks (the same seed and context give the same futures); None draws
            them from the global generator without reseeding it (a worker thread must not reseed the generator
            the main thread's controllers draw from).
    """

    def __init__(self, world, cost_model, policy=None, futures: int = 4, horizon: int = 20,
                 seed: int | None = 0):
        if futures < 1 or horizon < 1:
            raise ValueError(f"futures = {futures}, horizon = {horizon}: expected >= 1")
        self.world, self.cost_model, self.futures, self.horizon, self.seed = world, cost_model, futures, horizon, seed
        mc = world.model_config
        self.channels, self.context_length = mc.image_channels, mc.context
        if policy is not None and (policy.policy.config.image_height, policy.policy.config.image_width,
                                   policy.policy.config.image_channels) != (mc.image_height, mc.image_width,
                                                                            mc.image_channels):
            policy = None                      # trained on another model's images: hold the action instead
        self.policy = policy
        self.uncertainty_stats = getattr(policy, "uncertainty", None)
        frame = world.observation.get("frame", {"kind": "egocentric"})
        self.fixed = is_fixed_frame(world.observation)
        self.centre_ahead = float(frame.get("centre_ahead", 0.0)) if self.fixed else 0.0
        self.raster = RasterConfig(**world.observation["raster"])
        self.context_of = context_source(world.observation, world.normaliser, self.channels, self.context_length)
        self.device = next(world.model.parameters()).device

    def needs(self):
        """(history frames, keep_traffic) the simulator must provide."""
        return self.context_length, self.fixed

    def to_world(self, states: Tensor, position: Tensor, unit: Tensor) -> np.ndarray:
        """The model's normalised predicted states (S, N, 4), from a context taken at the ego pose
        (position (2,) m, unit (2,)), -> world-frame ego centres (S, N, 2) m."""
        norm = self.world.normaliser
        position, unit = position.to(states.device, states.dtype), unit.to(states.device, states.dtype)
        if self.fixed:                    # (x ahead, y left) in the frame of the pose
            local = norm.to(states.device).denormalise_states(states.float())[..., :2]
            left = torch.stack([-unit[1], unit[0]])
            world = position + local[..., :1] * unit + local[..., 1:2] * left
        else:                             # relative x: x - x of the newest context frame
            origin = position[0].expand(states.shape[0])
            world = world_states(states, origin, norm)[..., :2]
        return world.detach().cpu().numpy().astype(np.float64)

    def context(self, observation, sim, step: int, last_action: Tensor | None = None) -> "Context":
        """Slot 0's model-ready context now (cheap: runs on the caller's thread; the simulator is not read again)."""
        slot = torch.zeros(1, dtype=torch.int64, device=sim.device)
        with torch.no_grad():
            images, states = self.context_of(slot, observation, sim)
        action = last_action if last_action is not None else torch.zeros(2)
        return Context(step, images.to(self.device).float(), states.to(self.device).float(),
                       sim.ego.position[0].detach().cpu().clone(), sim.ego.heading[0].detach().cpu().clone(),
                       sim.size[:1].detach().to(self.device).float(), action.detach().float().cpu().reshape(2))

    def sample(self, observation, sim, step: int, last_action: Tensor | None = None) -> Futures:
        """K futures from slot 0's current context (:meth:`context` then :meth:`predict`). ``last_action``: (2,)
        physical, held by the actor when there is no policy (default: zero)."""
        return self.predict(self.context(observation, sim, step, last_action))

    def predict(self, ctx: "Context") -> Futures:
        """K futures of a context (the heavy part: safe to run on a worker thread)."""
        K, N, model = self.futures, self.horizon, self.world.model
        position, unit = ctx.position, ctx.unit
        with torch.no_grad():
            ctx_images, ctx_states = ctx.images.repeat(K, 1, 1, 1, 1), ctx.states.repeat(K, 1, 1)
            if self.policy is not None:
                net, norm, fixed = self.policy.policy, self.world.normaliser, self.fixed

                def actor(i, s):               # the windows as its controller shows them (x from the newest)
                    return net(i, s if fixed else recentred_states(s, norm), sample=False)
            else:
                held = normalised_actions(ctx.action.to(self.device), self.world.normaliser).reshape(1, 2).expand(K, 2)

                def actor(i, s):
                    return held
            was = model.training
            model.train(K > 1)                        # dropout on: each row its own future
            try:
                if self.seed is None:
                    prediction, _ = unroll_policy(model, ctx_images, ctx_states, actor, N, "prior",
                                                  stats=self.world.normaliser)
                else:
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(self.seed + ctx.step)
                        prediction, _ = unroll_policy(model, ctx_images, ctx_states, actor, N, "prior",
                                                      stats=self.world.normaliser)
            finally:
                model.train(was)
            images = prediction.images.contiguous()
            vehicles = images[:, :, VEHICLES]                                          # (K, N, h, w)
            score = at_context(self.cost_model, ctx_images[:, -1].repeat_interleave(N, 0),
                               ctx_states[:, -1].repeat_interleave(N, 0))        # rows in (K, N) order
            costs = score(images.flatten(0, 1), prediction.states.flatten(0, 1), ctx.size.repeat(K * N, 1))
            costs = costs.view(K, N, 3)
            if K > 1:
                w = CostWeights()
                total = costs @ costs.new_tensor([w.proximity, w.lane, w.offroad])
                var = _variances(images, prediction.states, total)           # (N, 3)
                uncertainty = (float(self.uncertainty_stats.cost(var).mean()) if self.uncertainty_stats is not None
                               else float(var[:, 0].mean()))
            else:
                uncertainty = float("nan")
        centre = position + self.centre_ahead * unit
        return Futures(step=ctx.step, positions=self.to_world(prediction.states, position, unit),
                       context=ctx.images[0, -1].cpu().numpy(), images=images[0].cpu().numpy(),
                       spread=(vehicles.max(0).values - vehicles.min(0).values).cpu().numpy(),
                       centre=centre.numpy().astype(np.float64), unit=unit.numpy().astype(np.float64),
                       pixels_per_metre=self.raster.pixels_per_metre, costs=costs.cpu().numpy(),
                       uncertainty=uncertainty)


def _variances(images: Tensor, states: Tensor, cost: Tensor) -> Tensor:
    """:func:`ppuu.planner.uncertainty.variances` of K futures (K, N, ...) as (N, 3), written out: torch's
    ``var(dim=0)`` on (K, N, C, h, w) images took 10x longer (39 ms against 4 for K = 4, N = 20 at 156 x 24)."""
    def var0(x: Tensor) -> Tensor:
        x = x.float()
        return (x - x.mean(0)).square().mean(0)

    return torch.stack([var0(images).flatten(1).mean(1), var0(states).mean(1), var0(cost)], -1)


@dataclass
class Context:
    """What :meth:`ModelFutures.predict` needs, taken at one step: the model-ready images (1, T, C, h, w) and
    states (1, T, 4), the ego pose (position (2,) m, unit (2,)) and size (1, 2) m, the last action (2,)
    physical."""

    step: int
    images: Tensor
    states: Tensor
    position: Tensor
    unit: Tensor
    size: Tensor
    action: Tensor
