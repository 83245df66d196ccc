"""``ppuu evaluate ...``: closed-loop evaluation in the simulator."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ppuu.app import cli_world_model
from ppuu.app.cli_data import add_workdir, resolve_scene
from ppuu.app.cli_reactive import add_reactive_arguments, reactive_config


def add_parser(groups) -> None:
    evaluate = groups.add_parser("evaluate", help="closed-loop evaluation in the simulator; world-model prediction error",
                                 description="Drive every episode of a split in the batched simulator, or score "
                                             "forward models' predictions on a split.")
    sub = evaluate.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    base = sub.add_parser(
        "baselines", help="the human (recorded actions) and no-action controllers on a split",
        description="Run the reference controllers on every episode of a split at once and report success "
                    "rate (%%), mean distance (m), failure rates and costs. 'human' replays the replaced vehicle's "
                    "own recorded actions (a fidelity check: it should arrive almost always); 'no_action' keeps "
                    "speed and heading.")
    base.add_argument("scene", nargs="?", help="scene name or folder (default: the most recent scene)")
    base.add_argument("--controllers", nargs="+", default=["human", "no_action"], choices=["human", "no_action"],
                      help="controllers to run (default: %(default)s)")
    base.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                      help="episodes of this split (default: %(default)s)")
    base.add_argument("--traffic", default="replay", choices=["replay", "reactive"],
                      help="other vehicles replay their recording, or follow it with IDM car-following "
                           "so they brake for the ego (default: %(default)s)")
    base.add_argument("--batch-size", type=int, default=None,
                      help="episodes simulated at once (default: the whole split)")
    base.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    add_reactive_arguments(base)
    add_workdir(base)
    base.set_defaults(func=cmd_baselines)
    cli_world_model.add_evaluate_parser(sub)


def cmd_baselines(args) -> int:
    from ppuu.data.scene import Scene
    from ppuu.simulator.evaluate import evaluate, markdown_summary, summarise
    from ppuu.simulator.sim import SimConfig

    folder = resolve_scene(args.workdir, args.scene)
    scene = Scene.load(folder)
    config = SimConfig(traffic=args.traffic, idm=reactive_config(args))
    split = None if args.split == "all" else args.split
    out = Path(args.workdir) / "reports" / scene.meta.name
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.controllers:
        start = time.perf_counter()
        table = evaluate(scene, name, split=split, config=config, device=args.device, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        results[name] = table
        csv = out / f"evaluate-{name}-{args.split}-{args.traffic}.csv"
        table.to_csv(csv, index=False)
        print(f"{name}: {len(table)} episodes in {seconds:.1f} s -> {csv}")
    summary = markdown_summary(results)
    print(f"\nscene {scene.meta.name}, split {args.split}, traffic {args.traffic}\n\n{summary}")
    md = out / f"baselines-{args.split}-{args.traffic}.md"
    md.write_text(f"# Baselines on {scene.meta.name} ({args.split}, {args.traffic})\n\n{summary}\n\n"
                  f"Simulator settings:\n\n```json\n{json.dumps(config.to_json(), indent=2)}\n```\n")
    (out / f"baselines-{args.split}-{args.traffic}.json").write_text(
        json.dumps({name: summarise(t) for name, t in results.items()}, indent=2))
    print(f"\nwrote {md}")
    return 0
