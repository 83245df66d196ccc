"""Configuration of the gymnasium environments, the HighwayEnv way.

A config is a nested dict; :func:`default_config` gives every key with its default, and
``gymnasium.make(id, config={...})`` or ``env.reset(options={"config": {...}})`` override
any part of it (nested dicts merge key by key)::

    {
        "observation": {"type": "kinematics", "vehicles_count": 8, "range_m": 50.0, "speed_scale": 30.0},
        "action": {"type": "continuous", "curvature_range": (-0.05, 0.05)},
        "reward": {"type": "driving", "progress": 0.1, "collision": -10.0, "offroad": -10.0,
                   "arrival": 10.0, "cost_weights": (0.05, 0.01, 0.05)},
        "split": "train",            # "train", "val", "test" or "all"
        "traffic": "replay",         # or "reactive"
        "max_episode_steps": None,   # truncate after this many steps
    }

Changing ``"type"`` replaces that part's parameters by the new type's defaults plus those
given. Types and their parameters: :mod:`ppuu.app.gym_observations` (``kinematics``,
``raster``, ``occupancy_grid``), :mod:`ppuu.app.gym_actions` (``continuous``,
``discrete_meta``), :mod:`ppuu.app.gym_reward` (``driving``, ``cost``). Unknown keys, types or
parameters and bad values raise ``ValueError`` naming the key and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ppuu.app.gym_actions import ACTION_TYPES
from ppuu.app.gym_observations import OBSERVATION_TYPES
from ppuu.app.gym_reward import REWARD_TYPES

PARTS = {"observation": OBSERVATION_TYPES, "action": ACTION_TYPES, "reward": REWARD_TYPES}
"""Typed parts of a config -> their type registries."""

DEFAULT_TYPES = {"observation": "kinematics", "action": "continuous", "reward": "driving"}

SPLITS = ("train", "val", "test", "all")
TRAFFIC = ("replay", "reactive")


def _type_defaults(part: str, name: str) -> dict:
    cls = PARTS[part][name]
    return {f.name: copy.deepcopy(f.default) for f in dataclasses.fields(cls) if f.init
            and f.default is not dataclasses.MISSING}


def default_config() -> dict:
    """Every key of a config with its default (a fresh dict)."""
    config = {part: {"type": name, **_type_defaults(part, name)} for part, name in DEFAULT_TYPES.items()}
    config.update({"split": "train", "traffic": "replay", "max_episode_steps": None})
    return config


def merge_config(base: dict, overrides: dict | None) -> dict:
    """``base`` updated with ``overrides``, validated (a new dict; neither input changes).

    Raises:
        ValueError: an unknown key, type or parameter, or a bad value (see :func:`build_parts`).
    """
    config = copy.deepcopy(base)
    if overrides is None:
        return config
    if not isinstance(overrides, dict):
        raise ValueError(f"config {overrides!r}: expected a dict (see ppuu.app.gym_config)")
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}: expected some of {sorted(config)}")
    for key, value in overrides.items():
        if key in PARTS:
            if isinstance(value, str):
                value = {"type": value}
            if not isinstance(value, dict):
                raise ValueError(f"config[{key!r}] = {value!r}: expected a dict such as {{'type': "
                                 f"{DEFAULT_TYPES[key]!r}, ...}}")
            name = value.get("type", config[key]["type"])
            if name not in PARTS[key]:
                raise ValueError(f"config[{key!r}]['type'] = {name!r}: expected one of {sorted(PARTS[key])}")
            part = config[key] if name == config[key]["type"] else {"type": name, **_type_defaults(key, name)}
            wrong = sorted(set(value) - set(part))
            if wrong:
                raise ValueError(f"config[{key!r}]: unknown parameters {wrong} for type {name!r}: expected some of "
                                 f"{sorted(k for k in part if k != 'type')}")
            part.update(copy.deepcopy(value))
            config[key] = part
        else:
            config[key] = value
    build_parts(config)            # validates every value
    return config


def build_parts(config: dict) -> tuple[Any, Any, Any]:
    """(observation, action, reward) objects of a config; checks the untyped keys too.

    Raises:
        ValueError: a bad value, naming its key.
    """
    if config["split"] not in SPLITS:
        raise ValueError(f"config['split'] = {config['split']!r}: expected one of {SPLITS}")
    if config["traffic"] not in TRAFFIC:
        raise ValueError(f"config['traffic'] = {config['traffic']!r}: expected one of {TRAFFIC}")
    steps = config["max_episode_steps"]
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(f"config['max_episode_steps'] = {steps!r}: expected a positive integer or None")
    parts = []
    for key, registry in PARTS.items():
        params = {k: v for k, v in config[key].items() if k != "type"}
        try:
            parts.append(registry[config[key]["type"]](**params))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config[{key!r}]: {exc}") from None
    return tuple(parts)


def split_of(config: dict) -> str | None:
    """The simulator's split argument: None for "all"."""
    return None if config["split"] == "all" else config["split"]
