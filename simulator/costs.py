"""Differentiable proximity, lane and off-road costs of an observation (SPEC §4).

Why here: the planner minimises these costs on *predicted* observations, and the simulator
reports them on *rendered* ones; both must use one definition. They read only the image,
the ego's speed and size and the raster geometry, so they work on any (B, C, H, W) tensor
laid out as :mod:`ppuu.simulator.raster` renders it, and gradients flow into the image.

Masks are built from **metric** distances (the reference built them in pixels and its
proximity mask never reached 1). For each pixel, ``gap_along`` / ``gap_left`` is the
distance in metres from the ego footprint's front/rear face / sides to the pixel *centre*
(<= 0 inside the footprint).

* Proximity mask: longitudinal profile ``clamp(1 - (gap_along - plateau) / d_safe, 0, 1)``
  with the safe distance ``d_safe = safe_time * speed + safe_margin`` (1.5 s x speed + 1 m;
  the speed is *detached*, so a policy cannot shrink the mask by slowing down); lateral
  profile ``clamp(1 - (gap_left - plateau) / (lateral_widths * ego width), 0, 1)``. Mask =
  their product. ``plateau`` is 1.5 pixels (0.92 m): a vehicle that touches the footprint
  fully covers some pixel whose centre lies at most 1.5 px from it (which one depends on
  the sub-pixel phase), so with the plateau a bumper-to-bumper vehicle costs exactly 1 at
  every phase. The price is the resolution's: gaps under about a pixel cannot be told apart
  from touching. A vehicle more than ``d_safe`` + 2 px (1.23 m) from the footprint costs
  exactly 0.
* Lane mask: lateral profile ``clamp(1 - (|left| - p/2) / (lane_width / 2), 0, 1)``: 1 on the
  pixels the ego's centre line passes through, 0 at half a lane from it; times the
  proximity mask's longitudinal profile.
* Off-road mask: the lane mask.

Cost = ``max`` over pixels of mask x channel (the reference's choice; in [0, 1]), or with
``reduction="sum"`` the mask-weighted sum times the pixel area, in m^2 (smoother; Sobal
2022). Shapes: images (B, C, H, W); speed (B,) m/s; ego size (B, 2) (length, width) m.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

from torch import Tensor

from ppuu.simulator.raster import LANES, OFFROAD, VEHICLES, RasterConfig

LANE_WIDTH = 3.6576
"""m, the NGSIM lane width (12 ft)."""


@dataclass(frozen=True)
class CostConfig:
    """Shape of the cost masks."""

    safe_time: float = 1.5            #: s, time headway of the safe distance
    safe_margin: float = 1.0          #: m, added to the safe distance
    lateral_widths: float = 1.0       #: proximity mask reaches 0 this many ego widths beside the footprint
    lane_width: float = LANE_WIDTH    #: m, lane mask reaches 0 at half of this from the centre line
    reduction: str = "max"            #: "max" (in [0, 1]) or "sum" (mask-weighted area, m^2)

    def __post_init__(self) -> None:
        if self.reduction not in ("max", "sum"):
            raise ValueError(f"CostConfig.reduction {self.reduction!r}; expected 'max' or 'sum'")
        if self.safe_margin <= 0 or self.lateral_widths <= 0 or self.lane_width <= 0 or self.safe_time < 0:
            raise ValueError(f"CostConfig: positive safe_margin, lateral_widths, lane_width expected, got {self}")

    def to_json(self) -> dict:
        return asdict(self)


class Costs(NamedTuple):
    """Per-observation costs, each (B,)."""

    proximity: Tensor
    lane: Tensor
    offroad: Tensor


def plateau(raster: RasterConfig) -> float:
    """m: distance beyond the footprint over which the proximity mask stays 1 (1.5 pixels)."""
    return 1.5 * raster.metres_per_pixel


def safe_distance(speed: Tensor, config: CostConfig = CostConfig()) -> Tensor:
    """(B,) m/s -> (B,) m: ``safe_time * speed + safe_margin`` (speed detached)."""
    return config.safe_time * speed.detach().clamp(min=0) + config.safe_margin


def longitudinal_profile(speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                         config: CostConfig = CostConfig(), like: Tensor | None = None) -> Tensor:
    """(B, H): 1 up to 1.5 px beyond the ego footprint's front/rear, 0 a safe distance further.

    Args:
        speed: (B,) m/s (detached).
        ego_size: (B, 2) (length, width) m.
        like: tensor giving device/dtype (default ``speed``).
    """
    like = speed if like is None else like
    along, _ = raster.pixel_centres(like)
    gap = along.abs()[None, :] - ego_size[:, 0:1].to(like) / 2 - plateau(raster)
    return (1 - gap / safe_distance(speed, config).to(like)[:, None]).clamp(0, 1)


def proximity_mask(speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                   config: CostConfig = CostConfig(), like: Tensor | None = None) -> Tensor:
    """(B, H, W) proximity mask (module docstring); no gradient to ``speed``.

    Args:
        speed: (B,) m/s.
        ego_size: (B, 2) (length, width) m.
        like: tensor giving device/dtype (default ``speed``).
    """
    like = speed if like is None else like
    _, left = raster.pixel_centres(like)
    width = ego_size[:, 1:2].to(like)
    gap = left.abs()[None, :] - width / 2 - plateau(raster)
    lateral = (1 - gap / (config.lateral_widths * width)).clamp(0, 1)                  # (B, W)
    return longitudinal_profile(speed, ego_size, raster, config, like)[:, :, None] * lateral[:, None, :]


def lane_mask(speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
              config: CostConfig = CostConfig(), like: Tensor | None = None) -> Tensor:
    """(B, H, W) lane / off-road mask (module docstring); no gradient to ``speed``."""
    like = speed if like is None else like
    _, left = raster.pixel_centres(like)
    d_left = (left.abs() - raster.metres_per_pixel / 2).clamp(min=0)
    lateral = (1 - d_left / (config.lane_width / 2)).clamp(0, 1)                       # (W,)
    return longitudinal_profile(speed, ego_size, raster, config, like)[:, :, None] * lateral[None, None, :]


def _reduce(weighted: Tensor, raster: RasterConfig, reduction: str) -> Tensor:
    if reduction == "max":
        return weighted.flatten(1).amax(dim=1)
    return weighted.flatten(1).sum(dim=1) * raster.metres_per_pixel ** 2


def proximity_cost(images: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                   config: CostConfig = CostConfig(), channel: int = VEHICLES) -> Tensor:
    """(B,) proximity cost: reduction over pixels of proximity mask x vehicles channel.

    Args:
        images: (B, C, H, W) observations (rendered or predicted), values in [0, 1].
        speed: (B,) m/s (detached inside).
        ego_size: (B, 2) (length, width) m.
        channel: index of the vehicles channel.
    """
    mask = proximity_mask(speed, ego_size, raster, config, like=images)
    return _reduce(mask * images[:, channel], raster, config.reduction)


def lane_cost(images: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
              config: CostConfig = CostConfig(), channel: int = LANES) -> Tensor:
    """(B,) lane cost: reduction over pixels of lane mask x lane-markings channel (shapes as
    :func:`proximity_cost`)."""
    mask = lane_mask(speed, ego_size, raster, config, like=images)
    return _reduce(mask * images[:, channel], raster, config.reduction)


def offroad_cost(images: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                 config: CostConfig = CostConfig(), channel: int = OFFROAD) -> Tensor:
    """(B,) off-road cost: reduction over pixels of lane mask x off-road channel (shapes as
    :func:`proximity_cost`)."""
    mask = lane_mask(speed, ego_size, raster, config, like=images)
    return _reduce(mask * images[:, channel], raster, config.reduction)


def all_costs(images: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
              config: CostConfig = CostConfig()) -> Costs:
    """The three costs of (B, 4, H, W) observations in the :mod:`ppuu.simulator.raster` channel order."""
    lm = lane_mask(speed, ego_size, raster, config, like=images)
    pm = proximity_mask(speed, ego_size, raster, config, like=images)
    return Costs(_reduce(pm * images[:, VEHICLES], raster, config.reduction),
                 _reduce(lm * images[:, LANES], raster, config.reduction),
                 _reduce(lm * images[:, OFFROAD], raster, config.reduction))
