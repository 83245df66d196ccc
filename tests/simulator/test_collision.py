import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ppuu.simulator.collision import any_collision, box_corners, boxes_overlap, footprint_offroad
from tests.simulator.conftest import LANE

F64 = dict(dtype=torch.float64)


# --- brute force, independent of the separating-axis code: clip one polygon by the other ---
def _corners(cx, cy, ang, length, width):
    c, s = math.cos(ang), math.sin(ang)
    pts = []
    for dl, dw in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
        x, y = dl * length / 2, dw * width / 2
        pts.append((cx + c * x - s * y, cy + s * x + c * y))
    return pts


def _clip(subject, clipper):
    """Sutherland-Hodgman: subject polygon clipped by a convex counter-clockwise polygon."""
    out = subject
    for i in range(len(clipper)):
        a, b = clipper[i], clipper[(i + 1) % len(clipper)]
        inp, out = out, []
        if not inp:
            break

        def inside(p):
            return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0

        def cross(p, q):
            x1, y1, x2, y2 = p[0], p[1], q[0], q[1]
            x3, y3, x4, y4 = a[0], a[1], b[0], b[1]
            den = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4)
            if den == 0:       # p-q lies along the clip line (its ends on either side only by rounding)
                return q
            t = ((x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4)) / den
            return (x1 + t * (x2 - x1), y1 + t * (y2 - y1))

        for j in range(len(inp)):
            p, q = inp[j], inp[(j + 1) % len(inp)]
            if inside(q):
                if not inside(p):
                    out.append(cross(p, q))
                out.append(q)
            elif inside(p):
                out.append(cross(p, q))
    return out


def _area(poly):
    return abs(sum(poly[i][0] * poly[(i + 1) % len(poly)][1] - poly[(i + 1) % len(poly)][0] * poly[i][1]
                   for i in range(len(poly)))) / 2 if len(poly) >= 3 else 0.0


def overlap_area(a, b):
    return _area(_clip(_corners(*a), _corners(*b)))


def sat(a, b, margin=0.0):
    ca = torch.tensor([[a[0], a[1]]], **F64)
    cb = torch.tensor([[[b[0], b[1]]]], **F64)
    return bool(boxes_overlap(ca, torch.tensor([a[2]], **F64), torch.tensor([[a[3], a[4]]], **F64),
                              cb, torch.tensor([[b[2]]], **F64), torch.tensor([[[b[3], b[4]]]], **F64),
                              margin=margin)[0, 0])


# --- hand-made cases ---
@pytest.mark.parametrize("gap, expected", [(0.0, False), (0.01, False), (-0.01, True), (1.0, False)])
def test_bumper_to_bumper(gap, expected):
    a = (0.0, 0.0, 0.0, 4.5, 1.8)
    b = (4.5 / 2 + 5.0 / 2 + gap, 0.0, 0.0, 5.0, 2.0)
    assert sat(a, b) is expected


@pytest.mark.parametrize("gap, expected", [(0.0, False), (0.01, False), (-0.01, True)])
def test_side_by_side(gap, expected):
    a = (10.0, -5.0, 0.0, 4.5, 1.8)
    b = (11.0, -5.0 + 0.9 + 1.0 + gap, 0.0, 4.0, 2.0)
    assert sat(a, b) is expected


def test_rotated_corner_into_edge():
    # a diamond (45 degrees) whose corner points at the box's front face
    half_diag = math.hypot(2.0, 2.0) / 2
    for gap, expected in ((0.01, False), (-0.01, True)):
        a = (0.0, 0.0, 0.0, 4.0, 2.0)
        b = (2.0 + half_diag + gap, 0.0, math.pi / 4, 2.0, 2.0)
        assert sat(a, b) is expected


def test_corner_near_corner_separated_by_diagonal_axis():
    # two boxes whose bounding boxes overlap but which do not touch: only a rotated axis separates them
    a = (0.0, 0.0, math.pi / 4, 4.0, 1.0)
    b = (2.3, -2.3, math.pi / 4, 4.0, 1.0)
    assert overlap_area(a, b) == 0.0
    assert sat(a, b) is False
    assert sat(a, b, margin=1.2) is True   # 3.25 m apart across, half widths 0.5 + 1.2 each


@settings(max_examples=300, deadline=None)
@given(st.floats(-6, 6), st.floats(-4, 4), st.floats(-math.pi, math.pi), st.floats(-math.pi, math.pi),
       st.floats(0.5, 12), st.floats(0.5, 3), st.floats(0.5, 12), st.floats(0.5, 3))
@example(0.0, 0.0, 0.5, 0.5, 0.5, 1.96875, 0.5, 1.0)      # collinear edges: once broke the reference clipper
def test_sat_matches_polygon_clipping(dx, dy, ha, hb, la, wa, lb, wb):
    a = (0.0, 0.0, ha, la, wa)
    b = (dx, dy, hb, lb, wb)
    area = overlap_area(a, b)
    result = sat(a, b)
    if area > 1e-6:
        assert result
    if not result:
        assert area < 1e-6


def test_mask_heading_forms_and_any_collision():
    B, N = 2, 3
    ca = torch.zeros(B, 2, **F64)
    sa = torch.tensor([[4.5, 1.8]] * B, **F64)
    cb = torch.tensor([[[3.0, 0.0], [20.0, 0.0], [0.0, 1.0]], [[30.0, 0.0], [-30.0, 0.0], [0.0, 9.0]]], **F64)
    sb = torch.tensor([[4.0, 1.8]], **F64).expand(B, N, 2)
    hb = torch.zeros(B, N, **F64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    out = boxes_overlap(ca, torch.zeros(B, **F64), sa, cb, hb, sb, mask)
    assert torch.equal(out, torch.tensor([[True, False, False], [False, False, False]]))
    unit = boxes_overlap(ca, torch.tensor([[1.0, 0.0]] * B, **F64), sa, cb,
                         torch.stack([torch.ones(B, N, **F64), torch.zeros(B, N, **F64)], -1), sb, mask)
    assert torch.equal(out, unit)
    assert torch.equal(any_collision(ca, torch.zeros(B, **F64), sa, cb, hb, sb, mask), torch.tensor([True, False]))


def test_box_corners_area_and_shape():
    c = box_corners(torch.zeros(5, 3, 2), torch.rand(5, 3), torch.tensor([4.0, 2.0]).expand(5, 3, 2))
    assert c.shape == (5, 3, 4, 2)
    d1 = torch.linalg.vector_norm(c[..., 0, :] - c[..., 1, :], dim=-1)
    d2 = torch.linalg.vector_norm(c[..., 1, :] - c[..., 2, :], dim=-1)
    torch.testing.assert_close(d1, torch.full_like(d1, 4.0))
    torch.testing.assert_close(d2, torch.full_like(d2, 2.0))


def test_footprint_offroad(i80_road):
    size = torch.tensor([[4.5, 1.8]] * 6, **F64)
    centre = torch.tensor([
        [100.0, -LANE / 2],            # lane 1 centre
        [100.0, -0.8],                  # left side 0.1 m over the edge
        [100.0, -6 * LANE - LANE / 2],  # on the ramp
        [212.0, -6 * LANE - LANE / 2],  # across the ramp's end
        [300.0, -9.0],                  # lane 3, rotated 30 degrees: corners still on the road
        [300.0, -1.5],                  # lane 1, rotated 30 degrees: front-left corner off the road
    ], **F64)
    heading = torch.tensor([0.0, 0.0, 0.0, 0.0, math.pi / 6, math.pi / 6], **F64)
    out = footprint_offroad(i80_road, centre, heading, size)
    assert torch.equal(out, torch.tensor([False, True, False, True, False, True]))
