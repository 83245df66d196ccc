"""Shared fixtures for the simulator tests: I-80- and US-101-shaped roads built in place
(no dependency on data files)."""

from __future__ import annotations

import pytest

from ppuu.data.scene import Ramp, SceneMeta
from ppuu.simulator.road import Road

LANE = 3.6576


def i80_meta() -> SceneMeta:
    w = 6 * LANE
    return SceneMeta(name="i80-test", site="i80", source="ngsim", lane_widths=[LANE] * 6, section_length=502.92,
                     ramps=[Ramp(lane=7, kind="on", x_start=0.0, x_end=213.0, y_left=-w, y_right=-w - LANE)])


def us101_meta() -> SceneMeta:
    w = 5 * LANE
    length = 640.08
    return SceneMeta(name="us101-test", site="us101", source="ngsim", lane_widths=[LANE] * 5, section_length=length,
                     ramps=[Ramp(lane=7, kind="on", x_start=0.0, x_end=130.0, y_left=-w - LANE, y_right=-w - 2 * LANE),
                            Ramp(lane=6, kind="auxiliary", x_start=0.0, x_end=length, y_left=-w, y_right=-w - LANE),
                            Ramp(lane=8, kind="off", x_start=540.0, x_end=length, y_left=-w - LANE,
                                 y_right=-w - 2 * LANE)])


@pytest.fixture(scope="session")
def i80_road() -> Road:
    return Road.from_meta(i80_meta())


@pytest.fixture(scope="session")
def us101_road() -> Road:
    return Road.from_meta(us101_meta())
