"""Cached constant tensors that stay ordinary tensors, whoever asks for them first.

Parts of the simulator's step run in inference mode (:mod:`ppuu.simulator.sim`). A constant
first made there (a pixel grid, a sign matrix, the road texture) would be an inference tensor,
and once cached, any later differentiable use of it (a planner's costs, a render with gradients)
would fail with "Inference tensors cannot be saved for backward". Every cache of constant
tensors makes them with inference mode off.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch


def cached_constant(maxsize: int = 16) -> Callable:
    """``functools.lru_cache`` for a factory of constant tensors (keyed by its hashable arguments:
    settings, device, dtype), made outside inference mode. The results are shared: read only."""
    def decorate(factory: Callable) -> Callable:
        @functools.lru_cache(maxsize=maxsize)
        @functools.wraps(factory)
        def made_outside_inference_mode(*args, **kwargs):
            with torch.inference_mode(False):
                return factory(*args, **kwargs)
        return made_outside_inference_mode
    return decorate


def outside_inference_mode() -> torch.inference_mode:
    """The context in which to fill any other cache of tensors (e.g. :attr:`Road.cache`)."""
    return torch.inference_mode(False)
