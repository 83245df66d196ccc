"""The ego car's kinematic model (SPEC §2): one differentiable step of a unicycle driven by
(acceleration, curvature).

Why a separate module: the same step serves the simulator (closed loop), the planner (as a
differentiable "kinematic model" of the ego car, Sobal 2022) and the data path (recorded
actions must reproduce recorded trajectories). It is pure tensor arithmetic, batch-first, on
the device and dtype of its inputs.

State: position ``(B, 2)`` m in the world frame (x along the road, y to the left), unit
heading ``(B, 2)`` (cos, sin of the angle counter-clockwise from +x), speed ``(B,)`` m/s.
Action: ``(B, 2)`` = (longitudinal acceleration ``a`` m/s^2, curvature ``b`` 1/m = heading
change per metre travelled). Update over ``dt`` seconds (0.1 s by default)::

    position' = position + speed * heading * dt
    heading'  = normalise(heading + left_normal(heading) * b * speed * dt)
    speed'    = max(speed + a * dt, 0)

Every right-hand side uses the *old* state (explicit Euler). Speed is clamped at 0: a car
that brakes to a stop stays stopped instead of reversing; the clamp passes no gradient to
``a`` once the speed is pinned at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ppuu.simulator.constants import cached_constant

DT = 0.1
"""Seconds per simulator step (NGSIM frame rate 10 Hz)."""


class EgoState(NamedTuple):
    """State of a batch of ego cars (tensors share device and dtype).

    Attributes:
        position: (B, 2) metres, world frame.
        heading: (B, 2) unit vector (cos, sin), counter-clockwise from +x.
        speed: (B,) m/s, >= 0.
    """

    position: Tensor
    heading: Tensor
    speed: Tensor

    @property
    def angle(self) -> Tensor:
        """(B,) radians counter-clockwise from +x."""
        return torch.atan2(self.heading[..., 1], self.heading[..., 0])

    @property
    def velocity(self) -> Tensor:
        """(B, 2) m/s, world frame."""
        return self.heading * self.speed.unsqueeze(-1)

    def vector(self) -> Tensor:
        """The state vector of SPEC §3: (B, 4) = (x m, y m, vx m/s, vy m/s)."""
        return torch.cat([self.position, self.velocity], dim=-1)

    @classmethod
    def from_angle(cls, position: Tensor, angle: Tensor, speed: Tensor) -> "EgoState":
        """Build from position (B, 2) m, heading angle (B,) rad and speed (B,) m/s."""
        return cls(position, unit_from_angle(angle), speed)


def unit_from_angle(angle: Tensor) -> Tensor:
    """Angle (...) radians -> unit vector (..., 2) = (cos, sin)."""
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def as_unit_heading(heading: Tensor, batch_ndim: int) -> Tensor:
    """Accept a heading as an angle ``(*batch)`` rad or a unit vector ``(*batch, 2)``.

    Args:
        heading: angle tensor with ``batch_ndim`` dimensions, or unit-vector tensor with
            ``batch_ndim + 1`` dimensions (last of size 2; not re-normalised).
        batch_ndim: number of batch dimensions (e.g. 1 for ``(B,)``, 2 for ``(B, N)``).

    Returns:
        (*batch, 2) unit vector (cos, sin).
    """
    if heading.dim() == batch_ndim:
        return unit_from_angle(heading)
    if heading.dim() == batch_ndim + 1 and heading.shape[-1] == 2:
        return heading
    raise ValueError(f"heading of shape {tuple(heading.shape)}: expected {batch_ndim} batch dims "
                     f"(angle, rad) or {batch_ndim} + a last dim of 2 (unit vector)")


def heading_axes(heading: Tensor) -> Tensor:
    """(..., 2) unit heading -> (..., 2, 2) with rows the heading and its left normal: the rotation
    that takes a world-frame vector to its (along, left) components, in one product."""
    return torch.matmul(heading, _axes_basis(heading.device, heading.dtype)).unflatten(-1, (2, 2))


def relative_poses(centre: Tensor, unit: Tensor, others_centre: Tensor, others_unit: Tensor) -> Tensor:
    """Other footprints' poses on each reference pose's axes, in one batched product (the raster
    and the collision test both start from them; the simulator's step computes them once for both).

    Args:
        centre: (B, 2) m and unit: (B, 2) unit heading of each reference (an ego).
        others_centre: (B, N, 2) m and others_unit: (B, N, 2) unit headings.

    Returns:
        (B, 2, 2N): row 0 along the reference's heading, row 1 across it to its left; columns 0..N-1
        the others' centres relative to the reference (m), columns N..2N-1 their unit headings
        relative to its heading (cos, sin).
    """
    offsets_and_units = torch.cat([others_centre - centre[:, None, :], others_unit], dim=1)   # (B, 2N, 2)
    return torch.bmm(heading_axes(unit), offsets_and_units.transpose(1, 2))


@cached_constant(maxsize=16)
def _axes_basis(device: torch.device, dtype: torch.dtype) -> Tensor:
    """(2, 4): (cos, sin) -> (cos, sin, -sin, cos), the rows of :func:`heading_axes` (read only)."""
    return torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, -1.0, 0.0]], device=device, dtype=dtype)


def left_normal(heading: Tensor) -> Tensor:
    """(..., 2) unit heading -> (..., 2) unit vector 90 degrees counter-clockwise (to the left)."""
    return torch.stack([-heading[..., 1], heading[..., 0]], dim=-1)


@dataclass(frozen=True)
class ActionBounds:
    """Physical limits of an action; :meth:`clip` enforces them.

    Defaults: acceleration in [-8, 4] m/s^2 (-8 is emergency braking on dry asphalt, about
    0.8 g; +4 is a brisk car launch; NGSIM's smoothed accelerations stay well inside), and
    curvature in [-0.2, 0.2] 1/m (turning radius >= 5 m, far tighter than any highway
    manoeuvre, so it never binds on recorded lane changes).
    """

    acceleration_min: float = -8.0   #: m/s^2
    acceleration_max: float = 4.0    #: m/s^2
    curvature_min: float = -0.2      #: 1/m (negative = to the right)
    curvature_max: float = 0.2       #: 1/m (positive = to the left)

    def __post_init__(self) -> None:
        if not (self.acceleration_min < self.acceleration_max and self.curvature_min < self.curvature_max):
            raise ValueError(f"ActionBounds: each minimum must be below its maximum, got {self}")

    def low(self, like: Tensor) -> Tensor:
        """(2,) lower bounds on the device/dtype of ``like``."""
        return torch.tensor([self.acceleration_min, self.curvature_min], device=like.device, dtype=like.dtype)

    def high(self, like: Tensor) -> Tensor:
        """(2,) upper bounds on the device/dtype of ``like``."""
        return torch.tensor([self.acceleration_max, self.curvature_max], device=like.device, dtype=like.dtype)

    def clip(self, action: Tensor) -> Tensor:
        """Clamp (..., 2) actions (m/s^2, 1/m) into the bounds; gradient 1 inside, 0 outside."""
        low, high = _bound_tensors(self, action.device, action.dtype)
        return torch.clamp(action, low, high)


@cached_constant(maxsize=32)
def _bound_tensors(bounds: ActionBounds, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(low, high) of :meth:`ActionBounds.clip`, made once per bounds, device and dtype (read only)."""
    like = torch.empty(0, device=device, dtype=dtype)
    return bounds.low(like), bounds.high(like)


def step(state: EgoState, action: Tensor, dt: float = DT) -> EgoState:
    """Advance the ego cars by one step of ``dt`` seconds; differentiable in state and action.

    Args:
        state: :class:`EgoState` with position (B, 2) m, heading (B, 2) unit, speed (B,) m/s.
        action: (B, 2) = (acceleration m/s^2, curvature 1/m). Not clipped here: call
            :meth:`ActionBounds.clip` first where the bounds should hold.
        dt: seconds.

    Returns:
        The next :class:`EgoState` (speed clamped at 0, heading re-normalised).
    """
    position, heading, speed = state
    accel, curvature = action[..., 0], action[..., 1]
    travelled = (speed * dt).unsqueeze(-1)                       # (B, 1) metres
    new_position = position + heading * travelled
    turned = heading + left_normal(heading) * (curvature.unsqueeze(-1) * travelled)
    new_heading = turned / torch.linalg.vector_norm(turned, dim=-1, keepdim=True)
    new_speed = torch.clamp(speed + accel * dt, min=0.0)
    return EgoState(new_position, new_heading, new_speed)


def rollout(state: EgoState, actions: Tensor, dt: float = DT) -> EgoState:
    """Apply a sequence of actions: (B, T, 2) -> states stacked over time.

    Returns:
        :class:`EgoState` with position (B, T, 2), heading (B, T, 2), speed (B, T): the state
        *after* each action. (The loop runs over time steps, which are sequential by nature.)
    """
    states = []
    for t in range(actions.shape[1]):
        state = step(state, actions[:, t], dt)
        states.append(state)
    return EgoState(*(torch.stack(parts, dim=1) for parts in zip(*states)))
