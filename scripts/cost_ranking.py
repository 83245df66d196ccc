"""Which plans do the planner's costs prefer? Constant-acceleration plans against the recorded one,
the plans a planner finds, and the plans trained policies drive.

    python scripts/cost_ranking.py --workdir ppuu-work --scene i80-sumo-15min-s0 --world-model kin-none \
        --windows 64 --horizon 30 --speed-weights 0 0.3 0.5 --optimise 20 --policies RUN ... --threads 1

For a world model with the kinematic ego in a fixed frame, the ego's states under any plan are
exact (the kinematic model) and, in replay, so is the future traffic: the recorded frames of
the window. So each plan can be scored twice with the simulator's own costs: on the **true**
future traffic and on the model's **predicted** traffic (z from the prior). A cost that can
teach driving must rank the recorded human's plan at or near the top on the true traffic;
this script shows whether it does, and how the speed-keeping weight
(:func:`ppuu.planner.objective.speed_deficit`) changes the ranking. Prints a Markdown table:
mean per-step proximity and lane costs (true and predicted), the mean speed deficit, metres
driven, and the total ``proximity + 0.2 lane + w_s deficit`` for each weight, true traffic.

Three options say whether planning through the model can pay (issues 9 and 10):

* ``--optimise I``: for each speed weight, the plan optimised by Adam (lr 0.1, I iterations, from no
  action, inside the simulator's action bounds; per window the best iterate, so never worse than no
  action on the traffic it was optimised against) against the **predicted** traffic (what MPC and MPUR
  can do with this model) and against the **true** traffic (an oracle: the best a perfect model
  allows). Each is then scored on the true traffic. The gap between no action and the oracle is
  what the objective can gain at all; the share of it the model-optimised plan keeps is what this
  world model lets a planner gain; a model-optimised plan that scores *worse* than no action on the
  true traffic is the model being exploited.
* ``--gradient-check``: the mean derivative of the proximity cost with respect to a constant
  acceleration, by autograd and by a finite difference, on both traffics: what the planner's
  optimisers are told against what is true. They differ by design where a car behind lies on the
  mask's ramp: its safe distance is the follower's, not differentiable in the ego's speed
  (:mod:`ppuu.simulator.costs`).
* ``--policies RUN ...``: the plan each trained policy drives, acting on the predicted windows of
  the fixed frame (as in its training), scored the same way: its distance to the model-optimised
  plan is what training left on the table.

With an ego-conditioned model (``ego_conditioning = "state"``) the traffic is predicted once, under
the recorded plan, for every row (the model's reaction to other plans is not scored here).
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
    parser.add_argument("--world-model", default="kin-none", help="run name or checkpoint (kinematic ego model)")
    parser.add_argument("--split", default="test",
                        help="train, val or test: the split whose windows are scored (default: %(default)s)")
    parser.add_argument("--windows", type=int, default=64,
                        help="windows of the split, drawn at random (with replacement) with --seed "
                             "(default: %(default)s)")
    parser.add_argument("--horizon", type=int, default=30,
                        help="plan length in 0.1-s steps (default: %(default)s)")
    parser.add_argument("--accelerations", type=float, nargs="+", default=[-2.0, -1.0, -0.5, 0.0, 0.5, 1.0],
                        help="m/s^2 of the constant-acceleration, straight plans (default: %(default)s)")
    parser.add_argument("--speed-weights", type=float, nargs="+", default=[0.0, 0.3, 0.5],
                        help="weights w_s of the speed deficit, one total column each (default: %(default)s)")
    parser.add_argument("--optimise", type=int, default=0, metavar="I",
                        help="add plans optimised with I Adam iterations against the predicted and the true "
                             "traffic, one pair per speed weight (0 = none)")
    parser.add_argument("--policies", nargs="*", default=[], metavar="RUN",
                        help="policy runs (trained on this world model) whose driven plans are added")
    parser.add_argument("--gradient-check", action="store_true",
                        help="also compare the proximity cost's gradient with respect to a constant acceleration "
                             "with its finite difference")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the window draw and of the predicted traffic's latents (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from ppuu.app.cli_policy import cost_model_for, resolve_run_file
    from ppuu.data.scene import Scene
    from ppuu.planner.objective import speed_deficit
    from ppuu.planner.policy import normalised_bounds
    from ppuu.planner.train import load_policy
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import WindowDataset, sample_indices
    from ppuu.world_model.interface import speeds
    from ppuu.world_model.kinematics import kinematic_rollout
    from ppuu.world_model.models import slide
    from ppuu.world_model.train import load_model

    workdir = Path(args.workdir)
    scene = Scene.load(workdir / "scenes" / args.scene)
    try:
        world = load_model(resolve_run_file(workdir, args.world_model), "cpu")
        policies = {run: load_policy(resolve_run_file(workdir, run)).policy for run in args.policies}
    except FileNotFoundError as exc:
        raise SystemExit(f"cost_ranking.py: {exc}") from None
    mc, norm = world.model_config, world.normaliser
    if mc.ego_model != "kinematic":
        raise SystemExit(f"{args.world_model}: a kinematic-ego (fixed-frame) world model is needed: only there do "
                         "the true future frames not depend on the plan")
    source = RecordedObservations.from_settings(scene, world.observation, device="cpu")
    costs = cost_model_for(world, source.raster, source.cost_config)
    data = WindowDataset(source, scene.split_vehicle_ids(args.split), mc.context, args.horizon, norm,
                         mc.image_channels)
    B, N = args.windows, args.horizon
    batch = data.batch(sample_indices(len(data), args.seed, 0, B))
    torch.manual_seed(args.seed)
    with torch.no_grad():
        images, states, predicted = batch.context_images, batch.context_states, []
        for t in range(N):
            out = world.model.step(images, states, batch.actions[:, t], z_source="prior", stats=norm)
            predicted.append(out.image)
            images, states = slide(images, out.image), slide(states, out.state)
        predicted = torch.stack(predicted, 1)
        last = norm.denormalise_states(batch.context_states[:, -1])
        v0 = speeds(batch.context_states[:, -1], norm)

        def drive(actions):                                   # (B, N, 2) physical -> (B, N, 4) physical
            return kinematic_rollout(last, actions, mc.dt)

        def score(frames, physical):
            flat = norm.normalise_states(physical.reshape(-1, 4))
            return costs(frames.flatten(0, 1), flat, batch.size.repeat_interleave(N, 0)).view(B, N, 3)

        def policy_plan(policy):                               # (B, N, 2) physical: the policy drives
            images, states, state, actions = batch.context_images, batch.context_states, last, []
            for t in range(N):
                action = norm.denormalise_actions(policy(images, states, sample=False))
                state = kinematic_rollout(state, action[:, None], mc.dt)[:, 0]
                actions.append(action)
                images, states = slide(images, predicted[:, t]), slide(states, norm.normalise_states(state))
            return torch.stack(actions, 1)

        plans = {f"constant {a:+.1f} m/s^2": torch.tensor([a, 0.0]).expand(B, N, 2) for a in args.accelerations}
        plans["recorded (human)"] = norm.denormalise_actions(batch.actions)
        for run, policy in policies.items():
            plans[f"policy {run}"] = policy_plan(policy)

    def optimised_plan(frames, speed_weight, bounds, bar):   # (B, N, 2) physical, from no action
        """Adam on normalised actions, projected into the bounds; per window the best iterate (no action included)."""
        low, high = torch.tensor(bounds["action_low"]), torch.tensor(bounds["action_high"])
        plan = norm.normalise_actions(torch.zeros(B, N, 2)).requires_grad_(True)
        best, best_total = plan.detach().clone(), torch.full((B,), float("inf"))
        optimiser = torch.optim.Adam([plan], lr=0.1)
        for i in range(args.optimise + 1):
            physical = drive(norm.denormalise_actions(plan))
            c = score(frames, physical)
            deficit = speed_deficit(physical[..., 2:4].norm(dim=-1), v0)
            total = (c[..., 0] + 0.2 * c[..., 1] + speed_weight * deficit).mean(dim=1)
            with torch.no_grad():
                better = total < best_total
                best[better], best_total[better] = plan[better], total[better]
            if i == args.optimise:
                break
            optimiser.zero_grad()
            total.sum().backward()
            optimiser.step()
            bar.update(1)
            with torch.no_grad():
                plan.copy_(torch.maximum(torch.minimum(plan, high), low))
        return norm.denormalise_actions(best)

    def proximity_slope(frames, a0, h=0.1):                 # mean d(proximity)/d(a): autograd, finite difference
        def mean_proximity(a):
            return score(frames, drive(torch.stack([a[:, None].expand(B, N), torch.zeros(B, N)], -1)))[..., 0].mean()
        a = torch.full((B,), a0, requires_grad=True)
        grad, = torch.autograd.grad(mean_proximity(a) * B, a)
        with torch.no_grad():
            fd = (mean_proximity(torch.full((B,), a0 + h)) - mean_proximity(torch.full((B,), a0 - h))) / (2 * h)
        return float(grad.mean()), float(fd)

    if args.optimise:
        from tqdm import tqdm

        bounds = normalised_bounds(norm)
        with tqdm(total=2 * len(args.speed_weights) * args.optimise, desc="optimising plans", unit="it") as bar:
            for w in args.speed_weights:
                for traffic, frames in (("predicted", predicted), ("true", batch.target_images)):
                    plans[f"optimised on the {traffic} traffic, w_s = {w:g}"] = optimised_plan(frames, w, bounds, bar)
    with torch.no_grad():
        rows = []
        for name, actions in plans.items():
            physical = drive(actions)
            true, pred = score(batch.target_images, physical), score(predicted, physical)
            deficit = speed_deficit(physical[..., 2:4].norm(dim=-1), v0).mean()
            base = true[..., 0].mean() + 0.2 * true[..., 1].mean()
            rows.append((name, true[..., 0].mean(), pred[..., 0].mean(), true[..., 1].mean(), pred[..., 1].mean(),
                         deficit, (physical[:, -1, 0] - last[:, 0]).mean(),
                         [base + w * deficit for w in args.speed_weights]))
    print(f"{args.scene}, {B} {args.split} windows, {N} steps of 0.1 s, world model {args.world_model} "
          f"(predicted traffic: z from the prior)\n")
    totals = " | ".join(f"total, w_s = {w:g}" for w in args.speed_weights)
    print(f"| plan | proximity (true) | proximity (predicted) | lane (true) | lane (predicted) | speed deficit "
          f"| metres | {totals} |")
    print("| --- |" + " ---: |" * (6 + len(args.speed_weights)))
    best = [min(range(len(rows)), key=lambda i: float(rows[i][7][k])) for k in range(len(args.speed_weights))]
    for i, (name, tp, pp, tl, pl, d, m, tot) in enumerate(rows):
        cells = " | ".join(f"**{float(v):.3f}**" if best[k] == i else f"{float(v):.3f}" for k, v in enumerate(tot))
        print(f"| {name} | {tp:.3f} | {pp:.3f} | {tl:.3f} | {pl:.3f} | {d:.3f} | {m:.1f} | {cells} |")
    print("\nbold: the cheapest plan for that weight, on the true traffic")
    if args.gradient_check:
        print("\nGradient check: d(mean proximity)/d(constant acceleration), m/s^2, autograd against a central "
              "finite difference (step 0.1 m/s^2)\n")
        print("| traffic | acceleration m/s^2 | autograd | finite difference |")
        print("| --- | ---: | ---: | ---: |")
        for traffic, frames in (("predicted", predicted), ("true", batch.target_images)):
            for a0 in (-0.3, 0.0, 0.3):
                grad, fd = proximity_slope(frames, a0)
                print(f"| {traffic} | {a0:+.1f} | {grad:+.4f} | {fd:+.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
