"""stable-baselines3 out of the box: the VecEnv adapter, the raster features extractor, the controller."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402

from ppuu.app.gym_env import HighwayEnv, HighwayVectorEnv  # noqa: E402
from ppuu.app.sb3 import AgentController, SB3VecEnv, make_sb3_env, policy_for  # noqa: E402
from ppuu.simulator.evaluate import evaluate  # noqa: E402


def test_sb3_env_checker_accepts_every_observation_type(scene):
    for observation in ("kinematics", "raster", "occupancy_grid"):
        sb3_check_env(HighwayEnv(scene=scene, config={"observation": observation}), warn=False)


def test_adapter_restarts_finished_envs_in_the_same_step(scene):
    venv = SB3VecEnv(HighwayVectorEnv(3, scene=scene, device="cpu", max_episode_steps=3))
    venv.seed(5)
    first = venv.reset()
    assert first.shape == (3, 9, 8)
    for _ in range(2):
        obs, rewards, dones, infos = venv.step(np.zeros((3, 2), np.float32))
        assert not dones.any() and infos == [{}, {}, {}]
    obs, rewards, dones, infos = venv.step(np.zeros((3, 2), np.float32))
    assert dones.all() and rewards.dtype == np.float32
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] and info["is_success"] is False and info["outcome"] == "running"
        assert info["terminal_observation"].shape == (9, 8)
        assert not np.array_equal(info["terminal_observation"], obs[i])     # obs is the new episode's first
    assert (venv.envs.sim.steps == 0).all() and (venv.envs.episodes_started == 2).all()
    # The next step drives the new episodes: the restarted slots are not restarted twice.
    obs, rewards, dones, infos = venv.step(np.zeros((3, 2), np.float32))
    assert (venv.envs.sim.steps == 1).all() and (venv.envs.episodes_started == 2).all()
    venv.seed(5)
    np.testing.assert_array_equal(venv.reset(), first)                     # seeded resets repeat
    assert venv.get_attr("num_envs") == [3, 3, 3] and venv.env_is_wrapped(object, indices=[0]) == [False]


def test_ppo_learns_a_few_steps_with_each_observation_type(scene):
    for observation, action in (("kinematics", "continuous"), ("raster", "discrete_meta"),
                                ("occupancy_grid", "continuous")):
        venv = make_sb3_env(4, scene=scene, config={"observation": observation, "action": action})
        policy, kwargs = policy_for(venv.observation_space)
        model = PPO(policy, venv, n_steps=16, batch_size=32, n_epochs=1, policy_kwargs=kwargs, seed=0, device="cpu")
        model.learn(64)
        assert model.num_timesteps == 64
        venv.close()


def test_policy_for_rejects_images_sb3_would_transpose(scene):
    env = HighwayEnv(scene=scene, config={"observation": {"type": "raster", "history": 7}})
    with pytest.raises(ValueError, match="at most 6 frames"):
        policy_for(env.observation_space)
    assert policy_for(HighwayEnv(scene=scene).observation_space) == ("MlpPolicy", {})


def test_a_trained_model_drives_the_closed_loop_evaluation(scene):
    config = {"observation": {"type": "kinematics"}, "action": {"type": "discrete_meta"}}
    venv = make_sb3_env(2, scene=scene, config=config)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    controller = AgentController(model, venv.venv.envs.config)
    table = evaluate(scene, controller, split="test", progress=False, device="cpu")
    assert len(table) > 0 and set(table["outcome_name"]) <= {"arrived", "collision", "offroad", "out_of_data"}
    assert (table["time"] > 0).all()


def test_train_script_trains_and_reports_beside_the_baselines(scene_workdir, scene_dir):
    import json

    from tests.scripts import load_script

    script = load_script("train_sb3")
    assert script.main(["--scene", scene_dir.name, "--workdir", str(scene_workdir), "--timesteps", "128",
                        "--num-envs", "2", "--n-steps", "32", "--n-epochs", "1", "--log-every", "64",
                        "--action", "discrete_meta", "--run", "tiny"]) == 0
    run = scene_workdir / "runs" / "tiny"
    result = json.loads((run / "result.json").read_text())
    assert set(result["success_pct"]) == {"human", "no_action", "tiny"} and result["timesteps"] == 128
    assert (run / "model.zip").is_file() and (run / "curve.csv").read_text().startswith("timesteps,")
    report = (scene_workdir / "reports" / scene_dir.name / "sb3-tiny-test-replay-i80-reference.md").read_text()
    assert "| tiny |" in report and "| no_action |" in report


def test_the_adapter_renders_one_frame_per_env_for_sb3(scene):
    venv = make_sb3_env(2, scene=scene, device="cpu", render_mode="rgb_array", monitor=False)
    venv.reset()
    frames = venv.get_images()
    assert len(frames) == 2 and frames[0].ndim == 3 and frames[0].shape[2] == 3 and frames[0].dtype == np.uint8
    tiled = venv.render(mode="rgb_array")            # SB3 tiles get_images() into one picture
    assert tiled.ndim == 3 and tiled.shape[2] == 3
    venv.close()
