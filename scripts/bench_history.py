"""Benchmark the simulator step against the observation history length K (SimConfig.history).

    python scripts/bench_history.py --scene ppuu-work/scenes/i80-sumo-15min-s0 [--histories 1 20] [--course full]

Every test episode of the scene runs in one batch; the egos drive their recorded actions
(so they keep running) and each timed step renders one new frame per slot and stores it in
the K-frame history. With a history kept by copying, the step time grows with K; with the
ring buffer it should not. Also reports the cost of the ordered (oldest-first) view of the
history that consumers read (``sim.observation()`` where it exists). One torch thread by
default (the development machine is shared). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import torch


def time_steps(scene, history: int, steps: int, device: str, course: str | None) -> tuple[float, float, int]:
    """(ms per step, ms per ordered-view read, batch size) at one history length."""
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    config = SimConfig(history=history) if course is None else SimConfig(history=history, course=course)
    sim = BatchedSimulator(scene, config, device=device)
    ids = sim.episode_vehicles("test")
    sim.reset(ids)
    sim.step(sim.recorded_actions())                # warm-up (allocator, road texture)
    start = time.perf_counter()
    for _ in range(steps):
        sim.step(sim.recorded_actions())
    step_ms = 1000 * (time.perf_counter() - start) / steps
    read = getattr(sim, "observation", None)
    start = time.perf_counter()
    for _ in range(steps):
        # what a consumer that needs contiguous oldest-first frames pays (e.g. to feed a model)
        image = read().image if read is not None else sim.image
        image.contiguous()
    view_ms = 1000 * (time.perf_counter() - start) / steps
    return step_ms, view_ms, len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", required=True, help="scene folder")
    parser.add_argument("--histories", type=int, nargs="+", default=[1, 20],
                        help="history lengths K (frames kept per slot, SimConfig.history), one row each "
                             "(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per history length")
    parser.add_argument("--device", default="cpu", help="torch device, cpu or cuda (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--course", default=None, help="course of the episodes (default: the site's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from ppuu.data.scene import Scene

    scene = Scene.load(args.scene)
    print(f"scene {scene.meta.name}, device {args.device}, torch threads {torch.get_num_threads()}\n")
    print("| history K | batch | ms per step | ms per contiguous ordered view |\n| ---: | ---: | ---: | ---: |")
    for history in args.histories:
        step_ms, view_ms, batch = time_steps(scene, history, args.steps, args.device, args.course)
        print(f"| {history} | {batch} | {step_ms:.1f} | {view_ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
