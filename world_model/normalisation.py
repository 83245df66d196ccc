"""Z-score statistics for states and actions (SPEC §3: training-split statistics).

Why a separate object: the reference patched its statistics onto model objects, so a
checkpoint without the right model class could not be de-normalised. Here the statistics are
a small dataclass of plain tensors, computed once from the training split, saved next to the
model's ``state_dict`` in every checkpoint (``torch.load(weights_only=True)`` reads them back)
and passed explicitly to whatever needs SI units (the ego kinematic model, the planner's
costs, the evaluation).

Shapes: ``state_mean``/``state_std`` ``(state_dim,)``, ``action_mean``/``action_std``
``(action_dim,)``. Units are those of the raw data: states (x, y, vx, vy) in m and m/s,
actions (acceleration m/s^2, curvature 1/m). Every method broadcasts over leading dimensions
and returns tensors on the device and dtype of its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

STD_FLOOR = 1e-6
"""Smallest standard deviation kept: a constant feature normalises to 0 instead of inf/NaN."""

_FIELDS = ("state_mean", "state_std", "action_mean", "action_std")


@dataclass
class Normaliser:
    """Per-feature mean and standard deviation of states and actions.

    Attributes:
        state_mean, state_std: (state_dim,) in state units (m, m/s).
        action_mean, action_std: (action_dim,) in action units (m/s^2, 1/m).
    """

    state_mean: Tensor
    state_std: Tensor
    action_mean: Tensor
    action_std: Tensor

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                value = torch.as_tensor(value, dtype=torch.float32)
                setattr(self, name, value)
            if value.dim() != 1:
                raise ValueError(f"Normaliser.{name} of shape {tuple(value.shape)}: expected a 1-d tensor")
        if self.state_mean.shape != self.state_std.shape:
            raise ValueError(f"Normaliser.state_mean {tuple(self.state_mean.shape)} and state_std "
                             f"{tuple(self.state_std.shape)}: expected the same (state_dim,) shape")
        if self.action_mean.shape != self.action_std.shape:
            raise ValueError(f"Normaliser.action_mean {tuple(self.action_mean.shape)} and action_std "
                             f"{tuple(self.action_std.shape)}: expected the same (action_dim,) shape")
        if bool((self.state_std <= 0).any()) or bool((self.action_std <= 0).any()):
            raise ValueError("Normaliser: standard deviations must be > 0")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_data(cls, states: Tensor, actions: Tensor) -> Normaliser:
        """Statistics of a training split.

        Args:
            states: (..., state_dim) in m and m/s; every leading dimension is pooled.
            actions: (..., action_dim) in m/s^2 and 1/m; pooled likewise.
                Non-finite rows (NaN/inf in any feature) are left out of the statistics.

        Returns:
            A :class:`Normaliser` in float32 on the inputs' device; std = population standard
            deviation, floored at :data:`STD_FLOOR`.
        """
        state_mean, state_std = _moments(states, "states")
        action_mean, action_std = _moments(actions, "actions")
        return cls(state_mean, state_std, action_mean, action_std)

    @classmethod
    def identity(cls, state_dim: int = 4, action_dim: int = 2) -> Normaliser:
        """Mean 0, std 1: normalising changes nothing (tests, already-normalised data)."""
        return cls(torch.zeros(state_dim), torch.ones(state_dim), torch.zeros(action_dim), torch.ones(action_dim))

    @property
    def state_dim(self) -> int:
        return int(self.state_mean.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.action_mean.shape[0])

    # ------------------------------------------------------------------ transforms
    def normalise_states(self, states: Tensor) -> Tensor:
        """(..., state_dim) m, m/s -> (..., state_dim) z-scores."""
        mean, std = self._pair(states, self.state_mean, self.state_std, "states")
        return (states - mean) / std

    def denormalise_states(self, states: Tensor) -> Tensor:
        """(..., state_dim) z-scores -> (..., state_dim) m, m/s."""
        mean, std = self._pair(states, self.state_mean, self.state_std, "states")
        return states * std + mean

    def normalise_actions(self, actions: Tensor) -> Tensor:
        """(..., action_dim) m/s^2, 1/m -> (..., action_dim) z-scores."""
        mean, std = self._pair(actions, self.action_mean, self.action_std, "actions")
        return (actions - mean) / std

    def denormalise_actions(self, actions: Tensor) -> Tensor:
        """(..., action_dim) z-scores -> (..., action_dim) m/s^2, 1/m."""
        mean, std = self._pair(actions, self.action_mean, self.action_std, "actions")
        return actions * std + mean

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Tensor]:
        """Plain CPU tensors keyed by field name (loadable with ``torch.load(weights_only=True)``)."""
        return {name: getattr(self, name).detach().cpu().clone() for name in _FIELDS}

    @classmethod
    def from_state_dict(cls, state: dict) -> Normaliser:
        """Inverse of :meth:`state_dict`; raises ``KeyError`` naming a missing field."""
        missing = [name for name in _FIELDS if name not in state]
        if missing:
            raise KeyError(f"normaliser state is missing {missing}; expected the keys {list(_FIELDS)}")
        return cls(*(torch.as_tensor(state[name]).clone() for name in _FIELDS))

    def to(self, device=None, dtype=None) -> Normaliser:
        """This normaliser with every tensor on ``device`` (and ``dtype`` when given): itself when they
        are there already, else a copy made once per device and dtype and kept (read only, as every
        normaliser). Hot paths call this per step: on a GPU a new copy, or a validation of one, would make
        the CPU wait at every call (and cannot be captured in a CUDA graph)."""
        copies = self.__dict__.setdefault("_copies", {})
        where = torch.device(device) if device is not None else None
        if where is not None and where.type == "cuda" and where.index is None:
            where = torch.device("cuda", torch.cuda.current_device())
        key = (where, dtype)
        if key in copies:
            return copies[key]
        with torch.inference_mode(False):              # a cached inference tensor would break later gradients
            moved = [getattr(self, name).to(device=device, dtype=dtype) for name in _FIELDS]
        if all(m is getattr(self, name) for m, name in zip(moved, _FIELDS)):
            return self
        copy = object.__new__(Normaliser)                 # the values were validated when self was made
        for name, m in zip(_FIELDS, moved):
            setattr(copy, name, m)
        copies[key] = copy
        return copy

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _pair(x: Tensor, mean: Tensor, std: Tensor, what: str) -> tuple[Tensor, Tensor]:
        if x.shape[-1:] != mean.shape:
            raise ValueError(f"{what} of shape {tuple(x.shape)}: expected a last dimension of {mean.shape[0]}")
        return mean.to(device=x.device, dtype=x.dtype), std.to(device=x.device, dtype=x.dtype)


def _moments(x: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """Mean and floored population std over every leading dimension of (..., D); finite rows only."""
    x = torch.as_tensor(x)
    if x.dim() < 1 or x.shape[-1] == 0:
        raise ValueError(f"{what} of shape {tuple(x.shape)}: expected (..., D) with D >= 1")
    rows = x.reshape(-1, x.shape[-1]).to(torch.float64)
    rows = rows[torch.isfinite(rows).all(dim=-1)]
    if rows.shape[0] == 0:
        raise ValueError(f"{what}: no finite rows to compute statistics from")
    mean = rows.mean(dim=0)
    std = rows.std(dim=0, correction=0).clamp_min(STD_FLOOR)
    return mean.float(), std.float()
