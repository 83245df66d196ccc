"""Recorded traffic as tensors: look up every vehicle present at a batch of frames in one gather.

The scene's smoothed table is sorted by frame and stored as flat tensors with
per-frame offsets (compressed rows). Looking up B frames gathers a padded
(B, N) block, N = the most vehicles ever present at once, with a mask for the
empty slots. Replay is then exact: recorded vehicles are where the smoothed
data says they are, at every frame.

The simulator's step needs only the vehicles near each ego (those that can reach its raster or
its footprint). :meth:`TrafficLog.near` finds them with one search in the rows sorted by
(frame, x) and one gather of a packed (x, y, cos, sin, length, width) table, into M slots, M
the most vehicles any frame holds within the search interval: the step's cost follows the
traffic near the egos, not the length of the road or the number of vehicles in the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ppuu.data.scene import Scene
from ppuu.simulator.constants import outside_inference_mode


@dataclass
class VehicleSlice:
    """The vehicles present at a batch of frames, padded to N slots.

    Attributes (B episodes, N slots):
        centre: (B, N, 2) metres, footprint centre in the world frame.
        heading: (B, N) radians, counter-clockwise from +x.
        speed: (B, N) m/s.
        size: (B, N, 2) metres, (length, width).
        lane: (B, N) int64, NGSIM Lane_ID.
        vehicle_id: (B, N) int64, -1 in empty slots.
        mask: (B, N) bool, True where a vehicle is present.
        rows: (B, N) int64 rows of the :class:`TrafficLog` tensors (0 in empty slots).
    """

    centre: torch.Tensor
    heading: torch.Tensor
    speed: torch.Tensor
    size: torch.Tensor
    lane: torch.Tensor
    vehicle_id: torch.Tensor
    mask: torch.Tensor
    rows: torch.Tensor


class TrafficLog:
    """The recorded trajectories of a scene on one device, indexed by frame.

    Args:
        scene: a scene (its smoothed trajectory table).
        device: where the tensors live.
        dtype: float dtype of positions and speeds (float32 by default).
    """

    def __init__(self, scene: Scene, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        t = scene.trajectories.sort_values(["frame", "vehicle_id"], kind="stable")
        frames = t["frame"].to_numpy()
        self.first_frame = int(frames.min())
        self.last_frame = int(frames.max())
        counts = np.bincount(frames - self.first_frame, minlength=self.last_frame - self.first_frame + 1)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        self.max_vehicles = int(counts.max())
        self.device = torch.device(device)

        def tensor(values, kind=dtype):
            return torch.as_tensor(np.array(values), dtype=kind, device=self.device)

        self.offsets = tensor(offsets, torch.int64)                      # (F + 1,)
        self.centre = tensor(t[["x", "y"]].to_numpy())                   # (R, 2) m
        self.heading = tensor(t["heading"].to_numpy())                   # (R,) rad
        self.speed = tensor(t["speed"].to_numpy())                       # (R,) m/s
        self.size = tensor(t[["length", "width"]].to_numpy())            # (R, 2) m
        self.lane = tensor(t["lane"].to_numpy(), torch.int64)            # (R,)
        self.vehicle_id = tensor(t["vehicle_id"].to_numpy(), torch.int64)
        self.acceleration = tensor(t["acceleration"].to_numpy())         # (R,) m/s^2
        self.curvature = tensor(t["curvature"].to_numpy())               # (R,) 1/m
        self.action = torch.stack([self.acceleration, self.curvature], dim=1)   # (R, 2): both, one gather
        self.frame = tensor(frames, torch.int64)
        # Row of (vehicle, frame) for the ego's own recording: rows sorted by vehicle then frame.
        by_vehicle = scene.trajectories.sort_values(["vehicle_id", "frame"], kind="stable")
        self.vehicle_ids = by_vehicle["vehicle_id"].drop_duplicates().to_numpy()      # (V,) sorted
        starts = np.searchsorted(by_vehicle["vehicle_id"].to_numpy(), self.vehicle_ids)
        by_vehicle_frames = by_vehicle["frame"].to_numpy()
        self.vehicle_first_frame = tensor(by_vehicle_frames[starts], torch.int64)       # (V,)
        self.vehicle_last_frame = tensor(np.r_[by_vehicle_frames[starts[1:] - 1], by_vehicle_frames[-1]],
                                         torch.int64)
        self._ids = tensor(self.vehicle_ids, torch.int64)
        # Map (vehicle, frame) -> row of the frame-sorted tensors.
        order = np.lexsort((frames, t["vehicle_id"].to_numpy()))          # frame-sorted rows in vehicle order
        self._row_by_vehicle = tensor(order, torch.int64)
        self._vehicle_start = tensor(starts, torch.int64)
        # The same rows sorted by (frame, x), packed into one table for the lookup near the egos.
        x = t["x"].to_numpy()
        by_x = np.lexsort((x, frames))
        by_x_t = torch.as_tensor(by_x, device=self.device)
        # cos and sin exactly as the rasteriser and collision test compute them from the dtype's heading
        unit = torch.stack([torch.cos(self.heading), torch.sin(self.heading)], dim=-1)
        self.packed = torch.cat([self.centre, unit, self.size], dim=1)[by_x_t]      # (R, 6) x, y, cos, sin, l, w
        self.packed_vehicle_id = self.vehicle_id[by_x_t]                            # (R,)
        x_sorted = x[by_x]
        self._x_origin = float(x_sorted.min()) if len(x_sorted) else 0.0
        self._frame_stride = float(x_sorted.max() - self._x_origin) + 1.0 if len(x_sorted) else 1.0
        # Search key, increasing along the packed rows: frame index * stride + x (float64: exact enough).
        self._near_key_np = (frames[by_x] - self.first_frame) * self._frame_stride + (x_sorted - self._x_origin)
        self._near_key = torch.as_tensor(self._near_key_np, dtype=torch.float64, device=self.device)
        lengths, widths = t["length"].to_numpy(), t["width"].to_numpy()
        self.max_half_diagonal = float(np.hypot(lengths, widths).max() / 2) if len(t) else 0.0   # m
        self._near_width: dict[float, int] = {}
        self._near_cache: dict[tuple, torch.Tensor] = {}

    @property
    def num_frames(self) -> int:
        return self.last_frame - self.first_frame + 1

    def vehicle_index(self, vehicle_ids: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Index into :attr:`vehicle_ids` for each id: any shape of int64 -> the same shape.

        Raises KeyError for an id that is not in the scene (with ``check``; without it, unknown
        ids, e.g. the -1 of empty slots, get an arbitrary valid index).
        """
        index = torch.searchsorted(self._ids, vehicle_ids.contiguous()).clamp(max=len(self._ids) - 1)
        if check and not bool((self._ids[index] == vehicle_ids).all()):
            missing = vehicle_ids[self._ids[index] != vehicle_ids].flatten()[:5].tolist()
            raise KeyError(f"vehicles {missing} are not in this scene")
        return index

    def vehicle_span(self, vehicle_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(first, last) recorded frame of each vehicle: (B,) int64 -> two (B,) int64."""
        index = self.vehicle_index(vehicle_ids)
        return self.vehicle_first_frame[index], self.vehicle_last_frame[index]

    def rows_of(self, vehicle_ids: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Rows (into the frame-sorted tensors) of vehicles at frames; both (B,), frames within the recording."""
        return self.rows_of_index(self.vehicle_index(vehicle_ids), frames)

    def rows_of_index(self, index: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Rows of vehicles given by their index into :attr:`vehicle_ids` at frames (same shape, any).

        Frames outside a vehicle's recording are clamped to its first or last frame.
        """
        offset = torch.minimum(frames, self.vehicle_last_frame[index]) - self.vehicle_first_frame[index]
        return self._row_by_vehicle[self._vehicle_start[index] + offset.clamp(min=0)]

    def row_base(self, index: torch.Tensor) -> torch.Tensor:
        """Per vehicle (index into :attr:`vehicle_ids`, any shape), the base such that
        :meth:`rows_from_base` (base, frame) is its row at a frame of its recording: one addition
        and one gather per lookup for callers that follow the same vehicles over many frames."""
        return self._vehicle_start[index] - self.vehicle_first_frame[index]

    def rows_from_base(self, base: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Rows of vehicles at frames, from their :meth:`row_base`; the frames must lie within each
        vehicle's recording (unchecked)."""
        return self._row_by_vehicle[base + frames]

    def near_width(self, reach: float) -> int:
        """The most vehicles of one frame whose centres lie within any x-interval of ``2 * reach`` m
        (the slots :meth:`near` needs; computed once per reach, from the sorted keys)."""
        if reach not in self._near_width:
            key = self._near_key_np
            # a densest interval starts at some vehicle: count from each one (frames are > 2 reach apart
            # in the key only when the stride exceeds 2 reach; the frame bound keeps the count inside it)
            frame_end = np.searchsorted(key, (np.floor(key / self._frame_stride) + 1) * self._frame_stride - 0.5)
            stop = np.minimum(np.searchsorted(key, key + 2 * reach, side="right"), frame_end)
            self._near_width[reach] = int((stop - np.arange(len(key))).max()) if len(key) else 0
        return self._near_width[reach]

    def near(self, frames: torch.Tensor, x: torch.Tensor, reach: float) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
        """The vehicles whose centres are within ``reach`` m along x of each of a batch of points,
        at their frames: one search and one gather of the packed table, so the work grows with the
        traffic near the points, not with the scene.

        Args:
            frames: (B,) int64 absolute frames (outside the recording: no vehicle).
            x: (B,) m, world x of the points.
            reach: m, half-width of the x-interval.

        Returns:
            packed (B, M, 6) = (x, y, cos heading, sin heading, length, width) in m,
            vehicle_id (B, M) int64 and mask (B, M) bool (True where a vehicle is present; the other
            slots repeat a valid row), M = :meth:`near_width` (``reach``).
        """
        M = self.near_width(reach)
        f = (frames.to(self.device) - self.first_frame).to(torch.float64)
        # the x-interval's ends as keys: the frame's base plus x from the origin, kept within the frame
        # (a frame outside the recording puts both ends below the first key or above the last: no rows)
        ends = x.to(torch.float64)[:, None] + self._interval(reach)
        bounds = torch.add(ends.clamp_(0.0, self._frame_stride - 0.5), f[:, None], alpha=self._frame_stride)
        start, stop = torch.searchsorted(self._near_key, bounds).unbind(1)              # (B,) each
        rows = start[:, None] + self._slot_offsets(M)                                   # (B, M)
        mask = rows < stop[:, None]
        rows = torch.minimum(rows, (stop[:, None] - 1).clamp(min=0))               # a valid row everywhere
        B = len(f)
        packed = self.packed.index_select(0, rows.reshape(-1)).view(B, M, self.packed.shape[1])
        return packed, self.packed_vehicle_id.index_select(0, rows.reshape(-1)).view(B, M), mask

    def _interval(self, reach: float) -> torch.Tensor:
        """(2,) float64 (-reach, reach) m from the keys' x origin on the device, made once per reach."""
        key = ("interval", reach)
        if key not in self._near_cache:
            with outside_inference_mode():              # constants.py
                self._near_cache[key] = torch.tensor([-reach - self._x_origin, reach - self._x_origin],
                                                     dtype=torch.float64, device=self.device)
        return self._near_cache[key]

    def _slot_offsets(self, width: int) -> torch.Tensor:
        """(width,) int64 0, 1, ... on the device, made once per width."""
        key = ("offsets", width)
        if key not in self._near_cache:
            with outside_inference_mode():
                self._near_cache[key] = torch.arange(width, device=self.device)
        return self._near_cache[key]

    def at(self, frames: torch.Tensor) -> VehicleSlice:
        """Every vehicle present at each of a batch of frames.

        Args:
            frames: (B,) int64 absolute frame numbers; outside the recording gives empty slices.
        Returns:
            a :class:`VehicleSlice` with N = ``max_vehicles`` slots.
        """
        f = frames.to(self.device) - self.first_frame
        inside = (f >= 0) & (f < self.num_frames)
        f = f.clamp(0, self.num_frames - 1)
        start, stop = self.offsets[f], self.offsets[f + 1]
        slots = torch.arange(self.max_vehicles, device=self.device)
        rows = start[:, None] + slots[None, :]                            # (B, N)
        mask = (rows < stop[:, None]) & inside[:, None]
        rows = torch.where(mask, rows, torch.zeros_like(rows))
        return VehicleSlice(
            centre=self.centre[rows], heading=self.heading[rows], speed=self.speed[rows], size=self.size[rows],
            lane=self.lane[rows], vehicle_id=torch.where(mask, self.vehicle_id[rows], torch.full_like(rows, -1)),
            mask=mask, rows=rows,
        )
