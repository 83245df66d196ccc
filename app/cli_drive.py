"""``ppuu drive``: the interactive driving view (a pygame window, or headless with a recording).

Watch a recorded episode, drive the ego with the arrow keys, hand the wheel to a trained policy
or to the MPC planner, and see what the world model predicts and what the costs say. The pieces:
:mod:`ppuu.app.drive_session` (simulation and modes), :mod:`ppuu.app.drive_model` (the model's
futures), :mod:`ppuu.app.drive_view` (the picture), :mod:`ppuu.app.drive_app` (the loop),
:mod:`ppuu.app.drive_record` (GIF / MP4).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppuu.app.cli_data import add_workdir, resolve_scene


def add_parser(groups) -> None:
    p = groups.add_parser(
        "drive", help="the interactive driving view: watch, drive, or hand the wheel to a policy or the planner",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A window on one episode at a time: the road around the ego, the whole section, the ego's\n"
                    "observation channel by channel, the costs over the last seconds, and (with a world model)\n"
                    "futures sampled from it. Modes, switched with keys 1-4: replay (the ego follows its\n"
                    "recorded actions), keyboard (arrow keys), policy (--policy), mpc (--mpc). Press h for the\n"
                    "keys. --headless runs without a window until the episode ends (with --record: a video).")
    p.add_argument("scene", nargs="?", help="scene name or folder (default: the most recent scene)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="episodes of this split (default: %(default)s)")
    p.add_argument("--episode", type=int, default=0, help="index of the first episode in the split (default: 0)")
    p.add_argument("--course", default=None, metavar="NAME|START:ARRIVAL",
                   help="the course (default: the scene site's, i80-reference on I-80)")
    p.add_argument("--traffic", default="replay", choices=["replay", "reactive"],
                   help="other vehicles replay their recording or brake for the ego (default: %(default)s; key t)")
    p.add_argument("--mode", default=None, choices=["replay", "keyboard", "policy", "mpc"],
                   help="the starting driver (default: mpc with --mpc, else policy with --policy, else keyboard; "
                        "headless: replay unless a policy or planner is given)")
    p.add_argument("--policy", metavar="RUN", help="a policy checkpoint: .pt file, run folder or run name")
    p.add_argument("--world-model", metavar="RUN",
                   help="the world model whose futures are drawn (default: the policy's, else the planner's)")
    p.add_argument("--futures", type=int, default=4, help="futures sampled from the world model (default: 4)")
    p.add_argument("--futures-horizon", type=int, default=20, help="steps of each future (default: 20 = 2 s)")
    p.add_argument("--futures-every", type=int, default=5, help="steps between samplings (default: 5)")
    p.add_argument("--no-futures", action="store_true", help="do not sample futures even with a world model")
    mpc = p.add_argument_group("the planner", "MPC by back-propagation through a world model (as in "
                               "`ppuu evaluate policy --mpc`; lighter defaults, for a live view)")
    mpc.add_argument("--mpc", metavar="WORLD_MODEL", help="plan with this world-model checkpoint")
    mpc.add_argument("--mpc-policy", metavar="RUN", help="warm-start every decision from this policy's proposal")
    mpc.add_argument("--mpc-optimizer", default="adam", choices=["adam", "lbfgs", "cem"],
                     help="optimiser (default: %(default)s)")
    mpc.add_argument("--mpc-horizon", type=int, default=15, help="planned steps (default: %(default)s)")
    mpc.add_argument("--mpc-futures", type=int, default=2, help="sampled futures (default: %(default)s)")
    mpc.add_argument("--mpc-iterations", type=int, default=2, help="iterations per decision (default: %(default)s)")
    mpc.add_argument("--mpc-lr", type=float, default=0.1, help="Adam's learning rate (default: %(default)s)")
    mpc.add_argument("--mpc-aggregate", default="mean", choices=["mean", "worst"],
                     help="cost over the futures (default: %(default)s)")
    mpc.add_argument("--mpc-replan-every", type=int, default=3, help="steps between decisions (default: %(default)s)")
    mpc.add_argument("--mpc-uncertainty-weight", type=float, default=0.0,
                     help="weight of the uncertainty cost (default: %(default)s: off, no start-up fit)")
    mpc.add_argument("--mpc-road-costs", default="predicted", choices=["predicted", "context"],
                     help="learned-ego world models: lane and off-road costs from the predicted frames or the last "
                          "real context frame (see ppuu train policy --road-costs) (default: %(default)s)")
    mpc.add_argument("--mpc-speed-weight", type=float, default=0.5,
                     help="weight of speed keeping (default: %(default)s; see ppuu train policy --speed-weight)")
    view = p.add_argument_group("the view")
    view.add_argument("--ghost", action="store_true", help="show the ghost of the recorded vehicle (key g)")
    view.add_argument("--speed", type=float, default=1.0, help="simulated s per real s (default: 1; keys + -)")
    view.add_argument("--fps", type=float, default=30.0, help="frames per second of the window (default: 30)")
    view.add_argument("--zoom", type=float, default=9.0, help="camera pixels per metre (default: 9; keys z x)")
    view.add_argument("--width", type=int, default=1280, help="window width in pixels (default: 1280)")
    view.add_argument("--headless", action="store_true", help="no window: draw one frame per step until the "
                                                               "episode ends (servers, tests, recordings)")
    view.add_argument("--record", type=Path, metavar="FILE", help="write the frames to a .gif or .mp4 (mp4: "
                                                                  "pip install 'ppuu[video]')")
    view.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu: one episode runs faster there)")
    add_workdir(p)
    p.set_defaults(func=cmd_drive)


def build_session(args):
    """The DriveSession of the flags: the scene, the drivers (policy, MPC), the world model's futures, the mode."""
    import dataclasses

    from ppuu.app.cli_policy import cost_model_for, mpc_entries, resolve_run_file
    from ppuu.app.drive_model import ModelFutures
    from ppuu.app.drive_session import DriveSession, merge_configs
    from ppuu.data.scene import Scene
    from ppuu.planner.controller import make_controller, sim_config_for
    from ppuu.planner.train import load_policy
    from ppuu.simulator.episodes import get_course
    from ppuu.simulator.recording import RecordedObservations
    from ppuu.simulator.sim import SimConfig
    from ppuu.world_model.train import load_model

    scene = Scene.load(resolve_scene(args.workdir, args.scene))
    base = SimConfig(traffic=args.traffic, course=get_course(args.course, scene.meta))
    controllers, configs = {}, []
    policy = None
    if args.policy:
        policy = load_policy(resolve_run_file(args.workdir, args.policy), args.device)
        controllers["policy"] = make_controller(policy)
        configs.append(sim_config_for(policy, dataclasses.replace(base)))
    if args.mpc:
        planner_args = argparse.Namespace(**{**vars(args), "mpc_optimizer": [args.mpc_optimizer]})
        rows = mpc_entries(planner_args, scene, base, args.device)
        name, controller, config = rows[-1]            # with --mpc-policy: the policy-warm-started row
        controllers["mpc"] = controller
        configs.append(config)
    futures = None
    world_path = args.world_model or (policy_world_model(args.workdir, policy) if policy is not None else None) \
        or args.mpc
    if world_path and not args.no_futures:
        world = load_model(resolve_run_file(args.workdir, world_path), args.device)
        source = RecordedObservations.from_settings(scene, world.observation, device=args.device)
        futures = ModelFutures(world, cost_model_for(world, source.raster, source.cost_config), policy,
                               futures=args.futures, horizon=args.futures_horizon,
                               seed=0 if args.headless else None)       # a window samples on a worker thread
        history, keep = futures.needs()
        configs.append(dataclasses.replace(base, history=history, context_steps=max(base.context_steps, history),
                                           keep_traffic=keep,
                                           raster=base.raster if keep else source.raster))
    config = merge_configs(base, configs)
    mode = args.mode or ("mpc" if args.mpc else "policy" if args.policy else
                         "replay" if args.headless else "keyboard")
    split = None if args.split == "all" else args.split
    session = DriveSession(scene, config, split=split, episode=args.episode, controllers=controllers, mode=mode,
                           futures=futures, futures_every=args.futures_every, futures_async=not args.headless,
                           device=args.device)
    return session


def policy_world_model(workdir: Path, policy) -> str | None:
    """The world-model checkpoint a policy was trained on, if it can still be found: the path it was trained
    with, or the run of that name under WORKDIR/runs."""
    saved = getattr(policy.train_config, "world_model", None)
    if not saved:
        return None
    for candidate in (Path(saved), Path(workdir) / "runs" / Path(saved).parent.name / Path(saved).name):
        if candidate.is_file():
            return str(candidate)
    return None


def cmd_drive(args) -> int:
    import os

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if args.headless:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from ppuu.app.drive_app import DriveApp
    from ppuu.app.drive_record import VideoRecorder
    from ppuu.app.drive_view import DriveView

    for flag, value in (("--speed", args.speed), ("--fps", args.fps), ("--zoom", args.zoom),
                        ("--futures", args.futures), ("--futures-horizon", args.futures_horizon),
                        ("--futures-every", args.futures_every)):
        if not value > 0:
            raise ValueError(f"{flag} {value}: expected a positive number")
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames {args.frames}: expected at least 1")
    if args.record is not None:
        VideoRecorder.check(args.record)                  # a bad file name fails before any loading
    session = build_session(args)
    recorder = None
    if args.record is not None:                           # headless: one frame per simulator step
        recorder = VideoRecorder(args.record, 1.0 / session.sim.dt if args.headless else args.fps)
    view = DriveView(session, width=args.width, pixels_per_metre=args.zoom)
    view.show_ghost = args.ghost
    app = DriveApp(session, view, headless=args.headless, fps=args.fps, speed=args.speed, recorder=recorder)
    print(f"scene {session.scene.meta.name}, split {args.split}: {len(session.episodes)} episodes; "
          f"mode {session.mode}, {session.traffic} traffic" + ("" if args.headless else "; press h for the keys"))
    try:
        frames = app.run(args.frames)
    finally:
        written = recorder.close() if recorder is not None else None
    h = session.hud()
    print(f"{frames} frames; vehicle {h['vehicle']}: {h['outcome']} after {h['time']:.1f} s, {h['distance']:.0f} m")
    if frames and not args.headless and app.wall_seconds > 0:
        print(f"{frames / app.wall_seconds:.1f} frames per second shown (target {args.fps:g})")
    if frames and app.draw_seconds + app.step_seconds > 0:
        print(f"{frames / (app.draw_seconds + app.step_seconds):.1f} frames per second of work "
              f"(simulation {1e3 * app.step_seconds / frames:.1f} ms, drawing {1e3 * app.draw_seconds / frames:.1f} ms "
              "per frame)")
    if written is not None:
        print(f"wrote {written} ({recorder.frames} frames, {recorder.shape[1]}x{recorder.shape[0]})")
    return 0
