"""Fidelity of scenes (issue 15): the recorded driver in replay and in reactive traffic, and what smoothing did.

For each scene folder given, prints one Markdown row:

* ``human replay`` / ``human reactive``: the ``human`` controller (the ego applies its own recorded
  actions) on the split's episodes, on the scene's default course: % arrived (of N episodes);
* ``max |smoothed - raw|``: the largest distance (m) between a smoothed position and its raw one,
  over every row (the issue's target: at most 0.5 m);
* ``overlaps raw / smoothed along / smoothed``: vehicle pairs x frames whose footprints overlap
  (:func:`ppuu.data.quality.overlapping_pairs`), on the raw positions (footprints along the road:
  the raw table has no heading), on the smoothed ones with the same footprints (like for like:
  smoothing must not add any), and on the smoothed ones turned by the heading, as the simulator
  draws and collides them. ``raw turned`` draws the raw positions
  turned by the smoothed heading, which tells overlaps that moved positions create from those that
  turning a footprint creates (a truck crawling sideways, as SUMO moves it, points along its motion);
* ``stopped raw / smoothed``: % of vehicle-frames slower than 0.5 m/s, from the raw positions
  (:func:`ppuu.data.quality.raw_speed`) and from the smoothed speed (target: within 2 points).

Run, for example::

    OMP_NUM_THREADS=1 python scripts/bench_fidelity.py ppuu-work/scenes/i80-sumo-15min-s0 --threads 1

(``ppuu`` importable; a scene is a folder written by ``ppuu data generate`` or ``ppuu data import``.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

STOPPED_MPS = 0.5


def smoothing_figures(scene) -> dict:
    """Max deviation (m), overlaps raw and smoothed (pairs x frames), stopped shares (%)."""
    from ppuu.data.quality import overlapping_pairs, raw_speed

    t = scene.trajectories
    deviation = np.hypot(t["x"].to_numpy() - t["x_raw"].to_numpy(), t["y"].to_numpy() - t["y_raw"].to_numpy())
    columns = ["vehicle_id", "frame", "length", "width"]
    raw = t[columns].assign(x=t["x_raw"], y=t["y_raw"])
    smoothed = t[columns + ["heading"]].assign(x=t["x"], y=t["y"])
    return {
        "max_deviation_m": float(deviation.max()),
        "overlaps_raw": len(overlapping_pairs(raw)),
        "overlaps_smoothed_along": len(overlapping_pairs(smoothed.drop(columns="heading"))),
        "overlaps_smoothed": len(overlapping_pairs(smoothed)),
        "overlaps_raw_turned": len(overlapping_pairs(raw.assign(heading=t["heading"]))),
        "stopped_raw_pct": 100 * float((raw_speed(t, scene.meta.frame_rate) < STOPPED_MPS).mean()),
        "stopped_smoothed_pct": 100 * float((t["speed"].to_numpy() < STOPPED_MPS).mean()),
    }


def human_figures(scene, split: str | None) -> dict:
    """% arrived of the human controller in replay and in reactive traffic, and the episode count."""
    from ppuu.simulator.evaluate import evaluate
    from ppuu.simulator.sim import SimConfig

    out = {}
    for traffic in ("replay", "reactive"):
        table = evaluate(scene, "human", split=split, config=SimConfig(traffic=traffic), device="cpu",
                         progress=False)
        out[traffic] = 100 * float((table["outcome_name"] == "arrived").mean())
        out["episodes"] = len(table)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenes", nargs="+", help="scene folders")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                        help="episodes of this split (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from ppuu.data.scene import Scene

    split = None if args.split == "all" else args.split
    print(f"split {args.split}, {args.threads} torch thread(s)\n")
    print("| scene | episodes | human replay % | human reactive % | max smoothed - raw m | overlaps raw | "
          "overlaps smoothed along | overlaps smoothed | overlaps raw turned | stopped raw % | stopped smoothed % | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in args.scenes:
        start = time.perf_counter()
        scene = Scene.load(folder)
        human = human_figures(scene, split)
        smooth = smoothing_figures(scene)
        print(f"| {scene.meta.name} | {human['episodes']} | {human['replay']:.1f} | {human['reactive']:.1f} | "
              f"{smooth['max_deviation_m']:.3f} | {smooth['overlaps_raw']} | {smooth['overlaps_smoothed_along']} | "
              f"{smooth['overlaps_smoothed']} | "
              f"{smooth['overlaps_raw_turned']} | "
              f"{smooth['stopped_raw_pct']:.1f} | {smooth['stopped_smoothed_pct']:.1f} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
