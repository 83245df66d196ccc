"""Recorded windows in a fixed frame (the kinematic world model's training data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppuu.simulator.raster import EGO, LANES, OFFROAD, VEHICLES
from ppuu.simulator.recording import FixedFrame, RecordedObservations, is_fixed_frame


@pytest.fixture(scope="module")
def egocentric(small_scene):
    return RecordedObservations(small_scene)


def _windows(small_scene, recorded, length=12):
    ids = small_scene.split_vehicle_ids("train")[:40]
    vehicles, starts = recorded.window_starts(ids, length)
    pick = np.random.default_rng(0).choice(len(vehicles), 6, replace=False)
    return vehicles[pick], starts[pick]


def test_fixed_frame_at_its_anchor_is_the_egocentric_frame(small_scene, egocentric):
    anchor, T = 7, 12
    fixed = RecordedObservations(small_scene, frame=FixedFrame(anchor=anchor), log=egocentric.log)
    ids, starts = _windows(small_scene, egocentric, T)
    ego_w, fix_w = egocentric.windows(ids, starts, T), fixed.windows(ids, starts, T)
    for c in (LANES, VEHICLES, OFFROAD):
        torch.testing.assert_close(fix_w.images[:, anchor, c], ego_w.images[:, anchor, c], atol=1e-5, rtol=0)
    assert float(fix_w.images[:, :, EGO].abs().max()) == 0.0
    torch.testing.assert_close(fix_w.costs[:, anchor], ego_w.costs[:, anchor], atol=1e-4, rtol=0)
    # the anchor state is the origin, moving along +x at the recorded speed
    speed = ego_w.states[:, anchor, 2:].norm(dim=-1)
    torch.testing.assert_close(fix_w.states[:, anchor], torch.stack([torch.zeros_like(speed), torch.zeros_like(speed),
                                                                      speed, torch.zeros_like(speed)], -1),
                               atol=1e-4, rtol=0)
    # speeds are frame-independent; the road does not move in a fixed frame
    torch.testing.assert_close(fix_w.states[..., 2:].norm(dim=-1), ego_w.states[..., 2:].norm(dim=-1))
    for c in (LANES, OFFROAD):
        torch.testing.assert_close(fix_w.images[:, :, c], fix_w.images[:, anchor:anchor + 1, c].expand_as(
            fix_w.images[:, :, c]), atol=1e-5, rtol=0)


def test_fixed_frame_states_are_the_world_motion_turned_into_the_anchor_frame(small_scene, egocentric):
    anchor, T = 3, 12
    fixed = RecordedObservations(small_scene, frame=FixedFrame(anchor=anchor, centre_ahead=20.0), log=egocentric.log)
    ids, starts = _windows(small_scene, egocentric, T)
    world, local = egocentric.windows(ids, starts, T).states, fixed.windows(ids, starts, T).states
    # distances travelled are preserved, and a car driving up the road moves ahead in its frame
    step_world = (world[:, 1:, :2] - world[:, :-1, :2]).norm(dim=-1)
    step_local = (local[:, 1:, :2] - local[:, :-1, :2]).norm(dim=-1)
    torch.testing.assert_close(step_local, step_world, atol=1e-4, rtol=0)
    moving = world[:, -1, 0] - world[:, anchor, 0] > 1.0
    assert bool((local[moving, -1, 0] > 1.0).all())
    with pytest.raises(ValueError, match="no frame 3 to anchor on"):
        fixed.windows(ids, starts, 3)


def test_simulator_rerenders_its_kept_traffic_around_any_pose(small_scene):
    """render_history: the newest kept frame around the ego's own pose is its observation."""
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    sim = BatchedSimulator(small_scene, SimConfig(history=4, keep_traffic=True), device="cpu")
    ids = sim.episode_vehicles(None)[:5]
    sim.reset(ids)
    for _ in range(3):
        result = sim.step(sim.recorded_actions())
    slots = torch.arange(5)
    frames = sim.render_history(slots, sim.ego.position, sim.ego.heading, sim.config.raster)
    assert frames.shape == (5, 4, 4, 117, 24) and float(frames[:, :, EGO].abs().max()) == 0
    latest = result.observation.image[:, -1]
    running = ~sim.done
    torch.testing.assert_close(frames[running, -1, :3], latest[running, :3], atol=1e-5, rtol=0)
    # one frame, further ahead: the same traffic, shifted by whole pixels
    ppm = sim.config.raster.pixels_per_metre
    ahead = sim.render_history(slots, sim.ego.position + 8 / ppm * sim.ego.heading, sim.ego.heading,
                               sim.config.raster, 1)
    torch.testing.assert_close(ahead[running, 0, 1, 8:], frames[running, -1, 1, :-8], atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="frames = 5"):
        sim.render_history(slots, sim.ego.position, sim.ego.heading, sim.config.raster, 5)
    plain = BatchedSimulator(small_scene, SimConfig(history=2), device="cpu")
    plain.reset(ids)
    with pytest.raises(ValueError, match="keep_traffic"):
        plain.render_history(slots, plain.ego.position, plain.ego.heading, plain.config.raster)


@pytest.mark.parametrize("fixed", [False, True])
def test_render_states_along_the_recording_gives_the_windows(small_scene, egocentric, fixed):
    recorded = RecordedObservations(small_scene, frame=FixedFrame(anchor=5, centre_ahead=10.0) if fixed else None,
                                    log=egocentric.log)
    ids, starts = _windows(small_scene, recorded, 12)
    w = recorded.windows(ids, starts, 12)
    again = recorded.render_states(ids, starts, 6, w.states[:, 6:])
    torch.testing.assert_close(again[:, :, :3], w.images[:, 6:, :3], atol=1e-4, rtol=0)


@pytest.mark.parametrize("fixed", [False, True])
def test_windows_render_only_the_traffic_in_view_and_lose_nothing(small_scene, egocentric, fixed):
    """Windows look at the vehicles near each image (TrafficLog.near), not every vehicle of the frame;
    in a fixed frame the road is drawn once per window. The images equal a render of every vehicle."""
    from ppuu.simulator.raster import render

    T, anchor, ahead = 12, 5, 10.0
    recorded = RecordedObservations(small_scene, frame=FixedFrame(anchor=anchor, centre_ahead=ahead),
                                    log=egocentric.log) if fixed else egocentric
    ids, starts = _windows(small_scene, egocentric, T)
    got = recorded.windows(ids, starts, T)
    log = egocentric.log
    reach = recorded.raster.reach_m + log.max_half_diagonal + 1.0
    assert log.near_width(reach) < log.max_vehicles          # the culling leaves vehicles out in this scene
    frames = torch.as_tensor(starts)[:, None] + torch.arange(T)
    flat_ids = torch.as_tensor(ids)[:, None].expand(-1, T).reshape(-1)
    rows = log.rows_of(flat_ids, frames.reshape(-1))
    everyone = log.at(frames.reshape(-1))
    everyone.mask &= everyone.vehicle_id != flat_ids[:, None]
    centre, heading = log.centre[rows], log.heading[rows]
    if fixed:
        first = rows.view(-1, T)[:, anchor].repeat_interleave(T)
        unit = torch.stack([torch.cos(log.heading[first]), torch.sin(log.heading[first])], -1)
        centre, heading = log.centre[first] + ahead * unit, unit
    expected = render(recorded.road, centre, heading, log.size[rows], everyone.centre, everyone.heading,
                      everyone.size, everyone.mask, recorded.raster)
    if fixed:
        expected[:, EGO] = 0.0
    torch.testing.assert_close(got.images.flatten(0, 1), expected, atol=1e-6, rtol=0)
    assert float(expected[:, VEHICLES].sum()) > 0


def test_the_frame_kind_is_read_from_saved_observation_settings():
    assert is_fixed_frame({"frame": FixedFrame(anchor=19, centre_ahead=10.0).to_json()})
    assert not is_fixed_frame({"raster": {}})                      # saved before frames existed: egocentric
    assert not is_fixed_frame({"frame": {"kind": "egocentric"}})
