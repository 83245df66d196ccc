"""``ppuu evaluate ...``: closed-loop evaluation in the simulator."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

from ppuu.app import cli_world_model
from ppuu.app.cli_data import add_workdir, resolve_scene
from ppuu.app.cli_reactive import add_reactive_arguments, reactive_config
from ppuu.simulator.episodes import COURSES


def add_parser(groups) -> None:
    evaluate = groups.add_parser("evaluate", help="closed-loop evaluation in the simulator; world-model prediction error",
                                 description="Drive every episode of a split in the batched simulator, or score "
                                             "forward models' predictions on a split.")
    sub = evaluate.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    base = sub.add_parser(
        "baselines", help="the human (recorded actions) and no-action controllers on a split",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the reference controllers on every episode of a split at once, on a course, and\n"
                    "report success rate (%), mean distance (m, from the end of the 2 s context), failure\n"
                    "rates, comfort (mean |acceleration| m/s^2, mean |jerk| m/s^3) and costs, as mean ± std\n"
                    "over seeds. 'human' replays the replaced vehicle's own recorded actions (a fidelity\n"
                    "check: it should arrive almost always); 'no_action' keeps speed and heading.\n\n"
                    "Courses (where episodes start and arrive; results compare only on the same course):\n"
                    + "".join(f"  {c.name:14s} {c.description}\n" for c in COURSES.values())
                    + "  START:ARRIVAL  explicit lines in metres, e.g. 72:323\n"
                    "Default: i80-reference on I-80 scenes (comparable with the paper's table), full elsewhere.\n\n"
                    "Writes WORKDIR/reports/SCENE/: a CSV per controller (one row per episode and seed),\n"
                    "a Markdown and a JSON summary, each naming its course.")
    base.add_argument("scene", nargs="?", help="scene name or folder (default: the most recent scene)")
    base.add_argument("--controllers", nargs="+", default=["human", "no_action"], type=controller_name,
                      metavar="NAME", help=CONTROLLERS_HELP + " (default: %(default)s)")
    add_closed_loop_arguments(base)
    base.set_defaults(func=cmd_baselines)
    cli_world_model.add_evaluate_parser(sub)
    from ppuu.app import cli_policy

    cli_policy.add_evaluate_parser(sub)
    add_compare_parser(sub)


def add_compare_parser(sub) -> None:
    compare = sub.add_parser(
        "compare", help="paired comparison of two controllers on the same episodes (exact McNemar and sign tests)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare two controllers episode by episode, from the per-episode CSVs that 'ppuu\n"
                    "evaluate baselines|policy' wrote (WORKDIR/reports/SCENE/*.csv) for the same episodes\n"
                    "(same scene, split, course, --episodes and --seeds). Counts the episodes only A arrives\n"
                    "in and those only B arrives in, and gives McNemar's exact two-sided p-value: how often\n"
                    "chance alone would split them at least this unevenly. The distances driven are compared\n"
                    "the same way (the sign test over the episodes in which one drove further than the other;\n"
                    "episodes both arrive in left out): where both rarely arrive, distance still tells them\n"
                    "apart. Several --pair (e.g. one per seed or scene) are also pooled into one test.\n\n"
                    "A small p says these two controllers arrive (or drive) differently on these episodes; it\n"
                    "does not say one training recipe beats another: two runs of the same recipe can differ\n"
                    "as much (compare several training runs for that).\n\n"
                    "Example:\n"
                    "  ppuu evaluate policy SCENE --policy my-mpur my-vg     # writes one CSV per controller\n"
                    "  ppuu evaluate compare --names mpur vg \\\n"
                    "      --pair SCENE/policies-mpur_my-mpur_-test-replay-i80-reference.csv \\\n"
                    "             SCENE/policies-vg_my-vg_-test-replay-i80-reference.csv")
    compare.add_argument("--pair", nargs=2, action="append", required=True, metavar=("A.csv", "B.csv"),
                         help="two evaluation tables of the same episodes, as paths or relative to WORKDIR/reports; "
                              "repeat for more seeds or scenes")
    compare.add_argument("--names", nargs=2, default=["A", "B"], metavar=("A", "B"),
                         help="what to call the two sides in the report (default: A B)")
    compare.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                         help="one label per --pair, e.g. the seeds (default: pair 1, pair 2, ...)")
    add_workdir(compare)
    compare.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    import pandas as pd

    from ppuu.data.report import markdown_table
    from ppuu.simulator.paired import compare_pair, markdown_rows, read_evaluation

    labels = args.labels or [f"pair {i + 1}" for i in range(len(args.pair))]
    if len(labels) != len(args.pair):
        raise ValueError(f"--labels gave {len(labels)} labels for {len(args.pair)} --pair")
    pairs = [tuple(_evaluation_path(args.workdir, value) for value in pair) for pair in args.pair]
    results = [compare_pair(read_evaluation(a), read_evaluation(b), str(a), str(b)) for a, b in pairs]
    name_a, name_b = args.names
    for label, (a, b) in zip(labels, pairs):
        print(f"{label}: {name_a} = {a}\n{' ' * len(label)}  {name_b} = {b}")
    table = pd.DataFrame(markdown_rows(labels, results, name_a, name_b))
    print(f"\n{name_a} against {name_b} on the same episodes: success, with McNemar's exact two-sided test of "
          "the episodes only one of them arrives in, and distance driven, with the exact two-sided sign test of "
          f"the episodes one of them drives further in\n\n{markdown_table(table)}")
    return 0


def _evaluation_path(workdir: Path, value: str) -> Path:
    """An evaluation CSV given on the command line: the path as given when it is a file, else the same
    path under WORKDIR/reports (where ``ppuu evaluate`` writes them); as given when neither exists, so
    that the error names what was typed."""
    path = Path(value)
    under_reports = Path(workdir) / "reports" / path
    return under_reports if not path.is_file() and not path.is_absolute() and under_reports.is_file() else path


CONTROLLERS_HELP = ("reference controllers: human (the recorded actions), no_action (keep speed and heading), "
                    "constant:ACC,CURV (a fixed acceleration m/s^2 and curvature 1/m, e.g. constant:0,-0.001)")


def controller_name(value: str) -> str:
    """argparse type of ``--controllers``: a built-in controller's name, checked
    (:func:`~ppuu.simulator.evaluate.controller_named`)."""
    from ppuu.simulator.evaluate import controller_named

    try:
        controller_named(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def add_closed_loop_arguments(p) -> None:
    """The flags of every closed-loop evaluation: split, course, seeds, traffic, batch, device, workdir."""
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="episodes of this split (default: %(default)s)")
    p.add_argument("--course", default=None, metavar="NAME|START:ARRIVAL",
                   help=f"the course: {', '.join(COURSES)} or START:ARRIVAL in metres (default: the scene "
                        "site's, i80-reference on I-80, else full)")
    p.add_argument("--episodes", type=int, default=None, metavar="N",
                   help="drive only N episodes, evenly spaced over the split (the same ones for every controller; "
                        "default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
                   help="run every controller once per seed and report mean ± std (default: %(default)s)")
    p.add_argument("--traffic", default="replay", choices=["replay", "reactive"],
                   help="other vehicles replay their recording, or keep to it but brake for what is not in it "
                        "(default: %(default)s)")
    add_reactive_arguments(p)
    p.add_argument("--batch-size", type=int, default=None,
                   help="episodes simulated at once (default: the whole split)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    add_workdir(p)


def cmd_baselines(args) -> int:
    from ppuu.simulator.evaluate import controller_named

    scene, course, base = closed_loop_setup(args)
    entries = [(name, controller_named(name), base) for name in args.controllers]
    run_and_report(args, scene, course, base, entries, "Baselines", "baselines")
    return 0


def closed_loop_setup(args):
    """(scene, course, base SimConfig) of a closed-loop command's flags."""
    from ppuu.data.scene import Scene
    from ppuu.simulator.episodes import get_course
    from ppuu.simulator.sim import SimConfig

    scene = Scene.load(resolve_scene(args.workdir, args.scene))
    course = get_course(args.course, scene.meta)
    return scene, course, SimConfig(traffic=args.traffic, course=course, idm=reactive_config(args))


def run_and_report(args, scene, course, base, entries, what: str, prefix: str) -> dict:
    """Drive every episode of the split with each controller and seed; write the tables and summaries.

    Args:
        entries: (name, controller, SimConfig) per controller (each may need its own simulator settings).
        what, prefix: the report's title word and file-name prefix.

    Returns:
        name -> evaluation table (every seed), as also written to WORKDIR/reports/SCENE/.
    """
    import pandas as pd

    from ppuu.simulator.episodes import CourseWarning, course_table, episode_vehicles
    from ppuu.simulator.evaluate import evaluate, markdown_summary, summarise

    split = None if args.split == "all" else args.split
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CourseWarning)
        table = course_table(scene, course, base.context_steps)
        episodes = len(episode_vehicles(scene, split, course, base.context_steps, table=table))
        if args.episodes is not None:
            episodes = min(episodes, args.episodes)
        for warning in caught:
            print(f"ppuu: warning: {warning.message}", file=sys.stderr)
        print(f"scene {scene.meta.name}, split {args.split}, traffic {args.traffic}, seeds "
              f"{' '.join(map(str, args.seeds))}\ncourse {course}: {course.description}; {episodes} episodes; "
              f"the tracks reach x = {table['x_last'].max():.1f} m\n")
        out = Path(args.workdir) / "reports" / scene.meta.name
        out.mkdir(parents=True, exist_ok=True)
        tag = f"{args.split}-{args.traffic}-{_filename(course.name)}"
        results, seconds, configs = {}, {}, {}
        for name, controller, config in entries:
            tables, spent = [], 0.0
            for seed in args.seeds:
                start = time.perf_counter()
                tables.append(evaluate(scene, controller, split=split, config=config, device=args.device,
                                       batch_size=args.batch_size, seed=seed, episodes=args.episodes))
                spent += time.perf_counter() - start
                print(f"{name}, seed {seed}: {len(tables[-1])} episodes in {time.perf_counter() - start:.1f} s")
            results[name], seconds[name], configs[name] = pd.concat(tables, ignore_index=True), spent, config
            csv = out / f"{prefix}-{_filename(name)}-{tag}.csv"      # the report's own: never another's
            results[name].to_csv(csv, index=False)
            print(f"  -> {csv}")
    summary = markdown_summary(results)
    spread = "mean ± std over seeds " + ", ".join(map(str, args.seeds)) if len(args.seeds) > 1 else \
        f"seed {args.seeds[0]}"
    title = f"{what} on {scene.meta.name} ({args.split}, {args.traffic}, course {course})"
    print(f"\n{title}; {spread}\n\n{summary}")
    md = out / f"{prefix}-{tag}.md"
    settings = {name: config.to_json() for name, config in configs.items()}
    md.write_text(f"# {title}\n\nCourse {course}: {course.description}. Distance counts from the end of the "
                  f"context; {spread}.\n\n{summary}\n\n"
                  f"Simulator settings:\n\n```json\n{json.dumps(base.to_json(), indent=2)}\n```\n")
    report = {"scene": scene.meta.name, "split": args.split, "traffic": args.traffic, "course": course.to_json(),
              "seeds": list(args.seeds), "results": {name: summarise(t) for name, t in results.items()},
              "seconds": seconds, "sim_config": base.to_json(), "sim_configs": settings}
    (out / f"{prefix}-{tag}.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {md}")
    return results


def _filename(name: str) -> str:
    """A course name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
