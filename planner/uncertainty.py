"""The uncertainty cost: where the world model disagrees with itself, the policy should not go (SPEC §4).

The forward model keeps dropout switched on when it is asked to imagine, so K copies of one
rollout (same context, same latents, same actions, independent dropout masks) disagree where
the model is unsure: on states unlike its training data. Per predicted step the disagreement
is measured three ways, each a variance across the K copies:

* ``images``: of the predicted observations, averaged over channels and pixels;
* ``states``: of the predicted normalised ego states, averaged over the state's dimensions
  (0 when the ego follows the exact kinematic model: every copy drives the same car);
* ``cost``: of the weighted task cost (proximity + lane + off-road) of each copy.

Raw variances have no common scale, so each is standardised with its mean and standard
deviation measured on the *recorded* (expert) actions over training windows
(:func:`fit_uncertainty_stats`, stored with the policy): 0 is "as unsure as on the data the
model was trained on", 1 is one standard deviation more. The cost of one step is

    u_t = sum over the three terms of relu((variance_t - mean) / std - hinge)

with ``hinge`` = 0.5 standard deviations: no penalty while the model is about as confident as
on expert driving, a linear one beyond. It is differentiable with respect to the actions
(through the model) and, being a hinge on a standardised variance, comparable across models.

Shapes: K copies of B rollouts; images (K, B, C, H, W), states (K, B, S), costs (K, B).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppuu.simulator.constants import outside_inference_mode

TERMS = ("images", "states", "cost")
"""The three variance terms, in the order of :class:`UncertaintyStats`' tensors."""


def copy_variance(x: Tensor) -> Tensor:
    """Population variance across the copies: (K, ...) -> (...), differentiable.

    Written out as the mean squared deviation because torch's ``var(dim=0)`` takes a slow strided
    path on a CPU for a short leading dimension: 15-35x slower, forward and backward, for K = 2-10
    copies of model-sized images (torch 2.13; ``tests/planner/test_uncertainty.py`` checks equality).
    """
    deviation = x - x.mean(dim=0)
    return deviation.square().mean(dim=0)


def variances(images: Tensor, states: Tensor, cost: Tensor) -> Tensor:
    """Disagreement of K copies of one step: (B, 3) = variance of images, states and cost.

    Args:
        images: (K, B, C, H, W) predicted observations.
        states: (K, B, S) predicted normalised states.
        cost: (K, B) task cost of each copy.
    """
    if images.shape[0] < 2:
        raise ValueError(f"{images.shape[0]} copies: the variance across dropout copies needs at least 2")
    v_images = copy_variance(images.float()).flatten(1).mean(dim=1)
    v_states = copy_variance(states.float()).mean(dim=1)
    v_cost = copy_variance(cost.float())
    return torch.stack([v_images, v_states, v_cost], dim=-1)


@dataclass
class UncertaintyStats:
    """Mean and standard deviation of each variance term under expert actions.

    Attributes:
        mean: (3,) in the order of :data:`TERMS`.
        std: (3,) > 0.
        hinge: standard deviations above the mean before the cost starts.
    """

    mean: Tensor
    std: Tensor
    hinge: float = 0.5

    STD_FLOOR = 1e-8
    RELATIVE_FLOOR = 0.1

    def __post_init__(self) -> None:
        # A term that barely varies under expert actions (e.g. a state variance of 0 with the exact
        # kinematic ego) is standardised with at least a tenth of its mean, so that numerical noise
        # is not worth many standard deviations.
        self.mean = torch.as_tensor(self.mean, dtype=torch.float32).reshape(len(TERMS))
        std = torch.as_tensor(self.std, dtype=torch.float32).reshape(len(TERMS))
        self.std = torch.maximum(std, self.RELATIVE_FLOOR * self.mean.abs()).clamp(min=self.STD_FLOOR)

    @classmethod
    def from_samples(cls, samples: Tensor, hinge: float = 0.5) -> "UncertaintyStats":
        """Statistics of (M, 3) variance samples (e.g. every step of many expert rollouts)."""
        samples = samples.reshape(-1, len(TERMS)).double()
        if samples.shape[0] < 2 or not bool(torch.isfinite(samples).all()):
            raise ValueError(f"{samples.shape[0]} variance samples (finite ones needed, at least 2)")
        return cls(samples.mean(0).float(), samples.std(0).float(), hinge)

    def cost(self, var: Tensor) -> Tensor:
        """(..., 3) variances -> (...) uncertainty cost ``sum relu((var - mean) / std - hinge)``."""
        mean, std = self._on(var)
        return torch.relu((var - mean) / std - self.hinge).sum(dim=-1)

    def _on(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, std) on ``like``'s device and dtype, copied there once (a copy per call would make a GPU
        wait at every imagined step, and cannot be captured in a CUDA graph)."""
        key = (like.device, like.dtype)
        moved = self.__dict__.setdefault("_moved", {})
        if key not in moved:
            with outside_inference_mode():             # a cached inference tensor would break later gradients
                moved[key] = (self.mean.to(like), self.std.to(like))
        return moved[key]

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "std": self.std.clone(), "hinge": float(self.hinge)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "UncertaintyStats":
        return cls(state["mean"], state["std"], float(state["hinge"]))
