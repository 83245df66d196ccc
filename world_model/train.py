"""Training the forward model: one loop, read top to bottom (SPEC §5).

    loss = MSE(predicted images, true images) + MSE(predicted states, true states) + beta * KL

over ``predicted_steps`` autoregressive steps, Adam, gradient clipping. The
deterministic model (``latent_dim = 0``) is trained first; the VAE is then
warm-started from it (:attr:`TrainConfig.init`: every weight whose name and shape
match is copied).

What the loop guarantees:

* **Resume = uninterrupted.** A checkpoint (``RUN/checkpoint.pt``) holds the model,
  optimiser, normaliser, configs, step, counters and RNG states, written atomically
  (temporary file, then ``os.replace``). The batch of step ``s`` is a pure function of
  ``(seed, s)`` and the torch RNG is re-seeded from ``(seed, s, rank)`` at every step,
  so a run killed and resumed from its last checkpoint ends with exactly the weights
  of a run that was never interrupted.
* **NaN guard.** A step whose loss or gradient norm is not finite is skipped (no
  update) and counted; :attr:`TrainConfig.max_bad_steps` consecutive skips stop the
  run with :class:`TrainingDiverged`.
* **Data never starves the model**: batches are rendered on the model's device one or
  two steps ahead by a background thread (:class:`ppuu.world_model.dataset.Prefetcher`).
* **Devices**: bf16 autocast and channels-last on CUDA (``amp``, ``channels_last``),
  optional ``torch.compile``; several GPUs or machines by DDP under ``torchrun``
  (``batch_size`` is the global batch, split over the processes; the gloo backend on
  CPU, NCCL on CUDA). Only rank 0 writes.

Outputs in the run folder: ``config.json`` (:class:`TrainConfig`), ``metrics.csv``
(and TensorBoard events when ``tensorboard`` is installed), ``checkpoint.pt`` (last)
and ``best.pt`` (lowest validation loss).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppuu.world_model.dataset import Batch, Prefetcher, WindowDataset, step_seed
from ppuu.world_model.models import ForwardModel, ModelConfig
from ppuu.world_model.normalisation import Normaliser
from ppuu.world_model.runs import (
    Distributed,
    MetricsLog,
    atomic_save,
    autocast,
    capture_rng_state,
    checkpoint_header,
    copy_matching,
    load_checkpoint_file,
    resolve_device,
    restore_rng_state,
    use_amp,
)

KIND = "world-model"
"""The ``kind`` field of world-model checkpoints (:mod:`ppuu.world_model.runs`)."""

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
METRIC_COLUMNS = ("step", "loss", "image_mse", "state_mse", "kl", "grad_norm", "nan_skips", "samples_per_s",
                  "val_loss", "val_image_mse", "val_state_mse", "val_kl", "val_prior_image_mse", "wall_s")


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


# ---------------------------------------------------------------------------------------------- configuration

PROFILES: dict[str, dict[str, Any]] = {
    # A model a laptop trains in minutes: the reference's context and image, narrower layers,
    # shorter unroll, small batch.
    "cpu": dict(batch_size=16, predicted_steps=5, steps=3000, lr=5e-4, val_every=250, checkpoint_every=250,
                val_windows=128, model=dict(hidden_channels=(16, 32, 64), hidden_mlp=64, latent_dim=16)),
    # SPEC §5 (GPU): 64 / 128 / 256 maps, 256-wide MLPs, 32-d latent, batch 64, 20 steps, Adam 1e-4.
    "reference": dict(batch_size=64, predicted_steps=20, steps=200_000, lr=1e-4, val_every=2000,
                      checkpoint_every=2000, val_windows=1024, model=dict()),
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run folder).

    Attributes:
        scene: name of the scene (informational; the data come in as datasets).
        profile: "cpu" or "reference": the preset the other fields started from.
        model_type: "deterministic" (latent_dim forced to 0) or "vae".
        steps: optimiser steps in total (a resumed run continues up to this).
        batch_size: windows per step, over all processes.
        predicted_steps: N, autoregressive steps predicted and scored.
        lr: Adam learning rate.
        beta: weight of the KL term.
        grad_clip: max global gradient norm.
        seed: seed of everything (data order, dropout, latents, initial weights).
        device: "cpu", "cuda", "cuda:1", ... ; None = CUDA when available.
        amp: bf16 autocast (None = on for CUDA).
        channels_last: channels-last convolutions (None = on for CUDA).
        compile: ``torch.compile`` the model.
        init: a deterministic checkpoint to warm-start from (weights copied by name and shape).
        val_every: steps between validations (0 = never).
        val_windows: validation windows (a fixed subset of the val split).
        checkpoint_every: steps between checkpoints (one is always written at the end).
        log_every: steps between metric rows.
        stats_windows: training windows sampled for the normalisation statistics.
        max_bad_steps: consecutive non-finite steps tolerated before stopping.
        prefetch: batches rendered ahead.
        model: the :class:`~ppuu.world_model.models.ModelConfig`.
        observation: how the training images were made, as JSON given by the caller (the
            command line stores the simulator's ``{"raster": RasterConfig, "costs": CostConfig}``),
            so that a planner can check that its costs read the images the model predicts
            (:meth:`LoadedModel.check_observation`).
    """

    scene: str = ""
    profile: str = "cpu"
    model_type: str = "deterministic"
    steps: int = 3000
    batch_size: int = 16
    predicted_steps: int = 10
    lr: float = 5e-4
    beta: float = 1e-6
    grad_clip: float = 5.0
    seed: int = 0
    device: str | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    init: str | None = None
    val_every: int = 250
    val_windows: int = 128
    checkpoint_every: int = 250
    log_every: int = 10
    stats_windows: int = 1024
    max_bad_steps: int = 10
    prefetch: int = 2
    model: ModelConfig = field(default_factory=ModelConfig)
    observation: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model_type not in ("deterministic", "vae"):
            raise ValueError(f"TrainConfig.model_type {self.model_type!r}: expected 'deterministic' or 'vae'")
        for name in ("steps", "batch_size", "predicted_steps", "log_every", "max_bad_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} = {getattr(self, name)}: expected >= 1")
        if self.lr <= 0 or self.grad_clip <= 0 or self.beta < 0:
            raise ValueError(f"TrainConfig: lr and grad_clip must be > 0 and beta >= 0, got "
                             f"lr={self.lr}, grad_clip={self.grad_clip}, beta={self.beta}")
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_json(self.model)
        if self.model_type == "deterministic" and self.model.latent_dim != 0:
            self.model = dataclasses.replace(self.model, latent_dim=0)
        if self.model_type == "vae" and self.model.latent_dim == 0:
            raise ValueError("TrainConfig: model_type 'vae' needs model.latent_dim > 0")

    @classmethod
    def for_profile(cls, profile: str = "cpu", model_type: str = "deterministic", **overrides: Any) -> "TrainConfig":
        """The preset ``profile`` ("cpu" or "reference") with ``overrides`` (None values are ignored).

        ``model`` may be given as a dict of :class:`ModelConfig` fields to override.
        """
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
        preset = dict(PROFILES[profile])
        model_fields = dict(preset.pop("model"))
        model_fields.update(overrides.pop("model", None) or {})
        preset.update({k: v for k, v in overrides.items() if v is not None})
        if model_type == "deterministic":
            model_fields["latent_dim"] = 0
        model = dataclasses.replace(ModelConfig(), **model_fields)
        return cls(profile=profile, model_type=model_type, model=model, **preset)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        out["model"] = self.model.to_json()
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {unknown}")
        obj = dict(obj)
        obj["model"] = ModelConfig.from_json(obj.get("model", {}))
        return cls(**obj)


# ---------------------------------------------------------------------------------------------- loading

@dataclass
class LoadedModel:
    """A trained model ready to predict: the network (eval mode), its normaliser and configs."""

    model: ForwardModel
    normaliser: Normaliser
    model_config: ModelConfig
    train_config: TrainConfig
    step: int

    @property
    def stochastic(self) -> bool:
        return self.model_config.latent_dim > 0

    @property
    def observation(self) -> dict:
        """How the training images were made (:attr:`TrainConfig.observation`)."""
        return self.train_config.observation

    def check_observation(self, name: str, expected: dict) -> None:
        """Raise ValueError unless the training images were made with the settings ``expected``.

        Args:
            name: the key in :attr:`observation` (e.g. "raster").
            expected: the settings the caller will use, as JSON (e.g. ``RasterConfig().to_json()``).
        """
        saved = self.observation.get(name)
        if saved is None:
            raise ValueError(f"the world model (step {self.step}) does not record its {name!r} settings; retrain it "
                             f"with this version of ppuu")
        differ = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k))
        if differ:
            detail = ", ".join(f"{k}: model {saved.get(k)!r}, here {expected.get(k)!r}" for k in differ)
            raise ValueError(f"the world model was trained on images with other {name} settings ({detail})")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint written by :func:`train` (``weights_only=True``) onto ``device``."""
    ckpt = load_checkpoint_file(path, KIND)
    model_config = ModelConfig.from_json(ckpt["model_config"])
    model = ForwardModel(model_config)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return LoadedModel(model=model, normaliser=Normaliser.from_state_dict(ckpt["normaliser"]).to(device),
                       model_config=model_config, train_config=TrainConfig.from_json(ckpt["train_config"]),
                       step=int(ckpt["step"]))


# ---------------------------------------------------------------------------------------------- the loss

def compute_loss(model: nn.Module, batch: Batch, config: TrainConfig, normaliser: Normaliser,
                 z_source: str = "posterior", z_dropout: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Unroll the model over the batch's N steps and score it.

    Returns:
        (loss, parts): scalar loss = image MSE + state MSE + beta * KL (KL: mean over windows and
        steps); parts holds the detached terms.
    """
    pred = model(batch.context_images, batch.context_states, batch.actions,
                 target_images=batch.target_images, target_states=batch.target_states,
                 z_source=z_source, z_dropout=z_dropout, stats=normaliser)
    image_mse = F.mse_loss(pred.images.float(), batch.target_images.float())
    state_mse = F.mse_loss(pred.states.float(), batch.target_states.float())
    kl = pred.kl.float().mean() if pred.kl is not None and pred.kl.numel() else image_mse.new_zeros(())
    loss = image_mse + state_mse + config.beta * kl
    return loss, {"loss": loss.detach(), "image_mse": image_mse.detach(), "state_mse": state_mse.detach(),
                  "kl": kl.detach()}


@torch.no_grad()
def validate(model: nn.Module, data: WindowDataset, indices: np.ndarray, config: TrainConfig,
             normaliser: Normaliser, device: torch.device, seed: int = 0) -> dict[str, float]:
    """Mean loss terms over fixed validation windows, eval mode (no dropout), posterior latents
    without z-dropout; for a VAE also the image MSE with prior latents."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for lo in range(0, len(indices), config.batch_size):
            batch = data.batch(indices[lo:lo + config.batch_size]).to(device)
            with autocast(device, use_amp(config.amp, device)):
                _, parts = compute_loss(model, batch, config, normaliser, z_dropout=0.0)
                if config.model.latent_dim > 0:
                    _, prior = compute_loss(model, batch, config, normaliser, z_source="prior")
                    parts["prior_image_mse"] = prior["image_mse"]
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(batch)
            count += len(batch)
    model.train(was_training)
    return {f"val_{k}": v / max(count, 1) for k, v in sums.items()}


# ---------------------------------------------------------------------------------------------- the loop

def train(config: TrainConfig, train_data: WindowDataset, val_data: WindowDataset | None, run_dir: str | Path,
          *, progress: bool = True, stop_after: int | None = None) -> dict[str, Any]:
    """Train (or resume training of) a forward model.

    Args:
        config: the run's :class:`TrainConfig`.
        train_data: windows of the training split; its normaliser is fitted here (or read from the
            checkpoint / the warm-start checkpoint).
        val_data: windows of the validation split, or None.
        run_dir: the run folder; an existing ``checkpoint.pt`` there is resumed.
        progress: show a tqdm bar (rank 0).
        stop_after: stop once this many steps are done (as a kill would, after the checkpoint of
            that step if one falls there); for tests and time-boxed runs.

    Returns:
        A summary: step, last metrics, validation metrics, nan_skips, checkpoint path, seconds.
    """
    run_dir = Path(run_dir)
    dist_info = Distributed.setup(config.device)
    device = resolve_device(config.device, dist_info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    amp = use_amp(config.amp, device)
    channels_last = device.type == "cuda" if config.channels_last is None else bool(config.channels_last)
    for data in (train_data, val_data):
        if data is not None and data.channels != config.model.image_channels:
            raise ValueError(f"dataset batches keep {data.channels} image channels, the model takes "
                             f"{config.model.image_channels}")
    if config.model.context != train_data.context or config.predicted_steps != train_data.predicted_steps:
        raise ValueError(f"dataset windows ({train_data.context} + {train_data.predicted_steps}) do not match the "
                         f"config ({config.model.context} context + {config.predicted_steps} predicted)")
    ckpt_path = run_dir / CHECKPOINT_NAME
    try:
        torch.manual_seed(config.seed)
        ckpt = load_checkpoint_file(ckpt_path, KIND) if ckpt_path.is_file() else None
        if ckpt is not None:
            _check_resumable(config, ckpt, ckpt_path)
            normaliser = Normaliser.from_state_dict(ckpt["normaliser"])
        elif config.init:
            normaliser = Normaliser.from_state_dict(load_checkpoint_file(config.init, KIND)["normaliser"])
        else:
            normaliser = train_data.fit_normaliser(config.stats_windows, seed=config.seed)
        train_data.normaliser = normaliser
        if val_data is not None:
            val_data.normaliser = normaliser
        norm_dev = normaliser.to(device)

        model = ForwardModel(config.model)
        start_step, nan_skips, best_val = 0, 0, math.inf
        init_report = None
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            start_step, nan_skips = int(ckpt["step"]), int(ckpt["nan_skips"])
            best_val = float(ckpt["best_val"])
        elif config.init:
            copied, fresh = copy_matching(model, load_checkpoint_file(config.init, KIND)["model"])
            if not copied:
                raise ValueError(f"--init {config.init}: no weight matches this model by name and shape (were the "
                                 f"layer widths the same?)")
            init_report = f"warm start from {config.init}: {len(copied)} tensors copied, {len(fresh)} new"
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        if ckpt is not None:
            optimiser.load_state_dict(ckpt["optimiser"])
            restore_rng_state(ckpt["rng"])
        net: nn.Module = dist_info.wrap(model, device, find_unused_parameters=config.model.latent_dim > 0)
        if config.compile:
            net = torch.compile(net)

        if dist_info.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2))
            if init_report:
                print(init_report)
        log = MetricsLog(run_dir, METRIC_COLUMNS, start_step, enabled=dist_info.main)
        val_indices = val_data.fixed_indices(config.val_windows, seed=config.seed) if val_data is not None else None

        def save(step: int, val_loss: float | None) -> None:
            nonlocal best_val
            if not dist_info.main:
                return
            improved = val_loss is not None and val_loss < best_val
            if improved:
                best_val = val_loss
            state = {**checkpoint_header(KIND), "model": model.state_dict(), "model_config": config.model.to_json(),
                     "train_config": config.to_json(), "normaliser": normaliser.state_dict(),
                     "optimiser": optimiser.state_dict(), "step": step, "nan_skips": nan_skips,
                     "best_val": best_val, "rng": capture_rng_state()}
            atomic_save(state, ckpt_path)
            if improved:
                atomic_save(state, run_dir / BEST_NAME)

        last_step = config.steps if stop_after is None else min(config.steps, stop_after)
        bar = None
        if progress and dist_info.main:
            from tqdm import tqdm
            bar = tqdm(total=config.steps, initial=start_step, desc=f"train {config.model_type}", unit="step",
                       dynamic_ncols=True)
        params = [p for p in model.parameters() if p.requires_grad]
        consecutive_bad = 0
        sums: dict[str, Tensor] = {}
        sum_count = 0
        grad_norms: list[Tensor] = []
        window_start = time.perf_counter()
        started = time.perf_counter()
        last_row: dict[str, Any] = {}
        val_metrics: dict[str, float] = {}
        step = start_step
        net.train()
        with Prefetcher(train_data, range(start_step, last_step), config.seed, config.batch_size, device,
                        dist_info.rank, dist_info.world_size, depth=config.prefetch) as batches:
            for step, batch in batches:
                torch.manual_seed(step_seed(config.seed, step, dist_info.rank))
                with autocast(device, amp):
                    loss, parts = compute_loss(net, batch, config, norm_dev)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                bad = not (bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm)))
                bad = dist_info.any(bad, device)
                if bad:
                    nan_skips += 1
                    consecutive_bad += 1
                    optimiser.zero_grad(set_to_none=True)
                    if consecutive_bad >= config.max_bad_steps:
                        raise TrainingDiverged(
                            f"{consecutive_bad} consecutive training steps (up to step {step + 1}) had a non-finite "
                            f"loss or gradient; stopped ({nan_skips} skipped in all). Lower --lr, check the data, "
                            f"or resume from {ckpt_path}.")
                else:
                    consecutive_bad = 0
                    optimiser.step()
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0) + v
                    grad_norms.append(grad_norm.detach())
                    sum_count += 1
                done = step + 1
                if bar is not None:
                    bar.update(1)
                if val_data is not None and config.val_every and done % config.val_every == 0 and dist_info.main:
                    val_metrics = validate(model, val_data, val_indices, config, norm_dev, device, config.seed)
                if done % config.log_every == 0 or done == last_step or done in (1,):
                    elapsed = time.perf_counter() - window_start
                    row: dict[str, Any] = {"step": done, "nan_skips": nan_skips,
                                           "wall_s": round(time.perf_counter() - started, 3)}
                    if sum_count:
                        row.update({k: float(v) / sum_count for k, v in sums.items()})
                        row["grad_norm"] = float(torch.stack(grad_norms).mean())
                    row["samples_per_s"] = sum_count * config.batch_size / max(elapsed, 1e-9)
                    if val_metrics and done % config.val_every == 0:
                        row.update(val_metrics)
                    log.write(row)
                    last_row = row
                    if bar is not None and "loss" in row:
                        bar.set_postfix(loss=f"{row['loss']:.4g}", skips=nan_skips)
                    sums, sum_count, grad_norms = {}, 0, []
                    window_start = time.perf_counter()
                if done % config.checkpoint_every == 0 or done == config.steps:
                    val_loss = val_metrics.get("val_loss") if done % max(config.val_every, 1) == 0 else None
                    save(done, val_loss)
                step = done
        if bar is not None:
            bar.close()
        log.close()
        dist_info.barrier()
        return {"step": step, "metrics": last_row, "val": val_metrics, "nan_skips": nan_skips,
                "checkpoint": str(ckpt_path), "seconds": time.perf_counter() - started, "device": str(device)}
    finally:
        dist_info.close()


def _check_resumable(config: TrainConfig, ckpt: dict, path: Path) -> None:
    saved = TrainConfig.from_json(ckpt["train_config"])
    for name in ("model_type", "batch_size", "predicted_steps", "lr", "beta", "seed", "model", "observation"):
        if getattr(saved, name) != getattr(config, name):
            raise ValueError(f"{path}: cannot resume: {name} was {getattr(saved, name)!r} in the checkpoint, "
                             f"{getattr(config, name)!r} now (use another --run name)")
