import pytest
import torch

from ppuu.simulator.road import EDGE, LANE_LINE, Road
from tests.simulator.conftest import LANE, i80_meta

W6 = 6 * LANE


def test_cells_are_disjoint_and_cover_main_road_and_ramp(i80_road):
    c = i80_road.cells
    area = ((c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])).sum()
    expected = (502.92 + 120) * W6 + (213 + 60) * LANE
    assert float(area) == pytest.approx(expected, rel=1e-9)
    # pairwise disjoint interiors
    for i in range(len(c)):
        for j in range(i + 1, len(c)):
            ox = min(c[i, 2], c[j, 2]) - max(c[i, 0], c[j, 0])
            oy = min(c[i, 3], c[j, 3]) - max(c[i, 1], c[j, 1])
            assert not (ox > 1e-9 and oy > 1e-9)


def test_offroad_points(i80_road):
    pts = torch.tensor([
        [100.0, -1.8],          # lane 1
        [100.0, 0.1],           # left of the road
        [100.0, -W6 - 1.0],     # on the ramp
        [250.0, -W6 - 1.0],     # past the ramp end
        [-59.0, -5.0],          # upstream margin
        [-61.0, -5.0],          # beyond it
        [562.0, -5.0],          # downstream margin
        [100.0, -W6 - LANE - 0.01],  # below the ramp
        [100.0, 0.0],           # on the edge: on the road
    ], dtype=torch.float64)
    expected = torch.tensor([False, True, False, True, False, True, False, True, False])
    assert torch.equal(i80_road.offroad(pts), expected)


def test_offroad_batch_shapes_and_dtype(i80_road):
    pts = torch.zeros(3, 4, 5, 2, dtype=torch.float32)
    pts[..., 1] = -2.0
    out = i80_road.offroad(pts)
    assert out.shape == (3, 4, 5) and out.dtype == torch.bool and not out.any()


def test_markings_i80(i80_road):
    m, k = i80_road.markings, i80_road.marking_kinds
    horiz = (m[:, 1] - m[:, 3]).abs() < 1e-9
    vert = (m[:, 0] - m[:, 2]).abs() < 1e-9
    assert bool((horiz | vert).all())
    lines = {(round(float(s[1]), 3), round(float(s[0]), 1), round(float(s[2]), 1), int(kk))
             for s, kk in zip(m[horiz], k[horiz])}
    # left edge over the whole road; five inner lane lines; lane 6 / ramp boundary is a lane line
    # until the ramp ends, an edge after; the ramp's outer edge
    assert (0.0, -60.0, 562.9, EDGE) in lines
    for i in range(1, 6):
        assert (round(-i * LANE, 3), -60.0, 562.9, LANE_LINE) in lines
    assert (round(-W6, 3), -60.0, 213.0, LANE_LINE) in lines
    assert (round(-W6, 3), 213.0, 562.9, EDGE) in lines
    assert (round(-W6 - LANE, 3), -60.0, 213.0, EDGE) in lines
    assert len(lines) == 9
    # the ramp's end is a transverse edge; the road's own ends are not drawn
    assert int(vert.sum()) == 1
    assert float(m[vert][0, 0]) == pytest.approx(213.0)


def test_markings_us101_two_ramps_and_auxiliary_lane(us101_road):
    m, k = us101_road.markings, us101_road.marking_kinds
    vert = (m[:, 0] - m[:, 2]).abs() < 1e-9
    assert sorted(float(x) for x in m[vert][:, 0]) == pytest.approx([130.0, 540.0])
    assert int((k == LANE_LINE).sum()) >= 4 + 1 + 2   # inner lines, main/aux boundary, aux/ramp boundaries


def test_arrival_and_lane_centres():
    road = Road.from_meta(i80_meta())
    assert road.arrival_x == pytest.approx(502.92 - 36.0)
    assert road.usable == (0.0, road.arrival_x)
    assert Road.from_meta(i80_meta(), arrival_x=251.0).arrival_x == 251.0
    assert torch.equal(road.arrived(torch.tensor([100.0, 470.0])), torch.tensor([False, True]))
    torch.testing.assert_close(road.lane_centres_y, torch.tensor([-(k - 0.5) * LANE for k in range(1, 7)],
                                                                 dtype=torch.float64))
    assert road.lane_count == 6 and road.width == pytest.approx(W6)


def test_sample_points_uniform_on_road(i80_road):
    g = torch.Generator().manual_seed(0)
    pts = i80_road.sample_points(20000, generator=g, x_range=(0.0, 400.0))
    assert not i80_road.offroad(pts).any()
    assert float(pts[:, 0].min()) >= 0 and float(pts[:, 0].max()) <= 400
    on_ramp = (pts[:, 1] < -W6).double().mean()
    expected = 213 * LANE / (400 * W6 + 213 * LANE)
    assert float(on_ramp) == pytest.approx(expected, abs=0.01)
    again = i80_road.sample_points(5, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    assert again.dtype == torch.float32 and again.shape == (5, 2)


def test_dashed_lane_lines():
    road = Road.from_meta(i80_meta(), dash=(3.0, 9.0))
    m, k = road.markings, road.marking_kinds
    lane = m[k == LANE_LINE]
    lengths = lane[:, 2] - lane[:, 0]
    assert float(lengths.max()) <= 3.0 + 1e-9
    assert int((k == EDGE).sum()) == int((Road.from_meta(i80_meta()).marking_kinds == EDGE).sum())


def test_bad_meta_raises():
    meta = i80_meta()
    meta.lane_widths = []
    with pytest.raises(ValueError, match="lane_widths"):
        Road.from_meta(meta)
