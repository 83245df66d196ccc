"""Deterministic train/validation/test split by vehicle.

Why by vehicle: an episode is one recorded vehicle replaced by the ego car, and
the reference work splits episodes 80/10/10 by vehicle; a split by row would
leak a vehicle's own future into training.

How: every vehicle id gets a pseudo-random key from a keyed hash of (seed, id)
(the SplitMix64 finaliser, a bijection on 64-bit integers, so distinct ids never
tie); the ids are ranked by key, and the first ranks go to test, the next to
validation, the rest to training. The result therefore depends only on the set
of ids, the seed and the fractions, never on the order of the input, and adding
or removing a few vehicles moves only a few others between splits.
"""

from __future__ import annotations

import math

import numpy as np

SPLITS = ("train", "val", "test")

_MASK64 = (1 << 64) - 1


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic): a bijection of 64-bit integers."""
    z = (z + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)).astype(np.uint64)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)).astype(np.uint64)
    return z ^ (z >> np.uint64(31))


def split_keys(vehicle_ids: np.ndarray, seed: int) -> np.ndarray:
    """(V,) uint64 pseudo-random key per vehicle id, a function of (seed, id) only."""
    ids = np.asarray(vehicle_ids).astype(np.int64).view(np.uint64)
    seed_key = _mix64(np.array([int(seed) & _MASK64], dtype=np.uint64))
    return _mix64(ids ^ seed_key)


def split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """(train, val, test) counts for n vehicles: floor for val and test, the rest train; at least one
    each in val and test (when their fraction is > 0) once there are >= 3 vehicles."""
    _, f_val, f_test = fractions
    n_val = math.floor(f_val * n + 1e-9)
    n_test = math.floor(f_test * n + 1e-9)
    if n >= 3:
        n_val = max(n_val, 1 if f_val > 0 else 0)
        n_test = max(n_test, 1 if f_test > 0 else 0)
    n_test = min(n_test, n)
    n_val = min(n_val, n - n_test)
    return n - n_val - n_test, n_val, n_test


def _check_fractions(fractions) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fractions {fractions!r}: expected three numbers (train, val, test)") from exc
    if len(values) != 3:
        raise ValueError(f"fractions {fractions!r}: expected three numbers (train, val, test)")
    if not all(math.isfinite(f) and 0 <= f <= 1 for f in values):
        raise ValueError(f"fractions {fractions!r}: each must be within [0, 1]")
    if abs(sum(values) - 1) > 1e-6:
        raise ValueError(f"fractions {fractions!r} sum to {sum(values)}; expected 1")
    return values


def assign_splits(vehicle_ids: np.ndarray, seed: int, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Deterministic train/val/test split by vehicle.

    Args:
        vehicle_ids: (V,) distinct integer vehicle ids, any order.
        seed: split seed (any Python int).
        fractions: (train, val, test), each in [0, 1], summing to 1.

    Returns:
        (V,) object array of "train" / "val" / "test" aligned with ``vehicle_ids``; the counts are
        :func:`split_sizes`. Depends only on (set of ids, seed, fractions), not on their order.

    Raises:
        ValueError: bad fractions, non-integer or repeated ids.
    """
    fractions = _check_fractions(fractions)
    ids = np.asarray(vehicle_ids)
    if ids.ndim != 1:
        raise ValueError(f"vehicle_ids has shape {ids.shape}; expected a 1-D array")
    if len(ids) and ids.dtype.kind not in "iu":
        if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)):
            ids = ids.astype(np.int64)
        else:
            raise ValueError(f"vehicle_ids of dtype {ids.dtype}; expected integers")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("vehicle_ids has repeated ids; expected each vehicle once")
    _, n_val, n_test = split_sizes(len(ids), fractions)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(split_keys(ids, seed), kind="stable")] = np.arange(len(ids))
    out = np.full(len(ids), "train", dtype=object)
    out[rank < n_test] = "test"
    out[(rank >= n_test) & (rank < n_test + n_val)] = "val"
    return out
