"""The one conversion between SI observations/actions and the model's normalised tensors."""

from __future__ import annotations

import pytest
import torch

from tests.world_model.data_fixtures import CONTEXT, datasets, recording, split_ids  # noqa: F401 (fixtures)
from ppuu.world_model.interface import (model_inputs, normalised_actions, physical_actions, speeds,
                                        world_states)
from ppuu.world_model.normalisation import Normaliser


def test_model_inputs_equal_a_training_batch_context(recording, split_ids):
    train, _ = datasets(recording, split_ids)
    train.fit_normaliser(windows=32, seed=0)
    idx = torch.tensor([0, 3, 7]).numpy()
    raw = train.raw(idx)
    batch = train.to_batch(raw)
    inputs = model_inputs(raw.images[:, :CONTEXT], raw.states[:, :CONTEXT], train.normaliser, channels=3)
    torch.testing.assert_close(inputs.images, batch.context_images)
    torch.testing.assert_close(inputs.states, batch.context_states)
    torch.testing.assert_close(inputs.origin, batch.origin)
    # Back to the world: the targets' world-frame states.
    world = world_states(batch.target_states, batch.origin, train.normaliser)
    torch.testing.assert_close(world, raw.states[:, CONTEXT:].float(), atol=1e-3, rtol=1e-4)


def test_actions_and_speeds_round_trip():
    norm = Normaliser(torch.tensor([0.0, -5.0, 8.0, 0.1]), torch.tensor([20.0, 3.0, 4.0, 0.5]),
                      torch.tensor([0.2, 0.0]), torch.tensor([1.5, 0.01]))
    physical = torch.tensor([[-3.0, 0.02], [2.0, -0.01]])
    torch.testing.assert_close(physical_actions(normalised_actions(physical, norm), norm), physical)
    states = norm.normalise_states(torch.tensor([[[5.0, -3.0, 3.0, 4.0]]]))
    torch.testing.assert_close(speeds(states, norm), torch.tensor([[5.0]]))


def test_bad_shapes_are_named():
    norm = Normaliser.identity()
    with pytest.raises(ValueError, match="expected \\(B, T, C, H, W\\)"):
        model_inputs(torch.zeros(2, 20, 4, 117), torch.zeros(2, 20, 4), norm, 3)
    with pytest.raises(ValueError, match="channels = 5"):
        model_inputs(torch.zeros(2, 20, 4, 117, 24), torch.zeros(2, 20, 4), norm, 5)
