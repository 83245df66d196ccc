"""Checkpoint files of the world model: atomic writes, ``weights_only`` reads, RNG states, warm starts.

A checkpoint is a plain dict of tensors and JSON-able values (no pickled objects),
so ``torch.load(path, weights_only=True)`` reads it; it is written to a temporary
file beside its destination and renamed over it, so a kill never leaves half a file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

CHECKPOINT_FORMAT = "ppuu-world-model/1"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def capture_rng_state() -> dict:
    """The torch, Python, NumPy (and CUDA) random states, as tensors and plain values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_rest": [int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Set every random generator back to a state from :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(int(v) for v in state["python"]), None))
    pos, has_gauss, gauss = state["numpy_rest"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; raise ValueError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:                                     # corrupt or not a torch file
        raise ValueError(f"{path}: not a readable world-model checkpoint ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a world-model checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return obj


def copy_matching(model: nn.Module, state: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    """Copy every tensor of ``state`` whose name and shape match one of ``model``'s (warm start).

    Returns:
        (copied names, names of ``model`` left at their initial values).
    """
    own = model.state_dict()
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    with torch.no_grad():
        for k in copied:
            own[k].copy_(state[k])
    return copied, sorted(set(own) - set(copied))
