"""Benchmark the world model's data path and training throughput; print Markdown tables.

    python scripts/bench_world_model.py [--scene NAME --workdir DIR] [--threads 2] [--devices cpu cuda]

1. **Data path** (on each device): rendering training windows on the fly
   (``RecordedObservations.windows``, batch of 64 windows x 40 frames) against a uint8
   memory-mapped cache of every frame of the training vehicles (build rate, read rate, size
   on disk), and the size such a cache would have for the scene and for 15 minutes of it.
2. **Training** (each device): samples/s of the full training loop (``ppuu.world_model.train.train``:
   prefetching renderer, model step) for the cpu profile and the reference sizes, plain fp32
   eager with the observations rendered on the CPU against the optimised path (bf16 autocast
   on CUDA, channels-last, ``torch.compile``, observations rendered on the training device).
   Training steps on the CPU with the reference sizes are slow, so their batch is smaller
   (``--reference-batch``); samples/s hardly depends on it there.

Without ``--scene`` a 90-second I-80 SUMO scene (seed 0) is generated in a temporary workspace.
"""

from __future__ import annotations

import argparse
import csv
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppuu.data.scene import Scene, scene_path  # noqa: E402
from ppuu.simulator.recording import RecordedObservations  # noqa: E402
from ppuu.world_model.dataset import MemmapCache, WindowDataset, sample_indices  # noqa: E402
from ppuu.world_model.train import TrainConfig, train  # noqa: E402

FRAME_BYTES = 4 * 117 * 24


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device: torch.device, repeats: int = 3) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_data(scene: Scene, device: torch.device, batch: int, frames: int, cache_vehicles: int) -> list[dict]:
    rec = RecordedObservations(scene, device=device)
    ids = scene.split_vehicle_ids("train")
    data = WindowDataset(rec, ids, 20, frames - 20)
    rows = []
    step = iter(range(10 ** 6))
    t = median_time(lambda: data.raw(sample_indices(len(data), 0, next(step), batch)), device)
    rows.append({"device": str(device), "path": f"render on the fly ({batch} x {frames} frames)",
                 "windows/s": batch / t, "observations/s": batch * frames / t, "size": "0 (nothing stored)"})
    folder = Path(tempfile.mkdtemp(prefix="ppuu-cache-"))
    try:
        subset = ids[:cache_vehicles]
        start = time.perf_counter()
        cache = MemmapCache(rec, subset, folder, device=device, chunk_frames=2048)
        build = time.perf_counter() - start
        cached = WindowDataset(cache, subset, 20, frames - 20)
        t = median_time(lambda: cached.raw(sample_indices(len(cached), 0, next(step), batch)), device)
        rows.append({"device": str(device), "path": f"uint8 memmap cache, read ({batch} x {frames} frames)",
                     "windows/s": batch / t, "observations/s": batch * frames / t,
                     "size": f"{cache.nbytes / 1e6:.0f} MB for {len(subset)} vehicles ({cache.rows} frames)"})
        rows.append({"device": str(device), "path": "uint8 memmap cache, build", "windows/s": float("nan"),
                     "observations/s": cache.rows / build, "size": ""})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def cache_size(scene: Scene) -> dict:
    v = scene.vehicles
    train = v[(v["split"] == "train") & v["usable_as_ego"]]
    train_frames = int((train["last_frame"] - train["first_frame"] + 1).sum())
    all_frames = int((v["last_frame"] - v["first_frame"] + 1).sum())
    minutes = (scene.trajectories["frame"].max() - scene.trajectories["frame"].min() + 1) * scene.meta.dt / 60
    return {"minutes": float(minutes), "train_frames": train_frames, "all_frames": all_frames,
            "train_gb": train_frames * FRAME_BYTES / 1e9, "all_gb": all_frames * FRAME_BYTES / 1e9,
            "train_gb_15min": train_frames * FRAME_BYTES / 1e9 * 15 / minutes}


PATHS = {
    "plain": dict(amp=False, channels_last=False, compile=False, device_data=False),
    "optimised": dict(amp=True, channels_last=True, compile=False, device_data=True),
    "optimised+compile": dict(amp=True, channels_last=True, compile=True, device_data=True),
}


def bench_train(scene: Scene, device: torch.device, profile: str, path: str, steps: int, batch: int | None) -> dict:
    """Samples/s of the training loop in steady state (the second half of 2 x steps steps)."""
    opts = PATHS[path]
    render_on = device if opts["device_data"] else torch.device("cpu")
    amp = opts["amp"] and device.type == "cuda"                   # CPU bf16 autocast: measured 7x slower
    rec = RecordedObservations(scene, device=render_on)
    overrides = dict(steps=2 * steps, log_every=steps, val_every=0, checkpoint_every=10 ** 9, stats_windows=64,
                     device=str(device), amp=amp, channels_last=opts["channels_last"], compile=opts["compile"])
    if batch:
        overrides["batch_size"] = batch
    config = TrainConfig.for_profile(profile, "vae", **overrides)
    data = WindowDataset(rec, scene.split_vehicle_ids("train"), config.model.context, config.predicted_steps)
    run = Path(tempfile.mkdtemp(prefix="ppuu-bench-run-"))
    try:
        start = time.perf_counter()
        train(config, data, None, run, progress=False)
        total = time.perf_counter() - start
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    finally:
        shutil.rmtree(run, ignore_errors=True)
    steady = float(rows[-1]["samples_per_s"])
    m = config.model
    label = ("plain fp32 eager, data rendered on cpu" if path == "plain" else
             ", ".join((["bf16 autocast"] if amp else []) + ["channels-last"]
                       + (["torch.compile"] if opts["compile"] else []) + [f"data rendered on {render_on.type}"]))
    return {"device": str(device), "profile": profile, "batch": config.batch_size, "N": config.predicted_steps,
            "widths": "/".join(map(str, m.hidden_channels)), "path": label,
            "samples/s": steady, "s/step": config.batch_size / steady, "wall_s": total}


def bench_model_only(device: torch.device, profile: str, steps: int, batch: int | None) -> dict:
    """Samples/s of the bare model step (fp32 eager, one synthetic batch on the device, no data path)."""
    from ppuu.world_model.dataset import Batch
    from ppuu.world_model.models import ForwardModel
    from ppuu.world_model.normalisation import Normaliser
    from ppuu.world_model.train import compute_loss

    config = TrainConfig.for_profile(profile, "vae", **({"batch_size": batch} if batch else {}))
    m, B, N, T = config.model, config.batch_size, config.predicted_steps, config.model.context
    model = ForwardModel(m).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    shape = (m.image_channels, m.image_height, m.image_width)
    fake = Batch(context_images=torch.rand(B, T, *shape), context_states=torch.randn(B, T, 4),
                 actions=torch.randn(B, N, 2), target_images=torch.rand(B, N, *shape),
                 target_states=torch.randn(B, N, 4), target_costs=torch.rand(B, N, 3), origin=torch.zeros(B),
                 size=torch.ones(B, 2)).to(device)
    norm = Normaliser.identity().to(device)

    def step() -> None:
        loss, _ = compute_loss(model, fake, config, norm)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimiser.step()

    t = median_time(step, device, repeats=steps)
    return {"device": str(device), "profile": profile, "batch": B, "N": N,
            "widths": "/".join(map(str, m.hidden_channels)), "path": "model step alone (fp32 eager, synthetic batch)",
            "samples/s": B / t, "s/step": t, "wall_s": t * (steps + 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", help="scene name (with --workdir) or folder; default: generate a 90 s scene")
    parser.add_argument("--workdir", default="ppuu-work",
                        help="workspace whose scenes/ holds the scenes named by --scene and --size-scene "
                             "(default: %(default)s)")
    parser.add_argument("--size-scene", help="another scene (e.g. 15 minutes) to measure cache sizes on")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per case (default: %(default)s)")
    parser.add_argument("--reference-batch", type=int, default=8,
                        help="batch of the reference sizes on the CPU (default: %(default)s; 64 on CUDA)")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the optimised path")
    parser.add_argument("--skip", nargs="*", default=[], choices=["data", "train", "reference"],
                        help="parts to leave out: data (the data-path tables), train (the training tables), reference "
                             "(the reference-size training rows)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in (args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])))]

    if args.scene:
        folder = Path(args.scene) if (Path(args.scene) / "scene.json").is_file() else scene_path(args.workdir,
                                                                                                  args.scene)
        scene = Scene.load(folder)
    else:
        from ppuu.data.pipeline import generate_sumo_scene
        scene = generate_sumo_scene("i80", minutes=1.5, seed=0, progress=False, warmup=60.0)
    print(f"# World model benchmarks\n\nscene {scene.meta.name}; torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}, {args.threads} CPU threads"
          + "".join(f"; {torch.cuda.get_device_name(d)}" for d in devices if d.type == "cuda") + "\n")

    if "data" not in args.skip:
        print("## Data path\n")
        print("| device | path | windows/s | observations/s | size |\n| --- | --- | --- | --- | --- |")
        for device in devices:
            for r in bench_data(scene, device, batch=64, frames=40, cache_vehicles=20):
                print(f"| {r['device']} | {r['path']} | {r['windows/s']:.1f} | {r['observations/s']:.0f} | "
                      f"{r['size']} |")
        sizes = [("this scene", scene)]
        if args.size_scene:
            folder = Path(args.size_scene)
            folder = folder if (folder / "scene.json").is_file() else scene_path(args.workdir, args.size_scene)
            sizes.append((folder.name, Scene.load(folder)))
        print("\n| scene | minutes | training-vehicle frames | uint8 cache of them | all frames | "
              "cache of all | training cache scaled to 15 min |\n| --- | --- | --- | --- | --- | --- | --- |")
        for name, s in sizes:
            c = cache_size(s)
            print(f"| {name} ({s.meta.name}) | {c['minutes']:.1f} | {c['train_frames']:,} | {c['train_gb']:.2f} GB | "
                  f"{c['all_frames']:,} | {c['all_gb']:.2f} GB | {c['train_gb_15min']:.1f} GB |")
        print()

    if "train" not in args.skip:
        print("## Training throughput (full loop: prefetching renderer + model step)\n")
        print("| device | profile | widths | batch | N | path | samples/s | s/step | vs plain | wall s (incl. "
              "compile) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for device in devices:
            for profile in ("cpu", "reference"):
                if profile == "reference" and "reference" in args.skip:
                    continue
                batch = args.reference_batch if (profile == "reference" and device.type == "cpu") else None
                steps = max(2, args.steps // (2 if profile == "reference" and device.type == "cpu" else 1))
                paths = ["plain", "optimised"]
                # compiling the 20-step unroll of the reference sizes takes many minutes on a CPU
                if not args.no_compile and (device.type == "cuda" or profile == "cpu"):
                    paths.append("optimised+compile")
                plain = None
                for path in ["model-only"] + paths:
                    if path == "model-only":
                        r = bench_model_only(device, profile, steps, batch)
                    else:
                        r = bench_train(scene, device, profile, path, steps, batch)
                    if path == "model-only":
                        print(f"| {r['device']} | {r['profile']} | {r['widths']} | {r['batch']} | {r['N']} | "
                              f"{r['path']} | {r['samples/s']:.2f} | {r['s/step']:.3f} | | |", flush=True)
                        continue
                    plain = plain or r
                    ratio = r["samples/s"] / plain["samples/s"]
                    print(f"| {r['device']} | {r['profile']} | {r['widths']} | {r['batch']} | {r['N']} | {r['path']} | "
                          f"{r['samples/s']:.2f} | {r['s/step']:.3f} | {ratio:.2f}x | {r['wall_s']:.0f} |", flush=True)
        print()


if __name__ == "__main__":
    main()
