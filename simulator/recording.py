"""Observations of the recording itself: what every recorded vehicle saw, frame by frame.

The world model learns from these: windows of consecutive frames of one
recorded vehicle, with the observation it would have had at each frame (the
same :func:`ppuu.simulator.raster.render` the simulator uses, so there is no second
implementation), its state, the actions derived from its trajectory, and the
costs of each frame. Windows are rendered on demand, in one batched call, on
any device: nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ppuu.data.scene import Scene
from ppuu.simulator.costs import CostConfig, all_costs
from ppuu.simulator.raster import RasterConfig, render
from ppuu.simulator.road import Road
from ppuu.simulator.traffic import TrafficLog


@dataclass
class Windows:
    """A batch of recorded windows of T frames (B windows).

    Attributes:
        images: (B, T, 4, H, W) float in [0, 1], the vehicle's egocentric observations.
        states: (B, T, 4) = (x, y, vx, vy), metres and m/s in the world frame.
        actions: (B, T, 2) = (acceleration m/s^2, curvature 1/m) taken at each frame (frame -> frame + 1).
        costs: (B, T, 3) = (proximity, lane, off-road) of each observation.
        size: (B, 2) (length, width) of the vehicle, m.
    """

    images: Tensor
    states: Tensor
    actions: Tensor
    costs: Tensor
    size: Tensor


class RecordedObservations:
    """Renders windows of the recording of one scene.

    Args:
        scene: the scene.
        raster: :class:`~ppuu.simulator.raster.RasterConfig` (must match the simulator's).
        costs: :class:`~ppuu.simulator.costs.CostConfig`.
        device: where to render.
    """

    def __init__(self, scene: Scene, raster: RasterConfig | None = None, costs: CostConfig | None = None,
                 device: torch.device | str = "cpu", log: TrafficLog | None = None):
        self.scene = scene
        self.raster = raster or RasterConfig()
        self.device = torch.device(device)
        self.road = Road.from_meta(scene.meta)
        self.cost_config = (costs or CostConfig()).for_road(self.road)     # the scene's lane width
        self.log = log or TrafficLog(scene, self.device)

    def window_starts(self, vehicle_ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Every window of ``length`` frames inside the given vehicles' recordings.

        Returns:
            (vehicle_id (W,), start_frame (W,)) int64 arrays, one entry per window.
        """
        ids = torch.as_tensor(np.array(vehicle_ids, dtype=np.int64), device=self.device)
        first, last = (t.cpu().numpy() for t in self.log.vehicle_span(ids))
        count = np.clip(last - first + 2 - length, 0, None)          # windows per vehicle
        owner = np.repeat(np.arange(len(ids)), count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        return np.asarray(vehicle_ids, dtype=np.int64)[owner], first[owner] + offset

    def windows(self, vehicle_ids: np.ndarray | Tensor, start_frames: np.ndarray | Tensor, length: int) -> Windows:
        """Render B windows of ``length`` frames in one call.

        Args:
            vehicle_ids: (B,) recorded vehicles.
            start_frames: (B,) first frame of each window; the whole window must lie inside
                the vehicle's recording (see :meth:`window_starts`).
            length: T, frames per window.
        """
        ids = torch.as_tensor(np.array(vehicle_ids), dtype=torch.int64, device=self.device)
        start = torch.as_tensor(np.array(start_frames), dtype=torch.int64, device=self.device)
        first, last = self.log.vehicle_span(ids)
        if bool(((start < first) | (start + length - 1 > last)).any()):
            raise ValueError("a window reaches outside its vehicle's recording; use window_starts()")
        B, T = len(ids), length
        frames = (start[:, None] + torch.arange(T, device=self.device)).reshape(-1)     # (B*T,)
        flat_ids = ids[:, None].expand(B, T).reshape(-1)
        rows = self.log.rows_of(flat_ids, frames)
        centre, heading = self.log.centre[rows], self.log.heading[rows]
        size, speed = self.log.size[rows], self.log.speed[rows]
        others = self.log.at(frames)
        others.mask &= others.vehicle_id != flat_ids[:, None]
        images = render(self.road, centre, heading, size, others.centre, others.heading, others.size,
                        others.mask, self.raster)
        costs = all_costs(images, speed, size, self.raster, self.cost_config)
        unit = torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)
        states = torch.cat([centre, unit * speed[:, None]], dim=-1)
        actions = torch.stack([self.log.acceleration[rows], self.log.curvature[rows]], dim=-1)
        return Windows(
            images=images.reshape(B, T, *images.shape[1:]),
            states=states.reshape(B, T, 4),
            actions=actions.reshape(B, T, 2),
            costs=torch.stack(list(costs), dim=-1).reshape(B, T, 3),
            size=size.reshape(B, T, 2)[:, 0],
        )
