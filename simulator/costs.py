"""Differentiable proximity, lane and off-road costs of an observation (SPEC §4).

Why here: the planner minimises these costs on *predicted* observations, and the simulator
reports them on *rendered* ones; both must use one definition. They read only the image,
the ego's speed, size and pose in the image, the lane width and the raster geometry, so
they work on any (B, C, H, W) tensor laid out as :mod:`ppuu.simulator.raster` renders it,
and gradients flow into the image and the pose.

**Masks are functions of metric ego-frame coordinates.** Every pixel centre is placed in
the ego's frame: ``along`` m ahead of the ego centre, ``left`` m to its left. By default the
ego sits at the image centre with heading 0 (the egocentric images the simulator renders);
with ``pose`` = (along, left, heading) (B, 3), m, m, rad, relative to the image centre and
its up direction (heading counter-clockwise, towards the left), the pixel centres are
shifted and rotated into that pose first, so the masks follow an ego that moves inside a
fixed image (Sobal et al. 2022) and the costs are differentiable with respect to the pose.
At the default pose the profiles are separable ((B, H, 1) along, (1 or B, 1, W) across);
with a pose they are (B, H, W). Every profile is a ramp of the distance |along| or |left|:
1 up to some distance, linear to 0 at another.

* **Proximity** (vehicles channel): longitudinal ramp 1 up to ``plateau`` beyond the
  footprint's front/rear, 0 a safe distance ``d_safe = safe_time * speed + safe_margin``
  further (1.5 s x speed + 1 m), times a lateral ramp 1 up to ``plateau`` beyond the footprint's
  sides, 0 ``lateral_widths`` ego widths further. ``plateau`` is 1.5 pixels (0.92 m): a
  vehicle that touches the footprint fully covers some pixel whose centre lies at most
  1.5 px from it (which one depends on the sub-pixel phase), so with the plateau a
  touching vehicle costs 1 at every phase; the price is the resolution's: gaps under about
  a pixel cannot be told from touching. Ahead and behind, a vehicle more than ``d_safe`` +
  2 px from the footprint costs exactly 0.

  *Lateral reach.* The reference's mask reaches 0 one car width from the ego's centre
  line, so a car in the next lane costs nothing. Here it reaches 0 at ``width/2 + plateau
  + lateral_widths * width``, with ``lateral_widths = 0.5``: one car width from the centre
  line, as the reference, plus the plateau that makes touching cost 1 (2.72 m for a 1.8 m
  car). Measured (``scripts/bench_costs.py``, BENCHMARKS.md "Costs"): a lane-centred
  neighbour in the next lane, side by side, 1.8 m cars, cost 0.246 with the former
  ``lateral_widths = 1.0`` and costs 0.000 now (1.6 m cars 0.000, 1.85 m 0.002; two 2.0 m
  cars, whose sides are 1.66 m apart, 0.105; a 2.5 m truck as the ego, 0.271); a touching
  vehicle still costs 1. On the default scene's test split the recorded human's mean cost
  per step falls from 0.292 to 0.155, no action's from 0.453 to 0.384. Narrower reaches
  buy little more (human 0.150 at 0.4, 0.141 at 0.25, 0.139 at 0.05): what remains is
  following traffic in the same lane, not a lateral floor.
  *The safe distance ahead is differentiable in the speed; behind, it is not.* Ahead, the
  distance is the ego's own stopping distance: a faster ego needs more room, and a planner
  must be told so. Behind, it is the follower's, which the ego's speed does not change (a
  faster ego pulls away). The value is the same both ways; only the gradient differs. Until
  2026-12 the speed was detached everywhere ("so that a policy cannot shrink the mask by
  slowing down"): the mean gradient of the proximity cost with respect to a constant
  acceleration, over 30 steps of 64 test windows of the default scene (fixed frame, traffic a
  3,000-step model predicts), was 0.021 per m/s^2 where its finite difference is 0.152, so
  accelerating towards a car looked nearly free (``scripts/cost_ranking.py --gradient-check``;
  BENCHMARKS.md "Can planning through the model beat no action?"). Differentiable on both sides
  the gradient equals the finite difference, but then every car behind also charges the ego for
  its speed, and MPC through the demo's model braked into the replayed followers (14.6 % success
  on 48 test episodes against 29.2 % detached and 31.3 % with the gradient ahead only; no action
  25.0 %).
* **Lane** (lane-markings channel): the markings are drawn one pixel wide (see
  :mod:`ppuu.simulator.raster`) and the cost is the mask-weighted **sum** of the channel,
  normalised by the coverage of one line as long as the ego (``length x line_width``): how
  much line lies under the ego's centre line, not the brightest pixel. Longitudinal
  weights: the ego footprint's coverage of each row (they sum to length / pixel size
  along any axis, whatever the phase). Lateral tent: 1 within ``p/2`` of the ego's centre
  line (p = pixel size, 0.615 m), 0 from ``lane_width/2 - 3p/4``. A one-pixel line covers
  the two columns around it with exactly the weights of linear interpolation, so a line
  parallel to the ego at lateral distance d costs the tent interpolated linearly between
  column centres: a function of d alone, continuous, monotone, the same at every sub-pixel
  phase. The tent stops ``3p/4`` short of half a lane because a one-pixel line's coverage
  reaches a pixel beyond it: a lane-centred ego then pays at most ``p / (64 (lane_width/2 -
  5p/4))`` per line at any phase or pose (0.009 on I-80, 0.013 with 3 m lanes) while the
  ramp stays as long as possible. On I-80 lanes (3.66 m), against the ego's offset from
  its lane centre: 0.000 at 0 m, 0.016 at 0.3 m, 0.211 at 0.6 m, 0.419 at 0.9 m, 0.697 at
  1.2 m, 0.976 at 1.5 m, 1.000 on the line; at a 3 degree heading within 0.02 of that (the
  same tent averaged along the car). With painted-width (0.15 m) lines the same cost is a
  staircase, flat over 58 % of the offsets between 0.35 and 1.45 m: a line inside one pixel
  renders the same wherever it lies. Blur moves coverage without changing its sum, so a
  predicted image's lane cost degrades gracefully (flatter, still ordered). The window is
  the car's own length, not the safe distance: "how far is the car over a line now"; a
  30-step plan anticipates by itself, and a look-ahead would make a car at its lane
  centre with a 3 degree heading pay for the line it nears 20 m ahead. Clamped to at most
  1 (exceeded only where a transverse marking, the end of a ramp, adds to a line). Dashed
  lines (``Road.from_meta(dash=...)``) cost the painted fraction of the car's length.
* **Off-road** (off-road channel, an area): the proximity longitudinal ramp (so the end of
  a ramp ahead is seen a safe distance before), times a lateral ramp 1 on the pixels the
  ego's centre line passes through (``p/2``), 0 half a lane further.

Reduction (``CostConfig.reduction``, proximity and off-road): ``max`` over pixels of mask x
channel (the reference's; in [0, 1]) or ``sum``: the mask-weighted sum times the pixel area,
in m^2 (smoother; Sobal 2022). The lane cost is always the normalised sum above, in [0, 1].

The lane width is the scene's (:meth:`CostConfig.for_road`; the simulator and
:mod:`ppuu.simulator.recording` set it from their road), never a constant.

Speed: nothing depends on the batch but the ramps' parameters; pixel centres are cached.
At the default pose a call on B = 1024 observations creates two (B, H, W) tensors (``max``)
or none (``sum``: matrix products); with a pose, about a dozen. Freshly allocated large
tensors cost page faults on a CPU, so the masks are updated in place where autograd allows.

Shapes: images (B, C, H, W); speed (B,) m/s; ego_size (B, 2) (length, width) m; pose (B, 3)
(along m, left m, heading rad) or None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor

from ppuu.simulator.constants import cached_constant
from ppuu.simulator.raster import LANES, OFFROAD, VEHICLES, RasterConfig
from ppuu.simulator.road import Road


@dataclass(frozen=True)
class CostConfig:
    """Shape of the cost masks (module docstring).

    ``lane_width`` None means "the scene's": :meth:`for_road` fills it in; the lane and
    off-road costs refuse a config without it.
    """

    safe_time: float = 1.5            #: s, time headway of the safe distance
    safe_margin: float = 1.0          #: m, added to the safe distance
    lateral_widths: float = 0.5       #: proximity mask falls to 0 over this many ego widths beyond the plateau
    lane_width: float | None = None   #: m, the scene's lane width; None until set from the road
    reduction: str = "max"            #: proximity and off-road: "max" (in [0, 1]) or "sum" (m^2)

    def __post_init__(self) -> None:
        if self.reduction not in ("max", "sum"):
            raise ValueError(f"CostConfig.reduction {self.reduction!r}; expected 'max' or 'sum'")
        if not (self.safe_margin > 0 and self.lateral_widths > 0 and self.safe_time >= 0
                and (self.lane_width is None or self.lane_width > 0)):
            raise ValueError(f"CostConfig: positive safe_margin, lateral_widths, lane_width expected, got {self}")

    def for_road(self, road: Road) -> "CostConfig":
        """This config with the road's lane width (its narrowest main-road lane, so that every
        lane centre costs 0) unless ``lane_width`` was set explicitly."""
        if self.lane_width is not None:
            return self
        if road.lane_count == 0:
            raise ValueError("the road has no lane widths: set CostConfig.lane_width explicitly")
        return replace(self, lane_width=float(road.lane_widths.min()))

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
    """(B,) m/s -> (B,) m: ``safe_time * speed + safe_margin`` (differentiable in the speed; the masks
    use that gradient ahead of the ego only)."""
    return config.safe_time * speed.clamp(min=0) + config.safe_margin


# ---------------------------------------------------------------------------- geometry
@cached_constant(maxsize=16)
def _pixel_centres(raster: RasterConfig, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    along, left = raster.pixel_centres(torch.empty(0, device=device, dtype=dtype))
    return along[None, :, None], left[None, None, :]


def ego_frame(raster: RasterConfig, like: Tensor, pose: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Metric coordinates of every pixel centre in the ego's frame.

    Args:
        like: tensor giving device/dtype.
        pose: (B, 3) = (along m, left m, heading rad) of the ego relative to the image centre
            and its up direction (heading counter-clockwise); None = at the centre, heading 0.

    Returns:
        ``along``, ``left`` (m ahead of / to the left of the ego centre): (1, H, 1) and
        (1, 1, W) without a pose (the image's own coordinates, cached), (B, H, W) each with one.
    """
    along, left = _pixel_centres(raster, like.device, like.dtype)
    if pose is None:
        return along, left
    if pose.dim() != 2 or pose.shape[-1] != 3:
        raise ValueError(f"pose of shape {tuple(pose.shape)}: expected (B, 3) = (along m, left m, heading rad)")
    pose = pose.to(like.dtype)
    d_along = along - pose[:, 0, None, None]                 # (B, H, 1)
    d_left = left - pose[:, 1, None, None]                   # (B, 1, W)
    cos, sin = torch.cos(pose[:, 2, None, None]), torch.sin(pose[:, 2, None, None])
    return d_along * cos + d_left * sin, d_left * cos - d_along * sin


def _distances(raster: RasterConfig, like: Tensor, pose: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """|along|, |left| of :func:`ego_frame` (every mask is symmetric in value) and ``ahead`` (along >= 0,
    bool): the safe distance's gradient differs ahead of and behind the ego (:func:`_safe_profile`)."""
    if pose is None:
        return _centre_distances(raster, like.device, like.dtype)
    along, left = ego_frame(raster, like, pose)
    return along.abs(), left.abs(), along >= 0


@cached_constant(maxsize=16)
def _centre_distances(raster: RasterConfig, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_distances` at the image centre, made once (read only)."""
    along, left = _pixel_centres(raster, device, dtype)
    return along.abs(), left.abs(), along >= 0


def _per_sample(x: Tensor, like: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1) on ``like``'s dtype, to broadcast against ego-frame coordinates."""
    return (x if x.dtype == like.dtype else x.to(like.dtype)).view(-1, 1, 1)


def _lane_width(config: CostConfig) -> float:
    if config.lane_width is None:
        raise ValueError("CostConfig.lane_width is None: the lane width comes from the scene; "
                         "pass config.for_road(road)")
    return config.lane_width


# ---------------------------------------------------------------------------- profiles
def _ramp(distance: Tensor, one_until, zero_at) -> Tensor:
    """1 up to ``one_until``, linear to 0 at ``zero_at`` (floats or tensors that broadcast against
    ``distance``), 0 beyond. One
    new tensor, updated in place (autograd supports it; the tests check gradients against
    finite differences), because fresh (B, H, W) tensors, not arithmetic, dominate on a CPU."""
    return torch.rsub(distance, zero_at).mul_(1.0 / (zero_at - one_until)).clamp_(0, 1)   # zero_at - distance


def _safe_profile(along: Tensor, ahead: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig,
                  config: CostConfig, flat: Tensor | None = None) -> Tensor:
    """Proximity / off-road longitudinal profile of |along| (m): 1 up to ``plateau`` beyond the
    footprint's front/rear, 0 a safe distance further. The same distance ahead and behind; its
    gradient reaches the speed ahead only (``ahead``: along >= 0; module docstring). ``flat``: the
    (B, 1, 1) m where the ramp starts, when known (:class:`CostProfiles`)."""
    if flat is None:
        flat = _safe_start(ego_size, along, raster)
    d = _per_sample(safe_distance(speed.detach(), config), along)
    profile = _ramp(along, flat, flat + d)
    if speed.requires_grad:
        # Ahead, the ego's own stopping distance: its derivative reaches the speed. Added as a term of
        # value 0 whose gradient is d(profile)/d(d) = (1 - profile) / d on the ramp ahead (first order,
        # exact), which costs one (B, H, W) product instead of a per-pixel safe distance in the ramp.
        with torch.no_grad():
            slope = (1 - profile).div_(d).mul_((profile > 0) & (profile < 1) & ahead)
        profile = profile + (_per_sample(safe_distance(speed, config), along) - d) * slope
    return profile


def _safe_start(ego_size: Tensor, like: Tensor, raster: RasterConfig) -> Tensor:
    """(B, 1, 1) m: where the safe profile leaves 1, ``plateau`` beyond the footprint's front/rear."""
    return _per_sample(ego_size[:, 0], like) / 2 + plateau(raster)


def _proximity_lateral(left: Tensor, ego_size: Tensor, raster: RasterConfig, config: CostConfig) -> Tensor:
    width = _per_sample(ego_size[:, 1], left)
    flat = width / 2 + plateau(raster)
    return _ramp(left, flat, flat + config.lateral_widths * width)


def _lane_profiles(along: Tensor, left: Tensor, ego_size: Tensor, raster: RasterConfig,
                   config: CostConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Lane weights as factors: the footprint's coverage of each row (per pixel; ego lengths of
    at least a pixel), the lateral tent, and the (B,) scale ``p^2 / (length x line_width)`` that
    makes a line the ego's length long under the tent's plateau sum to 1 (module docstring)."""
    p = raster.metres_per_pixel
    lateral = _lane_lateral(left, raster, config)
    half_length = _per_sample(ego_size[:, 0], along) / 2
    longitudinal = _ramp(along, half_length - p / 2, half_length + p / 2)
    scale = p * p / (ego_size[:, 0].to(along.dtype) * raster.line_width)
    return longitudinal, lateral, scale


def _lane_lateral(left: Tensor, raster: RasterConfig, config: CostConfig) -> Tensor:
    """The lane mask's lateral tent (of |left| m)."""
    p = raster.metres_per_pixel
    half_lane = _lane_width(config) / 2
    if half_lane <= 1.25 * p:
        raise ValueError(f"lane_width {2 * half_lane} m is under 2.5 pixels ({2.5 * p:.3f} m): no lane cost")
    return _ramp(left, p / 2, half_lane - 0.75 * p)


def _offroad_lateral(left: Tensor, raster: RasterConfig, config: CostConfig) -> Tensor:
    p = raster.metres_per_pixel
    return _ramp(left, p / 2, p / 2 + _lane_width(config) / 2)


# ---------------------------------------------------------------------------- masks
def proximity_mask(speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                   config: CostConfig = CostConfig(), like: Tensor | None = None,
                   pose: Tensor | None = None) -> Tensor:
    """(B, H, W) proximity mask (module docstring); a gradient to ``speed`` from the part ahead only.

    Args:
        speed: (B,) m/s.
        ego_size: (B, 2) (length, width) m.
        like: tensor giving device/dtype (default ``speed``).
        pose: (B, 3) ego pose in the image (see :func:`ego_frame`) or None.
    """
    along, left, ahead = _distances(raster, speed if like is None else like, pose)
    return (_safe_profile(along, ahead, speed, ego_size, raster, config)
            * _proximity_lateral(left, ego_size, raster, config))


def lane_mask(ego_size: Tensor, raster: RasterConfig = RasterConfig(), config: CostConfig = CostConfig(),
              like: Tensor | None = None, pose: Tensor | None = None) -> Tensor:
    """(B, H, W) lane-cost weights per unit of lanes-channel value (module docstring): a line of
    the raster's ``line_width`` under the ego's centre line, as long as the ego, sums to 1.

    Args:
        ego_size: (B, 2) (length, width) m.
        like: tensor giving device/dtype (default ``ego_size``).
        pose: (B, 3) ego pose in the image (see :func:`ego_frame`) or None.
    """
    along, left, _ = _distances(raster, ego_size if like is None else like, pose)
    longitudinal, lateral, scale = _lane_profiles(along, left, ego_size, raster, config)
    return longitudinal * lateral * scale[:, None, None]


def offroad_mask(speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                 config: CostConfig = CostConfig(), like: Tensor | None = None,
                 pose: Tensor | None = None) -> Tensor:
    """(B, H, W) off-road mask (module docstring); a gradient to ``speed`` from the part ahead only.
    Arguments as :func:`proximity_mask`."""
    along, left, ahead = _distances(raster, speed if like is None else like, pose)
    return _safe_profile(along, ahead, speed, ego_size, raster, config) * _offroad_lateral(left, raster, config)


# ---------------------------------------------------------------------------- reductions
def _separable(longitudinal: Tensor, lateral: Tensor) -> bool:
    """Profiles of the default pose: (B, H, 1) and (1 or B, 1, W)."""
    return longitudinal.shape[-1] == 1 and lateral.shape[-2] == 1


def _weighted(longitudinal: Tensor, lateral: Tensor, channel: Tensor) -> Tensor:
    """(B, H, W) longitudinal x lateral x channel, in one new tensor (see :func:`_ramp`)."""
    return (channel * lateral).mul_(longitudinal)


def _weighted_sum(longitudinal: Tensor, lateral: Tensor, channel: Tensor) -> Tensor:
    """(B,) sum over pixels of longitudinal x lateral x channel (B, H, W); separable profiles
    take a matrix product instead of a (B, H, W) product."""
    if _separable(longitudinal, lateral):
        rows = torch.matmul(channel, lateral.transpose(-1, -2))                  # (B, H, 1)
        return (rows * longitudinal).sum(dim=(1, 2))
    return _weighted(longitudinal, lateral, channel).sum(dim=(1, 2))


def _weighted_max(longitudinal: Tensor, lateral: Tensor, channel: Tensor) -> Tensor:
    """(B,) max over pixels of longitudinal x lateral x channel (B, H, W) (over all pixels at
    once: a max over rows of 24 pixels vectorises badly)."""
    return _weighted(longitudinal, lateral, channel).flatten(1).amax(dim=1)


def _reduce(longitudinal: Tensor, lateral: Tensor, channel: Tensor, raster: RasterConfig, reduction: str) -> Tensor:
    """(B,) ``max`` of, or ``sum`` (x pixel area, m^2) of, longitudinal x lateral x channel."""
    if reduction == "max":
        return _weighted_max(longitudinal, lateral, channel)
    return _weighted_sum(longitudinal, lateral, channel) * raster.metres_per_pixel ** 2


def _proximity(safe: Tensor, left: Tensor, channel: Tensor, ego_size: Tensor, raster: RasterConfig,
               config: CostConfig) -> Tensor:
    """``safe``: the longitudinal profile (:func:`_safe_profile`)."""
    return _reduce(safe, _proximity_lateral(left, ego_size, raster, config), channel, raster, config.reduction)


def _lane(along: Tensor, left: Tensor, channel: Tensor, ego_size: Tensor, raster: RasterConfig,
          config: CostConfig) -> Tensor:
    longitudinal, lateral, scale = _lane_profiles(along, left, ego_size, raster, config)
    return (_weighted_sum(longitudinal, lateral, channel) * scale).clamp(max=1.0)


def _offroad(safe: Tensor, left: Tensor, channel: Tensor, ego_size: Tensor, raster: RasterConfig,
             config: CostConfig) -> Tensor:
    """``safe``: the longitudinal profile (:func:`_safe_profile`)."""
    return _reduce(safe, _offroad_lateral(left, raster, config), channel, raster, config.reduction)


# ---------------------------------------------------------------------------- costs
def proximity_cost(images: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                   config: CostConfig = CostConfig(), channel: int = VEHICLES, pose: Tensor | None = None) -> Tensor:
    """(B,) proximity cost: reduction over pixels of proximity mask x vehicles channel.

    Args:
        images: (B, C, H, W) observations (rendered or predicted), values in [0, 1].
        speed: (B,) m/s (sets the safe distance; gradients flow through it ahead of the ego only).
        ego_size: (B, 2) (length, width) m.
        channel: index of the vehicles channel.
        pose: (B, 3) ego pose in the image (see :func:`ego_frame`) or None (image centre).
    """
    along, left, ahead = _distances(raster, images, pose)
    safe = _safe_profile(along, ahead, speed, ego_size, raster, config)
    return _proximity(safe, left, images[:, channel], ego_size, raster, config)


def lane_cost(images: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
              config: CostConfig = CostConfig(), channel: int = LANES, pose: Tensor | None = None) -> Tensor:
    """(B,) lane cost in [0, 1]: normalised mask-weighted sum of the lane-markings channel
    (module docstring; ``speed`` is unused, kept for one signature; shapes as :func:`proximity_cost`)."""
    along, left, _ = _distances(raster, images, pose)
    return _lane(along, left, images[:, channel], ego_size, raster, config)


def offroad_cost(images: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                 config: CostConfig = CostConfig(), channel: int = OFFROAD, pose: Tensor | None = None) -> Tensor:
    """(B,) off-road cost: reduction over pixels of off-road mask x off-road channel (shapes as
    :func:`proximity_cost`)."""
    along, left, ahead = _distances(raster, images, pose)
    safe = _safe_profile(along, ahead, speed, ego_size, raster, config)
    return _offroad(safe, left, images[:, channel], ego_size, raster, config)


class CostProfiles(NamedTuple):
    """The mask factors that depend on the ego's size only, at the image centre (no pose): whoever
    scores one ego over many frames (the simulator) makes them once per episode with
    :func:`cost_profiles` and passes them to :func:`all_costs`."""

    proximity_lateral: Tensor   #: (B, 1, W)
    lane_longitudinal: Tensor   #: (B, H, 1)
    lane_scale: Tensor          #: (B,)
    safe_start: Tensor          #: (B, 1, 1) m, where the safe profile leaves 1


def cost_profiles(ego_size: Tensor, raster: RasterConfig = RasterConfig(),
                  config: CostConfig = CostConfig()) -> CostProfiles:
    """:class:`CostProfiles` of egos of (B, 2) (length, width) m, on ``ego_size``'s device and dtype."""
    along, left, _ = _distances(raster, ego_size, None)
    longitudinal, _, scale = _lane_profiles(along, left, ego_size, raster, config)
    return CostProfiles(_proximity_lateral(left, ego_size, raster, config), longitudinal, scale,
                        _safe_start(ego_size, left, raster))


@cached_constant(maxsize=16)
def _centre_laterals(raster: RasterConfig, config: CostConfig, device: torch.device,
                     dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The lane and off-road lateral profiles at the image centre, (1, 1, W) each: they depend on
    the raster and the lane width only (read only)."""
    _, left, _ = _centre_distances(raster, device, dtype)
    return _lane_lateral(left, raster, config), _offroad_lateral(left, raster, config)


def all_costs(images: Tensor, speed: Tensor, ego_size: Tensor, raster: RasterConfig = RasterConfig(),
              config: CostConfig = CostConfig(), pose: Tensor | None = None,
              profiles: CostProfiles | None = None) -> Costs:
    """The three costs of (B, 4, H, W) observations in the :mod:`ppuu.simulator.raster` channel
    order (equal to the three single-cost functions, sharing their coordinates and profiles);
    ``pose`` (B, 3) places the masks at the ego's pose in the image (None: the centre);
    ``profiles``, the egos' :func:`cost_profiles` when known (the centre only)."""
    if profiles is not None and pose is not None:
        raise ValueError("all_costs: cost profiles hold for the image centre; give them without a pose")
    along, left, ahead = _distances(raster, images, pose)
    safe = _safe_profile(along, ahead, speed, ego_size, raster, config,
                         None if profiles is None else profiles.safe_start)
    if profiles is not None:
        lane_lateral, offroad_lateral = _centre_laterals(raster, config, images.device, images.dtype)
        lane = _weighted_sum(profiles.lane_longitudinal, lane_lateral, images[:, LANES]) * profiles.lane_scale
        return Costs(_reduce(safe, profiles.proximity_lateral, images[:, VEHICLES], raster, config.reduction),
                     lane.clamp(max=1.0),
                     _reduce(safe, offroad_lateral, images[:, OFFROAD], raster, config.reduction))
    return Costs(_proximity(safe, left, images[:, VEHICLES], ego_size, raster, config),
                 _lane(along, left, images[:, LANES], ego_size, raster, config),
                 _offroad(safe, left, images[:, OFFROAD], ego_size, raster, config))
