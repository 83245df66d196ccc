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
    along_road = torch.cat([torch.ones_like(velocity[..., :1]), torch.zeros_like(velocity[..., 1:])], -1)
    heading = torch.where(moving, velocity / speed, along_road)
    speed = torch.where(moving, speed, torch.zeros_like(speed))
    travelled = speed * dt
    new_position = position + heading * travelled
    left = torch.stack([-heading[..., 1], heading[..., 0]], dim=-1)
    turned = heading + left * (curvature * travelled)
    new_heading = turned / torch.linalg.vector_norm(turned, dim=-1, keepdim=True)
    new_speed = torch.clamp(speed + accel * dt, min=0.0)
    return torch.cat([new_position, new_heading * new_speed], dim=-1)


def kinematic_rollout(states: Tensor, actions: Tensor, dt: float = 0.1) -> Tensor:
    """The states after each of H actions: :func:`kinematic_step` H times, computed for all H at once.

    A loop of H steps launches about 25 small operations per step, forward and backward (an MPC
    decision runs it for every iteration: thousands of launches, which is what bounds it on a GPU).
    Here the same recursion is a handful of scans over the H axis:

    - speed: ``s' = max(s + a dt, 0)`` is a random walk reflected at 0, so with ``S`` the running sum
      of ``s0 + a dt``, ``s_t = S_t - min(0, min_{u <= t} S_u)`` (exact; the gradient reaches only the
      accelerations after the last stop, as the loop's clamp lets it);
    - heading: each step turns by ``atan(curvature * speed * dt)`` (what normalising
      ``heading + left * curvature * speed * dt`` does), so the angle is a running sum of those turns,
      restarted from +x (angle 0) after every step that began stopped (speed <= :data:`MIN_SPEED`);
    - position: the running sum of ``speed * heading * dt``.

    It equals the loop to rounding (float32: 1.5e-5 m apart after 30 random steps), except that a speed in
    (0, MIN_SPEED] m/s is not rounded down to 0 first (a difference of at most 1e-6 m/s).

    Args:
        states: (..., 4) = (x, y, vx, vy) m and m/s, the state before the first action.
        actions: (..., H, 2) = (acceleration m/s^2, curvature 1/m), same leading dimensions.
        dt: seconds per step.

    Returns:
        (..., H, 4): the state after each action, on the device/dtype of ``states``; differentiable.
    """
    if states.shape[-1] != 4:
        raise ValueError(f"states of shape {tuple(states.shape)}: expected (..., 4) = (x, y, vx, vy)")
    if actions.dim() != states.dim() + 1 or actions.shape[-1] != 2 or actions.shape[:-2] != states.shape[:-1]:
        raise ValueError(f"actions of shape {tuple(actions.shape)}: expected {tuple(states.shape[:-1])} + (H, 2)")
    position, velocity = states[..., 0:2], states[..., 2:4]
    squared = (velocity * velocity).sum(-1)                                          # (...,)
    moving = squared > MIN_SPEED ** 2
    speed0 = torch.where(moving, torch.sqrt(torch.where(moving, squared, torch.ones_like(squared))),
                         torch.zeros_like(squared))
    angle0 = torch.where(moving, torch.atan2(velocity[..., 1], velocity[..., 0]), torch.zeros_like(squared))
    accel, curvature = actions[..., 0], actions[..., 1]                               # (..., H)
    # speeds s_0 .. s_H: the reflected running sum
    walk = torch.cat([speed0[..., None], speed0[..., None] + torch.cumsum(accel * dt, -1)], -1)   # (..., H + 1)
    floor = torch.cummin(walk, -1).values.clamp(max=0.0)
    speed = walk - floor                                                              # (..., H + 1)
    before = speed[..., :-1]                                                          # s_t at the start of step t
    stopped = before <= MIN_SPEED
    moved = torch.where(stopped, torch.zeros_like(before), before)
    # heading angles: theta_{t+1} = (0 if step t began stopped else theta_t) + turn_t
    turn = torch.atan(curvature * moved * dt)                                         # (..., H); 0 where stopped
    total = torch.cumsum(turn, -1)
    steps = torch.arange(turn.shape[-1], device=turn.device)
    last_stop = torch.cummax(torch.where(stopped, steps, torch.full_like(steps, -1)).expand_as(turn), -1).values
    since = torch.gather(total, -1, last_stop.clamp(min=0))                           # turns up to the last stop
    after = torch.where(last_stop >= 0, total - since, angle0[..., None] + total)     # theta_1 .. theta_H
    angle_before = torch.cat([angle0[..., None], after[..., :-1]], -1)                # theta_0 .. theta_{H-1}
    angle_before = torch.where(stopped, torch.zeros_like(angle_before), angle_before)
    step = torch.stack([torch.cos(angle_before), torch.sin(angle_before)], -1) * (moved * dt)[..., None]
    new_position = position[..., None, :] + torch.cumsum(step, -2)                    # (..., H, 2)
    heading = torch.stack([torch.cos(after), torch.sin(after)], -1)
    return torch.cat([new_position, heading * speed[..., 1:, None]], -1)
