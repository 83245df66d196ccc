"""A trained policy at the wheel of the simulator: the closed-loop controller.

The simulator hands a controller its :class:`~ppuu.simulator.sim.Observation` (images in
[0, 1], world-frame states, oldest frame first); the policy wants the world model's inputs
(its image channels, relative normalised states) and answers a normalised action; the
simulator wants metres and seconds. :class:`PolicyController` does the two conversions of
:mod:`ppuu.world_model.interface` around one policy call, for every running episode at once.

The simulator must render what the policy was trained on: :func:`sim_config_for` returns a
:class:`~ppuu.simulator.sim.SimConfig` with the policy's raster and enough history.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ppuu.planner.train import LoadedPolicy
from ppuu.simulator.raster import RasterConfig
from ppuu.simulator.sim import BatchedSimulator, Observation, SimConfig
from ppuu.world_model.interface import model_inputs, physical_actions


def sim_config_for(loaded: LoadedPolicy, base: SimConfig | None = None) -> SimConfig:
    """``base`` (default: a default :class:`SimConfig`) with the policy's raster and history."""
    base = base or SimConfig()
    raster = RasterConfig(**loaded.observation["raster"])
    history = max(base.history, loaded.policy.config.context)
    return dataclasses.replace(base, raster=raster, history=history,
                               context_steps=max(base.context_steps, history))


class PolicyController:
    """Drive with a trained policy (egocentric world models).

    Args:
        loaded: the policy (:func:`ppuu.planner.train.load_policy`).
        sample: draw from a Gaussian policy instead of taking its mean.
    """

    needs_grad = False

    def __init__(self, loaded: LoadedPolicy, sample: bool = False):
        frame = loaded.observation.get("frame", {"kind": "egocentric"})
        if frame.get("kind") != "egocentric":
            raise ValueError(f"PolicyController drives policies of egocentric world models; this one was trained "
                             f"on {frame.get('kind')!r} frames (use AnchoredPolicyController)")
        self.loaded, self.sample = loaded, sample
        self.channels = loaded.policy.config.image_channels

    def check(self, sim: BatchedSimulator) -> None:
        """Raise ValueError when the simulator does not render what the policy reads."""
        expected = RasterConfig(**self.loaded.observation["raster"])
        if sim.config.raster != expected:
            raise ValueError(f"the simulator renders {sim.config.raster}, the policy was trained on {expected} "
                             "(build the simulator with sim_config_for)")
        if sim.config.history < self.loaded.policy.config.context:
            raise ValueError(f"the simulator keeps {sim.config.history} frames of history; the policy reads "
                             f"{self.loaded.policy.config.context}")

    def __call__(self, observation: Observation, sim: BatchedSimulator) -> Tensor:
        policy = self.loaded.policy
        device = next(policy.parameters()).device
        inputs = model_inputs(observation.image.to(device), observation.state.to(device), self.loaded.normaliser,
                              self.channels)
        with torch.no_grad():
            action = policy(inputs.images, inputs.states, sample=self.sample)
        return physical_actions(action, self.loaded.normaliser).to(sim.device, sim.dtype)
