"""``ppuu demo``: the project's main recipe end to end, resumable, with one report at the end."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppuu.app.cli_data import add_workdir


def add_parser(groups) -> None:
    from ppuu.app.demo import PROFILES, STAGE_HELP, STAGES

    profiles = "; ".join(f"'{p.name}': {p.description}" for p in PROFILES.values())
    p = groups.add_parser(
        "demo", help="the whole job: scene, world model, IL and MPUR policies, MPC, evaluation, one report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the project's main recipe end to end, stage by stage, each one an ordinary ppuu command "
                    "(printed as it starts):\n\n" + "\n".join(f"  {i}. {s:<12} {STAGE_HELP[s]}" for i, s in
                                                            enumerate(STAGES, 1)) +
                    "\n\nThe report (WORKDIR/reports/demo-PROFILE-sSEED/README.md) holds the results table, figures, "
                    "the GIF,\nevery command and the runs' configs. Interrupted and run again, the demo resumes: "
                    "finished stages\nare skipped and a training stage continues from its checkpoint. A GPU is used "
                    "when there is one.")
    p.add_argument("--profile", default="quick", choices=sorted(PROFILES),
                   help=f"how big each stage is (default: %(default)s). {profiles}")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene, the models and the evaluation "
                                                       "(default: %(default)s)")
    p.add_argument("--scene", help="use this existing scene instead of generating one")
    p.add_argument("--restart", action="store_true",
                   help="forget which stages finished and run them all again (training runs still resume from "
                        "their checkpoints; delete WORKDIR/runs/demo-* to start those over)")
    add_workdir(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    import sys

    from ppuu.app.demo import PROFILES, Demo, StageFailed, print_summary

    demo = Demo(Path(args.workdir), PROFILES[args.profile], seed=args.seed, threads=args.threads, scene=args.scene)
    if args.restart and demo.state_file.is_file():
        demo.state_file.unlink()
    try:
        report = demo.run_all()
    except StageFailed as exc:
        print(f"ppuu: error: {exc}\n(fix the cause and run the same command again: finished stages are kept)",
              file=sys.stderr)
        return 1
    print_summary(demo, report)
    return 0
