"""The driving policy: a context of observations in, one normalised action out (SPEC §6).

The policy reads what the world model reads: K frames of the model's image channels (oldest
first) and the K matching normalised relative states, through the forward model's own encoder
design (:class:`~ppuu.world_model.layers.ImageStateEncoder`, its own weights), then an MLP to
the two normalised actions (acceleration, curvature; z-scored with the world model's
statistics, so that 0 is the training data's mean action).

* deterministic (the default): ``action = MLP(features)``;
* Gaussian (``gaussian=True``): the MLP also gives a log standard deviation per action, and
  the action is ``mean + std * noise`` (reparameterised, so costs back-propagate through the
  sample); :meth:`DrivingPolicy.forward` with ``sample=False`` returns the mean.

Steering (``fixed_curvature``): by default the policy steers. With a fixed curvature (the
normalised value of 0 1/m: ``ppuu train policy --steering straight``) it only chooses the
acceleration and holds the wheel straight, as the no-action baseline does. Why it exists: the
recorded drivers of the default scene almost never steer (the 5-95 % quantiles of their curvature
are all 0; one normalised unit is 0.006 1/m), and a steering output that is off by a fraction of
a unit, held at 10 Hz, drifts across the lanes within seconds. Measured on the validation split
(BENCHMARKS.md, "Amortised MPC and straight steering"): a policy fitted to MPC's decisions arrives
in 2.7 % of the episodes when it steers, in 25.2 % with the wheel held straight (no action: 17.7 %).

Actions are squashed smoothly into the simulator's bounds (``action_low`` / ``action_high``,
normalised): ``mid + half * tanh((a - mid) / half)``, the identity near the box's middle. Without
it a policy trained through the model learns actions the simulator would clip (braking at -20
m/s^2 in imagination), an easy way to exploit the model.

Shapes: images (B, K, C, H, W) in [0, 1], states (B, K, 4) normalised -> actions (B, 2)
normalised.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from ppuu.world_model.layers import MLP, ImageStateEncoder, activation, map_numel

from ppuu.simulator.dynamics import ActionBounds

LOG_STD_BOUNDS = (-5.0, 1.0)
"""Bounds of the Gaussian policy's log standard deviation (normalised action units)."""


@dataclass
class PolicyConfig:
    """Sizes of the policy network.

    Attributes:
        context: K, frames the policy sees (the newest K of the window).
        image_channels, image_height, image_width: the model's images (C, H, W).
        state_dim, action_dim: 4 (x, y, vx, vy) and 2 (acceleration, curvature).
        hidden_channels: conv widths of the encoder.
        hidden_mlp: width of the MLPs.
        dropout: dropout in the encoder and MLP (0 by default: the policy is not where the
            uncertainty is measured).
        gaussian: a Gaussian policy (mean and log standard deviation) instead of a deterministic one.
        action_low, action_high: (A,) the simulator's action bounds in normalised units (None: unbounded).
        fixed_curvature: normalised curvature the policy always gives (module docstring; None: it steers).
    """

    context: int = 20
    image_channels: int = 3
    image_height: int = 117
    image_width: int = 24
    state_dim: int = 4
    action_dim: int = 2
    hidden_channels: tuple = (64, 128, 256)
    hidden_mlp: int = 256
    dropout: float = 0.0
    gaussian: bool = False
    action_low: tuple | None = None
    action_high: tuple | None = None
    fixed_curvature: float | None = None

    def __post_init__(self) -> None:
        self.hidden_channels = tuple(int(c) for c in self.hidden_channels)
        if (self.action_low is None) != (self.action_high is None):
            raise ValueError("PolicyConfig: give both action_low and action_high, or neither")
        if self.action_low is not None:
            self.action_low = tuple(float(v) for v in self.action_low)
            self.action_high = tuple(float(v) for v in self.action_high)
            if len(self.action_low) != self.action_dim or len(self.action_high) != self.action_dim or \
                    any(lo >= hi for lo, hi in zip(self.action_low, self.action_high)):
                raise ValueError(f"PolicyConfig: action bounds {self.action_low} .. {self.action_high}: expected "
                                 f"{self.action_dim} increasing pairs")
        for name in ("context", "image_channels", "image_height", "image_width", "state_dim", "action_dim",
                     "hidden_mlp"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PolicyConfig.{name} = {getattr(self, name)}: expected >= 1")
        if not self.hidden_channels or min(self.hidden_channels) < 1:
            raise ValueError(f"PolicyConfig.hidden_channels = {self.hidden_channels}: expected positive widths")
        if self.fixed_curvature is not None:
            self.fixed_curvature = float(self.fixed_curvature)
            if self.action_dim != 2:
                raise ValueError("PolicyConfig.fixed_curvature needs the two actions (acceleration, curvature)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"PolicyConfig.dropout = {self.dropout}: expected in [0, 1)")

    def to_json(self) -> dict:
        d = asdict(self)
        d["hidden_channels"] = list(self.hidden_channels)
        for key in ("action_low", "action_high"):
            d[key] = None if d[key] is None else list(d[key])
        return d

    @classmethod
    def from_json(cls, d: dict | str) -> "PolicyConfig":
        if isinstance(d, str):
            d = json.loads(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"PolicyConfig: unknown fields {unknown}; expected some of {sorted(known)}")
        return cls(**d)


class DrivingPolicy(nn.Module):
    """Context -> normalised action (module docstring)."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = c = config
        self.encoder = ImageStateEncoder(c.context, c.image_channels, (c.image_height, c.image_width), c.state_dim,
                                         c.hidden_channels, c.hidden_mlp, c.dropout)
        self.readout = activation()
        outputs = 2 * c.action_dim if c.gaussian else c.action_dim
        self.head = MLP(map_numel(self.encoder.map_shape), c.hidden_mlp, outputs, c.dropout)
        with torch.no_grad():   # start near the data's mean action (0 in normalised units), small spread
            self.head[-1].weight.mul_(0.1)
            self.head[-1].bias.zero_()
            if c.gaussian:
                self.head[-1].bias[c.action_dim:].fill_(-1.0)

    def distribution(self, images: Tensor, states: Tensor) -> tuple[Tensor, Tensor | None]:
        """(mean (B, A), log_std (B, A) or None for a deterministic policy), normalised units."""
        K = self.config.context
        if images.dim() != 5 or images.shape[1] < K or states.shape[1] < K:
            raise ValueError(f"images {tuple(images.shape)} / states {tuple(states.shape)}: expected at least "
                             f"{K} frames (B, T, C, H, W) / (B, T, S)")
        features = self.readout(self.encoder(images[:, -K:], states[:, -K:])).flatten(1)
        out = self.head(features)
        A = self.config.action_dim
        if not self.config.gaussian:
            return out, None
        return out[:, :A], out[:, A:].clamp(*LOG_STD_BOUNDS)

    def forward(self, images: Tensor, states: Tensor, sample: bool = True) -> Tensor:
        """Normalised action (B, A) for windows images (B, T, C, H, W) and states (B, T, S), T >= K.

        A Gaussian policy samples (reparameterised) unless ``sample`` is False.
        """
        mean, log_std = self.distribution(images, states)
        action = mean if log_std is None or not sample else mean + log_std.exp() * torch.randn_like(mean)
        action = self.squash(action)
        if self.config.fixed_curvature is None:
            return action
        return torch.cat([action[:, :1], action.new_full((len(action), 1), self.config.fixed_curvature)], dim=1)

    @torch.no_grad()
    def hold_straight(self, curvature: float) -> None:
        """Make the steering output ``curvature`` (normalised; a Gaussian policy's mean) for every input,
        its weights free to learn.

        For releasing the wheel of a policy trained with ``fixed_curvature``: its steering output was
        never trained, so it would start at an arbitrary, input-dependent curvature. Here the head's
        curvature row is zeroed and its bias set to the value the squashing maps to ``curvature``;
        the gradient still reaches that row, so training can learn to steer from straight.
        """
        c = self.config
        if c.action_dim != 2:
            raise ValueError("DrivingPolicy.hold_straight needs the two actions (acceleration, curvature)")
        if c.action_low is not None and not c.action_low[1] < float(curvature) < c.action_high[1]:
            raise ValueError(f"curvature {curvature} outside the policy's bounds ({c.action_low[1]}, "
                             f"{c.action_high[1]})")
        bias = self.unsquash(torch.tensor([[0.0, float(curvature)]]))[0, 1]
        last = self.head[-1]
        last.weight[1].zero_()
        last.bias[1] = bias

    def squash(self, action: Tensor) -> Tensor:
        """Smoothly into the action bounds (module docstring); unchanged without bounds."""
        c = self.config
        if c.action_low is None:
            return action
        low, high = action.new_tensor(c.action_low), action.new_tensor(c.action_high)
        mid, half = (low + high) / 2, (high - low) / 2
        return mid + half * torch.tanh((action - mid) / half)

    def unsquash(self, action: Tensor) -> Tensor:
        """The inverse of :meth:`squash`: the raw output that squashes to ``action`` (strictly inside the bounds)."""
        c = self.config
        if c.action_low is None:
            return action
        low, high = action.new_tensor(c.action_low), action.new_tensor(c.action_high)
        mid, half = (low + high) / 2, (high - low) / 2
        return mid + half * torch.atanh((action - mid) / half)


def straight_curvature(normaliser) -> float:
    """The normalised value of a curvature of 0 1/m under a model's normaliser (``fixed_curvature``)."""
    norm = normaliser.to("cpu")
    return float(norm.normalise_actions(torch.zeros(1, 2, dtype=norm.action_mean.dtype))[0, 1])


def normalised_bounds(normaliser, bounds: ActionBounds = ActionBounds()) -> dict[str, tuple]:
    """The simulator's action bounds in a model's normalised units: ``{"action_low": (A,), "action_high": (A,)}``."""
    norm = normaliser.to("cpu")
    low = norm.normalise_actions(bounds.low(norm.action_mean.float()))
    high = norm.normalise_actions(bounds.high(norm.action_mean.float()))
    return {"action_low": tuple(torch.minimum(low, high).tolist()),
            "action_high": tuple(torch.maximum(low, high).tolist())}
