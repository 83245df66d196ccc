"""Road inference on the road fixtures, before and after issue 15 (BENCHMARKS.md "Road geometry").

For each fixture of tests/data/fixtures/roads/ (SUMO traffic on a known layout, exported as NGSIM),
imported with no site name, prints a Markdown row per inference:

* ``before``: the rule of ppuu before issue 15: ``max(Lane_ID)`` full-length 12 ft lanes, no
  ramps, the section up to the furthest vehicle front;
* ``after``: :func:`ppuu.data.geometry.infer_site`.

Columns: the road found; ``phantom m2``: drivable area in the section that the generator's road
does not have (lanes where there are none); ``missing m2``: area of the generator's road that the
inferred one lacks (in these recordings the end of an acceleration lane that no vehicle reached);
vehicles whose first recorded footprint is off the road (the simulator's test); and the
``human`` controller's replay success (% of episodes arrived, whole-section course) over all
splits and over the test split.

Run: ``OMP_NUM_THREADS=1 python scripts/bench_geometry.py`` (``ppuu`` importable).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from ppuu.data.geometry import infer_site, read_geometry
from ppuu.data.ngsim import read_ngsim
from ppuu.data.pipeline import build_scene
from ppuu.data.scene import SceneMeta
from ppuu.data.sites import LANE_WIDTH, Site

ROADS = Path(__file__).resolve().parents[1] / "tests" / "data" / "fixtures" / "roads"


def old_layout(raw) -> Site:
    """The layout ppuu inferred for an unknown site before issue 15."""
    return Site("old", (LANE_WIDTH,) * int(raw["lane"].max()), float(math.ceil((raw["x"] + raw["length"] / 2).max())))


def drivable(site: Site, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(X, Y) bool on a grid: inside the site's road within its section."""
    inside = (y[None, :] <= 0) & (y[None, :] >= -site.road_width) & (x[:, None] <= site.section_length)
    for r in site.ramps:
        inside |= ((x[:, None] >= r.x_start) & (x[:, None] <= r.x_end)
                   & (y[None, :] <= r.y_left) & (y[None, :] >= r.y_right))
    return inside


def main() -> None:
    from ppuu.simulator.collision import footprint_offroad
    from ppuu.simulator.evaluate import evaluate
    from ppuu.simulator.road import Road

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    torch.set_num_threads(parser.parse_args().threads)
    print("| road | inference | main lanes | ramps (lane kind x m) | phantom m2 | missing m2 | starts off road "
          "| human all splits | human test |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for road_file in sorted(ROADS.glob("*.road.json")):
        truth = read_geometry(road_file)
        raw, _ = read_ngsim([road_file.with_name(road_file.name.replace(".road.json", ".ngsim.txt.gz"))])
        x = np.arange(0.0, truth.section_length, 0.5) + 0.25
        y = -np.arange(0.0, 30.0, 0.05) - 0.025
        true_area = drivable(truth, x, y)
        for label, site in (("before", old_layout(raw)), ("after", infer_site(raw, name=truth.name))):
            meta = SceneMeta(name=f"{truth.name}-{label}", site=truth.name, source="ngsim",
                             lane_widths=list(site.lane_widths), section_length=site.section_length,
                             ramps=[dataclasses.replace(r) for r in site.ramps])
            scene = build_scene(raw, meta)
            area = drivable(site, x, y)
            cell = 0.5 * 0.05
            first = scene.trajectories.groupby("vehicle_id").first()
            off = footprint_offroad(Road.from_meta(meta), torch.tensor(first[["x", "y"]].to_numpy()),
                                    torch.tensor(first["heading"].to_numpy()),
                                    torch.tensor(first[["length", "width"]].to_numpy()))
            ok = [evaluate(scene, "human", split=s, progress=False)["outcome_name"] == "arrived"
                  for s in (None, "test")]
            ramps = ", ".join(f"{r.lane} {r.kind} {r.x_start:.0f}-{r.x_end:.0f}" for r in site.ramps) or "none"
            print(f"| {truth.name} | {label} | {len(site.lane_widths)} | {ramps} "
                  f"| {(area & ~true_area).sum() * cell:.0f} | {(true_area & ~area).sum() * cell:.0f} "
                  f"| {int(off.sum())} of {len(first)} "
                  f"| {100 * ok[0].mean():.1f} % of {len(ok[0])} | {100 * ok[1].mean():.1f} % of {len(ok[1])} |")
        ramps = ", ".join(f"{r.lane} {r.kind} {r.x_start:.0f}-{r.x_end:.0f}" for r in truth.ramps)
        print(f"| {truth.name} | generator | {len(truth.lane_widths)} | {ramps} | | | | | |")


if __name__ == "__main__":
    main()
