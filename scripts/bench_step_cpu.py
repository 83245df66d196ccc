"""CPU time of one batched simulator step, and the reactive traffic's share of it (process time, one thread).

    python scripts/bench_step_cpu.py SCENE_FOLDER {replay,reactive} BATCH STEPS

The egos drive their recorded actions; finished slots restart at once with the next episode (resets are not
timed). Process time instead of wall time, so that other users of a shared machine count less; prints the
median over the steps. Runs with any version of ppuu on the path (to compare before and after).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    from ppuu.data.scene import Scene
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", metavar="SCENE_FOLDER", help="scene folder (e.g. WORKDIR/scenes/i80-sumo-15min-s0)")
    parser.add_argument("traffic", choices=["replay", "reactive"], help="other vehicles: replay or reactive traffic")
    parser.add_argument("batch", type=int, metavar="BATCH", help="slots stepped at once")
    parser.add_argument("steps", type=int, metavar="STEPS", help="timed steps, after 5 warm-up steps")
    args = parser.parse_args()
    folder, traffic, batch, steps = args.folder, args.traffic, args.batch, args.steps
    torch.set_num_threads(1)
    sim = BatchedSimulator(Scene.load(folder), SimConfig(traffic=traffic), device="cpu")
    queue = np.resize(sim.episode_vehicles(None), 100 * batch)
    sim.reset(queue[:batch])
    next_episode = batch
    share: list[float] = []
    if sim.reactive is not None:                  # time the reactive traffic's own calls
        for name in ("step", "at"):
            method = getattr(sim.reactive, name)

            def timed(*args, _method=method, **kwargs):
                start = time.process_time()
                result = _method(*args, **kwargs)
                share.append(time.process_time() - start)
                return result
            setattr(sim.reactive, name, timed)
    per_step, per_reactive = [], []
    with torch.no_grad():
        for i in range(steps + 5):                # 5 warm-up steps
            share.clear()
            start = time.process_time()
            result = sim.step(sim.recorded_actions())
            if i >= 5:
                per_step.append(time.process_time() - start)
                per_reactive.append(sum(share))
            done = result.done.nonzero().squeeze(1)
            if len(done):
                sim.reset(queue[next_episode:next_episode + len(done)], slots=done)
                next_episode += len(done)
    print(f"{traffic} B={batch}: median {1000 * statistics.median(per_step):.1f} ms/step CPU "
          f"(reactive traffic {1000 * statistics.median(per_reactive):.1f} ms), {steps} steps")


if __name__ == "__main__":
    main()
