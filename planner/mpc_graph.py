"""The MPC decision replayed from a CUDA graph: one launch instead of thousands (issue 10).

A decision of the planner (H 30 steps x F 10 futures x 5 Adam iterations) is several thousand
small kernels (about 6,000 forward and backward with the demo's plan-free world model, about
78,000 through a world model that reads the plan). Launched one by one from Python, on an H200
it took 259 ms at B = 1 while the GPU idled (BENCHMARKS.md "GPU figures"). Captured once as a
CUDA graph, a decision is replayed with one call: the kernels run back to back.

What makes it capturable is :meth:`ppuu.planner.mpc.Planner.adam_body`: a straight program
with no host synchronisation and no shape that depends on data (Adam written out, the bounds
and cost weights made once per device, the model's channels taken by slices). Random numbers
(latents, dropout masks) are drawn inside the graph from the default generator, which CUDA
graphs support: every replay draws new ones.

One graph per batch size; the deciding episodes of a closed loop vary in number, so a batch is
padded up (:func:`padded_size`; the extra rows repeat the first context and are dropped after):
at most 6 + B / 32 captures, each about three eager decisions. Each graph keeps its own memory
(a pool shared by graphs replayed in any order could hand one graph's live blocks to another).
Should a capture fail (a new operator that synchronises, an old driver), the planner says so
once and decides eagerly from then on: the same arithmetic, slower.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

WARMUP = 2
"""Eager decisions on a side stream before a capture (cuDNN's choices, lazy constants, the allocator)."""


PAD_STEP = 32
"""Beyond this many deciding episodes a batch is padded to a multiple of it, not to a power of two."""


def padded_size(S: int) -> int:
    """The batch size whose graph serves S deciding episodes: the next power of two up to
    :data:`PAD_STEP`, then the next multiple of it (at most 1.33x the work of S beyond 32: 141 -> 160)."""
    if S <= PAD_STEP:
        return 1 << max(0, (S - 1).bit_length())
    return -(-S // PAD_STEP) * PAD_STEP


@dataclass
class CapturedDecision:
    """A captured Adam decision for one batch size: static inputs, the graph, static outputs."""

    inputs: tuple[Tensor, ...]
    graph: "torch.cuda.CUDAGraph"
    outputs: tuple[Tensor, ...]

    def __call__(self, images: Tensor, states: Tensor, size: Tensor, init: Tensor) -> tuple[Tensor, ...]:
        for static, new in zip(self.inputs, (images, states, size, init)):
            static.copy_(new)
        self.graph.replay()
        return tuple(out.clone() for out in self.outputs)


def capture(planner, images: Tensor, states: Tensor, size: Tensor, init: Tensor) -> CapturedDecision:
    """Capture ``planner.adam_body`` for inputs shaped like these (copied into the graph's static inputs)."""
    inputs = tuple(x.detach().clone() for x in (images, states, size, init))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP):
            planner.adam_body(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # captured on the warm-up's stream: libraries that keep per-stream handles (cuBLAS workspaces) made them
    # there already, not during the capture
    with torch.cuda.graph(graph, stream=side):
        outputs = planner.adam_body(*inputs)
    return CapturedDecision(inputs, graph, outputs)


def _pad(x: Tensor, rows: int) -> Tensor:
    extra = rows - x.shape[0]
    return x if extra == 0 else torch.cat([x, x[:1].expand(extra, *x.shape[1:])])


def graphed_decision(planner, images: Tensor, states: Tensor, size: Tensor, init: Tensor):
    """The planner's Adam decision from its graph for this (padded) batch size, captured on first use:
    (plans, costs, futures, ego) as :meth:`~ppuu.planner.mpc.Planner.adam_body` returns them, or None
    when capturing failed (the planner then stops trying: ``planner._graphs`` becomes None)."""
    S = images.shape[0]
    rows = padded_size(S)
    padded = [_pad(x, rows) for x in (images, states, size, init)]
    decision = planner._graphs.get(rows)
    if decision is None:
        try:
            decision = capture(planner, *padded)
        except Exception as error:          # noqa: BLE001 - any failure: fall back to the same eager program
            warnings.warn(f"MPC: capturing the decision as a CUDA graph failed ({type(error).__name__}: {error}); "
                          "deciding eagerly from now on", RuntimeWarning, stacklevel=2)
            planner._graphs = None
            torch.cuda.synchronize()
            return None
        planner._graphs[rows] = decision
    plan, costs, futures, ego = decision(*padded)
    return plan[:S], costs[:, :S], (futures[:, :S] if futures.numel() else futures), ego[:S]
