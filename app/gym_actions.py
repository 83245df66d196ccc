"""Action types of the gymnasium environments (``config["action"]["type"]``).

Each type checks an agent's actions and turns a batch of them into the simulator's physical
actions (B, 2) = (acceleration m/s^2, curvature 1/m), one tensor program over the batch.

* ``continuous`` (:class:`ContinuousAction`, the default): ``Box(-1, 1, (2,))``, normalised
  (acceleration, curvature); 0 is "keep speed and heading".
* ``discrete_meta`` (:class:`DiscreteMetaAction`): ``Discrete(5)``, HighwayEnv's meta-actions
  (0 lane left, 1 idle, 2 lane right, 3 faster, 4 slower) executed by a small controller
  on the kinematic model that tracks a target speed and a target lane per slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ppuu.simulator.sim import BatchedSimulator, SimConfig


def _as_tensor(action: Any, sim: BatchedSimulator, shape: tuple, dtype: torch.dtype, meaning: str,
               ignore: np.ndarray | None, neutral: float) -> Tensor:
    """Actions as a tensor of ``shape`` on the simulator's device; ValueError naming ``meaning`` otherwise.

    ``ignore``: (B,) bool, rows replaced by ``neutral`` (never checked), or None."""
    if isinstance(action, Tensor):
        a = action.detach().to(sim.device, dtype)
    else:
        try:
            a = torch.as_tensor(np.asarray(action, dtype=np.float64), device=sim.device).to(dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action {action!r}: expected numbers of shape {shape} = {meaning}") from exc
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"action of shape {tuple(a.shape)}: expected {shape} = {meaning}")
    if ignore is not None and ignore.any():
        a = a.clone()
        a[torch.as_tensor(ignore, device=sim.device)] = neutral
    return a


def _check_finite(a: Tensor, single: bool, meaning: str) -> None:
    finite = torch.isfinite(a.reshape(a.shape[0], -1)).all(dim=-1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        where = "" if single else f" for envs {bad[:10]}"
        raise ValueError(f"action holds NaN or inf{where}: expected finite {meaning}, got {a[bad[0]].tolist()}")


@dataclass
class ContinuousAction:
    """(acceleration, curvature) normalised to [-1, 1] each; out-of-range values are clipped.

    Piecewise linear so that 0 means "keep speed and heading": acceleration ``u`` in [0, 1]
    maps to ``u * acceleration_range[1]`` and in [-1, 0] to ``-u * acceleration_range[0]``;
    curvature likewise. Defaults: the simulator's acceleration bounds ([-8, 4] m/s^2) and
    curvature [-0.05, 0.05] 1/m (turning radius >= 20 m: ample for lane changes at any
    speed, and an exploring agent does not spin off the road at the first step).

    Attributes:
        acceleration_range: (min < 0 < max) m/s^2, inside ``SimConfig.bounds``.
        curvature_range: (min < 0 < max) 1/m, inside ``SimConfig.bounds``.
    """

    acceleration_range: tuple[float, float] | None = None
    curvature_range: tuple[float, float] = (-0.05, 0.05)
    meaning = "(acceleration, curvature), each in [-1, 1]"

    def bind(self, config: SimConfig) -> None:
        """Resolve and check the ranges against the simulator's bounds."""
        b = config.bounds
        if self.acceleration_range is None:
            self.acceleration_range = (b.acceleration_min, b.acceleration_max)
        for name, (lo, hi), (blo, bhi) in (
                ("acceleration_range", self.acceleration_range, (b.acceleration_min, b.acceleration_max)),
                ("curvature_range", self.curvature_range, (b.curvature_min, b.curvature_max))):
            if not (blo <= lo < 0 < hi <= bhi):
                raise ValueError(f"continuous action: {name} ({lo}, {hi}): expected min < 0 < max within the "
                                 f"simulator's bounds ({blo}, {bhi})")
        self.acceleration_range = tuple(map(float, self.acceleration_range))
        self.curvature_range = tuple(map(float, self.curvature_range))

    def space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), np.float32)

    def check(self, action: Any, sim: BatchedSimulator, batch: int | None, ignore: np.ndarray | None = None) -> Tensor:
        """(2,) or (B, 2) actions -> (B, 2) float tensor (B = 1 for a single env); ValueError on bad input.

        ``ignore``: (B,) bool, rows set to 0 unchecked (slots about to restart)."""
        shape = (2,) if batch is None else (batch, 2)
        a = _as_tensor(action, sim, shape, sim.dtype, self.meaning, ignore, 0.0).reshape(-1, 2)
        _check_finite(a, batch is None, self.meaning)
        return a

    def to_physical(self, action: Tensor, sim: BatchedSimulator) -> Tensor:
        """(B, 2) normalised -> (B, 2) (acceleration m/s^2, curvature 1/m)."""
        u = action.clamp(-1.0, 1.0)
        low = torch.tensor([-self.acceleration_range[0], -self.curvature_range[0]], device=u.device, dtype=u.dtype)
        high = torch.tensor([self.acceleration_range[1], self.curvature_range[1]], device=u.device, dtype=u.dtype)
        return torch.where(u >= 0, u * high, u * low)

    def on_episode_start(self, slots: Tensor, sim: BatchedSimulator) -> None:
        """Stateless."""

    def from_physical(self, physical: Tensor) -> Tensor:
        """(B, 2) m/s^2, 1/m -> (B, 2) normalised (clipped): the inverse of :meth:`to_physical`."""
        low = torch.tensor([-self.acceleration_range[0], -self.curvature_range[0]], device=physical.device,
                           dtype=physical.dtype)
        high = torch.tensor([self.acceleration_range[1], self.curvature_range[1]], device=physical.device,
                            dtype=physical.dtype)
        return torch.where(physical >= 0, physical / high, physical / low).clamp(-1.0, 1.0)


LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)
META_ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
"""Names of the discrete meta-actions, by index (HighwayEnv's order)."""


@dataclass
class DiscreteMetaAction:
    """HighwayEnv's meta-actions, executed by a tracking controller on the kinematic model.

    Each slot keeps a target speed (m/s) and a target lane (main-road lane index, 0 the
    leftmost); an episode starts with the speed and nearest lane of the end of its context.
    FASTER / SLOWER move the target speed by ``speed_step`` (within [0, ``max_speed``]);
    LANE_LEFT / LANE_RIGHT move the target lane by one (within the road's lanes); IDLE keeps
    both. Every step the controller applies:

    * acceleration = ``speed_gain`` x (target speed - speed), within the simulator's bounds;
    * a lateral velocity ``lateral_gain`` x (target lane centre y - y), at most
      ``max_lateral_speed``, reached by a heading error turned into curvature =
      ``heading_gain`` x (desired heading - heading) / speed, within the bounds.

    Attributes:
        speed_step: m/s per FASTER / SLOWER.
        max_speed: m/s.
        speed_gain: 1/s.
        lateral_gain: 1/s.
        max_lateral_speed: m/s.
        heading_gain: 1/s.
    """

    speed_step: float = 2.0
    max_speed: float = 30.0
    speed_gain: float = 1.0
    lateral_gain: float = 0.6
    max_lateral_speed: float = 1.5
    heading_gain: float = 3.0
    meaning = f"an integer in [0, 5): {', '.join(f'{i} {n}' for i, n in enumerate(META_ACTIONS))}"

    def __post_init__(self):
        values = (self.speed_step, self.max_speed, self.speed_gain, self.lateral_gain, self.max_lateral_speed,
                  self.heading_gain)
        if not all(isinstance(v, (int, float)) and v > 0 for v in values):
            raise ValueError(f"discrete_meta action: speed_step, max_speed and the gains must be positive numbers, "
                             f"got {values}")
        self.target_speed: Tensor | None = None
        self.target_lane: Tensor | None = None

    def bind(self, config: SimConfig) -> None:
        self.bounds = config.bounds

    def space(self) -> spaces.Discrete:
        return spaces.Discrete(len(META_ACTIONS))

    def check(self, action: Any, sim: BatchedSimulator, batch: int | None, ignore: np.ndarray | None = None) -> Tensor:
        """() or (B,) integers -> (B,) int64 tensor; ValueError on anything else (``ignore`` rows: IDLE)."""
        shape = () if batch is None else (batch,)
        if batch is None and np.ndim(action) == 1 and np.size(action) == 1:
            action = np.asarray(action).reshape(())          # SB3 and others pass a (1,) array
        a = _as_tensor(action, sim, shape, torch.float64, self.meaning, ignore, float(IDLE)).reshape(-1)
        ok = torch.isfinite(a) & (a == torch.round(a)) & (a >= 0) & (a < len(META_ACTIONS))
        if not bool(ok.all()):
            bad = torch.nonzero(~ok).flatten().tolist()
            where = "" if batch is None else f" for envs {bad[:10]}"
            raise ValueError(f"action {a[bad[0]].item()}{where}: expected {self.meaning}")
        return a.long()

    def on_episode_start(self, slots: Tensor, sim: BatchedSimulator) -> None:
        """Targets of the started slots: their speed and nearest lane."""
        B = sim.batch_size
        if self.target_speed is None or len(self.target_speed) != B or self.target_speed.device != sim.device:
            self.target_speed = torch.zeros(B, dtype=sim.dtype, device=sim.device)
            self.target_lane = torch.zeros(B, dtype=torch.int64, device=sim.device)
        centres = sim.road.lane_centres_y.to(sim.device, sim.dtype)
        y = sim.ego.position[slots, 1]
        self.target_speed[slots] = sim.ego.speed[slots].clamp(max=self.max_speed)
        self.target_lane[slots] = (y[:, None] - centres).abs().argmin(dim=-1)

    def to_physical(self, action: Tensor, sim: BatchedSimulator) -> Tensor:
        """(B,) meta-actions -> (B, 2) (acceleration m/s^2, curvature 1/m); updates the targets."""
        if self.target_speed is None or len(self.target_speed) != sim.batch_size:
            self.on_episode_start(torch.arange(sim.batch_size, device=sim.device), sim)
        lanes = sim.road.lane_count
        step = torch.where(action == FASTER, self.speed_step, torch.where(action == SLOWER, -self.speed_step, 0.0))
        self.target_speed = (self.target_speed + step.to(sim.dtype)).clamp(0.0, self.max_speed)
        shift = torch.where(action == LANE_LEFT, -1, torch.where(action == LANE_RIGHT, 1, 0))
        self.target_lane = (self.target_lane + shift).clamp(0, lanes - 1)
        position, unit, speed = sim.ego
        b = self.bounds
        acceleration = (self.speed_gain * (self.target_speed - speed)).clamp(b.acceleration_min, b.acceleration_max)
        target_y = sim.road.lane_centres_y.to(sim.device, sim.dtype)[self.target_lane]
        lateral = (self.lateral_gain * (target_y - position[:, 1])).clamp(-self.max_lateral_speed,
                                                                           self.max_lateral_speed)
        moving = speed.clamp(min=1.0)
        desired = torch.asin((lateral / moving).clamp(-0.5, 0.5))
        heading = torch.atan2(unit[:, 1], unit[:, 0])
        error = torch.remainder(desired - heading + math.pi, 2 * math.pi) - math.pi
        curvature = (self.heading_gain * error / moving).clamp(b.curvature_min, b.curvature_max)
        return torch.stack([acceleration, curvature], -1)


ACTION_TYPES = {"continuous": ContinuousAction, "discrete_meta": DiscreteMetaAction}
"""``config["action"]["type"]`` -> class."""
