"""What the planner minimises over an imagined trajectory (SPEC §4): one weighted, discounted sum.

Per predicted step t the costs are the simulator's own (:mod:`ppuu.simulator.costs`, imported,
never copied: proximity, lane and off-road, each in [0, 1]) on the predicted observation, the
uncertainty cost (:mod:`ppuu.planner.uncertainty`), and two regularisers of the actions::

    c_t = w_p proximity_t + w_l lane_t + w_o offroad_t + w_u uncertainty_t
          + w_a |a_t|^2 + w_j |a_t - a_{t-1}|^2 + w_s max(v_0 - v_t, 0) / max(v_0, 1 m/s)
    J   = sum_t gamma^t c_t / sum_t gamma^t                          (gamma = 0.99)

The action terms use normalised actions (the world model's z-scores), so one weight suits
acceleration and curvature alike; the jerk term's first difference is taken against the
action recorded at the end of the context when one is given. Dividing by the sum of the
discounts makes J the discount-weighted mean cost per step, comparable across horizons.

The last term, **speed keeping** (off by default, as in the paper: ``w_s = 0``), charges the
ego's speed deficit against its speed at the end of the context, v_0. Why it exists: with
the paper's costs alone, slowing down is what a 3-second horizon rewards. Over 64 test
windows of the default scene, with the true future traffic (replay), braking at a constant
1 m/s^2 costs 0.104 proximity per step, less than the recorded human's own plan (0.142), and
a policy trained on that objective brakes until the replayed cars behind run into it (their
collisions come 4-10 s later, beyond the horizon). With ``w_s`` of 0.3-0.5 the recorded plan
is the cheapest of the plans compared (``scripts/cost_ranking.py``; BENCHMARKS.md "Policy
learning and MPC"). It charges slowing down, never speeding up, so the proximity cost still decides
when to brake. Policy training can charge the deficit against the recorded driver's speed at
each imagined step instead (``PolicyTrainConfig.speed_reference = "recorded"``): slowing down
where the driver slowed down is then free. Its weakness shows in the closed loop: v_0 is the
speed at each decision, so a policy's upward drift is never charged back, and a policy whose
world model gives a weak proximity signal ends ahead of its recording, in the car in front
(``scripts/failure_modes.py``; BENCHMARKS.md "Why the demo's MPUR does not beat no action").
Part of that drift was a defect, not the term: until 2026-12 the costs' safe distance was
detached from the speed, so the optimisers were told that speeding up towards a car cost about
a seventh of what it does; the distance ahead is differentiable now
(:mod:`ppuu.simulator.costs`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ppuu.simulator.constants import cached_constant

TERMS = ("proximity", "lane", "offroad", "uncertainty", "action", "jerk", "speed")
"""The cost terms, in the order of :meth:`CostWeights.vector`."""


@dataclass(frozen=True)
class CostWeights:
    """Weights of the planner's objective (SPEC §4 defaults) and its discount.

    Attributes:
        proximity, lane, offroad: weights of the simulator's costs.
        uncertainty: weight of the uncertainty cost (0 = VG / SVG: no uncertainty regulariser).
        action: weight of ``|a|^2`` in normalised units.
        jerk: weight of ``|a_t - a_{t-1}|^2`` in normalised units.
        speed: weight of the speed deficit (module docstring; 0 = the paper's objective).
        discount: gamma per step.
    """

    proximity: float = 1.0
    lane: float = 0.2
    offroad: float = 1.0
    uncertainty: float = 0.05
    action: float = 0.0
    jerk: float = 0.0
    speed: float = 0.0
    discount: float = 0.99

    def __post_init__(self) -> None:
        for name in TERMS:
            if getattr(self, name) < 0:
                raise ValueError(f"CostWeights.{name} = {getattr(self, name)}: expected >= 0")
        if not 0 < self.discount <= 1:
            raise ValueError(f"CostWeights.discount = {self.discount}: expected in (0, 1]")

    def vector(self, like: Tensor) -> Tensor:
        """(7,) the weights in :data:`TERMS` order, on ``like``'s device and dtype (cached, read only)."""
        return _weights_tensor(tuple(getattr(self, name) for name in TERMS), like.device, like.dtype)

    def task(self, like: Tensor) -> Tensor:
        """(3,) the task costs' weights (proximity, lane, off-road), on ``like``'s device and dtype (cached,
        read only: made once per device, so that no step copies them to a GPU, a wait there)."""
        return _weights_tensor((self.proximity, self.lane, self.offroad), like.device, like.dtype)

    def to_json(self) -> dict:
        return asdict(self)


@cached_constant(maxsize=64)
def _weights_tensor(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.tensor(values, device=device, dtype=dtype)


def action_terms(actions: Tensor, previous: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Action magnitude and jerk per step: actions (B, N, A) normalised -> (B, N) and (B, N).

    Args:
        actions: the plan or the policy's actions.
        previous: (B, A) the action before the first (e.g. recorded at the end of the context);
            None = the first step has no jerk term.
    """
    magnitude = actions.pow(2).sum(-1)
    before = actions[:, :1] if previous is None else previous[:, None].to(actions)
    jerk = torch.diff(actions, dim=1, prepend=before).pow(2).sum(-1)
    return magnitude, jerk


MIN_REFERENCE_SPEED = 1.0
"""m/s: the speed deficit is divided by at least this (a car that starts at rest pays per m/s)."""


def speed_deficit(speed: Tensor, reference: Tensor) -> Tensor:
    """Speed keeping: ``max(v_0 - v_t, 0) / max(v_0, 1 m/s)``, speeds (B, N) m/s -> (B, N).

    ``reference``: (B,) m/s, one speed for the whole trajectory (the end of the context), or (B, N) m/s,
    one per step (e.g. the recorded driver's speed at that step).
    """
    v0 = (reference[:, None] if reference.dim() == 1 else reference).to(speed)
    return (v0 - speed).clamp(min=0) / v0.clamp(min=MIN_REFERENCE_SPEED)


def discounts(steps: int, gamma: float, like: Tensor) -> Tensor:
    """(N,) ``gamma^t / sum_t gamma^t``: weights that sum to 1."""
    w = gamma ** torch.arange(steps, device=like.device, dtype=like.dtype)
    return w / w.sum()


def trajectory_cost(terms: Tensor, weights: CostWeights) -> tuple[Tensor, Tensor]:
    """The objective of each trajectory and its terms.

    Args:
        terms: (B, N, 7) per-step cost terms in :data:`TERMS` order (unweighted).
        weights: the :class:`CostWeights`.

    Returns:
        (J (B,), per-term discounted means (B, 7), unweighted: what a progress bar shows).
    """
    if terms.dim() != 3 or terms.shape[-1] != len(TERMS):
        raise ValueError(f"terms of shape {tuple(terms.shape)}: expected (B, N, {len(TERMS)})")
    w = discounts(terms.shape[1], weights.discount, terms)
    per_term = (terms * w[None, :, None]).sum(dim=1)
    return per_term @ weights.vector(terms), per_term
