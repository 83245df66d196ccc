"""Shared fixtures for the app tests: one small generated scene per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def scene_workdir(tmp_path_factory, small_scene) -> Path:
    """A workspace holding the session's scene."""
    from ppuu.data.scene import scene_path

    workdir = tmp_path_factory.mktemp("ppuu-work")
    scene = small_scene
    scene.save(scene_path(workdir, scene.meta.name))
    return workdir


@pytest.fixture(scope="session")
def scene_dir(scene_workdir) -> Path:
    """The folder of the session's scene."""
    from ppuu.data.scene import list_scenes, scene_path

    return scene_path(scene_workdir, list_scenes(scene_workdir)[0])


@pytest.fixture(scope="session")
def scene(scene_dir):
    """The session's scene, loaded."""
    from ppuu.data.scene import Scene

    return Scene.load(scene_dir)
