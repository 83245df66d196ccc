"""What do trained policies do with their actions? Their actions on recorded contexts beside the drivers'.

    python scripts/policy_actions.py --workdir ppuu-work --scene i80-sumo-15min-s0-wander0.2 --split test \\
        --contexts 512 --policies RUN [RUN ...] --threads 1

A policy trained through a world model can only be trusted where the model was trained: on actions like
the recorded drivers'. This script feeds each policy the same recorded contexts (``--contexts`` windows of
the split, drawn with ``--seed``; the observation each policy was trained on) and sets the action it takes
at the last context frame beside the one the recorded driver took there. Prints one Markdown table, one row
per policy and a first row for the recorded drivers themselves, in physical units:

* the 1 % and 99 % quantiles of the acceleration (m/s^2) and of the curvature (1/m): does the policy brake
  at all, does it steer harder than any driver;
* the share of its actions outside the drivers' own 1-99 % range on those contexts (the drivers: about 2 %
  by construction);
* the correlation of its acceleration with the driver's on the same context: does it brake where the
  drivers braked (the drivers: 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def recorded_windows(scene, loaded, split: str, contexts: int, seed: int, device: str):
    """``(context images, context states, recorded first actions)`` of ``contexts`` windows of ``split``, in
    ``loaded``'s observation and normalisation; the actions (N, 2) in physical units (m/s^2, 1/m)."""
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import WindowDataset

    source = RecordedObservations.from_settings(scene, loaded.observation, device=device)
    mc = loaded.model_config
    data = WindowDataset(source, scene.split_vehicle_ids(split), mc.context, 1, loaded.normaliser, mc.image_channels)
    if len(data) == 0:
        raise ValueError(f"the {split} split of {scene.meta.name} has no window of {mc.context + 1} frames")
    batch = data.batch(data.fixed_indices(min(contexts, len(data)), seed=seed))
    recorded = loaded.normaliser.denormalise_actions(batch.actions[:, 0].to(device))
    return batch.context_images.to(device), batch.context_states.to(device), recorded.cpu().numpy()


@torch.no_grad()
def policy_actions(loaded, images, states, chunk: int = 64) -> np.ndarray:
    """(N, 2) the deterministic (mean) action of ``loaded``'s policy on each context, physical units."""
    out = [loaded.policy(images[i:i + chunk], states[i:i + chunk], sample=False) for i in range(0, len(images), chunk)]
    return loaded.normaliser.denormalise_actions(torch.cat(out)).cpu().numpy()


def summary_row(name: str, actions: np.ndarray, recorded: np.ndarray) -> str:
    """``| name | acc q01 | acc q99 | curv q01 | curv q99 | outside acc % | outside curv % | corr acc |``."""
    q = np.quantile(actions, [0.01, 0.99], axis=0)
    low, high = np.quantile(recorded, [0.01, 0.99], axis=0)
    outside = ((actions < low) | (actions > high)).mean(0) * 100
    a, r = actions[:, 0], recorded[:, 0]
    corr = float(np.corrcoef(a, r)[0, 1]) if a.std() > 0 and r.std() > 0 else float("nan")
    return (f"| {name} | {q[0, 0]:+.2f} | {q[1, 0]:+.2f} | {q[0, 1]:+.4f} | {q[1, 1]:+.4f} | {outside[0]:.1f} | "
            f"{outside[1]:.1f} | {corr:+.2f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="ppuu-work", help="workspace with scenes/ and runs/ (default: %(default)s)")
    p.add_argument("--scene", default="i80-sumo-15min-s0", help="scene name under WORKDIR/scenes or a scene folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="(default: %(default)s)")
    p.add_argument("--contexts", type=int, default=512, help="recorded contexts fed to every policy (default: %(default)s)")
    p.add_argument("--policies", nargs="+", required=True, help="trained policy runs (names under WORKDIR/runs or .pt)")
    p.add_argument("--seed", type=int, default=1, help="seed of the contexts drawn (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = p.parse_args(argv)
    if args.contexts < 2:
        p.error(f"--contexts {args.contexts}: need at least 2 for quantiles")
    torch.set_num_threads(args.threads)

    from ppuu.app.cli_data import resolve_scene
    from ppuu.app.cli_policy import resolve_run_file
    from ppuu.data.scene import Scene
    from ppuu.planner.train import load_policy

    try:
        scene = Scene.load(resolve_scene(Path(args.workdir), args.scene))
        loaded = [(run, load_policy(resolve_run_file(Path(args.workdir), run), args.device)) for run in args.policies]
    except FileNotFoundError as exc:
        p.error(str(exc))

    windows: dict[str, tuple] = {}          # the contexts once per observation setting
    rows, recorded_row = [], None
    for run, policy in loaded:
        key = repr(sorted(policy.observation.items())) + repr(policy.model_config.context)
        if key not in windows:
            print(f"rendering {args.contexts} {args.split} contexts ...", file=sys.stderr, flush=True)
            try:
                windows[key] = recorded_windows(scene, policy, args.split, args.contexts, args.seed, args.device)
            except ValueError as exc:                 # a split without a window long enough: a clear message
                p.error(str(exc))
        images, states, recorded = windows[key]
        if recorded_row is None:
            recorded_row = summary_row(f"the recorded drivers ({len(recorded)} contexts)", recorded, recorded)
        rows.append(summary_row(run, policy_actions(policy, images, states), recorded))
    print("\n".join([
        f"Scene `{scene.meta.name}`, {args.split} split, {args.contexts} recorded contexts (seed {args.seed}); the "
        "action at the last context frame. Outside: share of the actions outside the recorded drivers' 1-99 % range "
        "on the same contexts. Corr: correlation of the acceleration with the driver's.", "",
        "| actions of | acc q01 m/s^2 | acc q99 m/s^2 | curv q01 1/m | curv q99 1/m | outside acc % | outside curv % | "
        "corr acc |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", recorded_row, *rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
