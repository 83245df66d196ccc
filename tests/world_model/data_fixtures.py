"""Fixtures and helpers for the world-model data, training and evaluation tests.

Imported by the test modules (not a conftest, so the model tests' fixtures stay separate).
Everything runs on the session's small SUMO scene (``small_scene``, tests/conftest.py)
with a tiny network: the image size stays the simulator's (117 x 24) and the context 20
frames, the widths shrink to a few channels so that a training step takes milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CONTEXT = 20
PREDICTED = 2


@pytest.fixture(scope="session")
def recording(small_scene):
    """The simulator's recorded observations of the small scene, on the CPU."""
    from ppuu.simulator.recording import RecordedObservations

    return RecordedObservations(small_scene, device="cpu")


@pytest.fixture(scope="session")
def split_ids(small_scene) -> dict[str, list[int]]:
    return {s: small_scene.split_vehicle_ids(s) for s in ("train", "val", "test")}


@pytest.fixture(scope="session")
def wm_workdir(tmp_path_factory, small_scene) -> Path:
    """A workspace holding the session's scene (for the command-line and DDP tests)."""
    from ppuu.data.scene import scene_path

    workdir = tmp_path_factory.mktemp("wm-work")
    small_scene.save(scene_path(workdir, small_scene.meta.name))
    return workdir


def tiny_config(model_type: str = "deterministic", **overrides):
    """A TrainConfig small enough for a unit test: widths 4/8/8, MLP 16, latent 4, batch 4, N = 2."""
    from ppuu.world_model.train import TrainConfig

    model = dict(hidden_channels=(4, 8, 8), hidden_mlp=16, latent_dim=4, context=CONTEXT)
    model.update(overrides.pop("model", {}))
    fields = dict(steps=4, batch_size=4, predicted_steps=PREDICTED, lr=1e-3, val_every=0, val_windows=8,
                  checkpoint_every=2, log_every=1, stats_windows=32, channels_last=False)
    fields.update(overrides)
    return TrainConfig.for_profile("cpu", model_type, model=model, **fields)


def datasets(recording, split_ids, predicted: int = PREDICTED):
    """(train, val) WindowDatasets of the small scene."""
    from ppuu.world_model.dataset import WindowDataset

    return (WindowDataset(recording, split_ids["train"], CONTEXT, predicted),
            WindowDataset(recording, split_ids["val"], CONTEXT, predicted))


class SpySource:
    """A WindowSource that forwards to another and records every vehicle id it rendered."""

    def __init__(self, inner):
        self.inner = inner
        self.rendered: set[int] = set()

    def window_starts(self, vehicle_ids, length):
        return self.inner.window_starts(vehicle_ids, length)

    def windows(self, vehicle_ids, start_frames, length):
        self.rendered.update(int(v) for v in np.asarray(vehicle_ids))
        return self.inner.windows(vehicle_ids, start_frames, length)
