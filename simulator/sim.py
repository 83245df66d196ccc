"""The batched simulator: B independent episodes advanced by one tensor program.

Each slot b of the batch holds one episode: an ego car that replaced recorded
vehicle ``vehicle_id[b]``, at its own frame of the recording. ``reset`` places
the egos where their vehicles' recordings reach the start line of the course
(:class:`ppuu.simulator.episodes.Course`; by default the site's) and runs the context
(the ego follows its recording for ``context_steps`` frames, 2 s by default); after it,
every ``step`` applies one action per slot with the kinematic model of
:mod:`ppuu.simulator.dynamics` and advances that slot's clock by one frame (0.1 s).
Whoever keeps per-slot state (an MPC planner's warm-started plans) hears every restarted
slot through :meth:`BatchedSimulator.add_episode_start_hook`.

Traffic is either ``replay`` (recorded vehicles at their smoothed positions,
exact) or ``reactive`` (:mod:`ppuu.simulator.reactive`: recorded vehicles keep their
recorded lateral paths but follow an intelligent-driver-model law along the
road, so they brake for the ego).

Finished slots (arrived, collision, off-road, out of data) freeze until they
are reset; their observations repeat their last frame. Nothing here loops over
vehicles, pixels or batch elements.

How a replay step stays fast (issue 13; ``tests/simulator/test_step_equality.py`` checks it
against the code before): it looks only at the recorded vehicles near each ego
(:meth:`~ppuu.simulator.traffic.TrafficLog.near`, shared by the raster and the collision
test), and renders the running slots chunk by chunk (:attr:`SimConfig.chunk`) straight into
the history ring (:func:`~ppuu.simulator.raster.render_into`). At small batches the time is the
number of operators: what is constant over an episode (the ego channel's profiles, the cost
masks' size-dependent factors) is made at its start, the running slots are a slice when all
run, and the observation, costs, tests and metrics run in inference mode (their tensors never
leave the simulator; the step hands out ordinary tensors and detaches the action). Reactive traffic, kept traffic
and a replaced :meth:`BatchedSimulator.others` take the general path (every vehicle of the
frame, through :meth:`~BatchedSimulator.others` and :func:`~ppuu.simulator.raster.render`).

The K-frame observation history is a ring: a step writes one frame per slot (twice: the
ring is stored twice over, so that the K frames oldest-first are always one slice of it),
never copies the history, and the ordered observation is a view. Images stay floating
point: the rasteriser's area coverage takes any value in [0, 1], so uint8 would round the
images (and the costs and models that read them) by up to 1/510.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from ppuu.data.scene import Scene
from ppuu.simulator import dynamics
from ppuu.simulator.collision import boxes_overlap, boxes_overlap_relative, footprint_offroad
from ppuu.simulator.costs import CostConfig, CostProfiles, Costs, all_costs, cost_profiles
from ppuu.simulator.dynamics import ActionBounds, EgoState, relative_poses
from ppuu.simulator.episodes import (ARRIVED, COLLISION, OFFROAD, OUT_OF_DATA, RUNNING, Course, course_table,
                                     episode_vehicles, get_course)
from ppuu.simulator.raster import RasterConfig, ego_profiles, render, render_into, render_traffic_frames
from ppuu.simulator.reactive import IDMConfig, ReactiveTraffic
from ppuu.simulator.road import Road
from ppuu.simulator.traffic import TrafficLog, VehicleSlice


DEFAULT_CHUNKS = {"cpu": 512, "cuda": 16384}
"""Slots per render call by device type when :attr:`SimConfig.chunk` is None (see there)."""


def _without_autograd(method: Callable) -> Callable:
    """Run ``method`` in inference mode: no autograd bookkeeping per operation, which is a tenth of a
    small batch's step. Only for code whose new tensors stay inside the simulator (inference
    tensors cannot enter a differentiable computation). While ``torch.compile`` traces it, in
    ``no_grad`` instead (dynamo's guards fail on tensors made in inference mode)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with torch.no_grad() if torch.compiler.is_compiling() else torch.inference_mode():
            return method(*args, **kwargs)
    return wrapper


def _put(target: Tensor, rows: Tensor | slice, value: Tensor) -> None:
    """``target[rows] = value`` for (S,) unique rows or ``slice(None)``, the latter in one operation."""
    if isinstance(rows, slice):
        target.copy_(value)
    else:
        target[rows] = value


def _add(target: Tensor, rows: Tensor | slice, value: Tensor) -> None:
    """``target[rows] += value`` for (S,) unique rows or ``slice(None)``, in one operation."""
    if isinstance(rows, slice):
        target += value
    else:
        target.index_add_(0, rows, value)


@dataclass
class SimConfig:
    """Settings of :class:`BatchedSimulator` (saved with every evaluation report).

    Attributes:
        context_steps: frames the ego follows its recording before actions drive it (20 = 2 s).
        history: observation frames returned per step (1, or 20 for controllers that need the
            whole context, e.g. the world model's policy).
        traffic: "replay" (exact recorded motion) or "reactive" (IDM car-following).
        time_limit: an episode is out of data after ``time_limit`` x its vehicle's recorded
            duration (so a stopped ego cannot run forever), or when the recording ends.
        course: where episodes start and arrive (:mod:`ppuu.simulator.episodes`): a
            :class:`~ppuu.simulator.episodes.Course`, a name of ``COURSES`` ("i80-reference",
            "full"), "START:ARRIVAL" in metres, or None for the scene site's default
            ("i80-reference" on I-80, else "full").
        cost_weights: (proximity, lane, offroad) weights of the reward ``-sum(w * cost)``
            (SPEC §4: 1.0, 0.2, 1.0).
        keep_traffic: also keep the other vehicles of the last ``history`` frames, so that a
            controller can re-render them around any pose (:meth:`BatchedSimulator.render_history`;
            the policies of fixed-frame world models need it).
        chunk: slots rendered and judged together in a step: large batches go in chunks, which
            bounds the step's temporaries (sampling grid, vehicle windows) to this many slots. The
            results do not depend on it. None: :data:`DEFAULT_CHUNKS` by device. On a CPU the speed
            barely depends on it (1 thread, B = 1,024: chunks of 256 to 1,024 within the machine's
            noise of each other, 64 about a third slower); on a GPU a render call has a fixed cost
            (on an H200 4.6 ms per call for 256 observations and 6.5 ms for 16,384: ``scripts/bench_raster.py``),
            so chunks there are large.
    """

    context_steps: int = 20
    history: int = 1
    traffic: str = "replay"
    time_limit: float = 2.0
    course: Course | str | None = None
    cost_weights: tuple[float, float, float] = (1.0, 0.2, 1.0)
    raster: RasterConfig = field(default_factory=RasterConfig)
    costs: CostConfig = field(default_factory=CostConfig)
    bounds: ActionBounds = field(default_factory=ActionBounds)
    idm: IDMConfig = field(default_factory=IDMConfig)
    keep_traffic: bool = False
    chunk: int | None = None

    def __post_init__(self):
        if self.traffic not in ("replay", "reactive"):
            raise ValueError(f"traffic {self.traffic!r}: expected 'replay' or 'reactive'")
        if self.context_steps < 1 or self.history < 1 or self.history > self.context_steps:
            raise ValueError(f"context_steps ({self.context_steps}) >= history ({self.history}) >= 1 expected")
        if self.chunk is not None and self.chunk < 1:
            raise ValueError(f"chunk {self.chunk}: expected >= 1 slots")
        if not self.time_limit >= 1:
            raise ValueError(f"time_limit {self.time_limit}: expected >= 1 (a multiple of the recorded duration)")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Observation:
    """What a controller sees.

    Attributes:
        image: (B, K, 4, H, W) float in [0, 1], K = ``history``, oldest first
            (channels: lanes, vehicles, off-road, ego; see :mod:`ppuu.simulator.raster`).
        state: (B, K, 4) = (x, y, vx, vy), metres and m/s in the world frame.

    Both are views into the simulator's history ring (no copy of B x K images per step), valid
    until the next ``step`` or ``reset`` overwrites the ring: clone them to keep an observation.
    Each slot's K frames are contiguous (``image.reshape(B, K * 4, H, W)`` is still a view);
    the batch is strided.
    """

    image: Tensor
    state: Tensor


@dataclass
class StepResult:
    """One step of the batch.

    Attributes:
        observation: the new :class:`Observation`.
        action: (B, 2) the actions applied (clipped to the bounds; 0 for slots that were done).
        costs: :class:`~ppuu.simulator.costs.Costs`, each (B,), of the new observation.
        reward: (B,) ``-(w_p proximity + w_l lane + w_o offroad)``; 0 for slots already done.
        outcome: (B,) int64 codes of :mod:`ppuu.simulator.episodes` (RUNNING while going on).
        done: (B,) bool, the slot's episode is over (now or earlier).
        just_done: (B,) bool, the episode ended at this step.
    """

    observation: Observation
    action: Tensor
    costs: Costs
    reward: Tensor
    outcome: Tensor
    done: Tensor
    just_done: Tensor


class BatchedSimulator:
    """B episodes of one scene on one device.

    Args:
        scene: the scene (smoothed trajectories, vehicles, metadata).
        config: :class:`SimConfig`.
        device: torch device for every tensor (default: CUDA when available, else CPU).
        dtype: float dtype of positions and images.
        log: the scene's :class:`~ppuu.simulator.traffic.TrafficLog` on ``device`` and ``dtype``, to share
            one between simulators of the same scene (read only here); None builds one.
    """

    def __init__(self, scene: Scene, config: SimConfig | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, log: TrafficLog | None = None):
        self.config = config or SimConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype
        self.scene = scene
        self.dt = scene.meta.dt
        self.course = get_course(self.config.course, scene.meta)
        self.road = Road.from_meta(scene.meta, arrival_x=self.course.arrival_x, start_x=self.course.start_x)
        self.cost_config = self.config.costs.for_road(self.road)     # the scene's lane width
        if log is not None and (log.device != self.device or log.centre.dtype != dtype):
            raise ValueError(f"a shared TrafficLog on {log.device} ({log.centre.dtype}) for a simulator on "
                             f"{self.device} ({dtype})")
        self.log = log if log is not None else TrafficLog(scene, self.device, dtype)
        self.reactive = ReactiveTraffic(self.log, self.config.idm, self.dt,
                                        scene.meta) if self.config.traffic == "reactive" else None
        self.episodes = course_table(scene, self.course, self.config.context_steps)
        """Every vehicle against the course (:func:`ppuu.simulator.episodes.course_table`)."""
        if not np.array_equal(self.episodes.index.to_numpy(), self.log.vehicle_ids):
            raise ValueError(f"scene {scene.meta.name!r}: trajectories are not sorted by (vehicle_id, frame)")
        self._start_frame = torch.tensor(self.episodes["start_frame"].to_numpy(), device=self.device)  # (V,)
        self._episode_start_hooks: OrderedDict[int, Callable[[Tensor, BatchedSimulator], None]] = OrderedDict()
        self.batch_size = 0
        raster = self.config.raster
        # m along x within which another vehicle can reach an ego's raster (its corners, a half
        # pixel of coverage support, the other's half diagonal) or its footprint (collision), plus
        # a margin: the step looks only at these (TrafficLog.near), whatever the scene's size.
        self._reach = float(max(raster.reach_m, self.log.max_half_diagonal) + self.log.max_half_diagonal + 1.0)

    # ------------------------------------------------------------------ episodes
    def episode_vehicles(self, split: str | None = "test") -> np.ndarray:
        """(E,) vehicle ids that make episodes on the course in a split (see
        :func:`ppuu.simulator.episodes.episode_vehicles`; raises ``CourseError`` when the course
        does not fit the scene's tracks)."""
        return episode_vehicles(self.scene, split, self.course, self.config.context_steps, table=self.episodes)

    def add_episode_start_hook(self, hook: Callable[[Tensor, "BatchedSimulator"], None]) -> RemovableHandle:
        """Call ``hook(slots, sim)`` after every :meth:`reset`, with the (S,) int64 slots that started
        a new episode (all B on a new batch; the restarted ones otherwise, e.g. autoreset slots of
        the gym vector env). For controllers that keep per-slot state, e.g. warm-started plans.

        Returns:
            a handle; ``handle.remove()`` unregisters the hook.
        """
        handle = RemovableHandle(self._episode_start_hooks)
        self._episode_start_hooks[handle.id] = hook
        return handle

    def take_episode_start_hooks(self, other: "BatchedSimulator") -> None:
        """Move ``other``'s episode-start hooks to this simulator, their handles still valid (an env that
        rebuilds its simulator for a new config keeps its users' hooks)."""
        self._episode_start_hooks, other._episode_start_hooks = other._episode_start_hooks, OrderedDict()

    def reset(self, vehicle_ids: Sequence[int] | Tensor, slots: Tensor | None = None) -> Observation:
        """Start episodes: the egos replace ``vehicle_ids`` and follow them through the context.

        Each ego starts where its vehicle's recording reaches the course's start line and follows
        the recording for ``context_steps`` frames; then the episode-start hooks are called.

        Args:
            vehicle_ids: (B,) recorded vehicles to replace; with ``slots``, one per slot to reset.
            slots: None to start a new batch of B = len(vehicle_ids) episodes; else (S,) int64
                indices of the slots to restart (the other slots are untouched).

        Returns:
            the :class:`Observation` of the whole batch after the context (the restarted slots'
            costs of their last context frame are in :attr:`last_costs`).
        """
        ids = torch.as_tensor(np.array(vehicle_ids, dtype=np.int64), device=self.device).reshape(-1)
        if slots is not None:
            slots = torch.as_tensor(slots, device=self.device, dtype=torch.int64).reshape(-1)
            if len(slots) != len(ids):
                raise ValueError(f"{len(ids)} vehicle ids for {len(slots)} slots")
        # every check before any state changes: a refused reset leaves the running episodes as they were
        index = self.log.vehicle_index(ids)
        first, last = self._start_frame[index], self.log.vehicle_last_frame[index]
        C, K = self.config.context_steps, self.config.history
        if bool((first < 0).any()):
            outside = ids[first < 0].tolist()
            raise ValueError(f"vehicles {outside[:5]} do not start course {self.course}: their recordings begin "
                             "past its start line or never reach it")
        if bool((last - first + 1 <= C).any()):
            short = ids[last - first + 1 <= C].tolist()
            raise ValueError(f"vehicles {short[:5]} have no more than {C} frames from the start of course "
                             f"{self.course}: no action after the context")
        if slots is None:
            self._allocate(len(ids))
            slots = torch.arange(len(ids), device=self.device)
        self.vehicle_id[slots] = ids
        self._vehicle_index[slots] = index
        self._row_base[slots] = self.log.row_base(index)
        self.first_frame[slots] = first
        self.last_recorded[slots] = last
        duration = (last - first).to(self.dtype)
        limit = first + torch.ceil(duration * self.config.time_limit).long()
        self.end_frame[slots] = torch.minimum(limit, torch.full_like(limit, self.log.last_frame))
        self.size[slots] = self.log.size[self.log.rows_of(ids, first)]
        self._ego_rows[slots], self._ego_columns[slots] = ego_profiles(self.config.raster, self.size[slots])
        for kept, value in zip(self._cost_profiles, cost_profiles(self.size[slots], self.config.raster,
                                                                   self.cost_config)):
            kept[slots] = value
        self.outcome[slots] = RUNNING
        self.steps[slots] = 0
        self.distance[slots] = 0
        self.max_deviation[slots] = 0
        self._driven_sums[slots] = 0
        # The acceleration the recording had just before the first action (jerk of the first step).
        before = torch.maximum(first + C - 2, first)
        self.last_acceleration[slots] = self.log.acceleration[self.log.rows_of(ids, before)]
        if self.reactive is not None:
            self.reactive.reset(slots, first + C - 1, ids)
        # The context: the ego is exactly at its recording; render the last K frames of it into
        # the ring, oldest first, so that they end at the ring's current head.
        for k in range(K):
            frame = first + (C - K + k)
            self._set_recorded_state(slots, ids, frame)
            others = self.others(slots, frame)
            image, state = self._observe(slots, frame, others)
            self._write_history(slots, (self._head + 1 + k) % K, image, state,
                                self._traffic_record(others) if self.config.keep_traffic else None)
        self.context_end_x[slots] = self.ego.position[slots, 0]
        costs = all_costs(image, self.ego.speed[slots], self.size[slots], self.config.raster, self.cost_config)
        for last, cost in zip(self.last_costs, costs):
            last[slots] = cost
        for hook in list(self._episode_start_hooks.values()):
            hook(slots, self)
        return self.observation()

    def observation(self) -> Observation:
        """The batch's current :class:`Observation`: (B, K, ...) views of the history ring, oldest first."""
        K, h = self.config.history, self._head
        return Observation(self._image_ring[:, h + 1:h + 1 + K], self._state_ring[:, h + 1:h + 1 + K])

    def _write_history(self, slots: Tensor, position: int, image: Tensor, state: Tensor,
                       others: tuple[Tensor, ...] | None = None) -> None:
        """Store (S, 4, H, W) images and (S, 4) states (and, when kept, the others' centre, unit
        heading, size and mask, each (S, N, ...)) at a ring position (and its mirror)."""
        at = torch.tensor([position, position + self.config.history], device=self.device)
        self._image_ring[slots[:, None], at] = image[:, None]
        self._state_ring[slots[:, None], at] = state[:, None]
        if self.config.keep_traffic:
            for ring, value in zip(self._traffic_ring, others):
                ring[slots[:, None], at] = value[:, None]

    def _traffic_record(self, others: VehicleSlice) -> tuple[Tensor, ...]:
        """The others of a slice as the traffic ring stores them: centre, unit heading, size, mask."""
        unit = torch.stack([torch.cos(others.heading), torch.sin(others.heading)], dim=-1)
        return others.centre, unit.to(self.dtype), others.size, others.mask

    def render_history(self, slots: Tensor, centre: Tensor, unit: Tensor, raster: RasterConfig,
                       frames: int | None = None) -> Tensor:
        """The slots' last ``frames`` frames of traffic (default: all ``history``), re-rendered around
        other poses: (S, F, 4, H, W), oldest first, with ``raster``.

        Needs ``SimConfig.keep_traffic``. The ego channel is empty: the image is not centred on it.

        Args:
            slots: (S,) int64 slots.
            centre: (S, 2) m, world-frame image centres.
            unit: (S, 2) unit vectors, the images' up direction.
            raster: the raster to render with (any size and resolution).
        """
        if not self.config.keep_traffic:
            raise ValueError("render_history needs SimConfig(keep_traffic=True)")
        K = self.config.history
        F_ = K if frames is None else int(frames)
        if not 1 <= F_ <= K:
            raise ValueError(f"frames = {frames}: expected 1 .. {K} (the history kept)")
        lo = self._head + 1 + K - F_
        o_centre, o_unit, o_size, o_mask = (ring[slots, lo:lo + F_] for ring in self._traffic_ring)
        return render_traffic_frames(self.road, centre, unit, o_centre, o_unit, o_size, o_mask, raster)

    def _allocate(self, batch: int) -> None:
        d, f = self.device, self.dtype
        cfg = self.config
        H, W = cfg.raster.length_px, cfg.raster.width_px
        self.batch_size = batch
        self.vehicle_id = torch.full((batch,), -1, dtype=torch.int64, device=d)
        self._vehicle_index = torch.zeros(batch, dtype=torch.int64, device=d)   # into log.vehicle_ids
        self._row_base = torch.zeros(batch, dtype=torch.int64, device=d)        # TrafficLog.row_base
        self.first_frame = torch.zeros(batch, dtype=torch.int64, device=d)
        self.last_recorded = torch.zeros(batch, dtype=torch.int64, device=d)
        self.frame = torch.zeros(batch, dtype=torch.int64, device=d)
        self.end_frame = torch.zeros(batch, dtype=torch.int64, device=d)
        self.steps = torch.zeros(batch, dtype=torch.int64, device=d)
        self.outcome = torch.zeros(batch, dtype=torch.int64, device=d)
        self.size = torch.zeros(batch, 2, dtype=f, device=d)
        self._ego_rows = torch.zeros(batch, H, dtype=f, device=d)        # raster.ego_profiles of each slot
        self._ego_columns = torch.zeros(batch, W, dtype=f, device=d)
        self._cost_profiles = CostProfiles(torch.zeros(batch, 1, W, dtype=f, device=d),   # costs.cost_profiles
                                           torch.zeros(batch, H, 1, dtype=f, device=d),
                                           torch.zeros(batch, dtype=f, device=d),
                                           torch.zeros(batch, 1, 1, dtype=f, device=d))
        self.context_end_x = torch.zeros(batch, dtype=f, device=d)
        self.distance = torch.zeros(batch, dtype=f, device=d)
        self.max_deviation = torch.zeros(batch, dtype=f, device=d)
        # Sums over each episode's driven steps, one row per slot (one in-place addition per step):
        # speed, |acceleration|, |jerk| and the three costs; the named sums are its columns.
        self._driven_sums = torch.zeros(batch, 3 + len(Costs._fields), dtype=f, device=d)
        self.speed_sum, self.abs_acceleration_sum, self.abs_jerk_sum = self._driven_sums[:, :3].unbind(1)
        self.cost_sums = list(self._driven_sums[:, 3:].unbind(1))
        self._negative_cost_weights = -torch.tensor(cfg.cost_weights, dtype=f, device=d)
        self.last_acceleration = torch.zeros(batch, dtype=f, device=d)
        self.ego = EgoState(torch.zeros(batch, 2, dtype=f, device=d),
                            torch.tensor([1.0, 0.0], dtype=f, device=d).repeat(batch, 1),
                            torch.zeros(batch, dtype=f, device=d))
        # History ring, stored twice over: frame j of the ring lives at j and j + K, the newest
        # at _head, so the K frames oldest first are the slice [_head + 1, _head + K].
        self._image_ring = torch.zeros(batch, 2 * cfg.history, 4, H, W, dtype=f, device=d)
        self._state_ring = torch.zeros(batch, 2 * cfg.history, 4, dtype=f, device=d)
        if cfg.keep_traffic:
            N = self.log.max_vehicles
            self._traffic_ring = (torch.zeros(batch, 2 * cfg.history, N, 2, dtype=f, device=d),
                                  torch.zeros(batch, 2 * cfg.history, N, 2, dtype=f, device=d),
                                  torch.ones(batch, 2 * cfg.history, N, 2, dtype=f, device=d),
                                  torch.zeros(batch, 2 * cfg.history, N, dtype=torch.bool, device=d))
        self._head = cfg.history - 1
        self._chunk_buffer: Tensor | None = None
        self._last_costs = torch.zeros(batch, len(Costs._fields), dtype=f, device=d)    # (B, 3)
        self.last_costs = Costs(*self._last_costs.unbind(1))

    def _set_recorded_state(self, slots: Tensor, ids: Tensor, frame: Tensor) -> None:
        rows = self.log.rows_of(ids, frame)
        heading = self.log.heading[rows]
        position, unit, speed = self.ego
        position[slots] = self.log.centre[rows]
        unit[slots] = torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)
        speed[slots] = self.log.speed[rows]
        self.frame[slots] = frame

    # ------------------------------------------------------------------ observation
    def others(self, slots: Tensor, frame: Tensor) -> VehicleSlice:
        """The other vehicles of the given slots at their frames, the ego's own recording masked out."""
        traffic = self.reactive.at(slots, frame) if self.reactive is not None else self.log.at(frame)
        traffic.mask &= traffic.vehicle_id != self.vehicle_id[slots, None]
        return traffic

    def _observe(self, slots: Tensor, frame: Tensor, others: VehicleSlice | None = None) -> tuple[Tensor, Tensor]:
        """Render the slots' observations: image (S, 4, H, W) and state (S, 4)."""
        others = self.others(slots, frame) if others is None else others
        position, unit, speed = (t[slots] for t in self.ego)
        image = render(self.road, position, unit, self.size[slots], others.centre, others.heading, others.size,
                       others.mask, self.config.raster)
        state = torch.cat([position, unit * speed[:, None]], dim=-1)
        return image, state

    # ------------------------------------------------------------------ stepping
    def recorded_actions(self) -> Tensor:
        """(B, 2) the actions of the replaced vehicles at the slots' current frames (the "human" driver).

        Zero where the recording has ended.
        """
        return self.log.action[self._recorded_rows()].masked_fill_((self.frame >= self.last_recorded)[:, None], 0.0)

    def _recorded_rows(self) -> Tensor:
        """(B,) rows of the replaced vehicles at the slots' frames (their last row once the recording ended)."""
        return self.log.rows_from_base(self._row_base, torch.minimum(self.frame, self.last_recorded))

    def step(self, action: Tensor) -> StepResult:
        """Apply one action per slot and advance the running slots by one frame.

        Args:
            action: (B, 2) = (acceleration m/s^2, curvature 1/m). Out-of-bound values are
                clipped to :class:`~ppuu.simulator.dynamics.ActionBounds`; NaN, inf or a wrong shape
                raise ValueError. Actions of finished slots are ignored.
        """
        # the simulator is not differentiable: a gradient stops at the action (the ego's state would
        # otherwise carry a growing graph from step to step)
        action = torch.as_tensor(action, device=self.device, dtype=self.dtype).detach()
        if action.shape != (self.batch_size, 2):
            raise ValueError(f"action of shape {tuple(action.shape)}: expected ({self.batch_size}, 2) = "
                             "(acceleration m/s^2, curvature 1/m)")
        running = self.outcome == RUNNING
        # With every slot running (an RL user's single env, most steps of a batch), the running
        # slots are a slice instead of a gather and a scatter: at small batches every operator counts.
        whole = bool(running.all())
        if not bool(((action if whole else action[running]).abs() < math.inf).all()):    # NaN compares false
            raise ValueError("action holds NaN or inf: expected finite (acceleration m/s^2, curvature 1/m)")
        if not whole:
            action = torch.where(running[:, None], action, torch.zeros_like(action))
        action = self.config.bounds.clip(action)

        moved = dynamics.step(self.ego, action, self.dt)
        # Comfort: the acceleration applied (the clipped action, cut where the speed floor at
        # 0 m/s stops braking) and its change, summed over the driven steps.
        acceleration = (moved.speed - self.ego.speed) / self.dt
        jerk = (acceleration - self.last_acceleration) / self.dt
        # Only the running slots move, are observed and judged (finished ones keep their last
        # values): ``active`` selects them, a slice when all run.
        active = slice(None) if whole else running.nonzero().squeeze(1)        # (S,)
        if whole:
            self.last_acceleration, self.ego = acceleration, moved
        else:
            self.last_acceleration = torch.where(running, acceleration, self.last_acceleration)
            keep = running[:, None]
            self.ego = EgoState(torch.where(keep, moved.position, self.ego.position),
                                torch.where(keep, moved.heading, self.ego.heading),
                                torch.where(running, moved.speed, self.ego.speed))
        advanced = 1 if whole else running.long()
        self.frame, self.steps = self.frame + advanced, self.steps + advanced
        if self.reactive is not None:
            self.reactive.step(running, self.frame, self.ego, self.size)
        frame = self.frame[active]
        position, unit, speed = (t[active] for t in self.ego)
        size = self.size[active]
        if self._looks_near():
            image, state, costs, collision = self._observe_near(active, frame, position, unit, speed, size)
            others = None
        else:
            slots = torch.arange(self.batch_size, device=self.device) if whole else active   # a tensor
            others = self.others(slots, frame)
            image, state = self._observe(slots, frame, others)
            collision = boxes_overlap(position, unit, size, others.centre, others.heading, others.size,
                                      others.mask).any(dim=-1)
            costs = all_costs(image, speed, size, self.config.raster, self.cost_config)
        offroad = self._offroad(position, unit, size)
        arrived = self.road.arrived(position[:, 0])
        out_of_data = frame >= self.end_frame[active]
        outcome = torch.full_like(frame, RUNNING)
        for code, happened in ((OUT_OF_DATA, out_of_data), (ARRIVED, arrived), (OFFROAD, offroad),
                               (COLLISION, collision)):        # later entries take precedence
            outcome.masked_fill_(happened, code)
        self.outcome[active] = outcome
        just_done = outcome != RUNNING
        if not whole:
            just_done = torch.zeros_like(running).index_put_((active,), just_done)

        # this step's contribution to the driven-step sums (S, 6), the costs its last three columns
        driven = torch.stack([speed, acceleration[active], jerk[active], *costs], dim=1)
        driven[:, 1:3].abs_()
        reward = torch.mv(driven[:, 3:], self._negative_cost_weights)       # -sum(w * cost)
        if not whole:
            reward = torch.zeros(self.batch_size, dtype=self.dtype, device=self.device).index_put_((active,), reward)
        self._accumulate(active, frame, position, driven)
        # The history ring advances for every slot: running slots write their new frame (the near
        # path has written it already), finished ones repeat their newest (one frame per slot,
        # never the whole history).
        previous, self._head = self._head, (self._head + 1) % self.config.history
        if image is not None:
            self._write_history(slots, self._head, image, state,        # (the general path's slots)
                                self._traffic_record(others) if self.config.keep_traffic else None)
        if not whole:
            finished = (~running).nonzero().squeeze(1)
            # the newest frame's mirror copy (the step may skip the first copy when K = 1)
            newest = previous + self.config.history
            kept = tuple(ring[finished, newest] for ring in self._traffic_ring) if self.config.keep_traffic else None
            self._write_history(finished, self._head, self._image_ring[finished, newest],
                                self._state_ring[finished, newest], kept)
        return StepResult(self.observation(), action, Costs(*self._last_costs.clone().unbind(1)),
                          reward, self.outcome.clone(), self.outcome != RUNNING, just_done)

    @_without_autograd
    def _accumulate(self, active: Tensor | slice, frame: Tensor, position: Tensor, driven: Tensor) -> None:
        """Update the running slots' episode metrics in place (in inference mode, as
        :meth:`_observe_near`): distance, deviation from the recording, the driven-step sums (adding
        ``driven`` (S, 6): speed, |acceleration|, |jerk|, the three costs) and the last costs."""
        _put(self.distance, active, position[:, 0] - self.context_end_x[active])
        last_recorded = self.last_recorded[active]
        recorded_rows = self.log.rows_from_base(self._row_base[active], torch.minimum(frame, last_recorded))
        deviation = torch.linalg.vector_norm(position - self.log.centre[recorded_rows], dim=-1)
        deviation = deviation.masked_fill_(frame > last_recorded, 0.0)
        _put(self.max_deviation, active, torch.maximum(self.max_deviation[active], deviation))
        _add(self._driven_sums, active, driven)
        _put(self._last_costs, active, driven[:, 3:])

    @_without_autograd
    def _offroad(self, position: Tensor, unit: Tensor, size: Tensor) -> Tensor:
        """(S,) bool: the egos' footprints leave the drivable area."""
        return footprint_offroad(self.road, position, unit, size)

    def _looks_near(self) -> bool:
        """Whether the step may look only at the traffic near the egos (:meth:`_observe_near`):
        recorded traffic, no kept traffic, and :meth:`others` not replaced on this instance (a
        controller or test that replaces it gets the general path, which calls it)."""
        return self.reactive is None and not self.config.keep_traffic and "others" not in vars(self)

    @_without_autograd
    def _observe_near(self, active: Tensor | slice, frame: Tensor, position: Tensor, unit: Tensor, speed: Tensor,
                      size: Tensor) -> tuple[None, None, Costs, Tensor]:
        """The step's observation, costs and collision test for the running slots (S,) (``active``:
        their indices, or ``slice(None)`` when every slot runs) from the
        recorded vehicles near each ego (one search and gather, shared by the raster and the
        collision test), rendered chunk by chunk (``SimConfig.chunk``) into the history ring at the
        next head.

        Runs in inference mode (no autograd bookkeeping per operation: about a tenth of a B = 1 step):
        it writes into the simulator's own tensors, and its costs and collision flags are inference
        tensors that the step reads but never hands out.

        Returns:
            (None, None, costs (each (S,)), collision (S,) bool); the ring holds the images and states.
        """
        S, cfg = len(frame), self.config
        packed, vehicle_id, mask = self.log.near(frame, position[:, 0], self._reach)
        mask &= vehicle_id != self.vehicle_id[active, None]
        o_centre, o_unit, o_size = packed[..., 0:2], packed[..., 2:4], packed[..., 4:6]
        relative = relative_poses(position, unit, o_centre, o_unit)    # (S, 2, 2M): for the test and the raster
        collision = boxes_overlap_relative(relative, size, o_size, mask).any(dim=-1)
        head, K = (self._head + 1) % cfg.history, cfg.history
        state = torch.cat([position, unit * speed[:, None]], dim=-1)
        whole = S == self.batch_size                      # every slot runs: the ring rows are a slice
        chunk = max(1, min(cfg.chunk or DEFAULT_CHUNKS.get(self.device.type, DEFAULT_CHUNKS["cpu"]), S))
        if not whole and (self._chunk_buffer is None or self._chunk_buffer.shape[0] < chunk):
            self._chunk_buffer = torch.empty(chunk, *cfg.raster.shape, dtype=self.dtype, device=self.device)
        # Every observation reads the ring's mirror copy of the newest frame (head + K); the first
        # copy (head) is read only for K > 1. With every slot running, the images are rendered
        # straight into the ring; otherwise into the buffer, then copied to the running slots.
        parts = []
        # render_into's per-slot arguments (ego centre, unit, size; others' centre, unit, size, mask), then
        # the others on the egos' axes and the speed
        per_slot = (position, unit, size, o_centre, o_unit, o_size, mask, relative, speed)
        everything = whole and S <= chunk         # one chunk of every slot (small batches): nothing to slice
        for lo in range(0, S, chunk):
            hi = min(lo + chunk, S)
            rows = slice(lo, hi) if whole else active[lo:hi]
            out = self._image_ring[lo:hi, head + K] if whole else self._chunk_buffer[:hi - lo]
            part = per_slot if everything else tuple(t[lo:hi] for t in per_slot)
            ego = (self._ego_rows, self._ego_columns) if everything else (self._ego_rows[rows], self._ego_columns[rows])
            profiles = self._cost_profiles if everything else CostProfiles(*(t[rows] for t in self._cost_profiles))
            image = render_into(out, self.road, *part[:7], cfg.raster, ego, relative=part[7])
            parts.append(all_costs(image, part[8], part[2], cfg.raster, self.cost_config, profiles=profiles))
            if not whole:
                self._image_ring[rows, head + K] = image
            if K > 1:
                self._image_ring[rows, head] = image
        self._state_ring[active, head::K] = state[:, None]                 # at head and its mirror head + K
        if len(parts) == 1:
            costs = parts[0]
        else:                                   # several chunks, or none (every slot finished)
            costs = Costs(*(torch.cat(c) for c in zip(*parts))) if parts else \
                Costs(*(position.new_zeros(0) for _ in range(3)))
        return None, None, costs, collision

    @property
    def done(self) -> Tensor:
        """(B,) bool: the slot's episode is over."""
        return self.outcome != RUNNING

    def metrics(self) -> dict[str, Tensor]:
        """Per-slot episode metrics, each (B,): outcome code, distance (m along the road from the
        end of the context, where actions start), time (s of driving after the context), mean_speed
        (m/s), max_deviation (m, largest distance from the replaced vehicle's recorded position
        while it was recorded: 0 for a perfect imitation), mean_abs_acceleration (m/s^2) and
        mean_abs_jerk (m/s^3) of the applied longitudinal acceleration (comfort; the first
        step's jerk is against the recording's acceleration at the end of the context), and the
        mean proximity, lane and off-road costs, all over the driven steps."""
        steps = self.steps.clamp(min=1).to(self.dtype)
        return {
            "vehicle_id": self.vehicle_id,
            "outcome": self.outcome,
            "distance": self.distance,
            "time": self.steps.to(self.dtype) * self.dt,
            "mean_speed": self.speed_sum / steps,
            "max_deviation": self.max_deviation,
            "mean_abs_acceleration": self.abs_acceleration_sum / steps,
            "mean_abs_jerk": self.abs_jerk_sum / steps,
            "proximity_cost": self.cost_sums[0] / steps,
            "lane_cost": self.cost_sums[1] / steps,
            "offroad_cost": self.cost_sums[2] / steps,
        }

