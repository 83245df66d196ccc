"""Road layouts of the NGSIM sites, in metres, used by the readers and the SUMO generator.

The figures come from the NGSIM site descriptions (SPEC §1): I-80 is about
1,650 ft (503 m) long with six 12-ft main lanes and the Powell St on-ramp
(Lane_ID 7) merging into lane 6; US-101 is about 2,100 ft (640 m) long with five
main lanes and an auxiliary lane (Lane_ID 6) between the Ventura on-ramp
(Lane_ID 7) and the Cahuenga off-ramp (Lane_ID 8). Ramp extents are
approximations read off the published site plans (about +-10 m).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ppuu.data.schema import FEET
from ppuu.data.scene import Ramp

LANE_WIDTH = 12 * FEET  # 3.6576 m, the NGSIM lane width


@dataclass(frozen=True)
class Site:
    """A road layout: main lanes and extra segments (ramps, auxiliary lanes)."""

    name: str
    lane_widths: tuple[float, ...]
    section_length: float             #: m
    ramps: tuple[Ramp, ...] = field(default_factory=tuple)
    hov_lanes: tuple[int, ...] = ()   #: Lane_IDs reserved for high-occupancy vehicles

    @property
    def road_width(self) -> float:
        return float(sum(self.lane_widths))


def _i80() -> Site:
    w = 6 * LANE_WIDTH
    return Site(
        name="i80",
        lane_widths=(LANE_WIDTH,) * 6,
        section_length=1650 * FEET,
        ramps=(Ramp(lane=7, kind="on", x_start=0.0, x_end=213.0, y_left=-w, y_right=-w - LANE_WIDTH),),
        hov_lanes=(1,),
    )


def _us101() -> Site:
    w = 5 * LANE_WIDTH
    return Site(
        name="us101",
        lane_widths=(LANE_WIDTH,) * 5,
        section_length=2100 * FEET,
        ramps=(
            Ramp(lane=7, kind="on", x_start=0.0, x_end=130.0, y_left=-w - LANE_WIDTH, y_right=-w - 2 * LANE_WIDTH),
            Ramp(lane=6, kind="auxiliary", x_start=0.0, x_end=2100 * FEET, y_left=-w, y_right=-w - LANE_WIDTH),
            Ramp(lane=8, kind="off", x_start=540.0, x_end=2100 * FEET, y_left=-w - LANE_WIDTH,
                 y_right=-w - 2 * LANE_WIDTH),
        ),
    )


SITES: dict[str, Site] = {"i80": _i80(), "us101": _us101()}


def get_site(name: str) -> Site:
    """The layout of a known site; raises ValueError listing the known ones."""
    try:
        return SITES[name]
    except KeyError:
        raise ValueError(f"unknown site {name!r}; known sites: {sorted(SITES)}") from None
