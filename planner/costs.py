"""The simulator's costs on predicted steps, for each way a world model places the ego car.

The planner never defines a cost of its own: these adapters only decide where the ego is in a
predicted image and call :func:`ppuu.simulator.costs.all_costs` (one definition, imported).

* :class:`EgocentricCosts` (``ego_model="learned"``, Henaff 2019): every predicted frame is
  centred on the ego and aligned with it, so the masks sit at the image centre; the ego's
  speed (which sets the safe distance) comes from the predicted state.
* :class:`PoseCosts` (``ego_model="kinematic"``, Sobal 2022): frames stay in the fixed frame of
  the last context step and the ego moves inside them, so the masks are placed at the ego's
  pose, read from its predicted state: gradients reach the pose, and through the kinematic
  model the actions, analytically.

* :class:`ContextRoadCosts` (``ego_model="learned"``, ``road_costs="context"``): proximity as
  :class:`EgocentricCosts`, but lane and off-road read from the road channels of the last *real*
  context frame at the ego's predicted pose relative to it (the road does not move, and the
  learned-ego model moves the ego on exact kinematics). The egocentric model's own predicted lane
  markings follow small steering only in part, so its lane cost gives the wheel little and biased
  signal (BENCHMARKS.md, "Releasing the wheel"); read from the real frame, a steering error costs
  what it costs in the simulator, and its gradient reaches the curvature analytically. The real
  frame reaches ``raster.length_m / 2`` ahead (36 m by default): beyond it the road reads as empty,
  so this suits horizons the ego covers in less (15 steps at up to about 20 m/s).

In all of them the gradient reaches the speed as well as the pose: the safe distance ahead grows
with the speed, and an optimiser that did not see that took accelerating towards a car ahead for
about seven times cheaper than it is (:mod:`ppuu.simulator.costs`, "The safe distance ahead is
differentiable").

A cost model may depend on the context it imagines from (``ContextRoadCosts``): the rollout
calls :func:`at_context` once per rollout, which binds it to the context's last frame and state.

Both return (M, 3) costs (proximity, lane, off-road) for M predicted samples: images
(M, C, H, W) in the raster's channel order (lanes, vehicles, off-road), normalised states
(M, 4), ego sizes (M, 2) m.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppuu.simulator.costs import CostConfig, all_costs
from ppuu.simulator.raster import RasterConfig
from ppuu.world_model.normalisation import Normaliser

MIN_HEADING_SPEED = 1e-3
"""m/s: below this speed the velocity gives no heading; the frame's own direction (0) is used."""


class EgocentricCosts:
    """Costs with the ego at the image centre (module docstring).

    Args:
        normaliser: the world model's statistics (to read the speed from predicted states).
        raster: the images' :class:`~ppuu.simulator.raster.RasterConfig`.
        config: the :class:`~ppuu.simulator.costs.CostConfig`, with the scene's lane width.
    """

    def __init__(self, normaliser: Normaliser, raster: RasterConfig, config: CostConfig):
        if config.lane_width is None:
            raise ValueError("EgocentricCosts: the cost config needs the scene's lane width (CostConfig.for_road)")
        self.normaliser, self.raster, self.config = normaliser, raster, config

    def __call__(self, images: Tensor, states: Tensor, size: Tensor) -> Tensor:
        physical = self.normaliser.to(states.device).denormalise_states(states)
        speed = physical[:, 2:4].norm(dim=-1)
        return torch.stack(all_costs(images, speed, size, self.raster, self.config), dim=-1)


def _heading_and_speed(velocity: Tensor) -> tuple[Tensor, Tensor]:
    """Velocities (M, 2) m/s -> (heading (M,) rad, speed (M,) m/s); heading 0 below
    :data:`MIN_HEADING_SPEED`, with no NaN gradient at rest."""
    squared = (velocity * velocity).sum(-1)
    moving = squared > MIN_HEADING_SPEED ** 2
    safe = torch.where(moving[:, None], velocity, torch.ones_like(velocity))
    heading = torch.where(moving, torch.atan2(safe[:, 1], safe[:, 0]), torch.zeros_like(squared))
    speed = torch.sqrt(torch.where(moving, squared, torch.ones_like(squared))) * moving
    return heading, speed


class PoseCosts:
    """Costs with the masks at the ego's pose inside a fixed frame (module docstring).

    The states are (x, y, vx, vy) in the fixed frame: metres ahead of and to the left of the
    frame's origin (the ego at the last context step), velocities in that frame. The image's
    centre lies ``centre_ahead`` m ahead of the origin.

    Args:
        normaliser, raster, config: as :class:`EgocentricCosts`.
        centre_ahead: m, where the image centre is along the frame's x axis.
    """

    def __init__(self, normaliser: Normaliser, raster: RasterConfig, config: CostConfig, centre_ahead: float):
        if config.lane_width is None:
            raise ValueError("PoseCosts: the cost config needs the scene's lane width (CostConfig.for_road)")
        self.normaliser, self.raster, self.config = normaliser, raster, config
        self.centre_ahead = float(centre_ahead)

    def pose(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised states (M, 4) -> (pose (M, 3) = (along m, left m, heading rad) relative to the
        image centre, speed (M,) m/s)."""
        physical = self.normaliser.to(states.device).denormalise_states(states)
        heading, speed = _heading_and_speed(physical[:, 2:4])
        pose = torch.stack([physical[:, 0] - self.centre_ahead, physical[:, 1], heading], dim=-1)
        return pose, speed

    def __call__(self, images: Tensor, states: Tensor, size: Tensor) -> Tensor:
        pose, speed = self.pose(states)
        return torch.stack(all_costs(images, speed, size, self.raster, self.config, pose=pose), dim=-1)


class ContextRoadCosts:
    """Proximity from the predicted egocentric frame, lane and off-road from the last real context
    frame at the predicted pose (module docstring). Call :meth:`at_context` before scoring.

    Args:
        normaliser, raster, config: as :class:`EgocentricCosts`.
    """

    def __init__(self, normaliser: Normaliser, raster: RasterConfig, config: CostConfig):
        self.proximity = EgocentricCosts(normaliser, raster, config)
        self.normaliser, self.raster, self.config = normaliser, raster, config

    def at_context(self, last_image: Tensor, last_state: Tensor) -> "_BoundContextRoadCosts":
        """Bind to M contexts: ``last_image`` (M, C, H, W) the last real frame (egocentric, in [0, 1]),
        ``last_state`` (M, 4) its normalised state. The predicted samples scored next must come in
        the same order (M of them)."""
        return _BoundContextRoadCosts(self, last_image, last_state)

    def __call__(self, images: Tensor, states: Tensor, size: Tensor) -> Tensor:
        raise TypeError("ContextRoadCosts reads the road from the context: bind it with at_context() first "
                        "(ppuu.planner.costs.at_context)")


class _BoundContextRoadCosts:
    """:class:`ContextRoadCosts` bound to M contexts: scores M predicted samples at a time.

    The frame's axis is the context's last velocity; a context at rest (below
    :data:`MIN_HEADING_SPEED`) carries no heading in its state, and its axis is taken along the road
    (heading 0), where the simulator rendered it with the car's own heading: a stopped car's road
    costs are read up to that angle off (small on a highway, where cars stop lined up with the road)."""

    def __init__(self, parent: ContextRoadCosts, last_image: Tensor, last_state: Tensor):
        physical = parent.normaliser.to(last_state.device).denormalise_states(last_state)
        heading, _ = _heading_and_speed(physical[:, 2:4])
        self.parent = parent
        self.origin = physical[:, :2]                                          # (M, 2) world m
        self.unit = torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)   # the frame's axis
        self.road = last_image                    # only its lanes and off-road channels are read

    def pose(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised predicted states (M, 4) -> (pose (M, 3) = (along m, left m, heading rad) relative to
        the context's last frame, whose centre is the ego there; speed (M,) m/s)."""
        physical = self.parent.normaliser.to(states.device).denormalise_states(states)
        offset, velocity = physical[:, :2] - self.origin, physical[:, 2:4]
        u = self.unit
        rotate = torch.stack([u[:, 0], u[:, 1], -u[:, 1], u[:, 0]], dim=-1).view(-1, 2, 2)  # world -> (along, left)
        along_left = (rotate @ offset[:, :, None])[:, :, 0]
        heading, speed = _heading_and_speed((rotate @ velocity[:, :, None])[:, :, 0])
        return torch.cat([along_left, heading[:, None]], dim=-1), speed

    def __call__(self, images: Tensor, states: Tensor, size: Tensor) -> Tensor:
        if images.shape[0] != self.road.shape[0]:
            raise ValueError(f"ContextRoadCosts bound to {self.road.shape[0]} contexts got {images.shape[0]} samples")
        proximity = self.parent.proximity(images, states, size)[:, 0]
        pose, speed = self.pose(states)
        _, lane, offroad = all_costs(self.road, speed, size, self.parent.raster, self.parent.config, pose=pose)
        return torch.stack([proximity, lane, offroad], dim=-1)


def at_context(cost_model, last_image: Tensor, last_state: Tensor):
    """The cost model to score predictions from contexts whose last frame is ``last_image`` (M, C, H, W)
    and state ``last_state`` (M, 4): bound where the model reads the context (:class:`ContextRoadCosts`),
    else the model itself."""
    bind = getattr(cost_model, "at_context", None)
    return cost_model if bind is None else bind(last_image, last_state)
