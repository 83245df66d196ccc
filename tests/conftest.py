"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")
# One intra-op thread: the tests' tensors are small, and on a busy 2-core machine two threads
# fight over the cores (measured: a small multiply 50x slower). Benchmarks set their own.
torch.set_num_threads(1)

SMALL_SCENE_WARMUP = 60.0
"""s of SUMO warm-up for the test scene: enough to fill the section, a fifth of the default's run time."""


@pytest.fixture(scope="session")
def small_scene():
    """A 90-second SUMO-generated I-80 scene (seed 0), built once per test session (about 15 s).

    Where SUMO cannot run (a lent GPU machine with torch but no SUMO), ``PPUU_TEST_SCENE`` names that
    scene saved beforehand (``Scene.save``; ``scripts/gpu_check.sh`` carries one)."""
    from ppuu.data.pipeline import generate_sumo_scene
    from ppuu.data.scene import Scene

    saved = os.environ.get("PPUU_TEST_SCENE")
    if saved:
        return Scene.load(saved)
    return generate_sumo_scene("i80", minutes=1.5, seed=0, progress=False, warmup=SMALL_SCENE_WARMUP)
