"""The ``ppuu`` command line: one entry point, one subcommand group per job.

    ppuu demo                               the whole job end to end, one report
    ppuu data {generate,import,info,list}   tracked-vehicle scenes in the workspace
    ppuu train world-model                  train the forward model (deterministic or VAE)
    ppuu evaluate baselines                 closed-loop evaluation in the simulator
    ppuu evaluate world-model               prediction error of forward models, pictures of futures
    ppuu train policy, evaluate policy      policies learned through the world model, MPC, the results table
    ppuu drive                              the interactive driving view (window or headless recording)

Every command takes ``--workdir`` (default ``./ppuu-work``) and ``--threads`` (torch CPU threads;
default ``PPUU_THREADS``, else half the cores) and prints what it wrote.
"""

from __future__ import annotations

import argparse
import sys

from ppuu.app import cli_data, cli_demo, cli_drive, cli_evaluate, cli_policy, cli_world_model
from ppuu.data.errors import DataFormatError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppuu",
        description="Prediction and policy learning under uncertainty: highway traffic scenes from tracked-vehicle "
                    "data (NGSIM or SUMO-generated), a batched simulator, a stochastic world model and planners.",
        epilog="Run `ppuu COMMAND --help` for the flags of each command.",
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    cli_demo.add_parser(groups)
    cli_data.add_parser(groups)
    cli_world_model.add_parser(groups)
    cli_evaluate.add_parser(groups)
    cli_drive.add_parser(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from ppuu.world_model.runs import configure_threads   # imports torch: not for --help

        configure_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except (DataFormatError, ValueError, FileNotFoundError) as exc:
        print(f"ppuu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppuu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
