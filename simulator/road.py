"""Road geometry: the drivable area, the lane markings and the usable section of a scene.

Why this shape: NGSIM sites (and the SUMO scenes built after them) are straight roads with
straight ramps, so the drivable area is exactly a union of axis-aligned rectangles in the
world frame of :mod:`ppuu.data.schema` (x along the road, y to the left, metres; the main road is
``[x_lo, x_hi] x [-W, 0]``). That makes every question the simulator asks of the road a
tensor comparison: is a point off the road, how much of a pixel is covered.

Built once per scene by :meth:`Road.from_meta`:

* ``cells`` (R, 4): the drivable area as *disjoint* axis-aligned rectangles
  ``(x_min, y_min, x_max, y_max)`` m (the main road and ramps, cut where they meet, so
  coverages add up without double counting).
* ``markings`` (M, 4): line segments ``(x0, y0, x1, y1)`` m, each axis-aligned, with
  ``marking_kinds`` (M,): :data:`EDGE` (solid edge of the drivable area, including the
  transverse end of a ramp) or :data:`LANE_LINE` (between two lanes, inner lines of the main
  road and boundaries between the main road and a ramp or between ramps). Lane lines are
  plain by default; ``dash=(on, off)`` cuts them into dashes.
* ``x_lo, x_hi``: the road runs ``upstream`` m before the recorded section and
  ``downstream`` m after it (default 60 m, more than the 36 m an observation looks
  ahead/behind), so observations near the section ends still see a road. Ramps that touch a
  section end are extended the same way. The transverse ends of the road are not drawn.
* ``start_x``, ``arrival_x``: the evaluation's course (:class:`ppuu.simulator.episodes.Course`):
  episodes start where the replaced vehicle reaches ``start_x`` and arrive when the ego
  reaches ``arrival_x``. Default: the whole section, ``start_x = 0`` and ``arrival_x =
  section_length - ARRIVAL_MARGIN`` (36 m, one observation half-length: beyond it the ego's
  view reaches past the recorded traffic). The simulator passes its course's lines.

Tensors are stored in float64 on the CPU; methods move them to the device/dtype of their
inputs. Rasterisers may keep per-device data in :attr:`Road.cache`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ppuu.data.scene import SceneMeta
from ppuu.simulator.constants import outside_inference_mode
from ppuu.simulator.episodes import ARRIVAL_MARGIN

EDGE = 0
"""Marking kind: solid edge of the drivable area."""
LANE_LINE = 1
"""Marking kind: line between two lanes (plain or dashed)."""

_TOL = 1e-6  # metres: coordinates closer than this are the same


@dataclass(eq=False)
class Road:
    """A straight road made of axis-aligned rectangles (see the module docstring).

    Attributes:
        cells: (R, 4) float64, disjoint drivable rectangles (x_min, y_min, x_max, y_max), m.
        markings: (M, 4) float64, axis-aligned segments (x0, y0, x1, y1), m.
        marking_kinds: (M,) int64, :data:`EDGE` or :data:`LANE_LINE`.
        lane_widths: (K,) float64, main-road lane widths from the left (lane 1), m.
        section_length: m, the recorded section is [0, section_length] along x.
        x_lo, x_hi: m, extent of the drawn road along x (section plus margins).
        arrival_x: m, x at which an episode counts as arrived.
        start_x: m, where episodes start (the course's start line; 0 = the section start).
    """

    cells: Tensor
    markings: Tensor
    marking_kinds: Tensor
    lane_widths: Tensor
    section_length: float
    x_lo: float
    x_hi: float
    arrival_x: float
    start_x: float = 0.0
    cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_meta(cls, meta: SceneMeta, upstream: float = 60.0, downstream: float = 60.0,
                  arrival_margin: float = ARRIVAL_MARGIN, arrival_x: float | None = None,
                  start_x: float | None = None, dash: tuple[float, float] | None = None) -> "Road":
        """Build the road of a scene.

        Args:
            meta: the scene metadata (lane widths, section length, ramps), metres.
            upstream, downstream: m of road drawn before x = 0 and after the section end.
            arrival_margin: m before the section end where episodes arrive (if ``arrival_x``
                is not given).
            arrival_x: m, explicit arrival position (overrides ``arrival_margin``).
            start_x: m, where episodes start (None: the section start, 0).
            dash: (on, off) m to draw lane lines dashed (phase 0 at x = 0); None = plain.
        """
        if not meta.lane_widths or min(meta.lane_widths) <= 0:
            raise ValueError(f"scene {meta.name!r}: lane_widths {meta.lane_widths}; expected positive widths")
        if meta.section_length <= 0:
            raise ValueError(f"scene {meta.name!r}: section_length {meta.section_length}; expected > 0")
        length = float(meta.section_length)
        x_lo, x_hi = -float(upstream), length + float(downstream)
        width = float(sum(meta.lane_widths))
        rects = [(x_lo, -width, x_hi, 0.0)]
        for ramp in meta.ramps:
            if not (ramp.x_end > ramp.x_start and ramp.y_left > ramp.y_right):
                raise ValueError(f"scene {meta.name!r}: ramp lane {ramp.lane} has an empty extent "
                                 f"(x {ramp.x_start}..{ramp.x_end}, y {ramp.y_right}..{ramp.y_left})")
            xs = x_lo if ramp.x_start <= _TOL else ramp.x_start
            xe = x_hi if ramp.x_end >= length - _TOL else ramp.x_end
            rects.append((xs, ramp.y_right, xe, ramp.y_left))
        inner = []
        y = 0.0
        for w in meta.lane_widths[:-1]:
            y -= w
            inner.append(y)
        road = cls.from_rectangles(rects, inner_lines_y=inner, lane_widths=list(meta.lane_widths),
                                   section_length=length, arrival_x=arrival_x if arrival_x is not None
                                   else length - arrival_margin, dash=dash)
        road.start_x = 0.0 if start_x is None else float(start_x)
        return road

    @classmethod
    def from_rectangles(cls, rects: list[tuple[float, float, float, float]], inner_lines_y: list[float] = (),
                        lane_widths: list[float] = (), section_length: float | None = None,
                        arrival_x: float | None = None, dash: tuple[float, float] | None = None) -> "Road":
        """Build a road from drivable rectangles (x_min, y_min, x_max, y_max) m (may touch or overlap).

        Markings are derived: edges where drivable meets off-road (except the transverse
        ends at the extreme x), lane lines where two rectangles meet and at ``inner_lines_y``
        across the whole length. Runs once per scene (plain Python over a handful of
        rectangles).
        """
        rects = [tuple(map(float, r)) for r in rects]
        x_lo = min(r[0] for r in rects)
        x_hi = max(r[2] for r in rects)
        xs = _unique_sorted([v for r in rects for v in (r[0], r[2])])
        ys = _unique_sorted([v for r in rects for v in (r[1], r[3])])

        def inside(x: float, y: float) -> bool:
            return any(r[0] <= x <= r[2] and r[1] <= y <= r[3] for r in rects)

        nx, ny = len(xs) - 1, len(ys) - 1
        occ = [[inside((xs[i] + xs[i + 1]) / 2, (ys[j] + ys[j + 1]) / 2) for j in range(ny)] for i in range(nx)]
        # which rectangle owns a grid cell (first one containing its centre): lane lines
        # appear where ownership changes between two drivable cells
        def owner(i: int, j: int) -> int:
            cx, cy = (xs[i] + xs[i + 1]) / 2, (ys[j] + ys[j + 1]) / 2
            for k, r in enumerate(rects):
                if r[0] <= cx <= r[2] and r[1] <= cy <= r[3]:
                    return k
            return -1

        # disjoint cells: merge runs along x within each y band
        cells = []
        for j in range(ny):
            i = 0
            while i < nx:
                if occ[i][j]:
                    k = i
                    while k + 1 < nx and occ[k + 1][j]:
                        k += 1
                    cells.append((xs[i], ys[j], xs[k + 1], ys[j + 1]))
                    i = k + 1
                else:
                    i += 1

        segs: list[tuple[float, float, float, float, int]] = []
        # horizontal grid lines
        for j in range(ny + 1):
            for i in range(nx):
                below = occ[i][j - 1] if j > 0 else False
                above = occ[i][j] if j < ny else False
                if below != above:
                    segs.append((xs[i], ys[j], xs[i + 1], ys[j], EDGE))
                elif below and above and owner(i, j - 1) != owner(i, j):
                    segs.append((xs[i], ys[j], xs[i + 1], ys[j], LANE_LINE))
        # vertical grid lines (the extreme ends of the road are not drawn)
        for i in range(1, nx):
            for j in range(ny):
                if occ[i - 1][j] != occ[i][j]:
                    segs.append((xs[i], ys[j], xs[i], ys[j + 1], EDGE))
        for y in inner_lines_y:
            segs.append((x_lo, float(y), x_hi, float(y), LANE_LINE))
        segs = _merge_collinear(segs)
        if dash is not None:
            segs = _dash(segs, *dash)
        markings = torch.tensor([s[:4] for s in segs], dtype=torch.float64).reshape(-1, 4)
        kinds = torch.tensor([s[4] for s in segs], dtype=torch.int64)
        if section_length is None:
            section_length = x_hi
        return cls(cells=torch.tensor(cells, dtype=torch.float64).reshape(-1, 4), markings=markings,
                   marking_kinds=kinds, lane_widths=torch.tensor(list(lane_widths), dtype=torch.float64),
                   section_length=float(section_length), x_lo=x_lo, x_hi=x_hi,
                   arrival_x=float(arrival_x if arrival_x is not None else section_length))

    # ------------------------------------------------------------------ properties
    @property
    def lane_count(self) -> int:
        return int(self.lane_widths.numel())

    @property
    def width(self) -> float:
        """m, width of the main road."""
        return float(self.lane_widths.sum())

    @property
    def lane_centres_y(self) -> Tensor:
        """(K,) float64, y of main-road lane centres (lane 1 first), m (negative)."""
        right = -torch.cumsum(self.lane_widths, 0)
        return right + self.lane_widths / 2

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) m of the drivable area."""
        c = self.cells
        return (float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 2].max()), float(c[:, 3].max()))

    @property
    def usable(self) -> tuple[float, float]:
        """(start_x, arrival_x) m: the part of the road where episodes run (the course)."""
        return (self.start_x, self.arrival_x)

    def tensors(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(cells, markings) on the device/dtype of ``like`` (cached per device and dtype)."""
        key = ("tensors", like.device, like.dtype)
        if key not in self.cache:
            with outside_inference_mode():              # constants.py
                self.cache[key] = (self.cells.to(device=like.device, dtype=like.dtype),
                                   self.markings.to(device=like.device, dtype=like.dtype))
        return self.cache[key]

    # ------------------------------------------------------------------ queries
    def offroad(self, points: Tensor) -> Tensor:
        """Whether points lie outside the drivable area (edges count as on the road).

        Args:
            points: (..., 2) metres, world frame.

        Returns:
            (...) bool.
        """
        cells, _ = self.tensors(points)
        point = points[..., None, :]                             # (..., 1, 2) against (R, 2) corners
        inside = ((point >= cells[:, 0:2]) & (point <= cells[:, 2:4])).all(dim=-1)
        return ~inside.any(dim=-1)

    def arrived(self, x: Tensor) -> Tensor:
        """(...) m along the road -> (...) bool, True at or beyond :attr:`arrival_x`."""
        return x >= self.arrival_x

    def sample_points(self, n: int, generator: torch.Generator | None = None,
                      x_range: tuple[float, float] | None = None, dtype: torch.dtype = torch.float64,
                      device: torch.device | str | None = None) -> Tensor:
        """Draw points uniformly over the drivable area (e.g. to test or to place vehicles).

        Args:
            n: number of points.
            generator: CPU random generator (seeded by the caller) or None.
            x_range: (x_min, x_max) m to restrict the draw along the road; None = everywhere.

        Returns:
            (n, 2) metres, world frame, on ``device`` in ``dtype``.
        """
        cells = self.cells.clone()
        if x_range is not None:
            cells[:, 0] = cells[:, 0].clamp(min=x_range[0])
            cells[:, 2] = cells[:, 2].clamp(max=x_range[1])
        area = (cells[:, 2] - cells[:, 0]).clamp(min=0) * (cells[:, 3] - cells[:, 1])
        if float(area.sum()) <= 0:
            raise ValueError(f"no drivable area in x_range {x_range}")
        which = torch.multinomial(area, n, replacement=True, generator=generator)
        c = cells[which]
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        pts = c[:, :2] + u * (c[:, 2:] - c[:, :2])
        return pts.to(device=device, dtype=dtype)


def _unique_sorted(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > _TOL:
            out.append(v)
    return out


def _merge_collinear(segs):
    """Join segments of the same kind that continue each other along the same line."""
    horiz = sorted((s for s in segs if abs(s[1] - s[3]) <= _TOL), key=lambda s: (s[4], s[1], s[0]))
    vert = sorted((s for s in segs if abs(s[1] - s[3]) > _TOL), key=lambda s: (s[4], s[0], s[1]))
    out = []
    for s in horiz:
        x0, x1 = min(s[0], s[2]), max(s[0], s[2])
        if out and out[-1][4] == s[4] and abs(out[-1][1] - s[1]) <= _TOL and x0 <= out[-1][2] + _TOL \
                and abs(out[-1][3] - out[-1][1]) <= _TOL:
            p = out[-1]
            out[-1] = (p[0], p[1], max(p[2], x1), p[3], p[4])
        else:
            out.append((x0, s[1], x1, s[1], s[4]))
    n_h = len(out)
    for s in vert:
        y0, y1 = min(s[1], s[3]), max(s[1], s[3])
        if len(out) > n_h and out[-1][4] == s[4] and abs(out[-1][0] - s[0]) <= _TOL and y0 <= out[-1][3] + _TOL:
            p = out[-1]
            out[-1] = (p[0], p[1], p[2], max(p[3], y1), p[4])
        else:
            out.append((s[0], y0, s[0], y1, s[4]))
    return out


def _dash(segs, on: float, off: float):
    """Cut horizontal lane lines into dashes of ``on`` m every ``on + off`` m (phase 0 at x = 0)."""
    if on <= 0 or off < 0:
        raise ValueError(f"dash=({on}, {off}); expected on > 0 and off >= 0")
    period = on + off
    out = []
    for s in segs:
        if s[4] != LANE_LINE or abs(s[1] - s[3]) > _TOL:
            out.append(s)
            continue
        x0, x1 = s[0], s[2]
        k = int((x0 // period))
        while k * period < x1:
            a, b = max(x0, k * period), min(x1, k * period + on)
            if b > a:
                out.append((a, s[1], b, s[3], s[4]))
            k += 1
    return out
