"""FROZEN reference copy of ppuu.simulator.raster at commit a054892 (before the speed work of issue 13).

Only tests/simulator/test_step_equality.py uses it, to check that the optimised simulator
reproduces the old one. Do not edit: it is the yardstick, not code to maintain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ppuu.simulator.dynamics import as_unit_heading
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


def _overlap(x: Tensor, lo, hi, half_pixel: float) -> Tensor:
    """Length of [x - half_pixel, x + half_pixel] inside [lo, hi] (same units; broadcast)."""
    return (torch.minimum(x + half_pixel, hi) - torch.maximum(x - half_pixel, lo)).clamp(min=0)


# ---------------------------------------------------------------------------- road texture
@dataclass
class _Texture:
    data: Tensor      # (1, 2, Tx, Ty): lanes coverage, drivable coverage; x major so that a
                      # pixel row (varying y) reads neighbouring memory
    x0: float
    y0: float
    texel_x: float
    texel_y: float
    nx: int
    ny: int


def road_texture(road: Road, config: RasterConfig, like: Tensor) -> _Texture:
    """The pre-filtered world-frame road texture for ``config`` on ``like``'s device/dtype (cached).

    Channel 0 is the lane-marking coverage, channel 1 the drivable coverage, of a
    world-aligned pixel-sized square centred on each texel.
    """
    p = config.metres_per_pixel
    key = ("raster_texture", p, config.line_width, config.texels_per_pixel_x, config.texels_per_pixel_y,
           like.device, like.dtype)
    if key in road.cache:
        return road.cache[key]
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
    data = torch.stack([lanes, drivable]).unsqueeze(0).to(device=like.device, dtype=like.dtype)
    tex = _Texture(data, x0, y0, rx, ry, nx, ny)
    road.cache[key] = tex
    return tex


def _render_road(road: Road, config: RasterConfig, centre: Tensor, unit: Tensor, lanes_out: Tensor,
                 offroad_out: Tensor) -> None:
    """Write the lanes and off-road coverages, each (B, H, W), into the given views, by sampling
    the road texture at every pixel centre."""
    tex = road_texture(road, config, centre)
    along, left = config.pixel_centres(centre)
    B, H, W = centre.shape[0], along.shape[0], left.shape[0]
    kx = 2.0 / (tex.texel_x * (tex.nx - 1))        # metres -> normalised texture coordinates
    ky = 2.0 / (tex.texel_y * (tex.ny - 1))
    cos, sin = unit[:, 0, None], unit[:, 1, None]
    # world x = cx + along*cos - left*sin, y = cy + along*sin + left*cos: separable in (row, column)
    grid = centre.new_empty(B, H, W, 2)
    ox = (centre[:, 0, None] - tex.x0) * kx - 1.0 + along * cos * kx          # (B, H)
    oy = (centre[:, 1, None] - tex.y0) * ky - 1.0 + along * sin * ky
    # grid_sample reads (width, height) = (y, x) of the x-major texture
    torch.add(oy[:, :, None], (left * cos * ky)[:, None, :], out=grid[..., 0])
    torch.add(ox[:, :, None], (-left * sin * kx)[:, None, :], out=grid[..., 1])
    sampled = F.grid_sample(tex.data, grid.reshape(1, B * H, W, 2), mode="bilinear", padding_mode="border",
                            align_corners=True)
    sampled = sampled.reshape(2, B, H, W)
    lanes_out.copy_(sampled[0])
    offroad_out.copy_(sampled[1]).neg_().add_(1.0)


# ---------------------------------------------------------------------------- vehicles
def _ego_frame(ego_centre: Tensor, ego_unit: Tensor, centre: Tensor, heading: Tensor):
    """Other vehicles in the ego frame: along (B, N), left (B, N) m; cos, sin (B, N) of the relative heading."""
    rel = centre - ego_centre[:, None, :]
    e = ego_unit[:, None, :]
    along = rel[..., 0] * e[..., 0] + rel[..., 1] * e[..., 1]
    left = -rel[..., 0] * e[..., 1] + rel[..., 1] * e[..., 0]
    u = as_unit_heading(heading, 2)
    cos = u[..., 0] * e[..., 0] + u[..., 1] * e[..., 1]
    sin = -u[..., 0] * e[..., 1] + u[..., 1] * e[..., 0]
    return along, left, cos, sin


def _coverage_1d(x: Tensor, half: Tensor) -> Tensor:
    """Overlap of a unit pixel [x - 1/2, x + 1/2] with [-half, half] (pixel units; broadcast)."""
    return torch.minimum((half + 0.5) - x.abs(), torch.clamp(2 * half, max=1.0)).clamp_(min=0)


_FAR = 1e4  # px: a pixel offset that no vehicle reaches (routes out-of-raster window pixels to 0)


def _render_vehicles(config: RasterConfig, ego_centre: Tensor, ego_unit: Tensor, centre: Tensor,
                     heading: Tensor, size: Tensor, mask: Tensor) -> Tensor:
    """(B, H*W) max-coverage of the other vehicles (rows first), in pixel units throughout."""
    B = ego_centre.shape[0]
    H, W = config.length_px, config.width_px
    ppm = config.pixels_per_metre
    out = ego_centre.new_zeros(B * H * W)
    if centre.shape[1] == 0:
        return out.reshape(B, H * W)
    along, left, cos, sin = _ego_frame(ego_centre, ego_unit, centre, heading)
    half_l, half_w = size[..., 0] * (ppm / 2), size[..., 1] * (ppm / 2)       # (B, N) px
    row_c = (H - 1) / 2 - along * ppm                              # (B, N) fractional pixel row
    col_c = (W - 1) / 2 - left * ppm
    ext_r = cos.abs() * (half_l + 0.5) + sin.abs() * (half_w + 0.5)    # support half-extent, px
    ext_c = sin.abs() * (half_l + 0.5) + cos.abs() * (half_w + 0.5)
    visible = mask & (row_c + ext_r > -0.5) & (row_c - ext_r < H - 0.5) & (col_c + ext_c > -0.5) \
        & (col_c - ext_c < W - 0.5)
    idx_b, idx_n = torch.nonzero(visible, as_tuple=True)
    if idx_b.numel() == 0:
        return out.reshape(B, H * W)
    large = (ext_r > (config.large_vehicle_length * ppm + 1) / 2) | (ext_c > (config.large_vehicle_width * ppm + 1) / 2)
    is_large = large[idx_b, idx_n]
    groups = [~is_large, is_large] if bool(is_large.any()) else [None]
    for sel in groups:
        b, n = (idx_b, idx_n) if sel is None else (idx_b[sel], idx_n[sel])
        if b.numel() == 0:
            continue
        rc, cc, er, ec = row_c[b, n], col_c[b, n], ext_r[b, n], ext_c[b, n]
        r0, c0 = torch.ceil(rc - er), torch.ceil(cc - ec)          # first row/column of the support
        nr, nc = (int(v) for v in torch.stack([(torch.floor(rc + er) - r0).max(),
                                                (torch.floor(cc + ec) - c0).max()]).tolist())
        rows = r0[:, None] + torch.arange(nr + 1, device=rc.device, dtype=rc.dtype)      # (P, R)
        cols = c0[:, None] + torch.arange(nc + 1, device=rc.device, dtype=rc.dtype)      # (P, C)
        dr = torch.where((rows >= 0) & (rows <= H - 1), rc[:, None] - rows, _FAR)      # px ahead of the pixel
        dc = torch.where((cols >= 0) & (cols <= W - 1), cc[:, None] - cols, _FAR)      # px left of the pixel
        c, s = cos[b, n, None], sin[b, n, None]
        # pixel centre relative to the vehicle, in the vehicle's frame (px): (P, R, C)
        ax = (dr * c)[:, :, None] + (dc * s)[:, None, :]
        ay = (dc * c)[:, None, :] - (dr * s)[:, :, None]
        cov = _coverage_1d(ax, half_l[b, n, None, None]) * _coverage_1d(ay, half_w[b, n, None, None])
        ri = rows.clamp(0, H - 1).long() * W + b[:, None] * (H * W)
        ci = cols.clamp(0, W - 1).long()
        flat = ri[:, :, None] + ci[:, None, :]
        out = out.scatter_reduce(0, flat.reshape(-1), cov.reshape(-1), reduce="amax", include_self=True)
    return out.reshape(B, H * W)


def _render_ego(config: RasterConfig, ego_size: Tensor) -> Tensor:
    """(B, H, W) coverage of the ego footprint (centred, aligned with the grid: exact)."""
    along, left = config.pixel_centres(ego_size)
    p = config.metres_per_pixel
    half_l, half_w = ego_size[:, 0, None] / 2, ego_size[:, 1, None] / 2
    ca = _overlap(along[None, :], -half_l, half_l, p / 2) / p                # (B, H)
    cl = _overlap(left[None, :], -half_w, half_w, p / 2) / p                 # (B, W)
    return ca[:, :, None] * cl[:, None, :]


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
    """
    if ego_centre.dim() != 2 or ego_centre.shape[-1] != 2:
        raise ValueError(f"ego_centre of shape {tuple(ego_centre.shape)}: expected (B, 2) metres")
    B, N = others_centre.shape[0], others_centre.shape[1]
    if others_centre.shape != (B, N, 2) or B != ego_centre.shape[0]:
        raise ValueError(f"others_centre of shape {tuple(others_centre.shape)}: expected (B={ego_centre.shape[0]}, N, 2)")
    if others_mask is None:
        others_mask = torch.ones(B, N, dtype=torch.bool, device=ego_centre.device)
    like = ego_centre
    ego_unit = as_unit_heading(ego_heading, 1).to(like)
    others_mask = others_mask & torch.isfinite(others_centre).all(-1)
    # sanitise absent vehicles so that NaNs cannot leak through the arithmetic
    safe = others_mask[..., None]
    others_centre = torch.where(safe, others_centre.to(like), ego_centre[:, None, :])
    others_size = torch.where(safe, others_size.to(like), torch.ones_like(others_centre))
    o_unit = as_unit_heading(others_heading, 2).to(like)
    o_unit = torch.where(safe, o_unit, ego_unit[:, None, :].expand_as(o_unit))

    H, W = config.length_px, config.width_px
    if B == 0:
        return like.new_zeros(0, len(CHANNELS), H, W)
    image = like.new_empty(B, len(CHANNELS), H, W)
    _render_road(road, config, like, ego_unit, image[:, LANES], image[:, OFFROAD])
    image[:, VEHICLES] = _render_vehicles(config, like, ego_unit, others_centre, o_unit, others_size,
                                          others_mask).reshape(B, H, W)
    image[:, EGO] = _render_ego(config, ego_size.to(like))
    return image.clamp_(0.0, 1.0)   # rounding may leave values an ulp outside
