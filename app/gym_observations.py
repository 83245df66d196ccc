"""Observation types of the gymnasium environments (``config["observation"]["type"]``).

Each type turns the simulator's current batch into numpy arrays with one tensor program
over the batch (no loop over slots or vehicles), so that the single env, the vector env and
a trained agent's closed-loop evaluation (:mod:`ppuu.simulator.evaluate`) see the same thing.

* ``kinematics`` (:class:`Kinematics`, the default): ``Box(-1, 1, (1 + vehicles_count, 8))``,
  row 0 the ego, then the nearest other vehicles within ``range_m``, nearest first, all
  normalised (see the class).
* ``raster`` (:class:`Raster`): ``Dict(image=uint8 (K * 4, H, W), state=float32 (8,))``, the
  simulator's egocentric raster with K = ``history`` frames and the ego's row of the
  kinematics observation.
* ``occupancy_grid`` (:class:`OccupancyGrid`): ``Box(-1, 1, (4, rows, cols))``, an egocentric
  grid of presence, relative velocity and drivable area.

The ego frame: x ahead along the ego's heading, y to its left, origin at its centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ppuu.simulator.sim import BatchedSimulator, SimConfig

FEATURES = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h", "lane_offset")
"""Columns of the kinematics observation (see :class:`Kinematics`)."""


def _ego_frame(vectors: Tensor, unit: Tensor) -> Tensor:
    """World-frame vectors (B, N, 2) -> ego frame (B, N, 2), given the ego's unit heading (B, 2)."""
    c, s = unit[:, None, 0], unit[:, None, 1]
    return torch.stack([c * vectors[..., 0] + s * vectors[..., 1], -s * vectors[..., 0] + c * vectors[..., 1]], -1)


def _lane_offset(y: Tensor, sim: BatchedSimulator) -> Tensor:
    """(...) y m -> (...) signed offset from the nearest main-road lane centre, in half lane widths."""
    road = sim.road
    centres = road.lane_centres_y.to(y.device, y.dtype)
    half = float(road.lane_widths.mean()) / 2
    offsets = y[..., None] - centres
    nearest = offsets.abs().argmin(dim=-1, keepdim=True)
    return offsets.gather(-1, nearest).squeeze(-1) / half


def ego_features(sim: BatchedSimulator, speed_scale: float) -> Tensor:
    """(B, 8) the ego's normalised row (:data:`FEATURES`): presence 1; x = metres to the arrival
    line over the course length (1 at the start line, 0 on arrival); y = lateral position from
    the main road's centre line in half road widths; vx, vy = world-frame velocity over
    ``speed_scale``; cos, sin of the heading; offset from the nearest lane centre in half lane widths."""
    road, (position, unit, speed) = sim.road, sim.ego
    length = road.arrival_x - road.start_x
    centre_y = -road.width / 2
    velocity = unit * speed[:, None]
    row = torch.stack([torch.ones_like(speed), (road.arrival_x - position[:, 0]) / length,
                       (position[:, 1] - centre_y) / (road.width / 2), velocity[:, 0] / speed_scale,
                       velocity[:, 1] / speed_scale, unit[:, 0], unit[:, 1], _lane_offset(position[:, 1], sim)], -1)
    return row.clamp(-1.0, 1.0)


@dataclass
class Kinematics:
    """The ego and its ``vehicles_count`` nearest neighbours as a (1 + N, 8) table in [-1, 1].

    Row 0 is the ego (:func:`ego_features`). Rows 1.. are the other vehicles within
    ``range_m`` (centre distance), nearest first: presence (1, or 0 for an empty row, whose
    other features are 0 too), x and y of their centre in the ego frame over ``range_m``,
    vx and vy of their velocity relative to the ego's, in the ego frame, over ``speed_scale``,
    cos and sin of their heading relative to the ego's, and their offset from their nearest
    lane centre (half lane widths). Values are clipped to [-1, 1].

    Attributes:
        vehicles_count: N, other vehicles observed.
        range_m: m, perception range and the position scale.
        speed_scale: m/s, the velocity scale.
    """

    vehicles_count: int = 8
    range_m: float = 50.0
    speed_scale: float = 30.0

    def __post_init__(self):
        if int(self.vehicles_count) != self.vehicles_count or self.vehicles_count < 0:
            raise ValueError(f"kinematics observation: vehicles_count {self.vehicles_count!r}: expected an "
                             "integer >= 0")
        if not (self.range_m > 0 and self.speed_scale > 0):
            raise ValueError(f"kinematics observation: range_m ({self.range_m}) and speed_scale ({self.speed_scale}) "
                             "must be positive")
        self.vehicles_count = int(self.vehicles_count)

    def sim_overrides(self) -> dict:
        return {}

    def space(self, config: SimConfig) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1 + self.vehicles_count, len(FEATURES)), np.float32)

    def observe_tensor(self, sim: BatchedSimulator) -> Tensor:
        """(B, 1 + N, 8) float32 on the simulator's device."""
        B, N = sim.batch_size, self.vehicles_count
        ego = ego_features(sim, self.speed_scale)
        table = torch.zeros(B, 1 + N, len(FEATURES), dtype=torch.float32, device=sim.device)
        table[:, 0] = ego
        if N == 0:
            return table
        slots = torch.arange(B, device=sim.device)
        others = sim.others(slots, sim.frame)
        position, unit, speed = sim.ego
        relative = _ego_frame(others.centre - position[:, None], unit)                 # (B, M, 2)
        distance = torch.linalg.vector_norm(relative, dim=-1)
        visible = others.mask & (distance <= self.range_m)
        distance = torch.where(visible, distance, torch.full_like(distance, math.inf))
        k = min(N, distance.shape[1])
        nearest = distance.topk(k, dim=1, largest=False).indices                        # (B, k)
        present = visible.gather(1, nearest)
        their_unit = torch.stack([torch.cos(others.heading), torch.sin(others.heading)], -1)
        velocity = _ego_frame(their_unit * others.speed[..., None] - (unit * speed[:, None])[:, None], unit)
        heading = _ego_frame(their_unit, unit)                                           # relative (cos, sin)
        features = torch.cat([torch.ones_like(distance)[..., None], relative / self.range_m,
                              velocity / self.speed_scale, heading,
                              _lane_offset(others.centre[..., 1], sim)[..., None]], -1)   # (B, M, 8)
        picked = features.gather(1, nearest[..., None].expand(-1, -1, features.shape[-1]))
        table[:, 1:1 + k] = torch.where(present[..., None], picked.clamp(-1.0, 1.0), torch.zeros_like(picked))
        return table

    def observe(self, sim: BatchedSimulator) -> np.ndarray:
        return self.observe_tensor(sim).cpu().numpy()


@dataclass
class Raster:
    """The simulator's egocentric raster, K = ``history`` frames oldest first, and the ego's row.

    ``image``: uint8 (K * 4, H, W), channels-first (lanes, vehicles, off-road, ego per frame;
    H = 117 rows along the heading, row 0 ahead; W = 24 across, column 0 on the left; see
    :mod:`ppuu.simulator.raster`), the simulator's [0, 1] images times 255, rounded.
    ``state``: float32 (8,), the ego's row of :class:`Kinematics` (normalised, not world metres).

    Attributes:
        history: K frames (1 .. the simulator's ``context_steps``).
        speed_scale: m/s, the velocity scale of ``state``.
    """

    history: int = 1
    speed_scale: float = 30.0

    def __post_init__(self):
        if int(self.history) != self.history or self.history < 1:
            raise ValueError(f"raster observation: history {self.history!r}: expected an integer >= 1")
        if not self.speed_scale > 0:
            raise ValueError(f"raster observation: speed_scale {self.speed_scale}: expected > 0")
        self.history = int(self.history)

    def sim_overrides(self) -> dict:
        return {"history": self.history}

    def space(self, config: SimConfig) -> spaces.Dict:
        K, H, W = self.history, config.raster.length_px, config.raster.width_px
        return spaces.Dict({"image": spaces.Box(0, 255, (K * 4, H, W), np.uint8),
                            "state": spaces.Box(-1.0, 1.0, (len(FEATURES),), np.float32)})

    def observe(self, sim: BatchedSimulator) -> dict[str, np.ndarray]:
        image = sim.observation().image                        # (B, K, 4, H, W) view of the ring
        pixels = image.reshape(image.shape[0], -1, *image.shape[-2:]).mul(255).round_().to(torch.uint8)
        return {"image": pixels.cpu().numpy(), "state": ego_features(sim, self.speed_scale).float().cpu().numpy()}


@dataclass
class OccupancyGrid:
    """An egocentric grid: (4, rows, cols) in [-1, 1].

    Channels: presence (1 where a vehicle's centre lies in the cell), vx and vy (the mean
    velocity relative to the ego's of the vehicles in the cell, ego frame, over ``speed_scale``),
    and road (1 where the cell's centre is drivable). Row 0 is the farthest ahead, column 0
    the leftmost (as the raster). Cells are ``cell_m`` (along, across) metres, covering
    ``x_range`` ahead and ``y_range`` to the left of the ego, in the ego frame.
    """

    x_range: tuple[float, float] = (-30.0, 50.0)
    y_range: tuple[float, float] = (-9.0, 9.0)
    cell_m: tuple[float, float] = (5.0, 2.0)
    speed_scale: float = 30.0
    shape: tuple[int, int] = field(init=False)

    def __post_init__(self):
        try:
            self.x_range, self.y_range, self.cell_m = (tuple(float(v) for v in pair) for pair in
                                                       (self.x_range, self.y_range, self.cell_m))
        except (TypeError, ValueError):
            raise ValueError("occupancy_grid observation: x_range, y_range and cell_m must be pairs of numbers") \
                from None
        if any(len(p) != 2 for p in (self.x_range, self.y_range, self.cell_m)) or not (
                self.x_range[0] < self.x_range[1] and self.y_range[0] < self.y_range[1]
                and min(self.cell_m) > 0 and self.speed_scale > 0):
            raise ValueError(f"occupancy_grid observation: expected x_range and y_range as (low, high) with low < high "
                             f"and positive cell_m and speed_scale, got {self.x_range}, {self.y_range}, "
                             f"{self.cell_m}, {self.speed_scale}")
        rows = math.ceil((self.x_range[1] - self.x_range[0]) / self.cell_m[0])
        cols = math.ceil((self.y_range[1] - self.y_range[0]) / self.cell_m[1])
        self.shape = (rows, cols)

    def sim_overrides(self) -> dict:
        return {}

    def space(self, config: SimConfig) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (4, *self.shape), np.float32)

    def _cell_centres(self, device) -> Tensor:
        """(rows * cols, 2) ego-frame cell centres, row-major."""
        (rows, cols), (dx, dy) = self.shape, self.cell_m
        x = self.x_range[1] - dx * (torch.arange(rows, device=device, dtype=torch.float32) + 0.5)
        y = self.y_range[1] - dy * (torch.arange(cols, device=device, dtype=torch.float32) + 0.5)
        return torch.stack(torch.meshgrid(x, y, indexing="ij"), -1).reshape(-1, 2)

    def observe_tensor(self, sim: BatchedSimulator) -> Tensor:
        """(B, 4, rows, cols) float32 on the simulator's device."""
        B, (rows, cols), (dx, dy) = sim.batch_size, self.shape, self.cell_m
        position, unit, speed = sim.ego
        others = sim.others(torch.arange(B, device=sim.device), sim.frame)
        relative = _ego_frame(others.centre - position[:, None], unit)                 # (B, M, 2)
        row = torch.floor((self.x_range[1] - relative[..., 0]) / dx).long()
        col = torch.floor((self.y_range[1] - relative[..., 1]) / dy).long()
        inside = others.mask & (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
        their_unit = torch.stack([torch.cos(others.heading), torch.sin(others.heading)], -1)
        their_velocity = their_unit * others.speed[..., None]
        velocity = _ego_frame(their_velocity - (unit * speed[:, None])[:, None], unit) / self.speed_scale
        # One scatter for the whole batch: vehicles outside the grid go to a spill cell, dropped after.
        cells = rows * cols
        index = torch.where(inside, row * cols + col, torch.full_like(row, cells))
        index = index + torch.arange(B, device=sim.device)[:, None] * (cells + 1)
        flat = torch.zeros(B * (cells + 1), 3, dtype=torch.float32, device=sim.device)
        values = torch.cat([torch.ones_like(velocity[..., :1]), velocity], -1).reshape(-1, 3).float()
        flat.scatter_reduce_(0, index.reshape(-1, 1).expand(-1, 3), values, "mean", include_self=False)
        grid = flat.view(B, cells + 1, 3)[:, :cells]                                     # (B, cells, 3)
        # Drivable area at the cell centres, rotated into the world.
        centres = self._cell_centres(sim.device)                                        # (cells, 2)
        c, s = unit[:, None, 0], unit[:, None, 1]
        world = torch.stack([position[:, None, 0] + c * centres[:, 0] - s * centres[:, 1],
                             position[:, None, 1] + s * centres[:, 0] + c * centres[:, 1]], -1)
        road = (~sim.road.offroad(world)).float()[..., None]
        grid = torch.cat([grid, road], -1).clamp(-1.0, 1.0)
        return grid.permute(0, 2, 1).reshape(B, 4, rows, cols)

    def observe(self, sim: BatchedSimulator) -> np.ndarray:
        return self.observe_tensor(sim).cpu().numpy()


OBSERVATION_TYPES = {"kinematics": Kinematics, "raster": Raster, "occupancy_grid": OccupancyGrid}
"""``config["observation"]["type"]`` -> class."""
