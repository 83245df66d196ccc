"""What the planner minimises over an imagined trajectory (SPEC §4): one weighted, discounted sum.

Per predicted step t the costs are the simulator's own (:mod:`ppuu.simulator.costs`, imported,
never copied: proximity, lane and off-road, each in [0, 1]) on the predicted observation, the
uncertainty cost (:mod:`ppuu.planner.uncertainty`), and two regularisers of the actions::

    c_t = w_p proximity_t + w_l lane_t + w_o offroad_t + w_u uncertainty_t
          + w_a |a_t|^2 + w_j |a_t - a_{t-1}|^2
    J   = sum_t gamma^t c_t / sum_t gamma^t                          (gamma = 0.99)

The action terms use normalised actions (the world model's z-scores), so one weight suits
acceleration and curvature alike; the jerk term's first difference is taken against the
action recorded at the end of the context when one is given. Dividing by the sum of the
discounts makes J the discount-weighted mean cost per step, comparable across horizons.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

TERMS = ("proximity", "lane", "offroad", "uncertainty", "action", "jerk")
"""The cost terms, in the order of :meth:`CostWeights.vector`."""


@dataclass(frozen=True)
class CostWeights:
    """Weights of the planner's objective (SPEC §4 defaults) and its discount.

    Attributes:
        proximity, lane, offroad: weights of the simulator's costs.
        uncertainty: weight of the uncertainty cost (0 = VG / SVG: no uncertainty regulariser).
        action: weight of ``|a|^2`` in normalised units.
        jerk: weight of ``|a_t - a_{t-1}|^2`` in normalised units.
        discount: gamma per step.
    """

    proximity: float = 1.0
    lane: float = 0.2
    offroad: float = 1.0
    uncertainty: float = 0.05
    action: float = 0.0
    jerk: float = 0.0
    discount: float = 0.99

    def __post_init__(self) -> None:
        for name in TERMS:
            if getattr(self, name) < 0:
                raise ValueError(f"CostWeights.{name} = {getattr(self, name)}: expected >= 0")
        if not 0 < self.discount <= 1:
            raise ValueError(f"CostWeights.discount = {self.discount}: expected in (0, 1]")

    def vector(self, like: Tensor) -> Tensor:
        """(6,) the weights in :data:`TERMS` order, on ``like``'s device and dtype."""
        return torch.tensor([getattr(self, name) for name in TERMS], device=like.device, dtype=like.dtype)

    def to_json(self) -> dict:
        return asdict(self)


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


def discounts(steps: int, gamma: float, like: Tensor) -> Tensor:
    """(N,) ``gamma^t / sum_t gamma^t``: weights that sum to 1."""
    w = gamma ** torch.arange(steps, device=like.device, dtype=like.dtype)
    return w / w.sum()


def trajectory_cost(terms: Tensor, weights: CostWeights) -> tuple[Tensor, Tensor]:
    """The objective of each trajectory and its terms.

    Args:
        terms: (B, N, 6) per-step cost terms in :data:`TERMS` order (unweighted).
        weights: the :class:`CostWeights`.

    Returns:
        (J (B,), per-term discounted means (B, 6), unweighted: what a progress bar shows).
    """
    if terms.dim() != 3 or terms.shape[-1] != len(TERMS):
        raise ValueError(f"terms of shape {tuple(terms.shape)}: expected (B, N, {len(TERMS)})")
    w = discounts(terms.shape[1], weights.discount, terms)
    per_term = (terms * w[None, :, None]).sum(dim=1)
    return per_term @ weights.vector(terms), per_term
