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

In both the gradient reaches the speed as well as the pose: the safe distance ahead grows with
the speed, and an optimiser that did not see that took accelerating towards a car ahead for about
seven times cheaper than it is (:mod:`ppuu.simulator.costs`, "The safe distance ahead is
differentiable").

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
        velocity = physical[:, 2:4]
        squared = (velocity * velocity).sum(-1)
        moving = squared > MIN_HEADING_SPEED ** 2
        safe = torch.where(moving[:, None], velocity, torch.ones_like(velocity))   # no NaN gradient at rest
        heading = torch.where(moving, torch.atan2(safe[:, 1], safe[:, 0]), torch.zeros_like(squared))
        speed = torch.sqrt(torch.where(moving, squared, torch.ones_like(squared))) * moving
        pose = torch.stack([physical[:, 0] - self.centre_ahead, physical[:, 1], heading], dim=-1)
        return pose, speed

    def __call__(self, images: Tensor, states: Tensor, size: Tensor) -> Tensor:
        pose, speed = self.pose(states)
        return torch.stack(all_costs(images, speed, size, self.raster, self.config, pose=pose), dim=-1)
