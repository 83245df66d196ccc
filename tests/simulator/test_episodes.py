"""Courses and episode selection: names and numbers, where episodes start, fit to the tracks, real lane-1 data."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from ppuu.simulator.episodes import (ARRIVED, COURSES, Course, CourseError, CourseWarning, course_table,
                                     episode_vehicles, get_course)
from ppuu.simulator.evaluate import evaluate
from ppuu.simulator.sim import BatchedSimulator, SimConfig
from tests.shared_data import shared_data_dir
from tests.simulator.conftest import i80_meta, us101_meta


@pytest.fixture(scope="module")
def real_lane1():
    """The real NGSIM I-80 lane-1 file imported on the I-80 layout (about 1 s)."""
    from ppuu.data.pipeline import import_ngsim_scene

    return import_ngsim_scene([shared_data_dir() / "ngsim-i80-lane1" / "i80-lane1-original.txt.gz"], site="i80")


def test_named_courses_and_site_defaults():
    i80, us101 = i80_meta(), us101_meta()
    reference = get_course(None, i80)
    assert reference.name == "i80-reference" and (reference.start_x, reference.arrival_x) == (72.0, 323.0)
    full = get_course(None, us101)
    assert full.name == "full" and full.start_x is None
    assert full.arrival_x == pytest.approx(us101.section_length - 36.0)
    assert get_course("full", i80).arrival_x == pytest.approx(i80.section_length - 36.0)
    explicit = get_course(" 50 : 300.5", i80)
    assert (explicit.start_x, explicit.arrival_x) == (50.0, 300.5) and "50" in explicit.name
    assert get_course(COURSES["i80-reference"], us101) is COURSES["i80-reference"]
    assert "72 m -> 323 m" in str(reference)


@pytest.mark.parametrize("bad", ["nowhere", "72-323", "a:b", "300:72", "72:nan"])
def test_bad_courses_are_clear_errors(bad):
    with pytest.raises(CourseError, match="course"):
        get_course(bad, i80_meta())


def test_full_course_selects_what_the_section_end_rule_selected(small_scene):
    """``full`` is the old rule: usable, more than the context, reaches section end - 36 m, not there yet."""
    C = 20
    arrival = small_scene.meta.section_length - 36.0
    t = small_scene.trajectories
    per = t.groupby("vehicle_id").agg(frames=("frame", "size"), x_last=("x", "last"))
    x_context = t[t.groupby("vehicle_id").cumcount() == C - 1].set_index("vehicle_id")["x"].reindex(per.index)
    usable = small_scene.vehicles.set_index("vehicle_id")["usable_as_ego"].reindex(per.index)
    expected = per.index[(usable & (per["frames"] > C) & (per["x_last"] >= arrival) & (x_context < arrival))]
    got = episode_vehicles(small_scene, None, "full", C)
    np.testing.assert_array_equal(got, np.sort(expected.to_numpy()))


def test_episodes_start_where_the_recording_reaches_the_start_line(small_scene):
    sim = BatchedSimulator(small_scene, SimConfig(course="i80-reference"), device="cpu")
    ids = sim.episode_vehicles(None)
    assert len(ids) >= 30
    sim.reset(ids)
    t = small_scene.trajectories.set_index(["vehicle_id", "frame"])["x"]
    first = sim.first_frame.numpy()
    x_at_start = t.loc[list(zip(ids, first))].to_numpy()
    x_before = t.reindex(list(zip(ids, first - 1))).to_numpy()
    assert (x_at_start >= 72.0).all()
    crossed = ~np.isnan(x_before)            # recordings that begin within the tolerance have no frame before
    assert (x_before[crossed] < 72.0).all() and crossed.mean() > 0.9
    # the ego is at the end of its context: distance counts from here
    assert (sim.distance == 0).all()
    context_end = t.loc[list(zip(ids, first + 19))].to_numpy()
    np.testing.assert_allclose(sim.ego.position[:, 0].numpy(), context_end, atol=1e-4)
    # a vehicle first recorded past the start line does not start the course
    table = sim.episodes
    late = table.index[table["x_first"] > 72.0 + 5.0]
    assert len(late) and (table.loc[late, "start_frame"] == -1).all() and not table.loc[late, "qualifies"].any()
    with pytest.raises(ValueError, match="do not start course"):
        sim.reset(late[:1].to_numpy())


def test_a_course_beyond_the_tracks_is_an_error_naming_how_far_they_reach(small_scene):
    beyond = Course("beyond", 10.0, 900.0)
    reach = small_scene.trajectories["x"].max()
    with pytest.raises(CourseError, match=rf"beyond .*at most {reach:.1f} m"):
        episode_vehicles(small_scene, "test", beyond)
    with pytest.raises(CourseError, match="no vehicle crosses its start line"):
        episode_vehicles(small_scene, "test", Course("late", -300.0, 200.0))


def test_a_course_most_vehicles_stop_short_of_warns(small_scene):
    """A course whose arrival line only a few tracks reach fits poorly: a warning, not an error."""
    table = course_table(small_scene, "full")
    far = float(np.quantile(table["x_last"], 0.9))
    with pytest.warns(CourseWarning, match="reach its arrival line"):
        episode_vehicles(small_scene, None, Course("far", None, far))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CourseWarning)
        episode_vehicles(small_scene, None, "i80-reference")


def test_real_lane1_file_fits_the_reference_course_not_the_full_section(real_lane1):
    """Real NGSIM tracks end at about 330 m: `full` (467 m) does not fit; on the reference's course the
    recorded human arrives in at least 99 % of the test episodes."""
    with pytest.raises(CourseError, match=r"course full .*at most 331\.\d m"):
        episode_vehicles(real_lane1, "test", "full")
    table = evaluate(real_lane1, "human", split="test", device="cpu", progress=False)
    assert (table["course"] == "i80-reference").all()
    assert len(table) >= 25
    assert (table["outcome"] == ARRIVED).mean() >= 0.99, table["outcome_name"].value_counts()
    assert table["distance"].between(150.0, 260.0).all()     # about 210 m after the context, as SPEC §7


def test_course_is_part_of_the_simulator_config(small_scene):
    config = SimConfig(course=Course("mine", 60.0, 300.0))
    sim = BatchedSimulator(small_scene, config, device="cpu")
    assert sim.road.arrival_x == 300.0 and sim.road.usable == (60.0, 300.0)
    assert config.to_json()["course"] == {"name": "mine", "start_x": 60.0, "arrival_x": 300.0, "description": ""}
    ids = sim.episode_vehicles(None)
    sim.reset(ids[:3])
    assert bool((sim.ego.position[:, 0] < 300.0).all())
    assert dataclasses.replace(config, course="full").course == "full"
    assert torch.equal(sim.vehicle_id, torch.as_tensor(ids[:3]))
