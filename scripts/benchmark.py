"""Every benchmark in one run (issue 14): one process, one machine, one Markdown block.

    python scripts/benchmark.py --workdir ppuu-work --scene i80-sumo-15min-s0 --world-model kin-none \\
        --policy none-mpur-il-s05 --threads 1 [--device cuda] [--out bench.md] [--quick]

Measures, in this order (each part prints a progress line on stderr):

1. **Simulator**: ego-steps/s by batch size (``scripts/bench_sim.py``'s ``steps_per_second``: every slot
   advanced by one 0.1 s frame with its 117 x 24 observation and costs, finished slots restarted at once).
2. **Closed-loop evaluation** of the test split (``ppuu.simulator.evaluate.evaluate``, replay traffic,
   the site's course): the no-action controller, the ``--policy`` (a trained policy run) and MPC with the
   ``--world-model`` (``--mpc-*`` settings, the ones of ``ppuu evaluate policy --mpc``). Seconds for the
   episodes driven, and seconds per episode. ``--episodes`` / ``--mpc-episodes`` drive only that many
   evenly spaced episodes (the table says how many of the split's).
3. **World-model training throughput** (``scripts/bench_world_model.py``'s ``bench_train``: the full training
   loop, VAE, steady state): plain fp32 eager with the data rendered on the CPU against the optimised path
   (channels-last, data rendered on the training device, bf16 autocast on CUDA; ``--compile`` adds
   ``torch.compile``), for the cpu profile and the reference sizes (``--wm-profiles``).
4. **Policy training throughput** (``ppuu.planner.train.train_policy``, MPUR through ``--world-model``,
   the cpu-profile policy, ``--policy-horizon`` / ``--policy-copies``): plain fp32 eager against the
   optimised path (bf16 autocast, which exists on CUDA only).
5. **An MPUR step at the reference sizes** (SPEC §6: batch 6, 30 imagined steps, 10 dropout copies, the
   reference's 64/128/256 VAE and policy), untrained weights of those sizes on real training contexts,
   images as ``--world-model``'s: the policy's loss, backward, clip and Adam step. Also the same step with one
   copy and no uncertainty cost (VG), which is what SPEC §8's "30-step unroll with costs and backward" times.
6. **MPC decision latency** (``scripts/bench_mpc.py``'s ``decision_rows``): s per decision and decisions/s
   by batch of plans, H 30 x F 10 futures x 5 Adam iterations by default (issue 10's setting).
7. **Peak memory of the training data path**: the world model's data path (``RecordedObservations`` +
   ``WindowDataset`` + the background ``Prefetcher``) rendering ``--data-batches`` batches of
   ``--data-batch`` windows of context + 20 frames. Measured as the process's peak resident set (Linux
   ``VmHWM`` in ``/proc/self/status``, reset through ``/proc/self/clear_refs`` before the part; where that
   cannot be reset, ``resource.getrusage``'s lifetime peak, and the table says so), and on CUDA
   ``torch.cuda.max_memory_allocated``.

Each figure has its unit, SPEC §8's reference figure where there is one and the ratio "x better"
(ours / reference for rates, reference / ours for times and memory: above 1 is better than the
reference). A part that lacks what it needs (no ``--policy``, no ``--world-model``) says "not measured"
and why; a part that raises is reported as "failed" (traceback on stderr) and the exit status is 1.

``--quick`` shrinks every size (a smoke run in well under a minute on a small scene, as the tests do).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import shlex
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

# SPEC §8 "Reference performance" (2-core CPU, torch CPU, 2 threads; SUMO I-80-shaped scenes).
# The dense scene (about 74 vehicles) is the one quoted: the default 15-minute scene is denser still.
REF_EPISODE_STEPS_PER_S = 79.0          # "one controlled episode, no-action controller", dense scene, steps/s
REF_SECONDS_PER_EPISODE = 47.4 / 20     # "20 controlled episodes, reset included: 47.4 s", dense scene
REF_TEST_SPLIT_S = 3 * 3600.0           # "closed-loop evaluation of the test split: about 3 h in one process"
REF_WM_STEP = {8: (2.43, 3.30), 64: (17.8, 3.59)}   # VAE training step at batch B: (s/step, samples/s)
REF_UNROLL_S = 3.78                     # "policy + forward model 30-step unroll with costs and backward, batch 6"
REF_MPUR_S = 27.8                       # "full MPUR step (batch 6, 30 steps, 10 dropout models)"
REF_DATA_GB = 17.0                      # "all images held in RAM afterwards (about 17 GB)"
SPEC = "SPEC §8"


# ---------------------------------------------------------------------------------------------- table rows

@dataclasses.dataclass
class Row:
    """One figure: what, under which setting, its value and unit, the reference and how to compare.

    ``better`` says which way is better ("higher" for rates, "lower" for times and memory); the
    ratio is then value / reference or reference / value, so that above 1 always means better.
    ``value`` None with a ``note`` is a figure that was not measured (the note says why).
    """

    what: str
    setting: str
    value: float | None
    unit: str
    reference: float | None = None
    reference_note: str = ""
    better: str = "higher"
    note: str = ""

    def ratio(self) -> float | None:
        if self.value is None or self.reference is None or self.value <= 0:
            return None
        return self.value / self.reference if self.better == "higher" else self.reference / self.value


def not_measured(what: str, why: str, unit: str = "") -> Row:
    return Row(what, "", None, unit, note=f"not measured: {why}")


def fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def markdown_table(rows: list[Row]) -> str:
    lines = [f"| what | setting | value | unit | reference ({SPEC}) | x better |",
             "| --- | --- | ---: | --- | --- | ---: |"]
    for r in rows:
        value = fmt(r.value) if r.value is not None else r.note
        reference = f"{fmt(r.reference)} {r.unit}" if r.reference is not None else "-"
        if r.reference_note:
            reference += f" ({r.reference_note})"
        ratio = r.ratio()
        setting = r.setting + (f"; {r.note}" if r.note and r.value is not None else "")
        lines.append(f"| {r.what} | {setting} | {value} | {r.unit} | {reference} | "
                     f"{'-' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines)


def progress(message: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------- the parts

@dataclasses.dataclass
class Context:
    """What every part reads: the parsed arguments, the scene and the device."""

    args: argparse.Namespace
    scene: object
    device: torch.device

    @property
    def workdir(self) -> Path:
        return Path(self.args.workdir)

    def run_file(self, name: str) -> Path:
        from ppuu.app.cli_policy import resolve_run_file
        return resolve_run_file(self.workdir, name)


def part_simulator(ctx: Context) -> list[Row]:
    """Ego-steps/s by batch size (bench_sim.steps_per_second)."""
    from bench_sim import steps_per_second

    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    sim = BatchedSimulator(ctx.scene, SimConfig(), device=ctx.device)
    rows = []
    for batch in ctx.args.sim_batches:
        rate = steps_per_second(sim, batch, ctx.args.sim_steps, ctx.device)
        rows.append(Row("simulator ego-steps/s", f"batch {batch}, {ctx.args.sim_steps} timed steps, replay, "
                        f"observation + costs", rate, "ego-steps/s", REF_EPISODE_STEPS_PER_S,
                        "one controlled episode, dense scene"))
        progress(f"  batch {batch}: {rate:,.0f} ego-steps/s")
    return rows


def _closed_loop_rows(name: str, seconds: float, driven: int, total: int, summary: dict) -> list[Row]:
    whole = driven == total
    setting = (f"{'all' if whole else f'{driven} of the'} {total} test episodes, one batch; success "
               f"{summary['success_pct']:.1f} %, mean distance {summary['mean_distance_m']:.1f} m")
    rows = [Row(f"closed loop, {name}: {'whole test split' if whole else 'episodes driven'}", setting, seconds, "s",
                REF_TEST_SPLIT_S if whole else None, "its whole test split, one process" if whole else "",
                better="lower"),
            Row(f"closed loop, {name}: per episode", setting, seconds / driven, "s/episode",
                REF_SECONDS_PER_EPISODE if name == "no action" else None,
                "20 no-action episodes, dense scene" if name == "no action" else "", better="lower")]
    return rows


def part_closed_loop(ctx: Context) -> list[Row]:
    """Seconds to drive the test split with no action, the policy and MPC."""
    from ppuu.simulator.episodes import episode_vehicles, get_course
    from ppuu.simulator.evaluate import evaluate, summarise
    from ppuu.simulator.sim import SimConfig

    args, scene = ctx.args, ctx.scene
    base = SimConfig(course=get_course(None, scene.meta))
    total = len(episode_vehicles(scene, "test", base.course, base.context_steps))

    def timed(controller, config, episodes):
        sync(ctx.device)
        start = time.perf_counter()
        table = evaluate(scene, controller, split="test", config=config, device=ctx.device, progress=False,
                         episodes=episodes)
        sync(ctx.device)
        return time.perf_counter() - start, table

    rows = []
    seconds, table = timed("no_action", base, args.episodes)
    rows += _closed_loop_rows("no action", seconds, len(table), total, summarise(table))
    progress(f"  no action: {len(table)} episodes in {seconds:.1f} s")

    if args.policy:
        from ppuu.planner.controller import make_controller, sim_config_for
        from ppuu.planner.train import load_policy

        loaded = load_policy(ctx.run_file(args.policy), ctx.device)
        seconds, table = timed(make_controller(loaded), sim_config_for(loaded, base), args.episodes)
        rows += _closed_loop_rows(f"policy `{args.policy}` ({loaded.method})", seconds, len(table), total,
                                  summarise(table))
        progress(f"  policy {args.policy}: {len(table)} episodes in {seconds:.1f} s")
    else:
        rows.append(not_measured("closed loop, a policy", "no --policy given", "s"))

    if args.world_model and args.mpc_episodes != 0:
        from ppuu.app.cli_policy import mpc_entries

        mpc_args = argparse.Namespace(
            workdir=args.workdir, mpc=args.world_model, mpc_policy=None, mpc_optimizer=["adam"],
            mpc_horizon=args.mpc_horizon, mpc_futures=args.mpc_futures, mpc_iterations=args.mpc_iterations,
            mpc_lr=0.1, mpc_aggregate="mean", mpc_replan_every=args.mpc_replan_every, mpc_uncertainty_weight=0.0,
            mpc_road_costs="predicted", mpc_speed_weight=args.mpc_speed_weight)
        (name, controller, config), = mpc_entries(mpc_args, scene, base, ctx.device)
        seconds, table = timed(controller, config, args.mpc_episodes)
        label = (f"MPC `{args.world_model}` (H {args.mpc_horizon}, F {args.mpc_futures}, {args.mpc_iterations} "
                 f"Adam iterations, every {args.mpc_replan_every} steps, speed weight {args.mpc_speed_weight:g})")
        rows += _closed_loop_rows(label, seconds, len(table), total, summarise(table))
        progress(f"  MPC: {len(table)} episodes in {seconds:.1f} s")
    else:
        rows.append(not_measured("closed loop, MPC", "no --world-model given" if not args.world_model
                                 else "--mpc-episodes 0", "s"))
    return rows


def part_world_model_training(ctx: Context) -> list[Row]:
    """Samples/s of the world model's training loop, plain fp32 eager against the optimised path."""
    from bench_world_model import bench_train

    args, rows = ctx.args, []
    for profile in args.wm_profiles:
        batch = args.wm_batch.get(profile)
        if profile == "reference" and batch is None and ctx.device.type == "cpu":
            batch = args.reference_batch
        paths = ["plain", "optimised+compile" if args.compile else "optimised"]
        plain = None
        for path in paths:
            r = bench_train(ctx.scene, ctx.device, profile, path, args.wm_steps, batch)
            plain = plain or r
            ref = REF_WM_STEP.get(r["batch"]) if profile == "reference" else None
            setting = (f"{profile} profile ({r['widths']}), batch {r['batch']}, N {r['N']}: {r['path']}"
                       + ("" if path == "plain" else f"; {r['samples/s'] / plain['samples/s']:.2f}x plain"))
            rows.append(Row("world-model training", setting, r["samples/s"], "samples/s",
                            ref[1] if ref else None, f"VAE step, batch {r['batch']}" if ref else ""))
            progress(f"  {profile} {path}: {r['samples/s']:.2f} samples/s")
    return rows


def _policy_train_once(ctx: Context, world, source, amp: bool) -> tuple[float, object]:
    """Steady-state samples/s of train_policy (the second half of 2 x --policy-steps steps) and its config."""
    import csv
    import shutil
    import tempfile

    from ppuu.app.cli_policy import cost_model_for
    from ppuu.planner.train import PolicyTrainConfig, train_policy
    from ppuu.world_model.dataset import WindowDataset

    args, mc = ctx.args, world.model_config
    steps = args.policy_steps
    config = PolicyTrainConfig.for_profile(
        "cpu", "mpur", steps=2 * steps, horizon=args.policy_horizon, copies=args.policy_copies,
        batch_size=args.policy_batch, val_every=0, checkpoint_every=10 ** 9, log_every=steps, stats_batches=1,
        device=str(ctx.device), amp=amp,
        policy=dict(context=mc.context, image_channels=mc.image_channels, image_height=mc.image_height,
                    image_width=mc.image_width))
    data = WindowDataset(source, ctx.scene.split_vehicle_ids("train"), mc.context, config.horizon, world.normaliser,
                         mc.image_channels)
    run = Path(tempfile.mkdtemp(prefix="ppuu-bench-policy-"))
    try:
        train_policy(config, world, cost_model_for(world, source.raster, source.cost_config), data, None, run,
                     progress=False)
        with open(run / "metrics.csv", newline="") as f:
            last = list(csv.DictReader(f))[-1]
    finally:
        shutil.rmtree(run, ignore_errors=True)
    return float(last["samples_per_s"]), config


def part_policy_training(ctx: Context) -> list[Row]:
    """Samples/s of MPUR policy training through --world-model, plain fp32 against bf16 autocast (CUDA)."""
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.train import load_model

    args = ctx.args
    if not args.world_model:
        return [not_measured("policy training (MPUR)", "no --world-model given", "samples/s")]
    world = load_model(ctx.run_file(args.world_model), ctx.device)
    source = RecordedObservations.from_settings(ctx.scene, world.observation, device=ctx.device)
    rows = []
    plain, config = _policy_train_once(ctx, world, source, amp=False)
    setting = (f"MPUR through `{args.world_model}`, cpu-profile policy, batch {config.batch_size}, H {config.horizon}, "
               f"K {config.copies}")
    rows.append(Row("policy training", f"{setting}: plain fp32 eager", plain, "samples/s"))
    progress(f"  plain: {plain:.2f} samples/s")
    if ctx.device.type == "cuda":
        fast, _ = _policy_train_once(ctx, world, source, amp=True)
        rows.append(Row("policy training", f"{setting}: bf16 autocast; {fast / plain:.2f}x plain", fast, "samples/s"))
        progress(f"  optimised: {fast:.2f} samples/s")
    else:
        rows.append(not_measured("policy training, optimised path", "its only optimisation, bf16 autocast, is "
                                 "CUDA-only (on a CPU the default path is the plain one)", "samples/s"))
    return rows


def part_mpur_reference(ctx: Context) -> list[Row]:
    """One MPUR (and one VG) policy step at the reference sizes, untrained weights, real contexts."""
    from ppuu.app.cli_policy import cost_model_for
    from ppuu.planner.policy import DrivingPolicy, normalised_bounds
    from ppuu.planner.train import PolicyTrainConfig, fit_uncertainty_stats, policy_loss
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import WindowDataset, sample_indices
    from ppuu.world_model.models import ForwardModel
    from ppuu.world_model.train import LoadedModel, TrainConfig, load_model

    args = ctx.args
    if not args.world_model:
        return [not_measured("MPUR step, reference sizes", "no --world-model given (its image settings are used)",
                             "s/step")]
    given = load_model(ctx.run_file(args.world_model), ctx.device)
    sizes = TrainConfig.for_profile(args.mpur_widths, "vae").model
    mc = dataclasses.replace(given.model_config, hidden_channels=sizes.hidden_channels, hidden_mlp=sizes.hidden_mlp,
                             latent_dim=sizes.latent_dim)
    torch.manual_seed(0)
    model = ForwardModel(mc).to(ctx.device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    world = LoadedModel(model, given.normaliser, mc, dataclasses.replace(given.train_config, model=mc), 0)
    source = RecordedObservations.from_settings(ctx.scene, world.observation, device=ctx.device)
    costs = cost_model_for(world, source.raster, source.cost_config)
    data = WindowDataset(source, ctx.scene.split_vehicle_ids("train"), mc.context, args.mpur_horizon,
                         world.normaliser, mc.image_channels)
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for method, copies in (("vg", 1), ("mpur", args.mpur_copies)):
        config = PolicyTrainConfig.for_profile(
            args.mpur_widths, method, batch_size=args.mpur_batch, horizon=args.mpur_horizon, copies=copies,
            stats_batches=1, policy=dict(context=mc.context, image_channels=mc.image_channels,
                                         image_height=mc.image_height, image_width=mc.image_width,
                                         **normalised_bounds(world.normaliser)))
        torch.manual_seed(0)
        policy = DrivingPolicy(config.policy).to(ctx.device).train()
        optimiser = torch.optim.Adam(policy.parameters(), lr=config.lr)
        stats = fit_uncertainty_stats(world, data, costs, config, ctx.device) if method == "mpur" else None
        batch = data.batch(sample_indices(len(data), 0, 0, config.batch_size)).to(ctx.device)

        def step():
            loss, _ = policy_loss(policy, world, batch, config, costs, stats)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
            optimiser.step()

        times = []
        for r in range(args.mpur_repeats + 1):         # the first is a warm-up
            sync(ctx.device)
            start = time.perf_counter()
            step()
            sync(ctx.device)
            if r:
                times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        setting = (f"batch {config.batch_size}, {config.horizon} steps, {copies} dropout "
                   f"cop{'y' if copies == 1 else 'ies'}"
                   f"{', uncertainty cost' if method == 'mpur' else ', no uncertainty cost'}; world model "
                   f"{'/'.join(map(str, mc.hidden_channels))} ({params / 1e6:.1f} M parameters, untrained), "
                   f"images {mc.image_channels} x {mc.image_height} x {mc.image_width}, context {mc.context}; "
                   f"median of {args.mpur_repeats}")
        reference = REF_MPUR_S if method == "mpur" else REF_UNROLL_S
        reference_note = ("full MPUR step, batch 6, 30 steps, 10 dropout models" if method == "mpur"
                          else "policy + forward model 30-step unroll with costs and backward, batch 6")
        sized = args.mpur_widths == "reference" and config.batch_size == 6 and config.horizon == 30 and \
            (method == "vg" or copies == 10)
        rows.append(Row(f"{method.upper()} policy step ({args.mpur_widths} sizes)", setting, seconds, "s/step",
                        reference if sized else None, reference_note if sized else "", better="lower"))
        progress(f"  {method}: {seconds:.2f} s/step")
    return rows


def part_mpc_latency(ctx: Context) -> list[Row]:
    """Seconds per MPC decision and decisions/s by batch of plans (bench_mpc.decision_rows)."""
    from bench_mpc import decision_rows

    args = ctx.args
    if not args.world_model:
        return [not_measured("MPC decision", "no --world-model given", "s/decision")]
    rows = []
    for r in decision_rows(ctx.scene, ctx.workdir, args.world_model, args.mpc_batches, args.mpc_latency_horizon,
                           args.mpc_latency_futures, args.mpc_latency_iterations, args.mpc_repeats, str(ctx.device)):
        launch = ", CUDA graph" if r["graph"] else ""
        setting = (f"`{args.world_model}` ({r['path']}{launch}), B {r['B']}, H {args.mpc_latency_horizon} x F "
                   f"{args.mpc_latency_futures} x {args.mpc_latency_iterations} Adam iterations, median of "
                   f"{args.mpc_repeats}")
        rows.append(Row("MPC decision latency", setting, r["seconds"], "s/decision", better="lower"))
        rows.append(Row("MPC decisions/s", setting, r["decisions_per_s"], "decisions/s"))
        progress(f"  B {r['B']}{launch}: {r['seconds']:.3f} s per decision")
    return rows


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def part_data_memory(ctx: Context) -> list[Row]:
    """Peak memory while the training data path renders batches (see the module docstring for how)."""
    import resource

    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import Prefetcher, WindowDataset

    args = ctx.args
    reset = False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                    # resets VmHWM to the current RSS (Linux >= 4.0)
        reset = _status_kb("VmHWM") is not None
    except OSError:
        pass
    before_kb = _status_kb("VmRSS")
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
        cuda_before = torch.cuda.memory_allocated(ctx.device)
    if args.world_model:
        from ppuu.world_model.train import load_model
        world = load_model(ctx.run_file(args.world_model), "cpu")
        source = RecordedObservations.from_settings(ctx.scene, world.observation, device=ctx.device)
        data = WindowDataset(source, ctx.scene.split_vehicle_ids("train"), world.model_config.context, 20,
                             world.normaliser, world.model_config.image_channels)
        images = f"`{args.world_model}`'s images"
    else:
        source = RecordedObservations(ctx.scene, device=ctx.device)
        data = WindowDataset(source, ctx.scene.split_vehicle_ids("train"), 20, 20)
        data.normaliser = data.fit_normaliser(windows=64, seed=0)
        images = "the default 117 x 24 images"
    start = time.perf_counter()
    with Prefetcher(data, range(args.data_batches), 0, args.data_batch, ctx.device) as batches:
        for _ in batches:
            pass
    sync(ctx.device)
    seconds = time.perf_counter() - start
    setting = (f"{args.data_batches} batches of {args.data_batch} windows ({data.context} + 20 frames, {images}) "
               f"rendered on {ctx.device.type} through the prefetcher, {seconds:.1f} s")
    rows = []
    if reset and before_kb is not None:
        peak_kb = _status_kb("VmHWM")
        rows.append(Row("training data path: process peak RSS", f"{setting}; VmHWM after a reset, whole process "
                        "(scene, torch and all)", peak_kb * 1024 / 1e9, "GB", REF_DATA_GB,
                        "all images held in RAM", better="lower"))
        rows.append(Row("training data path: peak RSS above the start", f"{setting}; VmHWM minus VmRSS before the part",
                        max(peak_kb - before_kb, 0) / 2 ** 10, "MiB"))
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9      # kB on Linux
        rows.append(Row("process peak RSS so far (getrusage; VmHWM could not be reset)", setting, peak, "GB",
                        REF_DATA_GB, "all images held in RAM", better="lower"))
    if ctx.device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(ctx.device) - cuda_before) / 2 ** 20
        rows.append(Row("training data path: CUDA peak allocated", setting, peak, "MiB"))
    return rows


PARTS = {
    "sim": ("Simulator", part_simulator),
    "closed-loop": ("Closed-loop evaluation", part_closed_loop),
    "world-model": ("World-model training throughput", part_world_model_training),
    "policy": ("Policy training throughput", part_policy_training),
    "mpur": ("MPUR step at the reference sizes", part_mpur_reference),
    "mpc": ("MPC decision latency", part_mpc_latency),
    "memory": ("Peak memory of the training data path", part_data_memory),
}


# ---------------------------------------------------------------------------------------------- the run

def machine(args: argparse.Namespace, device: torch.device, load: tuple[float, float, float]) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    return (f"{cpu}, {os.cpu_count()} logical cores; Python {platform.python_version()}, torch {torch.__version__}; "
            f"device {device}{gpu}; {torch.get_num_threads()} torch thread(s); load average at start "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)")


QUICK = dict(sim_batches=[1, 4], sim_steps=2, episodes=3, mpc_episodes=2, mpc_horizon=3, mpc_futures=2,
             mpc_iterations=1, mpc_replan_every=2, wm_profiles=["cpu"], wm_steps=1, wm_batch={"cpu": 2},
             policy_steps=1, policy_batch=2, policy_horizon=2, policy_copies=2, mpur_widths="cpu", mpur_horizon=2,
             mpur_copies=2, mpur_batch=2, mpur_repeats=1, mpc_batches=[1, 2], mpc_latency_horizon=3,
             mpc_latency_futures=2, mpc_latency_iterations=1, mpc_repeats=1, data_batch=4, data_batches=2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="ppuu-work", help="workspace with scenes/ and runs/ (default: %(default)s)")
    p.add_argument("--scene", default="i80-sumo-15min-s0", help="scene name under WORKDIR/scenes or a scene folder "
                   "(default: %(default)s)")
    p.add_argument("--world-model", help="world-model run (name under WORKDIR/runs, folder or .pt) for MPC, policy "
                   "training and the reference-size MPUR step (their parts are 'not measured' without it)")
    p.add_argument("--policy", help="trained policy run for the closed-loop row (not measured without it)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--out", type=Path, help="write the Markdown here (default: print it to stdout)")
    p.add_argument("--skip", nargs="*", default=[], choices=list(PARTS), help="parts to leave out")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes for a smoke run (tests): flags you give explicitly still win")
    s = p.add_argument_group("sizes (defaults: a full run of about 10-15 minutes on a 2-core CPU)")
    s.add_argument("--sim-batches", type=int, nargs="+", default=[1, 64, 1024], help="simulator batch sizes")
    s.add_argument("--sim-steps", type=int, default=20, help="timed simulator steps per batch size")
    s.add_argument("--episodes", type=int, help="no-action and policy: drive N evenly spaced test episodes "
                   "(default: every one)")
    s.add_argument("--mpc-episodes", type=int, help="closed-loop MPC: N evenly spaced test episodes (default: every "
                   "one, hours on a CPU; 0 = skip)")
    s.add_argument("--mpc-horizon", type=int, default=15, help="closed-loop MPC: planned steps (default: %(default)s)")
    s.add_argument("--mpc-futures", type=int, default=2, help="closed-loop MPC: sampled futures (default: %(default)s)")
    s.add_argument("--mpc-iterations", type=int, default=3, help="closed-loop MPC: Adam iterations (default: "
                   "%(default)s)")
    s.add_argument("--mpc-replan-every", type=int, default=3, help="closed-loop MPC: steps between decisions "
                   "(default: %(default)s)")
    s.add_argument("--mpc-speed-weight", type=float, default=0.5, help="closed-loop MPC: speed-keeping weight "
                   "(default: %(default)s; the uncertainty cost is off)")
    s.add_argument("--wm-profiles", nargs="+", default=["cpu", "reference"], choices=["cpu", "reference"],
                   help="world-model training: model sizes (default: both)")
    s.add_argument("--wm-steps", type=int, default=3, help="world-model training: timed steps per case (after as many "
                   "warm-up steps)")
    s.add_argument("--reference-batch", type=int, default=8, help="world-model training: batch of the reference sizes "
                   "on a CPU (default: %(default)s, as SPEC §8's first row; the profile's 64 on CUDA)")
    s.add_argument("--compile", action="store_true", help="world-model training: add torch.compile to the optimised "
                   "path (minutes of compiling on a CPU)")
    s.add_argument("--policy-steps", type=int, default=3, help="policy training: timed steps (after as many warm-up)")
    s.add_argument("--policy-batch", type=int, default=6, help="policy training: contexts per step")
    s.add_argument("--policy-horizon", type=int, default=30, help="policy training: imagined steps")
    s.add_argument("--policy-copies", type=int, default=4, help="policy training: dropout copies K")
    s.add_argument("--mpur-widths", default="reference", choices=["reference", "cpu"],
                   help="MPUR step: layer widths of the world model and policy (default: %(default)s)")
    s.add_argument("--mpur-batch", type=int, default=6, help="MPUR step: contexts (default: %(default)s)")
    s.add_argument("--mpur-horizon", type=int, default=30, help="MPUR step: imagined steps (default: %(default)s)")
    s.add_argument("--mpur-copies", type=int, default=10, help="MPUR step: dropout copies (default: %(default)s)")
    s.add_argument("--mpur-repeats", type=int, default=2, help="MPUR step: timed steps after a warm-up")
    s.add_argument("--mpc-batches", type=int, nargs="+", default=[1, 4], help="MPC latency: plans optimised at once")
    s.add_argument("--mpc-latency-horizon", type=int, default=30, help="MPC latency: H (default: %(default)s)")
    s.add_argument("--mpc-latency-futures", type=int, default=10, help="MPC latency: F (default: %(default)s)")
    s.add_argument("--mpc-latency-iterations", type=int, default=5, help="MPC latency: Adam iterations")
    s.add_argument("--mpc-repeats", type=int, default=2, help="MPC latency: timed decisions after a warm-up")
    s.add_argument("--data-batch", type=int, default=64, help="data-path memory: windows per batch (default: "
                   "%(default)s, the reference's batch)")
    s.add_argument("--data-batches", type=int, default=4, help="data-path memory: batches rendered")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.wm_batch = {}
    if args.quick:                                      # tiny sizes, except for flags given explicitly
        given = {a.dest for a in parser._actions
                 if any(token == opt or token.startswith(opt + "=") for opt in a.option_strings
                        for token in (argv if argv is not None else sys.argv[1:]))}
        for name, value in QUICK.items():
            if name not in given:
                setattr(args, name, value)
    for name in ("threads", "sim_steps", "wm_steps", "reference_batch", "policy_steps", "policy_batch",
                 "policy_horizon", "policy_copies", "mpur_batch", "mpur_horizon", "mpur_copies", "mpur_repeats",
                 "mpc_horizon", "mpc_futures", "mpc_iterations", "mpc_replan_every", "mpc_latency_horizon",
                 "mpc_latency_futures", "mpc_latency_iterations", "mpc_repeats", "data_batch", "data_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: expected >= 1")
    if min(args.sim_batches + args.mpc_batches) < 1:
        parser.error("--sim-batches and --mpc-batches: expected sizes >= 1")
    if args.episodes is not None and args.episodes < 1:
        parser.error(f"--episodes {args.episodes}: expected >= 1")
    if args.mpc_episodes is not None and args.mpc_episodes < 0:
        parser.error(f"--mpc-episodes {args.mpc_episodes}: expected >= 0")
    if args.policy_copies < 2:
        parser.error("--policy-copies: MPUR's uncertainty cost needs at least 2 copies")
    if args.mpur_copies < 2:
        parser.error("--mpur-copies: MPUR's uncertainty cost needs at least 2 copies")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    torch.set_num_threads(args.threads)
    os.environ["PPUU_THREADS"] = str(args.threads)
    device = torch.device(args.device)

    from ppuu.data.scene import Scene, scene_path

    folder = Path(args.scene) if (Path(args.scene) / "scene.json").is_file() else scene_path(args.workdir, args.scene)
    if not (folder / "scene.json").is_file():
        raise SystemExit(f"benchmark: no scene {args.scene!r} (neither a scene folder nor a name under "
                         f"{Path(args.workdir) / 'scenes'})")
    scene = Scene.load(folder)
    for name in filter(None, (args.world_model, args.policy)):
        from ppuu.app.cli_policy import resolve_run_file
        try:
            resolve_run_file(Path(args.workdir), name)
        except FileNotFoundError as exc:
            raise SystemExit(f"benchmark: {exc}")
    ctx = Context(args, scene, device)
    command = "python scripts/benchmark.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    parts = [(key, title, part) for key, (title, part) in PARTS.items() if key not in args.skip]
    sections, failed = [], []

    def document() -> str:
        total = time.perf_counter() - started
        partial = "" if len(sections) == len(parts) else f" (partial: {len(sections)} of {len(parts)} parts so far)"
        return (f"Machine: {machine(args, device, load)}.\n\n"
                f"Command: `{command}`\n\n"
                f"Scene `{scene.meta.name}`; run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                f"{total:.0f} s in all{partial}; load average at the end "
                f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}.\n"
                f"\"x better\": value / reference for rates, reference / value for times and memory (above 1: better "
                f"than the reference); references quoted from {SPEC} (a 2-core CPU, 2 threads).\n\n"
                + "\n\n".join(sections) + "\n")

    for key, title, part in parts:
        progress(f"{title} ...")
        start = time.perf_counter()
        try:
            rows = part(ctx)
        except Exception as exc:           # noqa: BLE001  (one broken part must not hide the others)
            traceback.print_exc()
            failed.append(key)
            rows = [Row(title, "", None, "", note=f"failed: {type(exc).__name__}: {exc}".replace("|", "/")
                        .replace("\n", " ")[:300])]
        seconds = time.perf_counter() - start
        progress(f"{title}: {seconds:.0f} s")
        sections.append(f"#### {title}\n\n{markdown_table(rows)}\n\n({seconds:.0f} s of this run.)")
        if args.out:                       # after every part: a run stopped at a time limit keeps what it measured
            write_replacing(args.out, document())
    if args.out:
        progress(f"wrote {args.out}")
    else:
        print(document())
    return 1 if failed else 0


def write_replacing(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


if __name__ == "__main__":
    raise SystemExit(main())
