"""Benchmark the batched simulator: ego-steps per second (observation included) and closed-loop evaluation.

    python scripts/bench_sim.py --scene ppuu-work/scenes/i80-sumo-15min-s0 [--device cpu] [--batches 1 64 1024]

An ego-step is one slot advanced by one 0.1 s frame: dynamics, traffic lookup,
collision and off-road tests, the 117 x 24 x 4 observation and its costs. The
egos drive their recorded actions so that they stay in traffic; a finished slot
restarts at once with the next episode (its reset, context included, is timed
too), so every slot runs at every step. Then every test episode of the scene runs closed loop
with the no-action controller. Prints Markdown tables for BENCHMARKS.md.

``--copies N`` runs on a scene N times as long: the recorded traffic repeated N times along x,
each copy one section length plus 1 km past the last (new vehicle ids; the episodes stay
those of the real road). N times the vehicles per frame, the same traffic near every ego: the
step's cost should not grow with it (issue 13).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch


def restarting_stepper(sim, batch: int):
    """A function that advances ``batch`` slots of ``sim`` by one step, the egos driving their recorded
    actions; finished slots restart at once with the next episodes (the episodes repeated to fill large
    batches), so every slot runs at every step."""
    from ppuu.simulator.evaluate import human

    queue = np.resize(sim.episode_vehicles(None), batch + 100 * batch)
    state = {"observation": sim.reset(queue[:batch]), "next": batch}

    def step() -> None:
        result = sim.step(human(state["observation"], sim))
        state["observation"] = result.observation
        done = result.done.nonzero().squeeze(1)
        if len(done):
            state["observation"] = sim.reset(queue[state["next"]:state["next"] + len(done)], slots=done)
            state["next"] += len(done)
    return step


def steps_per_second(sim, batch: int, steps: int, device) -> float:
    step = restarting_stepper(sim, batch)
    step()                                        # warm-up (caches, allocator)
    sync = torch.cuda.synchronize if sim.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def repeated_along_x(scene, copies: int):
    """The scene with its traffic repeated ``copies`` times along x (see the module docstring)."""
    import dataclasses

    import pandas as pd

    t, v = scene.trajectories, scene.vehicles
    shift = float(t["x"].max() - t["x"].min()) + 1000.0
    ids = int(t["vehicle_id"].max()) + 1
    parts, vehicles = [t], [v]
    for k in range(1, copies):
        copy = t.copy()
        copy["x"] += k * shift
        copy["x_raw"] += k * shift
        copy["vehicle_id"] += k * ids
        parts.append(copy)
        extra = v.copy()
        extra["vehicle_id"] += k * ids
        extra["usable_as_ego"] = False
        vehicles.append(extra)
    trajectories = pd.concat(parts, ignore_index=True).sort_values(["vehicle_id", "frame"], kind="stable")
    return dataclasses.replace(scene, trajectories=trajectories.reset_index(drop=True),
                               vehicles=pd.concat(vehicles, ignore_index=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", required=True, help="scene folder (e.g. from `ppuu data generate`)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device, cpu or cuda (default: cuda when available, else cpu)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024],
                        help="slots stepped at once, one row each (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per batch size")
    parser.add_argument("--traffic", default="replay", choices=["replay", "reactive"],
                        help="other vehicles: replay their recording or react (IDM car-following) "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch CPU threads (default: the CPU count, here %(default)s)")
    parser.add_argument("--skip-evaluation", action="store_true",
                        help="skip the closed-loop no-action evaluation of every test episode")
    parser.add_argument("--copies", type=int, default=1, help="repeat the traffic N times along x (docstring)")
    parser.add_argument("--chunk", type=int, help="slots per render call (SimConfig.chunk; default: by device)")
    parser.add_argument("--compile", action="store_true",
                        help="wrap the step in torch.compile and report its graph breaks (the first timed batch "
                             "size pays the compilation: warm it up with a repeated batch, e.g. --batches 1 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from ppuu.data.scene import Scene
    from ppuu.simulator.evaluate import evaluate, summarise
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    scene = Scene.load(args.scene)
    if args.copies > 1:
        scene = repeated_along_x(scene, args.copies)
    sim = BatchedSimulator(scene, SimConfig(traffic=args.traffic, chunk=args.chunk), device=args.device)
    if args.compile:
        sim.step = torch.compile(sim.step)
    name = torch.cuda.get_device_name() if sim.device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"device: {args.device} ({name}), torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"scene {scene.meta.name} (up to {sim.log.max_vehicles} vehicles at once), traffic {args.traffic}, "
          f"traffic copies {args.copies}, chunk {args.chunk or 'by device'}\n")
    print("| batch | ego-steps/s | ms per step |\n| ---: | ---: | ---: |")
    for batch in args.batches:
        rate = steps_per_second(sim, batch, args.steps, args.device)
        print(f"| {batch} | {rate:,.0f} | {1000 * batch / rate:.1f} |", flush=True)
    if args.compile:
        from torch._dynamo.utils import counters

        breaks = counters["graph_break"]
        print(f"\ntorch.compile: {sum(breaks.values())} graph breaks, {len(breaks)} distinct reasons:")
        for reason, count in breaks.most_common():
            print(f"  {count} x {reason.splitlines()[0][:150]}")

    if not args.skip_evaluation:
        start = time.perf_counter()
        table = evaluate(scene, "no_action", split="test", config=SimConfig(traffic=args.traffic),
                         device=args.device, progress=False)
        seconds = time.perf_counter() - start
        s = summarise(table)
        print(f"\nclosed-loop evaluation, no-action controller, every test episode ({s['episodes']}): "
              f"{seconds:.1f} s (success {s['success_pct']:.1f} %, mean distance {s['mean_distance_m']:.1f} m)")


if __name__ == "__main__":
    main()
