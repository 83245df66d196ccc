import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppuu.simulator.dynamics import (DT, ActionBounds, EgoState, as_unit_heading, heading_axes, left_normal,
                                     relative_poses, rollout, step, unit_from_angle)


def make_state(b=3, dtype=torch.float64, speed=10.0, angle=0.0):
    return EgoState.from_angle(torch.zeros(b, 2, dtype=dtype), torch.full((b,), angle, dtype=dtype),
                               torch.full((b,), speed, dtype=dtype))


def test_straight_line_constant_speed():
    s = make_state(speed=12.0, angle=0.3)
    nxt = step(s, torch.zeros(3, 2, dtype=torch.float64))
    expected = 12.0 * DT * torch.tensor([math.cos(0.3), math.sin(0.3)], dtype=torch.float64)
    torch.testing.assert_close(nxt.position, expected.expand(3, 2))
    torch.testing.assert_close(nxt.heading, s.heading)
    torch.testing.assert_close(nxt.speed, s.speed)


def test_acceleration_changes_speed_after_moving():
    s = make_state(speed=10.0)
    nxt = step(s, torch.tensor([[2.0, 0.0]] * 3, dtype=torch.float64))
    torch.testing.assert_close(nxt.speed, torch.full((3,), 10.2, dtype=torch.float64))
    # explicit Euler: position uses the old speed
    torch.testing.assert_close(nxt.position[:, 0], torch.full((3,), 1.0, dtype=torch.float64))


def test_curvature_turns_left_by_atan_of_b_v_dt():
    s = make_state(b=1, speed=10.0)
    b = 0.05
    nxt = step(s, torch.tensor([[0.0, b]], dtype=torch.float64))
    assert float(nxt.angle) == pytest.approx(math.atan(b * 10.0 * DT), rel=1e-12)
    assert float(nxt.angle) > 0  # positive curvature = to the left (counter-clockwise)
    torch.testing.assert_close(torch.linalg.vector_norm(nxt.heading, dim=-1), torch.ones(1, dtype=torch.float64))


def test_constant_curvature_drives_a_circle_of_radius_one_over_b():
    b, v, n = 0.02, 10.0, 400
    s = make_state(b=1, speed=v)
    actions = torch.tensor([[0.0, b]], dtype=torch.float64).expand(1, n, 2).contiguous()
    traj = rollout(s, actions)
    # centre of the circle is at (0, 1/b); every position should be about 1/b from it
    dist = torch.linalg.vector_norm(traj.position[0] - torch.tensor([0.0, 1 / b], dtype=torch.float64), dim=-1)
    assert float((dist - 1 / b).abs().max()) < 0.02 / b   # explicit Euler: within 2 % of the 50 m radius


def test_speed_clamped_at_zero_and_never_reverses():
    s = make_state(speed=0.5)
    s = step(s, torch.tensor([[-8.0, 0.0]] * 3, dtype=torch.float64))
    assert torch.all(s.speed == 0)
    before = s.position.clone()
    s = step(s, torch.tensor([[-8.0, 0.1]] * 3, dtype=torch.float64))
    assert torch.all(s.speed == 0)
    torch.testing.assert_close(s.position, before)


def test_step_is_differentiable():
    pos = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    ang = torch.randn(4, dtype=torch.float64, requires_grad=True)
    spd = torch.tensor([5.0, 10.0, 20.0, 30.0], dtype=torch.float64, requires_grad=True)
    act = torch.tensor([[1.0, 0.01], [-1.0, -0.02], [0.5, 0.0], [0.0, 0.05]], dtype=torch.float64,
                       requires_grad=True)

    def f(pos, ang, spd, act):
        out = step(EgoState(pos, unit_from_angle(ang), spd), act)
        return out.position, out.heading, out.speed

    assert torch.autograd.gradcheck(f, (pos, ang, spd, act))


def test_dtype_device_and_shape_preserved():
    s = make_state(b=5, dtype=torch.float32)
    nxt = step(s, torch.zeros(5, 2))
    assert nxt.position.dtype == torch.float32 and nxt.position.shape == (5, 2)
    assert nxt.speed.shape == (5,)


def test_rollout_shapes_and_matches_steps():
    s = make_state(b=2)
    acts = torch.randn(2, 7, 2, dtype=torch.float64) * torch.tensor([1.0, 0.01], dtype=torch.float64)
    traj = rollout(s, acts)
    assert traj.position.shape == (2, 7, 2) and traj.speed.shape == (2, 7)
    manual = s
    for t in range(7):
        manual = step(manual, acts[:, t])
    torch.testing.assert_close(traj.position[:, -1], manual.position)


def test_state_vector():
    s = make_state(b=2, speed=10.0, angle=math.pi / 2)
    v = s.vector()
    assert v.shape == (2, 4)
    torch.testing.assert_close(v[:, 2:], torch.tensor([[0.0, 10.0]] * 2, dtype=torch.float64), atol=1e-12, rtol=0)


def test_action_bounds_clip_and_gradient():
    bounds = ActionBounds()
    a = torch.tensor([[-20.0, 1.0], [1.0, 0.1], [9.0, -0.5]], requires_grad=True)
    c = bounds.clip(a)
    torch.testing.assert_close(c.detach(), torch.tensor([[-8.0, 0.2], [1.0, 0.1], [4.0, -0.2]]))
    c.sum().backward()
    torch.testing.assert_close(a.grad, torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError):
        ActionBounds(acceleration_min=1.0, acceleration_max=0.0)


def test_heading_helpers():
    ang = torch.tensor([0.0, math.pi / 2])
    u = as_unit_heading(ang, 1)
    assert u.shape == (2, 2)
    assert as_unit_heading(u, 1) is u
    torch.testing.assert_close(left_normal(u), torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), atol=1e-7, rtol=0)
    with pytest.raises(ValueError):
        as_unit_heading(torch.zeros(2, 3), 1)


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 40), st.floats(-8, 4), st.floats(-0.2, 0.2), st.floats(-math.pi, math.pi))
def test_heading_stays_unit_and_speed_nonnegative(speed, accel, curv, angle):
    s = make_state(b=1, speed=speed, angle=angle)
    for _ in range(5):
        s = step(s, torch.tensor([[accel, curv]], dtype=torch.float64))
    assert float(s.speed) >= 0
    assert float(torch.linalg.vector_norm(s.heading)) == pytest.approx(1.0, abs=1e-12)


def test_heading_axes_rotate_world_vectors_into_along_and_left():
    unit = unit_from_angle(torch.tensor([0.0, 0.5, -2.0, math.pi / 2], dtype=torch.float64))
    axes = heading_axes(unit)                                          # (4, 2, 2)
    torch.testing.assert_close(axes, torch.stack([unit, left_normal(unit)], dim=1))
    # a point ahead-left of the heading has positive along and left components
    ahead_left = 3.0 * unit + 2.0 * left_normal(unit)
    torch.testing.assert_close(torch.einsum("bij,bj->bi", axes, ahead_left),
                               torch.tensor([[3.0, 2.0]] * 4, dtype=torch.float64))


def test_relative_poses_put_others_on_the_reference_axes():
    # an ego at (10, 5) heading north; one car 3 m ahead heading west, one 2 m to its right heading north
    centre = torch.tensor([[10.0, 5.0]], dtype=torch.float64)
    unit = unit_from_angle(torch.tensor([math.pi / 2], dtype=torch.float64))
    others = torch.tensor([[[10.0, 8.0], [12.0, 5.0]]], dtype=torch.float64)
    others_unit = unit_from_angle(torch.tensor([[math.pi, math.pi / 2]], dtype=torch.float64))
    relative = relative_poses(centre, unit, others, others_unit)              # (1, 2, 4)
    expected = torch.tensor([[[3.0, 0.0, 0.0, 1.0],        # along: 3 m, 0 m; relative cos: 0, 1
                              [0.0, -2.0, 1.0, 0.0]]],     # left: 0 m, -2 m; relative sin: 1, 0
                            dtype=torch.float64)
    torch.testing.assert_close(relative, expected, atol=1e-12, rtol=0)
