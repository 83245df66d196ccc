"""The gymnasium environments: API conformance, spaces, episodes, actions, rendering, the vector env."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from importlib import metadata  # noqa: E402

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import ppuu  # noqa: E402  (registers the envs)
from ppuu.app.gym_env import HighwayEnv, HighwayVectorEnv, load_scene  # noqa: E402
from ppuu.app.render import TopDownRenderer  # noqa: E402

ENV_ID = "ppuu/Highway-v0"
PPUU_IDS = sorted(i for i in gymnasium.registry if i.startswith("ppuu/"))

# check_env's advice that does not fit physical units (the brief asks for these spaces)
ADVISORY = ("symmetric and normalized space", "minimum value is -infinity", "maximum value is infinity")


@pytest.fixture
def env(scene):
    env = HighwayEnv(scene=scene)
    yield env
    env.close()


def test_registration_is_idempotent():
    assert ENV_ID in PPUU_IDS and "ppuu/HighwayReactive-v0" in PPUU_IDS
    spec = gymnasium.spec(ENV_ID)
    assert spec.entry_point == "ppuu.app.gym_env:HighwayEnv"
    assert spec.vector_entry_point == "ppuu.app.gym_env:HighwayVectorEnv"
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # "Overriding environment ..." would be a warning
        ppuu.register_envs()
    assert gymnasium.spec(ENV_ID) is spec


@pytest.mark.parametrize("env_id", PPUU_IDS)
def test_check_env_passes(env_id, scene_dir):
    env = gymnasium.make(env_id, scene=str(scene_dir))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in ADVISORY)]
    assert not unexpected
    env.close()


def test_spaces_and_dtypes(scene):
    env = HighwayEnv(scene=scene, history=3, config={"reward": "cost"})
    raster = env.sim.config.raster
    image_space, state_space = env.observation_space["image"], env.observation_space["state"]
    assert image_space.shape == (12, raster.length_px, raster.width_px) and image_space.dtype == np.uint8
    assert state_space.shape == (8,) and state_space.dtype == np.float32
    assert env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.low, np.float32([-1, -1]))
    np.testing.assert_array_equal(env.action_space.high, np.float32([1, 1]))
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert obs["image"].dtype == np.uint8 and obs["state"].dtype == np.float32
    assert obs["image"][3::4].max() == 255          # every frame's ego channel has the car in it
    assert set(info) >= {"vehicle_id", "outcome", "distance", "speed", "proximity_cost", "lane_cost",
                         "offroad_cost"}
    assert info["outcome"] == "running" and info["vehicle_id"] in env.episode_ids
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and reward <= 0
    w = env.sim.config.cost_weights
    expected = -(w[0] * info["proximity_cost"] + w[1] * info["lane_cost"] + w[2] * info["offroad_cost"])
    assert reward == pytest.approx(expected, abs=1e-5)


def test_reset_is_deterministic_with_seed(env):
    first, info1 = env.reset(seed=7)
    env.step(np.zeros(2))
    second, info2 = env.reset(seed=7)
    assert info1 == info2
    np.testing.assert_array_equal(first, second)
    chosen = {env.reset(seed=s)[1]["vehicle_id"] for s in range(8)}
    assert len(chosen) > 1                           # the seed does pick the episode
    assert env.reset(options={"vehicle_id": int(env.episode_ids[0])})[1]["vehicle_id"] == env.episode_ids[0]
    with pytest.raises(ValueError, match="does not make an episode"):
        env.reset(options={"vehicle_id": -5})


def test_human_actions_arrive(scene):
    """The recorded driver's actions bring the ego to the arrival line (for most vehicles: a few
    recorded drivers are bumped into by replayed traffic once the ego drifts a little)."""
    env = HighwayEnv(scene=scene, config={"action": {"curvature_range": (-0.2, 0.2)}})
    outcomes = []
    for vehicle in env.episode_ids[:6]:
        env.reset(options={"vehicle_id": int(vehicle)})
        for _ in range(2000):
            action = env._core.action.from_physical(env.sim.recorded_actions())[0].numpy()
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        outcomes.append(info["outcome"])
        if info["outcome"] == "arrived":
            assert terminated and not truncated
            assert info["distance"] > 0
            break
    assert "arrived" in outcomes, outcomes


def test_bad_actions_raise(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step([0.0, np.inf])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        env.step([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="expected numbers"):
        env.step(["fast", "left"])
    with pytest.raises(RuntimeError, match="reset"):
        HighwayEnv(scene=env.scene).step(np.zeros(2))


def test_out_of_bound_actions_are_clipped(env):
    bounds, dt = env.sim.config.bounds, env.sim.dt
    _, info = env.reset(seed=0)
    _, _, _, _, after = env.step(np.array([100.0, 0.0]))          # normalised: clipped to 1 = the largest
    assert after["speed"] - info["speed"] == pytest.approx(bounds.acceleration_max * dt, abs=1e-4)
    speed, heading = env.sim.ego.speed[0].item(), env.sim.ego.heading[0].clone()
    env.step(np.array([-100.0, 50.0]))
    assert env.sim.ego.speed[0].item() - speed == pytest.approx(max(bounds.acceleration_min * dt, -speed), abs=1e-4)
    curvature = env.config["action"]["curvature_range"][1]
    turned = math.atan2(float(heading[0] * env.sim.ego.heading[0, 1] - heading[1] * env.sim.ego.heading[0, 0]),
                        float(heading @ env.sim.ego.heading[0]))
    assert turned == pytest.approx(math.atan(curvature * speed * dt), abs=1e-4)


def test_rgb_array_render(scene):
    env = HighwayEnv(scene=scene, render_mode="rgb_array", render_kwargs={"pixels_per_metre": 6.0})
    env.reset(seed=0)
    frame = env.render()
    renderer = env._renderer
    assert frame.shape == renderer.shape and frame.dtype == np.uint8
    assert frame.shape[1] == round(renderer.view_length_m * 6.0)

    def count(colour):
        return int((frame == np.array(colour, dtype=np.uint8)).all(-1).sum())

    assert count(TopDownRenderer.ROAD) > frame.shape[0] * frame.shape[1] // 4
    assert count(TopDownRenderer.EGO) > 50                     # a car is at least ~4.5 m x 1.8 m = 290 px
    assert count(TopDownRenderer.OTHER) > 50
    assert count(TopDownRenderer.OFFROAD) > 0
    env.step(np.array([4.0, 0.0]))
    assert not np.array_equal(env.render(), frame)
    env.close()


def test_renderer_draws_where_it_is_told(scene):
    road = load_scene(scene).meta
    from ppuu.simulator.road import Road

    renderer = TopDownRenderer(Road.from_meta(road), pixels_per_metre=4.0, view_length_m=50.0, view_width_m=30.0)
    ego = np.array([100.0, -5.0])
    frame = renderer.draw(ego, 0.0, [4.0, 2.0], others_centre=np.array([[110.0, -5.0], [400.0, -5.0]]),
                          others_heading=np.zeros(2), others_size=np.array([[4.0, 2.0], [4.0, 2.0]]),
                          others_mask=np.array([True, True]))
    assert frame.shape == (120, 200, 3)
    col, row = renderer.to_pixels(ego, renderer.view_centre(ego)).astype(int)
    assert tuple(frame[row, col]) == TopDownRenderer.EGO
    col, row = renderer.to_pixels(np.array([110.5, -5.0]), renderer.view_centre(ego)).astype(int)
    assert tuple(frame[row, col]) == TopDownRenderer.OTHER
    # a masked-out vehicle is not drawn
    masked = renderer.draw(ego, 0.0, [4.0, 2.0], np.array([[110.0, -5.0]]), np.zeros(1), np.array([[4.0, 2.0]]),
                           np.array([False]))
    assert tuple(masked[row, col]) == TopDownRenderer.ROAD


def test_human_render_with_dummy_driver(scene):
    env = HighwayEnv(scene=scene, render_mode="human")
    env.reset(seed=0)
    assert env.render() is None
    env.step(np.zeros(2))
    env.close()
    env.close()                                     # closing twice is allowed


def test_scene_by_name_folder_and_latest(scene_workdir, scene_dir):
    by_name = HighwayEnv(scene=scene_dir.name, workdir=scene_workdir)
    by_folder = HighwayEnv(scene=str(scene_dir))
    latest = HighwayEnv(scene=None, workdir=scene_workdir)
    assert by_name.scene.meta.name == by_folder.scene.meta.name == latest.scene.meta.name
    with pytest.raises(FileNotFoundError, match="scenes there"):
        HighwayEnv(scene="no-such-scene", workdir=scene_workdir)


def test_no_scene_raises_with_the_command_instead_of_generating_one(tmp_path, monkeypatch):
    import ppuu.data.pipeline

    monkeypatch.setattr(ppuu.data.pipeline, "generate_sumo_scene", lambda **kw: pytest.fail("generated a scene"))
    with pytest.raises(FileNotFoundError, match="ppuu data generate --site i80"):
        gymnasium.make(ENV_ID, workdir=tmp_path)
    assert not (tmp_path / "scenes").exists()


def test_max_episode_steps_truncates(scene):
    env = HighwayEnv(scene=scene, max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(2))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    wrapped = gymnasium.make(ENV_ID, scene=scene, max_episode_steps=2)
    wrapped.reset(seed=0)
    assert [wrapped.step(np.zeros(2))[3] for _ in range(2)] == [False, True]



def test_an_episode_truncated_by_the_step_limit_stays_frozen(scene):
    """After a max_episode_steps truncation, as after the simulator's own endings: reward 0, the same
    observation and flags, no more simulated steps, until reset."""
    env = HighwayEnv(scene=scene, max_episode_steps=2)
    env.reset(seed=0)
    env.step(np.array([0.5, 0.0], np.float32))
    last_obs, _, terminated, truncated, last_info = env.step(np.array([0.5, 0.0], np.float32))
    assert (terminated, truncated) == (False, True)
    for _ in range(3):
        obs, reward, terminated_after, truncated_after, info = env.step(np.array([0.5, 0.0], np.float32))
        assert (reward, terminated_after, truncated_after) == (0.0, False, True)
        np.testing.assert_array_equal(obs, last_obs)
        assert info == last_info
    assert int(env.sim.steps[0]) == 2
    env.reset(seed=1)
    assert env.step(np.zeros(2, np.float32))[3] is False


def test_the_registered_traffic_and_a_contrary_config_are_refused_not_dropped(scene):
    with pytest.raises(ValueError, match="traffic='replay' and config\\['traffic'\\]='reactive' disagree"):
        gymnasium.make(ENV_ID, scene=scene, config={"traffic": "reactive"})
    with pytest.raises(ValueError, match="max_episode_steps=5 and config"):
        HighwayEnv(scene=scene, max_episode_steps=5, config={"max_episode_steps": 7})
    agreeing = gymnasium.make("ppuu/HighwayReactive-v0", scene=scene, config={"traffic": "reactive"})
    assert agreeing.unwrapped.config["traffic"] == "reactive"


# ---------------------------------------------------------------------- vector env
def test_vector_env_spaces_and_determinism(scene):
    envs = gymnasium.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", scene=scene,
                              device="cpu")
    assert isinstance(envs.unwrapped, HighwayVectorEnv)
    assert envs.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    assert envs.num_envs == 3
    assert envs.observation_space.shape == (3, 9, 8)
    assert envs.action_space.shape == (3, 2)
    obs, infos = envs.reset(seed=3)
    assert envs.observation_space.contains(obs)
    assert obs.dtype == np.float32
    assert len(set(infos["vehicle_id"].tolist())) == 3 and infos["_vehicle_id"].all()
    obs2, infos2 = envs.reset(seed=3)
    np.testing.assert_array_equal(infos["vehicle_id"], infos2["vehicle_id"])
    np.testing.assert_array_equal(obs, obs2)
    obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
    assert envs.observation_space.contains(obs)
    assert rewards.shape == (3,) and terminated.dtype == bool and truncated.dtype == bool
    with pytest.raises(ValueError, match="NaN or inf for envs \\[1\\]"):
        envs.step(np.array([[0, 0], [np.nan, 0], [0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros(2))
    envs.close()


def test_vector_env_autoresets_next_step(scene):
    envs = HighwayVectorEnv(num_envs=2, scene=scene, device="cpu", max_episode_steps=4)
    envs.reset(seed=0)
    for _ in range(3):
        _, _, terminated, truncated, _ = envs.step(np.zeros((2, 2), np.float32))
        assert not (terminated | truncated).any()
    obs, rewards, terminated, truncated, infos = envs.step(np.zeros((2, 2), np.float32))
    assert truncated.all() and not terminated.any()
    assert (infos["steps"] == 4).all() and (infos["episode_number"] == 1).all()
    # The next step restarts both slots and ignores their actions (even NaN ones).
    obs, rewards, terminated, truncated, infos = envs.step(np.full((2, 2), np.nan, np.float32))
    assert not (terminated | truncated).any() and (rewards == 0).all()
    assert (infos["steps"] == 0).all() and (infos["episode_number"] == 2).all()
    assert (envs.episodes_started == 2).all() and envs.outcome_counts["time_limit"] == 2
    assert (infos["outcome"] == "running").all()
    assert envs.observation_space.contains(obs)
    envs.close()


def test_vector_env_runs_recorded_episodes_to_their_end(scene):
    probe = HighwayEnv(scene=scene)
    ids = probe.episode_ids[:4]
    envs = HighwayVectorEnv(num_envs=len(ids), scene=scene, device="cpu", render_mode="rgb_array",
                            config={"reward": "cost", "action": {"curvature_range": (-0.2, 0.2)}})
    envs.reset(options={"vehicle_ids": ids})
    finished = np.zeros(len(ids), dtype=bool)
    for _ in range(2000):
        recorded = envs._core.action.from_physical(envs.sim.recorded_actions())
        _, rewards, terminated, truncated, infos = envs.step(recorded)
        assert (rewards <= 0).all()
        ended = terminated | truncated
        assert set(infos["outcome"][terminated]) <= {"arrived", "collision", "offroad"}
        assert set(infos["outcome"][truncated]) <= {"out_of_data"}
        finished |= ended
        if finished.all():
            break
    assert finished.all()
    assert sum(envs.outcome_counts.values()) >= len(ids) and envs.outcome_counts["arrived"] >= 1
    frames = envs.render()
    assert len(frames) == len(ids) and all(f.shape == frames[0].shape and f.dtype == np.uint8 for f in frames)
    envs.close()


def test_vector_env_accepts_torch_actions_on_its_device(scene):
    envs = HighwayVectorEnv(num_envs=2, scene=scene, device="cpu", config={"observation": {"type": "raster",
                                                                                           "history": 2}})
    obs, _ = envs.reset(seed=1)
    assert obs["image"].shape == (2, 8, 117, 24) and obs["state"].shape == (2, 8)
    assert envs.sim.config.history == 2
    obs, *_ = envs.step(torch.zeros(2, 2))
    assert envs.observation_space.contains(obs)
    envs.close()


# ---------------------------------------------------------------------- plugin / entry point
def test_entry_point_is_declared():
    try:
        points = metadata.entry_points(group="gymnasium.envs")
    except Exception:                                # pragma: no cover - very old importlib
        pytest.skip("no entry-point metadata")
    ours = [p for p in points if p.value == "ppuu.app:register_envs"]
    if not ours:
        pytest.skip("the ppuu package is not installed (pip install -e .)")
    assert ours[0].name == "ppuu"


def test_make_in_a_fresh_interpreter(scene_dir):
    """gymnasium 1.x reads no plugin entry points: ``make("ppuu:ppuu/...")`` imports the registering module."""
    code = (
        "import sys, json, gymnasium\n"
        "assert 'ppuu' not in sys.modules\n"
        f"env = gymnasium.make('ppuu:{ENV_ID}', scene={str(scene_dir)!r})\n"
        "obs, info = env.reset(seed=0)\n"
        "obs, reward, terminated, truncated, info = env.step(env.action_space.sample())\n"
        "print(json.dumps({'shape': list(obs.shape), 'outcome': info['outcome']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [9, 8] and result["outcome"] in ("running", "collision", "offroad")


def test_envs_train_on_the_training_split_by_default(scene):
    train = set(scene.split_vehicle_ids("train"))
    env = HighwayEnv(scene=scene)
    envs = HighwayVectorEnv(num_envs=2, scene=scene, device="cpu")
    assert env.split == envs.split == "train"
    assert set(env.episode_ids.tolist()) <= train and set(envs.episode_ids.tolist()) <= train
    assert set(HighwayEnv(scene=scene, split="test").episode_ids.tolist()).isdisjoint(train)


def test_vector_env_autoresets_reach_an_episode_start_hook(scene):
    """A planner with per-slot state hears every slot that starts an episode, autoresets included."""
    envs = HighwayVectorEnv(num_envs=3, scene=scene, device="cpu", max_episode_steps=2)
    starts = []
    envs.sim.add_episode_start_hook(lambda slots, sim: starts.append(sorted(slots.tolist())))
    envs.reset(seed=0)
    assert starts == [[0, 1, 2]]
    envs.step(np.zeros((3, 2), np.float32))
    _, _, terminated, truncated, _ = envs.step(np.zeros((3, 2), np.float32))
    ended = np.flatnonzero(terminated | truncated).tolist()
    assert ended == [0, 1, 2] and starts == [[0, 1, 2]]
    _, _, _, _, infos = envs.step(np.zeros((3, 2), np.float32))
    assert starts == [[0, 1, 2], ended] and (infos["episode_number"] == 2).all()
    envs.close()


def test_episode_start_hooks_survive_a_config_that_rebuilds_the_simulator(scene):
    envs = HighwayVectorEnv(num_envs=2, scene=scene, device="cpu")
    starts = []
    handle = envs.sim.add_episode_start_hook(lambda slots, sim: starts.append(sorted(slots.tolist())))
    envs.reset(seed=0)
    old_sim = envs.sim
    envs.reset(seed=0, options={"config": {"split": "val"}})
    assert envs.sim is not old_sim and starts == [[0, 1], [0, 1]]
    handle.remove()                                  # the handle still reaches the moved hook
    envs.reset(seed=0)
    assert starts == [[0, 1], [0, 1]]
    envs.close()


def test_a_refused_reset_leaves_the_running_episodes_as_they_were(scene):
    envs = HighwayVectorEnv(num_envs=2, scene=scene, device="cpu")
    envs.reset(seed=0)
    running = envs.sim.vehicle_id.clone()
    with pytest.raises(KeyError, match="not in this scene"):
        envs.reset(options={"vehicle_ids": [-5, -6]})
    assert torch.equal(envs.sim.vehicle_id, running)
    _, _, terminated, truncated, infos = envs.step(np.zeros((2, 2), np.float32))
    assert not (terminated | truncated).any()
    envs.close()
