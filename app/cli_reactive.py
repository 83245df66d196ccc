"""Command-line flags of the reactive-traffic law (:mod:`ppuu.simulator.reactive`), for any command that
simulates: ``add_reactive_arguments(parser)`` defines them, ``reactive_config(args)`` reads them back."""

from __future__ import annotations

import argparse

from ppuu.simulator.reactive import IDMConfig


def add_reactive_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--reactive-*`` flags (used with ``--traffic reactive``) to ``parser``."""
    d = IDMConfig()
    group = parser.add_argument_group(
        "reactive traffic", "Recorded vehicles follow their recording until the ego, or a vehicle that has left its "
                            "recording, is in the way; then an IDM car-following law (gaps calibrated on the scene, or "
                            "given here) brakes them, and they return to their recording once the way is clear.")
    group.add_argument("--reactive-time-headway", type=float, default=None, metavar="S",
                       help="IDM time headway T in s (default: the scene's recorded time headways at "
                            "--reactive-percentile)")
    group.add_argument("--reactive-min-gap", type=float, default=None, metavar="M",
                       help="IDM standstill gap s0 in m (default: the scene's recorded standstill gaps at "
                            "--reactive-percentile)")
    group.add_argument("--reactive-percentile", type=float, default=d.calibration_percentile, metavar="P",
                       help="percentile of the recorded gaps that calibrates T and s0 (default: %(default)s)")
    group.add_argument("--reactive-max-braking", type=float, default=d.max_braking, metavar="A",
                       help="hardest deceleration of a reactive vehicle, m/s^2 (default: %(default)s)")
    group.add_argument("--reactive-return-time", type=float, default=d.return_time, metavar="S",
                       help="time constant of the return to the recording, s (default: %(default)s)")
    group.add_argument("--reactive-return-acceleration", type=float, default=d.return_acceleration, metavar="A",
                       help="bound on the return controller's correction, m/s^2 (default: %(default)s)")


def reactive_config(args: argparse.Namespace) -> IDMConfig:
    """The :class:`~ppuu.simulator.reactive.IDMConfig` of parsed ``--reactive-*`` flags."""
    return IDMConfig(time_headway=args.reactive_time_headway, min_gap=args.reactive_min_gap,
                     calibration_percentile=args.reactive_percentile, max_braking=args.reactive_max_braking,
                     return_time=args.reactive_return_time, return_acceleration=args.reactive_return_acceleration)
