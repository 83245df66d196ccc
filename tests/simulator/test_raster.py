import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppuu.simulator import raster
from ppuu.simulator.raster import CHANNELS, EGO, LANES, OFFROAD, VEHICLES, RasterConfig, render, render_traffic_frames
from ppuu.simulator.road import Road
from tests.simulator.conftest import LANE, i80_meta

CFG = RasterConfig()
H, W, PPM = CFG.length_px, CFG.width_px, CFG.pixels_per_metre
F64 = dict(dtype=torch.float64)
LANE3 = -2.5 * LANE   # centre of lane 3 on I-80: the raster sees only road (+-7.4 m)
_ROAD = Road.from_meta(i80_meta())   # for hypothesis tests (function-scoped fixtures do not mix with @given)


def one(road, ego=(200.0, LANE3), heading=0.0, size=(4.5, 1.8), others=(), dtype=torch.float64, config=CFG):
    """Render one observation; others = [(x, y, heading, length, width), ...]."""
    kw = dict(dtype=dtype)
    o = torch.tensor(others, **kw).reshape(1, -1, 5)
    return render(road, torch.tensor([ego], **kw), torch.tensor([heading], **kw), torch.tensor([size], **kw),
                  o[..., 0:2], o[..., 2], o[..., 3:5], None, config)[0]


def brute_force(road, ego, heading, others, k=16, config=CFG):
    """Per-pixel coverage by k x k point samples: (vehicles, offroad, lanes) each (H, W)."""
    along, left = config.pixel_centres(torch.zeros((), **F64))
    p = config.metres_per_pixel
    off = (torch.arange(k, **F64) + 0.5) / k * p - p / 2
    a = (along[:, None, None, None] + off[None, None, :, None]).expand(H, W, k, k)
    l = (left[None, :, None, None] + off[None, None, None, :]).expand(H, W, k, k)
    c, s = math.cos(heading), math.sin(heading)
    x = ego[0] + a * c - l * s
    y = ego[1] + a * s + l * c
    pts = torch.stack([x, y], -1)
    veh = torch.zeros(H, W, k, k, dtype=torch.bool)
    for ox, oy, oh, ol, ow in others:
        dx, dy = x - ox, y - oy
        u = dx * math.cos(oh) + dy * math.sin(oh)
        v = -dx * math.sin(oh) + dy * math.cos(oh)
        veh |= (u.abs() < ol / 2) & (v.abs() < ow / 2)
    offroad = road.offroad(pts)
    lanes = torch.zeros(H, W, k, k, dtype=torch.bool)
    hw = config.line_width / 2
    for x0, y0, x1, y1 in road.markings.tolist():
        lanes |= (x >= min(x0, x1) - (hw if x0 == x1 else 0)) & (x <= max(x0, x1) + (hw if x0 == x1 else 0)) \
            & (y >= min(y0, y1) - (hw if y0 == y1 else 0)) & (y <= max(y0, y1) + (hw if y0 == y1 else 0))
    return veh.double().mean((-1, -2)), offroad.double().mean((-1, -2)), lanes.double().mean((-1, -2))


def test_config_geometry():
    assert CFG.shape == (4, 117, 24)
    assert CFG.length_m == pytest.approx(72.0)
    assert CFG.width_m == pytest.approx(14.77, abs=0.01)
    assert CHANNELS[LANES] == "lanes" and CHANNELS[VEHICLES] == "vehicles"
    assert CHANNELS[OFFROAD] == "offroad" and CHANNELS[EGO] == "ego"
    along, left = CFG.pixel_centres(torch.zeros(()))
    assert along[0] > 0 and along[-1] < 0 and left[0] > 0 and left[-1] < 0
    assert float(along[58]) == 0.0


def test_shape_range_dtype(i80_road):
    img = one(i80_road, others=[(210.0, LANE3, 0.0, 4.0, 1.8)], dtype=torch.float32)
    assert img.shape == (4, H, W) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0


@settings(max_examples=30, deadline=None)
@given(st.floats(1.0, 20.0), st.floats(0.5, 3.0), st.floats(-math.pi, math.pi))
def test_ego_channel_is_footprint_area(length, width, heading):
    img = one(_ROAD, heading=heading, size=(length, width))
    visible_l = min(length, CFG.length_m)
    visible_w = min(width, CFG.width_m)
    assert float(img[EGO].sum()) == pytest.approx(visible_l * visible_w * PPM ** 2, rel=1e-9)


def test_orientation_ahead_is_up_left_is_left(i80_road):
    img = one(i80_road, others=[(215.0, LANE3 + 3.0, 0.0, 4.0, 1.8)])
    rows, cols = torch.nonzero(img[VEHICLES] > 0.5, as_tuple=True)
    assert float(rows.double().mean()) < 58 and float(cols.double().mean()) < 11.5
    # rotated ego: the road's left edge (y = 0) seen from lane 1 heading left lies ahead-left
    img = one(i80_road, ego=(200.0, -LANE / 2), heading=0.2)
    assert float(img[OFFROAD, :20, :6].mean()) > float(img[OFFROAD, -20:, :6].mean())


def test_aligned_vehicle_area_exact_and_overlap_drawn_once(i80_road):
    car = (212.3, LANE3 + 1.1, 0.0, 4.4, 1.9)
    img = one(i80_road, others=[car])
    assert float(img[VEHICLES].sum()) == pytest.approx(4.4 * 1.9 * PPM ** 2, rel=1e-9)
    twice = one(i80_road, others=[car, car])
    torch.testing.assert_close(twice, img)
    assert float(img[VEHICLES].max()) <= 1.0


@pytest.mark.parametrize("where", ["ahead", "behind", "left", "right"])
def test_vehicle_half_outside_is_clipped(i80_road, where):
    L, Wd = 6.0, 2.0
    x, y = 200.0, LANE3
    if where == "ahead":
        x += CFG.length_m / 2            # centre exactly on the front edge of the raster
        visible = (L / 2) * Wd
    elif where == "behind":
        x -= CFG.length_m / 2 - 1.0      # 1 m of the car's rear half beyond the back edge
        visible = (L / 2 + 1.0) * Wd
    elif where == "left":
        y += CFG.width_m / 2 + 0.5       # 0.5 m beyond the left edge
        visible = L * (Wd / 2 - 0.5)
    else:
        y -= CFG.width_m / 2 - 0.3
        visible = L * (Wd / 2 + 0.3)
    img = one(i80_road, ego=(200.0, LANE3), others=[(x, y, 0.0, L, Wd)])
    assert float(img[VEHICLES].sum()) == pytest.approx(visible * PPM ** 2, rel=1e-6)


def test_far_vehicles_and_absent_vehicles_not_drawn(i80_road):
    B, N = 2, 3
    centre = torch.tensor([[[300.0, LANE3], [float("nan"), 0.0], [205.0, LANE3]]] * B, **F64)
    mask = torch.tensor([[True, False, False], [True, True, False]])
    img = render(i80_road, torch.tensor([[200.0, LANE3]] * B, **F64), torch.zeros(B, **F64),
                 torch.tensor([[4.5, 1.8]] * B, **F64), centre, torch.zeros(B, N, **F64),
                 torch.full((B, N, 2), 2.0, **F64), mask)
    assert torch.isfinite(img).all()
    assert float(img[:, VEHICLES].sum()) == 0.0


def test_no_other_vehicles(i80_road):
    img = render(i80_road, torch.tensor([[200.0, LANE3]]), torch.zeros(1), torch.tensor([[4.5, 1.8]]),
                 torch.zeros(1, 0, 2), torch.zeros(1, 0), torch.zeros(1, 0, 2))
    assert img.shape == (1, 4, H, W) and float(img[0, VEHICLES].sum()) == 0.0


def test_rotated_vehicles_match_brute_force(i80_road):
    ego, heading = (200.0, LANE3), 0.05
    others = [(212.0, LANE3 + 0.4, 0.3, 4.5, 1.8), (190.0, LANE3 - 3.5, -0.1, 4.0, 1.7),
              (225.0, LANE3 + 3.0, 0.0, 16.0, 2.6), (197.0, LANE3 + 5.0, 1.2, 5.0, 2.0)]
    img = one(i80_road, ego=ego, heading=heading, others=others)
    veh, _, _ = brute_force(i80_road, ego, heading, others)
    err = (img[VEHICLES] - veh).abs()
    assert float(err.max()) < 0.15
    assert float(err.mean()) < 0.01
    assert float(img[VEHICLES].sum()) == pytest.approx(float(veh.sum()), rel=0.02)


@pytest.mark.parametrize("marking_width", [None, 0.15])
@pytest.mark.parametrize("ego, heading", [((200.0, -LANE / 2), 0.0), ((205.3, -6 * LANE + 0.4), 0.1),
                                          ((210.0, -3.1), -0.25)])
def test_road_channels_match_brute_force(i80_road, ego, heading, marking_width):
    config = RasterConfig(marking_width=marking_width)
    img = one(i80_road, ego=ego, heading=heading, config=config)
    _, offroad, lanes = brute_force(i80_road, ego, heading, [], k=24, config=config)
    err = (img[OFFROAD] - offroad).abs()
    assert float(err.max()) < 0.1 and float(err.mean()) < 0.01
    assert float(img[OFFROAD].sum()) == pytest.approx(float(offroad.sum()), abs=2.0)   # px^2
    # lines: total ink agrees; per pixel within the sampling noise of the reference, except
    # that a rotated ego sees a one-pixel line's corner with a ramp's transverse edge through a
    # world-aligned texel square (up to 0.18 off at that one pixel at 0.1 rad)
    err = (img[LANES] - lanes).abs()
    assert float(img[LANES].sum()) == pytest.approx(float(lanes.sum()), rel=0.05)
    assert float(err.max()) < (0.1 if marking_width is not None or heading == 0 else 0.2)
    assert float(err.flatten().quantile(0.99)) < 0.03


@pytest.mark.parametrize("marking_width, peak", [(None, 1.0), (0.15, 0.15 * PPM)])
def test_lane_line_intensity_is_line_width_over_pixel(i80_road, marking_width, peak):
    # ego heading along the road with a lane line through the middle of a pixel column
    config = RasterConfig(marking_width=marking_width)
    col = 5
    left_of_col = ((W - 1) / 2 - col) / PPM
    img = one(i80_road, ego=(200.0, -2 * LANE - left_of_col), config=config)
    profile = img[LANES, 40]
    # (the texture's bilinear interpolation rounds a one-pixel line's peak by up to 1/16)
    assert float(profile[col]) == pytest.approx(peak, abs=0.05)
    assert float(profile[col - 2:col + 3].sum()) == pytest.approx(config.line_width * PPM, abs=0.03)
    assert float(img[OFFROAD].sum()) == 0.0


@settings(max_examples=25, deadline=None)
@given(st.floats(-2.0, 2.0))
def test_default_lines_carry_their_subpixel_position(offset):
    # A line one pixel wide spreads over two columns in proportion to its position: the
    # coverage-weighted centroid of a row is the line's lateral position (a painted-width
    # line inside one pixel would read as that pixel's centre wherever it lies).
    line_y = -2 * LANE
    img = one(_ROAD, ego=(200.0, line_y - offset))      # the line is `offset` m to the ego's left
    _, left = CFG.pixel_centres(torch.zeros((), **F64))
    row = img[LANES, 40]
    near = left.sub(offset).abs() < 1.5                  # columns around this line only
    centroid = float((row * left)[near].sum() / row[near].sum())
    assert centroid == pytest.approx(offset, abs=0.02)
    assert float(row[near].sum()) == pytest.approx(1.0, abs=0.01)


@settings(max_examples=15, deadline=None)
@given(st.floats(-0.5, 0.5), st.floats(-0.3, 0.3), st.floats(0.0, 1.0))
def test_subpixel_translation_changes_image_continuously(dx, heading, frac):
    road = _ROAD
    base = (200.0 + dx, LANE3 + 1.0 + frac)
    others = [(210.0, LANE3 + 0.7, heading, 4.5, 1.8), (185.0, LANE3 - 3.3, 0.0, 4.0, 1.7)]

    def shifted(px):
        """Move the ego by px pixels along the road and px/2 across, with the others fixed."""
        m = px / PPM
        return one(road, ego=(base[0] + m, base[1] + 0.5 * m), heading=heading, others=others)

    a = shifted(0.0)
    diff = (a - shifted(0.1)).abs()
    # coverage is 1-Lipschitz in pixel units: a 0.1 px move changes no pixel by more than ~0.1
    for c in (VEHICLES, OFFROAD, LANES):
        assert float(diff[c].max()) < 0.16
    assert float(diff[EGO].max()) == 0.0
    # and the change shrinks with the move: 0.01 px changes no pixel by more than ~0.01, and the
    # whole image by at most (move in px) x (length of all edges in px: 6 lines x 2 sides x 117
    # rows + the road edge < 1,600 px)
    small = (a - shifted(0.01)).abs()
    assert float(small.max()) < 0.02
    assert float(small.sum()) < 0.0112 * 1600


def test_float32_and_float64_give_the_same_image(i80_road):
    others = [(212.0, LANE3 + 0.4, 0.3, 4.5, 1.8), (190.0, LANE3 - 3.5, -0.1, 4.0, 1.7)]
    kw = dict(ego=(205.3, -6 * LANE + 0.4), heading=0.1, others=others)
    a = one(i80_road, dtype=torch.float32, **kw)
    b = one(i80_road, dtype=torch.float64, **kw)
    torch.testing.assert_close(a.double(), b, atol=2e-4, rtol=0)


def test_batch_equals_single_renders_and_large_vehicle_window(i80_road, monkeypatch):
    g = torch.Generator().manual_seed(3)
    B, N = 6, 10
    ego = i80_road.sample_points(B, g, x_range=(50, 400))
    heading = (torch.rand(B, generator=g, **F64) - 0.5) * 0.2
    centre = ego[:, None] + (torch.rand(B, N, 2, generator=g, **F64) - 0.5) * torch.tensor([60.0, 14.0], **F64)
    oh = (torch.rand(B, N, generator=g, **F64) - 0.5) * 0.4
    size = torch.tensor([4.5, 1.8], **F64).repeat(B, N, 1)
    size[:, 0] = torch.tensor([18.0, 2.6], **F64)          # one truck per observation
    es = torch.tensor([[4.5, 1.8]] * B, **F64)
    batch = render(i80_road, ego, heading, es, centre, oh, size)
    for i in range(B):
        single = render(i80_road, ego[i:i + 1], heading[i:i + 1], es[i:i + 1], centre[i:i + 1], oh[i:i + 1],
                        size[i:i + 1])
        torch.testing.assert_close(batch[i:i + 1], single)
    # without the separate large-vehicle window the result is the same
    wide = RasterConfig(large_vehicle_length=100.0, large_vehicle_width=100.0)
    torch.testing.assert_close(render(i80_road, ego, heading, es, centre, oh, size, None, wide), batch)
    # and whether a few visible vehicles go in one group or large ones get their own windows
    for one_group_up_to in (0, 10_000):
        monkeypatch.setattr(raster, "_ONE_GROUP_UP_TO", one_group_up_to)
        torch.testing.assert_close(render(i80_road, ego, heading, es, centre, oh, size), batch)


def test_traffic_frames_around_one_pose_equal_separate_renders(i80_road):
    """render_traffic_frames (the road once per pose) gives render's images for every (pose, frame), ego
    channel empty, absent vehicles (masked or NaN) not drawn."""
    g = torch.Generator().manual_seed(4)
    S, F_, N = 3, 5, 8
    pose = i80_road.sample_points(S, g, x_range=(50, 400))
    heading = (torch.rand(S, generator=g, **F64) - 0.5) * 0.2
    unit = torch.stack([heading.cos(), heading.sin()], -1)
    spread = torch.tensor([60.0, 14.0], **F64)
    centre = pose[:, None, None] + (torch.rand(S, F_, N, 2, generator=g, **F64) - 0.5) * spread
    oh = (torch.rand(S, F_, N, generator=g, **F64) - 0.5) * 0.4
    o_unit = torch.stack([oh.cos(), oh.sin()], -1)
    size = torch.tensor([4.5, 1.8], **F64).repeat(S, F_, N, 1)
    mask = torch.rand(S, F_, N, generator=g) > 0.2
    centre[0, 1, 0] = float("nan")
    frames = render_traffic_frames(i80_road, pose, unit, centre, o_unit, size, mask)
    assert frames.shape == (S, F_, len(CHANNELS), 117, 24)
    ego_size = torch.tensor([[4.5, 1.8]], **F64)
    for s in range(S):
        for f in range(F_):
            single = render(i80_road, pose[s:s + 1], unit[s:s + 1], ego_size, centre[s:s + 1, f], o_unit[s:s + 1, f],
                            size[s:s + 1, f], mask[s:s + 1, f])
            single[:, EGO] = 0.0
            torch.testing.assert_close(frames[s, f], single[0])
    assert frames[:, :, VEHICLES].sum() > 0 and frames[:, :, EGO].abs().sum() == 0


def test_thousand_observations_in_one_call(i80_road):
    g = torch.Generator().manual_seed(0)
    B, N = 1024, 60
    ego = i80_road.sample_points(B, g, x_range=(0, 450)).float()
    centre = ego[:, None] + torch.randn(B, N, 2, generator=g) * torch.tensor([30.0, 6.0])
    img = render(i80_road, ego, torch.zeros(B), torch.tensor([4.5, 1.8]).expand(B, 2), centre,
                 torch.randn(B, N, generator=g) * 0.05, torch.tensor([4.5, 1.8]).expand(B, N, 2))
    assert img.shape == (B, 4, H, W)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(i80_road):
    g = torch.Generator().manual_seed(5)
    B, N = 64, 30
    ego = i80_road.sample_points(B, g, x_range=(50, 400)).float()
    args = (ego, torch.randn(B, generator=g) * 0.05, torch.tensor([4.5, 1.8]).expand(B, 2),
            ego[:, None] + torch.randn(B, N, 2, generator=g) * torch.tensor([20.0, 5.0]),
            torch.randn(B, N, generator=g) * 0.05, torch.tensor([4.5, 1.8]).expand(B, N, 2))
    cpu = render(i80_road, *args)
    gpu = render(i80_road, *(a.cuda() for a in args))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)
