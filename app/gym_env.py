"""Gymnasium doors into the simulator: one episode at a time, or B episodes in one batch.

* :class:`HighwayEnv` (``gymnasium.make("ppuu/Highway-v0", ...)``): a ``gymnasium.Env`` that
  drives one ego car (a :class:`~ppuu.simulator.sim.BatchedSimulator` with B = 1).
* :class:`HighwayVectorEnv` (``gymnasium.make_vec("ppuu/Highway-v0", num_envs=B)``): a native
  ``gymnasium.vector.VectorEnv``: B episodes advanced by one tensor program on one device
  (CUDA when available), finished slots restarted in place. Use it for training and
  evaluation; wrapping B copies of :class:`HighwayEnv` in a ``SyncVectorEnv`` works but
  loses the batching.

Registered ids (by ``import ppuu``, see :func:`ppuu.app.register_envs`): ``ppuu/Highway-v0``
(replayed traffic) and ``ppuu/HighwayReactive-v0`` (IDM traffic that brakes for the ego)::

    import ppuu, gymnasium                       # or gymnasium.make("ppuu:ppuu/Highway-v0", ...)
    env = gymnasium.make("ppuu/Highway-v0", scene="i80-sumo-1min-s0", render_mode="rgb_array")
    envs = gymnasium.make_vec("ppuu/Highway-v0", num_envs=256, device="cuda")

Both read the same keyword arguments (see :class:`HighwayEnv`) and share these definitions:

Episodes
    drawn from the **training** split by default (``split="train"``: train agents on it and
    keep "val" and "test" for evaluation, as :func:`ppuu.simulator.evaluate.evaluate` does),
    on the simulator's course (``sim_config=SimConfig(course=...)``; by default the site's,
    ``i80-reference`` on I-80: see :mod:`ppuu.simulator.episodes`).

Observation
    ``Dict(image=Box(0, 255, (K * 4, H, W), uint8), state=Box(-inf, inf, (K * 4,), float32))``
    with K = ``history`` frames, oldest first, stacked on the channel axis (channels-first:
    lanes, vehicles, off-road, ego for each frame; H = 117 rows along the heading, row 0
    ahead; W = 24 columns across, column 0 on the left; see :mod:`ppuu.simulator.raster`); the
    simulator's [0, 1] images are scaled by 255 and rounded. ``state`` is K x (x m, y m,
    vx m/s, vy m/s) in the world frame.
Action
    ``Box(low=[a_min, b_min], high=[a_max, b_max], float32)`` = (acceleration m/s^2,
    curvature 1/m) from :class:`~ppuu.simulator.dynamics.ActionBounds` (default [-8, 4] m/s^2 and
    [-0.2, 0.2] 1/m). Out-of-bound actions are **clipped** to the box (not rejected); NaN,
    inf or a wrong shape raise ``ValueError``.
Reward
    the simulator's: ``-(w_p * proximity + w_l * lane + w_o * offroad)`` of the new
    observation, with ``(w_p, w_l, w_o) = SimConfig.cost_weights`` = (1.0, 0.2, 1.0) by
    default (each cost in [0, 1], see :mod:`ppuu.simulator.costs`); so at most 0 per step.
    Change it with ``sim_config=SimConfig(cost_weights=...)``.
Episode end
    ``terminated`` on arrival, collision or off-road; ``truncated`` when the recording runs
    out (out of data: the scene ends or the ego takes more than ``SimConfig.time_limit`` x
    its vehicle's recorded time) or after ``max_episode_steps`` steps, if given.
Info
    ``vehicle_id`` (the recorded vehicle the ego replaced), ``outcome`` (name from
    :data:`ppuu.simulator.episodes.OUTCOMES`: running, arrived, collision, offroad,
    out_of_data), ``distance`` (m along the road since the end of the context),
    ``speed`` (m/s), ``proximity_cost``, ``lane_cost``, ``offroad_cost`` (of the current
    observation), ``steps`` (actions applied this episode); the vector env adds
    ``episode_number`` (episodes the slot has started, this one included).
Per-slot agent state
    an agent that keeps state per slot (e.g. an MPC planner's warm-started plans) hears every
    slot that starts an episode, autoresets included, through
    ``envs.sim.add_episode_start_hook(hook)`` (``hook(slots, sim)``, see
    :mod:`ppuu.simulator.evaluate`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from ppuu.app import ENV_IDS, register_envs  # noqa: F401  (register_envs: the `gymnasium.envs` entry point)
from ppuu.data.scene import DEFAULT_WORKDIR, Scene, list_scenes, scene_path, scenes_dir
from ppuu.simulator.costs import Costs
from ppuu.simulator.episodes import ARRIVED, COLLISION, OFFROAD, OUT_OF_DATA, OUTCOMES
from ppuu.simulator.sim import BatchedSimulator, SimConfig

logger = logging.getLogger(__name__)

DEFAULT_SCENE = {"site": "i80", "minutes": 1.0, "seed": 0}
"""The scene generated (with SUMO) when ``scene=None`` and the workspace has none."""

TERMINAL = (ARRIVED, COLLISION, OFFROAD)
"""Outcome codes that terminate an episode (out of data truncates it instead)."""

_OUTCOME_NAMES = np.array(OUTCOMES, dtype=object)


# ---------------------------------------------------------------------- scene and simulator
def load_scene(scene: Scene | str | Path | None = None, workdir: str | Path = DEFAULT_WORKDIR) -> Scene:
    """The scene an environment runs on.

    Args:
        scene: a :class:`~ppuu.data.scene.Scene`; a scene folder; the name of a scene in
            ``<workdir>/scenes/``; or None for the most recently written scene of the
            workspace, and if there is none, a small SUMO scene (:data:`DEFAULT_SCENE`: one
            minute of I-80-shaped traffic, seed 0, about 10 s) generated into it.
        workdir: the workspace folder.
    """
    if isinstance(scene, Scene):
        return scene
    workdir = Path(workdir)
    if scene is not None:
        for folder in (Path(scene), scene_path(workdir, str(scene))):
            if (folder / "scene.json").is_file():
                return Scene.load(folder)
        known = list_scenes(workdir)
        raise FileNotFoundError(f"scene {str(scene)!r} is neither a scene folder nor a scene in "
                                f"{scenes_dir(workdir)} (scenes there: {known or 'none'}); create one with "
                                "`ppuu data generate`")
    names = list_scenes(workdir)
    if names:
        latest = max(names, key=lambda n: (scene_path(workdir, n) / "scene.json").stat().st_mtime)
        return Scene.load(scene_path(workdir, latest))
    from ppuu.data.pipeline import generate_sumo_scene

    logger.warning("no scene in %s: generating a default SUMO scene (%s)", scenes_dir(workdir), DEFAULT_SCENE)
    generated = generate_sumo_scene(progress=False, **DEFAULT_SCENE)
    path = generated.save(scene_path(workdir, generated.meta.name))
    logger.warning("wrote the scene %s", path)
    return generated


def _make_simulator(scene, split, traffic, history, device, workdir, sim_config) -> tuple[BatchedSimulator, np.ndarray]:
    """The simulator and the episode vehicles of the split."""
    config = sim_config or SimConfig()
    overrides = {k: v for k, v in (("traffic", traffic), ("history", history)) if v is not None}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    loaded = load_scene(scene, workdir)
    sim = BatchedSimulator(loaded, config, device=device, dtype=torch.float32)
    episodes = sim.episode_vehicles(split)
    if len(episodes) == 0:
        counts = {s: len(sim.episode_vehicles(s)) for s in ("train", "val", "test")}
        raise ValueError(f"scene {loaded.meta.name!r} has no episode in split {split!r} on course {sim.course} "
                         f"(episodes per split: {counts}); pick another split, course or a longer scene")
    return sim, episodes


def _spaces(config: SimConfig) -> tuple[spaces.Dict, spaces.Box]:
    """(observation space, action space) of one episode."""
    K, H, W = config.history, config.raster.length_px, config.raster.width_px
    observation = spaces.Dict({
        "image": spaces.Box(0, 255, (K * 4, H, W), np.uint8),
        "state": spaces.Box(-np.inf, np.inf, (K * 4,), np.float32),
    })
    b = config.bounds
    action = spaces.Box(low=np.array([b.acceleration_min, b.curvature_min], np.float32),
                        high=np.array([b.acceleration_max, b.curvature_max], np.float32), dtype=np.float32)
    return observation, action


# ---------------------------------------------------------------------- conversions
def _observation(sim: BatchedSimulator) -> dict[str, np.ndarray]:
    """The batch's current observation as numpy: image (B, K*4, H, W) uint8, state (B, K*4) float32.

    Fresh arrays (never views of the simulator's tensors, which change in place on reset).
    """
    observation = sim.observation()           # ordered views of the history ring (no copy)
    image, state = observation.image, observation.state
    B = image.shape[0]
    pixels = image.reshape(B, -1, *image.shape[-2:]).mul(255).round_().to(torch.uint8)
    return {"image": pixels.cpu().numpy(), "state": state.reshape(B, -1).to("cpu", torch.float32, copy=True).numpy()}


def _as_actions(action: Any, sim: BatchedSimulator, single: bool, ignore: np.ndarray | None = None) -> Tensor:
    """Check actions and put them on the simulator's device: (B, 2) float tensor.

    Args:
        action: (2,) for a single env (``single``), else (B, 2); array-like or tensor.
        ignore: (B,) bool, rows whose actions are ignored (set to 0, never checked).

    Raises:
        ValueError: wrong shape, not numbers, NaN or inf.
    """
    expected = (2,) if single else (sim.batch_size, 2)
    meaning = "(acceleration m/s^2, curvature 1/m)"
    if isinstance(action, Tensor):
        a = action.detach().to(sim.device, sim.dtype)
    else:
        try:
            a = torch.as_tensor(np.asarray(action, dtype=np.float32), device=sim.device)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action {action!r}: expected numbers of shape {expected} = {meaning}") from exc
    if tuple(a.shape) != expected:
        raise ValueError(f"action of shape {tuple(a.shape)}: expected {expected} = {meaning}")
    a = a.reshape(-1, 2)
    if ignore is not None and ignore.any():
        a = torch.where(torch.as_tensor(ignore, device=sim.device)[:, None], torch.zeros_like(a), a)
    finite = torch.isfinite(a).all(dim=-1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        where = "" if single else f" for envs {bad[:10]}"
        raise ValueError(f"action holds NaN or inf{where}: expected finite {meaning}, got "
                         f"{a[bad[0]].tolist()}")
    return a


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


# ---------------------------------------------------------------------- single environment
class HighwayEnv(gymnasium.Env):
    """One ego car on a highway scene (spaces, reward and info: module docstring).

    Args:
        scene: a Scene, a scene folder, a scene name in ``workdir``, or None (see :func:`load_scene`).
        split: episodes come from this split's vehicles: "train" (default: agents train on it),
            "val", "test", or None for all.
        traffic: "replay" (recorded motion) or "reactive" (IDM car-following); None = ``sim_config``'s.
        history: K observation frames per step (1, or up to ``context_steps``); None = ``sim_config``'s.
        device: torch device of the simulator ("cpu" by default: one episode runs faster there
            than as GPU kernel launches).
        render_mode: None, "rgb_array" (``render()`` returns a top-down frame) or "human" (a
            pygame window, updated at every reset and step).
        workdir: workspace folder for scene names and the default scene.
        max_episode_steps: truncate after this many steps (``gymnasium.make`` takes the same
            argument and applies a ``TimeLimit`` wrapper instead).
        sim_config: full :class:`~ppuu.simulator.sim.SimConfig` (context, cost weights, bounds, raster...).
        render_kwargs: keyword arguments of :class:`ppuu.app.render.TopDownRenderer`
            (``pixels_per_metre``, ``view_length_m``, ``view_width_m``).

    ``reset(seed=..., options={"vehicle_id": id})`` starts the episode of the given recorded
    vehicle, or of one drawn from the split with ``self.np_random``. Stepping after the
    episode has ended leaves it frozen (reward 0, same flags) until ``reset``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(self, scene: Scene | str | Path | None = None, split: str | None = "train",
                 traffic: str | None = None, history: int | None = None, device: str | torch.device = "cpu",
                 render_mode: str | None = None, workdir: str | Path = DEFAULT_WORKDIR,
                 max_episode_steps: int | None = None, sim_config: SimConfig | None = None,
                 render_kwargs: dict | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r}: expected None or one of {self.metadata['render_modes']}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps {max_episode_steps}: expected a positive number or None")
        self.sim, self.episode_ids = _make_simulator(scene, split, traffic, history, device, workdir, sim_config)
        self.scene = self.sim.scene
        self.split = split
        self.observation_space, self.action_space = _spaces(self.sim.config)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.sim.dt)}
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self._render_kwargs = render_kwargs
        self._renderer = None
        self._all_episodes: set[int] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        vehicle_id = options.pop("vehicle_id", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}: expected only 'vehicle_id'")
        if vehicle_id is None:
            vehicle_id = int(self.np_random.choice(self.episode_ids))
        else:
            vehicle_id = self._check_vehicle(vehicle_id)
        self.sim.reset([vehicle_id])
        info = self._info(self.sim.last_costs)
        if self.render_mode == "human":
            self.render()
        return self._obs(), info

    def step(self, action):
        if self.sim.batch_size == 0:
            raise RuntimeError("step() before reset(): call reset() first")
        result = self.sim.step(_as_actions(action, self.sim, single=True))
        outcome = int(result.outcome[0])
        terminated = outcome in TERMINAL
        truncated = outcome == OUT_OF_DATA or (not terminated and self.max_episode_steps is not None
                                               and int(self.sim.steps[0]) >= self.max_episode_steps)
        info = self._info(result.costs)
        if self.render_mode == "human":
            self.render()
        return self._obs(), float(result.reward[0]), terminated, truncated, info

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
    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in _observation(self.sim).items()}

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
    because it is what gymnasium's wrappers and most training code expect.

    ``reset(seed=..., options={"vehicle_ids": [...]})`` starts the B given episodes, or B drawn
    from the split (distinct when the split has at least B). Counters:
    :attr:`episodes_started` (B,) per slot and :attr:`outcome_counts` (finished episodes by
    outcome name, "time_limit" for ``max_episode_steps`` truncations).

    The step keeps the work in torch on the simulator's device; observations, rewards and
    flags come back as numpy (uint8 images, float32 states, float64 rewards, bool flags).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, scene: Scene | str | Path | None = None, split: str | None = "train",
                 traffic: str | None = None, history: int | None = None, device: str | torch.device | None = None,
                 render_mode: str | None = None, workdir: str | Path = DEFAULT_WORKDIR,
                 max_episode_steps: int | None = None, sim_config: SimConfig | None = None,
                 render_kwargs: dict | None = None):
        if num_envs < 1:
            raise ValueError(f"num_envs {num_envs}: expected >= 1")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r}: expected None or one of {self.metadata['render_modes']} "
                             "for the vector env")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps {max_episode_steps}: expected a positive number or None")
        self.sim, self.episode_ids = _make_simulator(scene, split, traffic, history, device, workdir, sim_config)
        self.scene = self.sim.scene
        self.split = split
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self.sim.config)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.sim.dt)}
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self._render_kwargs = render_kwargs
        self._renderer = None
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self.episodes_started = np.zeros(num_envs, dtype=np.int64)
        self.outcome_counts = {name: 0 for name in (*OUTCOMES[1:], "time_limit")}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        ids = options.pop("vehicle_ids", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}: expected only 'vehicle_ids'")
        if ids is None:
            ids = self.np_random.choice(self.episode_ids, size=self.num_envs,
                                        replace=len(self.episode_ids) < self.num_envs)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != self.num_envs:
            raise ValueError(f"{len(ids)} vehicle_ids for num_envs = {self.num_envs}")
        self.sim.reset(ids)
        self._autoreset[:] = False
        self.episodes_started += 1
        return _observation(self.sim), self._info(self.sim.last_costs)

    def step(self, actions):
        if self.sim.batch_size == 0:
            raise RuntimeError("step() before reset(): call reset() first")
        sim = self.sim
        restart = self._autoreset.copy()
        result = sim.step(_as_actions(actions, sim, single=False, ignore=restart))
        # One device-to-host copy for the flags and rewards.
        over = result.just_done
        limited = torch.zeros_like(over)
        if self.max_episode_steps is not None:
            limited = ~result.done & (sim.steps >= self.max_episode_steps)
        host = torch.stack([result.reward.to(torch.float64), result.outcome.to(torch.float64),
                            over.to(torch.float64), limited.to(torch.float64)]).cpu().numpy()
        reward, outcome, over, limited = host[0], host[1].astype(np.int64), host[2] > 0, host[3] > 0
        terminated = over & np.isin(outcome, TERMINAL) & ~restart
        truncated = ((over & (outcome == OUT_OF_DATA)) | limited) & ~restart
        reward = np.where(restart, 0.0, reward)
        for code in outcome[over & ~restart]:
            self.outcome_counts[OUTCOMES[code]] += 1
        self.outcome_counts["time_limit"] += int((limited & ~restart).sum())

        if restart.any():
            slots = torch.as_tensor(np.flatnonzero(restart), device=sim.device)
            ids = self.np_random.choice(self.episode_ids, size=len(slots), replace=len(self.episode_ids) < len(slots))
            sim.reset(ids, slots=slots)
            self.episodes_started[restart] += 1
        self._autoreset = terminated | truncated
        return _observation(sim), reward, terminated, truncated, self._info(sim.last_costs)

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
