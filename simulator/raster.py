"""The batched egocentric rasteriser: thousands of observations in one call (SPEC §3).

An observation is a heading-aligned image around one ego car, ``(4, H, W)`` floats in
[0, 1], H = ``length_px`` rows along the ego's heading, W = ``width_px`` columns across.

Image conventions:

* Row 0 is the farthest **ahead**, the last row the farthest behind; column 0 is the
  farthest to the ego's **left**. (Drawn as an image, the car drives up the page.)
* The ego centre is the image centre: pixel (i, j) has its centre at
  ``along = ((H - 1) / 2 - i) / ppm`` m ahead and ``left = ((W - 1) / 2 - j) / ppm`` m to
  the left (``ppm`` = :attr:`RasterConfig.pixels_per_metre`). With the defaults (117 x 24
  px, 1.625 px/m, square pixels of 0.615 m) the image covers 72.0 m along and 14.8 m
  across: +-36 m and +-7.4 m, as in the reference.
* Channels (constants below): 0 :data:`LANES` lane markings, 1 :data:`VEHICLES` other
  vehicles, 2 :data:`OFFROAD` the area off the road, 3 :data:`EGO` the ego footprint.

Anti-aliasing is by **area coverage**: a pixel's value is the fraction of its area covered,
so moving anything by a fraction of a pixel changes the image continuously (piecewise
linearly) and the sum of a channel is the covered area in px^2. Coverage of a rectangle is
computed in closed form as the product of two 1-D overlaps (pixel extent against rectangle
extent) taken along the rectangle's own axes. That is exact whenever the rectangle is
aligned with the pixel grid (the ego footprint always, and the other cars and the road
whenever their heading matches the ego's), and a close approximation for rotated ones
(it is the area seen through a pixel-sized square turned with the rectangle; off by at most
a few hundredths at edge pixels for the small angles of highway traffic).

How it stays fast (a tensor program, no loop over observations, vehicles or pixels):

* **Road** (lanes and off-road channels): the road is static, so its coverage functions are
  pre-computed once per (road, resolution, device, dtype) as a fine world-frame texture
  (4 x 8 texels per pixel along x across the road by default: lane lines run along x, so
  only the across-road direction needs the finer step; cached in ``road.cache``; the box-filtered
  coverage is a sum of separable products, so building it is one matrix product) and every
  pixel of every observation reads it with one bilinear ``grid_sample``.
* **Vehicles**: only vehicles whose support reaches the raster take part (the rest are
  culled by a mask, without a fixed top-K, so none is ever dropped). Each evaluates its
  coverage on a small pixel window around itself (window size from the largest such vehicle;
  long vehicles such as trucks get their own, larger window so that one truck does not
  enlarge every car's window) and the windows are merged into the images with a
  scatter-max: overlapping vehicles are drawn once, as the max of their coverages
  (never above 1). Vehicles half outside the raster are clipped pixel-exactly.
* **Ego**: the outer product of two 1-D coverages.

Lane markings are drawn as rectangles of ``marking_width`` m, by default **one pixel wide**
(0.615 m), not at the 0.15 m of a painted line. Why: a line narrower than a pixel renders
the same wherever it lies inside that pixel (a 0.15 m line fills 0.24 of one column over
0.46 m of positions), so no cost and no model can tell where it is within the pixel: the
lane cost of :mod:`ppuu.simulator.costs` computed on painted-width lines is a staircase,
flat over 58 % of the ego's offsets between 0.35 and 1.45 m from its lane centre
(``scripts/bench_costs.py``). A line one pixel wide always spreads over two columns with
the weights of linear interpolation (1 when centred on a column, 0.5 / 0.5 on a column
boundary), so its sub-pixel position is in the image, and the channel reaches 1 where a
painted-width line peaked at 0.24. This changed the lanes channel of every observation:
models trained on the old images must be retrained. ``marking_width=0.15`` draws painted
widths. Two limits of the texture path, measured against point sampling
(``tests/simulator/test_raster.py``): bilinear reading of 8 texels per pixel across rounds a
one-pixel line's peak by up to 1/16 (the sum across the line stays within 0.03 of 1), and
a rotated ego reads world-aligned squares, so where a line meets a ramp's transverse edge
one pixel can be 0.18 off at 0.1 rad (99 % of pixels within 0.03).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ppuu.simulator.constants import cached_constant, outside_inference_mode
from ppuu.simulator.dynamics import as_unit_heading, relative_poses
from ppuu.simulator.road import Road

LANES = 0
"""Channel index: lane markings (edges and lane lines)."""
VEHICLES = 1
"""Channel index: other vehicles."""
OFFROAD = 2
"""Channel index: the area off the drivable road."""
EGO = 3
"""Channel index: the ego car's footprint."""
CHANNELS = ("lanes", "vehicles", "offroad", "ego")
"""Channel names in index order."""


@dataclass(frozen=True)
class RasterConfig:
    """Geometry and quality of the observation raster.

    The resolution is one parameter, ``pixels_per_metre`` (square pixels); the metric extent
    is derived: ``length_px / pixels_per_metre`` along, ``width_px / pixels_per_metre``
    across.
    """

    length_px: int = 117               #: H, rows along the ego's heading
    width_px: int = 24                 #: W, columns across
    pixels_per_metre: float = 1.625    #: px/m (117 px = 72 m, 24 px = 14.8 m)
    marking_width: float | None = None  #: m, drawn width of lane markings; None = one pixel (module docstring)
    texels_per_pixel_x: int = 4        #: road texture resolution along the road (texels per pixel)
    texels_per_pixel_y: int = 8        #: ... and across it (finer: lane lines run along x)
    large_vehicle_length: float = 7.0  #: m, longer vehicles (trucks) get their own window
    large_vehicle_width: float = 3.0   #: m, same across

    def __post_init__(self) -> None:
        if self.length_px < 1 or self.width_px < 1 or self.pixels_per_metre <= 0:
            raise ValueError(f"RasterConfig: sizes and pixels_per_metre must be positive, got {self}")
        if (self.marking_width is not None and not self.marking_width > 0) \
                or min(self.texels_per_pixel_x, self.texels_per_pixel_y) < 1:
            raise ValueError(f"RasterConfig: marking_width > 0 (or None) and texels_per_pixel_* >= 1 expected, "
                             f"got {self}")

    @classmethod
    def covering(cls, length_m: float, width_m: float, pixels_per_metre: float = 1.625, **fields) -> "RasterConfig":
        """The raster of at least ``length_m`` x ``width_m`` metres at ``pixels_per_metre`` (sizes
        rounded up to whole pixels; other fields as given)."""
        if length_m <= 0 or width_m <= 0 or pixels_per_metre <= 0:
            raise ValueError(f"RasterConfig.covering({length_m}, {width_m}, {pixels_per_metre}): expected positive "
                             "metres and pixels per metre")
        return cls(length_px=math.ceil(length_m * pixels_per_metre - 1e-9),
                   width_px=math.ceil(width_m * pixels_per_metre - 1e-9), pixels_per_metre=pixels_per_metre, **fields)

    @property
    def metres_per_pixel(self) -> float:
        return 1.0 / self.pixels_per_metre

    @property
    def line_width(self) -> float:
        """m, drawn width of the lane markings (``marking_width``, or one pixel when None)."""
        return self.metres_per_pixel if self.marking_width is None else self.marking_width

    @property
    def length_m(self) -> float:
        """Metres covered along the heading."""
        return self.length_px / self.pixels_per_metre

    @property
    def width_m(self) -> float:
        """Metres covered across."""
        return self.width_px / self.pixels_per_metre

    @property
    def reach_m(self) -> float:
        """Metres from the image centre within which a point can touch a pixel of the raster: its
        half diagonal plus half a pixel's coverage support. A vehicle whose centre is farther along x
        than this plus its own half diagonal cannot appear in the image."""
        return (math.hypot(self.length_m, self.width_m) + math.sqrt(2) * self.metres_per_pixel) / 2

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, H, W) of one observation."""
        return (len(CHANNELS), self.length_px, self.width_px)

    def to_json(self) -> dict:
        return asdict(self)

    def pixel_centres(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """Metric ego-frame coordinates of the pixel centres, on the device/dtype of ``like``.

        Returns:
            along (H,) m ahead of the ego centre (row 0 largest), left (W,) m to the left
            (column 0 largest).
        """
        kw = dict(device=like.device, dtype=like.dtype)
        along = ((self.length_px - 1) / 2 - torch.arange(self.length_px, **kw)) / self.pixels_per_metre
        left = ((self.width_px - 1) / 2 - torch.arange(self.width_px, **kw)) / self.pixels_per_metre
        return along, left


@cached_constant(maxsize=64)
def _pixel_centres(config: RasterConfig, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """:meth:`RasterConfig.pixel_centres`, made once per (config, device, dtype): read only."""
    return config.pixel_centres(torch.empty(0, device=device, dtype=dtype))


def _overlap(x: Tensor, lo, hi, half_pixel: float) -> Tensor:
    """Length of [x - half_pixel, x + half_pixel] inside [lo, hi] (same units; broadcast)."""
    return (torch.minimum(x + half_pixel, hi) - torch.maximum(x - half_pixel, lo)).clamp(min=0)


# ---------------------------------------------------------------------------- road texture
@dataclass
class _Texture:
    data: Tensor      # (1, 2, Tx, Ty): lanes coverage, off-road coverage; x major so that a
                      # pixel row (varying y) reads neighbouring memory
    x0: float
    y0: float
    texel_x: float
    texel_y: float
    nx: int
    ny: int


def road_texture(road: Road, config: RasterConfig, like: Tensor) -> _Texture:
    """The pre-filtered world-frame road texture for ``config`` on ``like``'s device/dtype (cached).

    Channel 0 is the lane-marking coverage, channel 1 the off-road coverage (1 - drivable), of a
    world-aligned pixel-sized square centred on each texel: both as the image channels hold them,
    so that a render samples them straight into the images.
    """
    p = config.metres_per_pixel
    key = ("raster_texture", p, config.line_width, config.texels_per_pixel_x, config.texels_per_pixel_y,
           like.device, like.dtype)
    if key in road.cache:
        return road.cache[key]
    with outside_inference_mode():                                   # constants.py
        tex = _make_road_texture(road, config, like)
    road.cache[key] = tex
    return tex


def _make_road_texture(road: Road, config: RasterConfig, like: Tensor) -> _Texture:
    p = config.metres_per_pixel
    rx, ry = p / config.texels_per_pixel_x, p / config.texels_per_pixel_y
    cells = road.cells
    segs = road.markings
    hw = config.line_width / 2
    horiz = (segs[:, 1] - segs[:, 3]).abs() <= 1e-9
    vert = (segs[:, 0] - segs[:, 2]).abs() <= 1e-9
    if not bool((horiz | vert).all()):
        raise ValueError("road markings must be axis-aligned segments for the road texture")
    mx_lo = torch.where(horiz, torch.minimum(segs[:, 0], segs[:, 2]), segs[:, 0] - hw)
    mx_hi = torch.where(horiz, torch.maximum(segs[:, 0], segs[:, 2]), segs[:, 0] + hw)
    my_lo = torch.where(horiz, segs[:, 1] - hw, torch.minimum(segs[:, 1], segs[:, 3]))
    my_hi = torch.where(horiz, segs[:, 1] + hw, torch.maximum(segs[:, 1], segs[:, 3]))
    x_min, y_min, x_max, y_max = road.bounds
    if segs.numel():
        x_min, x_max = min(x_min, float(mx_lo.min())), max(x_max, float(mx_hi.max()))
        y_min, y_max = min(y_min, float(my_lo.min())), max(y_max, float(my_hi.max()))
    pad = 2 * p
    x0, y0 = x_min - pad, y_min - pad
    nx = int(math.ceil((x_max + pad - x0) / rx)) + 1
    ny = int(math.ceil((y_max + pad - y0) / ry)) + 1
    xs = x0 + rx * torch.arange(nx, dtype=torch.float64)
    ys = y0 + ry * torch.arange(ny, dtype=torch.float64)

    def coverage(x_lo, x_hi, y_lo, y_hi):
        gx = _overlap(xs[:, None], x_lo, x_hi, p / 2) / p          # (nx, K)
        gy = _overlap(ys[:, None], y_lo, y_hi, p / 2) / p          # (ny, K)
        return (gx @ gy.T).clamp(0, 1)                             # (nx, ny)

    lanes = coverage(mx_lo, mx_hi, my_lo, my_hi) if segs.numel() else torch.zeros(nx, ny, dtype=torch.float64)
    drivable = coverage(cells[:, 0], cells[:, 2], cells[:, 1], cells[:, 3])
    data = torch.stack([lanes, 1.0 - drivable]).unsqueeze(0).to(device=like.device, dtype=like.dtype)
    return _Texture(data, x0, y0, rx, ry, nx, ny)


def _road_grid_map(road: Road, config: RasterConfig, tex: _Texture, device: torch.device,
                   dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """The road texture's sampling grid (H, W, 2) of an ego at world (X, Y) m heading (cos, sin), as
    ``grid_sample`` reads it (texture y then x, normalised, align_corners), as two products:
    ``rows @ (bias + [cos, sin, X, Y] @ weight).view(2, 2 W)``.

    The pixel in row h, column w has its centre ``along_h`` m ahead of and ``left_w`` m left of the
    ego (:meth:`RasterConfig.pixel_centres`), at world x = X + along cos - left sin,
    y = Y + along sin + left cos, read at texture (ky (y - y0) - 1, kx (x - x0) - 1): for each
    column, the coefficient of ``along_h`` and a constant, both linear in (cos, sin, X, Y).

    Returns (made once per road, raster, device and dtype):
        bias (2 W 2,), weight (4, 2 W 2) and rows (H, 2) = [along_h, 1].
    """
    key = ("road_grid_map", config, device, dtype)       # the texture is the road's, cached alike
    cache = road.cache
    if key not in cache:
        with outside_inference_mode():                               # constants.py
            cache[key] = _road_grid_coefficients(config, tex, device, dtype)
    return cache[key]


def _road_grid_coefficients(config: RasterConfig, tex: _Texture, device: torch.device,
                            dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    along, left = config.pixel_centres(torch.empty(0, dtype=torch.float64))            # (H,), (W,)
    kx, ky = 2.0 / (tex.texel_x * (tex.nx - 1)), 2.0 / (tex.texel_y * (tex.ny - 1))
    zero, one = torch.zeros_like(left), torch.ones_like(left)

    def column(y: Tensor, x: Tensor) -> Tensor:          # (W, 2): texture y, texture x per column
        return torch.stack([y, x], dim=-1)

    # each input's coefficients: (of along_h, constant) x column x (texture y, texture x)
    weight = torch.stack([torch.stack([column(zero, kx * one), column(ky * left, zero)]),      # cos
                          torch.stack([column(ky * one, zero), column(zero, -kx * left)]),     # sin
                          torch.stack([column(zero, zero), column(zero, kx * one)]),           # X
                          torch.stack([column(zero, zero), column(ky * one, zero)])])          # Y
    bias = torch.stack([column(zero, zero), column((-ky * tex.y0 - 1.0) * one, (-kx * tex.x0 - 1.0) * one)])
    rows = torch.stack([along, torch.ones_like(along)], dim=-1)                                # (H, 2)
    kw = dict(device=device, dtype=dtype)
    return bias.flatten().to(**kw), weight.flatten(1).to(**kw), rows.to(**kw)


def _render_road(road: Road, config: RasterConfig, centre: Tensor, unit: Tensor, out: Tensor) -> None:
    """Write the lanes and off-road coverages into channels LANES and OFFROAD of ``out`` (B, 4, H, W),
    by sampling the road texture at every pixel centre (off-road = 1 - drivable)."""
    tex = road_texture(road, config, centre)
    B, H, W = centre.shape[0], config.length_px, config.width_px
    # The sampling grid is affine in each pixel's along (a row's) with coefficients per column that
    # are linear in (cos, sin, x, y) of the ego: two small products (F.affine_grid takes 30x the
    # time on a CPU at B = 1,024; one product with the per-pixel coefficients, 1.6x)
    bias, weight, rows = _road_grid_map(road, config, tex, centre.device, centre.dtype)
    per_column = torch.addmm(bias, torch.cat([unit, centre], dim=-1), weight).view(B, 2, 2 * W)
    grid = torch.matmul(rows, per_column)                                             # (B, H, 2W) = (B, H, W, 2)
    road_channels = out[:, LANES:OFFROAD + 1:OFFROAD - LANES]                          # (B, 2, H, W)
    if _needs_grad(grid, tex.data):
        sampled = F.grid_sample(tex.data, grid.view(1, B * H, W, 2), mode="bilinear", padding_mode="border",
                                align_corners=True)                                      # (1, 2, B*H, W)
        road_channels.copy_(sampled.view(2, B, H, W).transpose(0, 1).clamp(0.0, 1.0))
        return
    # grid_sample shares out its batch dimension between threads: the egos go in n groups, n the
    # threads, reading one texture (expanded, not copied)
    n = torch.get_num_threads()
    n = n if n > 1 and B % n == 0 else 1
    sampled = F.grid_sample(tex.data.expand(n, -1, -1, -1), grid.view(n, B // n * H, W, 2), mode="bilinear",
                            padding_mode="border", align_corners=True)                  # (n, 2, B/n*H, W)
    # both channels into the images, clamped (interpolation may leave an ulp outside [0, 1]), in one pass
    torch.clamp(sampled.view(n, 2, B // n, H, W).transpose(1, 2), 0.0, 1.0,
                out=road_channels.view(n, B // n, 2, H, W))


# ---------------------------------------------------------------------------- vehicles
@cached_constant(maxsize=64)
def _vehicle_constants(config: RasterConfig, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """Per-(row, column) constants of the vehicle raster, made once: the raster's centre (2,) px,
    its half-size (2,) px, the half-extent (2,) px beyond which a vehicle is large, and (R,) 0, 1, ...
    offsets for the support windows (read only)."""
    ppm = config.pixels_per_metre
    H, W = config.length_px, config.width_px
    kw = dict(device=device, dtype=dtype)
    return (torch.tensor([(H - 1) / 2, (W - 1) / 2], **kw), torch.tensor([H / 2, W / 2], **kw),
            torch.tensor([(config.large_vehicle_length * ppm + 1) / 2,
                          (config.large_vehicle_width * ppm + 1) / 2], **kw),
            torch.arange(max(H, W) + 2, **kw))


_FAR = 1e4  # px: a pixel offset that no vehicle reaches (routes out-of-raster window pixels to 0)
_ONE_GROUP_UP_TO = 32  # visible vehicles rendered in one group whatever their sizes (small batches)


def _render_vehicles(config: RasterConfig, relative: Tensor, size: Tensor, mask: Tensor, out: Tensor) -> None:
    """Write the max-coverage of the other vehicles into channel VEHICLES of ``out`` (B, 4, H, W),
    each image contiguous; in pixel units throughout.

    ``relative`` (B, 2, 2N) holds the vehicles on the egos' axes (:func:`~ppuu.simulator.dynamics.
    relative_poses`), ``size`` (B, N, 2) their (length, width) m, ``mask`` (B, N) which exist.

    Each visible vehicle covers the pixels of a window around it (its support: the footprint
    grown by half a pixel), with the exact area coverage of a footprint-aligned square pixel
    approximated by the product of two 1-d overlaps; the channel keeps the maximum. Vehicles are
    packed as rows of one table so that selecting the visible ones is one gather (small batches pay
    per operation, not per element).
    """
    B, N = size.shape[:2]
    H, W = config.length_px, config.width_px
    ppm = config.pixels_per_metre
    out[:, VEHICLES] = 0.0
    if N == 0:
        return
    middle, half_view, large_half, offsets = _vehicle_constants(config, size.device, size.dtype)
    along_left = relative.transpose(1, 2)                           # (B, 2N, 2)
    position = torch.add(middle, along_left[:, :N], alpha=-ppm)     # (B, N, 2) fractional (row, column)
    cos_sin = along_left[:, N:]                                     # (B, N, 2)
    half = size * (ppm / 2)                                         # (B, N, 2) half (length, width), px
    # support half-extents along rows and columns: |cos| (l + 1/2) + |sin| (w + 1/2) and the swap
    abs_cs, grown = cos_sin.abs(), half + 0.5
    extent = abs_cs * grown[..., :1] + abs_cs.flip(-1) * grown[..., 1:]
    # visible: the support meets the raster, [-1/2, H - 1/2] x [-1/2, W - 1/2] px around ``middle``
    visible = mask & (torch.sub(along_left[:, :N].abs() * ppm, extent) < half_view).all(-1)
    idx_b, idx_n = torch.nonzero(visible, as_tuple=True)
    if idx_b.numel() == 0:
        return
    # 1-d coverage of a unit pixel at offset x: min(half + 1/2 - |x|, min(2 half, 1)), clamped at 0
    table = torch.cat([position, extent, cos_sin, grown, (2 * half).clamp_(max=1.0)], dim=-1)[idx_b, idx_n]  # (P, 10)
    # Large vehicles (trucks) get their own, larger windows when there are many vehicles; a few go
    # in one group (windows the size of the largest: pixels outside a support get coverage 0)
    groups = [None]
    if len(table) > _ONE_GROUP_UP_TO:
        is_large = (table[:, 2:4] > large_half).any(-1)
        if bool(is_large.any()):
            groups = [~is_large, is_large]
    # one flat view of the storage from the first image to the last: images may be strided apart
    # (slots of the simulator's history ring), each one contiguous
    flat_out = out.as_strided(((B - 1) * out.stride(0) + math.prod(out.shape[1:]),), (1,))
    for sel in groups:
        rows_b, t = (idx_b, table) if sel is None else (idx_b[sel], table[sel])
        if rows_b.numel() == 0:
            continue
        pc, ext = t[:, 0:2], t[:, 2:4]
        start = torch.ceil(pc - ext)                                # (P, 2) first row/column of the support
        nr, nc = (int(v) + 1 for v in (torch.floor(pc + ext) - start).amax(0).tolist())
        if max(nr, nc) > len(offsets):                              # a vehicle larger than the raster
            offsets = torch.arange(max(nr, nc), device=offsets.device, dtype=offsets.dtype)
        rows = start[:, 0:1] + offsets[:nr]                         # (P, R)
        cols = start[:, 1:2] + offsets[:nc]                         # (P, C)
        rows_in, cols_in = rows.clamp(0, H - 1), cols.clamp(0, W - 1)
        dr = torch.where(rows_in == rows, pc[:, 0:1] - rows, _FAR)  # px ahead of the pixel
        dc = torch.where(cols_in == cols, pc[:, 1:2] - cols, _FAR)  # px left of the pixel
        c, s = t[:, 4:5], t[:, 5:6]
        # pixel centre relative to the vehicle, in the vehicle's frame (px): (P, R, C)
        ax = (dr * c)[:, :, None] + (dc * s)[:, None, :]
        ay = (dc * c)[:, None, :] - (dr * s)[:, :, None]
        grown_l, grown_w, most_l, most_w = t[:, 6:10, None, None].unbind(1)     # (P, 1, 1) each
        cov = torch.minimum(grown_l - ax.abs(), most_l).clamp_(min=0) \
            * torch.minimum(grown_w - ay.abs(), most_w).clamp_(min=0)
        ri = rows_in.long() * W + (rows_b[:, None] * out.stride(0) + VEHICLES * H * W)
        flat = ri[:, :, None] + cols_in.long()[:, None, :]
        flat_out.scatter_reduce_(0, flat.reshape(-1), cov.reshape(-1), reduce="amax", include_self=True)


def ego_profiles(config: RasterConfig, ego_size: Tensor) -> tuple[Tensor, Tensor]:
    """The ego channel's two factors: the coverage of each row (B, H) and of each column (B, W) by
    the footprint of (B, 2) (length, width) m, centred and aligned with the grid, so that their
    product is its exact area coverage. They depend on the size only: a caller that renders one
    ego over many frames (the simulator) makes them once per episode."""
    along, left = _pixel_centres(config, ego_size.device, ego_size.dtype)
    p = config.metres_per_pixel
    half_l, half_w = ego_size[:, 0, None] / 2, ego_size[:, 1, None] / 2
    rows = (_overlap(along[None, :], -half_l, half_l, p / 2) / p).clamp_(max=1.0)     # (B, H)
    columns = (_overlap(left[None, :], -half_w, half_w, p / 2) / p).clamp_(max=1.0)   # (B, W)
    return rows, columns


def _render_ego(config: RasterConfig, ego_size: Tensor, out: Tensor,
                profiles: tuple[Tensor, Tensor] | None = None) -> None:
    """Write the coverage of the ego footprint (centred, aligned with the grid: exact) into channel
    EGO of ``out`` (B, 4, H, W), from its :func:`ego_profiles` when given."""
    rows, columns = ego_profiles(config, ego_size) if profiles is None else profiles
    if _needs_grad(rows, columns):
        out[:, EGO] = rows[:, :, None] * columns[:, None, :]
    else:
        torch.mul(rows[:, :, None], columns[:, None, :], out=out[:, EGO])


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def render_into(out: Tensor, road: Road, ego_centre: Tensor, ego_unit: Tensor, ego_size: Tensor,
                others_centre: Tensor, others_unit: Tensor, others_size: Tensor, others_mask: Tensor,
                config: RasterConfig, ego: tuple[Tensor, Tensor] | None = None,
                relative: Tensor | None = None) -> Tensor:
    """:func:`render` without its checks, into a given buffer: the simulator's step.

    Args:
        out: (B, 4, H, W) on the device/dtype of ``ego_centre``, each image contiguous (the images
            may be strided apart, e.g. slots of a history ring); every value is written.
        ego_unit: (B, 2) unit headings; ``others_unit`` (B, N, 2) likewise.
        others_*: as in :func:`render`, finite everywhere (masked entries too) and of ``out``'s dtype.
        ego: the egos' :func:`ego_profiles` when known (else made from ``ego_size``).
        relative: the others on the egos' axes, (B, 2, 2N) from
            :func:`~ppuu.simulator.dynamics.relative_poses`, when known (the simulator's step shares
            them with its collision test; else made from the poses).

    Returns:
        ``out``.
    """
    if out.shape[0] == 0:
        return out
    if not out[0].is_contiguous():
        raise ValueError("render_into: each image of the output buffer must be contiguous")
    _render_road(road, config, ego_centre, ego_unit, out)
    if relative is None:
        relative = relative_poses(ego_centre, ego_unit, others_centre, others_unit)
    _render_vehicles(config, relative, others_size, others_mask, out)
    _render_ego(config, ego_size, out, ego)
    return out


def render(road: Road, ego_centre: Tensor, ego_heading: Tensor, ego_size: Tensor, others_centre: Tensor,
           others_heading: Tensor, others_size: Tensor, others_mask: Tensor | None = None,
           config: RasterConfig = RasterConfig()) -> Tensor:
    """Render egocentric observations for a batch of ego cars in one call.

    Args:
        road: the scene's :class:`~ppuu.simulator.road.Road`.
        ego_centre: (B, 2) m, world frame.
        ego_heading: (B,) rad or (B, 2) unit vector.
        ego_size: (B, 2) (length, width) m.
        others_centre: (B, N, 2) m, world frame (N may be 0). The ego itself must not be
            among them (or must be masked out).
        others_heading: (B, N) rad or (B, N, 2) unit vectors.
        others_size: (B, N, 2) (length, width) m.
        others_mask: (B, N) bool, True where the vehicle exists; None = all exist. Masked
            entries may hold any value (NaN included).
        config: :class:`RasterConfig`.

    Returns:
        (B, 4, H, W) in [0, 1] on the device/dtype of ``ego_centre``; channels
        :data:`LANES`, :data:`VEHICLES`, :data:`OFFROAD`, :data:`EGO`; row 0 = ahead,
        column 0 = left (module docstring).

    Not differentiable with respect to the poses (channels are written in place; a pose that
    requires grad raises RuntimeError): the planners differentiate predicted images instead.
    """
    if ego_centre.dim() != 2 or ego_centre.shape[-1] != 2:
        raise ValueError(f"ego_centre of shape {tuple(ego_centre.shape)}: expected (B, 2) metres")
    B, N = others_centre.shape[0], others_centre.shape[1]
    if others_centre.shape != (B, N, 2) or B != ego_centre.shape[0]:
        raise ValueError(f"others_centre of shape {tuple(others_centre.shape)}: expected (B={ego_centre.shape[0]}, N, 2)")
    ego_unit = as_unit_heading(ego_heading, 1).to(ego_centre)
    others = _sanitised(ego_centre, ego_unit, others_centre, others_heading, others_size, others_mask)
    image = ego_centre.new_empty(B, len(CHANNELS), config.length_px, config.width_px)
    return render_into(image, road, ego_centre, ego_unit, ego_size.to(ego_centre), *others, config)


def _sanitised(ego_centre: Tensor, ego_unit: Tensor, others_centre: Tensor, others_heading: Tensor,
               others_size: Tensor, others_mask: Tensor | None):
    """(centre, unit, size, mask) of the other vehicles with absent ones (masked or not finite) moved onto
    the ego with unit size, so that NaNs cannot leak through the arithmetic."""
    B, N = others_centre.shape[:2]
    if others_mask is None:
        others_mask = torch.ones(B, N, dtype=torch.bool, device=ego_centre.device)
    others_mask = others_mask & torch.isfinite(others_centre).all(-1)
    safe = others_mask[..., None]
    centre = torch.where(safe, others_centre.to(ego_centre), ego_centre[:, None, :])
    size = torch.where(safe, others_size.to(ego_centre), torch.ones_like(centre))
    unit = as_unit_heading(others_heading, 2).to(ego_centre)
    unit = torch.where(safe, unit, ego_unit[:, None, :].expand_as(unit))
    return centre, unit, size, others_mask


def render_traffic_frames(road: Road, centre: Tensor, unit: Tensor, others_centre: Tensor, others_unit: Tensor,
                          others_size: Tensor, others_mask: Tensor | None = None,
                          config: RasterConfig = RasterConfig()) -> Tensor:
    """F frames of traffic around one pose per slot: (S, F, 4, H, W), the ego channel empty.

    What :func:`render` gives for the S x F (pose, frame) pairs, with the road (the same for every
    frame of a pose) rendered once per pose: re-rendering a 20-frame history around a new pose is
    then about a third cheaper on a CPU.

    Args:
        centre: (S, 2) m, world-frame image centres; unit: (S, 2) unit vectors, the images' up direction.
        others_centre: (S, F, N, 2) m; others_unit (S, F, N, 2) unit headings; others_size (S, F, N, 2) m;
            others_mask (S, F, N) bool (None = all exist; masked entries may hold NaN).
    """
    S, F_ = others_centre.shape[:2]
    H, W = config.length_px, config.width_px
    images = centre.new_empty(S, F_, len(CHANNELS), H, W)
    if S == 0 or F_ == 0:
        return images
    road_once = centre.new_empty(S, len(CHANNELS), H, W)
    _render_road(road, config, centre, unit, road_once)
    images[:, :, LANES] = road_once[:, None, LANES]
    images[:, :, OFFROAD] = road_once[:, None, OFFROAD]
    poses = centre.repeat_interleave(F_, dim=0), unit.repeat_interleave(F_, dim=0)
    others = _sanitised(*poses, others_centre.flatten(0, 1), others_unit.flatten(0, 1), others_size.flatten(0, 1),
                        None if others_mask is None else others_mask.flatten(0, 1))
    centre_b, unit_b, size_b, mask_b = others
    _render_vehicles(config, relative_poses(*poses, centre_b, unit_b), size_b, mask_b,
                     images.view(S * F_, len(CHANNELS), H, W))
    images[:, :, EGO] = 0.0
    return images
