"""Reactive traffic: recorded vehicles keep to their recording and brake only for what is not in it.

Replay cannot react: the car behind the ego drives through it. Here, per slot, every recorded
vehicle other than the one the ego replaced (which is gone from that slot's traffic entirely)
keeps its recorded lateral path; only its position along the road (x) and its speed are
simulated, and only while the recording cannot be kept. A vehicle is in one of two states:

* **On its recording** (the default): exactly at its recorded position, speed, lane and heading.
  The recording is collision-free among recorded vehicles, so a vehicle leaves it only when
  something *not in the recording* is in its way: the ego, or a vehicle that has itself left its
  recording. Two vehicles on their recordings never constrain each other, nor do a vehicle on its
  recording and an ego on the recording of the vehicle it replaced (within 0.1 m and 0.1 m/s).
* **Off its recording** ("free"): its acceleration is ``a = max(min(a_track, a_cf), -max_braking)``
  and ``x, v`` are integrated over the step (trapezoid, speed >= 0). Its lateral position,
  heading and lane are those its recorded path had at its current x (so a held-back vehicle
  changes lanes where it was recorded to, and a stopped one does not slide sideways). It is back
  on its recording (snapped to it) when the law does not bind and it is within 0.1 m and 0.1 m/s
  of its recording, or has reached its recorded position.

``a_track`` returns a vehicle to its recording: a critically damped controller on the position
and speed errors (time constant ``tau``), its correction bounded by ``a_ret``::

    a_track = a_rec + clamp((x_rec - x) / tau^2 + 2 (v_rec - v) / tau, -a_ret, a_ret)

``a_cf`` is the car-following law, the interaction term of the intelligent driver model (IDM,
Treiber, Hennecke & Helbing 2000) used as a brake only (as in IDM+, Schakel et al. 2010, the
free-road term is replaced, here by the recording)::

    s_idm(v, dv) = s0 + v T + max(0, v dv / (2 sqrt(a b)))
    s*   = max(s_idm(v, dv) - w u, min(s0, g_rec, s_idm(v, dv)))
    u    = max(0, s_idm(v_rec, dv_rec) - g_rec)
    a_cf = a (1 - (s* / s)^2)   if s < s*,  else unbounded

with ``s`` the bumper-to-bumper gap and ``dv`` the closing speed to the leader: the nearest
vehicle ahead in the same lane, where a vehicle changing lanes counts in both lanes its footprint
touches, and so does the ego. ``g_rec`` and ``dv_rec`` are the gap and closing speed the two had
in the recording (for the ego, those of the vehicle it replaced, while the ego is in that
vehicle's recorded lane), and ``u`` is how far the recording itself undercut IDM's gap. That
undercut is granted with weight ``w``: 1 while the leader is where its recording is, fading to 0
as it departs from it by 2 m or 2 m/s. So a leader on its recording never makes anyone brake (the
ego that drives exactly its recorded actions leaves the traffic exactly as recorded), while a
leader that has left its recording (a stopped ego, a held-back car) is braked for as by plain IDM
with the scene's gaps. Where the recording has no such gap (the ego in a lane its vehicle was not
in, or a pair whose recorded order is the other way round), ``s* = s_idm(v, dv)``.

Calibration (once per scene, vectorised): over every recorded (follower, leader) pair in a lane
at every frame, ``s0`` is the ``percentile``-th percentile of the gaps at standstill (follower
below 1 m/s) and ``T`` that of the time headway ``(s - s0) / v`` above 5 m/s (default 5th
percentile: s0 = 1.8 m and T = 0.95 s on the generated I-80 scene, 1.7-2.1 m and 0.92-1.07 s on
generated US-101 scenes). Applied to every recorded pair, as the earlier absolute IDM law did
(2 m, 1 s), about a quarter of all recorded pairs are closer than ``s_idm`` and were braked
although nothing had changed: hence the undercut granted above. ``a`` (1.5 m/s^2) and ``b``
(2 m/s^2) only shape the dynamic term; braking is limited to ``max_braking`` (9 m/s^2). Explicit
values in :class:`IDMConfig` replace the calibrated ones.

Entering vehicles (first present at a frame after the context) take their recorded position and
speed unless that would put them into a vehicle off its recording or the ego (the law of either
of the two binds): then they enter held back, behind the last vehicle of the packed queue there
(gaps under one long vehicle plus 2 s0), at gap ``s0 + v T`` and at most that vehicle's speed, and
return to their recording from there. Presence follows the recording: a vehicle appears and
disappears at its recorded first and last frames wherever it is.

Limits: lateral paths are recorded, so a held-back vehicle changes lanes where its recording
does, later than recorded; vehicles in the target lane brake for it as soon as its footprint
reaches their lane, but a lane change onto another vehicle's flank, or too close in front of a
fast one, is not avoided (that takes a lane-change model). Leaders do not react to followers: a
recorded footprint that swings back into the ego (recorded headings of up to 0.7 rad at walking
pace, during lane changes) hits it as in replay. A vehicle whose lane an ego off its recording
reaches into while alongside (the ego's centre ahead of the vehicle's, their footprints
overlapping in x) takes the ego as its leader at a negative gap and brakes hard, into its path if
the ego then drives on into that lane.

State: (B, V) tensors of x, speed and flags for every (slot, recorded vehicle); the step is one
tensor program (one sort per slot of the vehicles present, twice, and the ego; no loops over
vehicles or slots).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ppuu.data.scene import SceneMeta
from ppuu.simulator.dynamics import EgoState
from ppuu.simulator.traffic import TrafficLog, VehicleSlice

BACK_ON_RECORDING = (0.1, 0.1)
"""(m, m/s): a free vehicle this close to its recorded position and speed is snapped back onto it."""
LEADER_OFF_RECORDING = (2.0, 2.0)
"""(m, m/s): a leader this far from its recorded position or speed no longer vouches for the recorded gap."""
STANDSTILL_SPEED = 1.0
"""m/s: recorded followers slower than this calibrate the standstill gap s0."""
MOVING_SPEED = 5.0
"""m/s: recorded followers faster than this calibrate the time headway T."""
MIN_SAMPLES = 100
"""Fewer calibration pairs than this: the parameter falls back to IDM's textbook value."""


@dataclass
class IDMConfig:
    """Parameters of the reactive-traffic law (SI units; see the module docstring).

    ``time_headway`` and ``min_gap`` are calibrated on the scene (``calibration_percentile``) unless given.
    """

    time_headway: float | None = None   #: T, s; None = calibrate
    min_gap: float | None = None        #: s0, m; None = calibrate
    calibration_percentile: float = 5.0  #: %, of the recorded standstill gaps and time headways
    max_acceleration: float = 1.5       #: a of the IDM dynamic term, m/s^2
    comfortable_braking: float = 2.0    #: b of the IDM dynamic term, m/s^2
    max_braking: float = 9.0            #: hard limit on deceleration, m/s^2
    return_time: float = 0.7            #: tau, s: time constant of the return to the recording
    return_acceleration: float = 1.5    #: a_ret, m/s^2: bound on the return controller's correction

    def __post_init__(self):
        for name in ("max_acceleration", "comfortable_braking", "max_braking", "return_time",
                     "return_acceleration"):
            if not getattr(self, name) > 0:
                raise ValueError(f"IDMConfig.{name} = {getattr(self, name)}: expected > 0")
        for name in ("time_headway", "min_gap"):
            if getattr(self, name) is not None and not getattr(self, name) >= 0:
                raise ValueError(f"IDMConfig.{name} = {getattr(self, name)}: expected >= 0 (or None to calibrate)")
        if not 0 < self.calibration_percentile < 100:
            raise ValueError(f"IDMConfig.calibration_percentile = {self.calibration_percentile}: expected in (0, 100)")


def recorded_gaps(log: TrafficLog) -> tuple[np.ndarray, np.ndarray]:
    """Every recorded (follower, leader) pair in a lane at every frame.

    Returns:
        gap (P,) m bumper to bumper, and the follower's speed (P,) m/s.
    """
    frame, lane = log.frame.cpu().numpy(), log.lane.cpu().numpy()
    x, length, speed = (t.cpu().double().numpy() for t in (log.centre[:, 0], log.size[:, 0], log.speed))
    order = np.lexsort((x, lane, frame))
    frame, lane, x, length, speed = (a[order] for a in (frame, lane, x, length, speed))
    pair = (frame[1:] == frame[:-1]) & (lane[1:] == lane[:-1])
    gap = x[1:] - x[:-1] - (length[1:] + length[:-1]) / 2
    return gap[pair], speed[:-1][pair]


def calibrate(log: TrafficLog, percentile: float) -> tuple[float, float]:
    """(T s, s0 m): low percentiles of the scene's recorded time headways and standstill gaps.

    s0 is clamped to [0.5, 5] m and T to [0.1, 3] s (bad rows of real data can give negative gaps);
    with fewer than :data:`MIN_SAMPLES` pairs a parameter takes IDM's textbook value (2 m, 1 s).
    """
    gap, speed = recorded_gaps(log)
    standstill = gap[speed < STANDSTILL_SPEED]
    min_gap = float(np.clip(np.percentile(standstill, percentile), 0.5, 5.0)) if len(standstill) >= MIN_SAMPLES \
        else 2.0
    moving = speed > MOVING_SPEED
    headway = (gap[moving] - min_gap) / speed[moving]
    time_headway = float(np.clip(np.percentile(headway, percentile), 0.1, 3.0)) if len(headway) >= MIN_SAMPLES \
        else 1.0
    return time_headway, min_gap


class LaneMap:
    """Lane (NGSIM Lane_ID) at world positions: main lanes 1..K from the left, ramps by their extent.

    Args:
        meta: the scene's lane widths and ramps (m).
        like: a tensor whose device and dtype the lane tables take.
    """

    def __init__(self, meta: SceneMeta, like: Tensor):
        widths = torch.tensor(meta.lane_widths, dtype=like.dtype, device=like.device)
        self.edges = torch.cumsum(widths, 0)            # (K,) distance of each lane's right edge from y = 0, m
        self.fallback = len(meta.lane_widths) + 1
        tol = 1e-6
        ramps = [(r.lane, -np.inf if r.x_start <= tol else r.x_start,
                  np.inf if r.x_end >= meta.section_length - tol else r.x_end, r.y_right, r.y_left)
                 for r in meta.ramps]
        self.ramps = torch.tensor(ramps, dtype=like.dtype, device=like.device).reshape(-1, 5)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Lane of points (x, y) (any shape, m) -> int64 of the same shape; right of the road and on no
        ramp: K + 1."""
        lane = torch.searchsorted(self.edges, (-y).contiguous()) + 1
        r = self.ramps
        on = ((x[..., None] >= r[:, 1]) & (x[..., None] <= r[:, 2]) & (y[..., None] >= r[:, 3])
              & (y[..., None] < r[:, 4]))                                           # (..., R)
        ramp_lane = torch.where(on, r[:, 0].long(), torch.zeros_like(on, dtype=torch.int64)).amax(-1) \
            if len(r) else torch.zeros_like(lane)
        main = lane <= len(self.edges)
        return torch.where(main, lane, torch.where(ramp_lane > 0, ramp_lane, torch.full_like(lane, self.fallback)))

    def of_footprint(self, centre: Tensor, unit: Tensor, size: Tensor) -> tuple[Tensor, Tensor]:
        """Lanes of the left and right edges of footprints: centre (..., 2) m, unit heading (..., 2),
        size (..., 2) (length, width) m -> two int64 (...). The edges are taken 5 cm inside, so that a
        car exactly on a lane line is in one lane."""
        half = (unit[..., 1].abs() * size[..., 0] + unit[..., 0].abs() * size[..., 1]) / 2 - 0.05
        x, y = centre[..., 0], centre[..., 1]
        return self(x, y + half), self(x, y - half)


class ReactiveTraffic:
    """Per-episode longitudinal state of every recorded vehicle (see the module docstring).

    Args:
        log: the scene's :class:`~ppuu.simulator.traffic.TrafficLog`.
        config: :class:`IDMConfig`.
        dt: s per step.
        meta: the scene's metadata (lane widths and ramps, to find the ego's lanes).

    Attributes:
        time_headway: T, s, as used (calibrated unless given).
        min_gap: s0, m, as used.
    """

    def __init__(self, log: TrafficLog, config: IDMConfig, dt: float, meta: SceneMeta):
        self.log, self.config, self.dt = log, config, dt
        if config.time_headway is None or config.min_gap is None:
            time_headway, min_gap = calibrate(log, config.calibration_percentile)
        self.min_gap = config.min_gap if config.min_gap is not None else min_gap
        self.time_headway = config.time_headway if config.time_headway is not None else time_headway
        # A gap smaller than this cannot take an entering vehicle: queues are packed below it (m).
        self.packed_gap = float(torch.quantile(log.size[:, 0].float().cpu(), 0.95)) + 2 * self.min_gap
        self.lanes = LaneMap(meta, log.centre)
        self.second_lane = self._second_lanes(log)
        self._build_paths(log)
        # Sort key (lane, x) as one number: lane * span + x, span far beyond any |x| (m).
        self._lane_key_span = float(log.centre[:, 0].abs().max()) * 4 + 1e4
        self.num_vehicles = len(log.vehicle_ids)
        V, d = self.num_vehicles, log.device
        self.x = torch.zeros(0, V, dtype=log.centre.dtype, device=d)        # (B, V) m
        self.v = torch.zeros_like(self.x)                                    # (B, V) m/s
        self.known = torch.zeros(0, V, dtype=torch.bool, device=d)          # (B, V) state is set
        self.free = torch.zeros(0, V, dtype=torch.bool, device=d)           # (B, V) off its recording
        self.sync_until = torch.zeros(0, dtype=torch.int64, device=d)       # (B,) last frame of the context
        self.replaced = torch.full((0,), -1, dtype=torch.int64, device=d)   # (B,) index of the ego's vehicle
        self._last_lookup: tuple[Tensor, VehicleSlice] | None = None        # frames (B,) and log.at of them

    def reset(self, slots: Tensor, context_end: Tensor, replaced_ids: Tensor) -> None:
        """Forget the slots' states: they follow the recording up to frame ``context_end`` (S,); the
        recorded vehicles ``replaced_ids`` (S,) (the egos' own) are gone from those slots' traffic."""
        needed = int(slots.max()) + 1 if len(slots) else 0
        if needed > self.x.shape[0]:
            grow = needed - self.x.shape[0]
            self.x, self.v, self.known, self.free = (torch.cat([t, t.new_zeros(grow, self.num_vehicles)])
                                                     for t in (self.x, self.v, self.known, self.free))
            self.sync_until = torch.cat([self.sync_until, self.sync_until.new_zeros(grow)])
            self.replaced = torch.cat([self.replaced, self.replaced.new_full((grow,), -1)])
        self.known[slots] = False
        self.free[slots] = False
        self.sync_until[slots] = context_end
        self.replaced[slots] = self.log.vehicle_index(replaced_ids)

    def at(self, slots: Tensor, frame: Tensor) -> VehicleSlice:
        """Vehicles present at the slots' frames (S,), with their reactive positions and speeds along x.

        The replaced vehicle is included at its recorded position (the simulator masks it)."""
        traffic = self._lookup(slots, frame)
        index = self.log.vehicle_index(traffic.vehicle_id, check=False)             # (S, N)
        rows = slots[:, None].expand_as(index)
        take_recorded = traffic.mask & (~self.known[rows, index] | (frame <= self.sync_until[slots])[:, None]
                                        | (index == self.replaced[slots, None]))
        r, i = rows[take_recorded], index[take_recorded]
        self.x[r, i] = traffic.centre[..., 0][take_recorded]
        self.v[r, i] = traffic.speed[take_recorded]
        self.known[r, i] = True
        self.free[r, i] = False
        x = torch.where(traffic.mask, self.x[rows, index], traffic.centre[..., 0])
        lateral = self._lateral_rows(index, x, traffic.mask & self.free[rows, index], traffic.rows)
        traffic.centre = torch.stack([x, self.log.centre[lateral, 1]], dim=-1)
        traffic.heading = self.log.heading[lateral]
        traffic.lane = self.log.lane[lateral]
        traffic.speed = torch.where(traffic.mask, self.v[rows, index], traffic.speed)
        return traffic

    def step(self, running: Tensor, frame: Tensor, ego: EgoState, ego_size: Tensor) -> None:
        """Advance every running slot's vehicles from ``frame - 1`` to ``frame`` (B,).

        ``ego`` is the egos' state at ``frame`` and ``ego_size`` (B, 2) their (length, width), m.
        """
        log, cfg, dt = self.log, self.config, self.dt
        B = len(frame)
        slots = torch.arange(B, device=frame.device)
        now = log.at(frame)                                                        # present at the new frame
        self._last_lookup = (frame.clone(), now)      # the simulator looks the same frames up next
        index = log.vehicle_index(now.vehicle_id, check=False)                    # (B, N)
        rows = slots[:, None].expand_as(index)
        here = now.mask & running[:, None] & (index != self.replaced[:B, None])
        known = here & self.known[rows, index]
        entering = here & ~known
        free = known & self.free[rows, index]
        # Recorded state at the previous frame (known vehicles) or the new one (entering vehicles).
        before = log.rows_of_index(index, (frame - 1)[:, None].expand_as(index))
        rec_x1, rec_v1 = now.centre[..., 0], now.speed
        x = torch.where(known, self.x[rows, index], rec_x1)
        v = torch.where(known, self.v[rows, index], rec_v1)
        rec_x = torch.where(known, log.centre[before, 0], rec_x1)
        rec_v = torch.where(known, log.speed[before], rec_v1)
        rec_a = torch.where(known, log.acceleration[before], torch.zeros_like(rec_v1))

        # The ego, in each lane its footprint touches (a second column only if that is another lane).
        ego_lanes, ego_x, ego_v, ego_rec_x, ego_rec_v, ego_has_rec, ego_on_rec = self._ego_columns(frame, ego,
                                                                                                   ego_size)
        # Columns of the leader search: every vehicle in its recorded lane, again in the other lane its
        # footprint touches (during a lane change), and the ego.
        N = index.shape[1]
        # Off its recording a vehicle is where its recorded path was at its own x (lane changes happen
        # where they were recorded); entering vehicles held back stay at the start of their path.
        lateral = self._lateral_rows(index, x, free, now.rows)
        lane, second_lane = log.lane[lateral], self.second_lane[lateral]
        was_on_recording = (known & ~free) | entering
        no = torch.zeros_like(ego_has_rec)
        cols = dict(
            x=torch.cat([x, x, ego_x], 1), rec_x=torch.cat([rec_x, rec_x, ego_rec_x], 1),
            v=torch.cat([v, v, ego_v], 1), rec_v=torch.cat([rec_v, rec_v, ego_rec_v], 1),
            length=torch.cat([now.size[..., 0], now.size[..., 0], ego_size[:, :1].expand(B, 2)], 1),
            lane=torch.cat([lane, second_lane, ego_lanes], 1),
            present=torch.cat([here, here & (second_lane > 0), running[:, None] & (ego_lanes > 0)], 1),
            has_rec=torch.cat([here, here, ego_has_rec], 1),
            on_recording=torch.cat([was_on_recording, was_on_recording, ego_on_rec], 1),
        )
        key = torch.where(cols["present"], cols["lane"].to(x.dtype) * self._lane_key_span + cols["x"],
                          torch.full_like(cols["x"], float("inf")))
        order = key.argsort(dim=1)
        s = {k: t.gather(1, order) for k, t in cols.items()}
        has_leader, gap, a_cf = self._car_following(s)
        # Entering vehicles that the law puts into an unrecorded vehicle (either way) enter held back.
        s_entering = torch.cat([entering, torch.zeros_like(entering), no], 1).gather(1, order)
        binds = torch.isfinite(a_cf)
        follower_binds = torch.zeros_like(binds)
        follower_binds[:, 1:] = binds[:, :-1] & has_leader[:, :-1]
        held = s_entering & (binds | follower_binds)
        place_x, place_v = self._queue_behind(s, has_leader, gap, held)
        # Back to the columns' own order.
        a_cf, held, place_x, place_v = (torch.empty_like(t).scatter_(1, order, t) for t in (a_cf, held, place_x, place_v))
        a_cf = torch.minimum(a_cf[:, :N], a_cf[:, N:2 * N])          # the stricter of the two lanes
        held, place_x, place_v = held[:, :N], place_x[:, :N], place_v[:, :N]

        tau = cfg.return_time
        correction = ((rec_x - x) / tau ** 2 + 2 * (rec_v - v) / tau).clamp(-cfg.return_acceleration,
                                                                            cfg.return_acceleration)
        a_track = rec_a + correction
        binding = a_cf < a_track
        a = torch.minimum(a_track, a_cf).clamp(min=-cfg.max_braking)
        new_v = (v + a * dt).clamp(min=0)
        new_x = x + (v + new_v) / 2 * dt
        tol_x, tol_v = BACK_ON_RECORDING
        back = ~binding & ((((rec_x1 - new_x).abs() < tol_x) & ((rec_v1 - new_v).abs() < tol_v)) | (new_x >= rec_x1))
        on_recording = (known & ~free & ~binding) | (known & back) | (entering & ~held)
        new_x = torch.where(on_recording, rec_x1, torch.where(held, place_x, new_x))
        new_v = torch.where(on_recording, rec_v1, torch.where(held, place_v, new_v))

        r, i = rows[here], index[here]
        self.x[r, i] = new_x[here]
        self.v[r, i] = new_v[here]
        self.free[r, i] = ~on_recording[here]
        self.known[r, i] = True

    # ------------------------------------------------------------------ parts of the step
    def _lookup(self, slots: Tensor, frame: Tensor) -> VehicleSlice:
        """``log.at(frame)`` for the slots, reusing the last step's lookup where it was of the same frames."""
        if self._last_lookup is not None:
            last_frame, last = self._last_lookup
            if len(slots) and len(last_frame) > int(slots.max()) and torch.equal(last_frame[slots], frame):
                return VehicleSlice(**{k: getattr(last, k)[slots] for k in last.__dataclass_fields__})
        return self.log.at(frame)

    def _second_lanes(self, log: TrafficLog) -> Tensor:
        """(R,) int64: for every recorded row, the lane other than its recorded one that the footprint
        touches (it is changing lanes), else 0."""
        left, right = self.lanes.of_footprint(log.centre, torch.stack([torch.cos(log.heading),
                                                                        torch.sin(log.heading)], -1), log.size)
        return torch.where(left != log.lane, left, torch.where(right != log.lane, right, torch.zeros_like(left)))

    def _build_paths(self, log: TrafficLog) -> None:
        """Index every vehicle's recorded path by position: rows in (vehicle, frame) order with the key
        ``vehicle index * span + running max of x`` (sorted, as vehicles never go back)."""
        V = len(log.vehicle_ids)
        vehicle = log.vehicle_index(log.vehicle_id)                               # (R,)
        by_vehicle = torch.argsort(vehicle * (log.num_frames + 1) + (log.frame - log.first_frame))
        span = self._path_span = float(log.centre[:, 0].abs().max()) * 4 + 1e4
        key = vehicle[by_vehicle].double() * span + log.centre[by_vehicle, 0].double()
        self._path_key = key.cummax(0).values                                       # (R,) float64
        self._path_row = by_vehicle                                                  # (R,)
        counts = torch.bincount(vehicle, minlength=V)
        self._path_end = torch.cumsum(counts, 0) - 1                                 # (V,) last position
        self._path_start = self._path_end - counts + 1                               # (V,) first position

    def _path_rows(self, index: Tensor, x: Tensor) -> Tensor:
        """Rows of the recorded paths of vehicles ``index`` at positions ``x`` (same shape, m): the last
        recorded row at or behind x (the first row for x behind the whole path)."""
        query = index.double() * self._path_span + x.double()
        position = torch.searchsorted(self._path_key, query.contiguous(), right=True) - 1
        position = torch.maximum(torch.minimum(position, self._path_end[index]), self._path_start[index])
        return self._path_row[position]

    def _lateral_rows(self, index: Tensor, x: Tensor, off: Tensor, rows: Tensor) -> Tensor:
        """Rows that give the lateral state (y, heading, lane): the recorded ``rows`` at the current frame,
        or, for vehicles ``off`` their recording, their recorded path's rows at their x (all (B, N))."""
        lateral = rows.clone()
        lateral[off] = self._path_rows(index[off], x[off])
        return lateral

    def _ego_columns(self, frame: Tensor, ego: EgoState, ego_size: Tensor):
        """The ego as up to two leader-search columns, each (B, 2): lane (0 = absent), x, v, recorded x and
        v (the replaced vehicle's at ``frame``), whether that recording is comparable (same lane), and
        whether the ego is on its recording (within :data:`BACK_ON_RECORDING` of the replaced vehicle's
        recorded position, in x and y, and speed: then, like two recorded vehicles, the ego and a
        vehicle on its recording do not constrain each other; without this a vehicle passing an ego
        that starts its recorded lane change beside it braked to a stop in the ego's path)."""
        log = self.log
        position, unit, speed = ego
        left, right = self.lanes.of_footprint(position, unit, ego_size)
        lanes = torch.stack([left, torch.where(right == left, torch.zeros_like(right), right)], 1)   # (B, 2)
        replaced = self.replaced[:len(frame)].clamp(min=0)
        row = log.rows_of_index(replaced, frame)
        recorded = frame <= log.vehicle_last_frame[replaced]
        has_rec = recorded[:, None] & (lanes == log.lane[row][:, None])
        tol_x, tol_v = BACK_ON_RECORDING
        on_rec = (recorded & ((position - log.centre[row]).abs() < tol_x).all(1)
                  & ((speed - log.speed[row]).abs() < tol_v))
        # ...and only in the lanes its recorded footprint touched there.
        recorded_lanes = (lanes == log.lane[row][:, None]) | (lanes == self.second_lane[row][:, None])
        two = (-1, 2)
        return (lanes, position[:, :1].expand(two), speed[:, None].expand(two),
                log.centre[row, 0][:, None].expand(two), log.speed[row][:, None].expand(two), has_rec,
                on_rec[:, None] & (lanes > 0) & recorded_lanes)

    def _car_following(self, s: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The law on (lane, x)-sorted columns (B, M): whether each has a leader, its gap (m), and a_cf
        (m/s^2, +inf where the law does not bind)."""
        cfg = self.config
        has_leader = torch.zeros_like(s["present"])
        has_leader[:, :-1] = s["present"][:, 1:] & s["present"][:, :-1] & (s["lane"][:, 1:] == s["lane"][:, :-1])
        half = (s["length"][:, 1:] + s["length"][:, :-1]) / 2
        inf = torch.full_like(s["x"], float("inf"))
        gap, rec_gap, closing = inf.clone(), inf.clone(), torch.zeros_like(inf)
        gap[:, :-1] = s["x"][:, 1:] - s["x"][:, :-1] - half
        rec_gap[:, :-1] = torch.where(s["has_rec"][:, 1:] & s["has_rec"][:, :-1],
                                      s["rec_x"][:, 1:] - s["rec_x"][:, :-1] - half, inf[:, 1:])
        closing[:, :-1] = s["v"][:, :-1] - s["v"][:, 1:]
        rec_closing = torch.zeros_like(closing)
        rec_closing[:, :-1] = s["rec_v"][:, :-1] - s["rec_v"][:, 1:]
        # How much the recording still vouches for this pair: fully while the leader is where its
        # recording is, fading to nothing as it departs from it (position or speed).
        off_x, off_v = LEADER_OFF_RECORDING
        departure = torch.maximum((s["x"] - s["rec_x"]).abs() / off_x, (s["v"] - s["rec_v"]).abs() / off_v)
        trust = torch.zeros_like(closing)
        trust[:, :-1] = (1 - departure[:, 1:]).clamp(min=0)
        comparable = rec_gap > 0                     # a gap of the recording, in the recorded order
        desired = self._idm_gap(s["v"], closing)
        # Grant the current situation what the recording undercut the law's gap by (never below s0 or
        # the recorded gap, whichever is smaller): a leader where its recording was brakes nobody.
        undercut = (self._idm_gap(s["rec_v"], rec_closing) - rec_gap).clamp(min=0)
        floor = torch.minimum(torch.full_like(rec_gap, self.min_gap), rec_gap)
        desired = torch.where(comparable, torch.maximum(desired - trust * undercut, torch.minimum(floor, desired)),
                              desired)
        # Two vehicles on their recordings never constrain each other (the recording is collision-free).
        both_recorded = torch.zeros_like(has_leader)
        both_recorded[:, :-1] = s["on_recording"][:, 1:] & s["on_recording"][:, :-1]
        binds = has_leader & (gap < desired) & ~both_recorded
        a_cf = torch.where(binds, cfg.max_acceleration * (1 - (desired / gap.clamp(min=0.1)) ** 2), inf)
        return has_leader, gap, a_cf

    def _idm_gap(self, v: Tensor, closing: Tensor) -> Tensor:
        """IDM's desired gap s0 + v T + max(0, v dv / (2 sqrt(a b))) (m) at speed v and closing speed dv (m/s)."""
        cfg = self.config
        dynamic = (v * closing / (2 * (cfg.max_acceleration * cfg.comfortable_braking) ** 0.5)).clamp(min=0)
        return self.min_gap + v * self.time_headway + dynamic

    def _queue_behind(self, s: dict[str, Tensor], has_leader: Tensor, gap: Tensor, held: Tensor
                      ) -> tuple[Tensor, Tensor]:
        """Where held-back entering vehicles go, on sorted columns (B, M): behind the last vehicle of the
        packed queue behind them, or behind their leader if none; x (m) and speed (m/s)."""
        M = held.shape[1]
        position = torch.arange(M, device=held.device).expand_as(held)
        packed_behind = torch.zeros_like(held)         # the vehicle just behind follows closely
        packed_behind[:, 1:] = has_leader[:, :-1] & (gap[:, :-1] < self.packed_gap)
        queue_start = torch.where(packed_behind, torch.zeros_like(position), position).cummax(dim=1).values
        leader = (position + 1).clamp(max=M - 1)
        follower = (position - 1).clamp(min=0)
        anchor = torch.where(queue_start < position, queue_start,
                             torch.where(has_leader, leader, follower))
        ax, av, alen = (s[k].gather(1, anchor) for k in ("x", "v", "length"))
        # Never ahead of where the recording lets it enter: a far leader that only makes it brake keeps
        # it at its entry, slowed to the leader's speed.
        place_x = torch.minimum(ax - (alen + s["length"]) / 2 - (self.min_gap + av * self.time_headway), s["x"])
        place_v = torch.minimum(s["v"], av)
        return torch.where(held, place_x, s["x"]), torch.where(held, place_v, s["v"])
