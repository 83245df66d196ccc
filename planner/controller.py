"""A trained policy at the wheel of the simulator: the closed-loop controller.

The simulator hands a controller its :class:`~ppuu.simulator.sim.Observation` (images in
[0, 1], world-frame states, oldest frame first); the policy wants the world model's inputs
(its image channels, relative normalised states) and answers a normalised action; the
simulator wants metres and seconds. :class:`PolicyController` does the two conversions of
:mod:`ppuu.world_model.interface` around the policy's calls, for the running episodes only (finished
ones get 0, which the simulator ignores), in batches of :data:`POLICY_ROWS`.

The simulator must render what the policy was trained on: :func:`sim_config_for` returns a
:class:`~ppuu.simulator.sim.SimConfig` with the policy's raster and enough history.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ppuu.planner.train import LoadedPolicy
from ppuu.simulator.raster import RasterConfig
from ppuu.simulator.recording import into_frame, is_fixed_frame
from ppuu.simulator.sim import BatchedSimulator, Observation, SimConfig
from ppuu.world_model.interface import model_inputs, physical_actions


POLICY_ROWS = {"cpu": 32}
"""Slots per policy call in the closed loop, by device type (a device not listed: every running slot at
once). On a CPU the encoder's images stay in cache in small batches: for 157 slots of the demo's policy,
90 ms a step in batches of 32 against 147-176 ms in one (1 thread)."""


def policy_actions(policy, images: Tensor, states: Tensor, sample: bool = False) -> Tensor:
    """Normalised actions (S, 2) of a policy for S contexts (images (S, T, C, h, w), states (S, T, 4)),
    :data:`POLICY_ROWS` at a time; no gradient."""
    rows = POLICY_ROWS.get(images.device.type) or max(1, len(images))
    with torch.no_grad():
        parts = [policy(images[lo:lo + rows], states[lo:lo + rows], sample=sample)
                 for lo in range(0, len(images), rows)]
    return torch.cat(parts) if parts else images.new_zeros(0, 2)


def _running_slots(sim: BatchedSimulator) -> Tensor:
    """(S,) the slots whose episode runs: only they need an action (the simulator ignores the others')."""
    return (~sim.done).nonzero().squeeze(1)


def sim_config_for(loaded: LoadedPolicy, base: SimConfig | None = None) -> SimConfig:
    """``base`` (default: a default :class:`SimConfig`) made ready for the policy: its history length,
    and for an egocentric policy its raster (a fixed-frame policy renders its own windows and needs the
    traffic history instead)."""
    base = base or SimConfig()
    history = max(base.history, loaded.policy.config.context)
    config = dataclasses.replace(base, history=history, context_steps=max(base.context_steps, history))
    if is_fixed_frame(loaded.observation):
        return dataclasses.replace(config, keep_traffic=True)
    return dataclasses.replace(config, raster=RasterConfig(**loaded.observation["raster"]))


def states_in_frame(states: Tensor, position: Tensor, unit: Tensor) -> Tensor:
    """World-frame states (B, T, 4) into the frames of poses (B, 2) position m and (B, 2) unit heading:
    (x ahead, y left, vx, vy) as :class:`~ppuu.simulator.recording.FixedFrame` windows give them."""
    return torch.cat([into_frame(states[..., :2] - position[:, None], unit[:, None]),
                      into_frame(states[..., 2:], unit[:, None])], dim=-1)


def context_source(observation_settings: dict, normaliser, channels: int, context: int):
    """A ``(slots, observation, sim) -> (images (S, T, C, h, w), states (S, T, 4))`` function giving model-ready
    contexts of a world model's kind for the given slots: the egocentric history the simulator keeps, or
    (fixed frames) the last T frames re-rendered around each slot's current pose (``SimConfig.keep_traffic``)."""
    frame = observation_settings.get("frame", {"kind": "egocentric"})

    def egocentric(slots: Tensor, observation: Observation, sim: BatchedSimulator):
        inputs = model_inputs(observation.image[slots, -context:], observation.state[slots, -context:], normaliser,
                              channels)
        return inputs.images, inputs.states

    raster = RasterConfig(**observation_settings["raster"])

    def anchored(slots: Tensor, observation: Observation, sim: BatchedSimulator):
        position, unit = sim.ego.position[slots], sim.ego.heading[slots]
        images = sim.render_history(slots, position + frame["centre_ahead"] * unit, unit, raster, context)
        local = states_in_frame(observation.state[slots, -context:], position, unit)
        return images[:, :, :channels], normaliser.normalise_states(local.to(images))

    return anchored if is_fixed_frame(observation_settings) else egocentric


def make_controller(loaded: LoadedPolicy, sample: bool = False, reanchor_every: int | None = None):
    """The closed-loop controller of a loaded policy: egocentric or anchored, as its world model was."""
    if is_fixed_frame(loaded.observation):
        return AnchoredPolicyController(loaded, reanchor_every, sample)
    return PolicyController(loaded, sample)


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
        running = _running_slots(sim)
        inputs = model_inputs(observation.image[running].to(device), observation.state[running].to(device),
                              self.loaded.normaliser, self.channels)
        action = policy_actions(policy, inputs.images, inputs.states, self.sample)
        out = torch.zeros(sim.batch_size, 2, device=sim.device, dtype=sim.dtype)
        out[running] = physical_actions(action, self.loaded.normaliser).to(sim.device, sim.dtype)
        return out


class AnchoredPolicyController:
    """Drive with a policy of a fixed-frame (kinematic ego) world model.

    Such a policy reads windows rendered in one frame: the pose of the ego at the window's
    anchor, with the ego moving inside it (:class:`~ppuu.simulator.recording.FixedFrame`). In
    training the anchor is the last real context frame and the ego drives up to ``horizon``
    imagined steps away from it. Here every slot keeps an anchor: on a new episode, and again
    every ``reanchor_every`` steps, the slot's last T frames of traffic are re-rendered around
    its current pose (:meth:`~ppuu.simulator.sim.BatchedSimulator.render_history`); in between
    only the newest frame is rendered around the anchor and the window slides, exactly as the
    world model's imagined windows do.

    By default the anchor is renewed every step: the window is then a real context, which every
    method trained its first action on (the imitation methods only that). Fewer renewals render less
    and let an imagining policy act on windows as far from their anchor as in training, but cost
    success: MPUR fine-tuned from amortised MPC, 147 validation episodes, 18.4 / 23.8 % arrived
    renewing every 15 steps against 24.5 / 27.9 % every step (two seeds, BENCHMARKS.md).

    States are the simulator's world-frame states turned into the anchor's frame. The simulator
    must keep its traffic history (``SimConfig.keep_traffic``) and T frames of history
    (:func:`sim_config_for`).

    Args:
        loaded: the policy.
        reanchor_every: steps between re-anchoring (default 1: every step).
        sample: draw from a Gaussian policy instead of taking its mean.
    """

    needs_grad = False

    def __init__(self, loaded: LoadedPolicy, reanchor_every: int | None = None, sample: bool = False):
        frame = loaded.observation.get("frame", {"kind": "egocentric"})
        if not is_fixed_frame(loaded.observation):
            raise ValueError("AnchoredPolicyController drives policies of fixed-frame world models; use "
                             "PolicyController")
        self.reanchor_every = 1 if reanchor_every is None else int(reanchor_every)
        if not 1 <= self.reanchor_every:
            raise ValueError(f"reanchor_every = {self.reanchor_every}: expected >= 1")
        self.loaded, self.sample = loaded, sample
        self.centre_ahead = float(frame["centre_ahead"])
        self.raster = RasterConfig(**loaded.observation["raster"])
        self.channels = loaded.policy.config.image_channels
        self.context = loaded.policy.config.context
        self.window: Tensor | None = None        # (B, T, C, H, W) anchored frames; none when every step re-anchors
        self.anchor_position = self.anchor_unit = None
        self.since: Tensor | None = None         # (B,) steps since the slot's anchor

    def on_episode_start(self, slots: Tensor, sim: BatchedSimulator) -> None:
        B = sim.batch_size
        if self.since is None or len(self.since) != B:
            if self.reanchor_every > 1:
                H, W = self.raster.length_px, self.raster.width_px
                self.window = torch.zeros(B, self.context, self.channels, H, W, device=sim.device, dtype=sim.dtype)
            self.anchor_position = torch.zeros(B, 2, device=sim.device, dtype=sim.dtype)
            self.anchor_unit = torch.zeros(B, 2, device=sim.device, dtype=sim.dtype)
            self.since = torch.zeros(B, dtype=torch.int64, device=sim.device)
        self.since[slots] = self.reanchor_every                    # re-anchor at the next call

    def __call__(self, observation: Observation, sim: BatchedSimulator) -> Tensor:
        if self.since is None or len(self.since) != sim.batch_size:
            self.on_episode_start(torch.arange(sim.batch_size, device=sim.device), sim)
        running = ~sim.done
        if not bool(running.any()):                # every slot finished: nothing to decide
            return torch.zeros(sim.batch_size, 2, device=sim.device, dtype=sim.dtype)
        position, unit = sim.ego.position, sim.ego.heading
        fresh = running & (self.since >= self.reanchor_every)
        frames = None
        if bool(fresh.any()):
            slots = fresh.nonzero().squeeze(1)
            self.anchor_position[slots], self.anchor_unit[slots] = position[slots], unit[slots]
            centre = position[slots] + self.centre_ahead * unit[slots]
            frames = sim.render_history(slots, centre, unit[slots], self.raster, self.context)[:, :, :self.channels]
            if self.reanchor_every > 1:            # kept for the steps that slide it; at 1 none does
                self.window[slots] = frames
            self.since[slots] = 0
        slide = running & ~fresh
        sliding = bool(slide.any())
        if sliding:
            slots = slide.nonzero().squeeze(1)
            centre = self.anchor_position[slots] + self.centre_ahead * self.anchor_unit[slots]
            newest = sim.render_history(slots, centre, self.anchor_unit[slots], self.raster, 1)[:, :, :self.channels]
            self.window[slots] = torch.cat([self.window[slots, 1:], newest], dim=1)
        self.since += running.long()
        local = states_in_frame(observation.state[:, -self.context:].to(sim.dtype), self.anchor_position,
                                self.anchor_unit)
        policy = self.loaded.policy
        device = next(policy.parameters()).device
        slots = running.nonzero().squeeze(1)
        normalised = self.loaded.normaliser.normalise_states(local[slots].to(device))
        # every running slot re-anchored at this step: its frames as rendered (no copy through the window)
        images = frames if frames is not None and not sliding else self.window[slots]
        action = policy_actions(policy, images.to(device), normalised, self.sample)
        out = torch.zeros(sim.batch_size, 2, device=sim.device, dtype=sim.dtype)
        out[slots] = physical_actions(action, self.loaded.normaliser).to(sim.device, sim.dtype)
        return out
