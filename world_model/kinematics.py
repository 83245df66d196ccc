"""The ego car's kinematic step on world-model states (Sobal 2022: separate the ego and the world).

Why here and not imported from the simulator: ``world_model`` knows observations and actions,
not where they come from (DESIGN.md), so it carries its own copy of this dozen-line model.
It is the same explicit-Euler unicycle the simulator drives the ego car with (the tests check
the two agree), written on the world model's state vector instead of (position, heading,
speed).

State ``(..., 4)`` = (x, y, vx, vy) in m and m/s, world frame; the heading is the direction of
the velocity and the speed its norm. Action ``(..., 2)`` = (acceleration m/s^2, curvature 1/m).
Over ``dt`` seconds::

    position' = position + speed * heading * dt
    heading'  = normalise(heading + left_normal(heading) * curvature * speed * dt)
    speed'    = max(speed + acceleration * dt, 0)
    (vx', vy') = speed' * heading'

A stopped car (speed below :data:`MIN_SPEED`) has no velocity direction: its heading is taken
as +x (along the road), so it can pull away again instead of staying stuck.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_SPEED = 1e-6
"""m/s: below this the velocity gives no heading and +x (along the road) is used."""


def kinematic_step(states: Tensor, actions: Tensor, dt: float = 0.1) -> Tensor:
    """Advance (x, y, vx, vy) states by one step of the kinematic model; differentiable.

    Args:
        states: (..., 4) = (x, y, vx, vy), m and m/s (de-normalised).
        actions: (..., 2) = (acceleration m/s^2, curvature 1/m) (de-normalised), same leading
            dimensions as ``states``.
        dt: seconds.

    Returns:
        (..., 4) next states in m and m/s, on the device/dtype of ``states``.
    """
    if states.shape[-1] != 4:
        raise ValueError(f"states of shape {tuple(states.shape)}: expected (..., 4) = (x, y, vx, vy)")
    if actions.shape[-1] != 2:
        raise ValueError(f"actions of shape {tuple(actions.shape)}: expected (..., 2) = (acceleration, curvature)")
    position, velocity = states[..., 0:2], states[..., 2:4]
    accel, curvature = actions[..., 0:1], actions[..., 1:2]
    squared = (velocity * velocity).sum(-1, keepdim=True)
    moving = squared > MIN_SPEED ** 2
    speed = torch.sqrt(torch.where(moving, squared, torch.ones_like(squared)))   # safe sqrt: no inf gradient at 0
    along_road = torch.zeros_like(velocity)
    along_road[..., 0] = 1.0
    heading = torch.where(moving, velocity / speed, along_road)
    speed = torch.where(moving, speed, torch.zeros_like(speed))
    travelled = speed * dt
    new_position = position + heading * travelled
    left = torch.stack([-heading[..., 1], heading[..., 0]], dim=-1)
    turned = heading + left * (curvature * travelled)
    new_heading = turned / torch.linalg.vector_norm(turned, dim=-1, keepdim=True)
    new_speed = torch.clamp(speed + accel * dt, min=0.0)
    return torch.cat([new_position, new_heading * new_speed], dim=-1)
