"""Train/val/test split by vehicle: deterministic, order-independent, exact sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppuu.data.splits import assign_splits, split_sizes


def counts(splits: np.ndarray) -> tuple[int, int, int]:
    return tuple(int((splits == name).sum()) for name in ("train", "val", "test"))


def test_deterministic():
    ids = np.arange(100, 600)
    np.testing.assert_array_equal(assign_splits(ids, 3), assign_splits(ids.copy(), 3))


def test_different_seeds_differ():
    ids = np.arange(500)
    assert (assign_splits(ids, 0) != assign_splits(ids, 1)).any()
    assert counts(assign_splits(ids, 0)) == counts(assign_splits(ids, 1)) == (400, 50, 50)


def test_order_independent():
    rng = np.random.default_rng(0)
    ids = rng.choice(100_000, size=800, replace=False)
    reference = dict(zip(ids, assign_splits(ids, 7)))
    shuffled = rng.permutation(ids)
    assert dict(zip(shuffled, assign_splits(shuffled, 7))) == reference


def test_fractions_respected():
    ids = np.arange(1234)
    assert counts(assign_splits(ids, 0)) == (988, 123, 123)
    assert counts(assign_splits(ids, 0, (0.5, 0.25, 0.25))) == (618, 308, 308)
    assert counts(assign_splits(ids, 0, [0.9, 0.1, 0.0])) == (1111, 123, 0)


def test_small_sets():
    assert len(assign_splits(np.array([], dtype=np.int64), 0)) == 0
    assert counts(assign_splits(np.array([4]), 0)) == (1, 0, 0)
    assert counts(assign_splits(np.array([4, 9]), 0)) == (2, 0, 0)
    assert counts(assign_splits(np.array([4, 9, 1]), 0)) == (1, 1, 1)
    assert counts(assign_splits(np.arange(19), 0)) == (17, 1, 1)


def test_split_sizes_never_exceed_n():
    assert split_sizes(3, (0.0, 1 - 1e-10, 1e-10)) == (0, 2, 1)
    assert split_sizes(10, (0.0, 0.5, 0.5)) == (0, 5, 5)


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.8, 0.1, 0.1, 0.0), (0.7, 0.1, 0.1), (1.2, -0.1, -0.1),
                                       (0.8, float("nan"), 0.2), ("a", 0.1, 0.1), None])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError):
        assign_splits(np.arange(10), 0, fractions)


def test_bad_ids():
    with pytest.raises(ValueError, match="repeated"):
        assign_splits(np.array([1, 2, 2]), 0)
    with pytest.raises(ValueError, match="integers"):
        assign_splits(np.array(["a", "b"]), 0)
    assert counts(assign_splits(np.array([1.0, 2.0, 3.0]), 0)) == (1, 1, 1)


@settings(max_examples=50, deadline=None)
@given(ids=st.sets(st.integers(-2**63, 2**63 - 1), max_size=300), seed=st.integers(-2**70, 2**70),
       val=st.floats(0, 0.5), test=st.floats(0, 0.5))
def test_properties(ids, seed, val, test):
    ids = np.array(sorted(ids), dtype=np.int64)
    fractions = (1 - val - test, val, test)
    out = assign_splits(ids, seed, fractions)
    assert counts(out) == split_sizes(len(ids), fractions)
    assert sum(counts(out)) == len(ids)
    reversed_out = assign_splits(ids[::-1], seed, fractions)[::-1]
    np.testing.assert_array_equal(out, reversed_out)
