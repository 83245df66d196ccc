"""Observations of the recording itself: what every recorded vehicle saw, frame by frame.

The world model learns from these: windows of consecutive frames of one
recorded vehicle, with the observation it would have had at each frame (the
same :func:`ppuu.simulator.raster.render` the simulator uses, so there is no second
implementation), its state, the actions derived from its trajectory, and the
costs of each frame. Windows are rendered on demand, in one batched call, on
any device: nothing is stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from ppuu.data.scene import Scene
from ppuu.simulator.costs import CostConfig, all_costs
from ppuu.simulator.raster import RasterConfig, render, render_traffic_frames
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


@dataclass(frozen=True)
class FixedFrame:
    """Windows rendered in one frame of reference instead of each frame's own (Sobal et al. 2022).

    Every frame of a window is rendered around the pose the vehicle had at frame ``anchor`` of
    the window (the last context frame), with the image centre ``centre_ahead`` m ahead of that
    pose, so the road stays still and the vehicle moves up the image. States are given in that
    frame: x metres ahead of the anchor pose, y to its left, velocities in the same axes.

    Attributes:
        anchor: index of the anchor frame within a window (0-based; the context's last, T - 1).
        centre_ahead: m, where the image centre lies ahead of the anchor pose. The image covers
            ``centre_ahead -+ raster.length_m / 2`` along the anchor's heading.
    """

    anchor: int
    centre_ahead: float = 0.0

    def __post_init__(self) -> None:
        if self.anchor < 0:
            raise ValueError(f"FixedFrame.anchor = {self.anchor}: expected a frame index >= 0")

    def to_json(self) -> dict:
        return {"kind": "fixed", **asdict(self)}


def is_fixed_frame(observation_settings: dict) -> bool:
    """Whether a world model's observation settings (its ``observation`` dict, as saved with it) render
    windows in a :class:`FixedFrame`; without a ``frame`` entry they are egocentric."""
    return observation_settings.get("frame", {}).get("kind") == "fixed"


def into_frame(vectors: Tensor, unit: Tensor) -> Tensor:
    """World-frame vectors (..., 2) into the frame whose x axis is ``unit`` (..., 2): (along, left)."""
    return torch.stack([vectors[..., 0] * unit[..., 0] + vectors[..., 1] * unit[..., 1],
                        vectors[..., 1] * unit[..., 0] - vectors[..., 0] * unit[..., 1]], dim=-1)


class RecordedObservations:
    """Renders windows of the recording of one scene.

    Args:
        scene: the scene.
        raster: :class:`~ppuu.simulator.raster.RasterConfig` (must match the simulator's).
        costs: :class:`~ppuu.simulator.costs.CostConfig`.
        device: where to render.
        frame: None for egocentric windows (each frame around that frame's pose, as the simulator
            renders observations), or a :class:`FixedFrame`.
    """

    def __init__(self, scene: Scene, raster: RasterConfig | None = None, costs: CostConfig | None = None,
                 device: torch.device | str = "cpu", log: TrafficLog | None = None, frame: FixedFrame | None = None):
        self.scene = scene
        self.frame = frame
        self.raster = raster or RasterConfig()
        self.device = torch.device(device)
        self.road = Road.from_meta(scene.meta)
        self.cost_config = (costs or CostConfig()).for_road(self.road)     # the scene's lane width
        self.log = log or TrafficLog(scene, self.device)
        # m along x within which another vehicle can reach an image (TrafficLog.near), with a margin
        self._reach = self.raster.reach_m + self.log.max_half_diagonal + 1.0

    def settings(self) -> dict:
        """How these windows are made, as JSON (stored with a world model, read by :meth:`from_settings`):
        ``{"raster": RasterConfig, "costs": CostConfig (lane width: the scene's), "frame": ...}``."""
        frame = {"kind": "egocentric"} if self.frame is None else self.frame.to_json()
        return {"raster": self.raster.to_json(), "costs": {**self.cost_config.to_json(), "lane_width": None},
                "frame": frame}

    @classmethod
    def from_settings(cls, scene: Scene, settings: dict, device: torch.device | str = "cpu",
                      log: TrafficLog | None = None) -> "RecordedObservations":
        """Windows of ``scene`` made as ``settings`` (:meth:`settings`) say; the lane width is the scene's."""
        try:
            raster = RasterConfig(**settings["raster"])
            costs = CostConfig(**settings.get("costs", {}))
            frame = settings.get("frame", {"kind": "egocentric"})
            fixed = None if frame.get("kind") == "egocentric" else FixedFrame(
                int(frame["anchor"]), float(frame.get("centre_ahead", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"observation settings {settings!r} are not readable: {exc}") from exc
        return cls(scene, raster, costs, device, log=log, frame=fixed)

    def render_states(self, vehicle_ids: np.ndarray | Tensor, start_frames: np.ndarray | Tensor, first: int,
                      states: Tensor) -> Tensor:
        """What the simulator would show a vehicle driven along other states: (B, N, 4, H, W).

        Frame ``first + n`` of each window (the recorded traffic of that frame, the window's own
        vehicle removed) rendered with the ego at ``states[:, n]``, given in the windows' frame
        (world for egocentric windows, the anchor's for fixed ones). In a fixed frame the image
        does not depend on the ego (its channel is empty): replayed traffic does not react.
        For the true effect of other actions (``ppuu evaluate world-model``).

        Args:
            vehicle_ids, start_frames: (B,) the windows (as :meth:`windows`).
            first: index within the window of the first rendered frame.
            states: (B, N, 4) = (x, y, vx, vy) m, m/s.
        """
        ids = torch.as_tensor(np.array(vehicle_ids), dtype=torch.int64, device=self.device)
        start = torch.as_tensor(np.array(start_frames), dtype=torch.int64, device=self.device)
        B, N = states.shape[:2]
        frames = (start[:, None] + first + torch.arange(N, device=self.device)).reshape(-1)
        flat_ids = ids[:, None].expand(B, N).reshape(-1)
        states = states.to(self.device, self.log.centre.dtype).reshape(-1, 4)
        if self.frame is None:
            rows = self.log.rows_of(flat_ids, frames)
            recorded = self.log.heading[rows]
            fallback = torch.stack([torch.cos(recorded), torch.sin(recorded)], dim=-1)
            speed = states[:, 2:].norm(dim=-1, keepdim=True)
            unit = torch.where(speed > 1e-3, states[:, 2:] / speed.clamp(min=1e-3), fallback)
            others = self._others_near(frames, states[:, 0], flat_ids)
            images = render(self.road, states[:, :2], unit, self.log.size[rows], *others, self.raster)
            return images.view(B, N, *images.shape[1:])
        anchor_rows = self.log.rows_of(ids, start + self.frame.anchor)
        a_heading = self.log.heading[anchor_rows]
        a_unit = torch.stack([torch.cos(a_heading), torch.sin(a_heading)], dim=-1)                # (B, 2)
        image_centre = self.log.centre[anchor_rows] + self.frame.centre_ahead * a_unit
        others = self._others_near(frames, image_centre[:, 0].repeat_interleave(N), flat_ids)
        return render_traffic_frames(self.road, image_centre, a_unit, *(x.unflatten(0, (B, N)) for x in others),
                                     self.raster)                                   # the ego channel empty

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

    def _others_near(self, frames: Tensor, x: Tensor, own_ids: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The recorded vehicles that can appear in images centred at world x (m) at ``frames`` (both
        (R,)), the vehicles ``own_ids`` (R,) left out: centres (R, M, 2), unit headings (R, M, 2), sizes
        (R, M, 2), mask (R, M). Only the vehicles near each image (:meth:`TrafficLog.near`), not every
        vehicle of the frame: the work grows with the traffic in view, not with the scene."""
        packed, vehicle_id, mask = self.log.near(frames, x, self._reach)
        packed = packed.to(x.dtype)
        return packed[..., 0:2], packed[..., 2:4], packed[..., 4:6], mask & (vehicle_id != own_ids[:, None])

    def windows(self, vehicle_ids: np.ndarray | Tensor, start_frames: np.ndarray | Tensor, length: int) -> Windows:
        """Render B windows of ``length`` frames in one call.

        Args:
            vehicle_ids: (B,) recorded vehicles.
            start_frames: (B,) first frame of each window; the whole window must lie inside
                the vehicle's recording (see :meth:`window_starts`).
            length: T, frames per window (more than the fixed frame's anchor, when there is one).

        Egocentric windows give world-frame states; fixed-frame windows (:class:`FixedFrame`)
        states in the anchor's frame, costs with the masks at the vehicle's pose in it, and an
        empty ego channel (world models of fixed frames place the ego from its state).
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
        unit = torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)
        states = torch.cat([centre, unit * speed[:, None]], dim=-1)
        if self.frame is None:
            o_centre, o_unit, o_size, o_mask = self._others_near(frames, centre[:, 0], flat_ids)
            images = render(self.road, centre, unit, size, o_centre, o_unit, o_size, o_mask, self.raster)
            costs = all_costs(images, speed, size, self.raster, self.cost_config)
        else:
            if not 0 <= self.frame.anchor < T:
                raise ValueError(f"windows of {T} frames have no frame {self.frame.anchor} to anchor on")
            anchor = torch.arange(B, device=self.device) * T + self.frame.anchor
            image_centre = centre[anchor] + self.frame.centre_ahead * unit[anchor]      # (B, 2): one pose a window
            o_centre, o_unit, o_size, o_mask = self._others_near(
                frames, image_centre[:, 0].repeat_interleave(T), flat_ids)
            others = (x.unflatten(0, (B, T)) for x in (o_centre, o_unit, o_size, o_mask))
            images = render_traffic_frames(self.road, image_centre, unit[anchor], *others,
                                           self.raster).flatten(0, 1)              # the ego channel empty
            a_unit = unit[anchor].repeat_interleave(T, dim=0)                           # (B*T, 2)
            a_centre = centre[anchor].repeat_interleave(T, dim=0)
            states = torch.cat([into_frame(centre - a_centre, a_unit), into_frame(states[:, 2:], a_unit)], dim=-1)
            pose_unit = into_frame(unit, a_unit)
            pose = torch.stack([states[:, 0] - self.frame.centre_ahead, states[:, 1],
                                torch.atan2(pose_unit[:, 1], pose_unit[:, 0])], dim=-1)
            costs = all_costs(images, speed, size, self.raster, self.cost_config, pose=pose)
        actions = self.log.action[rows]
        return Windows(
            images=images.reshape(B, T, *images.shape[1:]),
            states=states.reshape(B, T, 4),
            actions=actions.reshape(B, T, 2),
            costs=torch.stack(list(costs), dim=-1).reshape(B, T, 3),
            size=size.reshape(B, T, 2)[:, 0],
        )
