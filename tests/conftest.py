"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_scene():
    """A 90-second SUMO-generated I-80 scene (seed 0), built once per test session (about 10 s)."""
    from data.pipeline import generate_sumo_scene

    return generate_sumo_scene("i80", minutes=1.5, seed=0, progress=False)
