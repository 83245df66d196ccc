"""Closed-loop evaluation: every episode of a split at once, any controller, a table at the end.

All episodes of the split run in one batch (or in chunks of ``batch_size``), so evaluating a
whole test split costs a few hundred batched steps instead of hours of single episodes.
Results are judged on a course (:mod:`ppuu.simulator.episodes`: ``i80-reference`` by default
on I-80, as SPEC §7; ``full`` elsewhere) and every table states it.

Controllers
    A controller is any callable ``controller(observation, sim) -> actions`` with actions
    (B, 2) = (acceleration m/s^2, curvature 1/m), given the batch's
    :class:`~ppuu.simulator.sim.Observation` and the :class:`~ppuu.simulator.sim.BatchedSimulator`.
    Two optional attributes extend the protocol:

    * ``needs_grad`` (bool, default False). The loop runs the simulator without autograd;
      a controller with ``needs_grad = True`` is called with gradients enabled (an MPC
      planner back-propagates through its world model inside the call). Returned actions
      are detached before they reach the simulator.
    * ``on_episode_start(slots, sim)``: called after a reset with the (S,) int64 slots that
      started a new episode (all of them when a batch starts). Reset per-slot state there,
      e.g. a warm-started plan. It is registered on the simulator
      (:meth:`~ppuu.simulator.sim.BatchedSimulator.add_episode_start_hook`), so it hears every
      reset while the loop runs; to use the same controller with the gym vector env, register
      it yourself: ``envs.sim.add_episode_start_hook(controller.on_episode_start)`` (autoreset
      slots included).

    A tiny example (a planner that keeps one plan per slot and warm-starts it)::

        class Planner:
            needs_grad = True

            def __init__(self, horizon=30):
                self.horizon, self.plan = horizon, None

            def on_episode_start(self, slots, sim):
                if self.plan is None or len(self.plan) != sim.batch_size:
                    self.plan = torch.zeros(sim.batch_size, self.horizon, 2)
                self.plan[slots] = 0                          # a new episode: a fresh plan

            def __call__(self, observation, sim):
                plan = self.plan.clone().requires_grad_()     # gradients are on in here
                cost = (plan ** 2).sum()                      # ... predicted costs in reality
                cost.backward()
                plan = (plan - 0.1 * plan.grad).detach()
                self.plan = torch.cat([plan[:, 1:], plan[:, -1:]], dim=1)   # shift for next step
                return plan[:, 0]

        table = evaluate(scene, Planner(), split="test", seed=0)

    Built in: ``human`` (the replaced vehicle's own recorded actions: the fidelity check and
    the "human" row of SPEC §7), ``no_action`` (zero acceleration and curvature: the car
    keeps its speed and heading) and ``constant:ACC,CURV`` (a fixed acceleration m/s^2 and
    curvature 1/m; :func:`controller_named`).

Results
    :func:`evaluate` returns one row per episode (metrics of
    :meth:`~ppuu.simulator.sim.BatchedSimulator.metrics`, plus ``course`` and ``seed``);
    concatenate the tables of several seeds and :func:`summarise` / :func:`markdown_summary`
    report mean +- std over seeds (population std: 0 for a single seed or a deterministic
    controller). Pass a :class:`Trace` to record every step (actions, poses, costs) for
    videos; without one nothing is recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ppuu.data.report import markdown_table
from ppuu.data.scene import Scene
from ppuu.simulator.episodes import ARRIVED, COLLISION, OFFROAD, OUT_OF_DATA, OUTCOMES, Course
from ppuu.simulator.sim import BatchedSimulator, Observation, SimConfig, StepResult

Controller = Callable[[Observation, BatchedSimulator], Tensor]
"""``(observation, sim) -> (B, 2)`` actions; optional ``needs_grad`` and ``on_episode_start`` (module docstring)."""


def human(observation: Observation, sim: BatchedSimulator) -> Tensor:
    """The replaced vehicles' own recorded actions, (B, 2)."""
    return sim.recorded_actions()


def no_action(observation: Observation, sim: BatchedSimulator) -> Tensor:
    """Zero acceleration and curvature, (B, 2): keep speed and heading."""
    return torch.zeros(sim.batch_size, 2, device=sim.device, dtype=sim.dtype)


CONTROLLERS: dict[str, Controller] = {"human": human, "no_action": no_action}
CONSTANT = "constant:"
"""Prefix of a fixed-action controller's name: ``constant:ACC,CURV`` (m/s^2, 1/m)."""


def constant(acceleration: float, curvature: float) -> Controller:
    """A controller that always takes ``(acceleration m/s^2, curvature 1/m)``: no action with a fixed
    push, to check whether a policy's small, steady actions are a bias or depend on the context."""
    def controller(observation: Observation, sim: BatchedSimulator) -> Tensor:
        return torch.tensor([[acceleration, curvature]], device=sim.device, dtype=sim.dtype).repeat(sim.batch_size, 1)
    return controller


def controller_named(name: str) -> Controller:
    """The built-in controller called ``name``: "human", "no_action" or "constant:ACC,CURV".

    Raises:
        ValueError: an unknown name, or a constant that is not two finite numbers.
    """
    if name in CONTROLLERS:
        return CONTROLLERS[name]
    if name.startswith(CONSTANT):
        try:
            acceleration, curvature = (float(v) for v in name[len(CONSTANT):].split(","))
        except ValueError:
            acceleration = curvature = float("nan")
        if not (math.isfinite(acceleration) and math.isfinite(curvature)):
            raise ValueError(f"controller {name!r}: expected {CONSTANT}ACC,CURV with two finite numbers "
                             f"(m/s^2, 1/m), e.g. {CONSTANT}0,-0.001")
        return constant(acceleration, curvature)
    raise ValueError(f"unknown controller {name!r}; built-in: {', '.join(CONTROLLERS)}, {CONSTANT}ACC,CURV")


def needs_grad(controller: Controller) -> bool:
    """Whether the loop calls the controller with gradients enabled (its ``needs_grad``, default False)."""
    return bool(getattr(controller, "needs_grad", False))


class Trace:
    """A per-step record of closed-loop episodes (for videos and comfort analysis).

    Off unless passed to :func:`run_episodes` or :func:`evaluate`, which fill it. Afterwards
    :meth:`tensors` holds, for E episodes (in the order of the evaluation table) and T steps
    (the longest episode's), on the CPU:

    * ``vehicle_id`` (E,) int64;
    * ``driven`` (T, E) bool: the episode was running before this step (after its end, the
      other fields repeat its final values);
    * ``frame`` (T, E) int64: the recording's frame after the step (replayed traffic is
      ``sim.log.at(frame)``);
    * ``action`` (T, E, 2): (acceleration m/s^2, curvature 1/m) applied, after clipping;
    * ``position`` (T, E, 2) m, ``heading`` (T, E) rad, ``speed`` (T, E) m/s: the ego after the step;
    * ``proximity``, ``lane``, ``offroad`` (T, E): the costs of the new observation;
    * ``outcome`` (T, E) int64 codes of :mod:`ppuu.simulator.episodes`.

    :meth:`to_dataframe` gives the same as a long table, one row per driven step.
    """

    FIELDS = ("frame", "action", "position", "heading", "speed", "proximity", "lane", "offroad", "outcome")

    def __init__(self):
        self._batches: list[dict[str, Tensor]] = []
        self._steps: list[dict[str, Tensor]] = []
        self._vehicle_id: Tensor | None = None

    def begin(self, sim: BatchedSimulator) -> None:
        """Start recording a new batch (after ``sim.reset``)."""
        self._vehicle_id = sim.vehicle_id.clone()
        self._steps = []

    def record(self, sim: BatchedSimulator, result: StepResult, driven: Tensor) -> None:
        """Record one step: ``driven`` (B,) bool, the slots that were running before it."""
        unit = sim.ego.heading
        self._steps.append({
            "driven": driven.clone(), "frame": sim.frame.clone(), "action": result.action.clone(),
            "position": sim.ego.position.clone(), "heading": torch.atan2(unit[:, 1], unit[:, 0]),
            "speed": sim.ego.speed.clone(), "proximity": result.costs.proximity, "lane": result.costs.lane,
            "offroad": result.costs.offroad, "outcome": result.outcome,
        })

    def end(self) -> None:
        """Close the batch: stack its steps to (T, B, ...) on the CPU."""
        if self._vehicle_id is None:
            raise RuntimeError("Trace.end() without begin()")
        batch = {"vehicle_id": self._vehicle_id.cpu()}
        for key in ("driven", *self.FIELDS):
            batch[key] = torch.stack([s[key] for s in self._steps]).cpu() if self._steps else torch.empty(0)
        self._batches.append(batch)
        self._vehicle_id, self._steps = None, []

    def tensors(self) -> dict[str, Tensor]:
        """Every recorded batch, joined along the episode axis (see the class docstring)."""
        if not self._batches:
            raise RuntimeError("nothing recorded: pass the Trace to evaluate() or run_episodes() first")
        T = max(len(b["driven"]) for b in self._batches)
        out: dict[str, list[Tensor]] = {key: [] for key in ("vehicle_id", "driven", *self.FIELDS)}
        for b in self._batches:
            out["vehicle_id"].append(b["vehicle_id"])
            pad = T - len(b["driven"])
            for key in ("driven", *self.FIELDS):
                value = b[key]
                if pad:     # shorter batch: repeat its final values, not driven
                    last = torch.zeros_like(value[-1:]) if key == "driven" else value[-1:]
                    value = torch.cat([value, last.expand(pad, *value.shape[1:])])
                out[key].append(value)
        return {key: torch.cat(parts, dim=0 if key == "vehicle_id" else 1) for key, parts in out.items()}

    def to_dataframe(self) -> pd.DataFrame:
        """One row per driven step: vehicle_id, step (1 = the first action), frame, acceleration,
        curvature, x, y, heading, speed, proximity_cost, lane_cost, offroad_cost, outcome, outcome_name."""
        t = self.tensors()
        step, episode = t["driven"].nonzero(as_tuple=True)
        table = pd.DataFrame({
            "vehicle_id": t["vehicle_id"][episode].numpy(), "step": step.numpy() + 1,
            "frame": t["frame"][step, episode].numpy(),
            "acceleration": t["action"][step, episode, 0].numpy(), "curvature": t["action"][step, episode, 1].numpy(),
            "x": t["position"][step, episode, 0].numpy(), "y": t["position"][step, episode, 1].numpy(),
            "heading": t["heading"][step, episode].numpy(), "speed": t["speed"][step, episode].numpy(),
            "proximity_cost": t["proximity"][step, episode].numpy(), "lane_cost": t["lane"][step, episode].numpy(),
            "offroad_cost": t["offroad"][step, episode].numpy(), "outcome": t["outcome"][step, episode].numpy(),
        })
        table["outcome_name"] = np.asarray(OUTCOMES, dtype=object)[table["outcome"].to_numpy()]
        return table.sort_values(["vehicle_id", "step"], kind="stable").reset_index(drop=True)


def run_episodes(sim: BatchedSimulator, vehicle_ids: np.ndarray, controller: Controller,
                 progress: bool = True, max_steps: int | None = None, trace: Trace | None = None) -> pd.DataFrame:
    """Run one batch of episodes to the end; one row of metrics per episode.

    Args:
        sim: the simulator (its batch is replaced).
        vehicle_ids: (B,) recorded vehicles to replace.
        controller: see the module docstring (``needs_grad``, ``on_episode_start`` honoured).
        progress: show a progress bar of finished episodes.
        max_steps: stop after this many steps (episodes still running keep outcome "running").
        trace: a :class:`Trace` to record every step into, or None (nothing recorded).
    """
    hook = getattr(controller, "on_episode_start", None)
    handle = sim.add_episode_start_hook(hook) if hook is not None else None
    grad = needs_grad(controller)
    bar = tqdm(total=len(vehicle_ids), desc="episodes", unit="ep", disable=not progress, leave=False)
    steps = 0
    try:
        with torch.no_grad():
            observation = sim.reset(vehicle_ids)
            if trace is not None:
                trace.begin(sim)
            while not bool(sim.done.all()) and (max_steps is None or steps < max_steps):
                with torch.enable_grad() if grad else contextlib.nullcontext():
                    action = controller(observation, sim)
                if isinstance(action, Tensor):
                    action = action.detach()
                driven = ~sim.done if trace is not None else None
                result = sim.step(action)
                if trace is not None:
                    trace.record(sim, result, driven)
                observation = result.observation
                bar.update(int(result.just_done.sum()))
                steps += 1
            if trace is not None:
                trace.end()
    finally:
        bar.close()
        if handle is not None:
            handle.remove()
    metrics = {k: v.detach().cpu().numpy() for k, v in sim.metrics().items()}
    table = pd.DataFrame(metrics)
    table.insert(1, "outcome_name", [OUTCOMES[o] for o in table["outcome"]])
    return table


def seed_everything(seed: int) -> None:
    """Seed torch (every device) and numpy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def evaluate(scene: Scene, controller: Controller | str, split: str | None = "test",
             config: SimConfig | None = None, device: torch.device | str | None = None,
             batch_size: int | None = None, progress: bool = True, seed: int = 0,
             course: Course | str | None = None, trace: Trace | None = None,
             episodes: int | None = None) -> pd.DataFrame:
    """Every episode of a split on a course (or an evenly spaced subset of them), closed loop.

    Args:
        scene: the scene.
        controller: a controller (module docstring) or the name of a built-in one (:func:`controller_named`).
        split: "train", "val", "test" or None (all).
        config: :class:`~ppuu.simulator.sim.SimConfig`.
        device: default CUDA when available.
        batch_size: episodes per batch (default: all at once).
        progress: show a progress bar.
        seed: seeds torch and numpy before the run (:func:`seed_everything`).
        course: overrides ``config.course`` when given (a course name, "START:ARRIVAL" or a
            :class:`~ppuu.simulator.episodes.Course`; default: the site's).
        trace: a :class:`Trace` to record every step into, or None.
        episodes: drive only this many episodes, evenly spaced over the split's (in the split's
            order, the same ones for every controller); None = all.

    Returns:
        one row per episode: vehicle_id, outcome, outcome_name, distance (m from the end of the
        context), time (s), mean_speed (m/s), max_deviation (m), mean_abs_acceleration (m/s^2),
        mean_abs_jerk (m/s^3), mean costs, course (name), seed.

    Raises:
        ValueError: unknown controller, or no episode in the split; ``CourseError`` (a
            ValueError) when the course does not fit the scene's tracks.
    """
    if isinstance(controller, str):
        controller = controller_named(controller)
    config = config or SimConfig()
    if course is not None:
        config = dataclasses.replace(config, course=course)
    seed_everything(seed)
    sim = BatchedSimulator(scene, config, device=device)
    ids = sim.episode_vehicles(split)
    if len(ids) == 0:
        counts = {s: len(sim.episode_vehicles(s)) for s in ("train", "val", "test")}
        raise ValueError(f"no episodes in split {split!r} of scene {scene.meta.name!r} on course {sim.course} "
                         f"(episodes per split: {counts})")
    if episodes is not None:
        ids = ids[evenly_spaced(len(ids), episodes)]
    chunk = batch_size or len(ids)
    tables = [run_episodes(sim, ids[i:i + chunk], controller, progress, trace=trace)
              for i in range(0, len(ids), chunk)]
    table = pd.concat(tables, ignore_index=True)
    table["course"] = sim.course.name
    table["seed"] = seed
    return table


def evenly_spaced(total: int, count: int) -> np.ndarray:
    """Indices of ``count`` of ``total`` items, evenly spaced and in order (all of them when count >= total)."""
    if count < 1:
        raise ValueError(f"episodes = {count}: expected >= 1")
    if count >= total:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, count).round().astype(np.int64))


SUMMARY_METRICS = ("success_pct", "collision_pct", "offroad_pct", "out_of_data_pct", "mean_distance_m",
                   "mean_time_s", "mean_speed_mps", "max_deviation_m_p99", "mean_abs_accel_mps2",
                   "mean_abs_jerk_mps3", "proximity_cost", "lane_cost")
"""Headline figures of :func:`summarise`, each reported as mean and ``<name>_std`` over seeds."""


def _summary_of_one_run(table: pd.DataFrame) -> dict:
    outcome = table["outcome"].to_numpy()
    return {
        "episodes": int(len(table)),
        "success_pct": 100.0 * float(np.mean(outcome == ARRIVED)),
        "collision_pct": 100.0 * float(np.mean(outcome == COLLISION)),
        "offroad_pct": 100.0 * float(np.mean(outcome == OFFROAD)),
        "out_of_data_pct": 100.0 * float(np.mean(outcome == OUT_OF_DATA)),
        "mean_distance_m": float(table["distance"].mean()),
        "mean_time_s": float(table["time"].mean()),
        "mean_speed_mps": float(table["mean_speed"].mean()),
        "max_deviation_m_p99": float(np.quantile(table["max_deviation"], 0.99)),
        "mean_abs_accel_mps2": float(table["mean_abs_acceleration"].mean()),
        "mean_abs_jerk_mps3": float(table["mean_abs_jerk"].mean()),
        "proximity_cost": float(table["proximity_cost"].mean()),
        "lane_cost": float(table["lane_cost"].mean()),
    }


def summarise(table: pd.DataFrame) -> dict:
    """Headline figures of an evaluation table (SPEC §2: success rate, distance, failure rates, time; comfort).

    The table may hold several seeds (a ``seed`` column, e.g. tables of :func:`evaluate`
    concatenated): every figure of :data:`SUMMARY_METRICS` is then the mean over seeds, with its
    population standard deviation as ``<name>_std`` (0 for one seed).

    Returns:
        dict with ``course`` (name, or None when the table has no course column), ``seeds``
        (list), ``episodes`` (per seed), and the metrics with their ``_std``.
    """
    if "seed" in table:
        seeds = sorted(table["seed"].unique().tolist())
        runs = [_summary_of_one_run(table[table["seed"] == s]) for s in seeds]
    else:
        seeds, runs = [], [_summary_of_one_run(table)]
    courses = sorted(table["course"].unique().tolist()) if "course" in table else []
    if len(courses) > 1:
        raise ValueError(f"an evaluation table mixes courses {courses}: results only compare on one course")
    out: dict = {"course": courses[0] if courses else None, "seeds": seeds,
                 "episodes": int(np.mean([r["episodes"] for r in runs]))}
    for key in SUMMARY_METRICS:
        values = np.array([r[key] for r in runs])
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    return out


MARKDOWN_COLUMNS = ("success_pct", "collision_pct", "offroad_pct", "out_of_data_pct", "mean_distance_m",
                    "mean_time_s", "mean_speed_mps", "mean_abs_accel_mps2", "mean_abs_jerk_mps3", "proximity_cost",
                    "lane_cost")


def markdown_summary(results: dict[str, pd.DataFrame]) -> str:
    """A Markdown table with one row per controller (name -> evaluation table, one or several seeds).

    Columns: controller, course, seeds, episodes, then :data:`MARKDOWN_COLUMNS`; with several
    seeds each figure reads ``mean ± std``.
    """
    rows = []
    for name, table in results.items():
        s = summarise(table)
        row = {"controller": name, "course": s["course"] or "-",
               "seeds": ",".join(map(str, s["seeds"])) or "-", "episodes": s["episodes"]}
        for key in MARKDOWN_COLUMNS:
            row[key] = f"{s[key]:.2f} ± {s[key + '_std']:.2f}" if len(s["seeds"]) > 1 else f"{s[key]:.2f}"
        rows.append(row)
    return markdown_table(pd.DataFrame(rows), floatfmt=".2f")
