"""Between the world in SI units and the model's normalised tensors: one conversion each way.

A controller that plans with the model (the MPUR policy, MPC) receives the simulator's
observations (images in [0, 1], world-frame states in metres and m/s) and must return physical
actions (m/s^2, 1/m). The model works on relative, z-scored states and actions and on its
own image channels. These functions are the only place where that translation happens, so the
planner, the policy and the training data agree by construction (:func:`model_inputs` is what
:func:`ppuu.world_model.dataset.make_batch` does to the context of a training window).

They take plain tensors, not the simulator's ``Observation`` (the world model does not import
the simulator): pass ``observation.image`` (oldest frame first) and ``observation.state``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppuu.world_model.dataset import absolute_states, relative_states
from ppuu.world_model.normalisation import Normaliser


@dataclass
class ModelInputs:
    """A context window ready for :meth:`ppuu.world_model.models.ForwardModel.step`.

    Attributes:
        images: (B, T, C, H, W) float in [0, 1], the model's C channels, oldest frame first.
        states: (B, T, 4) normalised relative states: (x - origin, y, vx, vy), z-scored.
        origin: (B,) m, world-frame x of the newest frame (where relative x is 0).
    """

    images: Tensor
    states: Tensor
    origin: Tensor


def model_inputs(images: Tensor, states: Tensor, normaliser: Normaliser, channels: int) -> ModelInputs:
    """Observations of T frames to model inputs.

    Args:
        images: (B, T, C_obs, H, W) in [0, 1], oldest first (the simulator's observation images).
        states: (B, T, 4) = (x, y, vx, vy), m and m/s, world frame.
        normaliser: the model's statistics.
        channels: the model's ``image_channels`` (the first ``channels`` observation channels are kept).
    """
    if images.dim() != 5 or states.dim() != 3 or states.shape[:2] != images.shape[:2] or states.shape[-1] != 4:
        raise ValueError(f"images {tuple(images.shape)} and states {tuple(states.shape)}: expected (B, T, C, H, W) "
                         "and (B, T, 4) with the same B and T")
    if not 1 <= channels <= images.shape[2]:
        raise ValueError(f"channels = {channels}: the observations have {images.shape[2]} image channels")
    rel, origin = relative_states(states.float(), states.shape[1] - 1)
    norm = normaliser.to(states.device)
    return ModelInputs(images[:, :, :channels].float(), norm.normalise_states(rel), origin)


def physical_actions(actions: Tensor, normaliser: Normaliser) -> Tensor:
    """Normalised model actions (..., 2) -> (acceleration m/s^2, curvature 1/m) for ``simulator.step``."""
    return normaliser.to(actions.device).denormalise_actions(actions)


def normalised_actions(actions: Tensor, normaliser: Normaliser) -> Tensor:
    """(acceleration m/s^2, curvature 1/m) (..., 2) -> normalised model actions."""
    return normaliser.to(actions.device).normalise_actions(actions)


def world_states(states: Tensor, origin: Tensor, normaliser: Normaliser) -> Tensor:
    """Normalised relative states (B, N, 4) and their origin (B,) m -> world-frame (x, y, vx, vy) (B, N, 4)."""
    return absolute_states(normaliser.to(states.device).denormalise_states(states.float()), origin)


def recentred_states(states: Tensor, normaliser: Normaliser) -> Tensor:
    """A window of normalised relative states (B, T, 4) measured from its own newest frame instead,
    as :func:`model_inputs` gives the simulator's windows: x minus the newest frame's x; y, vx, vy
    unchanged. Differentiable.

    Why: an imagined window slides with the model's predictions, whose x stays measured from the
    real context's last frame, so at imagined step t its newest x is the distance driven since
    (up to 15-30 m). A policy acts in the simulator on windows whose newest x is 0; fed the
    imagined windows as they are, it would learn from inputs it never meets when it drives.
    """
    if states.dim() != 3:
        raise ValueError(f"states of shape {tuple(states.shape)}: expected a window (B, T, 4)")
    norm = normaliser.to(states.device)
    mean, std = norm.state_mean[0].to(states.dtype), norm.state_std[0].to(states.dtype)
    x = states[..., :1]
    # normalised x' = (x_rel - x_rel_newest - mean) / std = x - (x_newest + mean / std)
    return torch.cat([(x - x[:, -1:]) - mean / std, states[..., 1:]], dim=-1)


def speeds(states: Tensor, normaliser: Normaliser) -> Tensor:
    """Normalised states (..., 4) -> physical speed (...) in m/s (the norm of (vx, vy))."""
    physical = normaliser.to(states.device).denormalise_states(states)
    return physical[..., 2:4].norm(dim=-1)
