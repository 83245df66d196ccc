"""A top-down pygame view of the road around one car, for people (not for controllers).

Controllers see the egocentric rasters of :mod:`ppuu.simulator.raster`; this view is what a
person watches: the gymnasium environments' ``render_mode="rgb_array"`` / ``"human"`` and the
interactive driving view draw with :class:`TopDownRenderer`.

The view is world-aligned: x (the direction of travel) to the right, y (left of travel) up,
so traffic drives from left to right. It follows the ego along x; across the road it shows
the whole road when it fits in ``view_width_m`` and follows the ego otherwise. Everything is
drawn in metres and converted to pixels with one scale, ``pixels_per_metre``.

Drawing is not a hot path (one frame per step for a person to watch), so vehicles are drawn
with ``pygame.draw.polygon`` in a loop; their corners are computed for all of them in one
tensor op (:func:`ppuu.simulator.collision.box_corners`) and mapped to pixels in one numpy op.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import torch  # noqa: E402

from ppuu.simulator.collision import box_corners  # noqa: E402
from ppuu.simulator.dynamics import as_unit_heading  # noqa: E402
from ppuu.simulator.road import EDGE, Road  # noqa: E402

Colour = tuple[int, int, int]


class TopDownRenderer:
    """Draws frames of the road, the traffic and the ego car, and shows them in a window.

    Args:
        road: the scene's :class:`~ppuu.simulator.road.Road` (drivable cells and markings, metres).
        pixels_per_metre: scale of the frame, px/m.
        view_length_m: m of road shown along x (the frame's width).
        view_width_m: m shown across the road (the frame's height); None = the road's
            drivable width plus 4 m on each side.
        dash: (on, off) m of the painted dashes of lane lines (edges are solid).

    Frames are ``(H, W, 3)`` uint8 RGB with ``W = round(view_length_m * pixels_per_metre)``
    and ``H = round(view_width_m * pixels_per_metre)`` (see :attr:`shape`).
    """

    OFFROAD: Colour = (54, 96, 58)        #: verge
    ROAD: Colour = (88, 88, 94)           #: asphalt
    EDGE_LINE: Colour = (236, 236, 236)   #: solid edge markings
    LANE_LINE: Colour = (200, 200, 200)   #: dashed lane lines
    ARRIVAL: Colour = (240, 196, 40)      #: the arrival line
    OTHER: Colour = (66, 133, 224)        #: other vehicles
    EGO: Colour = (226, 58, 48)           #: the ego car
    TEXT: Colour = (255, 255, 255)

    def __init__(self, road: Road, pixels_per_metre: float = 8.0, view_length_m: float = 120.0,
                 view_width_m: float | None = None, dash: tuple[float, float] = (3.0, 9.0)):
        if pixels_per_metre <= 0 or view_length_m <= 0 or (view_width_m is not None and view_width_m <= 0):
            raise ValueError(f"pixels_per_metre ({pixels_per_metre}), view_length_m ({view_length_m}) and "
                             f"view_width_m ({view_width_m}) must be positive")
        self.road = road
        self.ppm = float(pixels_per_metre)
        x_min, y_min, x_max, y_max = road.bounds
        self._road_y = (y_min, y_max)
        self.view_length_m = float(view_length_m)
        self.view_width_m = float(view_width_m) if view_width_m is not None else (y_max - y_min) + 8.0
        self.width_px = max(1, round(self.view_length_m * self.ppm))
        self.height_px = max(1, round(self.view_width_m * self.ppm))
        self.dash = dash
        self._cells = road.cells.numpy().astype(np.float64)          # (R, 4) m
        self._markings = road.markings.numpy().astype(np.float64)    # (M, 4) m
        self._kinds = road.marking_kinds.numpy()
        self._surface: pygame.Surface | None = None
        self._font: pygame.font.Font | None = None
        self._window: pygame.Surface | None = None
        self._clock: pygame.time.Clock | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of a frame."""
        return (self.height_px, self.width_px, 3)

    # ------------------------------------------------------------------ geometry
    def view_centre(self, ego_centre: np.ndarray) -> tuple[float, float]:
        """(x, y) m of the frame centre for an ego at ``ego_centre`` (2,) m."""
        y_min, y_max = self._road_y
        margin = self.view_width_m / 2
        if y_max - y_min <= self.view_width_m:
            cy = (y_min + y_max) / 2
        else:   # follow the ego, but keep the road edge in view
            cy = min(max(float(ego_centre[1]), y_min + margin - 2.0), y_max - margin + 2.0)
        return float(ego_centre[0]), cy

    def to_pixels(self, points: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
        """World points (..., 2) m -> frame pixels (..., 2) = (column, row), float."""
        out = np.empty_like(points, dtype=np.float64)
        out[..., 0] = (points[..., 0] - centre[0]) * self.ppm + self.width_px / 2
        out[..., 1] = (centre[1] - points[..., 1]) * self.ppm + self.height_px / 2
        return out

    # ------------------------------------------------------------------ drawing
    def draw(self, ego_centre, ego_heading, ego_size, others_centre=None, others_heading=None, others_size=None,
             others_mask=None, text: str | None = None) -> np.ndarray:
        """Draw one frame around the ego.

        Args (numpy arrays or tensors on any device):
            ego_centre: (2,) m, world frame.
            ego_heading: () rad or (2,) unit vector.
            ego_size: (2,) (length, width) m.
            others_centre: (N, 2) m, or None for no traffic.
            others_heading: (N,) rad or (N, 2) unit vectors.
            others_size: (N, 2) (length, width) m.
            others_mask: (N,) bool, True where the vehicle exists; None = all.
            text: lines (``\\n``-separated) written in the top-left corner.

        Returns:
            (H, W, 3) uint8 RGB frame (:attr:`shape`).
        """
        ego_c = _as_tensor(ego_centre).reshape(1, 2)
        eh = _as_tensor(ego_heading)
        ego_u = as_unit_heading(eh.reshape(1) if eh.numel() == 1 else eh.reshape(1, 2), 1)
        ego_s = _as_tensor(ego_size).reshape(1, 2)
        if others_centre is None:
            centres, units, sizes = ego_c, ego_u, ego_s
            present = np.ones(1, dtype=bool)
        else:
            oc = _as_tensor(others_centre).reshape(-1, 2)
            oh = _as_tensor(others_heading)
            ou = as_unit_heading(oh.reshape(-1) if oh.dim() <= 1 else oh.reshape(-1, 2), 1)
            os_ = _as_tensor(others_size).reshape(-1, 2)
            mask = (np.ones(len(oc), dtype=bool) if others_mask is None
                    else _as_tensor(others_mask, torch.bool).reshape(-1).numpy())
            centres, units, sizes = torch.cat([oc, ego_c]), torch.cat([ou, ego_u]), torch.cat([os_, ego_s])
            present = np.append(mask, True)
        corners = box_corners(centres, units, sizes).numpy()                  # (N + 1, 4, 2) m
        centre = self.view_centre(ego_c[0].numpy())
        pixels = self.to_pixels(corners, centre)                              # (N + 1, 4, 2) px
        finite = np.isfinite(pixels).all(axis=(1, 2))
        in_view = ((pixels[..., 0].max(1) >= 0) & (pixels[..., 0].min(1) < self.width_px)
                   & (pixels[..., 1].max(1) >= 0) & (pixels[..., 1].min(1) < self.height_px))
        visible = present & finite & in_view

        surface = self._canvas()
        self._draw_road(surface, centre)
        last = len(pixels) - 1
        for i in np.flatnonzero(visible):
            self._draw_vehicle(surface, pixels[i], self.EGO if i == last else self.OTHER)
        if text:
            self._draw_text(surface, text)
        return np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))

    def _canvas(self) -> pygame.Surface:
        if self._surface is None:
            self._surface = pygame.Surface((self.width_px, self.height_px))
        return self._surface

    def _draw_road(self, surface: pygame.Surface, centre: tuple[float, float]) -> None:
        surface.fill(self.OFFROAD)
        cells = self._cells
        lo = self.to_pixels(np.stack([cells[:, 0], cells[:, 3]], -1), centre)   # top-left corners
        hi = self.to_pixels(np.stack([cells[:, 2], cells[:, 1]], -1), centre)   # bottom-right corners
        for (x0, y0), (x1, y1) in zip(lo, hi):
            rect = _rect(x0, y0, x1, y1)
            if rect is not None:
                surface.fill(self.ROAD, rect)
        line = max(1, round(0.15 * self.ppm))
        half_view = self.view_length_m / 2
        view_x = (centre[0] - half_view - 1.0, centre[0] + half_view + 1.0)
        on, off = self.dash
        for (x0, y0, x1, y1), kind in zip(self._markings, self._kinds):
            if kind == EDGE or abs(y1 - y0) > 1e-6 or on <= 0:
                segments = [(x0, y0, x1, y1)]
            else:   # dashes of a lane line, only within the view
                a, b = max(min(x0, x1), view_x[0]), min(max(x0, x1), view_x[1])
                segments = [(s, y0, e, y1) for s, e in _dashes(a, b, on, off)]
            colour = self.EDGE_LINE if kind == EDGE else self.LANE_LINE
            for sx0, sy0, sx1, sy1 in segments:
                p = self.to_pixels(np.array([[sx0, sy0], [sx1, sy1]]), centre)
                rect = _rect(p[0, 0] - line / 2, p[0, 1] - line / 2, p[1, 0] + line / 2, p[1, 1] + line / 2)
                if rect is not None:
                    surface.fill(colour, rect)
        arrival = self.to_pixels(np.array([[self.road.arrival_x, 0.0]]), centre)[0, 0]
        if 0 <= arrival < self.width_px:
            pygame.draw.line(surface, self.ARRIVAL, (arrival, 0), (arrival, self.height_px - 1), max(1, line))

    def _draw_vehicle(self, surface: pygame.Surface, corners: np.ndarray, colour: Colour) -> None:
        """corners: (4, 2) px, counter-clockwise from the front-left (see box_corners)."""
        pygame.draw.polygon(surface, colour, corners.tolist())
        # a darker windscreen band over the front third shows the heading
        front = np.stack([corners[0], corners[0] + 0.3 * (corners[1] - corners[0]),
                          corners[3] + 0.3 * (corners[2] - corners[3]), corners[3]])
        pygame.draw.polygon(surface, tuple(int(c * 0.55) for c in colour), front.tolist())

    def _draw_text(self, surface: pygame.Surface, text: str) -> None:
        if self._font is None:
            if not pygame.font.get_init():
                pygame.font.init()
            self._font = pygame.font.Font(None, max(14, min(24, self.height_px // 8)))
        y = 4
        for line in text.splitlines():
            rendered = self._font.render(line, True, self.TEXT)
            backdrop = pygame.Surface((rendered.get_width() + 6, rendered.get_height()), pygame.SRCALPHA)
            backdrop.fill((0, 0, 0, 140))
            surface.blit(backdrop, (2, y))
            surface.blit(rendered, (5, y))
            y += rendered.get_height()

    # ------------------------------------------------------------------ window
    def show(self, frame: np.ndarray, fps: float | None = None, caption: str = "ppuu") -> None:
        """Show an (H, W, 3) uint8 frame in a pygame window (opened on the first call).

        ``fps`` paces the calls (sleeps to at most that many frames per second). Window events
        are pumped, not handled: a caller that wants the keyboard reads ``pygame.event`` itself.
        """
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame of shape {frame.shape}: expected (H, W, 3) uint8")
        if self._window is None or self._window.get_size() != (frame.shape[1], frame.shape[0]):
            pygame.display.init()
            self._window = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
            pygame.display.set_caption(caption)
            self._clock = pygame.time.Clock()
        pygame.surfarray.blit_array(self._window, frame.transpose(1, 0, 2))
        pygame.event.pump()
        pygame.display.flip()
        if fps:
            self._clock.tick(fps)

    def close(self) -> None:
        """Close the window, if one is open (safe to call twice)."""
        if self._window is not None:
            pygame.display.quit()
            self._window = None


def _as_tensor(value, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Any array-like or tensor (any device) -> CPU tensor of ``dtype``."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype)


def _dashes(a: float, b: float, on: float, off: float) -> list[tuple[float, float]]:
    """(start, end) m of the dashes within [a, b]: ``on`` m painted every ``on + off`` m from x = 0."""
    period = on + off
    spans = []
    for k in range(math.floor(a / period), math.floor(b / period) + 1):
        start, end = max(a, k * period), min(b, k * period + on)
        if end > start:
            spans.append((start, end))
    return spans


def _rect(x0: float, y0: float, x1: float, y1: float) -> pygame.Rect | None:
    """Pixel rectangle between two corners (any order), rounded outwards; None if empty."""
    left, right = math.floor(min(x0, x1)), math.ceil(max(x0, x1))
    top, bottom = math.floor(min(y0, y1)), math.ceil(max(y0, y1))
    if right <= left or bottom <= top:
        return None
    # clamp to keep SDL's int rectangles small (the road is far longer than the view)
    left, right = max(left, -10), min(right, 1 << 20)
    top, bottom = max(top, -10), min(bottom, 1 << 20)
    return pygame.Rect(left, top, right - left, bottom - top) if right > left and bottom > top else None
