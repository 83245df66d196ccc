"""Shared fixtures for the app tests: one small generated scene per test session."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

WARMUP = 60.0
"""s of SUMO warm-up for the test scene: enough traffic for episodes, a fraction of the default's run time."""


def small_scene():
    """One minute of I-80-shaped SUMO traffic, seed 0.

    Built from the generator's parts with a short warm-up when the generator takes one (the
    default 300 s warm-up makes SUMO simulate six minutes for one: about 90 s on a busy
    2-core machine instead of about 15 s); otherwise by ``generate_sumo_scene``.
    """
    from data.pipeline import build_scene, generate_sumo_scene, meta_for_site
    from data.sumo import generate_traffic

    if "warmup" not in inspect.signature(generate_traffic).parameters:
        return generate_sumo_scene("i80", minutes=1.0, seed=0, progress=False)
    raw, info = generate_traffic(site="i80", minutes=1.0, seed=0, progress=False, warmup=WARMUP)
    meta = meta_for_site("i80-sumo-1min-s0-test", "i80", "sumo", raw, seed=0, notes={"generator": info})
    return build_scene(raw, meta, source="SUMO i80 seed 0 (test)")


@pytest.fixture(scope="session")
def scene_workdir(tmp_path_factory) -> Path:
    """A workspace holding the session's scene."""
    from data.scene import scene_path

    workdir = tmp_path_factory.mktemp("ppuu-work")
    scene = small_scene()
    scene.save(scene_path(workdir, scene.meta.name))
    return workdir


@pytest.fixture(scope="session")
def scene_dir(scene_workdir) -> Path:
    """The folder of the session's scene."""
    from data.scene import list_scenes, scene_path

    return scene_path(scene_workdir, list_scenes(scene_workdir)[0])


@pytest.fixture(scope="session")
def scene(scene_dir):
    """The session's scene, loaded."""
    from data.scene import Scene

    return Scene.load(scene_dir)
