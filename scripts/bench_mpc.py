"""MPC decision latency and batched throughput (issue 10's targets).

    python scripts/bench_mpc.py --workdir ppuu-work --scene i80-sumo-15min-s0 \
        --world-models kin-none kin-det --batches 1 16 141 --threads 1 [--device cuda]

One decision = optimising B plans of ``--horizon`` steps against ``--futures`` sampled futures
for ``--iterations`` Adam iterations (the issue's setting: 30 / 10 / 5), on real contexts of
the test split, from a zero plan. Each configuration runs ``--repeats`` decisions after one
warm-up; the table gives the median seconds per decision and decisions per second (B / s).
A world model with the kinematic ego and ``--ego-conditioning none`` takes the plan-free
fast path (the traffic is predicted once per decision, only the ego's pose is optimised);
others back-propagate through the model at every iteration.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def world_and_windows(scene, workdir: Path, world_model: str, split: str, predicted_steps: int,
                      device: torch.device):
    """(the loaded world model, ``split``'s :class:`~ppuu.world_model.dataset.WindowDataset` of its context +
    ``predicted_steps`` frames, model-ready, and the planner's cost model for it)."""
    from ppuu.app.cli_policy import cost_model_for, resolve_run_file
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import WindowDataset
    from ppuu.world_model.train import load_model

    world = load_model(resolve_run_file(Path(workdir), world_model), device)
    mc = world.model_config
    source = RecordedObservations.from_settings(scene, world.observation, device=device)
    data = WindowDataset(source, scene.split_vehicle_ids(split), mc.context, predicted_steps, world.normaliser,
                         mc.image_channels)
    return world, data, cost_model_for(world, source.raster, source.cost_config)


def planner_on_test_contexts(scene, workdir: Path, world_model: str, config, device: torch.device):
    """(:class:`~ppuu.planner.mpc.Planner` with ``config`` on the world model, the test split's
    :class:`~ppuu.world_model.dataset.WindowDataset` of model-ready contexts)."""
    from ppuu.planner.mpc import Planner

    world, data, costs = world_and_windows(scene, workdir, world_model, "test", 1, device)
    return Planner(world, costs, config), data


def decision_rows(scene, workdir: Path, world_model: str, batches: list[int], horizon: int = 30,
                  futures: int = 10, iterations: int = 5, repeats: int = 3, device: str = "cpu",
                  cuda_graphs: tuple[bool, ...] | None = None):
    """Time MPC decisions with one world model; yields a dict per batch size B.

    Args:
        scene: the loaded :class:`~ppuu.data.scene.Scene` whose test split gives the contexts.
        workdir, world_model: the world-model checkpoint (a .pt file, run folder or run name under WORKDIR/runs).
        batches: plans optimised at once (B), one row each.
        horizon, futures, iterations: H steps of 0.1 s, F sampled futures, Adam iterations per decision.
        repeats: timed decisions after one warm-up (the median is reported).
        cuda_graphs: which ways to run the decisions on a GPU: launched from Python (False), replayed from
            a CUDA graph (True, :mod:`ppuu.planner.mpc_graph`; the warm-up captures it); None = both on a
            GPU, eager elsewhere.

    Yields:
        {"world_model", "path", "graph" (bool), "B", "seconds" (median s per decision), "decisions_per_s"
        (B / seconds)}.
    """
    from ppuu.planner.mpc import MPCConfig
    from ppuu.world_model.dataset import sample_indices

    device = torch.device(device)
    if cuda_graphs is None:
        cuda_graphs = (False, True) if device.type == "cuda" else (False,)
    planner, data = planner_on_test_contexts(scene, workdir, world_model,
                                             MPCConfig(horizon=horizon, futures=futures, iterations=iterations), device)
    path = "plan-free traffic" if planner.plan_free_traffic else "through the model"
    for graph, B in ((g, B) for g in cuda_graphs for B in batches):
        planner.config.cuda_graph = graph
        batch = data.batch(sample_indices(len(data), 0, 0, B)).to(device)
        init = torch.zeros(B, horizon, 2, device=device)
        times = []
        for r in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            planner.plan(batch.context_images, batch.context_states, batch.size, init)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r:
                times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        yield {"world_model": world_model, "path": path, "graph": graph, "B": B, "seconds": seconds,
               "decisions_per_s": B / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="ppuu-work",
                        help="workspace holding scenes/ and runs/ (default: %(default)s)")
    parser.add_argument("--scene", default="i80-sumo-15min-s0",
                        help="scene whose test split gives the contexts (default: %(default)s)")
    parser.add_argument("--world-models", nargs="+", default=["kin-none"], metavar="RUN",
                        help="world-model runs (name under WORKDIR/runs, run folder or .pt file), one table block each "
                             "(default: %(default)s)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 141], metavar="B",
                        help="episodes planned at once, one row each (default: %(default)s)")
    parser.add_argument("--horizon", type=int, default=30, help="plan length in 0.1-s steps (default: %(default)s)")
    parser.add_argument("--futures", type=int, default=10, help="sampled futures per plan (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=5, help="Adam iterations per decision (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed decisions per row after one warm-up; the median is reported (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]; on CUDA eager and CUDA-graph rows both")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from ppuu.data.scene import Scene

    workdir = Path(args.workdir)
    scene = Scene.load(workdir / "scenes" / args.scene)
    print(f"{args.scene}; one decision = H {args.horizon} steps x F {args.futures} futures x {args.iterations} "
          f"Adam iterations; {args.device}, {args.threads} thread(s); median of {args.repeats}\n")
    print("| world model | path | launch | B | s per decision | decisions/s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for name in args.world_models:
        for r in decision_rows(scene, workdir, name, args.batches, args.horizon, args.futures, args.iterations,
                               args.repeats, args.device):
            launch = "CUDA graph" if r["graph"] else "eager"
            print(f"| {name} | {r['path']} | {launch} | {r['B']} | {r['seconds']:.3f} | {r['decisions_per_s']:.1f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
