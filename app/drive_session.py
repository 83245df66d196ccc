"""The driving view's simulation: one episode at a time, a driver chosen at run time (no pygame here).

A :class:`DriveSession` steps a one-slot :class:`~ppuu.simulator.sim.BatchedSimulator` with the
action of the current **mode**:

* ``replay``: the recording plays. The ego is replaced by its recording: the ``human``
  controller of :mod:`ppuu.simulator.evaluate` applies the replaced vehicle's recorded actions
  (the ego keeps close to its recorded path; traffic is exactly the recording in replay traffic).
* ``keyboard``: a person drives: :class:`KeyboardDriver` turns held keys into smooth
  (acceleration m/s^2, curvature 1/m) inside the simulator's :class:`~ppuu.simulator.dynamics.ActionBounds`.
* ``policy``: a trained policy (:func:`ppuu.planner.controller.make_controller`).
* ``mpc``: the MPC planner (:class:`ppuu.planner.mpc.MPCController`).

The **ghost** (the recorded vehicle the ego replaced, at the current frame) is not a driver but
an overlay, available in every mode (:meth:`DriveSession.ghost`). Traffic is ``replay`` or
``reactive``; each has its own simulator, built on first use. The session keeps the last seconds
of costs and actions for the plots, and, when a world model is loaded, futures sampled from it
(:mod:`ppuu.app.drive_model`) refreshed every few steps.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ppuu.data.scene import Scene
from ppuu.simulator.dynamics import ActionBounds
from ppuu.simulator.episodes import OUTCOMES
from ppuu.simulator.evaluate import human, needs_grad
from ppuu.simulator.sim import BatchedSimulator, SimConfig, StepResult

MODES = ("replay", "keyboard", "policy", "mpc")
"""Drivers, in the order of the number keys 1-4."""

TRAFFIC = ("replay", "reactive")

# Vehicle kinds of :meth:`DriveSession.vehicles` (the colour of each in the view).
RECORDED, REACTIVE = 0, 1
"""Traffic kinds: on its recording, or driven by the reactive (IDM) law off its recording."""
CAR, TRUCK, MOTORCYCLE = 2, 3, 1
"""NGSIM vehicle classes (``vehicles.parquet``'s ``vclass``)."""


# ---------------------------------------------------------------------------------------------- keyboard
@dataclass
class KeyboardDriver:
    """Held arrow keys -> a smooth action within the simulator's bounds.

    The acceleration moves towards its target (``bounds.acceleration_max`` while the up key is
    held, ``bounds.acceleration_min`` while the down key is, 0 otherwise) at ``jerk`` m/s^3;
    the curvature moves towards ``+-steer`` at a rate that reaches full steer in ``steer_time`` s,
    and back to 0 when no steering key is held. Full steer is the curvature that gives
    ``lateral_acceleration`` m/s^2 at the current speed (so a tap steers as gently at 30 m/s as at
    5 m/s), never beyond the bounds.

    Attributes:
        acceleration: m/s^2, the current command.
        curvature: 1/m, the current command (positive turns left).
    """

    bounds: ActionBounds = dataclasses.field(default_factory=ActionBounds)
    jerk: float = 20.0
    lateral_acceleration: float = 2.0
    steer_time: float = 0.4
    acceleration: float = 0.0
    curvature: float = 0.0

    def reset(self) -> None:
        self.acceleration = self.curvature = 0.0

    def full_steer(self, speed: float) -> float:
        """1/m, the curvature of full steer at ``speed`` m/s."""
        b = self.bounds
        return min(b.curvature_max, -b.curvature_min, self.lateral_acceleration / max(speed, 3.0) ** 2)

    def update(self, up: bool, down: bool, left: bool, right: bool, speed: float, dt: float) -> tuple[float, float]:
        """Advance the commands by ``dt`` s under the held keys; returns (acceleration m/s^2, curvature 1/m)."""
        b = self.bounds
        target_a = b.acceleration_max * (up and not down) + b.acceleration_min * (down and not up)
        self.acceleration = _towards(self.acceleration, target_a, self.jerk * dt)
        steer = self.full_steer(speed)
        target_c = steer * ((left and not right) - (right and not left))
        self.curvature = _towards(self.curvature, target_c, steer / self.steer_time * dt)
        self.acceleration = float(np.clip(self.acceleration, b.acceleration_min, b.acceleration_max))
        self.curvature = float(np.clip(self.curvature, b.curvature_min, b.curvature_max))
        return self.acceleration, self.curvature


def _towards(value: float, target: float, rate: float) -> float:
    return value + float(np.clip(target - value, -rate, rate))


# ---------------------------------------------------------------------------------------------- the session
@dataclass
class Ghost:
    """The recorded vehicle the ego replaced, at the ego's frame: centre (2,) m, heading rad, size (2,) m."""

    centre: np.ndarray
    heading: float
    size: np.ndarray


@dataclass
class Vehicles:
    """The other vehicles of the current frame (N present): centre (N, 2) m, heading (N,) rad, size (N, 2) m,
    kind (N,) RECORDED or REACTIVE, vclass (N,) NGSIM class."""

    centre: np.ndarray
    heading: np.ndarray
    size: np.ndarray
    kind: np.ndarray
    vclass: np.ndarray


class DriveSession:
    """One ego car, one episode at a time, driven by the current mode (module docstring).

    Args:
        scene: the scene.
        config: the simulator's settings (those every loaded controller needs: see
            :func:`merge_configs`); its ``traffic`` is the starting traffic.
        split: episodes come from this split ("train", "val", "test", or None for all).
        episode: index of the first episode in the split's list.
        controllers: mode name -> closed-loop controller for "policy" and "mpc" (the others are built in).
        mode: the starting mode.
        futures: a :class:`~ppuu.app.drive_model.ModelFutures` (or None: no model panel).
        futures_every: steps between two samplings of futures.
        futures_async: sample futures on a worker thread (a window stays smooth while the model runs; they
            appear a few frames later); False samples them within :meth:`step` (headless, tests).
        plot_seconds: s of costs kept for the plots.
        device: the simulator's device.
    """

    def __init__(self, scene: Scene, config: SimConfig | None = None, split: str | None = "test", episode: int = 0,
                 controllers: dict | None = None, mode: str = "replay", futures=None, futures_every: int = 5,
                 futures_async: bool = False, plot_seconds: float = 10.0, device: str = "cpu"):
        self.scene = scene
        self.base_config = config or SimConfig()
        self.split, self.device = split, device
        self.controllers = {"replay": human, **(controllers or {})}
        unknown = set(self.controllers) - set(MODES)
        if unknown:
            raise ValueError(f"controllers for unknown modes {sorted(unknown)}: expected {MODES}")
        self.keyboard = KeyboardDriver(self.base_config.bounds)
        self.keys = {"up": False, "down": False, "left": False, "right": False}
        self.futures_model = futures
        self.futures_every = max(1, int(futures_every))
        self.futures = None            # the latest sampled Futures
        self._executor = None
        self._pending = None           # (episode key, concurrent.futures.Future) being sampled
        if futures is not None and futures_async:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ppuu-futures")
        self.plan = None               # the MPC plan's predicted ego positions (H, 2) m, when MPC drives
        self.traffic = self.base_config.traffic
        self._sims: dict[str, BatchedSimulator] = {}
        self._vehicles = None          # (key, Vehicles) of the last frame drawn
        self._starts = 0               # episodes started (tells stale futures from fresh ones)
        self.episodes = self.sim.episode_vehicles(split)
        if len(self.episodes) == 0:
            raise ValueError(f"scene {scene.meta.name!r} has no episode in split {split!r} on course {self.sim.course}")
        vehicles = scene.vehicles
        self._vclass = np.full(int(vehicles["vehicle_id"].max()) + 1, CAR, dtype=np.int64)
        self._vclass[vehicles["vehicle_id"].to_numpy()] = vehicles["vclass"].to_numpy()
        self.episode = int(episode) % len(self.episodes)
        self.mode = "replay"
        self.history: collections.deque = collections.deque(maxlen=max(1, round(plot_seconds / self.sim.dt)))
        self.result: StepResult | None = None
        try:
            self.restart()
            self.set_mode(mode)
        except BaseException:
            self.close()                # no worker thread left behind a session that failed to start
            raise

    # ------------------------------------------------------------------ simulators and episodes
    @property
    def sim(self) -> BatchedSimulator:
        """The simulator of the current traffic (built on first use)."""
        if self.traffic not in self._sims:
            config = dataclasses.replace(self.base_config, traffic=self.traffic)
            self._sims[self.traffic] = BatchedSimulator(self.scene, config, device=self.device)
        return self._sims[self.traffic]

    @property
    def vehicle_id(self) -> int:
        return int(self.episodes[self.episode])

    def restart(self) -> None:
        """Start the current episode again (the ego replaces ``vehicle_id``, after its context)."""
        self._starts += 1
        self.observation = self.sim.reset([self.vehicle_id])
        self.result = None
        self.history.clear()
        self.keyboard.reset()
        self.futures = self.plan = None
        self._start_controller()
        self._refresh_futures()

    def next_episode(self, offset: int = 1) -> None:
        """Move ``offset`` episodes along the split's list (wrapping) and start it."""
        self.episode = (self.episode + int(offset)) % len(self.episodes)
        self.restart()

    def set_traffic(self, traffic: str) -> None:
        """Switch to ``replay`` or ``reactive`` traffic (restarts the episode)."""
        if traffic not in TRAFFIC:
            raise ValueError(f"traffic {traffic!r}: expected one of {TRAFFIC}")
        self.traffic = traffic
        self.restart()

    def set_mode(self, mode: str) -> None:
        """Hand the wheel to another driver, mid-episode."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {MODES}")
        if mode not in self.controllers and mode != "keyboard":
            needs = {"policy": "--policy RUN", "mpc": "--mpc WORLD_MODEL"}[mode]
            raise ValueError(f"{mode} mode needs a {mode} checkpoint: start with {needs}")
        self.mode = mode
        self.keyboard.reset()
        if mode != "mpc":
            self.plan = None
        self._start_controller()

    def _start_controller(self) -> None:
        """Controllers with per-slot state (anchors, warm-started plans) start afresh from here."""
        controller = self.controllers.get(self.mode)
        if hasattr(controller, "on_episode_start"):
            controller.on_episode_start(torch.zeros(1, dtype=torch.int64, device=self.sim.device), self.sim)

    # ------------------------------------------------------------------ stepping
    @property
    def done(self) -> bool:
        return bool(self.sim.done[0])

    @property
    def outcome(self) -> str:
        return OUTCOMES[int(self.sim.outcome[0])]

    def action(self) -> Tensor:
        """(1, 2) the current driver's action (acceleration m/s^2, curvature 1/m) for the next step."""
        sim = self.sim
        if self.mode == "keyboard":
            a, c = self.keyboard.update(self.keys["up"], self.keys["down"], self.keys["left"], self.keys["right"],
                                        float(sim.ego.speed[0]), sim.dt)
            return torch.tensor([[a, c]], device=sim.device, dtype=sim.dtype)
        controller = self.controllers[self.mode]
        with torch.enable_grad() if needs_grad(controller) else torch.no_grad():
            return controller(self.observation, sim).detach()

    def step(self) -> StepResult | None:
        """One simulator step with the current driver; None once the episode is over."""
        if self.done:
            return None
        sim = self.sim
        pose = (sim.ego.position[0].clone(), sim.ego.heading[0].clone())
        action = self.action()
        result = sim.step(action)
        self.observation, self.result = result.observation, result
        if self.mode == "mpc":
            self._update_plan(*pose)
        self.poll_futures()
        if self.futures_model is not None and int(sim.steps[0]) % self.futures_every == 0:
            self._refresh_futures()
        costs = result.costs
        self.history.append((float(sim.steps[0]) * sim.dt, float(costs.proximity[0]), float(costs.lane[0]),
                             float(costs.offroad[0]), self.futures.uncertainty if self.futures is not None else np.nan,
                             float(result.action[0, 0]), float(result.action[0, 1])))
        return result

    def _refresh_futures(self) -> None:
        if self.futures_model is None or self.done:
            return
        last = self.result.action[0] if self.result is not None else None
        context = self.futures_model.context(self.observation, self.sim, int(self.sim.steps[0]), last)
        if self._executor is None:
            self.futures = self.futures_model.predict(context)
        elif self._pending is None:             # one sampling at a time; a busy worker skips this one
            self._pending = (self._episode_key(), self._executor.submit(self.futures_model.predict, context))

    def poll_futures(self) -> None:
        """Take the worker's futures when they are ready (and still of this episode)."""
        if self._pending is not None and self._pending[1].done():
            key, job = self._pending
            self._pending = None
            if key == self._episode_key():
                self.futures = job.result()

    def _episode_key(self) -> tuple:
        return (self.traffic, self.vehicle_id, self._starts)

    def close(self) -> None:
        """Stop the worker thread (if any)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _update_plan(self, position: Tensor, unit: Tensor) -> None:
        """The MPC plan's predicted ego positions (H, 2) m, from the decision just taken at pose (position, unit)."""
        controller = self.controllers["mpc"]
        decision = getattr(controller, "last", None)
        if decision is None or self.futures_model is None:
            return
        if decision is not getattr(self, "_last_decision", None):
            self._last_decision = decision
            self.plan = self.futures_model.to_world(decision.states[:1], position, unit)[0]

    # ------------------------------------------------------------------ what the view draws
    def ego(self) -> tuple[np.ndarray, float, np.ndarray]:
        """(centre (2,) m, heading rad, size (2,) m) of the ego."""
        sim = self.sim
        unit = sim.ego.heading[0].cpu().numpy()
        return sim.ego.position[0].cpu().numpy().astype(np.float64), float(np.arctan2(unit[1], unit[0])), \
            sim.size[0].cpu().numpy().astype(np.float64)

    def vehicles(self) -> Vehicles:
        """The other vehicles present at the ego's frame (the whole section), with their kinds and classes."""
        sim = self.sim
        key = (self.traffic, self.vehicle_id, int(sim.steps[0]), id(self.observation))
        if self._vehicles is not None and self._vehicles[0] == key:
            return self._vehicles[1]
        slot = torch.zeros(1, dtype=torch.int64, device=sim.device)
        others = sim.others(slot, sim.frame[:1])
        mask = others.mask[0]
        ids = others.vehicle_id[0][mask].cpu().numpy()
        kind = np.full(len(ids), RECORDED, dtype=np.int64)
        if sim.reactive is not None:
            index = sim.log.vehicle_index(others.vehicle_id[0][mask], check=False)
            kind[sim.reactive.free[0, index].cpu().numpy()] = REACTIVE
        vehicles = Vehicles(others.centre[0][mask].cpu().numpy().astype(np.float64),
                            others.heading[0][mask].cpu().numpy().astype(np.float64),
                            others.size[0][mask].cpu().numpy().astype(np.float64), kind,
                            self._vclass[np.clip(ids, 0, len(self._vclass) - 1)])
        self._vehicles = (key, vehicles)
        return vehicles

    def ghost(self) -> Ghost | None:
        """The replaced vehicle's recorded pose at the ego's frame; None once its recording has ended."""
        sim = self.sim
        frame = int(sim.frame[0])
        if frame > int(sim.last_recorded[0]):
            return None
        row = sim.log.rows_of(sim.vehicle_id[:1], sim.frame[:1])[0]
        return Ghost(sim.log.centre[row].cpu().numpy().astype(np.float64), float(sim.log.heading[row]),
                     sim.log.size[row].cpu().numpy().astype(np.float64))

    def observation_image(self) -> np.ndarray:
        """(4, H, W) float in [0, 1], the newest egocentric observation (lanes, vehicles, off-road, ego)."""
        return self.observation.image[0, -1].cpu().numpy()

    def hud(self) -> dict:
        """Numbers of the heads-up display (SI units)."""
        sim = self.sim
        action = self.result.action[0].tolist() if self.result is not None else [0.0, 0.0]
        return {"mode": self.mode, "traffic": self.traffic, "vehicle": self.vehicle_id, "episode": self.episode,
                "episodes": len(self.episodes), "speed": float(sim.ego.speed[0]), "acceleration": action[0],
                "curvature": action[1], "time": float(sim.steps[0]) * sim.dt, "distance": float(sim.distance[0]),
                "outcome": self.outcome}

    def plot_data(self) -> np.ndarray:
        """(T, 7) the last seconds: time s, proximity, lane, off-road, uncertainty (NaN without a model),
        acceleration m/s^2, curvature 1/m."""
        return np.array(self.history, dtype=np.float64).reshape(-1, 7)


def merge_configs(base: SimConfig, configs: list[SimConfig]) -> SimConfig:
    """One simulator for every driver: ``base`` with the longest history and context any of ``configs`` needs,
    traffic kept if any keeps it, and the one raster the egocentric drivers read.

    Raises:
        ValueError: two drivers read different rasters.
    """
    merged = base
    rasters = {c.raster for c in configs if c.raster != base.raster}
    if len(rasters) > 1:
        raise ValueError(f"the policy and the planner read different rasters ({sorted(map(str, rasters))}): "
                         "load drivers of one kind of world model")
    history = max([base.history] + [c.history for c in configs])
    context = max([base.context_steps] + [c.context_steps for c in configs])
    merged = dataclasses.replace(merged, history=history, context_steps=context,
                                 keep_traffic=base.keep_traffic or any(c.keep_traffic for c in configs))
    if rasters:
        merged = dataclasses.replace(merged, raster=rasters.pop())
    return merged
