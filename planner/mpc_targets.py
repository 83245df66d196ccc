"""The MPC planner's decisions on recorded contexts, as imitation targets (``--method mpc-il``).

Amortised MPC: plan once, offline, for a fixed set of training contexts through the world model
(:class:`~ppuu.planner.mpc.Planner`: Adam on a plan of ``horizon`` actions from the mean action, the
same costs MPC and MPUR minimise), then regress the policy on each plan's first action, exactly as
``il`` regresses on the recorded driver's. The planner is the expert; its decisions cost a few
optimiser iterations through the model each, so they are computed once per run and cached in the run
folder (``mpc-targets-<split>.pt``, written atomically; a resumed run reads them back), while the
regression reuses each context many times.

Why it exists: with the demo's world model the MPC planner drives ahead of no action, but MPUR's
policy, trained on the same objective through the same model, stays timid (its mean absolute
acceleration in the closed loop is a quarter to a half of MPC's) within the CPU budget. Adam normalises each plan
coordinate's step, so the planner commits to a direction wherever the costs' gradient has one, and a
policy fitted to those decisions inherits that; MPUR's policy gradient averages small, conflicting
per-context gradients. MPUR then starts from the fitted policy (``--init``). BENCHMARKS.md,
"Amortised MPC and straight steering", has the measurements.

Shapes: N target contexts, H planned steps, 2 normalised actions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ppuu.planner.mpc import MPCConfig, Planner
from ppuu.world_model.dataset import Batch
from ppuu.world_model.runs import atomic_save

PLAN_CHUNK = 32
"""Contexts planned per call (the planner splits further for the CPU's cache)."""


CACHE_BYTES = 1 << 30
"""Largest context cache :class:`PlannedWindows` keeps in memory (1 GiB): about 4,700 contexts of the cpu
profile's 20 x 3 x 156 x 24 frames as bytes. Beyond it the contexts are rendered again for every batch."""


class PlannedWindows:
    """Windows of a :class:`~ppuu.world_model.dataset.WindowDataset` whose actions are the planner's.

    ``batch(i)`` is the dataset's batch of windows ``indices[i]`` with ``actions`` replaced by the
    plans (B, H, 2), so ``actions[:, 0]`` is the planner's first action: what ``il``'s loss reads.

    The regression draws every batch from the same N contexts, so they are rendered once and kept
    (when they fit in :data:`CACHE_BYTES`): images as bytes (0-255; within 1/510 of the rendering,
    a quarter of float32's memory), states, size and origin as they are. Rendering a batch cost about
    twice the policy's step on a CPU, and the prefetching thread was the regression's bottleneck. A
    cached batch carries its first predicted step only (``target_*`` of one step): the one-step
    methods that read these windows look at nothing later.

    Args:
        data: the windows (training or validation split).
        indices: (N,) the planned windows' indices in ``data``.
        plans: (N, H, 2) their plans, normalised.
        cache: keep the contexts in memory when they fit (False: render every batch).
        batches: the windows' batches in order, already rendered and :func:`compact` (e.g. while
            planning), to fill the cache without rendering them again.
    """

    def __init__(self, data, indices: np.ndarray, plans: Tensor, cache: bool = True,
                 batches: list[Batch] | None = None):
        if len(indices) != len(plans):
            raise ValueError(f"{len(indices)} windows and {len(plans)} plans")
        self.data, self.indices, self.plans = data, np.asarray(indices, dtype=np.int64), plans
        self.context, self.predicted_steps = data.context, data.predicted_steps
        self.cached: Batch | None = None
        if cache and len(self) and fits_cache(data, len(self)):
            if batches is None:
                batches = [compact(data.batch(self.indices[lo:lo + PLAN_CHUNK]))
                           for lo in range(0, len(self), PLAN_CHUNK)]
            self.cached = Batch(**{f.name: torch.cat([getattr(b, f.name) for b in batches])
                                   for f in dataclasses.fields(Batch)})

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def normaliser(self):
        return self.data.normaliser

    @normaliser.setter
    def normaliser(self, value) -> None:
        self.data.normaliser = value

    def fixed_indices(self, count: int, seed: int = 0) -> np.ndarray:
        """The first ``count`` planned windows (they were drawn at random already)."""
        return np.arange(min(count, len(self)))

    def batch(self, idx) -> Batch:
        idx = np.asarray(idx, dtype=np.int64)
        if self.cached is None:
            batch = self.data.batch(self.indices[idx])
        else:
            at = torch.as_tensor(idx, device=self.cached.context_images.device)
            parts = {f.name: getattr(self.cached, f.name)[at] for f in dataclasses.fields(Batch)}
            parts["context_images"] = parts["context_images"].float().div_(255.0)
            parts["target_images"] = parts["target_images"].float().div_(255.0)
            batch = Batch(**parts)
        plans = self.plans[torch.as_tensor(idx)].to(batch.actions)
        return dataclasses.replace(batch, actions=plans)



def fits_cache(data, count: int) -> bool:
    """Whether ``count`` windows of ``data`` fit in :data:`CACHE_BYTES` as :func:`compact` keeps them
    (their T + 1 frames as bytes)."""
    raster = data.source.raster
    return count * (data.context + 1) * data.channels * raster.length_px * raster.width_px <= CACHE_BYTES


def compact(batch: Batch) -> Batch:
    """A batch as :class:`PlannedWindows` keeps it: images as bytes (0-255), the first predicted step only."""
    parts = {}
    for f in dataclasses.fields(Batch):
        value = getattr(batch, f.name)
        if f.name.startswith("target_") or f.name == "actions":
            value = value[:, :1].clone()
        if f.name.endswith("_images"):
            value = (value * 255.0).round_().to(torch.uint8)
        parts[f.name] = value
    return Batch(**parts)


def planner_config(config) -> MPCConfig:
    """The planner of a :class:`~ppuu.planner.train_config.PolicyTrainConfig` (its ``planner_*`` fields)."""
    return MPCConfig(horizon=config.horizon, futures=config.planner_futures, iterations=config.planner_iterations,
                     lr=config.planner_lr, weights=config.weights)


def plan_windows(world, data, cost_model, config, count: int, seed: int, device: torch.device,
                 cache: Path | None = None, progress: bool = True) -> PlannedWindows:
    """Plan for ``count`` windows of ``data`` drawn with ``seed`` (or read the plans from ``cache``).

    Args:
        world: the loaded world model (frozen by the planner).
        data: the windows (only their contexts are read).
        cost_model: how predictions are scored (:mod:`ppuu.planner.costs`).
        config: the run's :class:`~ppuu.planner.train_config.PolicyTrainConfig` (horizon, weights, ``planner_*``).
        count: N windows (at most the dataset's).
        seed: which windows, and the planner's random draws.
        device: where to plan.
        cache: a file that holds the plans of exactly these settings, or will (atomically).
        progress: a progress bar over the windows.
    """
    mpc = planner_config(config)
    count = min(int(count), len(data))
    indices = np.sort(np.random.default_rng([seed, 0x7A96E7]).choice(len(data), size=count, replace=False))
    key = {"mpc": mpc.to_json(), "count": count, "seed": seed, "world_model": str(config.world_model),
           "windows": len(data)}
    if cache is not None and Path(cache).is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("key") == repr(key):
            return PlannedWindows(data, saved["indices"].numpy(), saved["plans"])
    planner = Planner(world, cost_model, mpc)
    plans, batches = [], []             # the planned contexts, compacted for PlannedWindows' cache
    keep = fits_cache(data, count)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=count, desc="plan targets (MPC)", unit="window", dynamic_ncols=True)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for lo in range(0, count, PLAN_CHUNK):
            batch = data.batch(indices[lo:lo + PLAN_CHUNK])
            if keep:
                batches.append(compact(batch))
            batch = batch.to(device)
            init = torch.zeros(len(batch), mpc.horizon, 2, device=device)
            plans.append(planner.plan(batch.context_images, batch.context_states, batch.size, init).plan.detach().cpu())
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    plans_t = torch.cat(plans) if plans else torch.zeros(0, mpc.horizon, 2)
    if cache is not None:
        atomic_save({"key": repr(key), "indices": torch.as_tensor(indices), "plans": plans_t}, cache)
    return PlannedWindows(data, indices, plans_t, batches=batches if keep else None)
