"""``ppuu train policy`` and ``ppuu evaluate policy``: driving policies learned through the world model.

Training wires a frozen world model (its checkpoint says how its images were made:
``ppuu.simulator.recording.RecordedObservations.from_settings``) to the training split's real
contexts and to the simulator's costs placed as the model's ego model requires
(:mod:`ppuu.planner.costs`). Evaluation drives every test episode in the batched simulator with
each policy and the reference controllers, and writes the results table of Henaff et al. (2019).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import numpy as np

from ppuu.app.cli_data import add_workdir, resolve_scene


def add_train_parser(sub) -> None:
    """``train policy`` (added to the ``train`` group)."""
    p = sub.add_parser(
        "policy", help="train a driving policy through a world model (MPUR, VG, SVG, MPER, IL, MPC-IL)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a policy on real 20-frame contexts of the scene's training split by back-propagating\n"
                    "through a frozen world model (Henaff et al. 2019). Methods:\n"
                    "  mpur  imagine --horizon steps with the policy acting on each predicted window; minimise\n"
                    "        proximity + 0.2 lane + off-road + 0.05 uncertainty (K dropout copies)\n"
                    "  vg    the same without the uncertainty cost, deterministic world model\n"
                    "  svg   the same without the uncertainty cost, stochastic world model\n"
                    "  mper  imagine with the policy, match the recorded future positions\n"
                    "  il    one-step imitation of the recorded action\n"
                    "  mpc-il  one-step imitation of the MPC planner: its first action on --planner-contexts\n"
                    "        training contexts, planned once through the world model (amortised MPC)\n"
                    "Writes WORKDIR/runs/RUN/{config.json,metrics.csv,checkpoint.pt,best.pt}; the same command\n"
                    "resumes a killed run. Flags left out take the --profile's values.")
    p.add_argument("--world-model", required=True,
                   help="world-model checkpoint: a .pt file, a run folder or a run name under WORKDIR/runs")
    p.add_argument("--scene", help="scene name or folder (default: the most recent scene)")
    p.add_argument("--method", default="mpur", choices=["mpur", "vg", "svg", "mper", "il", "mpc-il"],
                   help="training method (default: %(default)s)")
    p.add_argument("--profile", default="cpu", choices=["cpu", "reference"],
                   help="presets: 'cpu' (policy 16/32/64, batch 6, 15 imagined steps, 4 dropout copies, 300 steps: "
                        "minutes on 2 cores) or 'reference' (the paper's sizes: 64/128/256, batch 6, 30 steps, "
                        "10 copies, "
                        "100k steps; a GPU) (default: %(default)s)")
    p.add_argument("--run", "--run-name", dest="run", help="run name (default: SCENE-METHOD-PROFILE-sSEED)")
    p.add_argument("--init", help="a policy checkpoint to start from (e.g. an IL run: an imitation warm start)")
    p.add_argument("--steps", type=int, help="optimiser steps in total")
    p.add_argument("--batch-size", type=int, help="contexts per step")
    p.add_argument("--horizon", type=int, help="imagined steps per context (0.1 s each)")
    p.add_argument("--copies", type=int, help="dropout copies of the world model for the uncertainty cost (K)")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--warmup-steps", type=int,
                   help="raise the learning rate linearly over this many first steps (default 0: none)")
    p.add_argument("--anchor-weight", type=float,
                   help="with --init: weight of a trust region keeping the policy's first action near the warm "
                        "start's on the same context (mean squared normalised action; default 0: off)")
    p.add_argument("--reached-fraction", type=float,
                   help="mpur/vg/svg: share of every batch imagined from contexts the policy itself reaches in the "
                        "simulator (its own closed-loop episodes of the training split, DAgger-style) instead of "
                        "recorded ones: it learns to act where it drifts to (default 0: recorded contexts only)")
    p.add_argument("--reached-every", type=int,
                   help="steps between collections of reached contexts with the current weights (default 10)")
    p.add_argument("--reached-episodes", type=int, help="training episodes driven per collection (default 32)")
    p.add_argument("--reached-steps", type=int,
                   help="steps each collected episode is driven at most (0.1 s each; default 80)")
    p.add_argument("--reached-stride", type=int,
                   help="steps between the contexts kept from one episode (default 10)")
    p.add_argument("--road-costs", choices=["predicted", "context"],
                   help="learned-ego world models: read the lane and off-road costs from the model's own predicted "
                        "frames ('predicted', the paper's) or from the last real context frame at the predicted "
                        "pose ('context': the road does not move, so steering is priced as in the simulator; "
                        "horizons of about 15 steps) (default: predicted)")
    p.add_argument("--window-origin", choices=["newest", "context"],
                   help="learned-ego world models: the imagined windows the policy reads measure x from their newest "
                        "frame ('newest', as the simulator's controller gives them) or from the real context's last "
                        "frame ('context': how runs before 2026-12-07 trained; reproduces them) (default: newest)")
    p.add_argument("--planner-contexts", type=int,
                   help="mpc-il: training contexts the planner plans for (default 1600; cached in the run folder)")
    p.add_argument("--planner-iterations", type=int,
                   help="mpc-il: Adam iterations per plan, 2 futures (default 10); the plan's horizon is --horizon, "
                        "its costs the weights below")
    p.add_argument("--planner-lr", type=float, help="mpc-il: the planner's Adam learning rate (default 0.1)")
    p.add_argument("--grad-clip", type=float, help="max gradient norm (default 50)")
    p.add_argument("--proximity-weight", type=float, help="weight of the proximity cost (default 1.0)")
    p.add_argument("--lane-weight", type=float, help="weight of the lane cost (default 0.2)")
    p.add_argument("--offroad-weight", type=float, help="weight of the off-road cost (default 1.0)")
    p.add_argument("--uncertainty-weight", type=float, help="weight of the uncertainty cost (default 0.05; mpur)")
    p.add_argument("--action-weight", type=float, help="weight of |a|^2, normalised actions (default 0)")
    p.add_argument("--jerk-weight", type=float, help="weight of |a_t - a_t-1|^2, normalised actions (default 0)")
    p.add_argument("--speed-weight", type=float,
                   help="weight of speed keeping: the deficit against the speed at the end of the context, "
                        "max(v0 - v, 0) / max(v0, 1) (default 0, the paper's objective; see planner/objective.py)")
    p.add_argument("--speed-reference", choices=["context", "recorded", "lower"],
                   help="what speed keeping charges the deficit against: 'context' (the speed at the end of the "
                        "context, v0 above), 'recorded' (the recorded driver's speed at each imagined step: "
                        "slowing down where the driver did is free; contexts the policy reached use v0) or 'lower' "
                        "(the lower of the two: never asked to go faster than v0) (default: context)")
    p.add_argument("--gaussian", action="store_true", help="a Gaussian policy instead of a deterministic one")
    p.add_argument("--steering", default="learned", choices=["learned", "straight"],
                   help="'straight': the policy chooses the acceleration only and holds the wheel straight (curvature "
                        "0), as no action does; the recorded drivers barely steer and learned steering drifts across "
                        "lanes (planner/policy.py); 'learned' with --init from a straight policy releases the wheel: "
                        "it starts steering straight (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--val-every", type=int, help="steps between validations (0 = never)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_workdir(p)
    p.set_defaults(func=cmd_train)


def resolve_run_file(workdir: Path, value: str) -> Path:
    """A checkpoint file from a path, a run folder or a run name."""
    path = Path(value)
    for candidate in (path, path / "checkpoint.pt", Path(workdir) / "runs" / value / "checkpoint.pt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no checkpoint {value!r} (a .pt file, a run folder, or a run name under "
                            f"{Path(workdir) / 'runs'})")


def load_drivers(workdir: Path, scene_name: str, controllers: list[str], policies: list[str], base, device: str):
    """The scene and the drivers of a closed-loop script: ``(scene, [(name, controller, SimConfig), ...])`` for
    built-in ``controllers`` (names) and trained ``policies`` (run names or checkpoints), each with the
    simulator settings it needs on top of ``base``.

    Raises:
        FileNotFoundError: no such scene or run.
    """
    from ppuu.data.scene import Scene
    from ppuu.planner.controller import make_controller, sim_config_for
    from ppuu.planner.train import load_policy

    scene = Scene.load(resolve_scene(Path(workdir), scene_name))
    drivers = [(name, name, base) for name in controllers]
    for run in policies:
        loaded = load_policy(resolve_run_file(Path(workdir), run), device)
        drivers.append((run, make_controller(loaded), sim_config_for(loaded, base)))
    return scene, drivers


def policy_label(path: Path) -> str:
    """A checkpoint's name in reports: its run's name, and the file's when it is not the run's checkpoint."""
    run = path.resolve().parent.name
    return run if path.name == "checkpoint.pt" else f"{run}/{path.name}"


def policy_config(args):
    """The run's :class:`~ppuu.planner.train_config.PolicyTrainConfig` from the flags."""
    from ppuu.planner.train_config import PolicyTrainConfig

    weights = {k: v for k, v in (("proximity", args.proximity_weight), ("lane", args.lane_weight),
                                 ("offroad", args.offroad_weight), ("uncertainty", args.uncertainty_weight),
                                 ("action", args.action_weight), ("jerk", args.jerk_weight),
                                 ("speed", args.speed_weight)) if v is not None}
    return PolicyTrainConfig.for_profile(
        args.profile, args.method, steps=args.steps, batch_size=args.batch_size, horizon=args.horizon,
        copies=args.copies, lr=args.lr, warmup_steps=args.warmup_steps, anchor_weight=args.anchor_weight,
        reached_fraction=args.reached_fraction, reached_every=args.reached_every,
        reached_episodes=args.reached_episodes, reached_steps=args.reached_steps, reached_stride=args.reached_stride,
        road_costs=args.road_costs, window_origin=args.window_origin, speed_reference=args.speed_reference,
        planner_contexts=args.planner_contexts, planner_iterations=args.planner_iterations, planner_lr=args.planner_lr,
        grad_clip=args.grad_clip, seed=args.seed, device=args.device,
        val_every=args.val_every, checkpoint_every=args.checkpoint_every, weights=weights,
        policy={"gaussian": True} if args.gaussian else None)


def cost_model_for(world, raster, cost_config, road: str = "predicted"):
    """The :mod:`ppuu.planner.costs` adapter for a loaded world model; ``road``: where a learned-ego model's
    lane and off-road costs are read ("predicted" or "context", :class:`~ppuu.planner.costs.ContextRoadCosts`)."""
    from ppuu.planner.costs import ContextRoadCosts, EgocentricCosts, PoseCosts

    if road not in ("predicted", "context"):
        raise ValueError(f"road costs {road!r}: expected 'predicted' or 'context'")
    if world.model_config.ego_model == "kinematic":
        if road == "context":
            raise ValueError("road costs 'context' are for learned-ego (egocentric) world models: a kinematic-ego "
                             "model's frames are fixed already and its costs read them at the ego's pose")
        return PoseCosts(world.normaliser, raster, cost_config, world.observation["frame"]["centre_ahead"])
    if road == "context":
        return ContextRoadCosts(world.normaliser, raster, cost_config)
    return EgocentricCosts(world.normaliser, raster, cost_config)


def cmd_train(args) -> int:
    import dataclasses

    import torch

    from ppuu.data.scene import Scene
    from ppuu.planner.train import TrainingDiverged, load_policy, train_policy
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import WindowDataset
    from ppuu.world_model.runs import resolve_device
    from ppuu.world_model.train import load_model

    scene = Scene.load(resolve_scene(args.workdir, args.scene))
    config = policy_config(args)
    world_path = resolve_run_file(args.workdir, args.world_model)
    config.world_model = str(world_path)
    device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
    world = load_model(world_path, device)
    mc = world.model_config
    config.policy = dataclasses.replace(config.policy, context=mc.context, image_channels=mc.image_channels,
                                        image_height=mc.image_height, image_width=mc.image_width)
    if config.method == "il":
        config.horizon = 1
    source = RecordedObservations.from_settings(scene, world.observation, device=device)
    cost_model = cost_model_for(world, source.raster, source.cost_config, config.road_costs)
    run = args.run or f"{scene.meta.name}-{config.method}-{config.profile}-s{config.seed}"
    run_dir = Path(args.workdir) / "runs" / run
    train_ids, val_ids = scene.split_vehicle_ids("train"), scene.split_vehicle_ids("val")
    train_data = WindowDataset(source, train_ids, mc.context, config.horizon, world.normaliser, mc.image_channels)
    val_data = WindowDataset(source, val_ids, mc.context, config.horizon, world.normaliser,
                             mc.image_channels) if val_ids else None
    if config.policy.action_low is None:          # the simulator's bounds, as train_policy would set them
        from ppuu.planner.policy import normalised_bounds
        config.policy = dataclasses.replace(config.policy, **normalised_bounds(world.normaliser))
    if args.steering == "straight":
        from ppuu.planner.policy import straight_curvature
        config.policy = dataclasses.replace(config.policy, fixed_curvature=straight_curvature(world.normaliser))
    if args.init and not (run_dir / "checkpoint.pt").is_file():
        init = load_policy(resolve_run_file(args.workdir, args.init))
        same_weights = dataclasses.replace(init.policy.config, fixed_curvature=config.policy.fixed_curvature)
        if same_weights != config.policy:           # the steering may differ: it is not a weight
            raise ValueError(f"--init {args.init}: its policy ({init.policy.config}) is not this run's "
                             f"({config.policy})")
        torch.manual_seed(config.seed)
        if init.policy.config.fixed_curvature is not None and config.policy.fixed_curvature is None:
            from ppuu.planner.policy import DrivingPolicy
            released = DrivingPolicy(config.policy)     # the wheel released: steer from straight
            released.load_state_dict(init.policy.state_dict())
            released.hold_straight(init.policy.config.fixed_curvature)
            warm = released.state_dict()
        else:
            warm = init.policy.state_dict()
    else:
        warm = None
    reached = None
    if config.reached_fraction:
        from ppuu.planner.reached import ReachedContexts
        reached = ReachedContexts(scene, world, config.policy, config.reached_episodes, config.reached_steps,
                                  config.reached_stride, device=device)
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        print(f"scene {scene.meta.name}: {len(train_data)} training windows; world model {world_path} "
              f"({mc.ego_model} ego, step {world.step}); run folder {run_dir}")
    try:
        summary = train_policy(config, world, cost_model, train_data, val_data, run_dir,
                               extra={"scene": scene.meta.name, "init": args.init},
                               progress=not args.no_progress, initial_weights=warm, reached=reached)
    except TrainingDiverged as exc:
        print(f"ppuu: error: {exc}")
        return 3
    if main:
        m = summary["metrics"]
        shown = ", ".join(f"{k} {m[k]:.4g}" for k in ("loss", "proximity", "lane", "offroad", "uncertainty",
                                                      "mper_error", "il_error") if k in m)
        print(f"step {summary['step']}: {shown}; {summary['seconds']:.0f} s on {summary['device']}")
        if summary["val"]:
            print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in summary["val"].items()))
        print(f"wrote {summary['checkpoint']} and {run_dir / 'metrics.csv'}")
    return 0


def add_evaluate_parser(sub) -> None:
    """``evaluate policy`` (added to the ``evaluate`` group)."""
    from ppuu.app.cli_evaluate import CONTROLLERS_HELP, add_closed_loop_arguments, controller_name

    p = sub.add_parser(
        "policy", help="trained policies (and the reference controllers) on every episode of a split: the results table",
        description="Drive every episode of a split with each trained policy, and with the recording ('human') and "
                    "no action, in the batched simulator; report the paper's results table (mean distance in m, "
                    "success "
                    "%, with the spread over seeds) plus collision, off-road, speed and comfort, on a named course. "
                    "Writes WORKDIR/reports/SCENE/REPORT-*.{md,json} (REPORT: --report, default policies), a CSV per controller, and figures: outcome "
                    "bars, distance distributions, training curves.")
    p.add_argument("scene", nargs="?", help="scene name or folder (default: the most recent scene)")
    p.add_argument("--policy", nargs="+", default=[], metavar="RUN",
                   help="policy checkpoints: .pt files, run folders or run names under WORKDIR/runs")
    p.add_argument("--controllers", nargs="*", default=["human", "no_action"], type=controller_name, metavar="NAME",
                   help=CONTROLLERS_HELP + ", run beside the policies (default: %(default)s)")
    p.add_argument("--sample", action="store_true", help="Gaussian policies sample instead of taking their mean")
    p.add_argument("--gifs", action=argparse.BooleanOptionalAction, default=True,
                   help="write GIFs of each policy's best and worst episode (default: on)")
    p.add_argument("--report", default="policies", metavar="NAME",
                   help="file-name prefix of the report and figures under WORKDIR/reports/SCENE (default: "
                        "%(default)s; give another to keep an earlier report)")
    mpc = p.add_argument_group("model-predictive control", "Drive with MPC by back-propagation through a world model "
                               "(Henaff et al. 2019): a plan of actions optimised against sampled futures at "
                               "every decision.")
    mpc.add_argument("--mpc", metavar="WORLD_MODEL", help="add MPC rows planning with this world-model checkpoint")
    mpc.add_argument("--mpc-policy", metavar="RUN", help="also run MPC warm-started by this policy's proposal")
    mpc.add_argument("--mpc-optimizer", nargs="+", default=["adam"], choices=["adam", "lbfgs", "cem"],
                     help="optimisers to compare, a row each (default: %(default)s)")
    mpc.add_argument("--mpc-horizon", type=int, default=30, help="planned steps (default: %(default)s)")
    mpc.add_argument("--mpc-futures", type=int, default=10, help="sampled futures (default: %(default)s)")
    mpc.add_argument("--mpc-iterations", type=int, default=5, help="optimiser iterations per decision "
                                                                  "(default: %(default)s)")
    mpc.add_argument("--mpc-lr", type=float, default=0.1, help="Adam's learning rate (default: %(default)s)")
    mpc.add_argument("--mpc-aggregate", default="mean", choices=["mean", "worst"],
                     help="cost over the futures: their mean or the worst (default: %(default)s)")
    mpc.add_argument("--mpc-replan-every", type=int, default=1, help="steps between decisions (default: %(default)s)")
    mpc.add_argument("--mpc-cuda-graph", action=argparse.BooleanOptionalAction, default=True,
                     help="on a GPU, replay Adam's decisions from CUDA graphs instead of launching every kernel "
                          "from Python (default: on; falls back by itself where a capture fails)")
    mpc.add_argument("--mpc-uncertainty-weight", type=float, default=0.05,
                     help="weight of the uncertainty cost (default: %(default)s; 0 = off)")
    mpc.add_argument("--mpc-road-costs", default="predicted", choices=["predicted", "context"],
                     help="learned-ego world models: lane and off-road costs from the predicted frames or the last "
                          "real context frame (see ppuu train policy --road-costs) (default: %(default)s)")
    mpc.add_argument("--mpc-speed-weight", type=float, default=0.0,
                     help="weight of speed keeping (default: %(default)s; see ppuu train policy --speed-weight)")
    p.add_argument("--reanchor-every", type=int, default=None,
                   help="fixed-frame policies: steps between re-rendering their window around the current pose "
                        "(default: every step)")
    add_closed_loop_arguments(p)
    p.set_defaults(func=cmd_evaluate)


def mpc_entries(args, scene, base, device) -> list:
    """(name, MPCController, SimConfig) rows of the ``--mpc`` flags: one per optimiser, plus the policy-warm-started
    one with ``--mpc-policy``."""
    import dataclasses

    from ppuu.planner.controller import context_source
    from ppuu.planner.imagination import imagine, policy_actor, window_origin_for
    from ppuu.planner.mpc import MPCConfig, MPCController, Planner
    from ppuu.planner.objective import CostWeights
    from ppuu.planner.train import load_policy
    from ppuu.simulator.recording import RecordedObservations, is_fixed_frame
    from ppuu.world_model.dataset import WindowDataset
    from ppuu.world_model.train import load_model

    world = load_model(resolve_run_file(args.workdir, args.mpc), device)
    mc = world.model_config
    source = RecordedObservations.from_settings(scene, world.observation, device=device)
    cost_model = cost_model_for(world, source.raster, source.cost_config, args.mpc_road_costs)
    fixed = is_fixed_frame(world.observation)
    config = dataclasses.replace(base, history=max(base.history, mc.context),
                                 context_steps=max(base.context_steps, mc.context), keep_traffic=fixed)
    if not fixed:
        config = dataclasses.replace(config, raster=source.raster)
    context = context_source(world.observation, world.normaliser, mc.image_channels, mc.context)
    data = WindowDataset(source, scene.split_vehicle_ids("train"), mc.context, args.mpc_horizon, world.normaliser,
                         mc.image_channels)
    rows = []
    proposal = None
    if args.mpc_policy:
        loaded = load_policy(resolve_run_file(args.workdir, args.mpc_policy), device)

        actor = policy_actor(loaded.policy, world.normaliser, window_origin_for(world.observation), sample=False)

        def policy_proposal(images, states, size):
            rollout = imagine(world.model, images, states, size, actor, args.mpc_horizon,
                              cost_model, CostWeights(), stats=world.normaliser)
            return rollout.actions
        proposal = policy_proposal
    for optimizer in args.mpc_optimizer:
        mpc_config = MPCConfig(horizon=args.mpc_horizon, futures=args.mpc_futures, iterations=args.mpc_iterations,
                               lr=args.mpc_lr, optimizer=optimizer, aggregate=args.mpc_aggregate,
                               replan_every=args.mpc_replan_every, cuda_graph=getattr(args, "mpc_cuda_graph", True),
                               weights=CostWeights(uncertainty=args.mpc_uncertainty_weight,
                                                  speed=args.mpc_speed_weight))
        planner = Planner(world, cost_model, mpc_config)
        if args.mpc_uncertainty_weight > 0 and args.mpc_futures > 1:
            planner.fit_uncertainty(data, seed=0)
        rows.append((f"mpc-{optimizer}", MPCController(planner, context), config))
        if proposal is not None and optimizer == args.mpc_optimizer[0]:
            rows.append((f"mpc-{optimizer} + policy", MPCController(planner, context, proposal), config))
    return rows


def cmd_evaluate(args) -> int:
    import dataclasses

    from ppuu.app.cli_evaluate import _filename, closed_loop_setup, run_and_report
    from ppuu.planner.controller import make_controller, sim_config_for
    from ppuu.planner.report import distance_histograms, outcome_bars, training_curves
    from ppuu.planner.train import load_policy
    from ppuu.simulator.evaluate import controller_named
    from ppuu.world_model.runs import resolve_device

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.report):
        raise ValueError(f"--report {args.report!r}: use letters, digits, '_', '.' and '-' only")
    if not args.policy and not args.controllers and not args.mpc:
        raise ValueError("nothing to evaluate: give --policy RUN..., --mpc WORLD_MODEL and/or --controllers")
    scene, course, base = closed_loop_setup(args)
    device = resolve_device(args.device)
    entries = [(name, controller_named(name), base) for name in args.controllers]
    runs, labels = {}, {}
    for value in args.policy:
        path = resolve_run_file(args.workdir, value)
        loaded = load_policy(path, device)
        name = f"{loaded.method} ({policy_label(path)})"
        if name in runs:
            raise ValueError(f"--policy {value!r}: {name} is given twice")
        controller = make_controller(loaded, sample=args.sample, reanchor_every=args.reanchor_every)
        entries.append((name, controller, sim_config_for(loaded, dataclasses.replace(base))))
        runs[name], labels[name] = path.parent, policy_label(path)
    planners = mpc_entries(args, scene, base, device) if args.mpc else []
    entries += [(name, controller, config) for name, controller, config in planners]
    results = run_and_report(args, scene, course, base, entries, "Policies", args.report)
    for name, controller, _ in planners:
        if controller.decisions:
            per = [s / n for s, n in zip(controller.decisions, controller.deciding)]
            print(f"{name}: {len(controller.decisions)} decisions, {1e3 * np.mean(controller.decisions):.0f} ms per "
                  f"batched decision ({np.mean(controller.deciding):.0f} episodes), {1e3 * np.mean(per):.1f} ms per "
                  "episode-decision")
    out = Path(args.workdir) / "reports" / scene.meta.name
    tag = f"{args.split}-{args.traffic}"
    for name, controller, _ in planners:
        if controller.first is not None:
            from ppuu.planner.decision_figure import decision_figure

            decision, context = controller.first
            figure = decision_figure(decision, context, controller.planner.world,
                                     out / f"{args.report}-{tag}-{_filename(name)}-decision.png",
                                     title=f"{name}: the first decision of the first test episode")
            print(f"wrote {figure}")
    figures = [outcome_bars(results, out / f"{args.report}-{tag}-outcomes.png", f"outcomes ({course.name})"),
               distance_histograms(results, out / f"{args.report}-{tag}-distance.png", f"distance ({course.name})"),
               training_curves(runs, out / f"{args.report}-{tag}-training.png") if runs else None]
    for figure in figures:
        if figure is not None:
            print(f"wrote {figure}")
    if args.gifs:
        from ppuu.app.episode_video import record_episode

        by_name = {name: (controller, config) for name, controller, config in entries}
        for name in runs:
            table = results[name]
            table = table[table["seed"] == table["seed"].min()]
            arrived = table[table["outcome_name"] == "arrived"]
            best = (arrived.sort_values("proximity_cost").iloc[0] if len(arrived)
                    else table.sort_values("distance").iloc[-1])
            for label, row in (("best", best), ("worst", table.sort_values("distance").iloc[0])):
                controller, config = by_name[name]
                gif = out / f"{args.report}-{tag}-{_filename(labels[name])}-{label}.gif"
                record_episode(scene, config, controller, int(row["vehicle_id"]), gif, device=str(device),
                               title=f"{name} {label}")
                print(f"wrote {gif} (vehicle {int(row['vehicle_id'])}, {row['outcome_name']}, "
                      f"{row['distance']:.0f} m)")
    return 0
