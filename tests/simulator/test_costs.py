import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppuu.data.scene import SceneMeta
from ppuu.simulator.costs import (CostConfig, all_costs, cost_profiles, ego_frame, lane_cost, lane_mask, offroad_cost,
                                  offroad_mask, proximity_cost, proximity_mask, safe_distance)
from ppuu.simulator.raster import LANES, OFFROAD, VEHICLES, RasterConfig, render
from ppuu.simulator.road import Road
from tests.simulator.conftest import LANE, i80_meta

CFG = RasterConfig()
PX = CFG.metres_per_pixel
F64 = dict(dtype=torch.float64)
ROAD = Road.from_meta(i80_meta())
COSTS = CostConfig().for_road(ROAD)
LANE3 = -2.5 * LANE


def scene(others, ego=(200.0, LANE3), size=(4.5, 1.8), heading=0.0, road=ROAD):
    """Render one observation; others = [(x, y, heading, length, width), ...]."""
    o = torch.tensor(others, **F64).reshape(1, -1, 5)
    return render(road, torch.tensor([ego], **F64), torch.tensor([heading], **F64), torch.tensor([size], **F64),
                  o[..., 0:2], o[..., 2], o[..., 3:5])


def batch_scene(ego_xy, heading, size, others=None, road=ROAD):
    """Render B observations: ego_xy (B, 2), heading (B,), size (B, 2); others (B, N, 5) or None."""
    B = ego_xy.shape[0]
    o = torch.zeros(B, 0, 5, **F64) if others is None else others
    return render(road, ego_xy, heading, size, o[..., 0:2], o[..., 2], o[..., 3:5])


def prox(img, speed, size=(4.5, 1.8), **kw):
    return float(proximity_cost(img, torch.tensor([speed], **F64), torch.tensor([size], **F64), **kw)[0])


def test_masks_shape_range_and_peak():
    speed = torch.tensor([0.0, 10.0, 30.0], **F64)
    size = torch.tensor([[4.5, 1.8], [4.0, 1.7], [12.0, 2.5]], **F64)
    for mask in (proximity_mask(speed, size), offroad_mask(speed, size, config=COSTS)):
        assert mask.shape == (3, CFG.length_px, CFG.width_px)
        assert float(mask.min()) == 0.0 and float(mask.max()) == 1.0
    # the mask is 1 over the whole footprint and reaches further at higher speed
    m = proximity_mask(speed, size)
    assert float(m[0, 58, 11]) == 1.0
    assert float((m[1] > 0).sum()) < float((m[2] > 0).sum())
    torch.testing.assert_close(safe_distance(speed), 1.5 * speed + 1.0)
    # lane weights: a one-pixel line under the ego's centre line (either centre column), as
    # long as the raster's rows the ego covers, sums to 1 whatever the ego's length
    lm = lane_mask(size, config=COSTS)
    assert lm.shape == (3, CFG.length_px, CFG.width_px) and float(lm.min()) == 0.0
    torch.testing.assert_close(lm[:, :, 11].sum(1), torch.ones(3, **F64))
    torch.testing.assert_close(lm[:, :, 12].sum(1), torch.ones(3, **F64))


# ---------------------------------------------------------------------------- proximity
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


@settings(max_examples=25, deadline=None)
@given(st.floats(3.5, 5.5), st.floats(1.6, 1.9), st.floats(3.5, 5.5), st.floats(1.6, 1.9), st.floats(-1.0, 1.0),
       st.floats(0.0, 30.0), st.sampled_from([1, -1]), st.floats(0.0, 1.0))
def test_neighbour_in_the_next_lane_costs_almost_nothing_until_it_comes_close(ego_l, ego_w, other_l, other_w,
                                                                              overlap, speed, side, phase):
    # Both cars lane-centred, side by side (the ego at a random sub-pixel position across the
    # road): the neighbour costs < 0.05; drifting towards the ego it costs more,
    # monotonically, up to 1 when the sides touch.
    ego_y = LANE3 + phase * PX / 2
    along = overlap * ((ego_l + other_l) / 2 - 0.3)
    gap_centred = LANE - (ego_w + other_w) / 2
    gaps = torch.linspace(gap_centred, 0.0, 25, **F64)
    B = len(gaps)
    others = torch.zeros(B, 1, 5, **F64)
    others[:, 0, 0] = 200.0 + along
    others[:, 0, 1] = ego_y + side * (ego_w / 2 + gaps + other_w / 2)
    others[:, 0, 3], others[:, 0, 4] = other_l, other_w
    size = torch.tensor([[ego_l, ego_w]] * B, **F64)
    img = batch_scene(torch.tensor([[200.0, ego_y]] * B, **F64), torch.zeros(B, **F64), size, others)
    cost = proximity_cost(img, torch.full((B,), speed, **F64), size)
    assert float(cost[0]) < 0.05
    assert torch.all(cost[1:] >= cost[:-1] - 1e-9)
    assert float(cost[-1]) == pytest.approx(1.0, abs=0.02)


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


def test_gradient_reaches_the_speed_and_the_image():
    img = scene([(208.0, LANE3, 0.0, 4.5, 1.8)]).requires_grad_(True)
    speed = torch.tensor([10.0], **F64, requires_grad=True)
    size = torch.tensor([[4.5, 1.8]], **F64)
    costs = all_costs(img, speed, size, config=COSTS)
    total = costs.proximity + costs.lane + costs.offroad
    total.sum().backward()
    assert img.grad is not None and float(img.grad[0, VEHICLES].abs().sum()) > 0
    assert float(img.grad[0, LANES].abs().sum()) > 0 and float(img.grad[0, OFFROAD].abs().sum()) > 0
    # a car 3.5 m ahead of the ego's front lies on the ramp: a faster ego needs more room, so its cost
    # rises with the speed, and the gradient says by as much as a finite difference does (it was
    # detached until 2026-12: a planner then took speeding up towards a car for cheaper than it is)
    h = 1e-4
    slope = (prox(img.detach(), 10.0 + h) - prox(img.detach(), 10.0 - h)) / (2 * h)
    assert slope > 0.01
    assert float(speed.grad[0]) == pytest.approx(slope, rel=1e-4)
    # sum variant too
    img.grad = None
    proximity_cost(img, speed, size, config=CostConfig(reduction="sum")).sum().backward()
    assert float(img.grad[0, VEHICLES].abs().sum()) > 0


def test_the_speed_gradient_comes_from_the_cars_ahead_not_from_those_behind():
    # behind, the safe distance is the follower's: its value still grows with the ego's speed (the mask
    # is symmetric), but speeding up does not bring the follower closer, so no gradient reaches the speed
    size = torch.tensor([[4.5, 1.8]], **F64)
    h = 1e-4
    for where, expect_gradient in ((208.0, True), (192.0, False)):
        img = scene([(where, LANE3, 0.0, 4.5, 1.8)])
        speed = torch.tensor([10.0], **F64, requires_grad=True)
        for reduction in ("max", "sum"):
            config = CostConfig(reduction=reduction)
            cost = proximity_cost(img, speed, size, config=config)
            grad, = torch.autograd.grad(cost.sum(), speed)
            slope = (float(proximity_cost(img, speed.detach() + h, size, config=config)[0])
                     - float(proximity_cost(img, speed.detach() - h, size, config=config)[0])) / (2 * h)
            assert slope > 0.01, (where, reduction)
            expected = slope if expect_gradient else 0.0
            assert float(grad[0]) == pytest.approx(expected, rel=1e-4, abs=1e-9), (where, reduction)
            with torch.no_grad():       # without a gradient the value is the same
                assert float(proximity_cost(img, speed, size, config=config)[0]) == float(cost.detach()[0])


# ---------------------------------------------------------------------------- lane
def straight_road(lane_width: float) -> Road:
    return Road.from_meta(SceneMeta(name=f"lanes-{lane_width}", site="test", source="test",
                                    lane_widths=[lane_width] * 4, section_length=400.0))


ROADS = {w: straight_road(w) for w in (3.0, 3.6576, 4.2)}


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(sorted(ROADS)), st.floats(0.0, 1.0), st.floats(-3.0, 3.0), st.floats(3.5, 6.0),
       st.floats(1.5, 2.2), st.floats(0.0, 30.0))
def test_lane_cost_rises_monotonically_from_lane_centre_to_line(lane_width, phase, heading_deg, length, width,
                                                                speed):
    # The ego sweeps from the centre of lane 2 across the line to lane 3's centre (offsets
    # 0 .. 1 lane, jittered by a random phase of the sweep's step), at a small heading.
    road = ROADS[lane_width]
    config = CostConfig().for_road(road)
    centre = -1.5 * lane_width
    offsets = torch.linspace(0.0, lane_width, 61, **F64)
    offsets = offsets + phase * float(offsets[1])
    B = len(offsets)
    ego = torch.stack([torch.full((B,), 200.0, **F64), centre - offsets], -1)
    size = torch.tensor([[length, width]] * B, **F64)
    img = batch_scene(ego, torch.full((B,), math.radians(heading_deg), **F64), size, road=road)
    cost = lane_cost(img, torch.full((B,), speed, **F64), size, config=config)
    line = int(torch.argmin((offsets - lane_width / 2).abs()))
    assert float(cost[0]) < 0.05                                       # lane centre
    assert float(cost[line]) >= 0.9                                    # centre line on the marking
    assert float(cost.max()) <= 1.0
    assert torch.all(cost[1:line + 1] >= cost[:line] - 2e-3)           # rises to the line ...
    after = int(torch.argmin((offsets - lane_width).abs()))           # the next lane's centre
    assert torch.all(cost[line + 1:after + 1] <= cost[line:after] + 2e-3)   # ... falls beyond it
    assert float(cost[after]) < 0.05                                   # to the next lane's centre
    # mid-way it is neither 0 nor 1: the rise is gradual, not a step
    quarter = int(torch.argmin((offsets - lane_width / 4).abs()))
    assert 0.2 < float(cost[quarter]) < 0.8


def test_lane_cost_is_the_tent_interpolated_between_pixel_centres():
    # A one-pixel line at lateral distance d covers the two columns around it with exactly the
    # weights of linear interpolation, so it costs the lateral tent interpolated linearly
    # between column centres (module docstring).
    offsets = torch.linspace(0.0, LANE / 2, 61, **F64)
    B = len(offsets)
    size = torch.tensor([[4.5, 1.8]] * B, **F64)
    img = batch_scene(torch.stack([torch.full((B,), 200.0, **F64), LANE3 - offsets], -1), torch.zeros(B, **F64), size)
    cost = lane_cost(img, torch.zeros(B, **F64), size, config=COSTS)
    columns = (torch.arange(12, **F64) + 0.5) * PX                       # column centres right of the centre line
    tent = ((LANE / 2 - 0.75 * PX - columns) / (LANE / 2 - 1.25 * PX)).clamp(0, 1)
    d = LANE / 2 - offsets
    expected = torch.from_numpy(np.interp(d.numpy(), columns.numpy(), tent.numpy()))
    assert float((cost - expected).abs().max()) < 0.03
    assert float(cost[0]) == pytest.approx(0.0, abs=0.01) and float(cost[-1]) == pytest.approx(1.0, abs=0.01)


def test_lane_width_comes_from_the_road():
    assert COSTS.lane_width == pytest.approx(LANE)
    assert CostConfig().for_road(ROADS[3.0]).lane_width == pytest.approx(3.0)
    assert CostConfig(lane_width=3.3).for_road(ROADS[3.0]).lane_width == 3.3      # explicit setting kept
    mixed = Road.from_meta(SceneMeta(name="mixed", site="test", source="test", lane_widths=[3.3, 3.0, 3.6],
                                     section_length=300.0))
    assert CostConfig().for_road(mixed).lane_width == pytest.approx(3.0)        # the narrowest lane
    img = scene([])
    args = (torch.zeros(1, **F64), torch.tensor([[4.5, 1.8]], **F64))
    with pytest.raises(ValueError, match="lane_width"):
        lane_cost(img, *args)
    with pytest.raises(ValueError, match="lane_width"):
        all_costs(img, *args)
    with pytest.raises(ValueError, match="2.5 pixels"):
        lane_cost(img, *args, config=CostConfig(lane_width=1.0))
    # a wider lane width in the config (the wrong scene) makes the centred ego pay for its lines
    assert float(lane_cost(img, *args, config=COSTS)) < 0.05
    assert float(lane_cost(img, *args, config=CostConfig(lane_width=5.0))) > 0.1


def test_lane_cost_of_a_blurred_image_stays_ordered():
    # Predicted images are blurred: blur spreads a line's coverage without changing its sum,
    # so the lane cost keeps its order from centre to line.
    offsets = torch.tensor([0.0, 0.5, 1.0, 1.5, LANE / 2], **F64)
    B = len(offsets)
    size = torch.tensor([[4.5, 1.8]] * B, **F64)
    img = batch_scene(torch.stack([torch.full((B,), 200.0, **F64), LANE3 - offsets], -1), torch.zeros(B, **F64), size)
    kernel = torch.tensor([0.25, 0.5, 0.25], **F64)
    blurred = img.clone()
    blurred[:, LANES] = torch.nn.functional.conv2d(img[:, LANES:LANES + 1], (kernel[:, None] * kernel)[None, None],
                                                   padding=1)[:, 0]
    sharp = lane_cost(img, torch.zeros(B, **F64), size, config=COSTS)
    soft = lane_cost(blurred, torch.zeros(B, **F64), size, config=COSTS)
    assert torch.all(soft[1:] > soft[:-1])
    assert float((soft - sharp).abs().max()) < 0.15


def test_offroad_cost():
    size = torch.tensor([[4.5, 1.8]], **F64)
    speed = torch.tensor([10.0], **F64)
    assert float(offroad_cost(scene([], ego=(200.0, LANE3)), speed, size, config=COSTS)) == 0.0
    inside_lane1 = offroad_cost(scene([], ego=(200.0, -LANE / 2)), speed, size, config=COSTS)
    half_off = offroad_cost(scene([], ego=(200.0, 0.0)), speed, size, config=COSTS)
    assert float(inside_lane1) < 0.05
    assert float(half_off) > 0.9
    # approaching the end of the ramp ahead raises the cost
    far = offroad_cost(scene([], ego=(150.0, -6.5 * LANE)), speed, size, config=COSTS)
    near = offroad_cost(scene([], ego=(205.0, -6.5 * LANE)), speed, size, config=COSTS)
    assert float(far) < 0.02 and float(near) > 0.3


def test_bad_config_raises():
    with pytest.raises(ValueError):
        CostConfig(reduction="mean")
    with pytest.raises(ValueError):
        CostConfig(lane_width=0.0)


# ---------------------------------------------------------------------------- pose
def traffic_batch(B: int, seed: int = 0):
    """B observations of the ego between lanes 2 and 4 with a few vehicles around, and their sizes/speeds."""
    g = torch.Generator().manual_seed(seed)

    def uniform(*shape):
        return torch.rand(*shape, generator=g, **F64)

    ego = torch.stack([200.0 + 20 * uniform(B), LANE3 + uniform(B) - 0.5], -1)
    others = torch.zeros(B, 4, 5, **F64)
    others[..., 0] = ego[:, None, 0] + torch.tensor([9.0, -12.0, 3.0, 25.0], **F64) + uniform(B, 4)
    others[..., 1] = LANE3 + torch.tensor([0.0, 0.3, LANE, -LANE + 0.5], **F64)
    others[..., 2] = 0.05 * (uniform(B, 4) - 0.5)
    others[..., 3], others[..., 4] = 4.5, 1.8
    size = torch.tensor([[4.5, 1.8]] * B, **F64)
    heading = 0.04 * (uniform(B) - 0.5)
    return batch_scene(ego, heading, size, others), size, 5 + 20 * uniform(B)


@pytest.mark.parametrize("reduction", ["max", "sum"])
def test_default_pose_equals_egocentric_costs(reduction):
    img, size, speed = traffic_batch(6)
    config = CostConfig(reduction=reduction).for_road(ROAD)
    zero = torch.zeros(6, 3, **F64)
    for a, b in zip(all_costs(img, speed, size, config=config), all_costs(img, speed, size, config=config, pose=zero)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert float(all_costs(img, speed, size, config=config).proximity.max()) > 0      # something to compare
    for mask in (proximity_mask, offroad_mask):
        torch.testing.assert_close(mask(speed, size, config=config).expand(6, -1, -1),
                                   mask(speed, size, config=config, pose=zero))
    torch.testing.assert_close(lane_mask(size, config=config).expand(6, -1, -1),
                               lane_mask(size, config=config, pose=zero))
    # all_costs agrees with the single-cost functions, with and without a pose
    pose = torch.tensor([[1.0, 0.3, 0.05]] * 6, **F64)
    for p in (None, pose):
        c = all_costs(img, speed, size, config=config, pose=p)
        torch.testing.assert_close(c.proximity, proximity_cost(img, speed, size, config=config, pose=p))
        torch.testing.assert_close(c.lane, lane_cost(img, speed, size, config=config, pose=p))
        torch.testing.assert_close(c.offroad, offroad_cost(img, speed, size, config=config, pose=p))


@pytest.mark.parametrize("reduction", ["max", "sum"])
def test_cost_profiles_made_once_give_the_same_costs(reduction):
    """The simulator makes each ego's size-dependent profiles once per episode: the costs must not
    change, and profiles are refused with a pose (they hold for the image centre)."""
    img, size, speed = traffic_batch(6)
    size = size * torch.tensor([[1.0, 1.0], [1.3, 1.1], [0.8, 0.9], [2.5, 1.4], [1.0, 1.0], [1.1, 1.2]], **F64)
    config = CostConfig(reduction=reduction).for_road(ROAD)
    plain = all_costs(img, speed, size, config=config)
    given = all_costs(img, speed, size, config=config, profiles=cost_profiles(size, config=config))
    assert float(plain.proximity.max()) > 0 and float(plain.lane.max()) > 0      # something to compare
    for a, b in zip(plain, given):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="centre"):
        all_costs(img, speed, size, config=config, pose=torch.zeros(6, 3, **F64),
                  profiles=cost_profiles(size, config=config))


def test_pose_frame_convention():
    # An ego at (along 1 m, left 1 m) turned 90 degrees to the left (counter-clockwise) sees a
    # pixel at image coordinates (a, l) at (l - 1) m ahead and (a - 1) m to its right.
    along, left = ego_frame(CFG, torch.zeros((), **F64), torch.tensor([[1.0, 1.0, math.pi / 2]], **F64))
    a_img, l_img = CFG.pixel_centres(torch.zeros((), **F64))
    torch.testing.assert_close(along[0], (l_img[None, :] - 1.0).expand_as(along[0]), rtol=0, atol=1e-12)
    torch.testing.assert_close(left[0], -(a_img[:, None] - 1.0).expand_as(left[0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("reduction", ["max", "sum"])
def test_shifting_the_pose_by_whole_pixels_equals_rendering_the_ego_there(reduction):
    # Moving the masks by (k, m) pixels inside the image is the same as rendering the ego
    # k pixels further ahead and m to the left (vehicles well inside both images).
    config = CostConfig(reduction=reduction).for_road(ROAD)
    k, m = 3, 1
    shift = torch.tensor([k * PX, m * PX], **F64)
    ego = torch.tensor([[200.0, LANE3 + 0.9]], **F64)
    others = torch.tensor([[[209.0, LANE3 + 0.4, 0.02, 4.5, 1.8], [194.0, LANE3 + LANE - 0.6, 0.0, 4.0, 1.7]]], **F64)
    size, speed = torch.tensor([[4.5, 1.8]], **F64), torch.tensor([8.0], **F64)
    here = batch_scene(ego, torch.zeros(1, **F64), size, others)
    there = batch_scene(ego + shift, torch.zeros(1, **F64), size, others)
    pose = torch.tensor([[k * PX, m * PX, 0.0]], **F64)
    moved = all_costs(here, speed, size, config=config, pose=pose)
    rendered = all_costs(there, speed, size, config=config)
    assert float(moved.proximity) > 0.05 and float(moved.lane) > 0.05
    for a, b in zip(moved, rendered):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_pose_heading_matches_rendering_the_ego_turned():
    # The lane cost of an ego turned by a pose heading inside an image rendered at heading 0
    # is close to the lane cost of an image rendered with the ego turned (sign convention:
    # heading counter-clockwise in both).
    offsets = torch.tensor([0.6, 1.0, 1.4], **F64)
    B = len(offsets)
    size = torch.tensor([[4.5, 1.8]] * B, **F64)
    ego = torch.stack([torch.full((B,), 200.0, **F64), LANE3 - offsets], -1)
    for heading in (0.03, -0.03):
        straight = batch_scene(ego, torch.zeros(B, **F64), size)
        turned = batch_scene(ego, torch.full((B,), heading, **F64), size)
        pose = torch.tensor([[0.0, 0.0, heading]] * B, **F64)
        a = lane_cost(straight, torch.zeros(B, **F64), size, config=COSTS, pose=pose)
        b = lane_cost(turned, torch.zeros(B, **F64), size, config=COSTS)
        assert float((a - b).abs().max()) < 0.02


@pytest.mark.parametrize("reduction", ["max", "sum"])
@pytest.mark.parametrize("where", ["ahead", "left"])
def test_moving_towards_a_vehicle_raises_the_cost_and_the_gradient_points_away(reduction, where):
    config = CostConfig(reduction=reduction)
    ahead, left = (9.0, 0.0) if where == "ahead" else (0.0, 3.0)
    img = scene([(200.0 + ahead, LANE3 + left, 0.0, 4.5, 1.8)])
    size, speed = torch.tensor([[4.5, 1.8]], **F64), torch.tensor([6.0], **F64)
    towards = torch.tensor([ahead, left], **F64) / math.hypot(ahead, left)
    steps = torch.linspace(0.0, 1.0, 6, **F64)
    poses = torch.cat([steps[:, None] * towards, torch.zeros(6, 1, **F64)], 1).requires_grad_(True)
    cost = proximity_cost(img.expand(6, -1, -1, -1), speed.expand(6), size.expand(6, 2), config=config, pose=poses)
    assert torch.all(cost[1:] > cost[:-1])                     # closer costs more
    cost.sum().backward()
    # the gradient has a positive component towards the vehicle: descending it moves away
    # (with "max", none where the brightest pixel sits in the mask's plateau: the reason for "sum")
    slope = poses.grad[:, :2] @ towards
    assert torch.all(slope >= 0)
    assert torch.all(slope > 0) if reduction == "sum" else int((slope > 0).sum()) >= 3


def test_gradient_reaches_the_pose_and_the_image():
    img, size, speed = traffic_batch(4, seed=1)
    # these egos drive mid-road: some off-road ground under the masks (a predicted image may show it)
    img[:, OFFROAD] = torch.rand(img[:, OFFROAD].shape, generator=torch.Generator().manual_seed(2), **F64)
    img = img.requires_grad_(True)
    pose = torch.tensor([[0.5, 0.4, 0.02], [-0.3, -0.6, -0.01], [1.0, 0.8, 0.0], [0.0, -0.9, 0.03]], **F64,
                        requires_grad=True)
    for name in ("proximity", "lane", "offroad"):
        img.grad, pose.grad = None, None
        config = COSTS if name != "offroad" else CostConfig(reduction="sum").for_road(ROAD)
        getattr(all_costs(img, speed, size, config=config, pose=pose), name).sum().backward()
        assert float(img.grad.abs().sum()) > 0, name
        assert torch.isfinite(pose.grad).all() and float(pose.grad.abs().sum()) > 0, name
    # the lane cost pulls the ego laterally towards its lane centre: d lane / d left > 0 when
    # the ego sits left of its centre (a line to its left)
    pose = torch.tensor([[0.0, 0.8, 0.0]], **F64, requires_grad=True)
    straight = scene([])
    lane_cost(straight, torch.zeros(1, **F64), size[:1], config=COSTS, pose=pose).sum().backward()
    assert float(pose.grad[0, 1]) > 0


@pytest.mark.parametrize("reduction", ["max", "sum"])
def test_gradients_match_finite_differences(reduction):
    # the masks are built with in-place updates: check autograd against finite differences
    img, size, speed = traffic_batch(2, seed=3)
    img = img.clamp(0.02, 0.98)                    # away from the clamp of [0, 1] images
    pose = torch.tensor([[0.37, 0.41, 0.021], [-0.52, -0.33, -0.013]], **F64)
    config = CostConfig(reduction=reduction).for_road(ROAD)
    for k in range(3):
        def cost(p, im, k=k):
            return all_costs(im, speed, size, config=config, pose=p)[k]
        assert torch.autograd.gradcheck(cost, (pose.clone().requires_grad_(True), img.clone().requires_grad_(True)),
                                        eps=1e-6, atol=1e-5, fast_mode=True)

        def egocentric(im, k=k):
            return all_costs(im, speed, size, config=config)[k]
        assert torch.autograd.gradcheck(egocentric, (img.clone().requires_grad_(True),), eps=1e-6, atol=1e-5,
                                        fast_mode=True)
