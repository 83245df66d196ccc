import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppuu.simulator.costs import (CostConfig, all_costs, lane_cost, lane_mask, offroad_cost, proximity_cost,
                             proximity_mask, safe_distance)
from ppuu.simulator.raster import VEHICLES, RasterConfig, render
from ppuu.simulator.road import Road
from tests.simulator.conftest import LANE, i80_meta

CFG = RasterConfig()
PX = CFG.metres_per_pixel
F64 = dict(dtype=torch.float64)
ROAD = Road.from_meta(i80_meta())
LANE3 = -2.5 * LANE


def scene(others, ego=(200.0, LANE3), size=(4.5, 1.8), heading=0.0):
    """Render one observation; others = [(x, y, heading, length, width), ...]."""
    o = torch.tensor(others, **F64).reshape(1, -1, 5)
    return render(ROAD, torch.tensor([ego], **F64), torch.tensor([heading], **F64), torch.tensor([size], **F64),
                  o[..., 0:2], o[..., 2], o[..., 3:5])


def prox(img, speed, size=(4.5, 1.8), **kw):
    return float(proximity_cost(img, torch.tensor([speed], **F64), torch.tensor([size], **F64), **kw)[0])


def test_masks_shape_range_and_peak():
    speed = torch.tensor([0.0, 10.0, 30.0], **F64)
    size = torch.tensor([[4.5, 1.8], [4.0, 1.7], [12.0, 2.5]], **F64)
    for mask in (proximity_mask(speed, size), lane_mask(speed, size)):
        assert mask.shape == (3, CFG.length_px, CFG.width_px)
        assert float(mask.min()) == 0.0 and float(mask.max()) == 1.0
    # the mask is 1 over the whole footprint and reaches further at higher speed
    m = proximity_mask(speed, size)
    assert float(m[0, 58, 11]) == 1.0
    assert float((m[1] > 0).sum()) < float((m[2] > 0).sum())
    torch.testing.assert_close(safe_distance(speed), 1.5 * speed + 1.0)


@settings(max_examples=40, deadline=None)
@given(st.floats(3.0, 6.0), st.floats(1.5, 2.2), st.floats(2.0, 15.0), st.floats(1.5, 2.6), st.floats(0.0, 35.0),
       st.floats(-0.2, 0.2), st.sampled_from(["ahead", "behind"]))
def test_touching_vehicle_costs_one(ego_l, ego_w, other_l, other_w, speed, lateral, where):
    sign = 1 if where == "ahead" else -1
    x = 200.0 + sign * (ego_l / 2 + other_l / 2)
    img = scene([(x, LANE3 + lateral, 0.0, other_l, other_w)], size=(ego_l, ego_w))
    assert prox(img, speed, (ego_l, ego_w)) == pytest.approx(1.0, abs=0.02)


@settings(max_examples=20, deadline=None)
@given(st.floats(3.0, 6.0), st.floats(1.5, 2.2), st.floats(3.0, 6.0), st.floats(-1.0, 1.0))
def test_touching_side_by_side_costs_one(ego_l, ego_w, other_l, along):
    y = LANE3 + ego_w / 2 + 1.8 / 2
    img = scene([(200.0 + along, y, 0.0, other_l, 1.8)], size=(ego_l, ego_w))
    assert prox(img, 10.0, (ego_l, ego_w)) == pytest.approx(1.0, abs=0.02)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 20.0), st.floats(0.0, 1.0), st.floats(-0.3, 0.3))
def test_vehicle_beyond_safe_distance_costs_zero(speed, extra, lateral):
    d_safe = 1.5 * speed + 1.0
    gap = d_safe + 2 * PX + 0.01 + extra
    if 2.25 + gap + 2.0 > CFG.length_m / 2:
        gap = CFG.length_m / 2 - 4.3        # keep it on the raster
        if gap < d_safe + 2 * PX:
            return
    img = scene([(200.0 + 2.25 + gap + 2.0, LANE3 + lateral, 0.0, 4.0, 1.8)])
    assert float(img[0, VEHICLES].sum()) > 5    # it is drawn (partly clipped near the raster's edge) ...
    assert prox(img, speed) == 0.0              # ... but costs nothing
    assert prox(img, speed, config=CostConfig(reduction="sum")) == 0.0


@settings(max_examples=15, deadline=None)
@given(st.floats(0.0, 25.0), st.floats(-0.5, 0.5), st.floats(0.0, 1.0))
def test_cost_rises_monotonically_as_a_vehicle_approaches(speed, lateral, phase):
    gaps = torch.linspace(30.0, 0.0, 61, **F64) + phase * PX
    x = 200.0 + 2.25 + gaps + 2.25
    B = len(gaps)
    centre = torch.stack([x, torch.full_like(x, LANE3 + lateral)], -1)[:, None, :]
    img = render(ROAD, torch.tensor([[200.0, LANE3]] * B, **F64), torch.zeros(B, **F64),
                 torch.tensor([[4.5, 1.8]] * B, **F64), centre, torch.zeros(B, 1, **F64),
                 torch.tensor([[[4.5, 1.8]]] * B, **F64))
    sizes = torch.tensor([[4.5, 1.8]] * B, **F64)
    for reduction in ("max", "sum"):
        cost = proximity_cost(img, torch.full((B,), speed, **F64), sizes, config=CostConfig(reduction=reduction))
        assert torch.all(cost[1:] >= cost[:-1] - 1e-9), reduction
    assert float(cost[0]) == 0.0 or speed > 15


def test_speed_is_detached_and_gradient_reaches_the_image():
    img = scene([(208.0, LANE3, 0.0, 4.5, 1.8)]).requires_grad_(True)
    speed = torch.tensor([10.0], **F64, requires_grad=True)
    size = torch.tensor([[4.5, 1.8]], **F64)
    costs = all_costs(img, speed, size)
    total = costs.proximity + costs.lane + costs.offroad
    total.sum().backward()
    assert img.grad is not None and float(img.grad[0, VEHICLES].abs().sum()) > 0
    assert speed.grad is None or float(speed.grad.abs().sum()) == 0.0
    # sum variant too
    img.grad = None
    proximity_cost(img, speed, size, config=CostConfig(reduction="sum")).sum().backward()
    assert float(img.grad[0, VEHICLES].abs().sum()) > 0


def test_lane_cost_low_in_lane_centre_high_on_a_line():
    size = torch.tensor([[4.5, 1.8]], **F64)
    speed = torch.tensor([10.0], **F64)
    centred = lane_cost(scene([], ego=(200.0, LANE3)), speed, size)
    on_line = lane_cost(scene([], ego=(200.0, -2 * LANE - 0.2)), speed, size)
    assert float(centred) < 0.06
    assert float(on_line) > 0.15
    # a quarter-lane off centre lies in between
    quarter = lane_cost(scene([], ego=(200.0, LANE3 + LANE / 4)), speed, size)
    assert float(centred) < float(quarter) < float(on_line)


def test_offroad_cost():
    size = torch.tensor([[4.5, 1.8]], **F64)
    speed = torch.tensor([10.0], **F64)
    assert float(offroad_cost(scene([], ego=(200.0, LANE3)), speed, size)) == 0.0
    inside_lane1 = offroad_cost(scene([], ego=(200.0, -LANE / 2)), speed, size)
    half_off = offroad_cost(scene([], ego=(200.0, 0.0)), speed, size)
    assert float(inside_lane1) < 0.05
    assert float(half_off) > 0.9
    # approaching the end of the ramp ahead raises the cost
    far = offroad_cost(scene([], ego=(150.0, -6.5 * LANE)), speed, size)
    near = offroad_cost(scene([], ego=(205.0, -6.5 * LANE)), speed, size)
    assert float(far) < 0.02 and float(near) > 0.3


def test_bad_reduction_raises():
    with pytest.raises(ValueError):
        CostConfig(reduction="mean")
