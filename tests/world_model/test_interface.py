"""The one conversion between SI observations/actions and the model's normalised tensors."""

from __future__ import annotations

import pytest
import torch

from tests.world_model.data_fixtures import CONTEXT, datasets, recording, split_ids  # noqa: F401 (fixtures)
from ppuu.world_model.dataset import relative_states
from ppuu.world_model.interface import (model_inputs, normalised_actions, physical_actions, recentred_states, speeds,
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


def test_recentred_states_measure_a_sliding_window_from_its_newest_frame():
    """A window measured from an older frame (an imagined one: from the real context's last frame) re-measured from
    its newest, as model_inputs measures the simulator's windows; y, vx, vy and the x gaps unchanged; differentiable."""
    norm = Normaliser(torch.tensor([-9.0, -5.0, 8.0, 0.1]), torch.tensor([6.0, 3.0, 4.0, 0.5]),
                      torch.tensor([0.2, 0.0]), torch.tensor([1.5, 0.01]))
    generator = torch.Generator().manual_seed(0)
    world = torch.randn(3, 6, 4, generator=generator) * torch.tensor([2.0, 1.0, 3.0, 0.3]) + torch.tensor(
        [0.0, -4.0, 9.0, 0.0])
    world[..., 0] += 100.0 + torch.arange(6.0) * 0.9                     # driving forwards, x in metres
    old, _ = relative_states(world, 2)                                    # measured from frame 2, not the newest 5
    imagined = norm.normalise_states(old).requires_grad_(True)
    recentred = recentred_states(imagined, norm)
    expected = model_inputs(torch.zeros(3, 6, 1, 2, 2), world, norm, 1).states
    torch.testing.assert_close(recentred, expected, atol=1e-5, rtol=1e-5)
    assert norm.denormalise_states(recentred)[:, -1, 0].abs().max() < 1e-4
    assert not torch.allclose(recentred, imagined)
    # a real context (already measured from its newest frame) is unchanged
    torch.testing.assert_close(recentred_states(expected, norm), expected, atol=1e-6, rtol=1e-6)
    recentred[..., 0].sum().backward()
    assert imagined.grad is not None and float(imagined.grad[:, -1, 0].abs().sum()) > 0
    with pytest.raises(ValueError, match="expected a window"):
        recentred_states(expected[0], norm)


def test_bad_shapes_are_named():
    norm = Normaliser.identity()
    with pytest.raises(ValueError, match="expected \\(B, T, C, H, W\\)"):
        model_inputs(torch.zeros(2, 20, 4, 117), torch.zeros(2, 20, 4), norm, 3)
    with pytest.raises(ValueError, match="channels = 5"):
        model_inputs(torch.zeros(2, 20, 4, 117, 24), torch.zeros(2, 20, 4), norm, 5)
