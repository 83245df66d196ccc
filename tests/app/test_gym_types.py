"""The gym's configuration, observation, action and reward types (HighwayEnv-style checks)."""

from __future__ import annotations

import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import ppuu  # noqa: F401  (registers the envs)
from ppuu.app.gym_actions import FASTER, IDLE, LANE_LEFT, LANE_RIGHT, SLOWER, ContinuousAction, DiscreteMetaAction
from ppuu.app.gym_config import default_config, merge_config
from ppuu.app.gym_env import HighwayEnv, HighwayVectorEnv
from ppuu.app.gym_observations import FEATURES, Kinematics, OccupancyGrid
from ppuu.app.gym_reward import DrivingReward, compare_controllers
from ppuu.simulator.episodes import ARRIVED, COLLISION
from ppuu.simulator.sim import BatchedSimulator

PPUU_IDS = sorted(i for i in gymnasium.registry if i.startswith("ppuu/"))
OBSERVATIONS = [{"type": "kinematics"}, {"type": "raster", "history": 2}, {"type": "occupancy_grid"}]
ACTIONS = [{"type": "continuous"}, {"type": "discrete_meta"}]


# ---------------------------------------------------------------------- config
def test_default_config_and_overrides():
    config = default_config()
    assert config["observation"]["type"] == "kinematics" and config["action"]["type"] == "continuous"
    assert config["reward"]["type"] == "driving" and config["split"] == "train"
    merged = merge_config(config, {"reward": {"arrival": 20.0}, "observation": "raster"})
    assert merged["reward"]["arrival"] == 20.0 and merged["reward"]["collision"] == -10.0
    assert merged["observation"] == {"type": "raster", "history": 1, "speed_scale": 30.0}
    assert config["reward"]["arrival"] == 10.0                      # the input is not modified


@pytest.mark.parametrize("overrides, message", [
    ({"observaton": {}}, "unknown config keys \\['observaton'\\]"),
    ({"observation": {"type": "lidar"}}, "expected one of \\['kinematics', 'occupancy_grid', 'raster'\\]"),
    ({"observation": {"vehicle_count": 5}}, "unknown parameters \\['vehicle_count'\\] for type 'kinematics'"),
    ({"observation": {"vehicles_count": -1}}, "vehicles_count"),
    ({"action": {"type": "continuous", "curvature_range": (-1.0, 1.0)}}, "curvature_range"),
    ({"reward": {"collision": 5.0}}, "collision <= 0"),
    ({"reward": {"cost_weights": (1.0, 2.0)}}, "three non-negative numbers"),
    ({"split": "dev"}, "config\\['split'\\]"),
    ({"max_episode_steps": 0}, "max_episode_steps"),
    ("fast", "expected a dict"),
])
def test_bad_config_is_rejected_with_its_key(scene, overrides, message):
    with pytest.raises(ValueError, match=message):
        HighwayEnv(scene=scene, config=overrides)


def test_make_with_config_and_reset_with_config(scene):
    env = gymnasium.make("ppuu/Highway-v0", scene=scene, config={"observation": {"vehicles_count": 3},
                                                                 "action": "discrete_meta"})
    assert env.observation_space.shape == (4, len(FEATURES)) and env.action_space == gymnasium.spaces.Discrete(5)
    obs, _ = env.reset(seed=0, options={"config": {"observation": {"type": "occupancy_grid"}, "action": "continuous"}})
    inner = env.unwrapped
    assert inner.observation_space.shape == (4, 16, 9) and obs.shape == (4, 16, 9)
    assert inner.action_space.shape == (2,)
    sim = inner.sim
    env.reset(options={"config": {"reward": {"progress": 1.0}}})
    assert inner.sim is sim                                        # no simulator rebuilt for a reward change
    env.reset(options={"config": {"observation": {"type": "raster", "history": 3}}})
    assert inner.sim.config.history == 3 and inner.sim.log is sim.log   # a new simulator on the shared log
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"configs": {}})


def test_envs_share_one_scene_and_traffic_log(scene_dir):
    a = HighwayEnv(scene=str(scene_dir))
    b = HighwayEnv(scene=str(scene_dir), config={"observation": "raster"})
    c = HighwayVectorEnv(4, scene=str(scene_dir), device="cpu")
    assert a.scene is b.scene is c.scene
    assert a.sim.log is b.sim.log is c.sim.log


# ---------------------------------------------------------------------- every id x observation x action
@pytest.mark.parametrize("observation", OBSERVATIONS, ids=lambda o: o["type"])
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a["type"])
@pytest.mark.parametrize("env_id", PPUU_IDS)
def test_check_env_every_id_observation_and_action(env_id, observation, action, scene):
    env = gymnasium.make(env_id, scene=scene, config={"observation": observation, "action": action})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    assert not [str(w.message) for w in caught if "infinity" not in str(w.message)]
    env.close()


@pytest.mark.parametrize("observation", OBSERVATIONS, ids=lambda o: o["type"])
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a["type"])
def test_random_episodes_stay_inside_the_observation_space(observation, action, scene):
    env = HighwayEnv(scene=scene, config={"observation": observation, "action": action})
    env.action_space.seed(0)
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        assert env.observation_space.contains(obs)
        for _ in range(400):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs), (episode, info)
            assert math.isfinite(reward)
            if terminated or truncated:
                break
        assert terminated or truncated


def test_vector_env_with_every_observation_type_stays_in_its_space(scene):
    for observation in OBSERVATIONS:
        envs = HighwayVectorEnv(3, scene=scene, device="cpu", config={"observation": observation,
                                                                      "action": "discrete_meta"})
        obs, _ = envs.reset(seed=0)
        for _ in range(30):
            assert envs.observation_space.contains(obs)
            obs, *_ = envs.step(envs.action_space.sample())
        envs.close()


def test_multiprocessing_with_spawn(scene_dir):
    def make():
        return HighwayEnv(scene=str(scene_dir), config={"action": "discrete_meta"})

    envs = gymnasium.vector.AsyncVectorEnv([make, make], context="spawn")
    obs, infos = envs.reset(seed=0)
    assert obs.shape == (2, 9, len(FEATURES)) and len(infos["vehicle_id"]) == 2
    obs, rewards, terminated, truncated, _ = envs.step(np.array([IDLE, FASTER]))
    assert envs.observation_space.contains(obs) and rewards.shape == (2,)
    envs.close()


# ---------------------------------------------------------------------- observations
def _sim(scene, n=4):
    sim = BatchedSimulator(scene, device="cpu")
    sim.reset(sim.episode_vehicles("train")[:n])
    return sim


def test_kinematics_matches_a_vehicle_by_vehicle_reading(scene):
    sim = _sim(scene)
    kinematics = Kinematics(vehicles_count=5, range_m=40.0, speed_scale=30.0)
    table = kinematics.observe(sim)
    assert table.shape == (4, 6, 8) and np.abs(table).max() <= 1.0
    others = sim.others(torch.arange(4), sim.frame)
    for b in range(4):                      # the slow, obvious way, one vehicle at a time
        position, unit, speed = (t[b].numpy() for t in sim.ego)
        rows = []
        for n in np.flatnonzero(others.mask[b].numpy()):
            d = others.centre[b, n].numpy() - position
            x, y = d @ unit, d @ np.array([-unit[1], unit[0]])
            if math.hypot(x, y) <= 40.0:
                rows.append((math.hypot(x, y), x / 40.0, y / 40.0))
        rows.sort()
        count = min(5, len(rows))
        np.testing.assert_array_equal(table[b, 1:1 + count, 0], 1.0)
        np.testing.assert_array_equal(table[b, 1 + count:], 0.0)
        np.testing.assert_allclose(table[b, 1:1 + count, 1:3], np.array([r[1:] for r in rows[:count]]), atol=1e-5)
        assert table[b, 0, 3] == pytest.approx(unit[0] * speed / 30.0, abs=1e-5)      # ego vx


def test_occupancy_grid_marks_the_cells_of_nearby_vehicles(scene):
    sim = _sim(scene)
    grid = OccupancyGrid(x_range=(-20.0, 40.0), y_range=(-6.0, 6.0), cell_m=(4.0, 2.0))
    observation = grid.observe(sim)
    assert observation.shape == (4, 4, 15, 6)
    others = sim.others(torch.arange(4), sim.frame)
    for b in range(4):
        position, unit, _ = (t[b].numpy() for t in sim.ego)
        occupied = set()
        for n in np.flatnonzero(others.mask[b].numpy()):
            d = others.centre[b, n].numpy() - position
            x, y = d @ unit, d @ np.array([-unit[1], unit[0]])
            if -20 <= x < 40 and -6 <= y < 6:
                occupied.add((int((40 - x) // 4), int((6 - y) // 2)))
        assert set(zip(*np.nonzero(observation[b, 0]))) == occupied
    assert observation[:, 3].max() == 1.0 and observation[:, 3].min() == 0.0     # road and off-road cells


# ---------------------------------------------------------------------- actions
def test_continuous_action_zero_is_no_action_and_ends_are_the_ranges(scene):
    sim = _sim(scene, 3)
    action = ContinuousAction(curvature_range=(-0.05, 0.05))
    action.bind(sim.config)
    u = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-1.0, 0.5]])
    physical = action.to_physical(u, sim)
    np.testing.assert_allclose(physical.numpy(), [[0, 0], [4.0, -0.05], [-8.0, 0.025]], atol=1e-6)
    np.testing.assert_allclose(action.from_physical(physical).numpy(), u.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="NaN or inf for envs \\[1\\]"):
        action.check(np.array([[0, 0], [np.nan, 0], [0, 0]]), sim, 3)


def test_meta_actions_steer_and_speed_towards_their_targets(scene):
    sim = _sim(scene, 5)
    meta = DiscreteMetaAction()
    meta.bind(sim.config)
    meta.on_episode_start(torch.arange(5), sim)
    lane = meta.target_lane.clone()
    physical = meta.to_physical(torch.tensor([LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER]), sim)
    lanes = sim.road.lane_count
    assert meta.target_lane.tolist() == [max(lane[0].item() - 1, 0), lane[1].item(),
                                         min(lane[2].item() + 1, lanes - 1), lane[3].item(), lane[4].item()]
    if lane[0] > 0:
        assert physical[0, 1] > 0                              # left = positive curvature
    if lane[2] < lanes - 1:
        assert physical[2, 1] < 0
    assert physical[3, 0] > 0 and physical[4, 0] < 0           # faster accelerates, slower brakes
    assert abs(physical[1, 0]) < 1e-3                          # idle keeps the speed
    with pytest.raises(ValueError, match="integer in \\[0, 5\\)"):
        meta.check(np.array([0, 1, 2, 3, 7]), sim, 5)


def test_meta_action_lane_change_reaches_the_next_lane(scene):
    """A lane change on an empty road (the other vehicles masked out) ends on the target lane's centre."""
    sim = _sim(scene, 1)
    sim.others = lambda slots, frame, _others=sim.others: _empty(_others(slots, frame))
    meta = DiscreteMetaAction()
    meta.bind(sim.config)
    meta.on_episode_start(torch.arange(1), sim)
    start_lane = int(meta.target_lane[0])
    move = LANE_LEFT if start_lane > 0 else LANE_RIGHT
    sim.step(meta.to_physical(torch.tensor([move]), sim))
    for _ in range(60):
        if bool(sim.done[0]):
            break
        sim.step(meta.to_physical(torch.tensor([IDLE]), sim))
    target = float(sim.road.lane_centres_y[int(meta.target_lane[0])])
    assert int(meta.target_lane[0]) != start_lane
    assert abs(float(sim.ego.position[0, 1]) - target) < 0.5, int(sim.outcome[0])


def _empty(slice_):
    slice_.mask = torch.zeros_like(slice_.mask)
    return slice_


# ---------------------------------------------------------------------- reward
def test_driving_reward_adds_its_terms(scene):
    env = HighwayEnv(scene=scene, config={"reward": {"progress": 0.5, "cost_weights": (1.0, 0.5, 2.0)}})
    _, info = env.reset(seed=0)
    _, reward, terminated, _, after = env.step(np.zeros(2))
    expected = 0.5 * (after["distance"] - info["distance"]) - (after["proximity_cost"] + 0.5 * after["lane_cost"]
                                                               + 2.0 * after["offroad_cost"])
    if not terminated:
        assert reward == pytest.approx(expected, abs=1e-4)
    # the outcome terms, on the step that ends the episode only
    from ppuu.simulator.costs import Costs
    from ppuu.simulator.sim import StepResult

    zeros = torch.zeros(3)
    result = StepResult(None, None, Costs(zeros, zeros, zeros), zeros, torch.tensor([COLLISION, ARRIVED, COLLISION]),
                        torch.ones(3, dtype=torch.bool), torch.tensor([True, True, False]))
    sim = type("FakeSim", (), {"distance": torch.zeros(3)})()
    reward = DrivingReward(progress=0.0, collision=-7.0, cost_weights=(0, 0, 0))
    assert reward(sim, result, torch.zeros(3), torch.ones(3, dtype=torch.bool)).tolist() == [-7.0, 10.0, 0.0]


def test_default_reward_ranks_recording_above_no_action_above_crashing(scene):
    results = compare_controllers(scene, split="test")
    assert results["human"]["mean_return"] > results["no_action"]["mean_return"] > results["swerve"]["mean_return"]
    assert results["swerve"]["mean_steps"] < results["no_action"]["mean_steps"]
