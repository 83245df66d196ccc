"""How each controller keeps its lane: drift from the lane centre over time, and how its steering answers it.

    python scripts/lane_keeping.py --workdir ppuu-work --scene i80-sumo-15min-s0-wander0.2 --split val \\
        --controllers human no_action --policies RUN [RUN ...] --threads 1

Drives every episode of a split in the closed loop (replayed traffic) and prints one Markdown table:
per controller, the success rate, the mean distance of the ego's centre from the nearest lane centre
(|offset|, m) and the mean |heading| against the road's axis (mrad) after 1, 3, 5 and 10 s (over the
episodes still running then), and a least-squares fit of the steering it chose at each step on the
offset and heading it had just reached,

    curvature_t = k_offset * offset_{t-1} + k_heading * heading_{t-1} + bias    (moving steps, > 3 m/s)

with offset and heading positive to the left. A driver who steers back to the lane has negative
gains; a positive ``k_heading`` turns further into its own heading error, which drifts the car
across the lanes within seconds (issue 9: the released wheel of the policies trained through the
world model). ``bias`` (1/m) is a constant pull to one side. R^2 says how much of the steering the fit
explains (the recorded drivers of a weaving scene steer by the road ahead, not by their offset, so
theirs is low). The lane centres are the scene's main lanes' and its ramps', the road's axis is x,
as on the NGSIM-shaped sites.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

TIMES_S = (1, 3, 5, 10)
"""Seconds after the episode's start at which drift is reported."""
MOVING_MPS = 3.0
"""Steps below this speed are left out of the steering fit (curvature means little at walking pace)."""


def lane_centres(meta) -> np.ndarray:
    """The lateral positions (m) of a scene's lane centres: its main lanes (from y = 0 down, widths
    ``meta.lane_widths``) and its ramps' lanes (over their whole length: a ramp lane's centre is where
    a merging car keeps its lane)."""
    edges = -np.concatenate([[0.0], np.cumsum(meta.lane_widths)])
    ramps = [(ramp.y_left + ramp.y_right) / 2 for ramp in meta.ramps]
    return np.concatenate([(edges[:-1] + edges[1:]) / 2, ramps])


def lane_offsets(centres: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (m, + left) of lateral positions ``y`` (any shape) from the nearest of ``centres``."""
    centres = np.asarray(centres, dtype=float)
    nearest = centres[np.abs(y[..., None] - centres).argmin(-1)]
    return y - nearest


def lane_keeping(centres: np.ndarray, trace) -> dict:
    """Drift and steering fit of one closed-loop evaluation.

    Args:
        centres: the road's lane centres (m; :func:`lane_centres`).
        trace: a filled :class:`~ppuu.simulator.evaluate.Trace`.

    Returns:
        ``offset_{T}s`` (m) and ``heading_{T}s`` (mrad) for T in :data:`TIMES_S` (NaN where no episode
        runs that long), ``running_{T}s`` (episodes), ``k_offset`` (1/m^2), ``k_heading`` (1/m),
        ``bias`` (1/m), ``r2`` and ``mean_abs_curvature`` (1/m) of the moving steps.
    """
    t = trace.tensors()
    driven = t["driven"].numpy()                         # (T, E): running before the step
    offset = lane_offsets(centres, t["position"][..., 1].numpy())
    heading = t["heading"].numpy()
    curvature = t["action"][..., 1].numpy()
    speed = t["speed"].numpy()
    out: dict = {}
    for seconds in TIMES_S:
        step = int(round(seconds * 10)) - 1              # the trace's rows are after each 0.1 s step
        running = driven[step] if step < len(driven) else np.zeros(driven.shape[1], bool)
        out[f"running_{seconds}s"] = int(running.sum())
        out[f"offset_{seconds}s"] = float(np.abs(offset[step][running]).mean()) if running.any() else float("nan")
        out[f"heading_{seconds}s"] = (1e3 * float(np.abs(heading[step][running]).mean()) if running.any()
                                      else float("nan"))
    moving = driven[1:] & (speed[:-1] > MOVING_MPS)      # step t's choice against the pose after step t - 1
    y = curvature[1:][moving]
    X = np.stack([offset[:-1][moving], heading[:-1][moving], np.ones(int(moving.sum()))], axis=1)
    if len(y) < 3:
        coef, r2 = np.full(3, np.nan), float("nan")
    else:
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        residual = y - X @ coef
        r2 = 1.0 - float(residual.var()) / float(y.var()) if y.var() > 0 else float("nan")
    out.update(k_offset=float(coef[0]), k_heading=float(coef[1]), bias=float(coef[2]), r2=r2,
               mean_abs_curvature=float(np.abs(y).mean()) if len(y) else float("nan"))
    return out


def markdown_row(name: str, success_pct: float, summary: dict) -> str:
    cells = [name, f"{success_pct:.1f}"]
    cells += [f"{summary[f'offset_{s}s']:.2f} / {summary[f'heading_{s}s']:.0f}" for s in TIMES_S]
    cells += [f"{summary['k_offset']:+.1e}", f"{summary['k_heading']:+.1e}", f"{summary['bias']:+.1e}",
              f"{summary['r2']:.2f}", f"{summary['mean_abs_curvature']:.1e}"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="ppuu-work", help="workspace with scenes/ and runs/ (default: %(default)s)")
    p.add_argument("--scene", default="i80-sumo-15min-s0", help="scene name under WORKDIR/scenes or a scene folder")
    p.add_argument("--split", default="val", choices=["train", "val", "test"],
                   help="episodes to drive (default: %(default)s)")
    p.add_argument("--controllers", nargs="*", default=["human", "no_action"], choices=["no_action", "human"],
                   help="built-in controllers (default: human no_action)")
    p.add_argument("--policies", nargs="*", default=[], help="trained policy runs (names under WORKDIR/runs or .pt)")
    p.add_argument("--course", help="course name or START:ARRIVAL (default: the site's)")
    p.add_argument("--episodes", type=int, help="drive only N evenly spaced episodes of the split")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of torch and numpy before each controller's evaluation (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = p.parse_args(argv)
    if not args.controllers and not args.policies:
        p.error("nothing to drive: give --controllers and/or --policies")
    torch.set_num_threads(args.threads)

    from ppuu.app.cli_policy import load_drivers
    from ppuu.simulator.evaluate import Trace, evaluate
    from ppuu.simulator.sim import SimConfig

    base = SimConfig() if args.course is None else SimConfig(course=args.course)
    try:
        scene, drivers = load_drivers(Path(args.workdir), args.scene, args.controllers, args.policies, base,
                                      args.device)
    except FileNotFoundError as exc:
        p.error(str(exc))

    lines = [f"Scene `{scene.meta.name}`, {args.split} split, replayed traffic, seed {args.seed}. At T s: mean "
             "|offset from the lane centre| m / mean |heading| mrad of the running episodes; steering fit "
             "curvature = k_offset offset + k_heading heading + bias (left positive; moving steps).", "",
             "| controller | success % | " + " | ".join(f"{s} s" for s in TIMES_S)
             + " | k_offset 1/m^2 | k_heading 1/m | bias 1/m | R^2 | mean abs curvature 1/m |",
             "| --- | ---: |" + " ---: |" * (len(TIMES_S) + 5)]
    for name, controller, config in drivers:
        print(f"driving {name} ({args.split} split) ...", file=sys.stderr, flush=True)
        trace = Trace()
        table = evaluate(scene, controller, args.split, config=config, device=args.device, progress=True,
                         seed=args.seed, trace=trace, episodes=args.episodes)
        success = 100.0 * float((table["outcome_name"] == "arrived").mean())
        lines.append(markdown_row(name, success, lane_keeping(lane_centres(scene.meta), trace)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
