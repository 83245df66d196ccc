"""Benchmark the gym doors under stable-baselines3: steps/s of the native batched vector env
against SB3's own ``SubprocVecEnv`` over single envs, and the memory of one env.

    python scripts/bench_gym.py --scene i80-sumo-15min-s0 --workdir ppuu-work --threads 1

Both sides run the same loop SB3 runs while collecting a rollout: ``venv.step(actions)``
with random actions from the action space (kinematics observation, continuous actions,
default reward), finished envs restarting in the same step. A step of a B-env vec env
counts B env-steps. ``SubprocVecEnv`` runs ``--subproc-envs`` single :class:`HighwayEnv`
processes (each loads the scene; spawn start method); the native env runs one simulator
for all its slots in this process. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path


def make_single(scene_dir: str, threads: int):
    """A picklable factory of one HighwayEnv (SubprocVecEnv's workers call it)."""

    def make():
        import torch

        torch.set_num_threads(threads)
        from ppuu.app.gym_env import HighwayEnv

        return HighwayEnv(scene=scene_dir)

    return make


def steps_per_second(venv, steps: int, seed: int = 0) -> float:
    import numpy as np

    venv.seed(seed)
    venv.reset()
    rng = np.random.default_rng(seed)
    low, high = venv.action_space.low, venv.action_space.high
    shape = (venv.num_envs, *venv.action_space.shape)
    venv.step(rng.uniform(low, high, shape).astype(np.float32))           # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.uniform(low, high, shape).astype(np.float32))
    return venv.num_envs * steps / (time.perf_counter() - start)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scene", default=None,
                   help="scene name under WORKDIR/scenes or a scene folder (default: the workspace's most recent)")
    p.add_argument("--workdir", type=Path, default=Path("ppuu-work"),
                   help="workspace holding scenes/ (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads, here and in each SubprocVecEnv worker (default: %(default)s)")
    p.add_argument("--steps", type=int, default=200, help="vec-env steps timed per configuration")
    p.add_argument("--subproc-envs", type=int, default=8,
                   help="single-env worker processes of the SubprocVecEnv row (default: %(default)s)")
    p.add_argument("--batches", type=int, nargs="+", default=[8, 64, 256],
                   help="slots of the native vector env, one row each (default: %(default)s)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from ppuu.app.cli_data import resolve_scene
    from ppuu.app.gym_env import HighwayEnv, HighwayVectorEnv
    from ppuu.app.sb3 import SB3VecEnv

    scene_dir = str(resolve_scene(args.workdir, args.scene))
    before = rss_mib()
    first = HighwayEnv(scene=scene_dir)
    one = rss_mib() - before
    HighwayEnv(scene=scene_dir), HighwayEnv(scene=scene_dir, config={"observation": "raster"})
    three = rss_mib() - before
    vec = HighwayVectorEnv(256, scene=scene_dir, device="cpu")
    vec.reset(seed=0)
    with_vec = rss_mib() - before
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {args.threads} thread(s)\nscene {first.scene.meta.name}\n")
    print(f"memory (RSS growth): one HighwayEnv {one:.0f} MiB; three envs of the scene {three:.0f} MiB; "
          f"plus a 256-slot vector env {with_vec:.0f} MiB\n")
    del vec, first

    rows = []
    subproc = SubprocVecEnv([make_single(scene_dir, args.threads) for _ in range(args.subproc_envs)],
                            start_method="spawn")
    rate = steps_per_second(subproc, max(args.steps // 4, 20))
    subproc.close()
    rows.append((f"SB3 SubprocVecEnv, {args.subproc_envs} x HighwayEnv", args.subproc_envs, rate))
    for batch in args.batches:
        venv = SB3VecEnv(HighwayVectorEnv(batch, scene=scene_dir, device="cpu"))
        rows.append((f"SB3VecEnv over HighwayVectorEnv({batch})", batch, steps_per_second(venv, args.steps)))
        venv.close()
    base = rows[0][2]
    print("| vec env | envs | env-steps/s | vs SubprocVecEnv |\n| --- | ---: | ---: | ---: |")
    for name, envs, rate in rows:
        print(f"| {name} | {envs} | {rate:,.0f} | {rate / base:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
