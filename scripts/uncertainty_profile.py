"""Does the world model doubt plans unlike the recorded driving? The uncertainty cost of constant,
recorded and trained-policy plans on the same windows.

    python scripts/uncertainty_profile.py --workdir ppuu-work --scene i80-sumo-15min-s0 --world-model ego-s0-wm \
        --windows 64 --horizon 15 --copies 8 --accelerations -3 -1 0 1 3 --curvatures 0.01 --policies RUN ... \
        --threads 1

MPUR's uncertainty cost (SPEC §4, :mod:`ppuu.planner.uncertainty`) keeps a policy where the world
model's dropout copies agree, on the premise that they disagree more about actions unlike the
recorded ones. This script measures that premise on one world model: W windows of a split, each
plan (straight constant accelerations, constant curvatures at constant speed, the recorded plan,
trained policies acting on their own predicted windows, measured from each window's newest frame as
their controller shows them) imagined H steps by K dropout copies with
shared latents, as MPUR imagines. Per plan it prints the mean per-step variance of each term
(images, states, cost) in standard deviations from the recorded plan's mean on these windows (so
the recorded row reads about 0), the uncertainty cost with MPUR's hinge of 0.5 on the same scale,
the predicted proximity and lane costs of copy 0, the mean |acceleration| (m/s^2) and the mean
|curvature| (1/m). A plan far from the data whose uncertainty cost is no higher than the recorded
plan's is one the regulariser cannot keep a policy away from (issue 9). Works with either ego model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="ppuu-work",
                        help="workspace holding scenes/ and runs/ (default: %(default)s)")
    parser.add_argument("--scene", default="i80-sumo-15min-s0",
                        help="scene name under WORKDIR/scenes (default: %(default)s)")
    parser.add_argument("--world-model", required=True, help="run name or checkpoint of the world model")
    parser.add_argument("--split", default="val",
                        help="train, val or test: the split whose windows are used (default: %(default)s)")
    parser.add_argument("--windows", type=int, default=64, help="W windows of the split (evenly drawn with --seed)")
    parser.add_argument("--horizon", type=int, default=15, help="H imagined steps per plan")
    parser.add_argument("--copies", type=int, default=8, help="K dropout copies (at least 2)")
    parser.add_argument("--accelerations", type=float, nargs="+", default=[-3.0, -1.0, 0.0, 1.0, 3.0],
                        help="m/s^2 of the constant, straight plans")
    parser.add_argument("--curvatures", type=float, nargs="*", default=[],
                        help="1/m of constant-curvature plans at constant speed (the recorded drivers barely steer: "
                             "a lane change at 10 m/s bends by about 0.005-0.01 1/m)")
    parser.add_argument("--policies", nargs="*", default=[], metavar="RUN",
                        help="policy runs (trained on this world model) whose plans are added")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the window draw, the shared latents and the dropout masks (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.copies < 2:
        parser.error("--copies: the variance across dropout copies needs at least 2")
    torch.set_num_threads(args.threads)

    from ppuu.app.cli_policy import cost_model_for, resolve_run_file
    from ppuu.data.scene import Scene
    from ppuu.planner.imagination import imagine, policy_actor, window_origin_for
    from ppuu.planner.objective import CostWeights
    from ppuu.planner.train import load_policy
    from ppuu.planner.uncertainty import TERMS, UncertaintyStats
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import WindowDataset, sample_indices
    from ppuu.world_model.train import load_model
    from tqdm import tqdm

    workdir = Path(args.workdir)
    try:
        scene = Scene.load(workdir / "scenes" / args.scene)
        world = load_model(resolve_run_file(workdir, args.world_model), "cpu")
        policies = {run: load_policy(resolve_run_file(workdir, run)).policy for run in args.policies}
    except FileNotFoundError as exc:
        raise SystemExit(f"uncertainty_profile.py: {exc}") from None
    mc, norm = world.model_config, world.normaliser
    source = RecordedObservations.from_settings(scene, world.observation, device="cpu")
    cost_model = cost_model_for(world, source.raster, source.cost_config)
    data = WindowDataset(source, scene.split_vehicle_ids(args.split), mc.context, args.horizon, norm,
                         mc.image_channels)
    B, N = min(args.windows, len(data)), args.horizon
    batch = data.batch(sample_indices(len(data), args.seed, 0, B))
    generator = torch.Generator().manual_seed(args.seed)
    z = torch.randn(B, N, mc.latent_dim, generator=generator) if world.stochastic else None   # shared by every plan

    def constant(acceleration: float, curvature: float = 0.0):
        action = norm.normalise_actions(torch.tensor([[acceleration, curvature]]).expand(B, 2))
        return lambda images, states, t: action

    plans = {f"constant {a:+.1f} m/s^2": constant(a) for a in args.accelerations}
    plans.update({f"constant {k:+.4f} 1/m": constant(0.0, k) for k in args.curvatures})
    plans["recorded (human)"] = lambda images, states, t: batch.actions[:, t]
    origin = window_origin_for(world.observation)
    for run, policy in policies.items():       # each sees its windows as its controller would show them
        plans[f"policy {run}"] = policy_actor(policy, norm, origin, sample=False)
    rollouts = {}
    with torch.no_grad():
        for name, actor in tqdm(plans.items(), desc="imagining plans", unit="plan"):
            torch.manual_seed(args.seed + 1)          # every plan meets the same sequence of dropout masks
            rollouts[name] = imagine(world.model, batch.context_images, batch.context_states, batch.size, actor, N,
                                     cost_model, CostWeights(), copies=args.copies, z=z, stats=norm)
    reference = UncertaintyStats.from_samples(rollouts["recorded (human)"].variances)
    print(f"{args.world_model}: {B} {args.split} windows of {args.scene}, {N} steps, {args.copies} dropout copies; "
          "variances in standard deviations from the recorded plan's mean")
    print()
    print("| plan | " + " | ".join(f"{t} variance (sd)" for t in TERMS)
          + " | uncertainty cost | proximity (predicted) | lane (predicted) | mean abs acceleration m/s^2 "
          "| mean abs curvature 1/m |")
    print("| --- |" + " ---: |" * (len(TERMS) + 5))
    for name, rollout in rollouts.items():
        standardised = (rollout.variances - reference.mean) / reference.std                  # (B, N, 3)
        acceleration, curvature = norm.denormalise_actions(rollout.actions).abs().mean(dim=(0, 1))
        cells = [f"{float(v):+.2f}" for v in standardised.mean(dim=(0, 1))]
        proximity, lane = rollout.terms[..., :2].mean(dim=(0, 1))
        cells += [f"{float(reference.cost(rollout.variances).mean()):.3f}", f"{float(proximity):.3f}",
                  f"{float(lane):.3f}", f"{float(acceleration):.2f}", f"{float(curvature):.4f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
