"""Gymnasium doors into the simulator: one episode at a time, or B episodes in one batch.

* :class:`HighwayEnv` (``gymnasium.make("ppuu/Highway-v0", ...)``): a ``gymnasium.Env`` that
  drives one ego car (a :class:`~ppuu.simulator.sim.BatchedSimulator` with B = 1).
* :class:`HighwayVectorEnv` (``gymnasium.make_vec("ppuu/Highway-v0", num_envs=B)``): a native
  ``gymnasium.vector.VectorEnv``: B episodes advanced by one tensor program on one device
  (CUDA when available), finished slots restarted in place. Use it for training and
  evaluation; wrapping B copies of :class:`HighwayEnv` in a ``SyncVectorEnv`` works but
  loses the batching. :mod:`ppuu.app.sb3` adapts it to stable-baselines3.

Registered ids (by ``import ppuu``, see :func:`ppuu.app.register_envs`): ``ppuu/Highway-v0``
(replayed traffic) and ``ppuu/HighwayReactive-v0`` (IDM traffic that brakes for the ego)::

    import ppuu, gymnasium                       # or gymnasium.make("ppuu:ppuu/Highway-v0", ...)
    env = gymnasium.make("ppuu/Highway-v0", scene="i80-sumo-15min-s0",
                         config={"observation": {"type": "kinematics", "vehicles_count": 8},
                                 "action": {"type": "discrete_meta"}})
    env.reset(options={"config": {"reward": {"arrival": 20.0}}})      # reconfigure at a reset
    envs = gymnasium.make_vec("ppuu/Highway-v0", num_envs=256, device="cuda")

Both read the same keyword arguments (see :class:`HighwayEnv`) and a **config**, a nested
dict in HighwayEnv's manner (every key, default and check: :mod:`ppuu.app.gym_config`):

Episodes
    drawn from the **training** split by default (``config["split"]``: train agents on it and
    keep "val" and "test" for evaluation, as :func:`ppuu.simulator.evaluate.evaluate` does),
    on the simulator's course (``sim_config=SimConfig(course=...)``; by default the site's,
    ``i80-reference`` on I-80: see :mod:`ppuu.simulator.episodes`).
Observation (``config["observation"]``, :mod:`ppuu.app.gym_observations`)
    ``kinematics`` (default): Box(-1, 1, (1 + N, 8)), the ego and its N nearest vehicles,
    relative and normalised; ``raster``: Dict(image=uint8 (K * 4, 117, 24), state=(8,)), the
    egocentric raster with K history frames and the ego's normalised row;
    ``occupancy_grid``: Box(-1, 1, (4, rows, cols)).
Action (``config["action"]``, :mod:`ppuu.app.gym_actions`)
    ``continuous`` (default): Box(-1, 1, (2,)), normalised (acceleration, curvature), 0 = keep
    speed and heading, out-of-range values clipped; ``discrete_meta``: Discrete(5), lane left,
    idle, lane right, faster, slower, executed by a tracking controller. NaN, inf or a wrong
    shape raise ``ValueError``.
Reward (``config["reward"]``, :mod:`ppuu.app.gym_reward`)
    ``driving`` (default): 0.1 per metre of progress, -10 on collision or leaving the road,
    +10 on arrival, minus (0.05, 0.01, 0.05) x (proximity, lane, off-road) costs per step;
    ``cost``: the planners' objective, minus ``SimConfig.cost_weights`` x the costs.
Episode end
    ``terminated`` on arrival, collision or off-road; ``truncated`` when the recording runs
    out (out of data: the scene ends or the ego takes more than ``SimConfig.time_limit`` x
    its vehicle's recorded time) or after ``config["max_episode_steps"]`` steps, if given.
Info
    ``vehicle_id`` (the recorded vehicle the ego replaced), ``outcome`` (name from
    :data:`ppuu.simulator.episodes.OUTCOMES`: running, arrived, collision, offroad,
    out_of_data), ``distance`` (m along the road since the end of the context),
    ``speed`` (m/s), ``proximity_cost``, ``lane_cost``, ``offroad_cost`` (of the current
    observation), ``steps`` (actions applied this episode); the vector env adds
    ``episode_number`` (episodes the slot has started, this one included).
Memory
    scenes are shared: every env and vector env of the same scene folder (or Scene object)
    in a process holds one copy of the scene and one :class:`~ppuu.simulator.traffic.TrafficLog`
    per device (:func:`load_scene`, :func:`shared_log`), and a vector env's slots share one
    simulator. Figures: BENCHMARKS.md.
Per-slot agent state
    an agent that keeps state per slot (e.g. an MPC planner's warm-started plans) hears every
    slot that starts an episode, autoresets included, through
    ``envs.sim.add_episode_start_hook(hook)`` (``hook(slots, sim)``, see
    :mod:`ppuu.simulator.evaluate`); the hooks stay when a config change rebuilds the simulator.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ppuu.app import ENV_IDS, register_envs  # noqa: F401  (register_envs: the `gymnasium.envs` entry point)
from ppuu.app.gym_config import build_parts, default_config, merge_config, split_of
from ppuu.data.scene import DEFAULT_WORKDIR, Scene, list_scenes, scene_path, scenes_dir
from ppuu.simulator.costs import Costs
from ppuu.simulator.episodes import ARRIVED, COLLISION, OFFROAD, OUT_OF_DATA, OUTCOMES
from ppuu.simulator.sim import BatchedSimulator, SimConfig
from ppuu.simulator.traffic import TrafficLog

logger = logging.getLogger(__name__)

GENERATE_COMMAND = "python -m ppuu data generate --site i80 --minutes 15 --seed 0 --workdir {workdir}"
"""How to make a scene (printed when there is none): 15 minutes of I-80-shaped SUMO traffic, about a minute."""

TERMINAL = (ARRIVED, COLLISION, OFFROAD)
"""Outcome codes that terminate an episode (out of data truncates it instead)."""

_OUTCOME_NAMES = np.array(OUTCOMES, dtype=object)
_SCENES: "weakref.WeakValueDictionary[tuple, Scene]" = weakref.WeakValueDictionary()
_LOGS: dict[tuple, TrafficLog] = {}


# ---------------------------------------------------------------------- scene and simulator
def load_scene(scene: Scene | str | Path | None = None, workdir: str | Path = DEFAULT_WORKDIR) -> Scene:
    """The scene an environment runs on, shared with every other env of the same folder in this process.

    Args:
        scene: a :class:`~ppuu.data.scene.Scene`; a scene folder; the name of a scene in
            ``<workdir>/scenes/``; or None for the most recently written scene of the workspace.
        workdir: the workspace folder.

    Raises:
        FileNotFoundError: no such scene, or no scene at all in the workspace (the message gives
            the command that generates one: nothing is generated behind the user's back).
    """
    if isinstance(scene, Scene):
        return scene
    workdir = Path(workdir)
    if scene is not None:
        for folder in (Path(scene), scene_path(workdir, str(scene))):
            if (folder / "scene.json").is_file():
                return _cached_scene(folder)
        known = list_scenes(workdir)
        raise FileNotFoundError(f"scene {str(scene)!r} is neither a scene folder nor a scene in "
                                f"{scenes_dir(workdir)} (scenes there: {known or 'none'}); create one with "
                                f"`{GENERATE_COMMAND.format(workdir=workdir)}`")
    names = list_scenes(workdir)
    if not names:
        raise FileNotFoundError(f"no scene in {scenes_dir(workdir)}: generate one with "
                                f"`{GENERATE_COMMAND.format(workdir=workdir)}` (about a minute; --minutes 2 for a "
                                "quick one), then pass scene=NAME (and workdir=...) or a scene folder")
    latest = max(names, key=lambda n: (scene_path(workdir, n) / "scene.json").stat().st_mtime)
    logger.info("no scene given: using the latest of %s, %s", scenes_dir(workdir), latest)
    return _cached_scene(scene_path(workdir, latest))


def _cached_scene(folder: Path) -> Scene:
    key = (str(folder.resolve()), (folder / "scene.json").stat().st_mtime_ns)
    scene = _SCENES.get(key)
    if scene is None:
        scene = Scene.load(folder)
        _SCENES[key] = scene
    return scene


def shared_log(scene: Scene, device: torch.device, dtype: torch.dtype) -> TrafficLog:
    """The scene's :class:`~ppuu.simulator.traffic.TrafficLog` on a device, one per scene object
    in this process (dropped with the scene)."""
    key = (id(scene), str(device), dtype)
    if key not in _LOGS:
        _LOGS[key] = TrafficLog(scene, device, dtype)
        weakref.finalize(scene, _LOGS.pop, key, None)
    return _LOGS[key]


def _initial_config(config: dict | None, split: Any, traffic: str | None, history: int | None,
                    max_episode_steps: int | None) -> dict:
    """The env's config: defaults, then ``config``, then the keyword shortcuts.

    A shortcut and the same key of ``config`` with different values are refused rather than one silently
    dropped (``gymnasium.make("ppuu/Highway-v0", config={"traffic": "reactive"})`` meets the id's
    ``traffic="replay"`` here).
    """
    shortcuts: dict[str, Any] = {}
    if split is not _UNSET:
        shortcuts["split"] = "all" if split is None else split
    if traffic is not None:
        shortcuts["traffic"] = traffic
    if max_episode_steps is not None:
        shortcuts["max_episode_steps"] = max_episode_steps
    for key, value in shortcuts.items():
        if config and key in config and config[key] != value:
            hint = (" (the registered ids fix the traffic: ppuu/Highway-v0 replays it, ppuu/HighwayReactive-v0 "
                    "reacts)") if key == "traffic" else ""
            raise ValueError(f"{key}={value!r} and config[{key!r}]={config[key]!r} disagree: give one{hint}")
    if history is not None:
        shortcuts["observation"] = {"type": "raster", "history": history}
    merged = merge_config(default_config(), config)
    return merge_config(merged, shortcuts)


class _Unset:
    def __repr__(self):
        return "'train' (config default)"


_UNSET = _Unset()


class _Core:
    """What both envs share: scene, simulator, observation, action and reward of a config."""

    def __init__(self, scene, config: dict, device, workdir, sim_config: SimConfig | None, dtype=torch.float32):
        self.scene = load_scene(scene, workdir)
        self.base_sim_config = sim_config or SimConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype
        self.sim: BatchedSimulator | None = None
        self.config: dict = {}
        self._hook = None
        self.configure(config)

    def configure(self, config: dict) -> None:
        """Apply a validated config: rebuild the simulator only when its settings or the split change."""
        observation, action, reward = build_parts(config)
        overrides = dict(observation.sim_overrides())
        if config["traffic"] is not None:
            overrides["traffic"] = config["traffic"]
        sim_config = dataclasses.replace(self.base_sim_config, **overrides)
        action.bind(sim_config)
        if self.sim is None or sim_config != self.sim.config or config["split"] != self.config.get("split"):
            sim = BatchedSimulator(self.scene, sim_config, device=self.device, dtype=self.dtype,
                                   log=shared_log(self.scene, self.device, self.dtype))
            episodes = sim.episode_vehicles(split_of(config))
            if len(episodes) == 0:
                counts = {s: len(sim.episode_vehicles(s)) for s in ("train", "val", "test")}
                raise ValueError(f"scene {self.scene.meta.name!r} has no episode in split {config['split']!r} on "
                                 f"course {sim.course} (episodes per split: {counts}); pick another split, course "
                                 "or a longer scene")
            if self.sim is not None:          # hooks added through env.sim (a planner's per-slot state) carry over
                sim.take_episode_start_hooks(self.sim)
            self.sim, self.episode_ids = sim, episodes
        if self._hook is not None:
            self._hook.remove()
        self._hook = self.sim.add_episode_start_hook(action.on_episode_start)
        self.config, self.observation, self.action, self.reward = config, observation, action, reward

    @property
    def max_episode_steps(self) -> int | None:
        return self.config["max_episode_steps"]

    def spaces(self):
        return self.observation.space(self.sim.config), self.action.space()

    def step(self, action: Any, batch: int | None, ignore: np.ndarray | None = None):
        """Check and apply the agent's actions: (StepResult, (B,) reward tensor)."""
        sim = self.sim
        checked = self.action.check(action, sim, batch, ignore)
        running, before = ~sim.done, sim.distance.clone()
        result = sim.step(self.action.to_physical(checked, sim))
        return result, self.reward(sim, result, before, running)


def _infos(sim: BatchedSimulator, costs: Costs) -> dict[str, np.ndarray]:
    """Per-slot info arrays (B,) (module docstring), with two device-to-host copies in all."""
    floats = torch.stack([sim.distance, sim.ego.speed, *costs]).cpu().numpy().astype(np.float64)
    ints = torch.stack([sim.vehicle_id, sim.outcome, sim.steps]).cpu().numpy()
    return {
        "vehicle_id": ints[0],
        "outcome": _OUTCOME_NAMES[ints[1]],
        "distance": floats[0],
        "speed": floats[1],
        "proximity_cost": floats[2],
        "lane_cost": floats[3],
        "offroad_cost": floats[4],
        "steps": ints[2],
    }


def _frame(sim: BatchedSimulator, renderer, slot: int) -> np.ndarray:
    """Top-down frame of one slot (H, W, 3) uint8."""
    slots = torch.tensor([slot], device=sim.device)
    others = sim.others(slots, sim.frame[slots])
    speed = float(sim.ego.speed[slot])
    text = (f"vehicle {int(sim.vehicle_id[slot])}  step {int(sim.steps[slot])}\n"
            f"speed {speed:.1f} m/s ({speed * 3.6:.0f} km/h)\n{OUTCOMES[int(sim.outcome[slot])]}")
    return renderer.draw(sim.ego.position[slot], sim.ego.heading[slot], sim.size[slot], others.centre[0],
                         others.heading[0], others.size[0], others.mask[0], text=text)


def _renderer(sim: BatchedSimulator, render_kwargs: dict | None):
    from ppuu.app.render import TopDownRenderer

    return TopDownRenderer(sim.road, **(render_kwargs or {}))


def _reset_options(options: dict | None, id_key: str) -> tuple[Any, dict | None]:
    options = dict(options or {})
    ids = options.pop(id_key, None)
    config = options.pop("config", None)
    if options:
        raise ValueError(f"unknown reset options {sorted(options)}: expected only {id_key!r} and 'config'")
    return ids, config


# ---------------------------------------------------------------------- single environment
class HighwayEnv(gymnasium.Env):
    """One ego car on a highway scene (spaces, reward and info: module docstring).

    Args:
        scene: a Scene, a scene folder, a scene name in ``workdir``, or None for the workspace's
            latest scene (see :func:`load_scene`; none there raises an error naming the command
            that makes one).
        config: overrides of :func:`ppuu.app.gym_config.default_config` (observation, action,
            reward, split, traffic, max_episode_steps).
        split, traffic, max_episode_steps: shortcuts for the config keys of the same names
            (``split=None``: every split); they win over ``config``.
        history: shortcut for ``config["observation"] = {"type": "raster", "history": history}``.
        device: torch device of the simulator ("cpu" by default: one episode runs faster there
            than as GPU kernel launches).
        render_mode: None, "rgb_array" (``render()`` returns a top-down frame) or "human" (a
            pygame window, updated at every reset and step).
        workdir: workspace folder for scene names.
        sim_config: full :class:`~ppuu.simulator.sim.SimConfig` (context, course, bounds,
            raster...); the config's traffic and the raster observation's history override it.
        render_kwargs: keyword arguments of :class:`ppuu.app.render.TopDownRenderer`
            (``pixels_per_metre``, ``view_length_m``, ``view_width_m``).

    ``reset(seed=..., options={"vehicle_id": id, "config": {...}})`` starts the episode of the
    given recorded vehicle, or of one drawn from the split with ``self.np_random``, after
    applying the config overrides, if any (the spaces change with the observation or action
    type). Stepping after the episode has ended leaves it frozen (reward 0, same flags) until
    ``reset``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(self, scene: Scene | str | Path | None = None, config: dict | None = None, split: Any = _UNSET,
                 traffic: str | None = None, history: int | None = None, device: str | torch.device = "cpu",
                 render_mode: str | None = None, workdir: str | Path = DEFAULT_WORKDIR,
                 max_episode_steps: int | None = None, sim_config: SimConfig | None = None,
                 render_kwargs: dict | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r}: expected None or one of {self.metadata['render_modes']}")
        self._core = _Core(scene, _initial_config(config, split, traffic, history, max_episode_steps), device,
                           workdir, sim_config)
        self.scene = self._core.scene
        self.observation_space, self.action_space = self._core.spaces()
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.sim.dt)}
        self.render_mode = render_mode
        self._render_kwargs = render_kwargs
        self._renderer = None
        self._all_episodes: set[int] | None = None
        self._ended: tuple | None = None          # (observation, terminated, truncated, info) once the episode ends

    # Read-only views of the core, for users and tests.
    sim = property(lambda self: self._core.sim, doc="the :class:`~ppuu.simulator.sim.BatchedSimulator` (B = 1)")
    episode_ids = property(lambda self: self._core.episode_ids, doc="(E,) vehicle ids of the split's episodes")
    config = property(lambda self: self._core.config, doc="the current config (a dict: do not modify)")
    split = property(lambda self: split_of(self._core.config), doc="the split (None: all)")
    max_episode_steps = property(lambda self: self._core.max_episode_steps)

    def configure(self, config: dict) -> None:
        """Apply config overrides now (HighwayEnv's ``configure``); takes effect at the next reset."""
        self._core.configure(merge_config(self._core.config, config))
        self.observation_space, self.action_space = self._core.spaces()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        vehicle_id, config = _reset_options(options, "vehicle_id")
        if config is not None:
            self.configure(config)
        if vehicle_id is None:
            vehicle_id = int(self.np_random.choice(self.episode_ids))
        else:
            vehicle_id = self._check_vehicle(vehicle_id)
        self.sim.reset([vehicle_id])
        self._ended = None
        info = self._info(self.sim.last_costs)
        if self.render_mode == "human":
            self.render()
        return self._obs(), info

    def step(self, action):
        if self.sim.batch_size == 0:
            raise RuntimeError("step() before reset(): call reset() first")
        if self._ended is not None:               # frozen: the simulator's own endings and the step limit alike
            observation, terminated, truncated, info = self._ended
            observation = ({k: v.copy() for k, v in observation.items()} if isinstance(observation, dict)
                           else observation.copy())
            return observation, 0.0, terminated, truncated, dict(info)
        result, reward = self._core.step(action, None)
        outcome = int(result.outcome[0])
        terminated = outcome in TERMINAL
        truncated = outcome == OUT_OF_DATA or (not terminated and self.max_episode_steps is not None
                                               and int(self.sim.steps[0]) >= self.max_episode_steps)
        info = self._info(result.costs)
        observation = self._obs()
        if terminated or truncated:
            self._ended = (observation, terminated, truncated, info)
        if self.render_mode == "human":
            self.render()
        return observation, float(reward[0]), terminated, truncated, info

    def render(self):
        if self.render_mode is None:
            gymnasium.logger.warn("render() without a render_mode: make the env with render_mode='rgb_array' "
                                  "or 'human'")
            return None
        if self.sim.batch_size == 0:
            raise RuntimeError("render() before reset(): call reset() first")
        if self._renderer is None:
            self._renderer = _renderer(self.sim, self._render_kwargs)
        frame = _frame(self.sim, self._renderer, 0)
        if self.render_mode == "human":
            self._renderer.show(frame, fps=self.metadata["render_fps"], caption=f"ppuu: {self.scene.meta.name}")
            return None
        return frame

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ helpers
    def _obs(self):
        observation = self._core.observation.observe(self.sim)
        if isinstance(observation, dict):
            return {k: v[0] for k, v in observation.items()}
        return observation[0]

    def _info(self, costs: Costs) -> dict[str, Any]:
        return {k: v[0].item() if isinstance(v[0], np.generic) else v[0] for k, v in _infos(self.sim, costs).items()}

    def _check_vehicle(self, vehicle_id) -> int:
        if self._all_episodes is None:
            self._all_episodes = set(self.sim.episode_vehicles(None).tolist())
        vehicle_id = int(vehicle_id)
        if vehicle_id not in self._all_episodes:
            raise ValueError(f"vehicle {vehicle_id} does not make an episode in scene {self.scene.meta.name!r} "
                             "(see simulator.episodes.episode_vehicles)")
        return vehicle_id


# ---------------------------------------------------------------------- vector environment
class HighwayVectorEnv(VectorEnv):
    """B episodes in one :class:`~ppuu.simulator.sim.BatchedSimulator` (spaces and info: module docstring).

    Arguments as :class:`HighwayEnv`, plus ``num_envs`` (B); ``device`` defaults to CUDA when
    available; render modes: "rgb_array" only (``render()`` returns a tuple of B frames).

    Autoreset: ``AutoresetMode.NEXT_STEP`` (gymnasium's default). A step that ends a slot's
    episode returns its final observation, reward and ``terminated`` / ``truncated``; the
    *next* ``step`` ignores that slot's action, restarts it with a new episode vehicle drawn
    from the split with ``self.np_random`` (``sim.reset(ids, slots=...)``), and returns the
    new episode's first observation with reward 0 and both flags False. Chosen because the
    final observation stays in the observation array (no ``final_obs`` info to unpack) and
    because it is what gymnasium's wrappers and most training code expect. Code that wants
    the same-step convention (stable-baselines3's) restarts the finished slots itself with
    the public :meth:`reset_slots` right after the step.

    ``reset(seed=..., options={"vehicle_ids": [...], "config": {...}})`` starts the B given
    episodes, or B drawn from the split (distinct when the split has at least B), after
    applying the config overrides, if any. Counters: :attr:`episodes_started` (B,) per slot
    and :attr:`outcome_counts` (finished episodes by outcome name, "time_limit" for
    ``max_episode_steps`` truncations).

    The step keeps the work in torch on the simulator's device; observations, rewards and
    flags come back as numpy (float32 tables, uint8 images, float64 rewards, bool flags).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, scene: Scene | str | Path | None = None, config: dict | None = None,
                 split: Any = _UNSET, traffic: str | None = None, history: int | None = None,
                 device: str | torch.device | None = None, render_mode: str | None = None,
                 workdir: str | Path = DEFAULT_WORKDIR, max_episode_steps: int | None = None,
                 sim_config: SimConfig | None = None, render_kwargs: dict | None = None):
        if num_envs < 1:
            raise ValueError(f"num_envs {num_envs}: expected >= 1")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r}: expected None or one of {self.metadata['render_modes']} "
                             "for the vector env")
        self._core = _Core(scene, _initial_config(config, split, traffic, history, max_episode_steps), device,
                           workdir, sim_config)
        self.scene = self._core.scene
        self.num_envs = num_envs
        self._set_spaces()
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.sim.dt)}
        self.render_mode = render_mode
        self._render_kwargs = render_kwargs
        self._renderer = None
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self.episodes_started = np.zeros(num_envs, dtype=np.int64)
        self.outcome_counts = {name: 0 for name in (*OUTCOMES[1:], "time_limit")}

    sim = property(lambda self: self._core.sim, doc="the :class:`~ppuu.simulator.sim.BatchedSimulator` (B slots)")
    episode_ids = property(lambda self: self._core.episode_ids, doc="(E,) vehicle ids of the split's episodes")
    config = property(lambda self: self._core.config, doc="the current config (a dict: do not modify)")
    split = property(lambda self: split_of(self._core.config), doc="the split (None: all)")
    max_episode_steps = property(lambda self: self._core.max_episode_steps)

    def _set_spaces(self) -> None:
        self.single_observation_space, self.single_action_space = self._core.spaces()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def configure(self, config: dict) -> None:
        """Apply config overrides now; takes effect at the next reset (which must follow)."""
        self._core.configure(merge_config(self._core.config, config))
        self._set_spaces()

    def observe(self):
        """The batch's current observation (numpy, batched as :attr:`observation_space`)."""
        return self._core.observation.observe(self.sim)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        ids, config = _reset_options(options, "vehicle_ids")
        if config is not None:
            self.configure(config)
        if ids is None:
            ids = self.np_random.choice(self.episode_ids, size=self.num_envs,
                                        replace=len(self.episode_ids) < self.num_envs)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != self.num_envs:
            raise ValueError(f"{len(ids)} vehicle_ids for num_envs = {self.num_envs}")
        self.sim.reset(ids)
        self._autoreset[:] = False
        self.episodes_started += 1
        return self.observe(), self._info(self.sim.last_costs)

    def reset_slots(self, slots: Any, vehicle_ids: Any = None):
        """Restart some slots now with new episodes (the others go on untouched).

        Args:
            slots: (S,) slot indices or a (B,) bool mask.
            vehicle_ids: (S,) recorded vehicles, or None to draw them from the split with ``self.np_random``.

        Returns:
            (observation, info) of the whole batch, as :meth:`reset`. A slot restarted here is no
            longer pending an autoreset at the next step.
        """
        slots = np.asarray(slots)
        slots = np.flatnonzero(slots) if slots.dtype == bool else slots.astype(np.int64).reshape(-1)
        if len(slots) and (slots.min() < 0 or slots.max() >= self.num_envs):
            raise ValueError(f"slots {slots.tolist()[:10]}: expected indices in [0, {self.num_envs})")
        self._restart(slots, vehicle_ids)
        return self.observe(), self._info(self.sim.last_costs)

    def _restart(self, slots: np.ndarray, vehicle_ids: Any = None) -> None:
        if len(slots) == 0:
            return
        if vehicle_ids is None:
            vehicle_ids = self.np_random.choice(self.episode_ids, size=len(slots),
                                                replace=len(self.episode_ids) < len(slots))
        self.sim.reset(np.asarray(vehicle_ids, dtype=np.int64).reshape(-1),
                       slots=torch.as_tensor(slots, device=self.sim.device))
        self._autoreset[slots] = False
        self.episodes_started[slots] += 1

    def step(self, actions):
        if self.sim.batch_size == 0:
            raise RuntimeError("step() before reset(): call reset() first")
        sim = self.sim
        restart = self._autoreset.copy()
        result, reward = self._core.step(actions, self.num_envs, ignore=restart)
        # One device-to-host copy for the flags and rewards.
        over = result.just_done
        limited = torch.zeros_like(over)
        if self.max_episode_steps is not None:
            limited = ~result.done & (sim.steps >= self.max_episode_steps)
        host = torch.stack([reward.to(torch.float64), result.outcome.to(torch.float64),
                            over.to(torch.float64), limited.to(torch.float64)]).cpu().numpy()
        reward, outcome, over, limited = host[0], host[1].astype(np.int64), host[2] > 0, host[3] > 0
        terminated = over & np.isin(outcome, TERMINAL) & ~restart
        truncated = ((over & (outcome == OUT_OF_DATA)) | limited) & ~restart
        reward = np.where(restart, 0.0, reward)
        codes, counts = np.unique(outcome[over & ~restart], return_counts=True)
        for code, count in zip(codes, counts):
            self.outcome_counts[OUTCOMES[code]] += int(count)
        self.outcome_counts["time_limit"] += int((limited & ~restart).sum())

        self._restart(np.flatnonzero(restart))
        self._autoreset = terminated | truncated
        return self.observe(), reward, terminated, truncated, self._info(sim.last_costs)

    def render(self):
        if self.render_mode is None:
            gymnasium.logger.warn("render() without a render_mode: make the vector env with render_mode='rgb_array'")
            return None
        if self.sim.batch_size == 0:
            raise RuntimeError("render() before reset(): call reset() first")
        if self._renderer is None:
            self._renderer = _renderer(self.sim, self._render_kwargs)
        return tuple(_frame(self.sim, self._renderer, b) for b in range(self.num_envs))

    def close_extras(self, **kwargs):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _info(self, costs: Costs) -> dict[str, np.ndarray]:
        info = _infos(self.sim, costs)
        info["episode_number"] = self.episodes_started.copy()
        # gymnasium's vector-info layout: every key has a boolean mask "_key" of the envs that set it.
        present = np.ones(self.num_envs, dtype=bool)
        return {**info, **{f"_{k}": present.copy() for k in info}}
