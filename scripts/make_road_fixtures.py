"""Regenerate the road fixtures of tests/data/fixtures/roads/: SUMO traffic on roads of several shapes,
exported as NGSIM raw text (gzip), each beside the layout it was generated on (its geometry file).

Why: the layout inference (:mod:`ppuu.data.geometry`) must work on sites other than I-80 and
US-101; these roads have a known layout (the generator's), so the tests can compare what the
inference finds with the truth, and replay the recorded drivers on the inferred road.

Shapes (all 12 ft lanes, Lane_ID 1 the leftmost):

* ``four-lane-off``: 4 lanes and a 200 m deceleration lane (Lane_ID 5) leaving as an off-ramp;
* ``five-lane-on``: 5 lanes and an on-ramp whose 150 m acceleration lane (Lane_ID 6) ends;
* ``three-lane-aux``: 3 lanes, an auxiliary lane (4) along the whole section that comes from
  upstream and leaves as an off-ramp, and an on-ramp's 120 m acceleration lane (5) outside it.

Writes ``NAME.road.json`` (the layout, :func:`ppuu.data.geometry.write_geometry`) and
``NAME.ngsim.txt.gz`` (18 s recorded after a two-minute warm-up, seed 0; 70-155 kB
each). Same code, same files.

Run: ``python scripts/make_road_fixtures.py [--out tests/data/fixtures/roads]`` (SUMO installed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppuu.data.geometry import write_geometry
from ppuu.data.ngsim import write_ngsim
from ppuu.data.scene import Ramp
from ppuu.data.sites import LANE_WIDTH as W
from ppuu.data.sites import Site

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "fixtures" / "roads"
MINUTES = 0.3
WARMUP = 120.0
SEED = 0
PER_LANE = 700.0
"""veh/h per main lane (RAMP: on the on-ramp, OFF: main road to off-ramp): flowing traffic, so that the
files stay small, with enough vehicles on the ramps to show them."""
RAMP = 900.0
OFF = 700.0

ROADS = (
    Site("four-lane-off", (W,) * 4, 300.0, (Ramp(5, "off", 100.0, 300.0, -4 * W, -5 * W),)),
    Site("five-lane-on", (W,) * 5, 250.0, (Ramp(6, "on", 0.0, 150.0, -5 * W, -6 * W),)),
    Site("three-lane-aux", (W,) * 3, 250.0, (Ramp(4, "auxiliary", 0.0, 250.0, -3 * W, -4 * W),
                                             Ramp(5, "on", 0.0, 120.0, -4 * W, -5 * W))),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURE_DIR, help="folder (default: %(default)s)")
    args = parser.parse_args()
    from ppuu.data.sumo import generate_traffic
    from ppuu.data.sumo.demand import custom_demand
    from ppuu.data.sumo.network import site_layout

    args.out.mkdir(parents=True, exist_ok=True)
    for site in ROADS:
        layout = site_layout(site)
        demand = custom_demand(layout, per_lane=PER_LANE, ramp=RAMP, main_off=OFF, ramp_off=OFF / 2)
        raw, info = generate_traffic(site, minutes=MINUTES, seed=SEED, progress=False, warmup=WARMUP, demand=demand)
        write_geometry(site, args.out / f"{site.name}.road.json")
        path = write_ngsim(raw, args.out / f"{site.name}.ngsim.txt.gz")
        print(f"{path}: {info['n_vehicles']} vehicles, {len(raw):,} rows, {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
