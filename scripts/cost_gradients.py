"""Which cost term gives a plan's steering its gradient? Per world model and road-cost reading, the
gradient of each imagined cost term with respect to the actions of the no-action plan.

    python scripts/cost_gradients.py --workdir ppuu-work --scene i80-sumo-15min-s0-wander0.2 \
        --world-model wego-s0-wm3k wkin-s0-wm3k --windows 64 --horizon 15 --threads 1

A policy learned through a world model steers by the gradient the costs send back through the
imagined rollout. On W windows of a split, the plan of zero acceleration and zero curvature
(straight on at the current speed) is imagined H steps by each world model (dropout off, latents
from the prior with ``--seed``), and each cost term, weighted as MPUR weights it
(:class:`~ppuu.planner.objective.CostWeights`), summed over the steps, is differentiated with respect
to the plan's physical actions. Per model, road-cost reading (``predicted``: the model's own predicted
frames; ``context``: the last real frame at the predicted pose, learned-ego models only,
:class:`~ppuu.planner.costs.ContextRoadCosts`) and term it prints the mean cost per step and the mean
absolute gradient per step on the acceleration (per m/s^2) and on the curvature (per 0.001 1/m, a
gentle lane-keeping correction). Two models that score the same road the same way give the same lane
and off-road rows (the check of ``--road-costs context``); a lane row far weaker than another model's
is a wheel the policy cannot learn from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

TERMS = ("proximity", "lane", "offroad")
CURVATURE_UNIT = 1e-3
"""1/m: the curvature gradient is reported per this much curvature."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="ppuu-work",
                        help="workspace holding scenes/ and runs/ (default: %(default)s)")
    parser.add_argument("--scene", default="i80-sumo-15min-s0",
                        help="scene name under WORKDIR/scenes (default: %(default)s)")
    parser.add_argument("--world-model", nargs="+", required=True, help="run names or checkpoints of world models")
    parser.add_argument("--split", default="val",
                        help="train, val or test: the split whose windows are used (default: %(default)s)")
    parser.add_argument("--windows", type=int, default=64, help="W windows of the split (evenly drawn with --seed)")
    parser.add_argument("--horizon", type=int, default=15, help="H imagined steps")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the window draw and of the latents sampled from the prior (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.windows < 1 or args.horizon < 1:
        parser.error("--windows and --horizon must be >= 1")
    torch.set_num_threads(args.threads)

    from ppuu.app.cli_policy import cost_model_for, resolve_run_file
    from ppuu.data.scene import Scene
    from ppuu.planner.imagination import imagine
    from ppuu.planner.objective import CostWeights
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import WindowDataset
    from ppuu.world_model.train import load_model

    try:
        scene = Scene.load(Path(args.workdir) / "scenes" / args.scene)
        worlds = [(name, load_model(resolve_run_file(args.workdir, name), "cpu")) for name in args.world_model]
    except FileNotFoundError as exc:
        raise SystemExit(f"cost_gradients.py: {exc}") from None
    weights = CostWeights()
    scale = torch.tensor([weights.proximity, weights.lane, weights.offroad])
    print(f"Scene `{scene.meta.name}`, {args.split} split, {args.windows} windows, {args.horizon} steps, the "
          "no-action plan; weighted cost terms, mean per step; mean |gradient| per step on the acceleration "
          f"(per m/s^2) and on the curvature (per {CURVATURE_UNIT:g} 1/m).\n")
    print("| world model | road costs | term | cost | d/d acceleration | d/d curvature |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for name, world in worlds:
        mc = world.model_config
        source = RecordedObservations.from_settings(scene, world.observation)
        data = WindowDataset(source, scene.split_vehicle_ids(args.split), mc.context, args.horizon, world.normaliser,
                             mc.image_channels)
        batch = data.batch(data.fixed_indices(args.windows, seed=args.seed))
        for road in ("predicted", "context") if mc.ego_model == "learned" else ("predicted",):
            costs = cost_model_for(world, source.raster, source.cost_config, road)
            plan = torch.zeros(len(batch), args.horizon, 2, requires_grad=True)          # physical, m/s^2 and 1/m
            normalised = world.normaliser.normalise_actions(plan)
            torch.manual_seed(args.seed)
            rollout = imagine(world.model, batch.context_images, batch.context_states, batch.size,
                              lambda images, states, t: normalised[:, t], args.horizon, costs, weights,
                              stats=world.normaliser)                  # one rollout, differentiated per term
            for index, term in enumerate(TERMS):
                weighted = rollout.terms[..., index] * scale[index]
                grad, = torch.autograd.grad(weighted.sum(), plan, retain_graph=index < len(TERMS) - 1)
                grad = grad.abs().mean(dim=(0, 1))
                print(f"| {name} | {road} | {term} | {weighted.mean():.4f} | {grad[0]:.2e} | "
                      f"{grad[1] * CURVATURE_UNIT:.2e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
