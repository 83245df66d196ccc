"""Rewards of the gymnasium environments (``config["reward"]["type"]``).

* ``driving`` (:class:`DrivingReward`, the default) teaches driving: per step

      progress x (metres gained along the road)
      - (w_p x proximity + w_l x lane + w_o x offroad cost)     (``cost_weights``)
      + collision   on the step that collides        (a penalty: negative)
      + offroad     on the step that leaves the road (a penalty: negative)
      + arrival     on the step that reaches the arrival line (a bonus)

  With the defaults a recorded driver's ~230 m of the I-80 reference course earns about +31
  (23 of progress, 10 of arrival, minus about 2 of costs), standing still earns only minus
  its costs, and a crash costs 10: ending an episode early no longer pays (:func:`compare_controllers` and
  ``scripts/check_gym_reward.py`` check recording > no-action > crashing at once on a
  scene's test split).
* ``cost`` (:class:`CostReward`): the planners' objective, ``-(w_p proximity + w_l lane +
  w_o offroad)`` per step (by default ``SimConfig.cost_weights`` = 1.0, 0.2, 1.0): at most 0,
  so on its own it pays an agent to end the episode early.

Each cost is in [0, 1] (:mod:`ppuu.simulator.costs`). Every term is computed for the whole
batch at once; slots that were already finished get 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ppuu.simulator.episodes import ARRIVED, COLLISION, OFFROAD
from ppuu.simulator.sim import BatchedSimulator, StepResult


def _weights(value, name: str) -> tuple[float, float, float]:
    try:
        weights = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        weights = ()
    if len(weights) != 3 or not all(w >= 0 for w in weights):
        raise ValueError(f"{name}: expected three non-negative numbers (proximity, lane, offroad), got {value!r}")
    return weights


def _costs(result: StepResult, weights: tuple[float, float, float]) -> Tensor:
    c = result.costs
    return weights[0] * c.proximity + weights[1] * c.lane + weights[2] * c.offroad


@dataclass
class DrivingReward:
    """Progress, collision and off-road penalties, costs and an arrival bonus (module docstring).

    Attributes:
        progress: reward per metre gained along the road (x).
        collision: reward of the colliding step (<= 0).
        offroad: reward of the step that leaves the road (<= 0).
        arrival: reward of the arriving step (>= 0).
        cost_weights: (proximity, lane, offroad) weights of the per-step costs.
    """

    progress: float = 0.1
    collision: float = -10.0
    offroad: float = -10.0
    arrival: float = 10.0
    cost_weights: tuple[float, float, float] = (0.05, 0.01, 0.05)

    def __post_init__(self):
        for name in ("progress", "collision", "offroad", "arrival"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"driving reward: {name} {value!r}: expected a number")
        if self.collision > 0 or self.offroad > 0 or self.arrival < 0 or self.progress < 0:
            raise ValueError(f"driving reward: expected progress >= 0, collision <= 0, offroad <= 0, arrival >= 0, "
                             f"got {self}")
        self.cost_weights = _weights(self.cost_weights, "driving reward: cost_weights")

    def __call__(self, sim: BatchedSimulator, result: StepResult, distance_before: Tensor, running: Tensor) -> Tensor:
        """(B,) rewards of a step.

        Args:
            distance_before: (B,) m, ``sim.distance`` before the step.
            running: (B,) bool, the slots that were running before the step.
        """
        outcome = result.outcome
        reward = self.progress * (sim.distance - distance_before) - _costs(result, self.cost_weights)
        ended = result.just_done
        reward = reward + self.collision * (ended & (outcome == COLLISION)) \
            + self.offroad * (ended & (outcome == OFFROAD)) + self.arrival * (ended & (outcome == ARRIVED))
        return torch.where(running, reward, torch.zeros_like(reward))


@dataclass
class CostReward:
    """``-(w_p proximity + w_l lane + w_o offroad)`` per step (module docstring).

    Attributes:
        cost_weights: None for ``SimConfig.cost_weights``, else (proximity, lane, offroad).
    """

    cost_weights: tuple[float, float, float] | None = None

    def __post_init__(self):
        if self.cost_weights is not None:
            self.cost_weights = _weights(self.cost_weights, "cost reward: cost_weights")

    def __call__(self, sim: BatchedSimulator, result: StepResult, distance_before: Tensor, running: Tensor) -> Tensor:
        weights = self.cost_weights if self.cost_weights is not None else sim.config.cost_weights
        reward = -_costs(result, weights)
        return torch.where(running, reward, torch.zeros_like(reward))


REWARD_TYPES = {"driving": DrivingReward, "cost": CostReward}
"""``config["reward"]["type"]`` -> class."""


def episode_returns(sim: BatchedSimulator, vehicle_ids, controller,
                    reward) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drive the episodes of ``vehicle_ids`` in one batch to their end and sum a reward over each.

    Args:
        controller: ``controller(observation, sim) -> (B, 2)`` physical actions
            (:mod:`ppuu.simulator.evaluate`).
        reward: a reward object of this module.

    Returns:
        (returns (E,) float64, outcome codes (E,), steps (E,)).
    """
    with torch.no_grad():
        observation = sim.reset(vehicle_ids)
        total = torch.zeros(len(vehicle_ids), dtype=torch.float64)
        while not bool(sim.done.all()):
            action = controller(observation, sim)
            running, before = ~sim.done, sim.distance.clone()
            result = sim.step(action)
            total += reward(sim, result, before, running).double().cpu()
            observation = result.observation
    return total.numpy(), sim.outcome.cpu().numpy(), sim.steps.cpu().numpy()


def swerve(observation, sim: BatchedSimulator) -> Tensor:
    """A controller that crashes at once: steer left at the largest curvature, keep the speed."""
    action = torch.zeros(sim.batch_size, 2, device=sim.device, dtype=sim.dtype)
    action[:, 1] = sim.config.bounds.curvature_max
    return action


def compare_controllers(scene, split: str = "test", reward=None, device: str = "cpu") -> dict[str, dict]:
    """The mean return of the recording, of no action and of crashing at once, on a split.

    Args:
        scene: a :class:`~ppuu.data.scene.Scene`.
        reward: a reward object (default: :class:`DrivingReward`'s defaults).

    Returns:
        name ("human", "no_action", "swerve") -> {mean_return, success_pct, mean_steps, episodes}.
    """
    from ppuu.simulator.evaluate import human, no_action

    reward = reward or DrivingReward()
    sim = BatchedSimulator(scene, device=device)
    ids = sim.episode_vehicles(split)
    out = {}
    for name, controller in (("human", human), ("no_action", no_action), ("swerve", swerve)):
        returns, outcomes, steps = episode_returns(sim, ids, controller, reward)
        out[name] = {"mean_return": float(returns.mean()), "success_pct": 100.0 * float(np.mean(outcomes == ARRIVED)),
                     "mean_steps": float(steps.mean()), "episodes": len(ids)}
    return out
