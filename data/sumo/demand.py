"""Vehicle types and traffic demand for the SUMO scenes: who drives, how, and how many per hour.

Why: NGSIM's rush-hour periods are a mix of mostly cars, a few percent trucks
and about 1 % motorcycles, driven by imperfect drivers in a queue behind a
bottleneck. We reproduce the mix with *populations* of SUMO vehicle types
(``vTypeDistribution``): each type's size and driver parameters are drawn once
from a seeded :class:`numpy.random.Generator`, and SUMO (seeded with ``--seed``)
picks a type for each vehicle and draws its own speed factor around the type's.
Drivers follow SUMO's Extended Intelligent Driver Model (EIDM) with its driving
errors switched on (noisy acceleration, misjudged gaps and leader speeds, a
reaction time) and soft acceleration (0.8-1.5 m/s^2); unlike SUMO's Krauss model
(tried: homogeneous crawling queues), this makes the queue behind the bottleneck
string-unstable, i.e. stop-and-go waves. Lane changes use LC2013 (see
:mod:`ppuu.data.sumo.generate` on their lateral motion).

Arrivals are Poisson (``period="exp(rate)"``) flows, one per (route, class), so
the demand per route in vehicles per hour is explicit and recorded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppuu.data.sumo.network import Layout


@dataclass(frozen=True)
class VehicleType:
    """One SUMO vType (a sub-population of similar vehicles and drivers).

    Attributes:
        id: SUMO vType id.
        population: "car", "hov", "truck" or "motorcycle".
        vclass: NGSIM v_Class (1 motorcycle, 2 car, 3 truck).
        sumo_vclass: SUMO vClass ("passenger", "hov", "truck", "motorcycle").
        length, width: m.
        min_gap: m, standstill gap to the leader.
        accel, decel: m/s^2, comfortable acceleration and deceleration.
        tau: s, desired time headway.
        sigma_error: intensity of the driver's acceleration error (EIDM ``sigmaerror``, a Wiener process).
        sigma_gap: relative error of the estimated gap to the leader (EIDM ``sigmagap``).
        sigma_leader: error of the estimated leader speed (EIDM ``sigmaleader``).
        reaction_time: s, EIDM ``treaction``.
        speed_factor: mean multiplier of the speed limit; SUMO draws each vehicle's own
            factor from a normal distribution with ``speed_dev`` around it.
        speed_dev: standard deviation of the per-vehicle speed factor.
        max_speed: m/s.
    """

    id: str
    population: str
    vclass: int
    sumo_vclass: str
    length: float
    width: float
    min_gap: float
    accel: float
    decel: float
    tau: float
    sigma_error: float
    sigma_gap: float
    sigma_leader: float
    reaction_time: float
    speed_factor: float
    speed_dev: float
    max_speed: float


@dataclass(frozen=True)
class DemandConfig:
    """How many vehicles, of which kinds.

    Attributes:
        route_rates: route id -> vehicles per hour of general traffic (cars, trucks and
            motorcycles together).
        truck_share, motorcycle_share: fractions of every route's general flow.
        hov_rate: carpools per hour, on the layout's "hov" route (they enter on the HOV lane's own
            source edge and stay in that lane); only used where the layout has an HOV lane.
        types_per_population: number of vTypes drawn per population (cars get this many,
            the others fewer).
        fill_factor: demand multiplier during the warm-up, to build the queue quickly.
    """

    route_rates: dict[str, float]
    truck_share: float = 0.03
    motorcycle_share: float = 0.01
    hov_rate: float = 0.0
    types_per_population: int = 16
    fill_factor: float = 1.6


DEFAULT_DEMAND = {
    # Demand above what the bottleneck discharges (at 6 m/s about 1,050-1,300 veh/h per lane with
    # these drivers): the queue, built quickly during the warm-up, fills the observed section and
    # reaches back to where vehicles enter. On I-80, lane 1 is an HOV lane that the bottleneck does
    # not throttle: general traffic (7,000 veh/h) queues in the five other lanes, and the carpools
    # come at the 1,300 veh/h of the real lane 1 in 4:00-4:15.
    "i80": DemandConfig(route_rates={"main": 6300.0, "ramp": 700.0}, hov_rate=1300.0),
    # US-101: about 5,800 veh/h through the five-lane bottleneck
    "us101": DemandConfig(route_rates={"main": 5600.0, "main_off": 500.0, "ramp": 700.0, "ramp_off": 300.0}),
}


def custom_demand(layout: Layout, per_lane: float = 1300.0, ramp: float = 600.0, main_off: float = 400.0,
                  ramp_off: float = 200.0) -> DemandConfig:
    """Demand for a network built from any layout (:func:`ppuu.data.sumo.network.custom_layout`): ``per_lane``
    veh/h per main lane on the route ``main``, and the given veh/h on the ramp routes the layout has. Dense
    traffic that the downstream bottleneck slows without jamming the section for good."""
    main_lanes = len(layout.edge("up").lanes)
    rates = {"main": per_lane * main_lanes, "ramp": ramp, "main_off": main_off, "ramp_off": ramp_off}
    return DemandConfig(route_rates={r: v for r, v in rates.items() if r in layout.routes})


LATERAL_SPEED_FACTOR = 0.15
"""SUMO ``lcMaxSpeedLatFactor``: a lane change moves sideways at most this times the forward speed (with
``lcMaxSpeedLatStanding`` 0), apart from SUMO's floor of 0.5 m/s for a change under way and the urgent
changes at the end of an on-ramp. See :mod:`ppuu.data.sumo.generate` for what it does to the scenes."""


def _clip_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    return float(np.clip(rng.normal(mean, sd), lo, hi))


def draw_vehicle_types(rng: np.random.Generator, n: int = 16, with_hov: bool = True) -> list[VehicleType]:
    """Draw the vType populations (sizes in metres, NGSIM-like).

    Cars about 4.5 m x 1.8 m with spread; trucks 10-16 m x 2.5 m; motorcycles 2.2 m x 0.8 m.

    Args:
        rng: seeded generator; the same state gives the same types.
        n: car types (carpools get n // 2, trucks n // 4, motorcycles 2).
        with_hov: also draw carpool ("hov") car types.
    """
    out: list[VehicleType] = []

    def driver(kind: str) -> dict:
        return dict(
            min_gap=_clip_normal(rng, 2.0 if kind != "truck" else 2.5, 0.4, 1.2, 3.5),
            tau=_clip_normal(rng, 1.2, 0.2, 0.8, 1.8),
            sigma_error=float(rng.uniform(0.05, 0.2)),
            sigma_gap=float(rng.uniform(0.05, 0.15)),
            sigma_leader=float(rng.uniform(0.02, 0.08)),
            reaction_time=float(rng.uniform(0.3, 0.7)),
            speed_factor=_clip_normal(rng, 1.0, 0.05, 0.85, 1.15),
        )

    def car(pop: str, i: int) -> VehicleType:
        return VehicleType(
            id=f"{pop}{i}", population=pop, vclass=2, sumo_vclass="passenger" if pop == "car" else "hov",
            length=_clip_normal(rng, 4.5, 0.45, 3.6, 5.8), width=_clip_normal(rng, 1.8, 0.09, 1.55, 2.1),
            accel=float(rng.uniform(0.8, 1.5)), decel=float(rng.uniform(3.0, 4.5)),
            # carpools drive in the free HOV lane, where desired speeds show: the real lane 1 spreads
            # from 10.9 to 21.6 m/s (p10-p90)
            speed_dev=0.08 if pop == "car" else 0.12,
            max_speed=50.0, **driver("car"))

    out += [car("car", i) for i in range(n)]
    if with_hov:
        out += [car("hov", i) for i in range(max(1, n // 2))]
    out += [VehicleType(
        id=f"truck{i}", population="truck", vclass=3, sumo_vclass="truck",
        length=float(rng.uniform(10.0, 16.0)), width=_clip_normal(rng, 2.5, 0.05, 2.4, 2.6),
        accel=float(rng.uniform(0.5, 0.9)), decel=1.5, speed_dev=0.05, max_speed=30.0, **driver("truck"))
        for i in range(max(1, n // 4))]
    out += [VehicleType(
        id=f"moto{i}", population="motorcycle", vclass=1, sumo_vclass="motorcycle",
        length=2.2, width=0.8, accel=float(rng.uniform(1.5, 2.5)), decel=3.0, speed_dev=0.1,
        max_speed=55.0, **driver("motorcycle"))
        for i in range(2)]
    return out


def class_rates(layout: Layout, config: DemandConfig) -> dict[tuple[str, str], float]:
    """Vehicles per hour for every (route, population) pair with a non-zero flow.

    Carpools (population "hov") run on the layout's "hov" route, if it has one.
    """
    out = {}
    for route, rate in config.route_rates.items():
        if route not in layout.routes:
            raise ValueError(f"demand for unknown route {route!r}; "
                             f"the {layout.site} network has {sorted(layout.routes)}")
        shares = {"car": rate * (1.0 - config.truck_share - config.motorcycle_share),
                  "truck": rate * config.truck_share, "motorcycle": rate * config.motorcycle_share}
        out.update({(route, pop): r for pop, r in shares.items() if r > 0})
    if config.hov_rate > 0 and "hov" in layout.routes:
        out[("hov", "hov")] = config.hov_rate
    return out


def _depart_lane(layout: Layout, route: str, population: str) -> str:
    """Where a flow's vehicles enter: carpools on the HOV lane (if the layout has one), ramp traffic on
    a random ramp lane (SUMO's "best" would never pick a ramp lane that ends), the rest on the best lane."""
    edges = layout.routes[route]
    first, last = layout.edge(edges[0]), layout.edge(edges[-1])
    if population == "hov" and first.hov_lanes:
        return str(first.lanes.index(first.hov_lanes[0]))
    on_ramp = not set(first.lanes) & set(last.lanes)  # none of its lanes reaches the route's end
    if on_ramp and len(first.lanes) > 1:
        return "random"
    return "best"


def _depart_speed(population: str) -> str:
    """SUMO ``departSpeed`` of a flow. Carpools enter the free HOV lane at their desired speed:
    with "max" SUMO let them in so rarely (measured: 1,100 instead of 1,300 veh/h, a mean insertion
    delay of 86 s) that the HOV lane ran short of vehicles; the others enter as fast as is safe."""
    return "desired" if population == "hov" else "max"


def write_routes(layout: Layout, types: list[VehicleType], rates: dict[tuple[str, str], float],
                 end: float, path: Path, fill_until: float = 0.0, fill_factor: float = 1.0) -> Path:
    """Write the SUMO routes file: vTypes, one vTypeDistribution per population, routes, flows.

    Args:
        layout: the network (its routes).
        types: from :func:`draw_vehicle_types`.
        rates: from :func:`class_rates`, vehicles per hour.
        end: s, when the flows stop.
        path: output file.
        fill_until: s; before this time every flow runs ``fill_factor`` times faster, so the
            queue builds up quickly during the warm-up.
        fill_factor: demand multiplier before ``fill_until``.
    """
    root = ET.Element("routes")
    populations: dict[str, list[VehicleType]] = {}
    for t in types:
        populations.setdefault(t.population, []).append(t)
    for pop, members in populations.items():
        dist = ET.SubElement(root, "vTypeDistribution", id=f"pop_{pop}")
        for t in members:
            ET.SubElement(dist, "vType", id=t.id, vClass=t.sumo_vclass, length=f"{t.length:.3f}",
                          width=f"{t.width:.3f}", minGap=f"{t.min_gap:.3f}", accel=f"{t.accel:.3f}",
                          decel=f"{t.decel:.3f}", emergencyDecel="9.0", tau=f"{t.tau:.3f}",
                          carFollowModel="EIDM", sigmaerror=f"{t.sigma_error:.3f}",
                          sigmagap=f"{t.sigma_gap:.3f}", sigmaleader=f"{t.sigma_leader:.3f}",
                          treaction=f"{t.reaction_time:.3f}",
                          speedFactor=f"normc({t.speed_factor:.3f},{t.speed_dev:.3f},0.5,1.5)",
                          maxSpeed=f"{t.max_speed:.2f}", laneChangeModel="LC2013",
                          # carpools keep to the HOV lane, as on the real road: no urge to keep right or
                          # to gain speed in the general lanes (which are faster when the queue moves)
                          lcKeepRight="0" if pop == "hov" else "0.3",
                          lcSpeedGain="0" if pop == "hov" else "2.0",
                          lcCooperative="1.0", lcAssertive="1.2",
                          # sideways no faster than LATERAL_SPEED_FACTOR x forward speed, and no lane change
                          # started from standstill (ppuu.data.sumo.generate: lateral motion)
                          lcMaxSpeedLatStanding="0", lcMaxSpeedLatFactor=f"{LATERAL_SPEED_FACTOR:g}",
                          probability="1")
    for rid, edges in layout.routes.items():
        ET.SubElement(root, "route", id=rid, edges=" ".join(edges))
    phases = [(0.0, fill_until, fill_factor, "fill"), (fill_until, end, 1.0, "run")]
    flows = []
    for begin, stop, factor, name in phases:
        if stop <= begin:
            continue
        for (route, pop), rate in sorted(rates.items()):
            # the free-flowing HOV lane needs no filling (a surge would only jam it)
            f = 1.0 if pop == "hov" else factor
            flows.append((begin, f"{route}.{pop}.{name}", route, pop, rate * f, stop))
    for begin, fid, route, pop, rate, stop in sorted(flows):  # SUMO wants flows sorted by begin
        ET.SubElement(root, "flow", id=fid, type=f"pop_{pop}", route=route, begin=f"{begin:.1f}",
                      end=f"{stop:.1f}", period=f"exp({rate / 3600.0:.6f})",
                      departLane=_depart_lane(layout, route, pop), departSpeed=_depart_speed(pop),
                      departPos="base")
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path
