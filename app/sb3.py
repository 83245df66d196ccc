"""stable-baselines3 out of the box (the optional extra ``pip install ppuu[sb3]``).

* :class:`SB3VecEnv`: an SB3 ``VecEnv`` over the native batched
  :class:`~ppuu.app.gym_env.HighwayVectorEnv` (one simulator for every slot). SB3 restarts a
  finished env within the same step and hands its final observation over in
  ``infos[i]["terminal_observation"]``; the adapter does so with the vector env's public
  :meth:`~ppuu.app.gym_env.HighwayVectorEnv.reset_slots`. Finished envs' infos also carry
  ``is_success`` (arrived: SB3 logs the rate), ``outcome``, ``distance`` and
  ``TimeLimit.truncated``.
* :class:`RasterExtractor`: a features extractor sized for the 117 x 24 raster (SB3's default
  NatureCNN needs at least 36 x 36 pixels), image and ego state together.
* :func:`make_sb3_env`, :func:`policy_for`: the vec env and ``(policy, policy_kwargs)`` for any
  observation type::

      from stable_baselines3 import PPO
      from ppuu.app.sb3 import make_sb3_env, policy_for

      venv = make_sb3_env(16, scene="i80-sumo-15min-s0", config={"observation": {"type": "kinematics"}})
      policy, kwargs = policy_for(venv.observation_space)
      model = PPO(policy, venv, policy_kwargs=kwargs, seed=0).learn(100_000)

* :class:`AgentController`: a trained SB3 model as a controller of
  :func:`ppuu.simulator.evaluate.evaluate`, so that it gets a row in the same results table as
  the planners (``scripts/train_sb3.py`` does it).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from torch import Tensor, nn

from ppuu.app.gym_config import build_parts
from ppuu.app.gym_env import HighwayVectorEnv
from ppuu.simulator.sim import BatchedSimulator, Observation


class SB3VecEnv(VecEnv):
    """stable-baselines3's ``VecEnv`` interface over one :class:`~ppuu.app.gym_env.HighwayVectorEnv`.

    Args:
        envs: the native vector env (its slots are SB3's envs).
    """

    def __init__(self, envs: HighwayVectorEnv):
        self.envs = envs            # first: VecEnv.__init__ reads render_mode through get_attr
        super().__init__(envs.num_envs, envs.single_observation_space, envs.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        # SB3's seed(seed) gives env i the seed seed + i: one simulator takes the first.
        seed = self._seeds[0] if self._seeds else None
        options = self._options[0] if self._options and self._options[0] else None
        observation, _ = self.envs.reset(seed=seed, options=options)
        self._reset_seeds()
        self._reset_options()
        return observation

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        observation, reward, terminated, truncated, info = self.envs.step(self._actions)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finished = np.flatnonzero(done)
        if len(finished):
            for i in finished:          # only the finished slots: SB3 wants one dict per env
                final = ({k: v[i] for k, v in observation.items()} if isinstance(observation, dict)
                         else observation[i])
                infos[i] = {"terminal_observation": final, "is_success": bool(info["outcome"][i] == "arrived"),
                            "outcome": info["outcome"][i], "distance": float(info["distance"][i]),
                            "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
            observation, _ = self.envs.reset_slots(finished)
        return observation, reward.astype(np.float32), done, infos

    def close(self) -> None:
        self.envs.close()

    def get_images(self) -> list[np.ndarray]:
        """One (H, W, 3) uint8 top-down frame per env (SB3's ``render()`` and ``VecVideoRecorder`` read these);
        the native env must be made with ``render_mode="rgb_array"``."""
        frames = self.envs.render()
        if frames is None:
            raise RuntimeError("no frames: make the env with render_mode='rgb_array' to render it")
        return list(frames)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.envs, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.envs, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self.envs, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)


def make_sb3_env(num_envs: int, monitor: bool = True, **kwargs) -> VecEnv:
    """An :class:`SB3VecEnv` over ``HighwayVectorEnv(num_envs, **kwargs)`` (``device`` defaults to
    "cpu" here), wrapped in SB3's ``VecMonitor`` (episode returns and lengths) unless ``monitor`` is False."""
    kwargs.setdefault("device", "cpu")
    venv = SB3VecEnv(HighwayVectorEnv(num_envs, **kwargs))
    return VecMonitor(venv, info_keywords=("is_success",)) if monitor else venv


class RasterExtractor(BaseFeaturesExtractor):
    """Features of the ``raster`` observation: a small CNN on the image and the ego state, joined.

    Three stride-2 convolutions bring the (K * 4, 117, 24) image to (64, 15, 3); a linear layer
    maps it and the (8,) state to ``features_dim`` features. SB3 scales the uint8 image to
    [0, 1] before it arrives here.
    """

    def __init__(self, observation_space: spaces.Dict, features_dim: int = 256):
        super().__init__(observation_space, features_dim)
        image = observation_space["image"]
        self.cnn = nn.Sequential(
            nn.Conv2d(image.shape[0], 32, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *image.shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat + observation_space["state"].shape[0], features_dim), nn.ReLU())

    def forward(self, observations: dict[str, Tensor]) -> Tensor:
        return self.head(torch.cat([self.cnn(observations["image"]), observations["state"]], dim=1))


def policy_for(observation_space: gymnasium.Space) -> tuple[str, dict]:
    """(SB3 policy name, policy_kwargs) for an observation space of these envs.

    Raises:
        ValueError: a raster image with more channels than 24 (K > 6 frames): SB3 would take it
            for a channels-last image and transpose it.
    """
    if isinstance(observation_space, spaces.Dict):
        image = observation_space["image"]
        if image.shape[0] > min(image.shape[1:]):
            raise ValueError(f"raster image of shape {image.shape}: SB3 reads more than {min(image.shape[1:])} "
                             "channels as a channels-last image; use a history of at most 6 frames with SB3")
        return "MultiInputPolicy", {"features_extractor_class": RasterExtractor,
                                    "features_extractor_kwargs": {"features_dim": 256}}
    return "MlpPolicy", {}


class AgentController:
    """A trained SB3 model as a controller of :func:`ppuu.simulator.evaluate.evaluate`.

    Args:
        model: an SB3 algorithm (``model.predict``).
        config: the env config it was trained with (its observation and action types are rebuilt
            here, fresh, so that an evaluation keeps its own per-slot action state).
        deterministic: use the policy's mode (True) or sample.
    """

    def __init__(self, model, config: dict, deterministic: bool = True):
        self.model, self.deterministic = model, deterministic
        self.observation, self.action, _ = build_parts(config)
        self._bound = False

    def on_episode_start(self, slots: Tensor, sim: BatchedSimulator) -> None:
        if not self._bound:
            self.action.bind(sim.config)
            self._bound = True
        self.action.on_episode_start(slots, sim)

    def __call__(self, observation: Observation, sim: BatchedSimulator) -> Tensor:
        action, _ = self.model.predict(self.observation.observe(sim), deterministic=self.deterministic)
        return self.action.to_physical(self.action.check(action, sim, sim.batch_size), sim)
