"""Where the time of one simulator step, MPC decision, batch of training windows or MPUR step goes:
a torch.profiler table.

    python scripts/profile_step.py --workdir ppuu-work --scene i80-sumo-15min-s0 --what sim mpc \
        --world-model kin-none --device cuda --sim-batch 131072 --threads 8
    python scripts/profile_step.py --workdir ppuu-work --what windows mpur --world-model kin-none --threads 1

For each ``--what``: one warm-up, then ``--repeats`` profiled calls (a simulator step of ``--sim-batch`` slots
with the recorded actions; an MPC decision of ``--mpc-batch`` plans, H 30 x F 10 x 5 Adam iterations as
``scripts/bench_mpc.py`` times it, or as ``--mpc-horizon/-futures/-iterations`` say; ``--data-batch`` training
windows of the world model's context + ``--horizon`` frames rendered, a new draw each call; an MPUR step of a
cpu-profile policy on ``--mpur-batch`` contexts, ``--horizon`` imagined steps, ``--copies`` dropout copies
with the uncertainty cost, backward and Adam). Prints, per call: wall ms, and on CUDA the kernels launched,
the host-device synchronisations and copies (the runtime calls that make the CPU wait), and the GPU's busy
time (the kernels' summed time: far below the wall time means the step is bound by the launches and the Python
around them, not by the GPU); then the operators that take the most time (self time on the device, on a CPU
self CPU time). On any device it also counts one call's dispatched operators and those that would make a GPU
wait (:class:`HostSyncAudit`: ``.item()``, data-dependent shapes, Python data copied in) with the line that
called each. Issues 10 and 13 use it to say what stands between the GPU figures and their targets.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import traceback
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
if str(SCRIPTS) not in sys.path:                  # bench_sim and bench_mpc beside this file
    sys.path.insert(0, str(SCRIPTS))

HOST_SYNCS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "is_nonzero", "equal",
                        "allclose", "lift_fresh", "lift_fresh_copy"})
"""Operators that make the CPU wait for a GPU or copy Python data to it (``.item()``/``bool()``, shapes that
depend on data, ``torch.tensor(list)``); indexing by a boolean mask is one too. Each costs a round trip per
call on a GPU and stops a CUDA graph capture. On a CPU they still reach the dispatcher: counted anywhere."""


class HostSyncAudit(TorchDispatchMode):
    """Counts the operators dispatched inside it, and those of :data:`HOST_SYNCS` with the innermost line of
    this project that called them (``found``: name -> count; ``where``: (name, "file:line") -> count)."""

    def __init__(self):
        super().__init__()
        self.operators = 0
        self.found: collections.Counter = collections.Counter()
        self.where: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.operators += 1
        name = func.overloadpacket.__name__
        masks = name == "index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                        for i in (args[1] if len(args) > 1 else []))
        if name in HOST_SYNCS or masks:
            self.found[name] += 1
            ours = [f for f in traceback.extract_stack()[:-1] if f.filename.startswith(str(ROOT))]
            self.where[(name, f"{Path(ours[-1].filename).relative_to(ROOT)}:{ours[-1].lineno}" if ours else "?")] += 1
        return func(*args, **(kwargs or {}))


SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
COPY_CALLS = ("cudaMemcpyAsync", "cudaMemcpy")
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")


def simulator_call(scene, batch: int, device: torch.device):
    """A function that advances a batch of ``batch`` slots by one step (recorded actions; finished slots
    restarted with new episodes, as ``scripts/bench_sim.py`` times it)."""
    from bench_sim import restarting_stepper

    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    return restarting_stepper(BatchedSimulator(scene, SimConfig(), device=device), batch)


def mpc_call(scene, workdir: Path, world_model: str, batch: int, config, device: torch.device):
    """A function that makes one MPC decision for ``batch`` test contexts with the planner's settings
    ``config`` (an :class:`~ppuu.planner.mpc.MPCConfig`)."""
    from bench_mpc import planner_on_test_contexts

    from ppuu.world_model.dataset import sample_indices

    planner, data = planner_on_test_contexts(scene, workdir, world_model, config, device)
    context = data.batch(sample_indices(len(data), 0, 0, batch)).to(device)
    init = torch.zeros(batch, planner.config.horizon, 2, device=device)
    return lambda: planner.plan(context.context_images, context.context_states, context.size, init)


def windows_call(scene, workdir: Path, world_model: str, batch: int, horizon: int, device: torch.device):
    """A function that renders ``batch`` training windows of the world model's context + ``horizon`` frames
    (the data path of every trainer: ``WindowDataset.batch``), a new draw each call."""
    from bench_mpc import world_and_windows

    from ppuu.world_model.dataset import sample_indices

    _, data, _ = world_and_windows(scene, workdir, world_model, "train", horizon, device)
    draws = iter(range(1 << 30))
    return lambda: data.batch(sample_indices(len(data), 0, next(draws), batch))


def mpur_call(scene, workdir: Path, world_model: str, batch: int, horizon: int, copies: int, device: torch.device):
    """A function that takes one MPUR step (loss over ``horizon`` imagined steps with ``copies`` dropout
    copies and the uncertainty cost, backward, Adam) for a cpu-profile policy on a fixed batch of contexts."""
    import dataclasses

    from bench_mpc import world_and_windows

    from ppuu.planner.policy import DrivingPolicy
    from ppuu.planner.train import PolicyTrainConfig, fit_uncertainty_stats, policy_loss
    from ppuu.world_model.dataset import sample_indices

    world, data, costs = world_and_windows(scene, workdir, world_model, "train", horizon, device)
    world.model.requires_grad_(False)
    mc = world.model_config
    config = PolicyTrainConfig.for_profile("cpu", "mpur", batch_size=batch, horizon=horizon, copies=copies,
                                           stats_batches=2, weights=dict(speed=0.5))
    config.policy = dataclasses.replace(config.policy, context=mc.context, image_channels=mc.image_channels,
                                        image_height=mc.image_height, image_width=mc.image_width)
    uncertainty = fit_uncertainty_stats(world, data, costs, config, device)
    torch.manual_seed(0)
    policy = DrivingPolicy(config.policy).to(device)
    optimiser = torch.optim.Adam(policy.parameters(), lr=1e-5)
    contexts = data.batch(sample_indices(len(data), 0, 0, batch)).to(device)

    def step():
        loss, _ = policy_loss(policy, world, contexts, config, costs, uncertainty)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return step


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
    # at small batches the per-operator overhead of eager PyTorch sets the time: count the operators
    # Python calls (the outermost ones) and all of them
    operators = [e for e in prof.events() if e.name.startswith("aten::")]
    outermost = [e for e in operators if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    print(f"operators per call: {len(outermost) / repeats:.0f} called from Python, {len(operators) / repeats:.0f} "
          "with those they call")
    if cuda:
        def count(names):
            return sum(e.count for e in averages if e.key in names) / repeats

        busy = sum(getattr(e, "self_device_time_total", 0) or 0 for e in averages
                   if e.device_type == torch.autograd.DeviceType.CUDA) / repeats / 1000
        print(f"per call: {count(LAUNCH_CALLS):.0f} kernel launches, {count(SYNC_CALLS):.0f} synchronisations, "
              f"{count(COPY_CALLS):.0f} copies; GPU busy {busy:.1f} ms of the {1000 * wall:.1f} ms")
    with HostSyncAudit() as audit:
        call()
    sync()
    waits = ", ".join(f"{n} x {c} at {where}" for (n, where), c in audit.where.most_common(6)) or "none"
    print(f"dispatched operators per call: {audit.operators} (forward and backward; graph replays count as one); "
          f"those that would make a GPU wait: {sum(audit.found.values())} ({waits})")
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    print("\n```\n" + averages.table(sort_by=sort, row_limit=rows, max_name_column_width=60) + "```")


def main(argv: list[str] | None = None) -> int:
    from ppuu.planner.mpc import MPCConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="ppuu-work", help="workspace with scenes/ and runs/")
    parser.add_argument("--scene", default="i80-sumo-15min-s0", help="scene name under WORKDIR/scenes or a folder")
    parser.add_argument("--what", nargs="+", choices=["sim", "mpc", "windows", "mpur"], default=["sim", "mpc"],
                        help="sim: a simulator step; mpc: an MPC decision; windows: rendering a batch of training "
                             "windows; mpur: an MPUR training step (default: sim mpc)")
    parser.add_argument("--world-model", help="world-model run for --what mpc, windows and mpur")
    parser.add_argument("--sim-batch", type=int, default=1024, help="simulator slots (default: %(default)s)")
    parser.add_argument("--mpc-batch", type=int, default=1, help="MPC plans optimised at once (default: %(default)s)")
    parser.add_argument("--data-batch", type=int, default=64, help="windows rendered per call (default: %(default)s)")
    parser.add_argument("--mpur-batch", type=int, default=24, help="MPUR contexts per step (default: %(default)s)")
    parser.add_argument("--horizon", type=int, default=15,
                        help="predicted frames per window and MPUR's imagined steps (default: %(default)s)")
    parser.add_argument("--copies", type=int, default=2, help="MPUR's dropout copies (default: %(default)s)")
    parser.add_argument("--mpc-horizon", type=int, default=MPCConfig.horizon,
                        help="MPC's planned steps (default: %(default)s)")
    parser.add_argument("--mpc-futures", type=int, default=MPCConfig.futures,
                        help="MPC's imagined futures per plan (default: %(default)s)")
    parser.add_argument("--mpc-iterations", type=int, default=MPCConfig.iterations,
                        help="MPC's Adam iterations per decision (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="profiled calls after one warm-up")
    parser.add_argument("--rows", type=int, default=15, help="operators listed")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device, cpu or cuda[:N] (default: cuda when available, else cpu)")
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
    if set(args.what) & {"mpc", "windows", "mpur"} and not args.world_model:
        parser.error("--what mpc, windows and mpur need --world-model")
    workdir = Path(args.workdir)
    if "windows" in args.what:
        profile_call(f"training windows, {args.data_batch} of context + {args.horizon} frames",
                     windows_call(scene, workdir, args.world_model, args.data_batch, args.horizon, device),
                     args.repeats, device, args.rows)
    if "mpur" in args.what:
        profile_call(f"MPUR step, batch {args.mpur_batch}, H {args.horizon}, K {args.copies}",
                     mpur_call(scene, workdir, args.world_model, args.mpur_batch, args.horizon, args.copies, device),
                     args.repeats, device, args.rows)
    if "mpc" in args.what:
        config = MPCConfig(horizon=args.mpc_horizon, futures=args.mpc_futures, iterations=args.mpc_iterations)
        profile_call(f"MPC decision, B = {args.mpc_batch}, H {config.horizon} x F {config.futures} x "
                     f"{config.iterations} Adam iterations",
                     mpc_call(scene, Path(args.workdir), args.world_model, args.mpc_batch, config, device),
                     args.repeats, device, args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
