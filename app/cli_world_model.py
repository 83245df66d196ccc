"""``ppuu train world-model`` and ``ppuu evaluate world-model``: the forward model from the command line.

This is where the simulator meets the world model: the training windows are the
simulator's own observations of the recording (``ppuu.simulator.recording.RecordedObservations``),
rendered on the training device, handed to :mod:`ppuu.world_model.dataset`.

Under ``torchrun --nproc_per_node K -m ppuu train world-model ... --run-name NAME`` the
run is data-parallel (DDP): the batch is split over the K processes, rank 0 writes
(``--run-name``: torchrun's own parser would take ``--run`` for its ``--run-path``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ppuu.app.cli_data import add_workdir, resolve_scene


def add_parser(groups) -> None:
    """The ``train`` group (its ``world-model`` command)."""
    train = groups.add_parser("train", help="train models: the world model, driving policies",
                              description="Train learned components on a scene of the workspace.")
    sub = train.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser(
        "world-model", help="train the forward model (deterministic, or VAE + dropout) on a scene",
        description="Train the forward model on windows of 20 context frames + N predicted frames of every "
                    "training-split vehicle (observations rendered by the simulator on the fly, on the training "
                    "device). Writes WORKDIR/runs/RUN/{config.json,metrics.csv,checkpoint.pt,best.pt}; running "
                    "the same command again resumes from checkpoint.pt. Train --model deterministic first, then "
                    "--model vae --init RUNS/DET/checkpoint.pt (Henaff et al. 2019). Flags left out take the "
                    "--profile's "
                    "values.")
    p.add_argument("--scene", help="scene name or folder (default: the most recent scene)")
    add_workdir(p)
    p.add_argument("--profile", default="cpu", choices=["cpu", "reference"],
                   help="presets: 'cpu' (narrow layers 16/32/64, batch 16, 5 predicted steps, 3000 steps: "
                        "minutes on a laptop) or 'reference' (the paper's sizes: 64/128/256, batch 64, 20 steps, "
                        "200k steps; "
                        "a GPU) (default: %(default)s)")
    p.add_argument("--model", default="deterministic", choices=["deterministic", "vae"],
                   help="deterministic (no latent) or the VAE (default: %(default)s)")
    p.add_argument("--run", "--run-name", dest="run",
                   help="run name, the folder under WORKDIR/runs (default: SCENE-MODEL-PROFILE-sSEED); under torchrun "
                        "spell it --run-name (torchrun takes --run for its own --run-path)")
    p.add_argument("--steps", type=int, help="optimiser steps in total")
    p.add_argument("--batch-size", type=int, help="windows per step, over all processes")
    p.add_argument("--predicted-steps", type=int, help="N, autoregressive steps predicted and scored")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--beta", type=float, help="weight of the KL term (default 1e-6)")
    p.add_argument("--grad-clip", type=float, help="max gradient norm (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of data order, dropout, latents, weights "
                                                       "(default: %(default)s)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--init", help="deterministic checkpoint to warm-start the VAE from (weights copied by name "
                                  "and shape; its normalisation statistics are reused)")
    p.add_argument("--ego-model", default="learned", choices=["learned", "kinematic"],
                   help="'learned' (Henaff 2019): egocentric frames, the action conditions each step; 'kinematic' "
                        "(Sobal 2022): frames fixed at the last context pose, the ego moved by the kinematic model, "
                        "the network predicts the traffic (default: %(default)s)")
    p.add_argument("--ego-kinematics", action=argparse.BooleanOptionalAction, default=None,
                   help="learned ego model: advance the ego state with the exact kinematic model (the default) or, "
                        "with --no-ego-kinematics, learn it with a state head as the reference did")
    p.add_argument("--ego-conditioning", choices=["state", "none"], default=None,
                   help="kinematic ego model: the traffic step sees the ego's states and next kinematic state "
                        "('state', the default) or nothing of the ego ('none': one prediction serves every plan)")
    p.add_argument("--pixels-per-metre", type=float, default=DEFAULT_PPM,
                   help="raster resolution in px/m (default: %(default)s, the reference's 117 x 24 view; lower is "
                        "coarser and faster)")
    p.add_argument("--view-ahead", type=float, default=FIXED_AHEAD,
                   help="kinematic ego model: metres the fixed frame reaches ahead of the last context pose (the "
                        "ego travels up to about 53 m in 3 s on the default scene) (default: %(default)s)")
    p.add_argument("--view-behind", type=float, default=FIXED_BEHIND,
                   help="kinematic ego model: metres it reaches behind (default: %(default)s)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on for CUDA)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last convolutions (default: on for CUDA; no gain measured on CPU)")
    p.add_argument("--hidden-channels", type=int, nargs="+", help="conv widths (e.g. 64 128 256)")
    p.add_argument("--hidden-mlp", type=int, help="MLP width")
    p.add_argument("--latent-dim", type=int, help="latent size of the VAE")
    p.add_argument("--dropout", type=float, help="dropout probability")
    p.add_argument("--val-every", type=int, help="steps between validations on the val split (0 = never)")
    p.add_argument("--val-windows", type=int, help="validation windows")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, help="steps between metric rows")
    p.add_argument("--stats-windows", type=int, help="training windows sampled for the normalisation statistics")
    p.add_argument("--data-path", default="render", choices=["render", "cache"],
                   help="'render' observations on the fly on the device (default), or 'cache' every frame of the "
                        "split's vehicles once in a uint8 memmap under WORKDIR/cache (small scenes only: "
                        "about 15 GB for a 15-minute scene)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
    from ppuu.app import cli_policy

    cli_policy.add_train_parser(sub)


def add_evaluate_parser(sub) -> None:
    """``evaluate world-model`` (added to the existing ``evaluate`` group)."""
    p = sub.add_parser(
        "world-model", help="prediction error of forward models against horizon, spread, pictures of futures",
        description="Score forward models on fixed windows of a split (default test): image MSE, position and "
                    "speed error against horizon for the deterministic model and the VAE with posterior and prior "
                    "latents, against copy-the-last-frame and constant-velocity baselines; the spread across "
                    "latent samples and dropout masks; the effect of the action. Writes world-model.md, .json, "
                    "-error.png, -futures.png and -futures.gif to WORKDIR/reports/SCENE/.")
    p.add_argument("--scene", help="scene name or folder (default: the most recent scene)")
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint file, run folder or run name (WORKDIR/runs/NAME/checkpoint.pt)")
    p.add_argument("--deterministic", help="a deterministic model's checkpoint to score beside it")
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="split of the windows (default: %(default)s)")
    p.add_argument("--windows", type=int, default=256, help="windows scored (default: %(default)s)")
    p.add_argument("--horizon", type=int, default=20, help="predicted steps (default: %(default)s)")
    p.add_argument("--samples", type=int, default=8, help="latent samples / dropout masks for the spread "
                                                          "(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--report", default="world-model", help="file-name stem of the report (default: %(default)s)")
    add_workdir(p)
    p.set_defaults(func=cmd_evaluate)


DEFAULT_PPM = 1.625
"""px/m of the reference's raster (117 x 24 pixels = 72 x 14.8 m)."""
VIEW_LENGTH, VIEW_WIDTH = 72.0, 24 / DEFAULT_PPM
"""m, the egocentric view: +-36 m along, +-7.4 m across (SPEC §3)."""
FIXED_AHEAD, FIXED_BEHIND = 72.0, 24.0
"""m, default reach of the fixed frame ahead of and behind the last context pose: 3 s of travel at the
default scene's 95th-percentile speed (42 m) plus a safe distance ahead at that speed (about 22 m) fit."""


def observation_source(scene, device, context: int, ego_model: str = "learned", pixels_per_metre: float = DEFAULT_PPM,
                       ahead: float = FIXED_AHEAD, behind: float = FIXED_BEHIND):
    """The recorded windows a world model of ``ego_model`` trains on: egocentric 72 x 14.8 m views,
    or views fixed at the last of ``context`` frames reaching ``ahead`` / ``behind`` metres."""
    from ppuu.simulator.raster import RasterConfig
    from ppuu.simulator.recording import FixedFrame, RecordedObservations

    if ego_model == "kinematic":
        if ahead <= 0 or behind < 0:
            raise ValueError(f"--view-ahead {ahead} / --view-behind {behind}: expected positive metres")
        raster = RasterConfig.covering(ahead + behind, VIEW_WIDTH, pixels_per_metre)
        return RecordedObservations(scene, raster, device=device,
                                    frame=FixedFrame(anchor=context - 1, centre_ahead=(ahead - behind) / 2))
    return RecordedObservations(scene, RasterConfig.covering(VIEW_LENGTH, VIEW_WIDTH, pixels_per_metre), device=device)


def _train_config(args, scene_name: str):
    from ppuu.world_model.train import TrainConfig

    model = {k: v for k, v in (("hidden_channels", tuple(args.hidden_channels) if args.hidden_channels else None),
                               ("hidden_mlp", args.hidden_mlp), ("latent_dim", args.latent_dim),
                               ("dropout", args.dropout)) if v is not None}
    if args.ego_kinematics is not None:
        model["ego_kinematics"] = args.ego_kinematics
    if args.ego_model == "kinematic":
        if args.ego_kinematics is False:
            raise ValueError("--ego-model kinematic moves the ego with the kinematic model: drop --no-ego-kinematics")
        model.update(ego_model="kinematic", ego_kinematics=True, static_channels=(0, 2),
                     ego_conditioning=args.ego_conditioning or "state")
    elif args.ego_conditioning is not None:
        raise ValueError("--ego-conditioning is for --ego-model kinematic")
    return TrainConfig.for_profile(
        args.profile, args.model, scene=scene_name, steps=args.steps, batch_size=args.batch_size,
        predicted_steps=args.predicted_steps, lr=args.lr, beta=args.beta, grad_clip=args.grad_clip, seed=args.seed,
        device=args.device, amp=args.amp, channels_last=args.channels_last, compile=args.compile or None,
        init=args.init, val_every=args.val_every, val_windows=args.val_windows,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, stats_windows=args.stats_windows,
        model=model)


def cmd_train(args) -> int:
    from ppuu.data.scene import Scene
    from ppuu.world_model.dataset import MemmapCache, WindowDataset
    from ppuu.world_model.runs import resolve_device
    from ppuu.world_model.train import TrainingDiverged, train

    folder = resolve_scene(args.workdir, args.scene)
    scene = Scene.load(folder)
    config = _train_config(args, scene.meta.name)
    if config.init and not Path(config.init).is_file():
        raise FileNotFoundError(f"--init: no checkpoint at {config.init}")
    run = args.run or f"{scene.meta.name}-{config.model_type}-{config.profile}-s{config.seed}"
    run_dir = Path(args.workdir) / "runs" / run
    device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
    source = observation_source(scene, device, config.model.context, args.ego_model, args.pixels_per_metre,
                                args.view_ahead, args.view_behind)
    config.model.image_height, config.model.image_width = source.raster.length_px, source.raster.width_px
    config.observation = source.settings()
    train_ids, val_ids = scene.split_vehicle_ids("train"), scene.split_vehicle_ids("val")
    train_source = val_source = source
    if args.data_path == "cache":
        cache = Path(args.workdir) / "cache" / scene.meta.name
        train_source = MemmapCache(source, train_ids, cache / "frames-train", device=device,
                                   progress=not args.no_progress)
        val_source = MemmapCache(source, val_ids, cache / "frames-val", device=device)
    T, N = config.model.context, config.predicted_steps
    train_data = WindowDataset(train_source, train_ids, T, N)
    val_data = WindowDataset(val_source, val_ids, T, N) if val_ids else None
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        print(f"scene {scene.meta.name}: {len(train_data)} training windows ({len(train_ids)} vehicles), "
              f"{len(val_data) if val_data else 0} validation windows; run folder {run_dir}")
    try:
        summary = train(config, train_data, val_data, run_dir, progress=not args.no_progress)
    except TrainingDiverged as exc:
        print(f"ppuu: error: {exc}")
        return 3
    if main:
        m = summary["metrics"]
        print(f"step {summary['step']}: loss {m.get('loss', float('nan')):.5g} (image MSE "
              f"{m.get('image_mse', float('nan')):.5g}, state MSE {m.get('state_mse', float('nan')):.5g}); "
              f"{summary['nan_skips']} skipped steps; {summary['seconds']:.0f} s on {summary['device']}")
        if summary["val"]:
            print("validation: " + ", ".join(f"{k} {v:.5g}" for k, v in summary["val"].items()))
        print(f"wrote {summary['checkpoint']} and {run_dir / 'metrics.csv'}")
    return 0


def resolve_checkpoint(workdir: Path, value: str) -> Path:
    """A checkpoint file from a path, a run folder or a run name."""
    path = Path(value)
    for candidate in (path, path / "checkpoint.pt", Path(workdir) / "runs" / value / "checkpoint.pt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no checkpoint {value!r} (a .pt file, a run folder, or a run name under "
                            f"{Path(workdir) / 'runs'})")


def cmd_evaluate(args) -> int:
    import torch

    from ppuu.data.scene import Scene
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.world_model.dataset import WindowDataset
    from ppuu.world_model.evaluate import EvalConfig, evaluate
    from ppuu.world_model.runs import resolve_device
    from ppuu.world_model.train import load_model

    folder = resolve_scene(args.workdir, args.scene)
    scene = Scene.load(folder)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    models = {}
    if args.deterministic:
        models["deterministic"] = load_model(resolve_checkpoint(args.workdir, args.deterministic), device)
    main = load_model(resolve_checkpoint(args.workdir, args.checkpoint), device)
    models["vae" if main.stochastic else ("deterministic" if "deterministic" not in models else "model")] = main
    config = EvalConfig(split=args.split, windows=args.windows, horizon=args.horizon, samples=args.samples,
                        batch_size=args.batch_size, seed=args.seed)
    ids = scene.split_vehicle_ids(args.split)
    source = RecordedObservations.from_settings(scene, main.observation, device=device)
    for loaded in models.values():
        for name in ("raster", "frame"):
            loaded.check_observation(name, source.settings()[name])
    data = WindowDataset(source, ids, main.model_config.context, config.horizon)
    out = Path(args.workdir) / "reports" / scene.meta.name
    report = evaluate(models, data, out, config, title=f"{scene.meta.name} ({args.split})",
                      progress=True, truth=source.render_states, stem=args.report)
    print(report.markdown.split("\nEvaluation settings")[0])
    # Named after the report like its other files, so a second report beside it does not overwrite it.
    models_json = out / f"{args.report}-models.json"
    models_json.write_text(json.dumps(
        {name: {"model_config": m.model_config.to_json(), "step": m.step} for name, m in models.items()}, indent=2))
    for path in [*report.files.values(), models_json]:
        print(f"wrote {path}")
    return 0
