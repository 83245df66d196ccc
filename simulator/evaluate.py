"""Closed-loop evaluation: every episode of a split at once, any controller, a table at the end.

A controller is any function ``(observation, simulator) -> actions (B, 2)``
(acceleration m/s^2, curvature 1/m). All episodes of the split run in one
batch (or in chunks of ``batch_size``), so evaluating a whole test split costs
a few hundred batched steps instead of hours of single episodes.

Two reference controllers come with it: ``human`` (the replaced vehicle's own
recorded actions: the fidelity check and the "human" row of SPEC §7) and
``no_action`` (zero acceleration and curvature: the car keeps its speed and
heading).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ppuu.data.report import markdown_table
from ppuu.data.scene import Scene
from ppuu.simulator.episodes import ARRIVED, COLLISION, OFFROAD, OUT_OF_DATA, OUTCOMES
from ppuu.simulator.sim import BatchedSimulator, Observation, SimConfig

Controller = Callable[[Observation, BatchedSimulator], Tensor]


def human(observation: Observation, sim: BatchedSimulator) -> Tensor:
    """The replaced vehicles' own recorded actions, (B, 2)."""
    return sim.recorded_actions()


def no_action(observation: Observation, sim: BatchedSimulator) -> Tensor:
    """Zero acceleration and curvature, (B, 2): keep speed and heading."""
    return torch.zeros(sim.batch_size, 2, device=sim.device, dtype=sim.dtype)


CONTROLLERS: dict[str, Controller] = {"human": human, "no_action": no_action}


def run_episodes(sim: BatchedSimulator, vehicle_ids: np.ndarray, controller: Controller,
                 progress: bool = True, max_steps: int | None = None) -> pd.DataFrame:
    """Run one batch of episodes to the end; one row of metrics per episode.

    Args:
        sim: the simulator (its batch is replaced).
        vehicle_ids: (B,) recorded vehicles to replace.
        controller: see the module docstring.
        progress: show a progress bar of finished episodes.
        max_steps: stop after this many steps (episodes still running keep outcome "running").
    """
    observation = sim.reset(vehicle_ids)
    bar = tqdm(total=len(vehicle_ids), desc="episodes", unit="ep", disable=not progress, leave=False)
    steps = 0
    with torch.no_grad():
        while not bool(sim.done.all()) and (max_steps is None or steps < max_steps):
            result = sim.step(controller(observation, sim))
            observation = result.observation
            bar.update(int(result.just_done.sum()))
            steps += 1
    bar.close()
    metrics = {k: v.detach().cpu().numpy() for k, v in sim.metrics().items()}
    table = pd.DataFrame(metrics)
    table.insert(1, "outcome_name", [OUTCOMES[o] for o in table["outcome"]])
    return table


def evaluate(scene: Scene, controller: Controller | str, split: str = "test", config: SimConfig | None = None,
             device: torch.device | str | None = None, batch_size: int | None = None,
             progress: bool = True) -> pd.DataFrame:
    """Every episode of a split, closed loop.

    Args:
        scene: the scene.
        controller: a controller function or the name of a built-in one ("human", "no_action").
        split: "train", "val", "test" or None (all).
        config: :class:`~ppuu.simulator.sim.SimConfig`.
        device: default CUDA when available.
        batch_size: episodes per batch (default: all at once).

    Returns:
        one row per episode: vehicle_id, outcome, outcome_name, distance (m), time (s),
        mean_speed (m/s), max_deviation (m), mean costs.
    """
    if isinstance(controller, str):
        if controller not in CONTROLLERS:
            raise ValueError(f"unknown controller {controller!r}; built-in: {sorted(CONTROLLERS)}")
        controller = CONTROLLERS[controller]
    sim = BatchedSimulator(scene, config, device=device)
    ids = sim.episode_vehicles(split)
    if len(ids) == 0:
        raise ValueError(f"no episodes in split {split!r} of scene {scene.meta.name!r}")
    chunk = batch_size or len(ids)
    tables = [run_episodes(sim, ids[i:i + chunk], controller, progress) for i in range(0, len(ids), chunk)]
    return pd.concat(tables, ignore_index=True)


def summarise(table: pd.DataFrame) -> dict:
    """Headline figures of an evaluation table (SPEC §2: success rate, distance, failure rates, time)."""
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
        "proximity_cost": float(table["proximity_cost"].mean()),
        "lane_cost": float(table["lane_cost"].mean()),
    }


def markdown_summary(results: dict[str, pd.DataFrame]) -> str:
    """A Markdown table with one row per controller (name -> evaluation table)."""
    rows = [{"controller": name, **summarise(table)} for name, table in results.items()]
    columns = ["controller", "episodes", "success_pct", "collision_pct", "offroad_pct", "out_of_data_pct",
               "mean_distance_m", "mean_time_s", "mean_speed_mps", "proximity_cost", "lane_cost"]
    return markdown_table(pd.DataFrame(rows)[columns], floatfmt=".2f")
