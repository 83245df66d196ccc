"""Why episodes end: each controller's outcomes, split by where the ego was against its own recording.

    python scripts/failure_modes.py --workdir ppuu-work --scene i80-sumo-15min-s0 --split val \\
        --controllers no_action --policies RUN [RUN ...] --threads 1

In replay traffic the recorded driver's trajectory is the one safe corridor: the replayed cars ahead
of and behind the ego follow it. An ego that ends its episode *ahead* of its recording (at the same
frame) has driven faster than the human and has mostly run into the car ahead; one that ends
*behind* it has been slower and has mostly been hit by the replayed follower. Prints one Markdown
table: per controller and outcome, the episodes, how many ended ahead of / behind their recording
(or after it ended: a slow ego can outlast its recording), the median longitudinal offset (m, ego
minus recording; positive = ahead) and the median speed at the end (m/s).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def final_offsets(scene, table: pd.DataFrame, trace) -> pd.DataFrame:
    """Per episode: outcome name, offset dx (m, ego x minus its recording's x at the final frame), final speed.

    Args:
        scene: the evaluated :class:`~ppuu.data.scene.Scene`.
        table: :func:`ppuu.simulator.evaluate.evaluate`'s table (one row per episode).
        trace: the :class:`~ppuu.simulator.evaluate.Trace` filled by the same evaluation.

    Returns:
        columns vehicle_id, outcome_name, dx (NaN where the recording has no row at that frame), speed.
    """
    t = trace.tensors()
    last = (t["driven"].sum(0) - 1).clamp(min=0)
    episodes = torch.arange(len(t["vehicle_id"]))
    frame = t["frame"][last, episodes].numpy()
    x = t["position"][last, episodes, 0].numpy()
    ends = pd.DataFrame({"vehicle_id": t["vehicle_id"].numpy(), "frame": frame})
    recorded = scene.trajectories[["vehicle_id", "frame", "x"]]
    x_recorded = ends.merge(recorded, on=["vehicle_id", "frame"], how="left")["x"].to_numpy()
    return pd.DataFrame({"vehicle_id": ends["vehicle_id"], "outcome_name": table["outcome_name"].to_numpy(),
                         "dx": x - x_recorded, "speed": t["speed"][last, episodes].numpy()})


def summary_rows(name: str, ends: pd.DataFrame) -> list[str]:
    """Markdown rows ``| controller | outcome | episodes | ahead | behind | past the recording | median dx |
    median speed |`` (past the recording: the episode outlasted its recording, so there is no recorded x to
    compare with)."""
    rows = []
    for outcome, group in ends.groupby("outcome_name", sort=True):
        dx = group["dx"].to_numpy()
        known = dx[np.isfinite(dx)]
        median = f"{np.median(known):+.1f}" if len(known) else "-"
        rows.append(f"| {name} | {outcome} | {len(group)} | {int(np.sum(known > 0))} | {int(np.sum(known <= 0))} | "
                    f"{len(dx) - len(known)} | {median} | {group['speed'].median():.1f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="ppuu-work", help="workspace with scenes/ and runs/ (default: %(default)s)")
    p.add_argument("--scene", default="i80-sumo-15min-s0", help="scene name under WORKDIR/scenes or a scene folder")
    p.add_argument("--split", default="val", choices=["train", "val", "test"],
                   help="episodes to drive (default: %(default)s; compare settings on val, report on test)")
    p.add_argument("--controllers", nargs="*", default=["no_action"], choices=["no_action", "human"],
                   help="built-in controllers (default: no_action)")
    p.add_argument("--policies", nargs="*", default=[], help="trained policy runs (names under WORKDIR/runs or .pt)")
    p.add_argument("--traffic", default="replay", choices=["replay", "reactive"],
                   help="other vehicles: replay their recording or react (IDM car-following) (default: %(default)s)")
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

    base = SimConfig(traffic=args.traffic)
    try:
        scene, drivers = load_drivers(Path(args.workdir), args.scene, args.controllers, args.policies, base,
                                      args.device)
    except FileNotFoundError as exc:
        p.error(str(exc))

    lines = [f"Scene `{scene.meta.name}`, {args.split} split, {args.traffic} traffic, seed {args.seed}. "
             "dx: the ego's x minus its recording's x at the episode's last frame (m; > 0: ahead).", "",
             "| controller | outcome | episodes | ended ahead | ended behind | past the recording | median dx m | "
             "median final speed m/s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, controller, config in drivers:
        print(f"driving {name} ({args.split} split) ...", file=sys.stderr, flush=True)
        trace = Trace()
        table = evaluate(scene, controller, args.split, config=config, device=args.device, progress=True,
                         seed=args.seed, trace=trace, episodes=args.episodes)
        lines += summary_rows(name, final_offsets(scene, table, trace))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
