"""Exact collision and off-road tests for vehicle footprints (oriented rectangles).

Why exact: termination decides success rates; a collision test by pixels or circles
misjudges the bumper-to-bumper gaps of dense traffic by tens of centimetres. Two convex
polygons are disjoint iff some edge normal of either separates their projections (the
separating axis theorem); for two rectangles that is four axes, all evaluated at once for
every (ego, other) pair as broadcast tensor arithmetic.

Convention: footprints are *open* sets: rectangles that only touch (gap exactly 0) do not
collide; ``margin`` (m) inflates every half-extent to change that. A footprint is
``centre (..., 2)`` m, ``heading`` as angle (...) rad or unit vector (..., 2), and
``size (..., 2)`` = (length along the heading, width across) m.
"""

from __future__ import annotations


import torch
from torch import Tensor

from ppuu.simulator.constants import cached_constant
from ppuu.simulator.dynamics import as_unit_heading, heading_axes, relative_poses
from ppuu.simulator.road import Road


def box_corners(centre: Tensor, heading: Tensor, size: Tensor) -> Tensor:
    """Corners of oriented rectangles.

    Args:
        centre: (*batch, 2) m.
        heading: (*batch) rad or (*batch, 2) unit.
        size: (*batch, 2) (length, width) m.

    Returns:
        (*batch, 4, 2) m, counter-clockwise from the front-left corner.
    """
    u = as_unit_heading(heading, centre.dim() - 1)
    half_axes = heading_axes(u) * (size[..., :, None] * 0.5)      # (*batch, 2, 2)
    return torch.matmul(_corner_signs(half_axes.device, half_axes.dtype), half_axes) + centre[..., None, :]


@cached_constant(maxsize=16)
def _corner_signs(device: torch.device, dtype: torch.dtype) -> Tensor:
    """(4, 2): each corner as +-half length along the heading and +-half width across it (made once
    per device and dtype: no host-to-device copy per step; read only)."""
    return torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], device=device, dtype=dtype)


def boxes_overlap(centre_a: Tensor, heading_a: Tensor, size_a: Tensor, centre_b: Tensor, heading_b: Tensor,
                  size_b: Tensor, mask_b: Tensor | None = None, margin: float = 0.0) -> Tensor:
    """Whether footprint a of each batch element overlaps each footprint b (separating axes).

    Args:
        centre_a: (B, 2) m.
        heading_a: (B,) rad or (B, 2) unit.
        size_a: (B, 2) (length, width) m.
        centre_b: (B, N, 2) m.
        heading_b: (B, N) rad or (B, N, 2) unit.
        size_b: (B, N, 2) (length, width) m.
        mask_b: (B, N) bool, True where vehicle b exists; absent ones never overlap.
        margin: m added to every half-extent (both boxes); 0 = exact, touching is no overlap.

    Returns:
        (B, N) bool.
    """
    relative = relative_poses(centre_a, as_unit_heading(heading_a, 1), centre_b, as_unit_heading(heading_b, 2))
    return boxes_overlap_relative(relative, size_a, size_b, mask_b, margin)


def boxes_overlap_relative(relative: Tensor, size_a: Tensor, size_b: Tensor, mask_b: Tensor | None = None,
                           margin: float = 0.0) -> Tensor:
    """:func:`boxes_overlap` from the footprints b already on a's axes.

    Args:
        relative: (B, 2, 2N) from :func:`~ppuu.simulator.dynamics.relative_poses` (a's centre and
            heading, b's centres and unit headings).
        size_a, size_b, mask_b, margin: as in :func:`boxes_overlap`.

    Returns:
        (B, N) bool.
    """
    N = relative.shape[2] // 2
    # rows (d.ua, cos), (d.na, sin) of b's offset d and heading on a's axes (ua and its left normal na),
    # each (B, N) and contiguous: every comparison below works on whole rows (fastest at large B)
    d_ua, d_na, cos, sin = relative[:, 0, :N], relative[:, 1, :N], relative[:, 0, N:], relative[:, 1, N:]
    abs_cos, abs_sin = cos.abs(), sin.abs()
    la, wa = (size_a[:, :, None] * 0.5 + margin).unbind(1)           # (B, 1) half length, half width
    lb, wb = (size_b * 0.5 + margin).unbind(-1)                      # (B, N)
    # separated along an axis when the centres' distance on it reaches the two half-projections:
    # a footprint's half-projection along the other's heading is |cos| l + |sin| w, across it |sin| l + |cos| w
    sep = d_ua.abs() >= torch.addcmul(torch.addcmul(la, lb, abs_cos), wb, abs_sin)
    sep |= d_na.abs() >= torch.addcmul(torch.addcmul(wa, lb, abs_sin), wb, abs_cos)
    sep |= torch.addcmul(d_ua * cos, d_na, sin).abs() >= torch.addcmul(torch.addcmul(lb, la, abs_cos), wa, abs_sin)
    sep |= (d_na * cos - d_ua * sin).abs() >= torch.addcmul(torch.addcmul(wb, la, abs_sin), wa, abs_cos)
    overlap = ~sep
    if mask_b is not None:
        overlap &= mask_b
    return overlap


def any_collision(centre_a: Tensor, heading_a: Tensor, size_a: Tensor, centre_b: Tensor, heading_b: Tensor,
                  size_b: Tensor, mask_b: Tensor | None = None, margin: float = 0.0) -> Tensor:
    """(B,) bool: footprint a overlaps at least one present footprint b (see :func:`boxes_overlap`)."""
    return boxes_overlap(centre_a, heading_a, size_a, centre_b, heading_b, size_b, mask_b, margin).any(dim=-1)


def footprint_offroad(road: Road, centre: Tensor, heading: Tensor, size: Tensor) -> Tensor:
    """Whether any corner of a footprint lies outside the drivable area.

    Args:
        road: the :class:`~ppuu.simulator.road.Road`.
        centre: (*batch, 2) m.
        heading: (*batch) rad or (*batch, 2) unit.
        size: (*batch, 2) (length, width) m.

    Returns:
        (*batch) bool. (A footprint whose corners are all on the road but which spans a
        concave corner of the area, e.g. cuts across the inside corner at a ramp end, is
        not detected; for cars on these straight roads that region is under 0.1 m wide.)
    """
    return road.offroad(box_corners(centre, heading, size)).any(dim=-1)
