"""The driving view's picture: camera, minimap, observation, model, cost plots and heads-up display.

One :class:`DriveView` draws a whole frame of a :class:`~ppuu.app.drive_session.DriveSession` on
an off-screen ``pygame.Surface`` (:attr:`DriveView.size` pixels), the same frame whether it is
shown in a window, written to a video, or read by a test (:meth:`DriveView.frame`). Layout::

    +--------------------------------------------------------------------------+
    | camera: the road around the ego (zoom, pan), every vehicle, ghost, futures|
    +--------------------------------------------------------------------------+
    | minimap: the whole section, every vehicle                                 |
    +------------------+---------------------+-----------------+---------------+
    | observation, one | the model's context | cost plots over | heads-up      |
    | row per channel  | and predicted frame | the last seconds| display       |
    +------------------+---------------------+-----------------+---------------+

Images of the observation and the model are turned to match the camera: ahead to the right,
the ego's left up. Drawing loops over the visible vehicles (a few dozen) with pygame's polygon
fill, as :class:`~ppuu.app.render.TopDownRenderer` does; their corners are computed in one
tensor op; channel images are composed in numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pygame
import torch

from ppuu.app.drive_session import CAR, MOTORCYCLE, REACTIVE, RECORDED, TRUCK, DriveSession
from ppuu.app.render import TopDownRenderer
from ppuu.simulator.collision import box_corners
from ppuu.simulator.dynamics import as_unit_heading

Colour = tuple[int, int, int]

VEHICLE_COLOURS: dict[tuple[int, int], Colour] = {
    # (kind, class) -> colour: recorded traffic in blues, reactive traffic (off its recording) in oranges;
    # trucks darker, motorcycles lighter
    (RECORDED, CAR): (66, 133, 224), (RECORDED, TRUCK): (34, 72, 160), (RECORDED, MOTORCYCLE): (140, 205, 255),
    (REACTIVE, CAR): (236, 150, 40), (REACTIVE, TRUCK): (176, 96, 16), (REACTIVE, MOTORCYCLE): (255, 208, 130),
}
COLOUR_TABLE = np.array([[VEHICLE_COLOURS.get((kind, c), VEHICLE_COLOURS[(kind, CAR)]) for c in range(4)]
                         for kind in (RECORDED, REACTIVE)], dtype=np.int64)
"""(kind, class 0-3) -> RGB: :data:`VEHICLE_COLOURS` as one table (unknown classes are drawn as cars)."""
EGO: Colour = TopDownRenderer.EGO
GHOST: Colour = (255, 255, 255)
FUTURE_COLOURS: list[Colour] = [(255, 230, 60), (120, 255, 120), (255, 140, 220), (90, 240, 255), (255, 170, 90),
                                (200, 160, 255)]
PLAN: Colour = (255, 60, 255)
PANEL: Colour = (24, 26, 30)
TEXT: Colour = (235, 235, 235)
DIM: Colour = (150, 150, 160)
PLOTS = (("proximity", 1, (255, 110, 90)), ("lane", 2, (250, 220, 80)), ("off-road", 3, (120, 220, 120)),
         ("uncertainty", 4, (190, 150, 255)))
"""(label, column of DriveSession.plot_data, colour) of the cost plots."""

HELP = """keys
1 2 3 4   replay / keyboard / policy / MPC
arrows    accelerate, brake, steer (keyboard)
g         ghost of the recorded vehicle
space     pause      .  single step
+ -       faster / slower
r         restart    n p  next / previous episode
t         replay <-> reactive traffic
z x       zoom in / out
i j k l   pan        c  recentre
h         this help  q esc  quit"""


class Camera(TopDownRenderer):
    """The top-down camera: follows the ego, with a zoom (pixels per metre) and a pan offset (m)."""

    def __init__(self, road, width_px: int, height_px: int, pixels_per_metre: float = 8.0):
        super().__init__(road, pixels_per_metre, view_length_m=width_px / pixels_per_metre,
                         view_width_m=height_px / pixels_per_metre)
        self.width_px, self.height_px = width_px, height_px
        self.pan = np.zeros(2)

    MAX_LAYER_PIXELS = 24_000_000
    """The largest road layer kept (px); beyond it (strong zoom) the road is drawn every frame instead."""

    def draw_road(self, surface: pygame.Surface, centre: tuple[float, float]) -> None:
        """The road around ``centre``: one blit from a layer of the whole road drawn once per zoom (the camera
        only translates), or drawn afresh when that layer would be too large."""
        x_min, y_min, x_max, y_max = self.road.bounds
        margin_x, margin_y = self.view_length_m, self.view_width_m
        left, top = x_min - margin_x, y_max + margin_y                       # world corner of the layer, m
        size = (math.ceil((x_max - x_min + 2 * margin_x) * self.ppm),
                math.ceil((y_max - y_min + 2 * margin_y) * self.ppm))
        if size[0] * size[1] > self.MAX_LAYER_PIXELS:
            self._draw_road(surface, centre)
            return
        key = (self.ppm, size)
        if getattr(self, "_layer_key", None) != key:
            whole = TopDownRenderer(self.road, self.ppm, view_length_m=size[0] / self.ppm,
                                    view_width_m=size[1] / self.ppm, dash=self.dash)
            whole.width_px, whole.height_px = size
            self._layer = pygame.Surface(size)
            whole._draw_road(self._layer, (left + size[0] / self.ppm / 2, top - size[1] / self.ppm / 2))
            self._layer_key = key
        view_left = centre[0] - self.width_px / self.ppm / 2
        view_top = centre[1] + self.height_px / self.ppm / 2
        at = (round((view_left - left) * self.ppm), round((top - view_top) * self.ppm))
        surface.fill(self.OFFROAD)
        surface.blit(self._layer, (0, 0), pygame.Rect(at[0], at[1], self.width_px, self.height_px))

    def zoom(self, factor: float) -> None:
        """Scale the view by ``factor`` (> 1 zooms in), within 2-40 px/m."""
        self.ppm = float(np.clip(self.ppm * factor, 2.0, 40.0))
        self.view_length_m, self.view_width_m = self.width_px / self.ppm, self.height_px / self.ppm

    def view_centre(self, ego_centre: np.ndarray) -> tuple[float, float]:
        x, y = super().view_centre(ego_centre)
        return x + float(self.pan[0]), y + float(self.pan[1])

    def draw_boxes(self, surface: pygame.Surface, centre: tuple[float, float], centres: np.ndarray,
                   headings: np.ndarray, sizes: np.ndarray, colours) -> None:
        """Vehicles as rotated rectangles with a darker windscreen: centres (N, 2) m, headings (N,) rad,
        sizes (N, 2) m (length, width), colours (N, 3) RGB."""
        if len(centres) == 0:
            return
        px = self._corners(centres, headings, sizes, centre)
        for i in np.flatnonzero(self._visible(px)):
            self._draw_vehicle(surface, px[i], tuple(int(c) for c in colours[i]))

    def draw_ghost(self, surface: pygame.Surface, centre, ghost) -> None:
        """The ghost: a faint fill and an outline."""
        px = self._corners(ghost.centre[None], np.array([ghost.heading]), ghost.size[None], centre)[0]
        layer = pygame.Surface(surface.get_size(), pygame.SRCALPHA)
        pygame.draw.polygon(layer, (*GHOST, 70), px.tolist())
        pygame.draw.polygon(layer, (*GHOST, 200), px.tolist(), width=2)
        surface.blit(layer, (0, 0))

    def draw_path(self, surface: pygame.Surface, centre, points: np.ndarray, colour: Colour, width: int = 2) -> None:
        """A polyline through world points (N, 2) m."""
        if len(points) < 2:
            return
        px = self.to_pixels(points, centre)
        pygame.draw.lines(surface, colour, False, px.tolist(), width)

    def _corners(self, centres, headings, sizes, centre) -> np.ndarray:
        return self.to_pixels(corners(centres, headings, sizes), centre)         # (N, 4, 2) px

    def _visible(self, px: np.ndarray) -> np.ndarray:
        return (np.isfinite(px).all(axis=(1, 2)) & (px[..., 0].max(1) >= 0) & (px[..., 0].min(1) < self.width_px)
                & (px[..., 1].max(1) >= 0) & (px[..., 1].min(1) < self.height_px))


class DriveView:
    """Draws frames of a session (module docstring).

    Args:
        session: the :class:`DriveSession`.
        width: px of the frame (the other sizes follow it).
        pixels_per_metre: the camera's starting zoom.
    """

    def __init__(self, session: DriveSession, width: int = 1280, pixels_per_metre: float = 9.0):
        if not pygame.font.get_init():
            pygame.font.init()
        self.session = session
        if width < 800:
            raise ValueError(f"width {width} px: the driving view needs at least 800")
        self.width = int(width)
        # observation, model, plots; the heads-up display takes the rest
        self.panel_widths = [round(self.width * f) for f in (0.234, 0.32, 0.266)]
        self.camera_height, self.minimap_height, self.panel_height = 330, 56, 300
        self.size = (self.width, self.camera_height + self.minimap_height + self.panel_height)
        self.surface = pygame.Surface(self.size)
        self.camera = Camera(session.sim.road, self.width, self.camera_height, pixels_per_metre)
        self.font = pygame.font.Font(None, 20)
        self.big_font = pygame.font.Font(None, 26)
        self.show_ghost, self.show_help = False, False
        self._minimap_road: pygame.Surface | None = None
        self._model_images: tuple = (None, None, {})         # (futures, context RGB, step -> predicted RGB)

    # ------------------------------------------------------------------ geometry (for tests and clicks)
    def camera_pixels(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 2) m -> frame pixels (..., 2) (column, row) of the camera, as last drawn."""
        ego_centre = self.session.ego()[0]
        return self.camera.to_pixels(np.asarray(points, dtype=np.float64), self.camera.view_centre(ego_centre))

    # ------------------------------------------------------------------ the frame
    def draw(self, status: str = "") -> pygame.Surface:
        """Draw the session's current state; ``status`` is written on the camera's top line."""
        s = self.session
        surface = self.surface
        surface.fill(PANEL)
        camera = surface.subsurface((0, 0, self.width, self.camera_height))
        self._draw_camera(camera)
        if status:
            self._text(camera, [status], (6, 4), self.big_font)
        if self.show_help:
            self._draw_help(camera)
        self._draw_minimap(surface.subsurface((0, self.camera_height, self.width, self.minimap_height)))
        top = self.camera_height + self.minimap_height
        x = 0
        panels = (self._draw_observation, self._draw_model, self._draw_plots, self._draw_hud)
        for n, draw in enumerate(panels):
            width = self.panel_widths[n] if n < len(panels) - 1 else self.width - x
            draw(surface.subsurface((x, top, width, self.panel_height)))
            x += width
        if s.done:
            text = self.big_font.render(f"episode over: {s.outcome}  (r restart, n next)", True, (255, 255, 120))
            surface.blit(text, (self.width // 2 - text.get_width() // 2, self.camera_height - 28))
        return surface

    def frame(self) -> np.ndarray:
        """The last drawn frame as (H, W, 3) uint8 RGB."""
        w, h = self.size
        return np.frombuffer(pygame.image.tobytes(self.surface, "RGB"), np.uint8).reshape(h, w, 3)

    # ------------------------------------------------------------------ camera and minimap
    def _draw_camera(self, surface: pygame.Surface) -> None:
        s, cam = self.session, self.camera
        ego_centre, ego_heading, ego_size = s.ego()
        centre = cam.view_centre(ego_centre)
        cam.draw_road(surface, centre)
        v = s.vehicles()
        cam.draw_boxes(surface, centre, v.centre, v.heading, v.size, COLOUR_TABLE[v.kind, np.clip(v.vclass, 0, 3)])
        if s.futures is not None:             # from now on: futures sampled a few steps ago start in the past
            since = max(0, int(s.sim.steps[0]) - s.futures.step - 1)
            for k, path in enumerate(s.futures.positions):
                cam.draw_path(surface, centre, path[since:], FUTURE_COLOURS[k % len(FUTURE_COLOURS)])
        if s.plan is not None:
            cam.draw_path(surface, centre, s.plan, PLAN, 3)
        cam.draw_boxes(surface, centre, ego_centre[None], np.array([ego_heading]), ego_size[None], np.array([EGO]))
        if self.show_ghost:                  # over the ego: faint enough to see it through
            ghost = s.ghost()
            if ghost is not None:
                cam.draw_ghost(surface, centre, ghost)

    def _draw_minimap(self, surface: pygame.Surface) -> None:
        s = self.session
        road = s.sim.road
        x_min, y_min, x_max, y_max = road.bounds
        w, h = surface.get_size()
        scale = min((w - 8) / (x_max - x_min), (h - 8) / (y_max - y_min))
        ox, oy = 4 + ((w - 8) - (x_max - x_min) * scale) / 2, h / 2 + (y_max + y_min) / 2 * scale

        def to_px(points):
            return np.stack([ox + (points[..., 0] - x_min) * scale, oy - points[..., 1] * scale], -1)

        if self._minimap_road is None or self._minimap_road.get_size() != (w, h):
            self._minimap_road = pygame.Surface((w, h))
            self._minimap_road.fill(TopDownRenderer.OFFROAD)
            cells = road.cells.numpy().astype(np.float64)
            lo, hi = to_px(cells[:, [0, 3]]), to_px(cells[:, [2, 1]])
            for (x0, y0), (x1, y1) in zip(lo, hi):
                self._minimap_road.fill(TopDownRenderer.ROAD, pygame.Rect(math.floor(x0), math.floor(y0),
                                                                           max(1, math.ceil(x1 - x0)),
                                                                           max(1, math.ceil(y1 - y0))))
        surface.blit(self._minimap_road, (0, 0))
        # every vehicle as a 2 x 2 px dot, set in one array operation
        pixels = pygame.surfarray.pixels3d(surface)
        dots = np.round(to_px(s.vehicles().centre)).astype(np.int64)
        inside = (dots[:, 0] >= 0) & (dots[:, 0] < w - 1) & (dots[:, 1] >= 0) & (dots[:, 1] < h - 1)
        dots = dots[inside]
        for dx in (0, 1):
            for dy in (0, 1):
                pixels[dots[:, 0] + dx, dots[:, 1] + dy] = VEHICLE_COLOURS[(RECORDED, CAR)]
        del pixels
        ego = to_px(s.ego()[0])
        pygame.draw.circle(surface, EGO, (float(ego[0]), float(ego[1])), 4)
        view = self.camera.view_length_m * scale
        cx = to_px(np.array(self.camera.view_centre(s.ego()[0])))[0]
        pygame.draw.rect(surface, (255, 255, 255), pygame.Rect(cx - view / 2, 1, view, h - 2), 1)

    # ------------------------------------------------------------------ panels
    def _draw_observation(self, surface: pygame.Surface) -> None:
        image = self.session.observation_image()                              # (4, H, W)
        self._text(surface, ["observation (simulator raster), ahead ->"], (6, 4))
        names = ("lanes", "vehicles", "off-road", "ego")
        H, W = image.shape[1:]
        scale = min((surface.get_width() - 12) / H, (surface.get_height() - 24 - 4 * 16) / (4 * W))
        row_h = round(W * scale)
        for c in range(4):
            y = 24 + c * (row_h + 16)
            self._text(surface, [names[c]], (6, y), colour=DIM)
            grey = (np.clip(turned(image[c]), 0, 1) * 255).astype(np.uint8)
            self._blit_array(surface, np.repeat(grey[..., None], 3, -1), (6, y + 14), scale)

    def _draw_model(self, surface: pygame.Surface) -> None:
        s = self.session
        f = s.futures
        if f is None:
            self._text(surface, ["world model: none loaded", "(--world-model RUN, --policy or --mpc)"], (6, 4))
            return
        k = int(np.clip(int(s.sim.steps[0]) - f.step, 0, len(f.images) - 1))
        C, H, W = f.context.shape
        scale = min(2.5, (surface.get_width() - 14) / H)
        if self._model_images[0] is not f:                 # composed once per sampling, not per frame
            self._model_images = (f, composite(f.context), {})
        cache = self._model_images[2]
        if k not in cache:
            cache[k] = disagreement(f.images[k], f.spread[k])
        rows = [(f"the model's context (now), {len(f.positions)} futures", self._model_images[1]),
                (f"future 0 at +{(k + 1) * s.sim.dt:.1f} s; where the futures differ", cache[k])]
        ego_centre, ego_heading, ego_size = s.ego()
        ego_world = corners(ego_centre[None], np.array([ego_heading]), ego_size[None])[0]        # (4, 2) m
        y = 4
        for title, rgb in rows:
            self._text(surface, [title], (6, y))
            y += 16
            origin = (6, y)
            self._blit_array(surface, rgb, origin, scale)
            pygame.draw.polygon(surface, EGO, self._model_pixels(ego_world, f, (H, W), scale, origin).tolist(), 1)
            for j, path in enumerate(f.positions):
                px = self._model_pixels(path, f, (H, W), scale, origin)
                pygame.draw.lines(surface, FUTURE_COLOURS[j % len(FUTURE_COLOURS)], False, px.tolist(), 2)
            if s.plan is not None:
                pygame.draw.lines(surface, PLAN, False, self._model_pixels(s.plan, f, (H, W), scale, origin).tolist(),
                                  2)
            y += round(W * scale) + 8
        mean_costs = f.costs.mean(axis=(0, 1))
        lines = [f"predicted costs (mean): proximity {mean_costs[0]:.2f}  lane {mean_costs[1]:.2f}  "
                 f"off-road {mean_costs[2]:.2f}", f"uncertainty {f.uncertainty:.3g}   sampled at step {f.step}"]
        if s.plan is not None:
            lines.append("magenta: the MPC plan")
        self._text(surface, lines, (6, y))

    @staticmethod
    def _model_pixels(points: np.ndarray, f, shape, scale: float, origin) -> np.ndarray:
        """World points (N, 2) m -> pixels of the turned model image drawn at ``origin`` with ``scale``."""
        H, W = shape
        d = points - f.centre
        along = d @ f.unit
        left = d @ np.array([-f.unit[1], f.unit[0]])
        col = (H - 1) / 2 + along * f.pixels_per_metre + 0.5
        row = (W - 1) / 2 - left * f.pixels_per_metre + 0.5
        return np.stack([origin[0] + col * scale, origin[1] + row * scale], -1)

    def _draw_plots(self, surface: pygame.Surface) -> None:
        s = self.session
        data = s.plot_data()
        w, h = surface.get_size()
        self._text(surface, [f"costs, last {s.history.maxlen * s.sim.dt:.0f} s"], (6, 4))
        strip = (h - 24) // len(PLOTS)
        span = s.history.maxlen * s.sim.dt
        for n, (label, column, colour) in enumerate(PLOTS):
            top = 22 + n * strip
            box = pygame.Rect(6, top + 14, w - 12, strip - 18)
            pygame.draw.rect(surface, (44, 46, 52), box)
            values = data[:, column] if len(data) else np.zeros(0)
            finite = np.isfinite(values)
            if not finite.any():
                self._text(surface, [f"{label}: -"], (6, top), colour=DIM)
                continue
            top_value = max(1.0, float(values[finite].max())) if column < 4 else max(1e-9, float(values[finite].max()))
            self._text(surface, [f"{label} {values[finite][-1]:.3g}"], (6, top), colour=colour)
            t = data[:, 0]
            x = box.right - (t[-1] - t) / span * box.width
            y = box.bottom - np.clip(values / top_value, 0, 1) * (box.height - 2) - 1
            points = np.stack([x, y], -1)[finite]
            if len(points) >= 2:
                pygame.draw.lines(surface, colour, False, points.tolist(), 2)

    def _draw_hud(self, surface: pygame.Surface) -> None:
        h = self.session.hud()
        lines = [f"mode     {h['mode']}", f"traffic  {h['traffic']}",
                 f"episode  {h['episode'] + 1}/{h['episodes']}", f"vehicle  {h['vehicle']}",
                 f"speed    {h['speed']:5.1f} m/s ({h['speed'] * 3.6:.0f} km/h)",
                 f"accel    {h['acceleration']:+5.2f} m/s2", f"steer    {h['curvature']:+.4f} 1/m",
                 f"time     {h['time']:5.1f} s", f"distance {h['distance']:5.1f} m", f"outcome  {h['outcome']}"]
        self._text(surface, lines, (8, 8), self.big_font)

    def _draw_help(self, surface: pygame.Surface) -> None:
        lines = HELP.splitlines()
        rendered = [self.big_font.size(line) for line in lines]
        width, height = max(w for w, _ in rendered) + 20, sum(h + 2 for _, h in rendered) + 12
        box = pygame.Surface((width, height), pygame.SRCALPHA)
        box.fill((0, 0, 0, 190))
        surface.blit(box, (surface.get_width() - width - 8, 8))
        self._text(surface, lines, (surface.get_width() - width + 2, 14), self.big_font)

    # ------------------------------------------------------------------ helpers
    def _text(self, surface: pygame.Surface, lines: list[str], at: tuple[int, int], font=None,
              colour: Colour = TEXT) -> None:
        font = font or self.font
        x, y = at
        for line in lines:
            rendered = font.render(line, True, colour)
            surface.blit(rendered, (x, y))
            y += rendered.get_height() + 2

    @staticmethod
    def _blit_array(surface: pygame.Surface, rgb: np.ndarray, at: tuple[int, int], scale: float) -> None:
        """Blit an (H, W, 3) uint8 image scaled by ``scale`` (nearest pixels)."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        image = pygame.image.frombuffer(rgb.tobytes(), (rgb.shape[1], rgb.shape[0]), "RGB")
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        surface.blit(pygame.transform.scale(image, size), at)


def corners(centres: np.ndarray, headings: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(N, 4, 2) m, the corners of boxes of centres (N, 2) m, headings (N,) rad and sizes (N, 2) m, in one op."""
    unit = as_unit_heading(torch.as_tensor(headings, dtype=torch.float64).reshape(-1), 1)
    return box_corners(torch.as_tensor(centres, dtype=torch.float64).reshape(-1, 2), unit,
                       torch.as_tensor(sizes, dtype=torch.float64).reshape(-1, 2)).numpy()


def turned(channel: np.ndarray) -> np.ndarray:
    """A raster channel (H, W) (row 0 ahead, column 0 left) turned to the camera's way: (W, H), ahead to the
    right, left up."""
    return channel[::-1].T


def disagreement(image: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """A predicted frame (C, H, W) with the futures' disagreement (H, W) in [0, 1] painted over it in the first
    future's colour: turned RGB (W, H, 3) uint8."""
    a = np.clip(turned(spread), 0, 1)[..., None]
    return (composite(image) * (1 - a) + np.array(FUTURE_COLOURS[0]) * a).round().astype(np.uint8)


def composite(image: np.ndarray) -> np.ndarray:
    """Model image channels (C, H, W) in [0, 1] (lanes, vehicles, off-road[, ego]) -> turned RGB (W, H, 3) uint8."""
    base = np.array(TopDownRenderer.ROAD, dtype=np.float64)
    layers = [(2, np.array(TopDownRenderer.OFFROAD)), (0, np.array((235, 235, 235))),
              (1, np.array(VEHICLE_COLOURS[(RECORDED, CAR)])), (3, np.array(EGO))]
    out = np.broadcast_to(base, (*turned(image[0]).shape, 3)).copy()
    for c, colour in layers:
        if c < image.shape[0]:
            a = np.clip(turned(image[c]), 0, 1)[..., None]
            out = out * (1 - a) + colour * a
    return out.round().astype(np.uint8)
