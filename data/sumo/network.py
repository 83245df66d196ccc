"""SUMO road networks shaped like the NGSIM sites, built with netconvert from plain XML.

Why this shape: the canonical table (:mod:`ppuu.data.schema`) wants x along the road
from the entry of the observed section and y to the left with lane k centred at
``-(k - 0.5) w``. We therefore draw the main road straight along SUMO's +x axis
with its *left* edge on the line y = 0 (SUMO's default ``spreadType="right"``
puts the lanes to the right of the edge geometry), and switch off netconvert's
offset normalisation, so that SUMO coordinates *are* canonical coordinates:
x_canonical = x_SUMO - x0 with x0 = 0 and y_canonical = y_SUMO.

A lane is never described by its SUMO index alone: every edge lists the NGSIM
Lane_ID of each of its lanes (SUMO index 0 = rightmost), so extra lanes (an
on-ramp's acceleration lane, an auxiliary lane) get the Lane_IDs of
:mod:`ppuu.data.sites` and lanes that continue across a node keep their id.
Connections are made between lanes with the same Lane_ID; a lane with no
successor ends there (an acceleration lane that must be left by changing lanes).

Ramps join and leave the main road with their last (first) 100-150 m drawn
parallel to it, and every node has radius 0, so a junction is a straight
continuation of zero size: vehicles neither jump sideways there nor cross
internal-lane geometry in the middle of a lane change. Beyond the observed
section a bottleneck (a stretch with a low speed limit) holds the queue that
gives the stop-and-go traffic of the NGSIM periods. (Tried and rejected: a lane
drop as bottleneck makes drivers desert the dropped lane far upstream; a second
on-ramp does not congest the section.) On I-80, lane 1 is an HOV lane, as on the
real road: reserved to carpools and motorcycles, spared by the bottleneck, and fed
by a source edge of its own (:func:`i80_layout`).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ppuu.data.sites import LANE_WIDTH, Site, get_site
from ppuu.data.sumo.tools import run_tool

HOV_CLASSES = "hov motorcycle"
"""SUMO vehicle classes allowed on an HOV lane (carpools and motorcycles, as in California)."""
HOV_SPEED = 20.0
"""m/s, speed limit of the I-80 HOV lane. The real lane 1 of 4:00-4:15 runs at 16 m/s on average
(p10 10.9, p90 21.6 m/s), far below the 29 m/s limit, beside general lanes that crawl: drivers
next to a queue drive slower (lateral friction). A lower limit on that lane is how we give its
drivers that lower desired speed (measured, 15-minute scene: lane-1 mean speed 14.4 m/s, p10 11.2,
p90 17.5; drivers in one lane cannot pass, so the slower ones set the pace)."""


@dataclass(frozen=True)
class EdgeSpec:
    """One SUMO edge: a stretch of road with a constant set of lanes.

    Attributes:
        id: SUMO edge id.
        from_node, to_node: node ids.
        lanes: NGSIM Lane_ID of each lane, SUMO lane index 0 (rightmost) first.
        speed: speed limit, m/s.
        shape: the edge's *left* border as (x, y) points in metres, or None for the
            straight line between its nodes (main road, left border on y = 0).
        hov_lanes: Lane_IDs on this edge restricted to :data:`HOV_CLASSES`.
        hov_speed: speed limit of the HOV lanes, m/s (None: the edge's ``speed``).
    """

    id: str
    from_node: str
    to_node: str
    lanes: tuple[int, ...]
    speed: float
    shape: tuple[tuple[float, float], ...] | None = None
    hov_lanes: tuple[int, ...] = ()
    hov_speed: float | None = None


@dataclass(frozen=True)
class Layout:
    """A whole network: nodes, edges, routes and which part is the observed section.

    Attributes:
        site: site name ("i80", "us101").
        nodes: node id -> (x, y) metres.
        edges: the edges, upstream first.
        routes: route id -> edge ids.
        section_length: m, the observed section is 0 <= x <= section_length.
        section_edges: edges (and the nodes between them) on which vehicles may be inside
            the observed section; floating-car data is written for these only.
        section_nodes: nodes whose internal (junction) lanes lie in the observed section.
        settings: the geometric parameters, for provenance.
    """

    site: str
    nodes: dict[str, tuple[float, float]]
    edges: tuple[EdgeSpec, ...]
    routes: dict[str, tuple[str, ...]]
    section_length: float
    section_edges: tuple[str, ...]
    section_nodes: tuple[str, ...]
    settings: dict = field(default_factory=dict)

    def edge(self, edge_id: str) -> EdgeSpec:
        for e in self.edges:
            if e.id == edge_id:
                return e
        raise KeyError(edge_id)


def _ramp_shape(x_join: float, y_left: float, parallel: float, length: float, offset: float,
                upstream: bool) -> tuple[tuple[float, float], ...]:
    """Left border of a ramp that runs parallel to the main road for ``parallel`` m at the join.

    The ramp meets the main road at ``(x_join, y_left)``; away from the join it bends
    smoothly (half a cosine) to ``offset`` m further right over ``length`` m. Points are
    ordered in the direction of travel. Units: metres.
    """
    pts = []
    n = 12
    for i in range(n + 1):
        s = i / n
        dx = parallel + s * length
        dy = offset * (1 - math.cos(math.pi * s)) / 2
        pts.append((x_join - dx if upstream else x_join + dx, y_left - dy))
    pts = [(x_join, y_left)] + pts
    if upstream:
        pts.reverse()
    return tuple((round(x, 3), round(y, 3)) for x, y in pts)


def i80_layout(upstream: float = 300.0, downstream: float = 150.0, bottleneck_length: float = 250.0,
               bottleneck_speed: float = 6.0, speed: float = 29.0, ramp_speed: float = 20.0,
               hov: bool = True, hov_speed: float = HOV_SPEED, hov_join: float = 150.0) -> Layout:
    """NGSIM I-80: six main lanes, the Powell St on-ramp (Lane_ID 7) merging into lane 6 by x = 213 m.

    Beyond the section, a stretch with a low speed limit is the bottleneck whose queue
    reaches back through the section (all six lanes continue, so no lane is avoided).

    Lane 1 is an HOV lane (as on the real road): only SUMO vClasses "hov" and "motorcycle"
    may use it, its speed limit is ``hov_speed`` on every edge, the bottleneck included (the
    bottleneck throttles the general lanes only), and the carpools enter on a source edge of
    their own, ``hov_up``, which joins the main road upstream of the section. SUMO inserts the
    vehicles of an edge in departure order and stops at the first one that does not fit, so
    carpools sharing the entry edge with the jammed general traffic wait behind it (measured:
    the HOV lane then runs nearly empty); on their own edge they enter as freely as the real
    ones.

    Args:
        upstream: m of main road before the observed section.
        downstream: m of main road between the end of the section and the bottleneck.
        bottleneck_length: m of road limited to ``bottleneck_speed``.
        bottleneck_speed: m/s, speed limit in the bottleneck (general lanes only).
        speed: m/s, main-road speed limit (65 mph = 29 m/s).
        ramp_speed: m/s, on-ramp speed limit.
        hov: make lane 1 an HOV lane (else it is a general lane like the others).
        hov_speed: m/s, speed limit of the HOV lane (see :data:`HOV_SPEED`).
        hov_join: m before the section where the carpools' source edge joins the main road.
    """
    site = get_site("i80")
    L = site.section_length
    w = LANE_WIDTH
    ramp = site.ramps[0]
    main = (6, 5, 4, 3, 2, 1)
    x_bn0 = L + downstream
    x_bn1 = x_bn0 + bottleneck_length
    nodes = {
        "s0": (0.0, 0.0), "acc": (ramp.x_end, 0.0),
        "bn0": (x_bn0, 0.0), "bn1": (x_bn1, 0.0), "out": (x_bn1 + 200.0, 0.0),
    }
    rshape = _ramp_shape(0.0, -6 * w, parallel=150.0, length=250.0, offset=40.0, upstream=True)
    nodes["rin"] = (rshape[0][0], rshape[0][1] - w / 2)
    hov_lanes = site.hov_lanes if hov else ()
    hv = {"hov_lanes": hov_lanes, "hov_speed": hov_speed if hov else None}
    if hov:
        # general lanes and the HOV lane enter side by side on separate edges that meet at "join",
        # hov_join m before the section (the HOV lane is lane 1, the leftmost: its left border is y = 0)
        x_join = -hov_join
        y_general = -len(hov_lanes) * w
        general = tuple(k for k in main if k not in hov_lanes)
        nodes.update({"join": (x_join, 0.0), "hin": (-upstream, 0.0), "gin": (-upstream, y_general)})
        entry = (
            EdgeSpec("up", "gin", "join", general, speed, shape=((-upstream, y_general), (x_join, y_general))),
            EdgeSpec("hov_up", "hin", "join", hov_lanes, hov_speed, **hv),
            EdgeSpec("up2", "join", "s0", main, speed, **hv),
        )
        head = {"main": ("up", "up2"), "hov": ("hov_up", "up2")}
    else:
        nodes["in"] = (-upstream, 0.0)
        entry = (EdgeSpec("up", "in", "s0", main, speed),)
        head = {"main": ("up",)}
    edges = entry + (
        EdgeSpec("ramp", "rin", "s0", (7,), ramp_speed, shape=rshape),
        EdgeSpec("merge", "s0", "acc", (7,) + main, speed, **hv),
        EdgeSpec("sec", "acc", "bn0", main, speed, **hv),
        EdgeSpec("bneck", "bn0", "bn1", main, bottleneck_speed, **hv),
        EdgeSpec("exit", "bn1", "out", main, speed, **hv),
    )
    tail = ("merge", "sec", "bneck", "exit")
    routes = {name: h + tail for name, h in head.items()}
    routes["ramp"] = ("ramp",) + tail
    settings = dict(upstream_m=upstream, downstream_m=downstream, bottleneck_length_m=bottleneck_length,
                    bottleneck_speed_mps=bottleneck_speed, bottleneck_lanes=len(main),
                    speed_limit_mps=speed, ramp_speed_mps=ramp_speed, hov_lane=bool(hov),
                    hov_speed_mps=hov_speed if hov else None)
    return Layout("i80", nodes, edges, routes, L, ("merge", "sec"), ("s0", "acc"), settings)


def us101_layout(upstream: float = 300.0, downstream: float = 150.0, bottleneck_length: float = 250.0,
                 bottleneck_speed: float = 6.0, speed: float = 29.0, ramp_speed: float = 20.0) -> Layout:
    """NGSIM US-101: five main lanes, an auxiliary lane 6 from the Ventura on-ramp (7) to the Cahuenga off-ramp (8).

    At the section entry the on-ramp arrives as lane 7 and the auxiliary lane 6 opens
    between it and the main road; lane 7 ends at the end of the on-ramp merge
    (ppuu.data.sites), so ramp traffic must move into lane 6 and, unless it leaves again, on
    into the main lanes. The deceleration lane 8 opens to the right of lane 6 and leaves
    as the off-ramp at the end of the section, where lane 6 ends too. Arguments as
    :func:`i80_layout`.
    """
    site = get_site("us101")
    L = site.section_length
    w = LANE_WIDTH
    ramps = {r.lane: r for r in site.ramps}
    main = (5, 4, 3, 2, 1)
    x_bn0 = L + downstream
    x_bn1 = x_bn0 + bottleneck_length
    nodes = {
        "in": (-upstream, 0.0), "s0": (0.0, 0.0), "onend": (ramps[7].x_end, 0.0),
        "offst": (ramps[8].x_start, 0.0), "s1": (L, 0.0),
        "bn0": (x_bn0, 0.0), "bn1": (x_bn1, 0.0), "out": (x_bn1 + 200.0, 0.0),
    }
    on_shape = _ramp_shape(0.0, -6 * w, parallel=150.0, length=250.0, offset=40.0, upstream=True)
    off_shape = _ramp_shape(L, -6 * w, parallel=100.0, length=200.0, offset=40.0, upstream=False)
    nodes["rin"] = (on_shape[0][0], on_shape[0][1] - w / 2)
    nodes["rout"] = (off_shape[-1][0], off_shape[-1][1] - w / 2)
    edges = (
        EdgeSpec("up", "in", "s0", main, speed),
        EdgeSpec("ramp", "rin", "s0", (7,), ramp_speed, shape=on_shape),
        EdgeSpec("merge", "s0", "onend", (7, 6) + main, speed),
        EdgeSpec("aux", "onend", "offst", (6,) + main, speed),
        EdgeSpec("div", "offst", "s1", (8, 6) + main, speed),
        EdgeSpec("offramp", "s1", "rout", (8,), ramp_speed, shape=off_shape),
        EdgeSpec("down", "s1", "bn0", main, speed),
        EdgeSpec("bneck", "bn0", "bn1", main, bottleneck_speed),
        EdgeSpec("exit", "bn1", "out", main, speed),
    )
    mid = ("merge", "aux", "div")
    through = ("down", "bneck", "exit")
    routes = {"main": ("up",) + mid + through, "main_off": ("up",) + mid + ("offramp",),
              "ramp": ("ramp",) + mid + through, "ramp_off": ("ramp",) + mid + ("offramp",)}
    settings = dict(upstream_m=upstream, downstream_m=downstream, bottleneck_length_m=bottleneck_length,
                    bottleneck_speed_mps=bottleneck_speed, bottleneck_lanes=len(main),
                    speed_limit_mps=speed, ramp_speed_mps=ramp_speed)
    return Layout("us101", nodes, edges, routes, L, ("merge", "aux", "div", "down"),
                  ("s0", "onend", "offst", "s1"), settings)


def _ramp_slots(site: Site) -> dict[int, int]:
    """Lane_ID -> lane slot (0 = the leftmost main lane) of every ramp; raises ValueError for a ramp that is
    not one lane wide on the lane grid (the generator builds whole lanes only)."""
    w = LANE_WIDTH
    slots = {}
    for r in site.ramps:
        slot = -r.y_left / w
        off_grid = abs(slot - round(slot)) > 0.01 or abs((r.y_left - r.y_right) - w) > 0.01
        if off_grid or round(slot) < len(site.lane_widths):
            raise ValueError(f"site {site.name!r}: ramp lane {r.lane} (y {r.y_right:.3f}..{r.y_left:.3f} m) is not one "
                             f"{w:.4f} m lane beside the main road; the SUMO generator builds whole lanes only")
        slots[r.lane] = int(round(slot))
    return slots


def custom_layout(site: Site, upstream: float = 300.0, downstream: float = 150.0, bottleneck_length: float = 250.0,
                  bottleneck_speed: float = 12.0, speed: float = 29.0, ramp_speed: float = 20.0) -> Layout:
    """A network for any layout of straight lanes: the main lanes, and each ramp as a lane beside them.

    The section is cut into edges wherever a ramp begins or ends; each edge carries the main
    lanes and the ramps spanning it, which must fill the slots to the right of the main road
    without a gap. The outermost ramp beginning at the section entry is fed by an on-ramp (drawn
    as on I-80: parallel for 150 m before the entry); the outermost ramp reaching the section
    end leaves as an off-ramp. Other ramps open (vehicles change into them) or end (their
    vehicles must merge). Beyond the section, a bottleneck as on I-80. Routes: ``main``, and
    where they exist ``main_off``, ``ramp``, ``ramp_off``. The site's ``hov_lanes`` are not built
    (every lane is a general lane). Arguments as :func:`i80_layout`.

    Raises:
        ValueError: ramps that are not whole lanes on the lane grid, or leave a gap in an edge.
    """
    if len(set(site.lane_widths)) != 1 or abs(site.lane_widths[0] - LANE_WIDTH) > 1e-6:
        raise ValueError(f"site {site.name!r}: lane widths {site.lane_widths}; the SUMO generator builds "
                         f"{LANE_WIDTH:.4f} m lanes only")
    L = site.section_length
    w = LANE_WIDTH
    slots = _ramp_slots(site)
    main = tuple(range(len(site.lane_widths), 0, -1))
    tol = 1e-6
    cuts = sorted({0.0, L} | {v for r in site.ramps for v in (r.x_start, r.x_end) if tol < v < L - tol})
    nodes = {f"n{i}": (x, 0.0) for i, x in enumerate(cuts)}
    nodes["in"] = (-upstream, 0.0)
    entering = sorted((r for r in site.ramps if r.x_start <= tol), key=lambda r: slots[r.lane])
    # the outermost lane beginning at the entry is an on-ramp's; the others come from upstream
    upstream_lanes = tuple(r.lane for r in reversed(entering[:-1])) + main
    edges = [EdgeSpec("up", "in", "n0", upstream_lanes, speed)]
    section = []
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        here = sorted((r for r in site.ramps if r.x_start <= a + tol and r.x_end >= b - tol),
                      key=lambda r: slots[r.lane])
        if [slots[r.lane] for r in here] != list(range(len(main), len(main) + len(here))):
            raise ValueError(f"site {site.name!r}: between x={a:g} and {b:g} m the ramps "
                             f"{[r.lane for r in here]} leave a gap beside the main road")
        edges.append(EdgeSpec(f"sec{i}", f"n{i}", f"n{i + 1}", tuple(r.lane for r in reversed(here)) + main, speed))
        section.append(f"sec{i}")
    end = f"n{len(cuts) - 1}"
    if [slots[r.lane] for r in entering[:-1]] != list(range(len(main), len(main) + len(entering) - 1)):
        raise ValueError(f"site {site.name!r}: the lanes beginning at the section entry leave a gap beside the "
                         "main road")
    x_bn0 = L + downstream
    x_bn1 = x_bn0 + bottleneck_length
    nodes.update({"bn0": (x_bn0, 0.0), "bn1": (x_bn1, 0.0), "out": (x_bn1 + 200.0, 0.0)})
    tail = [EdgeSpec("down", end, "bn0", main, speed), EdgeSpec("bneck", "bn0", "bn1", main, bottleneck_speed),
            EdgeSpec("exit", "bn1", "out", main, speed)]
    through = ("down", "bneck", "exit")
    routes = {"main": ("up",) + tuple(section) + through}
    leaving = [r for r in site.ramps if r.x_end >= L - tol]
    if entering:
        r = entering[-1]
        shape = _ramp_shape(0.0, r.y_left, parallel=150.0, length=250.0, offset=40.0, upstream=True)
        nodes["rin"] = (shape[0][0], shape[0][1] - w / 2)
        edges.append(EdgeSpec("ramp", "rin", "n0", (r.lane,), ramp_speed, shape=shape))
        routes["ramp"] = ("ramp",) + tuple(section) + through
    if leaving:
        r = max(leaving, key=lambda r: slots[r.lane])
        shape = _ramp_shape(L, r.y_left, parallel=100.0, length=200.0, offset=40.0, upstream=False)
        nodes["rout"] = (shape[-1][0], shape[-1][1] - w / 2)
        edges.append(EdgeSpec("offramp", end, "rout", (r.lane,), ramp_speed, shape=shape))
        routes["main_off"] = ("up",) + tuple(section) + ("offramp",)
        if entering:
            routes["ramp_off"] = ("ramp",) + tuple(section) + ("offramp",)
    edges += tail
    settings = dict(upstream_m=upstream, downstream_m=downstream, bottleneck_length_m=bottleneck_length,
                    bottleneck_speed_mps=bottleneck_speed, bottleneck_lanes=len(main),
                    speed_limit_mps=speed, ramp_speed_mps=ramp_speed)
    return Layout(site.name, nodes, tuple(edges), routes, L, tuple(section) + ("down",),
                  tuple(f"n{i}" for i in range(len(cuts))), settings)


LAYOUTS = {"i80": i80_layout, "us101": us101_layout}


def site_layout(site: str | Site, **kwargs) -> Layout:
    """The :class:`Layout` of a known site, or (a :class:`Site`) of any layout of whole lanes
    (:func:`custom_layout`); raises ValueError listing the known sites."""
    if isinstance(site, Site):
        return LAYOUTS[site.name](**kwargs) if site.name in LAYOUTS and site == get_site(site.name) \
            else custom_layout(site, **kwargs)
    if site not in LAYOUTS:
        raise ValueError(f"no SUMO network for site {site!r}; known sites: {sorted(LAYOUTS)}")
    return LAYOUTS[site](**kwargs)


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def write_plain_xml(layout: Layout, folder: Path) -> tuple[Path, Path, Path]:
    """Write netconvert's plain-XML inputs (nodes, edges, connections); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    nod = ET.Element("nodes")
    for nid, (x, y) in layout.nodes.items():
        # radius 0: a junction of zero size, so lanes run straight through it (no internal-lane
        # geometry on which a lane change in progress could jump sideways)
        ET.SubElement(nod, "node", id=nid, x=_fmt(x), y=_fmt(y), type="priority", radius="0")
    edg = ET.Element("edges")
    for e in layout.edges:
        el = ET.SubElement(edg, "edge", id=e.id, attrib={"from": e.from_node}, to=e.to_node,
                           numLanes=str(len(e.lanes)), speed=_fmt(e.speed), width=_fmt(LANE_WIDTH),
                           spreadType="right", priority="5" if e.id.startswith("ramp") else "10")
        if e.shape is not None:
            el.set("shape", " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in e.shape))
        for idx, lane_id in enumerate(e.lanes):
            if lane_id in e.hov_lanes:
                lane = ET.SubElement(el, "lane", index=str(idx), allow=HOV_CLASSES)
                if e.hov_speed is not None:
                    lane.set("speed", _fmt(e.hov_speed))
    con = ET.Element("connections")
    for a in layout.edges:
        for b in layout.edges:
            if a.to_node != b.from_node:
                continue
            for i, lane_id in enumerate(a.lanes):
                if lane_id in b.lanes:
                    ET.SubElement(con, "connection", attrib={"from": a.id}, to=b.id, fromLane=str(i),
                                  toLane=str(b.lanes.index(lane_id)))
    paths = (folder / "net.nod.xml", folder / "net.edg.xml", folder / "net.con.xml")
    for root, path in zip((nod, edg, con), paths):
        ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return paths


def build_network(layout: Layout, folder: Path) -> Path:
    """Write the plain XML and run netconvert; return the ``.net.xml`` path.

    Raises:
        data.sumo.tools.SumoError: netconvert missing or failing.
    """
    nod, edg, con = write_plain_xml(layout, folder)
    net = folder / "net.net.xml"
    run_tool("netconvert", [
        "--node-files", nod.name, "--edge-files", edg.name, "--connection-files", con.name,
        "--output-file", net.name, "--offset.disable-normalization", "true",
        "--no-turnarounds", "true", "--default.lanewidth", _fmt(LANE_WIDTH),
        "--junctions.limit-turn-speed", "-1", "--no-warnings", "true",
    ], cwd=folder)
    return net


def lane_map(layout: Layout, net_file: Path) -> dict[str, int]:
    """SUMO lane id -> NGSIM Lane_ID, for the normal lanes and the internal (junction) lanes.

    An internal lane takes the Lane_ID of the lane it leads to (read from the ``via``
    attribute of the connections in ``net_file``).
    """
    out: dict[str, int] = {}
    for e in layout.edges:
        for i, lane_id in enumerate(e.lanes):
            out[f"{e.id}_{i}"] = lane_id
    for _, el in ET.iterparse(net_file):
        if el.tag == "connection" and el.get("via"):
            to_lane = f"{el.get('to')}_{el.get('toLane')}"
            if to_lane in out:
                out[el.get("via")] = out[to_lane]
        el.clear()
    return out


def section_edge_selection(layout: Layout, net_file: Path, path: Path) -> Path:
    """Write a SUMO selection file (``edge:<id>`` lines) of the edges whose FCD we record.

    Holds the section's edges and the internal edges of the nodes inside it.
    """
    lines = [f"edge:{e}" for e in layout.section_edges]
    prefixes = tuple(f":{n}_" for n in layout.section_nodes)
    for _, el in ET.iterparse(net_file):
        if el.tag == "edge" and el.get("function") == "internal" and el.get("id", "").startswith(prefixes):
            lines.append(f"edge:{el.get('id')}")
        el.clear()
    path.write_text("\n".join(lines) + "\n")
    return path
