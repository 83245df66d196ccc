"""Frames per second of the driving view (BENCHMARKS.md "Driving view").

Runs ``ppuu drive``'s session and view headless (SDL's dummy driver) and times whole frames:
one simulator step with the driver's action, then the full 1280 x 686 frame drawn (camera,
minimap, observation, model panel, cost plots, heads-up display) and read back as an RGB array
(what a recording writes). When an episode ends the next one starts (its reset is timed too).
One step per frame is three times the simulated clock of a 30 fps window at speed 1 (which steps
every third frame), so these rates are lower bounds for the window.

Rows: replay (recorded actions), a policy driving, a policy driving with the world model's futures
sampled on the drawing thread every ``--futures-every`` steps (the window samples them on a
worker thread instead, so there they cost no frame time on a second core), and MPC.

Run: ``python scripts/bench_drive.py --workdir WORKDIR --scene i80-sumo-15min-s0 --policy kin-il
--mpc kin-det --threads 1`` (``ppuu`` importable; the runs under WORKDIR/runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def measure(flags: list[str], frames: int, warmup: int = 10) -> dict:
    from ppuu.app.cli import build_parser
    from ppuu.app.cli_drive import build_session
    from ppuu.app.drive_view import DriveView

    args = build_parser().parse_args(["drive", "--headless", *flags])
    session = build_session(args)
    view = DriveView(session)
    times, steps, draws = [], [], []
    try:
        for n in range(warmup + frames):
            start = time.perf_counter()
            if session.done:
                session.next_episode(1)
            session.step()
            stepped = time.perf_counter()
            view.draw("benchmark")
            view.frame()
            end = time.perf_counter()
            if n >= warmup:
                times.append(end - start)
                steps.append(stepped - start)
                draws.append(end - stepped)
    finally:
        session.close()
    t = np.array(times)
    return {"fps": len(t) / t.sum(), "mean_ms": 1e3 * t.mean(), "p95_ms": 1e3 * np.percentile(t, 95),
            "step_ms": 1e3 * np.mean(steps), "draw_ms": 1e3 * np.mean(draws)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="ppuu-work", help="workspace holding scenes/ and runs/ (default: %(default)s)")
    p.add_argument("--scene", default=None,
                   help="scene name under WORKDIR/scenes or a scene folder (default: the workspace's most recent)")
    p.add_argument("--policy", default="kin-il",
                   help="policy run driving the policy rows (name under WORKDIR/runs, run folder or .pt) "
                        "(default: %(default)s)")
    p.add_argument("--mpc", default=None, help="a world model for the MPC row (omitted without)")
    p.add_argument("--frames", type=int, default=300,
                   help="timed frames per row after 10 warm-up frames; the MPC row times a tenth, at least 10 "
                        "(default: %(default)s)")
    p.add_argument("--futures-every", type=int, default=5,
                   help="0.1-s steps between samplings of the world model's futures in the futures row "
                        "(default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    common = ["--workdir", args.workdir, "--threads", str(args.threads)] + ([args.scene] if args.scene else [])
    rows = [("replay (recorded actions)", ["--mode", "replay", "--no-futures"], args.frames),
            (f"policy {args.policy}", ["--policy", args.policy, "--no-futures"], args.frames),
            (f"policy {args.policy} + 4 futures x 20 steps every {args.futures_every} steps",
             ["--policy", args.policy, "--futures-every", str(args.futures_every)], args.frames)]
    if args.mpc:
        rows.append((f"MPC on {args.mpc} (drive defaults)", ["--mpc", args.mpc, "--no-futures"],
                     max(10, args.frames // 10)))
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| driver | frames/s | mean ms | p95 ms | step ms | draw ms |\n| --- | --- | --- | --- | --- | --- |")
    for name, flags, frames in rows:
        r = measure(common + flags, frames)
        print(f"| {name} | {r['fps']:.1f} | {r['mean_ms']:.1f} | {r['p95_ms']:.1f} | {r['step_ms']:.1f} | "
              f"{r['draw_ms']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
