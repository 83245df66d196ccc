"""Training a driving policy through a frozen world model: MPUR and the paper's baselines (SPEC §6).

One loop, read top to bottom; the method decides the loss of a batch of real 20-frame
contexts from the training split (:func:`policy_loss`):

* ``mpur``: imagine ``horizon`` steps with z from the prior and the policy acting on every
  predicted window, K dropout copies for the uncertainty cost; minimise the discounted cost
  (proximity + lane + off-road + uncertainty [+ action, jerk]) (:mod:`ppuu.planner.imagination`).
* ``vg`` / ``svg``: the same without the uncertainty cost (one copy, dropout off), with a
  deterministic (``vg``) or stochastic (``svg``) world model.
* ``mper``: imagine with the policy, but match the recorded future positions instead of
  minimising costs.
* ``il``: one-step imitation: the recorded action at the end of the context.
* ``mpc-il``: one-step imitation of the MPC planner instead of the recording: its first action on
  a fixed set of training contexts, planned once through the world model when the run starts
  (amortised MPC, :mod:`ppuu.planner.mpc_targets`).

With ``reached_fraction`` > 0 (mpur, vg, svg) that share of every batch imagines from contexts the
policy itself reached in the simulator instead of recorded ones (:mod:`ppuu.planner.reached`).

Gradients reach the policy only: the world model's parameters are frozen. The uncertainty
cost's statistics (:class:`~ppuu.planner.uncertainty.UncertaintyStats`) are measured with the
recorded actions on training windows when the run starts (or read from the checkpoint) and
stored with the policy.

The run plumbing is the world model's (:mod:`ppuu.world_model.runs`): progress bar with the
running cost terms, ``metrics.csv``, validation on fixed windows of the validation split,
atomic checkpoints (``kind = "policy"``) with every config and statistic, resume after a kill
with the same result (the batch and the random draws of step s depend only on (seed, s)),
bf16 autocast on CUDA, DDP under ``torchrun``. What defines a run (methods, presets, checks) is
:class:`~ppuu.planner.train_config.PolicyTrainConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ppuu.planner.imagination import CostModel, imagine, policy_actor, window_origin_for
from ppuu.planner.objective import TERMS, trajectory_cost
from ppuu.planner.policy import DrivingPolicy, PolicyConfig, normalised_bounds
from ppuu.planner.reached import ReachedContexts, ReachedPool
from ppuu.planner.train_config import ONE_STEP_METHODS, PolicyTrainConfig
from ppuu.planner.uncertainty import UncertaintyStats
from ppuu.simulator.recording import is_fixed_frame
from ppuu.world_model.dataset import Batch, Prefetcher, WindowDataset, sample_indices, step_seed
from ppuu.world_model.interface import speeds
from ppuu.world_model.runs import (Distributed, MetricsLog, atomic_save, autocast, capture_rng_state,
                                   checkpoint_header, load_checkpoint_file, resolve_device, restore_rng_state,
                                   use_amp)
from ppuu.world_model.train import LoadedModel

KIND = "policy"
"""The ``kind`` field of policy checkpoints."""
CHECKPOINT_NAME = "checkpoint.pt"
METRIC_COLUMNS = ("step", "loss", *TERMS, "mper_error", "il_error", "anchor_error", "reached_lane", "grad_norm",
                  "samples_per_s", "lr", "val_loss", *(f"val_{t}" for t in TERMS), "val_mper_error", "val_il_error",
                  "val_anchor_error", "wall_s")


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


# ---------------------------------------------------------------------------------------------- the loss

def fit_uncertainty_stats(world: LoadedModel, data: WindowDataset, cost_model: CostModel, config: PolicyTrainConfig,
                          device: torch.device) -> UncertaintyStats:
    """The variance terms' statistics under the recorded (expert) actions: ``stats_batches`` batches of
    training windows, imagined ``horizon`` steps with K copies and z from the prior."""
    samples = []
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        for i in range(config.stats_batches):
            batch = data.batch(sample_indices(len(data), config.seed + 7919, i, config.batch_size)).to(device)
            rollout = imagine(world.model, batch.context_images, batch.context_states, batch.size,
                              lambda images, states, t: batch.actions[:, t], config.horizon, cost_model,
                              config.weights, copies=max(2, config.copies), stats=world.normaliser)
            samples.append(rollout.variances.reshape(-1, 3))
    return UncertaintyStats.from_samples(torch.cat(samples))


def policy_loss(policy: torch.nn.Module, world: LoadedModel, batch: Batch, config: PolicyTrainConfig,
                cost_model: CostModel, uncertainty: UncertaintyStats | None,
                anchor: torch.nn.Module | None = None,
                reached: tuple[Tensor, Tensor, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The method's loss on one batch of contexts and its parts (detached), for logging.

    ``parts`` holds the discounted mean of every cost term (:data:`ppuu.planner.objective.TERMS`)
    for the imagining methods, ``mper_error`` (m, mean position error against the recording)
    and ``il_error`` (normalised action MSE of the first step) for all, and ``anchor_error`` (the
    first action's MSE against the frozen warm start ``anchor``, weighted by
    ``config.anchor_weight`` in the loss) when there is one.

    ``reached``: (images (R, T, C, H, W), states (R, T, S), size (R, 2)) contexts without a recorded
    future (:mod:`ppuu.planner.reached`), imagined beside the batch's; the costs and the anchor average
    over both, the imitation and MPER errors are the batch's alone.
    """
    images, states, size = batch.context_images, batch.context_states, batch.size
    if reached is not None:
        images, states, size = (torch.cat([a, b.to(a.dtype)]) for a, b in zip((images, states, size), reached))
    first = policy(images, states)
    recorded_rows = len(batch)
    il_error = F.mse_loss(first[:recorded_rows], batch.actions[:, 0])
    if config.method in ONE_STEP_METHODS:        # mpc-il's batches carry the planner's actions
        return il_error, {"il_error": il_error.detach()}
    steps = min(config.horizon, batch.actions.shape[1])

    actor = policy_actor(policy, world.normaliser, window_origin_for(world.observation, config.window_origin), first)
    reference = None
    if config.speed_reference != "context":
        reference = speeds(states[:, -1], world.normaliser)[:, None].expand(-1, steps).clone()
        recorded_speed = speeds(batch.target_states[:, :steps], world.normaliser)
        reference[:recorded_rows] = (recorded_speed if config.speed_reference == "recorded"
                                     else torch.minimum(recorded_speed, reference[:recorded_rows]))
    rollout = imagine(world.model, images, states, size, actor, steps, cost_model, config.weights,
                      copies=config.copies, uncertainty=uncertainty, stats=world.normaliser,
                      speed_reference=reference)
    cost, per_term = trajectory_cost(rollout.terms, config.weights)
    norm = world.normaliser.to(batch.target_states.device)
    predicted = norm.denormalise_states(rollout.states[:recorded_rows])[..., :2]
    recorded = norm.denormalise_states(batch.target_states[:, :steps])[..., :2]
    position_error = (predicted - recorded).norm(dim=-1).mean()
    parts = {name: per_term[:, i].mean().detach() for i, name in enumerate(TERMS)}
    parts.update(mper_error=position_error.detach(), il_error=il_error.detach())
    loss = F.mse_loss(predicted, recorded) if config.method == "mper" else cost.mean()
    if anchor is not None:
        with torch.no_grad():
            target = anchor(images, states)
        anchor_error = F.mse_loss(first, target)
        parts["anchor_error"] = anchor_error.detach()
        loss = loss + config.anchor_weight * anchor_error
    return loss, parts


@torch.no_grad()
def validate(policy: torch.nn.Module, world: LoadedModel, data: WindowDataset, indices: np.ndarray,
             config: PolicyTrainConfig, cost_model: CostModel, uncertainty: UncertaintyStats | None,
             device: torch.device, anchor: torch.nn.Module | None = None) -> dict[str, float]:
    """Mean loss and parts over fixed validation windows, with fixed random draws."""
    was_training = policy.training
    policy.eval()
    sums: dict[str, float] = {}
    count = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed + 1)
        for lo in range(0, len(indices), config.batch_size):
            batch = data.batch(indices[lo:lo + config.batch_size]).to(device)
            loss, parts = policy_loss(policy, world, batch, config, cost_model, uncertainty, anchor)
            for k, v in {"loss": loss, **parts}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(batch)
            count += len(batch)
    policy.train(was_training)
    return {f"val_{k}": v / max(count, 1) for k, v in sums.items()}


# ---------------------------------------------------------------------------------------------- the loop

def train_policy(config: PolicyTrainConfig, world: LoadedModel, cost_model: CostModel, train_data: WindowDataset,
                 val_data: WindowDataset | None, run_dir: str | Path, *, extra: dict | None = None,
                 progress: bool = True, stop_after: int | None = None,
                 initial_weights: dict[str, Tensor] | None = None,
                 reached: ReachedContexts | None = None) -> dict[str, Any]:
    """Train (or resume training of) a policy through the frozen world model ``world``.

    Args:
        config: the run's :class:`PolicyTrainConfig` (its policy's image size and context must be the model's).
        world: the loaded world model (moved to the training device here; its parameters are frozen).
        cost_model: how the model's predictions are scored (:mod:`ppuu.planner.costs`).
        train_data, val_data: windows of ``config.horizon`` predicted steps with the model's normaliser.
        run_dir: the run folder; an existing ``checkpoint.pt`` there is resumed.
        extra: JSON-able settings stored with the policy (e.g. the scene's name).
        stop_after: stop once this many steps are done (as a kill would; tests, time boxes).
        initial_weights: a policy ``state_dict`` to start a new run from (a warm start, e.g. an IL policy);
            ignored when the run resumes. With ``config.anchor_weight`` it is also the frozen anchor of the
            trust region (stored in the checkpoint, so a resumed run keeps it).
        reached: collects the contexts the policy reaches in the simulator; required when
            ``config.reached_fraction`` > 0 (it holds the scene, which the windows do not).

    Returns:
        A summary: step, last metrics, validation metrics, checkpoint path, seconds, device.
    """
    run_dir = Path(run_dir)
    dist_info = Distributed.setup(config.device)
    device = resolve_device(config.device, dist_info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    amp = use_amp(config.amp, device)
    mc, pc = world.model_config, config.policy
    if (pc.image_channels, pc.image_height, pc.image_width) != (mc.image_channels, mc.image_height, mc.image_width) \
            or pc.context > mc.context:
        raise ValueError(f"the policy reads {pc.context} frames of {pc.image_channels} x {pc.image_height} x "
                         f"{pc.image_width}; the world model predicts {mc.image_channels} x {mc.image_height} x "
                         f"{mc.image_width} with a context of {mc.context}")
    if train_data.predicted_steps < config.horizon or train_data.context != mc.context:
        raise ValueError(f"training windows of {train_data.context} + {train_data.predicted_steps} frames; the run "
                         f"needs {mc.context} + {config.horizon}")
    if config.reached_fraction and reached is None:
        raise ValueError("reached_fraction > 0: give the ReachedContexts that drive the policy in the simulator")
    if config.method == "vg" and world.stochastic:
        raise ValueError("vg imagines with a deterministic world model; use svg for a stochastic one")
    if config.method == "svg" and not world.stochastic:
        raise ValueError("svg imagines with a stochastic world model; use vg for a deterministic one")
    if config.policy.action_low is None:          # the simulator's bounds, in the model's normalised units
        config.policy = dataclasses.replace(config.policy, **normalised_bounds(world.normaliser))
    world.model.to(device)
    for p in world.model.parameters():
        p.requires_grad_(False)
    world.normaliser = world.normaliser.to(device)
    for data in (train_data, val_data):
        if data is not None:
            data.normaliser = world.normaliser
    ckpt_path = run_dir / CHECKPOINT_NAME
    try:
        if config.method == "mpc-il":                # the planner's decisions replace the recorded actions
            from ppuu.planner.mpc_targets import plan_windows
            shown, cache = progress and dist_info.main, run_dir if dist_info.main else None   # one writer
            train_data = plan_windows(world, train_data, cost_model, config, config.planner_contexts, config.seed,
                                      device, cache and cache / "mpc-targets-train.pt", shown)
            if val_data is not None and config.val_every:
                val_data = plan_windows(world, val_data, cost_model, config, config.val_windows, config.seed + 1,
                                        device, cache and cache / "mpc-targets-val.pt", shown)
        torch.manual_seed(config.seed)
        policy = DrivingPolicy(config.policy)
        ckpt = load_checkpoint_file(ckpt_path, KIND) if ckpt_path.is_file() else None
        start_step, best_val = 0, math.inf
        uncertainty = None
        if ckpt is None and initial_weights is not None:
            policy.load_state_dict(initial_weights)
        anchor_weights = ckpt.get("anchor_policy") if ckpt is not None else initial_weights
        anchor = None
        if config.anchor_weight > 0:
            if anchor_weights is None:
                raise ValueError("anchor_weight > 0 keeps the policy near its warm start: give one (--init RUN)")
            anchor = DrivingPolicy(config.policy)
            anchor.load_state_dict(anchor_weights)
            anchor.to(device).eval().requires_grad_(False)
        if ckpt is not None:
            # the window origin only matters where a policy reads imagined windows of an egocentric model
            reads_imagined = config.method not in ONE_STEP_METHODS and not is_fixed_frame(world.observation)
            _check_resumable(config, ckpt, ckpt_path, window_origin=reads_imagined)
            policy.load_state_dict(ckpt["policy"])
            start_step, best_val = int(ckpt["step"]), float(ckpt["best_val"])
            if ckpt.get("uncertainty") is not None:
                uncertainty = UncertaintyStats.from_state_dict(ckpt["uncertainty"])
        policy.to(device)
        if uncertainty is None and config.method == "mpur" and config.weights.uncertainty > 0:
            uncertainty = fit_uncertainty_stats(world, train_data, cost_model, config, device)
        optimiser = torch.optim.Adam(policy.parameters(), lr=config.lr)
        # the weights of the last collection of reached contexts: a resumed run collects the same pool again
        reached_weights: dict[str, Tensor] | None = None
        reached_step = 0
        pool: ReachedPool | None = None
        if config.reached_fraction and ckpt is not None and ckpt.get("reached_weights") is not None \
                and start_step % config.reached_every:
            reached_weights, reached_step = ckpt["reached_weights"], int(ckpt["reached_step"])
            pool = reached.collect(reached_weights, config.seed, reached_step)
        if ckpt is not None:
            optimiser.load_state_dict(ckpt["optimiser"])
            restore_rng_state(ckpt["rng"])
        net = policy     # called once per imagined step: gradients are averaged by hand, not by DDP hooks
        if dist_info.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2))
        log = MetricsLog(run_dir, METRIC_COLUMNS, start_step, enabled=dist_info.main)
        val_indices = val_data.fixed_indices(config.val_windows, seed=config.seed) if val_data is not None else None

        def save(step: int, val_loss: float | None) -> None:
            nonlocal best_val
            if not dist_info.main:
                return
            improved = val_loss is not None and val_loss < best_val
            if improved:
                best_val = val_loss
            state = {**checkpoint_header(KIND), "policy": policy.state_dict(), "policy_config": config.policy.to_json(),
                     "train_config": config.to_json(), "method": config.method,
                     "normaliser": world.normaliser.state_dict(), "model_config": world.model_config.to_json(),
                     "observation": world.observation, "extra": extra or {},
                     "uncertainty": None if uncertainty is None else uncertainty.state_dict(),
                     "anchor_policy": None if anchor is None else anchor.state_dict(),
                     "reached_weights": reached_weights, "reached_step": reached_step,
                     "optimiser": optimiser.state_dict(), "step": step, "best_val": best_val,
                     "rng": capture_rng_state()}
            atomic_save(state, ckpt_path)
            if improved:
                atomic_save(state, run_dir / "best.pt")

        last_step = config.steps if stop_after is None else min(config.steps, stop_after)
        bar = None
        if progress and dist_info.main:
            from tqdm import tqdm
            bar = tqdm(total=config.steps, initial=start_step, desc=f"train {config.method}", unit="step",
                       dynamic_ncols=True)
        consecutive_bad = 0
        sums: dict[str, float] = {}
        sum_count = 0
        window_start = started = time.perf_counter()
        last_row: dict[str, Any] = {}
        val_metrics: dict[str, float] = {}
        step = start_step
        net.train()
        with Prefetcher(train_data, range(start_step, last_step), config.seed, config.batch_size, device,
                        dist_info.rank, dist_info.world_size, depth=config.prefetch) as batches:
            for step, batch in batches:
                if config.reached_fraction and step % config.reached_every == 0:
                    reached_weights = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}
                    reached_step = step
                    pool = reached.collect(reached_weights, config.seed, step)
                torch.manual_seed(step_seed(config.seed, step, dist_info.rank))
                contexts, reached_parts = None, {}
                if pool is not None and len(pool):
                    share = min(max(round(config.reached_fraction * len(batch)), 1), len(batch) - 1)   # this process's
                    rows = torch.randint(len(pool), (share,))
                    contexts = pool.take(rows, device)
                    batch = batch.head(len(batch) - share)
                    reached_parts = {"reached_lane": pool.lane[rows].mean()}
                lr = config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr
                for group in optimiser.param_groups:      # a function of the step: a resumed run gets the same
                    group["lr"] = lr
                with autocast(device, amp):
                    loss, parts = policy_loss(net, world, batch, config, cost_model, uncertainty, anchor,
                                              contexts)
                parts.update(reached_parts)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                dist_info.average_gradients(policy.parameters())
                grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
                bad = dist_info.any(not (bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm))), device)
                if bad:
                    consecutive_bad += 1
                    optimiser.zero_grad(set_to_none=True)
                    if consecutive_bad >= config.max_bad_steps:
                        raise TrainingDiverged(f"{consecutive_bad} consecutive steps up to {step + 1} had a non-finite "
                                               f"loss or gradient; lower --lr or resume from {ckpt_path}")
                else:
                    consecutive_bad = 0
                    optimiser.step()
                    for k, v in {"loss": loss.detach(), **parts, "grad_norm": grad_norm.detach(), "lr": lr}.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                    sum_count += 1
                done = step + 1
                if bar is not None:
                    bar.update(1)
                if val_data is not None and config.val_every and done % config.val_every == 0 and dist_info.main:
                    val_metrics = validate(policy, world, val_data, val_indices, config, cost_model, uncertainty,
                                           device, anchor)
                if done % config.log_every == 0 or done == last_step or done == 1:
                    row: dict[str, Any] = {"step": done, "wall_s": round(time.perf_counter() - started, 3)}
                    if sum_count:
                        row.update({k: v / sum_count for k, v in sums.items()})
                    row["samples_per_s"] = sum_count * config.batch_size / max(time.perf_counter() - window_start, 1e-9)
                    if val_metrics and config.val_every and done % config.val_every == 0:
                        row.update(val_metrics)
                    log.write(row)
                    last_row = row
                    if bar is not None and "loss" in row:
                        shown = {k: f"{row[k]:.3g}" for k in ("loss", "proximity", "lane", "uncertainty", "il_error")
                                 if k in row}
                        bar.set_postfix(shown)
                    sums, sum_count = {}, 0
                    window_start = time.perf_counter()
                if done % config.checkpoint_every == 0 or done == config.steps:
                    val_loss = val_metrics.get("val_loss") if config.val_every and done % config.val_every == 0 else None
                    save(done, val_loss)
                step = done
        if bar is not None:
            bar.close()
        log.close()
        dist_info.barrier()
        return {"step": step, "metrics": last_row, "val": val_metrics, "checkpoint": str(ckpt_path),
                "seconds": time.perf_counter() - started, "device": str(device)}
    finally:
        dist_info.close()


def _check_resumable(config: PolicyTrainConfig, ckpt: dict, path: Path, window_origin: bool = True) -> None:
    """Refuse to resume with settings that change the training (``window_origin``: whether that field does)."""
    saved = PolicyTrainConfig.from_json(ckpt["train_config"])
    for name in ("method", "world_model", "batch_size", "horizon", "copies", "lr", "warmup_steps", "anchor_weight",
                 "reached_fraction", "reached_every", "reached_episodes", "reached_steps", "reached_stride",
                 "road_costs", "speed_reference", "seed", "weights", "policy", "planner_contexts",
                 "planner_iterations", "planner_lr", "planner_futures") + (("window_origin",) if window_origin else ()):
        if getattr(saved, name) != getattr(config, name):
            hint = (f"--window-origin {saved.window_origin} to go on as it trained, or "
                    if name == "window_origin" else "")
            raise ValueError(f"{path}: cannot resume: {name} was {getattr(saved, name)!r} in the checkpoint, "
                             f"{getattr(config, name)!r} now ({hint}use another --run name)")


# ---------------------------------------------------------------------------------------------- loading

@dataclass
class LoadedPolicy:
    """A trained policy ready to drive: the network (eval mode) and what it was trained with."""

    policy: DrivingPolicy
    method: str
    normaliser: Any
    model_config: Any
    observation: dict
    train_config: PolicyTrainConfig
    uncertainty: UncertaintyStats | None
    step: int


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> LoadedPolicy:
    """Load a policy checkpoint written by :func:`train_policy` (``weights_only=True``)."""
    from ppuu.world_model.models import ModelConfig
    from ppuu.world_model.normalisation import Normaliser

    ckpt = load_checkpoint_file(path, KIND)
    policy = DrivingPolicy(PolicyConfig.from_json(ckpt["policy_config"]))
    policy.load_state_dict(ckpt["policy"])
    policy.to(device).eval()
    return LoadedPolicy(policy=policy, method=str(ckpt["method"]),
                        normaliser=Normaliser.from_state_dict(ckpt["normaliser"]).to(device),
                        model_config=ModelConfig.from_json(ckpt["model_config"]), observation=dict(ckpt["observation"]),
                        train_config=PolicyTrainConfig.from_json(ckpt["train_config"]),
                        uncertainty=None if ckpt.get("uncertainty") is None
                        else UncertaintyStats.from_state_dict(ckpt["uncertainty"]),
                        step=int(ckpt["step"]))
