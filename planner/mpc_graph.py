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

One graph per batch size (and planner settings); the deciding episodes of a closed loop vary in
number, so a batch is padded up (:func:`padded_size`; the extra rows repeat the first context and
are dropped after): at most 6 + B / 32 captures, each about three eager decisions. The graphs share
one memory pool: a graph's blocks may be reused by another captured later, which is safe here
because each replay's outputs are copied out at once and nothing reads a graph's static outputs
after another graph ran.

The warm-up decisions after the first (which makes the cached constants) run with CUDA's sync
debugging set to "error", so an operator that would make the CPU wait at every call (or copy
unpinned CPU memory to the GPU) fails there, before any capture begins:
the planner then says so once and decides eagerly from then on (the same arithmetic, slower). A
capture that fails after a clean warm-up leaves CUDA's random-number generator in capture mode,
so that one is raised, with the way out (``--no-mpc-cuda-graph``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

WARMUP = 2
"""Eager decisions on a side stream before a capture (cuDNN's choices, lazy constants, the allocator); all
but the first with sync debugging on "error" (the first makes the cached constants, copied in once)."""

PAD_STEP = 32
"""Beyond this many deciding episodes a batch is padded to a multiple of it, not to a power of two."""


def padded_size(S: int) -> int:
    """The batch size whose graph serves S deciding episodes: the next power of two up to
    :data:`PAD_STEP`, then the next multiple of it (141 -> 160; at most 2x the work of S, at 33 -> 64, and
    less the larger S is)."""
    if S <= PAD_STEP:
        return 1 << max(0, (S - 1).bit_length())
    return -(-S // PAD_STEP) * PAD_STEP


@dataclass
class CapturedDecision:
    """A captured Adam decision for one batch size: static inputs, the graph, static outputs
    (plans, costs, futures, ego states as :meth:`~ppuu.planner.mpc.Planner.adam_body` returns them)."""

    inputs: tuple[Tensor, ...]
    graph: "torch.cuda.CUDAGraph"
    outputs: tuple[Tensor, ...]

    def __call__(self, images: Tensor, states: Tensor, size: Tensor, init: Tensor, S: int) -> tuple[Tensor, ...]:
        """Replay on padded inputs; copies of the outputs' first S episodes."""
        for static, new in zip(self.inputs, (images, states, size, init)):
            static.copy_(new)
        self.graph.replay()
        plan, costs, futures, ego = self.outputs
        return (plan[:S].clone(), costs[:, :S].clone(), futures[:, :S].clone() if futures.numel() else futures.clone(),
                ego[:S].clone())


class CaptureRefused(RuntimeError):
    """The decision did something a CUDA graph cannot hold (found in the warm-up, before capturing)."""


def capture(planner, images: Tensor, states: Tensor, size: Tensor, init: Tensor, pool=None) -> CapturedDecision:
    """Capture ``planner.adam_body`` for inputs shaped like these (copied into the graph's static inputs).

    Raises :class:`CaptureRefused` when a warm-up decision synchronises (nothing captured yet)."""
    inputs = tuple(x.detach().clone() for x in (images, states, size, init))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):              # also restores the caller's stream should the capture fail
        planner.adam_body(*inputs)
        before = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(WARMUP - 1):
                planner.adam_body(*inputs)
        except RuntimeError as error:
            raise CaptureRefused(str(error)) from error
        finally:
            torch.cuda.set_sync_debug_mode(before)
        side.synchronize()
        graph = torch.cuda.CUDAGraph()
        # captured on the warm-up's stream: libraries that keep per-stream handles (cuBLAS workspaces) made
        # them there already, not during the capture
        with torch.cuda.graph(graph, pool=pool, stream=side):
            outputs = planner.adam_body(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    return CapturedDecision(inputs, graph, outputs)


def pad_rows(x: Tensor, rows: int) -> Tensor:
    """(S, ...) -> (rows, ...): the first row repeated below the S given (rows >= S)."""
    extra = rows - x.shape[0]
    return x if extra == 0 else torch.cat([x, x[:1].expand(extra, *x.shape[1:])])


def graph_key(planner, images: Tensor, rows: int) -> tuple:
    """What a captured decision bakes in: the padded batch, the context's shape, dtype and device, the
    planner's settings, its uncertainty statistics and world model (a change to any captures anew)."""
    settings = json.dumps(planner.config.to_json(), sort_keys=True)
    return (rows, tuple(images.shape[1:]), images.dtype, images.device, settings, id(planner.uncertainty),
            id(planner.world.model))


def graphed_decision(planner, images: Tensor, states: Tensor, size: Tensor, init: Tensor):
    """The planner's Adam decision from its graph for this (padded) batch size, captured on first use:
    (plans, costs, futures, ego) as :meth:`~ppuu.planner.mpc.Planner.adam_body` returns them, or None
    when the warm-up found something a graph cannot hold (the planner then stops trying:
    ``planner._graphs`` becomes None)."""
    S = images.shape[0]
    rows = padded_size(S)
    padded = [pad_rows(x, rows) for x in (images, states, size, init)]
    key = graph_key(planner, images, rows)
    decision = planner._graphs.get(key)
    if decision is None:
        if planner._graph_pool is None:
            planner._graph_pool = torch.cuda.graph_pool_handle()
        try:
            decision = capture(planner, *padded, pool=planner._graph_pool)
        except CaptureRefused as error:
            warnings.warn(f"MPC: the decision cannot be captured as a CUDA graph ({error}); deciding eagerly from "
                          "now on", RuntimeWarning, stacklevel=2)
            planner._graphs = None
            return None
        except Exception as error:
            raise RuntimeError("MPC: capturing the decision as a CUDA graph failed after a clean warm-up; CUDA's "
                               "random numbers may be unusable in this process: plan without graphs "
                               "(--no-mpc-cuda-graph, MPCConfig(cuda_graph=False))") from error
        planner._graphs[key] = decision
    return decision(*padded, S)
