"""Training windows: shapes, alignment, splits, statistics, sampling, prefetch and the memmap cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.world_model.data_fixtures import CONTEXT, SpySource, recording, split_ids  # noqa: F401 (fixtures)
from ppuu.world_model.dataset import (MemmapCache, Prefetcher, WindowDataset, absolute_states, relative_states,
                                 sample_indices)
from ppuu.world_model.normalisation import Normaliser

N = 3


@pytest.fixture(scope="module")
def train_data(recording, split_ids):
    data = WindowDataset(recording, split_ids["train"], CONTEXT, N)
    data.fit_normaliser(windows=64, seed=0)
    return data


def test_batch_shapes_and_alignment(train_data, recording):
    idx = np.array([0, 5, len(train_data) - 1])
    batch = train_data.batch(idx)
    B = len(idx)
    assert batch.context_images.shape == (B, CONTEXT, 3, 117, 24)        # the constant ego channel is dropped
    assert batch.context_states.shape == (B, CONTEXT, 4)
    assert batch.actions.shape == (B, N, 2)
    assert batch.target_images.shape == (B, N, 3, 117, 24)
    assert batch.target_states.shape == (B, N, 4)
    assert batch.target_costs.shape == (B, N, 3)
    assert batch.origin.shape == (B,) and batch.size.shape == (B, 2)
    assert float(batch.context_images.min()) >= 0 and float(batch.context_images.max()) <= 1
    # The raw windows: images, the action at the last context frame first, costs of the targets.
    raw = recording.windows(train_data.vehicle_ids[idx], train_data.start_frames[idx], CONTEXT + N)
    norm = train_data.normaliser
    torch.testing.assert_close(batch.target_images, raw.images[:, CONTEXT:, :3])
    torch.testing.assert_close(batch.context_images, raw.images[:, :CONTEXT, :3])
    torch.testing.assert_close(norm.denormalise_actions(batch.actions), raw.actions[:, CONTEXT - 1:CONTEXT - 1 + N],
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.target_costs, raw.costs[:, CONTEXT:])
    # States relative to the last context frame's x: that frame sits at x = 0, y and speeds world-frame.
    rel = norm.denormalise_states(torch.cat([batch.context_states, batch.target_states], 1))
    assert torch.allclose(rel[:, CONTEXT - 1, 0], torch.zeros(B), atol=1e-4)
    torch.testing.assert_close(batch.origin, raw.states[:, CONTEXT - 1, 0])
    torch.testing.assert_close(absolute_states(rel, batch.origin), raw.states, atol=1e-4, rtol=1e-5)


def test_relative_states_round_trip():
    states = torch.randn(5, 7, 4) * 50
    rel, origin = relative_states(states, 3)
    assert torch.all(rel[:, 3, 0] == 0) and torch.equal(rel[..., 1:], states[..., 1:])
    torch.testing.assert_close(absolute_states(rel, origin), states)


def test_windows_come_from_the_training_split_only(train_data, small_scene, split_ids):
    v = small_scene.vehicles.set_index("vehicle_id")
    ids = set(train_data.vehicle_ids.tolist())
    assert ids <= set(split_ids["train"])
    assert not ids & (set(split_ids["val"]) | set(split_ids["test"]))
    assert (v.loc[list(ids), "split"] == "train").all()
    # every window lies inside its vehicle's recording, and every frame of the recording is covered
    first = v.loc[train_data.vehicle_ids, "first_frame"].to_numpy()
    last = v.loc[train_data.vehicle_ids, "last_frame"].to_numpy()
    assert np.all(train_data.start_frames >= first)
    assert np.all(train_data.start_frames + train_data.length - 1 <= last)
    expected = np.clip(v.loc[list(ids), "last_frame"] - v.loc[list(ids), "first_frame"] + 2 - train_data.length,
                       0, None).sum()
    assert len(train_data) == expected


def test_statistics_from_the_training_split_only(recording, split_ids):
    spy = SpySource(recording)
    data = WindowDataset(spy, split_ids["train"], CONTEXT, N)
    norm = data.fit_normaliser(windows=48, seed=1)
    assert spy.rendered and spy.rendered <= set(split_ids["train"])
    # the statistics are those of the sampled training windows' relative states and actions
    idx = np.sort(np.random.default_rng([1, 0x57A7]).choice(len(data), 48, replace=False))
    raw = data.raw(idx)
    rel, _ = relative_states(raw.states, CONTEXT - 1)
    ref = Normaliser.from_data(rel, raw.actions)
    for k, v in norm.state_dict().items():
        torch.testing.assert_close(v, ref.state_dict()[k])
    # relative x is centred near the last context frame, not at the road's middle (hundreds of metres)
    assert abs(float(norm.state_mean[0])) < 30


def test_sampling_depends_only_on_seed_and_step():
    a = sample_indices(1000, seed=3, step=17, batch_size=8)
    assert np.array_equal(a, sample_indices(1000, seed=3, step=17, batch_size=8))
    assert not np.array_equal(a, sample_indices(1000, seed=3, step=18, batch_size=8))
    parts = [sample_indices(1000, 3, 17, 8, rank=r, world_size=2) for r in range(2)]
    assert np.array_equal(np.concatenate(parts), a)
    with pytest.raises(ValueError, match="divisible"):
        sample_indices(1000, 3, 17, 7, rank=0, world_size=2)


def test_prefetcher_yields_the_batches_of_each_step(train_data):
    with Prefetcher(train_data, range(5, 8), seed=2, batch_size=2, device="cpu") as pf:
        got = list(pf)
    assert [s for s, _ in got] == [5, 6, 7]
    direct = train_data.batch(sample_indices(len(train_data), 2, 6, 2))
    torch.testing.assert_close(got[1][1].target_images, direct.target_images)
    # closing early stops the thread
    pf = Prefetcher(train_data, range(100), seed=2, batch_size=2, device="cpu")
    next(iter(pf))
    pf.close()
    assert not pf.thread.is_alive()


def test_prefetcher_hands_its_failures_to_the_consumer(train_data, monkeypatch):
    """A failure in the thread, its CUDA set-up included, raises in the loop that consumes it instead of
    leaving that loop waiting forever (a GPU benchmark hung so: set_device refused a device without an
    index). The device given without an index gets the current one's."""
    import threading

    chosen = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)

    def refuse(index):
        chosen.append(index)
        raise RuntimeError("no such device")

    monkeypatch.setattr(torch.cuda, "set_device", refuse)
    raised = []

    def consume():
        try:
            with Prefetcher(train_data, range(3), seed=2, batch_size=2, device="cuda") as pf:
                list(pf)
        except RuntimeError as exc:
            raised.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(timeout=30)
    assert not consumer.is_alive(), "the consumer hung"
    assert chosen == [3] and "no such device" in str(raised[0])


def test_memmap_cache_matches_the_renderer(recording, split_ids, tmp_path):
    ids = split_ids["train"][:2]
    cache = MemmapCache(recording, ids, tmp_path / "cache")
    assert cache.nbytes == cache.rows * 4 * 117 * 24
    a = WindowDataset(cache, ids, CONTEXT, N)
    b = WindowDataset(recording, ids, CONTEXT, N)
    assert np.array_equal(a.vehicle_ids, b.vehicle_ids) and np.array_equal(a.start_frames, b.start_frames)
    idx = np.array([0, len(a) - 1])
    wa, wb = a.raw(idx), b.raw(idx)
    assert (wa.images - wb.images).abs().max() <= 0.5 / 255 + 1e-6          # uint8 quantisation
    torch.testing.assert_close(wa.states, wb.states)
    torch.testing.assert_close(wa.actions, wb.actions)
    torch.testing.assert_close(wa.costs, wb.costs)
    torch.testing.assert_close(wa.size, wb.size)
    reopened = MemmapCache(recording, ids, tmp_path / "cache")          # reused, not rebuilt
    assert np.array_equal(np.asarray(reopened.images[:3]), np.asarray(cache.images[:3]))
    with pytest.raises(ValueError, match="not in the cache"):
        cache.windows(np.array([split_ids["val"][0]]), np.array([0]), 3)


def test_empty_split_is_an_error(recording):
    with pytest.raises(ValueError, match="no vehicles"):
        WindowDataset(recording, [], CONTEXT, N)
