"""Generate a traffic scene with SUMO: network, demand, simulation, conversion, in one call.

Why SUMO: the project needs dense, NGSIM-like traffic that anyone can regenerate
without downloading NGSIM. SUMO is a maintained microscopic simulator with
lane-changing and heterogeneous drivers; we only describe the road and the
demand and read its floating-car data, with no traffic model of our own.

The simulation runs ``warmup`` seconds first, so the queue behind the downstream
bottleneck fills the observed section before frame 0, then records ``minutes``
minutes at 10 Hz.

Lateral motion: lane changes last ``LANE_CHANGE_DURATION`` seconds
(``--lanechange.duration``, SUMO's simple continuous model), so vehicles move
sideways continuously instead of jumping a lane width in one step, but at a rate
set by time, not distance: 3.66 m / 3 s = 1.2 m/s whatever their forward speed. A
car crawling through a lane change then slides sideways at 40-90 degrees, which no
car can do; the ego car of the simulator (a unicycle that turns by curvature x
distance, at most 0.2 1/m) cannot replay it, and, drawn turned along its motion, it
reaches into the neighbouring lanes. Measured on the default 15-minute I-80 scene
(seed 0): 0.4 % of the samples moved sideways faster than forwards, and 20 % of the
vehicles were flagged for it (their curvature). Two measures, both needed:

* SUMO's lateral bound (vType ``lcMaxSpeedLatStanding`` 0, ``lcMaxSpeedLatFactor``
  :data:`ppuu.data.sumo.demand.LATERAL_SPEED_FACTOR`): no lane change starts from
  standstill and, once started, none moves sideways faster than that factor x the
  forward speed, except that SUMO keeps 0.5 m/s for a change under way
  (``LC_RESOLUTION_SPEED_LAT``, hard-coded) and skips the bound in urgent changes
  (the end of the on-ramp). Alone it leaves 0.13 % of the samples crabbing and 25 %
  of the vehicles with frames the ego car cannot follow where an episode drives it.
* the lateral path of every lane change re-drawn over the forward motion
  (:mod:`ppuu.data.sumo.lateral`): no sideways motion without forward motion, a
  lane change spread over 24 m of road for a car (70 m for a truck), each checked
  against every other vehicle and the road and drawn another way (or left as SUMO
  drew it) where it would touch either. With both, 0.03 % of the samples crab and
  1.3 % of the vehicles (24 of 1,855) cannot be followed: 11 merge at the very end
  of the on-ramp, 8 are trucks, 5 cars change lanes at walking pace.

Tried and rejected (SUMO 1.28): the sublane model (``--lateral-resolution``,
SL2015) honours the bound in all but urgent changes but puts a vehicle that aborts
a lane change back inside its lane at once (sideways steps of 0.4-0.8 m in 0.1 s,
a few per minute in the queue, whatever we tried: lcAssertive, lcSublane,
lcLaneDiscipline, lcPushy, resolutions of 0.8-1.83 m), at 1.5-5 times the
simulation time.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from ppuu.data.scene import DEFAULT_WORKDIR
from ppuu.data.sites import Site, get_site
from ppuu.data.sumo.demand import (
    DEFAULT_DEMAND,
    DemandConfig,
    custom_demand,
    LATERAL_SPEED_FACTOR,
    class_rates,
    draw_vehicle_types,
    write_routes,
)
from ppuu.data.sumo.fcd import FCD_ATTRIBUTES, count_lane_changes, fcd_to_raw_table, read_fcd
from ppuu.data.sumo.lateral import retime_lateral_motion
from ppuu.data.sumo.wander import add_lane_wander
from ppuu.data.sumo.network import build_network, lane_map, section_edge_selection, site_layout
from ppuu.data.sumo.tools import SumoError, run_tool, sumo_has_parquet, sumo_version

STEP_LENGTH = 0.1
"""s, SUMO's step and the frame period (10 Hz, as NGSIM)."""
LANE_CHANGE_DURATION = 3.0
"""s, duration of a lane-change manoeuvre (``--lanechange.duration``)."""


def _progress_bar(total: float, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=round(total), unit="sim s", desc=desc, leave=False)


def _run_sumo(args: list[str], folder: Path, total: float, progress: bool, desc: str) -> None:
    bar = _progress_bar(total, progress, desc)
    if bar is None:
        run_tool("sumo", args + ["--no-step-log", "true"], cwd=folder)
        return
    pattern = re.compile(r"Step #(\d+(?:\.\d+)?)")
    buffer = ""

    def on_stdout(chunk: str) -> None:
        nonlocal buffer
        buffer = (buffer + chunk)[-200:]
        found = pattern.findall(buffer)
        if found:
            bar.n = min(round(float(found[-1])), bar.total)
            bar.refresh()

    try:
        # SUMO writes the step log through a block-buffered pipe: one line per simulated second
        # fills a 4 KiB buffer every ~45 s of simulated time, which is when the bar moves
        run_tool("sumo", args + ["--step-log.period", "10"], cwd=folder, on_stdout=on_stdout)
        bar.n = bar.total
        bar.refresh()
    finally:
        bar.close()


def _read_statistics(path: Path) -> dict:
    """A few figures of SUMO's ``--statistic-output`` (vehicles inserted, teleports, collisions)."""
    out: dict = {}
    if not path.is_file():
        return out
    root = ET.parse(path).getroot()
    for tag, attrs in (("vehicles", ("loaded", "inserted", "running", "waiting")),
                       ("teleports", ("total", "jam")), ("safety", ("collisions", "emergencyStops"))):
        el = root.find(tag)
        if el is not None:
            for a in attrs:
                if el.get(a) is not None:
                    out[f"{tag}_{a}"] = int(float(el.get(a)))
    return out


def generate_traffic(site: str | Site = "i80", minutes: float = 15.0, seed: int = 0, workdir: Path | None = None,
                     keep_files: bool = False, progress: bool = True,
                     warmup: float = 300.0, demand: DemandConfig | None = None,
                     lane_wander: float = 0.0) -> tuple[pd.DataFrame, dict]:
    """Build a SUMO network shaped like the NGSIM site, a demand, run SUMO with floating-car-data output,
    and convert the vehicles seen in the observed section into a raw canonical table (ppuu.data.schema.as_raw_table).

    Returns (raw_table, info) where info is a JSON-able dict of the generator settings (sumo version, seed,
    demand per route veh/h, durations, number of vehicles, lane-change duration, etc.) to store in SceneMeta.notes.
    Frames at 10 Hz, frame 0 = the first recorded frame. SUMO files go to a temp dir (or workdir/sumo/... if
    keep_files).

    Args:
        site: "i80" or "us101" (ppuu.data.sites), or any :class:`~ppuu.data.sites.Site` of whole
            lanes (:func:`ppuu.data.sumo.network.custom_layout`, demand :func:`ppuu.data.sumo.demand.custom_demand`).
        minutes: recorded duration, minutes (> 0).
        seed: seeds SUMO (``--seed``) and the numpy Generator drawing the vehicle types.
        workdir: workspace; with ``keep_files`` the SUMO files stay in
            ``<workdir>/sumo/<site>-seed<seed>/`` (default workspace ``./ppuu-work``).
        keep_files: keep the network, routes and FCD files.
        progress: show a tqdm bar of the simulated time.
        warmup: simulated seconds before frame 0 (the queue needs about 300 s to fill the section).
        demand: the traffic (default: the site's :data:`~ppuu.data.sumo.demand.DEFAULT_DEMAND`, or
            :func:`~ppuu.data.sumo.demand.custom_demand` for another layout).
        lane_wander: m, the drivers' weave about the lane centre (standard deviation of lateral
            position, :mod:`ppuu.data.sumo.wander`); 0 keeps SUMO's lane centres.

    Returns:
        ``(table, info)``: the raw table (x, y footprint centre in metres, frames at 10 Hz) and the
        settings and figures of the run.

    Raises:
        ValueError: unknown site or non-positive duration.
        data.sumo.tools.SumoError: SUMO missing, failing, or producing no vehicle in the section.
    """
    if minutes <= 0:
        raise ValueError(f"minutes={minutes!r}; expected a positive duration")
    if warmup < 0:
        raise ValueError(f"warmup={warmup!r} s; expected >= 0")
    if not 0 <= lane_wander <= 1:
        raise ValueError(f"lane_wander={lane_wander!r} m; expected a standard deviation of lateral position "
                         "in [0, 1] m (drivers: about 0.2)")
    road = site if isinstance(site, Site) else get_site(site)
    layout = site_layout(site)
    site = road.name
    if demand is None:
        known = site in DEFAULT_DEMAND and road == get_site(site)
        demand = DEFAULT_DEMAND[site] if known else custom_demand(layout)
    frame_rate = 1.0 / STEP_LENGTH
    n_frames = int(round(minutes * 60.0 * frame_rate))
    end = warmup + n_frames * STEP_LENGTH
    timings: dict[str, float] = {}

    if keep_files:
        folder = Path(workdir if workdir is not None else DEFAULT_WORKDIR) / "sumo" / f"{site}-seed{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix=f"ppuu-sumo-{site}-")
        folder = Path(cleanup.name)
    try:
        t = time.perf_counter()
        net = build_network(layout, folder)
        lanes = lane_map(layout, net)
        selection = section_edge_selection(layout, net, folder / "section.sel.txt")
        timings["network_s"] = time.perf_counter() - t

        rng = np.random.default_rng(seed)
        has_hov = any(e.hov_lanes for e in layout.edges)
        types = draw_vehicle_types(rng, n=demand.types_per_population, with_hov=has_hov and demand.hov_rate > 0)
        rates = class_rates(layout, demand)
        routes = write_routes(layout, types, rates, end=end, path=folder / "routes.rou.xml",
                              fill_until=warmup, fill_factor=demand.fill_factor)

        # Parquet reads ~30x faster than XML (ppuu.data.sumo.fcd); XML for SUMO builds without it
        fcd_path = folder / ("fcd.parquet" if sumo_has_parquet() else "fcd.xml")
        args = [
            "--net-file", net.name, "--route-files", routes.name,
            "--begin", "0", "--end", f"{end:.1f}", "--step-length", f"{STEP_LENGTH}",
            "--seed", str(int(seed)), "--lanechange.duration", f"{LANE_CHANGE_DURATION}",
            "--lanechange.overtake-right", "true",
            "--fcd-output", fcd_path.name, "--fcd-output.geo", "false",
            "--fcd-output.attributes", ",".join(FCD_ATTRIBUTES),
            "--fcd-output.filter-edges.input-file", selection.name,
            "--device.fcd.begin", f"{warmup:.1f}", "--statistic-output", "stats.xml",
            "--no-warnings", "true", "--duration-log.disable", "true",
        ]
        t = time.perf_counter()
        _run_sumo(args, folder, end, progress, desc=f"SUMO {site}")
        timings["simulation_s"] = time.perf_counter() - t
        stats = _read_statistics(folder / "stats.xml")

        t = time.perf_counter()
        fcd = read_fcd(fcd_path)
        type_sizes = {vt.id: (vt.length, vt.width, vt.vclass) for vt in types}
        table = fcd_to_raw_table(fcd, t0=warmup, n_frames=n_frames, section_length=layout.section_length,
                                 lane_ids=lanes, type_sizes=type_sizes, frame_rate=frame_rate)
        timings["conversion_s"] = time.perf_counter() - t
        t = time.perf_counter()
        table, lateral = retime_lateral_motion(table, road)
        timings["lateral_retiming_s"] = time.perf_counter() - t
        t = time.perf_counter()
        # its own stream of the seed, so that the SUMO run and the vehicle types stay those without wander
        table, wander = add_lane_wander(table, road, lane_wander, np.random.default_rng([int(seed), 1]))
        timings["lane_wander_s"] = time.perf_counter() - t
        if len(table) == 0:
            raise SumoError(f"SUMO produced no vehicle in the observed section of {site} "
                            f"(files in {folder if keep_files else 'a removed temporary folder'})")
    finally:
        if cleanup is not None:
            cleanup.cleanup()

    type_counts = table.groupby("vclass")["vehicle_id"].nunique()
    info = {
        "generator": "ppuu.data.sumo.generate_traffic",
        "sumo_version": sumo_version(),
        "site": site,
        "seed": int(seed),
        "minutes": float(minutes),
        "warmup_s": float(warmup),
        "step_length_s": STEP_LENGTH,
        "frame_rate_hz": frame_rate,
        "n_frames": n_frames,
        "lane_change_duration_s": LANE_CHANGE_DURATION,
        "lane_change_model": "LC2013 (overtaking on the right allowed)",
        "lateral_speed_factor": LATERAL_SPEED_FACTOR,
        "lateral_retiming": lateral,
        "lane_wander": wander,
        "car_following_model": "EIDM",
        "demand_veh_per_h": {r: float(v) for r, v in demand.route_rates.items()},
        "demand_by_class_veh_per_h": {f"{r}.{p}": round(float(v), 1) for (r, p), v in sorted(rates.items())},
        "vehicle_types": len(types),
        "network": dict(layout.settings),
        "demand_warmup_factor": demand.fill_factor,
        "sumo_statistics": stats,
        "n_vehicles": int(table["vehicle_id"].nunique()),
        "n_rows": int(len(table)),
        "vehicles_by_class": {str(int(k)): int(v) for k, v in type_counts.items()},
        "lane_changes": count_lane_changes(table),
        "durations_s": {k: round(v, 3) for k, v in timings.items()},
        "fcd_format": fcd_path.suffix.lstrip("."),
        "files": str(folder) if keep_files else None,
    }
    return table, info
