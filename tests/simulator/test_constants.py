"""Cached constants stay ordinary tensors when first made in inference mode (the simulator's step
runs there): a later differentiable use of the same cache must work."""

import torch

from ppuu.simulator import collision, costs, dynamics, raster
from ppuu.simulator.collision import box_corners
from ppuu.simulator.costs import CostConfig, all_costs, cost_profiles
from ppuu.simulator.dynamics import ActionBounds, heading_axes
from ppuu.simulator.raster import render
from ppuu.simulator.road import Road
from tests.simulator.conftest import LANE, i80_meta

FACTORIES = (collision._corner_signs, dynamics._axes_basis, dynamics._bound_tensors, raster._pixel_centres,
             raster._vehicle_constants, costs._pixel_centres, costs._centre_distances,
             costs._centre_laterals)


def test_constants_first_made_in_inference_mode_serve_gradients_later():
    for factory in FACTORIES:
        factory.cache_clear()
    road = Road.from_meta(i80_meta())                      # a fresh road: empty texture cache
    config = CostConfig().for_road(road)
    dtype = torch.float64
    ego = torch.tensor([[150.0, -2.5 * LANE]], dtype=dtype)
    size = torch.tensor([[4.5, 1.8]], dtype=dtype)
    others = torch.tensor([[[160.0, -2.5 * LANE]]], dtype=dtype)
    heading = torch.zeros(1, 1, dtype=dtype)

    def use(centre):
        image = render(road, centre.detach(), torch.zeros(1, dtype=dtype), size, others, heading, size[:, None])
        image = image + centre.sum() * 1e-3                  # a predicted image: differentiable
        speed = torch.full((1,), 10.0, dtype=dtype)
        cost = all_costs(image, speed, size, config=config, profiles=cost_profiles(size, config=config))
        turn = centre[:, 0] * 1e-3
        unit = torch.stack([torch.cos(turn), torch.sin(turn)], dim=-1)
        corners = box_corners(centre, unit, size) + heading_axes(unit)[:, :1]
        action = ActionBounds().clip(centre * 0.01)
        return sum(c.sum() for c in cost) + image.sum() + corners.sum() + action.sum()

    with torch.inference_mode():                           # as inside the simulator's step
        use(ego)
    cached = [value.data if isinstance(value, raster._Texture) else value for value in road.cache.values()]
    tensors = [t for value in cached for t in (value if isinstance(value, tuple) else (value,))]
    assert tensors and not any(t.is_inference() for t in tensors)
    centre = ego.clone().requires_grad_(True)
    use(centre).backward()                                 # the same caches, now with gradients
    assert centre.grad is not None and torch.isfinite(centre.grad).all() and float(centre.grad.abs().sum()) > 0
