"""Where the time of one simulator step or one MPC decision goes: a torch.profiler table.

    python scripts/profile_step.py --workdir ppuu-work --scene i80-sumo-15min-s0 --what sim mpc \
        --world-model kin-none --device cuda --sim-batch 131072 --threads 8

For each ``--what``: one warm-up, then ``--repeats`` profiled calls (a simulator step of ``--sim-batch``
slots with the recorded actions; an MPC decision of ``--mpc-batch`` plans, H 30 x F 10 x 5 Adam
iterations as ``scripts/bench_mpc.py`` times it). Prints, per call: wall ms, and on CUDA the kernels
launched, the host-device synchronisations and copies (the runtime calls that make the CPU wait), and
the GPU's busy time (the kernels' summed time: far below the wall time means the step is bound by the
launches and the Python around them, not by the GPU); then the operators that take the most time
(self time on the device, on a CPU self CPU time). Issues 10 and 13 use it to say what stands between
the GPU figures and their targets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:                  # bench_sim and bench_mpc beside this file
    sys.path.insert(0, str(SCRIPTS))

SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
COPY_CALLS = ("cudaMemcpyAsync", "cudaMemcpy")
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")


def simulator_call(scene, batch: int, device: torch.device):
    """A function that advances a batch of ``batch`` slots by one step (recorded actions; finished slots
    restarted with new episodes, as ``scripts/bench_sim.py`` times it)."""
    from bench_sim import restarting_stepper

    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    return restarting_stepper(BatchedSimulator(scene, SimConfig(), device=device), batch)


def mpc_call(scene, workdir: Path, world_model: str, batch: int, device: torch.device):
    """A function that makes one MPC decision for ``batch`` test contexts (H 30, F 10, 5 Adam iterations)."""
    from bench_mpc import planner_on_test_contexts

    from ppuu.planner.mpc import MPCConfig
    from ppuu.world_model.dataset import sample_indices

    planner, data = planner_on_test_contexts(scene, workdir, world_model, MPCConfig(), device)
    context = data.batch(sample_indices(len(data), 0, 0, batch)).to(device)
    init = torch.zeros(batch, planner.config.horizon, 2, device=device)
    return lambda: planner.plan(context.context_images, context.context_states, context.size, init)


def profile_call(name: str, call, repeats: int, device: torch.device, rows: int) -> None:
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    call()                                                  # warm-up: caches, allocator, lazy set-up
    sync()
    start = time.perf_counter()                             # wall time without the profiler's overhead
    for _ in range(repeats):
        call()
    sync()
    wall = (time.perf_counter() - start) / repeats
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            call()
        sync()
    averages = prof.key_averages()
    print(f"\n### {name}\n\nwall {1000 * wall:.1f} ms per call (mean of {repeats}, without the profiler)")
    if cuda:
        def count(names):
            return sum(e.count for e in averages if e.key in names) / repeats

        busy = sum(getattr(e, "self_device_time_total", 0) or 0 for e in averages
                   if e.device_type == torch.autograd.DeviceType.CUDA) / repeats / 1000
        print(f"per call: {count(LAUNCH_CALLS):.0f} kernel launches, {count(SYNC_CALLS):.0f} synchronisations, "
              f"{count(COPY_CALLS):.0f} copies; GPU busy {busy:.1f} ms of the {1000 * wall:.1f} ms")
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    print("\n```\n" + averages.table(sort_by=sort, row_limit=rows, max_name_column_width=60) + "```")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="ppuu-work", help="workspace with scenes/ and runs/")
    parser.add_argument("--scene", default="i80-sumo-15min-s0", help="scene name under WORKDIR/scenes or a folder")
    parser.add_argument("--what", nargs="+", choices=["sim", "mpc"], default=["sim", "mpc"])
    parser.add_argument("--world-model", help="world-model run for --what mpc")
    parser.add_argument("--sim-batch", type=int, default=1024, help="simulator slots (default: %(default)s)")
    parser.add_argument("--mpc-batch", type=int, default=1, help="MPC plans optimised at once (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="profiled calls after one warm-up")
    parser.add_argument("--rows", type=int, default=15, help="operators listed")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from ppuu.app.cli_data import resolve_scene
    from ppuu.data.scene import Scene

    device = torch.device(args.device)
    scene = Scene.load(resolve_scene(Path(args.workdir), args.scene))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# Profiles on {args.device} ({name}), torch {torch.__version__}, {args.threads} CPU thread(s), "
          f"scene {scene.meta.name}")
    if "sim" in args.what:
        profile_call(f"simulator step, B = {args.sim_batch}", simulator_call(scene, args.sim_batch, device),
                     args.repeats, device, args.rows)
    if "mpc" in args.what:
        if not args.world_model:
            parser.error("--what mpc needs --world-model")
        profile_call(f"MPC decision, B = {args.mpc_batch}, H 30 x F 10 x 5 Adam iterations",
                     mpc_call(scene, Path(args.workdir), args.world_model, args.mpc_batch, device),
                     args.repeats, device, args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
