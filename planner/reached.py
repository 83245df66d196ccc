"""Contexts the policy reaches: training on the states of its own closed-loop episodes (DAgger-style).

MPUR and its baselines imagine from real 20-frame contexts of the recording, so the policy only
ever learns to act where the recorded drivers were: in their lane, at their heading. A policy
that drifts a little in the closed loop leaves those contexts within seconds and then acts where
it never trained (on the weaving scene a released wheel turns *towards* its heading error and
ends across the lanes: BENCHMARKS.md, issue 9). The remedy of imitation learning's DAgger, applied
to learning through the model: drive the current policy in the simulator, keep the contexts it
reaches, and imagine from those as well.

Every ``every`` training steps :meth:`ReachedContexts.collect` drives ``episodes`` episodes of the
training split (replayed traffic, the simulator's default course) with the current weights for up
to ``steps`` steps and keeps the model-ready context of every running episode every ``stride``
steps (from step ``stride`` on: step 0's context is a recorded one). A share of each training
batch then starts its imagination from these contexts (:func:`ppuu.planner.train.policy_loss`).
They have no recorded future, so the imitation and MPER errors are measured on the recorded part
of the batch only, and only the methods that minimise costs (mpur, vg, svg) can use them.

Reproducible: a pool is a pure function of (the weights it was collected with, seed, step): the
simulator replays, the policy is deterministic and the episodes are drawn from (seed, step). The
checkpoint keeps the weights of the last collection, so a resumed run rebuilds the same pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ppuu.simulator.evaluate import run_episodes
from ppuu.simulator.sim import BatchedSimulator, Observation, SimConfig


@dataclass
class ReachedPool:
    """P contexts reached by a policy in the closed loop, on the CPU.

    Attributes:
        images: (P, T, C, H, W) float16 in [0, 1] (half the memory; the model reads float32).
        states: (P, T, S) normalised states, as the world model's windows give them.
        size: (P, 2) m, the ego's (length, width).
        lane: (P,) the simulator's lane cost at the moment the context was kept (how far off-centre
            the policy had drifted; for the log).
    """

    images: Tensor
    states: Tensor
    size: Tensor
    lane: Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def take(self, rows: Tensor, device: torch.device | str) -> tuple[Tensor, Tensor, Tensor]:
        """(images float32, states, size) of ``rows`` (R,) on ``device``."""
        return (self.images[rows].to(device, torch.float32), self.states[rows].to(device),
                self.size[rows].to(device))


class _Keeping:
    """A controller that keeps the context of every running episode every ``stride`` calls, then drives."""

    needs_grad = False

    def __init__(self, controller, source, stride: int):
        self.controller, self.source, self.stride = controller, source, stride
        self.on_episode_start = getattr(controller, "on_episode_start", None)
        self.calls = 0
        self.kept: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    def __call__(self, observation: Observation, sim: BatchedSimulator) -> Tensor:
        if self.calls and self.calls % self.stride == 0:
            slots = (~sim.done).nonzero().squeeze(1)
            if len(slots):
                images, states = self.source(slots, observation, sim)
                self.kept.append((images.to("cpu", torch.float16), states.cpu().float(), sim.size[slots].cpu().float(),
                                  sim.last_costs.lane[slots].cpu().float()))
        self.calls += 1
        return self.controller(observation, sim)


class ReachedContexts:
    """Collects :class:`ReachedPool` s of one scene's training split for one policy architecture.

    Args:
        scene: the scene (its training split drives).
        world: the :class:`~ppuu.world_model.train.LoadedModel` trained through (its observation settings
            and normaliser make the contexts model-ready, as the closed-loop controllers do).
        policy_config: the :class:`~ppuu.planner.policy.PolicyConfig` of the weights given to :meth:`collect`.
        episodes, steps, stride: per collection, the episodes driven, their steps at most, and the steps
            between kept contexts.
        device: where the simulator and the policy run.
        base: the simulator's settings before the policy's raster and history are applied (default
            :class:`~ppuu.simulator.sim.SimConfig`: replayed traffic, the site's course).
    """

    def __init__(self, scene, world, policy_config, episodes: int = 32, steps: int = 80, stride: int = 10,
                 device: torch.device | str = "cpu", base: SimConfig | None = None):
        from ppuu.planner.controller import context_source, make_controller, sim_config_for
        from ppuu.planner.policy import DrivingPolicy
        from ppuu.planner.train import LoadedPolicy

        if episodes < 1 or stride < 1 or steps < stride:
            raise ValueError(f"reached contexts: episodes = {episodes}, steps = {steps}, stride = {stride}: expected "
                             "episodes >= 1 and steps >= stride >= 1")
        self.world, self.episodes, self.steps, self.stride = world, episodes, steps, stride
        self.device = torch.device(device)
        normaliser = world.normaliser.to(self.device)
        # one network and one controller drive every collection; collect() loads the weights of the moment
        self.policy = DrivingPolicy(policy_config).to(self.device).eval()
        loaded = LoadedPolicy(policy=self.policy, method="reached", normaliser=normaliser,
                              model_config=world.model_config, observation=world.observation, train_config=None,
                              uncertainty=None, step=0)
        self.controller = make_controller(loaded)
        mc = world.model_config
        self.source = context_source(world.observation, normaliser, mc.image_channels, mc.context)
        self.sim = BatchedSimulator(scene, sim_config_for(loaded, base), device=self.device)
        self.vehicle_ids = self.sim.episode_vehicles("train")
        if len(self.vehicle_ids) == 0:
            raise ValueError(f"reached contexts: no training episodes in scene {scene.meta.name!r} on course "
                             f"{self.sim.course}")

    def collect(self, weights: dict[str, Tensor], seed: int, step: int) -> ReachedPool:
        """Drive ``episodes`` training episodes (drawn from (seed, step)) with a policy of ``weights``;
        the contexts they reach (possibly none, when every episode ends within ``stride`` steps)."""
        self.policy.load_state_dict(weights)
        keeping = _Keeping(self.controller, self.source, self.stride)
        rng = np.random.default_rng([seed, step, 0x4EAC])
        count = min(self.episodes, len(self.vehicle_ids))
        ids = np.sort(self.vehicle_ids[rng.choice(len(self.vehicle_ids), size=count, replace=False)])
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            run_episodes(self.sim, ids, keeping, progress=False, max_steps=self.steps)
        if not keeping.kept:
            mc = self.world.model_config
            empty = torch.zeros(0, mc.context, mc.image_channels, mc.image_height, mc.image_width, dtype=torch.float16)
            return ReachedPool(empty, torch.zeros(0, mc.context, 4), torch.zeros(0, 2), torch.zeros(0))
        return ReachedPool(*(torch.cat(parts) for parts in zip(*keeping.kept)))
