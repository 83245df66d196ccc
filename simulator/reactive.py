"""Reactive traffic: recorded vehicles that brake for the ego (intelligent driver model).

Replay cannot react: the car behind the ego drives through it. Here each
recorded vehicle keeps its recorded lateral path (y, heading and lane as
recorded at the current frame), but its position along the road is integrated
per episode with

    a = min(a_track, a_idm)
    a_track = a_recorded + (v_recorded - v) / tau            (follow the recording)
    a_idm   = a_max [1 - (v / v0)^4 - (s*(v, dv) / s)^2]     (IDM, Treiber et al. 2000)
    s*      = s0 + v T + v dv / (2 sqrt(a_max b))

with s the bumper-to-bumper gap to the nearest vehicle ahead in the same lane
(the ego included) and v0 the recorded speed plus a margin. With nobody in the
way a vehicle reproduces its recording; once the ego slows it down, the
vehicles behind it are slowed in turn through their own leaders.

State is kept for every (slot, recorded vehicle): (B, V) tensors. A vehicle
takes its recorded position and speed when it first appears, and at every
frame up to the end of its slot's context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppuu.simulator.dynamics import EgoState
from ppuu.simulator.traffic import TrafficLog, VehicleSlice


@dataclass
class IDMConfig:
    """Intelligent-driver-model parameters (SI units; values of Treiber & Kesting for city/highway traffic)."""

    max_acceleration: float = 1.5     #: a_max, m/s^2
    comfortable_braking: float = 2.0  #: b, m/s^2
    max_braking: float = 9.0          #: hard limit on deceleration, m/s^2
    time_headway: float = 1.0         #: T, s
    min_gap: float = 2.0              #: s0, m
    speed_margin: float = 2.0         #: v0 = recorded speed + this, m/s
    tracking_time: float = 1.0        #: tau, s: how fast a vehicle returns to its recorded speed


def idm_acceleration(speed: Tensor, desired: Tensor, gap: Tensor, closing: Tensor, config: IDMConfig) -> Tensor:
    """IDM acceleration (m/s^2), elementwise.

    Args:
        speed: m/s, >= 0.
        desired: v0, m/s, > 0.
        gap: m, bumper to bumper to the leader (inf without one).
        closing: m/s, own speed minus the leader's.
    """
    a, b = config.max_acceleration, config.comfortable_braking
    s_star = config.min_gap + (speed * config.time_headway + speed * closing / (2 * (a * b) ** 0.5)).clamp(min=0)
    interaction = (s_star / gap.clamp(min=0.1)) ** 2
    return a * (1 - (speed / desired) ** 4 - interaction)


class ReactiveTraffic:
    """Per-episode longitudinal state of every recorded vehicle, advanced by the IDM.

    Args:
        log: the scene's :class:`~ppuu.simulator.traffic.TrafficLog`.
        config: :class:`IDMConfig`.
        dt: s per step.
        lane_widths: (K,) main-road lane widths from the left, m.
    """

    def __init__(self, log: TrafficLog, config: IDMConfig, dt: float, lane_widths: Tensor):
        self.log, self.config, self.dt = log, config, dt
        # Lane boundaries from the left edge (y = 0) to the right, m: lane k lies in (edges[k], edges[k-1]].
        self.lane_edges = -torch.cumsum(lane_widths.to(log.centre), 0)
        # Sort key (lane, x) as one number: lane * span + x, span far beyond any |x| (m); computed
        # once here, not over every recorded row at every step.
        self._lane_key_span = float(log.centre[:, 0].abs().max()) * 4 + 1e4
        self.num_vehicles = len(log.vehicle_ids)
        self.x = torch.zeros(0, self.num_vehicles, dtype=log.centre.dtype, device=log.device)
        self.v = torch.zeros_like(self.x)
        self.known = torch.zeros(0, self.num_vehicles, dtype=torch.bool, device=log.device)
        self.sync_until = torch.zeros(0, dtype=torch.int64, device=log.device)

    def reset(self, slots: Tensor, context_end: Tensor) -> None:
        """Forget the slots' states; they follow the recording up to frame ``context_end`` (S,)."""
        needed = int(slots.max()) + 1 if len(slots) else 0
        if needed > self.x.shape[0]:
            grow = needed - self.x.shape[0]
            self.x = torch.cat([self.x, self.x.new_zeros(grow, self.num_vehicles)])
            self.v = torch.cat([self.v, self.v.new_zeros(grow, self.num_vehicles)])
            self.known = torch.cat([self.known, self.known.new_zeros(grow, self.num_vehicles)])
            self.sync_until = torch.cat([self.sync_until, self.sync_until.new_zeros(grow)])
        self.known[slots] = False
        self.sync_until[slots] = context_end

    def at(self, slots: Tensor, frame: Tensor) -> VehicleSlice:
        """Vehicles present at the slots' frames (S,), with reactive positions and speeds along x."""
        traffic = self.log.at(frame)
        index = self.log.vehicle_index(traffic.vehicle_id, check=False)             # (S, N)
        rows = slots[:, None].expand_as(index)
        take_recorded = traffic.mask & (~self.known[rows, index] | (frame <= self.sync_until[slots])[:, None])
        self.x[rows[take_recorded], index[take_recorded]] = traffic.centre[..., 0][take_recorded]
        self.v[rows[take_recorded], index[take_recorded]] = traffic.speed[take_recorded]
        self.known[rows[take_recorded], index[take_recorded]] = True
        x = torch.where(traffic.mask, self.x[rows, index], traffic.centre[..., 0])
        traffic.centre = torch.stack([x, traffic.centre[..., 1]], dim=-1)
        traffic.speed = torch.where(traffic.mask, self.v[rows, index], traffic.speed)
        return traffic

    def step(self, running: Tensor, frame: Tensor, ego: EgoState, ego_size: Tensor) -> None:
        """Advance every slot's vehicles from ``frame - 1`` to ``frame`` (B,); only running slots move."""
        slots = torch.arange(len(frame), device=frame.device)
        prev = self.at(slots, frame - 1)
        index = self.log.vehicle_index(prev.vehicle_id, check=False)
        lane_of_ego = self._lane_of(ego.position[:, 1])                               # (B,)
        # Leaders: sort vehicles and the ego by (lane, x); the leader is the next entry in the same lane.
        x = torch.cat([prev.centre[..., 0], ego.position[:, :1]], dim=1)                # (B, N + 1)
        lane = torch.cat([prev.lane, lane_of_ego[:, None]], dim=1)
        length = torch.cat([prev.size[..., 0], ego_size[:, :1]], dim=1)
        speed = torch.cat([prev.speed, ego.speed[:, None]], dim=1)
        present = torch.cat([prev.mask, torch.ones_like(prev.mask[:, :1])], dim=1)
        key = torch.where(present, lane.to(x.dtype) * self._lane_key_span + x, torch.full_like(x, float("inf")))
        order = key.argsort(dim=1)
        sx, slane, slen, sspeed, spresent = (t.gather(1, order) for t in (x, lane, length, speed, present))
        has_leader = torch.zeros_like(spresent)
        has_leader[:, :-1] = spresent[:, 1:] & spresent[:, :-1] & (slane[:, 1:] == slane[:, :-1])
        gap = torch.full_like(sx, float("inf"))
        gap[:, :-1] = sx[:, 1:] - sx[:, :-1] - (slen[:, 1:] + slen[:, :-1]) / 2
        closing = torch.zeros_like(sx)
        closing[:, :-1] = sspeed[:, :-1] - sspeed[:, 1:]
        gap = torch.where(has_leader, gap, torch.full_like(gap, float("inf")))
        closing = torch.where(has_leader, closing, torch.zeros_like(closing))
        # Back to the vehicles' own order (drop the ego column).
        unsort = order.argsort(dim=1)
        gap = gap.gather(1, unsort)[:, :-1]
        closing = closing.gather(1, unsort)[:, :-1]

        cfg = self.config
        v = prev.speed
        rec_v = self.log.speed[prev.rows]
        rec_a = self.log.acceleration[prev.rows]
        a_track = rec_a + (rec_v - v) / cfg.tracking_time
        a_idm = idm_acceleration(v, rec_v + cfg.speed_margin, gap, closing, cfg)
        a = torch.minimum(a_track, a_idm).clamp(min=-cfg.max_braking)
        new_v = (v + a * self.dt).clamp(min=0)
        new_x = prev.centre[..., 0] + (v + new_v) / 2 * self.dt
        move = prev.mask & running[:, None]
        rows = slots[:, None].expand_as(index)
        self.x[rows[move], index[move]] = new_x[move]
        self.v[rows[move], index[move]] = new_v[move]

    def _lane_of(self, y: Tensor) -> Tensor:
        """Lane (1-based, NGSIM numbering) containing lateral position y (m); right of the road: K + 1."""
        return torch.searchsorted(-self.lane_edges, -y.contiguous()) + 1
