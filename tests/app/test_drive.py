"""``ppuu drive``: every mode steps, keys drive, recordings, and the picture agrees with the simulator.

Headless (SDL's dummy video driver, set by tests/conftest.py). The policy and the world model are
tiny untrained ones of the fixed-frame (kinematic ego) kind, saved as real checkpoints so that the
command line's loading is what runs.
"""

from __future__ import annotations

import numpy as np
import pygame
import pytest
import torch

from ppuu.app.cli import build_parser, main
from ppuu.app.cli_drive import build_session
from ppuu.app.drive_app import DriveApp
from ppuu.app.drive_session import MODES, KeyboardDriver
from ppuu.app.drive_view import EGO, DriveView
from ppuu.simulator.dynamics import ActionBounds

CONTEXT, HORIZON = 4, 3


@pytest.fixture(scope="module")
def runs(scene_workdir, scene):
    """WORKDIR/runs/{tiny-world,tiny-policy}: an untrained fixed-frame world model and a policy trained on it
    for two imitation steps."""
    from ppuu.simulator.raster import RasterConfig
    from ppuu.simulator.recording import FixedFrame, RecordedObservations
    from tests.planner.conftest import save_tiny_runs

    recording = RecordedObservations(scene, RasterConfig.covering(60.0, 24 / 1.625, 1.0),
                                     frame=FixedFrame(anchor=CONTEXT - 1, centre_ahead=15.0))
    save_tiny_runs(scene_workdir, recording, scene.split_vehicle_ids("train"), "kinematic", "tiny-world", "tiny-policy")
    return scene_workdir


def _args(workdir, *extra):
    return build_parser().parse_args(["drive", "--workdir", str(workdir), "--headless", "--futures", "3",
                                      "--futures-horizon", "4", "--futures-every", "2", *extra])


@pytest.fixture(scope="module")
def session(runs):
    """A session with every driver: the policy, MPC on the tiny model, and the policy's model's futures."""
    s = build_session(_args(runs, "--policy", "tiny-policy", "--mpc", "tiny-world", "--mpc-horizon", "4",
                            "--mpc-iterations", "1", "--mpc-replan-every", "1"))
    yield s
    s.close()


def test_keyboard_driver_is_smooth_and_within_the_bounds():
    bounds = ActionBounds()
    driver = KeyboardDriver(bounds, jerk=20.0, lateral_acceleration=2.0, steer_time=0.4)
    accelerations = [driver.update(True, False, False, False, speed=20.0, dt=0.1)[0] for _ in range(10)]
    assert accelerations[0] == pytest.approx(2.0)                      # jerk 20 m/s^3 for 0.1 s
    assert np.all(np.diff(accelerations) >= 0) and max(accelerations) == pytest.approx(bounds.acceleration_max)
    braking = [driver.update(False, True, False, False, speed=20.0, dt=0.1)[0] for _ in range(10)]
    assert braking[0] == pytest.approx(bounds.acceleration_max - 2.0)
    assert min(braking) == pytest.approx(bounds.acceleration_min)
    curvatures = [driver.update(False, False, True, False, speed=20.0, dt=0.1)[1] for _ in range(6)]
    full = 2.0 / 20.0 ** 2                                              # lateral 2 m/s^2 at 20 m/s
    assert curvatures[0] == pytest.approx(full / 4) and curvatures[-1] == pytest.approx(full)
    assert driver.update(False, False, False, True, speed=20.0, dt=0.1)[1] == pytest.approx(full * 3 / 4)
    assert driver.full_steer(4.0) == pytest.approx(2.0 / 16.0)
    assert driver.full_steer(0.5) == pytest.approx(bounds.curvature_max)          # slow: capped by the bounds ...
    wide = KeyboardDriver(ActionBounds(curvature_min=-0.3, curvature_max=0.3))
    assert wide.full_steer(0.5) == pytest.approx(2.0 / 9.0)                       # ... and by the 3 m/s floor


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_starts_and_steps(session, mode):
    session.set_mode(mode)
    session.restart()
    x0 = float(session.sim.ego.position[0, 0])
    for _ in range(4):
        result = session.step()
        assert result is not None or session.done
    assert int(session.sim.steps[0]) >= 1
    assert float(session.sim.ego.position[0, 0]) != x0
    assert len(session.plot_data()) == int(session.sim.steps[0])
    f = session.futures
    assert f is not None and f.positions.shape == (3, 4, 2) and np.isfinite(f.positions).all()
    assert f.images.shape[0] == 4 and f.spread.shape == (4, *f.images.shape[2:])
    if mode == "mpc":
        assert session.plan is not None and session.plan.shape == (4, 2)
        # the plan starts near the ego: the first predicted step is at most one step's travel away
        assert np.linalg.norm(session.plan[0] - session.ego()[0]) < 5.0
    frame = DriveView(session).draw("test")
    assert frame.get_size() == DriveView(session).size


def test_replay_mode_applies_the_recorded_actions(session):
    session.set_mode("replay")
    session.restart()
    recorded = session.sim.recorded_actions()[0].clone()
    result = session.step()
    assert torch.allclose(result.action[0], session.sim.config.bounds.clip(recorded[None])[0])


def test_a_mode_without_its_checkpoint_is_a_clear_error(runs):
    s = build_session(_args(runs))
    with pytest.raises(ValueError, match="--policy"):
        s.set_mode("policy")
    assert s.mode == "replay" and s.futures_model is None


def test_posted_keyboard_events_change_the_egos_actions(session):
    session.set_mode("replay")
    session.restart()
    view = DriveView(session)
    # speed 3 x real time at 30 frames per second = one simulator step per frame
    app = DriveApp(session, view, headless=False, fps=30.0, speed=3.0)
    app.open_window()
    try:
        def press(key, down=True):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=key))

        press(pygame.K_2)                                   # keyboard mode
        press(pygame.K_UP)
        for _ in range(3):
            app.tick()
        assert session.mode == "keyboard"
        a = session.plot_data()[:, 5]
        assert a[0] > 0 and np.all(np.diff(a) >= 0) and a[-1] > a[0]       # accelerating, smoothly more
        press(pygame.K_UP, down=False)
        press(pygame.K_DOWN)
        press(pygame.K_LEFT)
        for _ in range(3):
            app.tick()
        a, c = session.plot_data()[:, 5], session.plot_data()[:, 6]
        assert a[-1] < 0 and c[-1] > 0                      # braking and steering left
        press(pygame.K_SPACE)                               # pause: no step
        steps = int(session.sim.steps[0])
        app.tick()
        assert int(session.sim.steps[0]) == steps and app.paused
        draws = app.draws
        app.tick()                                          # nothing changed: the frame is not drawn again
        assert app.draws == draws and app.frames > draws
        press(pygame.K_PERIOD)                              # single step
        app.tick()
        assert int(session.sim.steps[0]) == steps + 1
        vehicle = session.vehicle_id
        press(pygame.K_n)                                   # next episode
        app.tick()
        assert session.vehicle_id != vehicle and int(session.sim.steps[0]) == 0
        press(pygame.K_t)                                   # reactive traffic
        app.tick()
        assert session.traffic == "reactive" and session.sim.reactive is not None
    finally:
        pygame.display.quit()
        session.set_traffic("replay")


def test_the_ego_is_drawn_where_the_simulator_says(session):
    session.set_mode("keyboard")
    session.restart()
    session.keys.update(left=True)                          # a turned ego, off its recorded path
    for _ in range(15):
        session.step()
    session.keys.update(left=False)
    view = DriveView(session)
    view.draw()
    frame = view.frame()
    centre, heading, size = session.ego()
    assert abs(heading) > 0.005
    column, row = np.round(view.camera_pixels(centre)).astype(int)
    assert tuple(frame[row, column]) == EGO
    # behind the ego's centre (inside the body, off the windscreen) too; ahead of its nose, not
    unit = np.array([np.cos(heading), np.sin(heading)])
    column, row = np.round(view.camera_pixels(centre - 0.3 * size[0] * unit)).astype(int)
    assert tuple(frame[row, column]) == EGO
    column, row = np.round(view.camera_pixels(centre + (0.5 * size[0] + 1.0) * unit)).astype(int)
    assert tuple(frame[row, column]) != EGO


def test_the_ghost_sits_on_the_recorded_trajectory(session, scene):
    session.set_mode("keyboard")
    session.restart()
    session.keys.update(down=True)                          # brake: the ego falls behind its recording
    for _ in range(12):
        session.step()
    session.keys.update(down=False)
    ghost = session.ghost()
    t = scene.trajectories
    row = t[(t["vehicle_id"] == session.vehicle_id) & (t["frame"] == int(session.sim.frame[0]))]
    assert len(row) == 1
    np.testing.assert_allclose(ghost.centre, row[["x", "y"]].to_numpy()[0], atol=1e-4)
    assert ghost.heading == pytest.approx(float(row["heading"].iloc[0]), abs=1e-5)
    assert np.linalg.norm(ghost.centre - session.ego()[0]) > 2.0  # apart from the braking ego
    view = DriveView(session)
    left = np.array([-np.sin(ghost.heading), np.cos(ghost.heading)])
    inside = ghost.centre + 0.3 * ghost.size[1] * left          # inside the ghost, beside the futures' paths
    column, row_px = np.round(view.camera_pixels(inside)).astype(int)
    view.show_ghost = False
    view.draw()
    without = view.frame()[row_px, column].astype(int)
    view.show_ghost = True
    view.draw()
    with_ghost = view.frame()[row_px, column].astype(int)
    assert with_ghost.sum() > without.sum() + 60            # a faint white fill over what was there


def test_a_headless_recording_has_the_expected_frames_and_size(runs, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "drive.gif"
    assert main(["drive", "--workdir", str(runs), "--headless", "--frames", "7", "--record", str(out),
                 "--ghost"]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 7
        assert gif.size == (1280, 686)
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.gif"]         # no temporary files left
    assert main(["drive", "--workdir", str(runs), "--headless", "--record", str(tmp_path / "x.avi")]) == 2
    assert "expected a .gif or .mp4" in capsys.readouterr().err
    assert main(["drive", "--workdir", str(runs), "--headless", "--speed", "0"]) == 2
    assert "--speed 0.0: expected a positive number" in capsys.readouterr().err


def test_a_gif_stores_a_repeated_frame_once_with_its_time(tmp_path):
    from PIL import Image

    from ppuu.app.drive_record import VideoRecorder

    recorder = VideoRecorder(tmp_path / "r.gif", fps=10)
    a, b = np.zeros((8, 12, 3), np.uint8), np.full((8, 12, 3), 200, np.uint8)
    for frame, repeat in ((a, False), (a, True), (a, True), (b, False)):
        recorder.add(frame, repeat=repeat)
    assert recorder.close() == tmp_path / "r.gif" and recorder.frames == 4
    with Image.open(tmp_path / "r.gif") as gif:
        assert gif.n_frames == 2 and gif.size == (12, 8)
        assert gif.info["duration"] == 300                    # the first image lasts three frames of 0.1 s
        gif.seek(1)
        assert gif.info["duration"] == 100


def test_an_mp4_recording_has_the_expected_frames_and_size(runs, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "drive.mp4"
    assert main(["drive", "--workdir", str(runs), "--headless", "--frames", "6", "--record", str(out),
                 "--width", "960"]) == 0
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    assert frames == 6 and tuple(meta["size"]) == (960, 686)


def test_mp4_without_its_writer_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from ppuu.app.drive_record import VideoRecorder

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)          # as if not installed
    with pytest.raises(ValueError, match=r"imageio-ffmpeg.*ppuu\[video\]"):
        VideoRecorder(tmp_path / "out.mp4", 30)
    assert list(tmp_path.iterdir()) == []


def test_vehicles_are_coloured_by_kind_and_class(session):
    from ppuu.app.drive_session import REACTIVE, TRUCK
    from ppuu.app.drive_view import COLOUR_TABLE

    session.set_traffic("reactive")
    try:
        session.set_mode("keyboard")
        session.keys.update(down=True)                      # brake hard: the traffic behind must react
        for _ in range(25):
            session.step()
        session.keys.update(down=False)
        v = session.vehicles()
        reactive = v.kind == REACTIVE
        assert reactive.any() and not reactive.all()
        vclass = session.scene.vehicles.set_index("vehicle_id")["vclass"]
        assert set(np.unique(v.vclass)) <= set(vclass.unique())
        view = DriveView(session)
        view.draw()
        frame = view.frame().astype(np.int64)
        px = np.round(view.camera_pixels(v.centre - 0.2 * v.size[:, :1] * np.stack([np.cos(v.heading),
                                                                                   np.sin(v.heading)], -1)))
        h, w = frame.shape[:2]
        seen = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < view.camera_height)
        assert seen.sum() >= 3
        colours = frame[px[seen, 1].astype(int), px[seen, 0].astype(int)]
        expected = COLOUR_TABLE[v.kind[seen], v.vclass[seen]]
        assert (colours == expected).all(axis=1).mean() > 0.8     # overlaps and the ghost aside
        assert not np.array_equal(COLOUR_TABLE[REACTIVE, 2], COLOUR_TABLE[0, 2])
        assert not np.array_equal(COLOUR_TABLE[0, TRUCK], COLOUR_TABLE[0, 2])
    finally:
        session.set_traffic("replay")


def test_the_futures_disagreement_is_the_planners_variance():
    from ppuu.app.drive_model import _variances
    from ppuu.planner.uncertainty import variances

    g = torch.Generator().manual_seed(0)
    images, states, cost = torch.rand(4, 6, 3, 10, 5, generator=g), torch.rand(4, 6, 4, generator=g), \
        torch.rand(4, 6, generator=g)
    torch.testing.assert_close(_variances(images, states, cost), variances(images, states, cost))


def test_the_cached_road_layer_matches_the_road_drawn_directly(session):
    session.set_mode("replay")
    session.restart()
    for _ in range(5):
        session.step()
    camera = DriveView(session).camera
    for zoom in (1.0, 1.25):
        camera.zoom(zoom)
        centre = camera.view_centre(session.ego()[0])
        cached, direct = pygame.Surface((camera.width_px, camera.height_px)), pygame.Surface((camera.width_px,
                                                                                             camera.height_px))
        camera.draw_road(cached, centre)
        camera._draw_road(direct, centre)
        a, b = pygame.surfarray.array3d(cached), pygame.surfarray.array3d(direct)
        assert (a == b).all(-1).mean() > 0.99            # the same up to a pixel's rounding at the edges


def test_futures_are_reproducible_headless_and_sampled_on_a_worker_in_a_window(runs, session):
    session.set_mode("policy")
    session.restart()
    first = session.futures.positions.copy(), session.futures.spread.copy()
    session.restart()
    np.testing.assert_array_equal(session.futures.positions, first[0])
    np.testing.assert_array_equal(session.futures.spread, first[1])
    args = _args(runs, "--policy", "tiny-policy")
    args.headless = False
    windowed = build_session(args)
    try:
        assert windowed._executor is not None and windowed.futures_model.seed is None
        for _ in range(6):
            windowed.step()
        if windowed._pending is not None:                     # wait for the worker's sampling in flight
            windowed._pending[1].result(timeout=30)
        windowed.poll_futures()
        assert windowed.futures is not None and windowed.futures.positions.shape == (3, 4, 2)
    finally:
        windowed.close()
