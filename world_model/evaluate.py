"""How good are the predictions? Error against horizon, spread of the futures, pictures of them.

On fixed windows of a split (the test split by default), each model predicts
``horizon`` steps from the same 20 context frames and the recorded actions:

* **error against horizon**: image MSE (per pixel, images in [0, 1]), position error
  (m, Euclidean, world frame: predicted states de-normalised and shifted back by the
  window's x_ref, see :mod:`ppuu.world_model.dataset`) and speed error (m/s), for the
  deterministic model and the VAE with posterior latents (it has seen the future: an
  upper bound) and prior latents (what the planner gets), against two baselines:
  *copy the last frame* (the last context image and state, held) and *constant
  velocity* (the last image held, the position extrapolated at the last velocity);
* **spread**: the standard deviation across ``samples`` latent draws (same dropout-free
  network) and across ``samples`` dropout masks (same latent), per pixel and in metres;
  SPEC §4's uncertainty cost is built on the second;
* **action effect**: with the same latent, braking and accelerating actions must give
  different futures; the distance between the two predicted positions and images is
  reported (a model that put everything into z would show none);
* a figure and a GIF of one window: the true future beside several sampled futures for
  the same context and actions, and the same latent under different actions.

Everything lands in one folder (``WORKDIR/reports/SCENE/`` from the command line):
``world-model.md`` (tables), ``world-model.json``, ``world-model-error.png``,
``world-model-futures.png`` and ``world-model-futures.gif``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ppuu.world_model.dataset import VEHICLES, Batch, WindowDataset, make_batch
from ppuu.world_model.normalisation import Normaliser
from ppuu.world_model.interface import world_states
from ppuu.world_model.kinematics import kinematic_rollout
from ppuu.world_model.train import LoadedModel

REPORT_STEM = "world-model"
BASELINE_COPY = "copy last frame"
BASELINE_CV = "constant velocity"
BRAKE, ACCELERATE = -3.0, 2.0
"""m/s^2 of the two alternative action sequences of the action-effect check and the figures."""


@dataclass
class EvalConfig:
    """What to evaluate.

    Attributes:
        split: the split the windows come from (its name, for the report).
        windows: windows scored (a fixed random subset of the split's windows).
        horizon: predicted steps scored (N).
        samples: latent samples and dropout masks for the spread (K).
        spread_windows: windows used for the spread and the action effect.
        batch_size: windows per forward pass.
        seed: seed of the window choice, latents and dropout masks.
        futures: sampled futures shown in the figure and GIF.
        gif_scale: pixel upscaling of the GIF panels.
    """

    split: str = "test"
    windows: int = 256
    horizon: int = 20
    samples: int = 8
    spread_windows: int = 64
    batch_size: int = 32
    seed: int = 0
    futures: int = 3
    gif_scale: int = 3

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Report:
    """The numbers and the files of an evaluation.

    Attributes:
        errors: row name -> {"image_mse", "position_error", "speed_error"} -> (N,) lists per step.
        spread: model name -> {"latent_image_std", "latent_position_std", "dropout_image_std",
            "dropout_position_std"} -> (N,) lists (latent entries only for stochastic models).
        action_effect: model name -> {"position_m", "image_abs"}: mean difference at the last step
            between braking and accelerating with the same latent.
        files: kind ("markdown", "json", "plot", "figure", "gif") -> path.
    """

    errors: dict[str, dict[str, list[float]]]
    spread: dict[str, dict[str, list[float]]]
    action_effect: dict[str, dict[str, float]]
    config: dict
    files: dict[str, str] = field(default_factory=dict)
    markdown: str = ""


# ---------------------------------------------------------------------------------------------- helpers

def _step_errors(images: Tensor, world: Tensor, true_images: Tensor, true_world: Tensor) -> dict[str, Tensor]:
    """Per-step sums over windows of image MSE (all channels, and the vehicles channel: the traffic),
    position error (m) and speed error (m/s): each (N,)."""
    return {
        "image_mse": ((images - true_images) ** 2).flatten(2).mean(-1).sum(0),
        "vehicles_mse": ((images[:, :, VEHICLES] - true_images[:, :, VEHICLES]) ** 2).flatten(2).mean(-1).sum(0),
        "position_error": (world[..., :2] - true_world[..., :2]).norm(dim=-1).sum(0),
        "speed_error": (world[..., 2:].norm(dim=-1) - true_world[..., 2:].norm(dim=-1)).abs().sum(0),
    }


def _predict(loaded: LoadedModel, batch: Batch, z_source: str, z: Tensor | None = None,
             actions: Tensor | None = None, dropout: bool = False):
    model = loaded.model
    model.train(dropout)
    with torch.no_grad():
        return model(batch.context_images, batch.context_states, batch.actions if actions is None else actions,
                     target_images=batch.target_images, target_states=batch.target_states, z_source=z_source, z=z,
                     z_dropout=0.0, stats=loaded.normaliser)


def _constant_actions(batch: Batch, normaliser: Normaliser, acceleration: float) -> Tensor:
    """The batch's actions with the acceleration replaced by ``acceleration`` m/s^2 and no steering."""
    raw = normaliser.denormalise_actions(batch.actions)
    raw = torch.stack([torch.full_like(raw[..., 0], acceleration), torch.zeros_like(raw[..., 1])], dim=-1)
    return normaliser.normalise_actions(raw)


def colourise(images: Tensor) -> np.ndarray:
    """Observations (..., C, H, W) in [0, 1], C = 3 or 4 -> RGB uint8 (..., H, W, 3): off-road grey, lane
    markings white, other vehicles blue, the ego (a fourth channel, when there is one) red (channel order
    of the simulator's rasteriser)."""
    x = images.detach().float().clamp(0, 1).cpu()
    lanes, vehicles, offroad = (x[..., i, :, :, None] for i in range(3))
    ego = x[..., 3, :, :, None] if x.shape[-3] > 3 else torch.zeros_like(lanes)
    colours = torch.tensor([[0.85, 0.85, 0.85], [0.25, 0.6, 1.0], [0.3, 0.3, 0.3], [1.0, 0.25, 0.2]])
    rgb = (0.12 + offroad * colours[2] + (lanes * 2.5).clamp(0, 1) * colours[0] + vehicles * colours[1]
           + ego * colours[3])
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


# ---------------------------------------------------------------------------------------------- evaluation

Truth = Callable[[np.ndarray, np.ndarray, int, Tensor], Tensor]
"""``truth(vehicle_ids (B,), start_frames (B,), first, states (B, N, 4)) -> images (B, N, C, H, W)``: what the
source would have shown along other ego states from frame ``first`` of the windows on (e.g.
``RecordedObservations.render_states``)."""


def evaluate(models: dict[str, LoadedModel], data: WindowDataset, out_dir: str | Path,
             config: EvalConfig | None = None, title: str = "", progress: bool = False,
             truth: Truth | None = None, stem: str = REPORT_STEM) -> Report:
    """Score ``models`` on ``data`` and write the report.

    Args:
        models: label -> loaded model (e.g. {"deterministic": ..., "vae": ...}); all with the
            dataset's context length. Each uses its own normaliser.
        data: windows of the evaluated split with ``predicted_steps`` = ``config.horizon``.
        out_dir: where the report files go (created).
        config: :class:`EvalConfig`.
        title: heading of the Markdown report (e.g. the scene name).
        progress: show a progress bar.
        stem: file-name stem of the report files (``STEM.md``, ``STEM.json``, ``STEM-error.png``, ...).
        truth: renders the true future under other actions, for the action-effect table (without it
            only the true ego displacement, from the kinematic model, is reported).

    Returns:
        the :class:`Report` (numbers and file paths).
    """
    config = config or EvalConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not models:
        raise ValueError("evaluate: no model to evaluate")
    if data.predicted_steps != config.horizon:
        raise ValueError(f"dataset predicts {data.predicted_steps} steps, config.horizon is {config.horizon}")
    for name, m in models.items():
        if m.model_config.context != data.context:
            raise ValueError(f"model {name!r} takes {m.model_config.context} context frames, the windows have "
                             f"{data.context}")
    indices = data.fixed_indices(config.windows, seed=config.seed)
    chunks = range(0, len(indices), config.batch_size)
    if progress:
        from tqdm import tqdm
        chunks = tqdm(chunks, desc="evaluate", unit="batch")

    sums: dict[str, dict[str, Tensor]] = {}
    generator_seed = config.seed

    def add(row: str, errs: dict[str, Tensor]) -> None:
        acc = sums.setdefault(row, {})
        for k, v in errs.items():
            acc[k] = acc.get(k, 0) + v.double().cpu()

    first = next(iter(models.values()))
    for lo in chunks:
        raw = data.raw(indices[lo:lo + config.batch_size])
        torch.manual_seed(generator_seed + lo)
        base = make_batch(raw, data.context, first.normaliser)
        true_world = raw.states[:, data.context:].float()
        last_image = base.context_images[:, -1:].expand_as(base.target_images)
        last_state = raw.states[:, data.context - 1:data.context].float()
        held = last_state.expand_as(true_world)
        steps = torch.arange(1, config.horizon + 1, device=held.device, dtype=held.dtype)[None, :, None]
        cv = held.clone()
        cv[..., :2] = held[..., :2] + held[..., 2:] * steps * first.model_config.dt
        add(BASELINE_COPY, _step_errors(last_image, held, base.target_images, true_world))
        add(BASELINE_CV, _step_errors(last_image, cv, base.target_images, true_world))
        for name, loaded in models.items():
            batch = make_batch(raw, data.context, loaded.normaliser)
            sources = ["posterior", "prior"] if loaded.stochastic else ["prior"]
            for source in sources:
                pred = _predict(loaded, batch, source)
                world = world_states(pred.states, batch.origin, loaded.normaliser)
                row = f"{name} ({source} z)" if loaded.stochastic else name
                add(row, _step_errors(pred.images.float(), world, batch.target_images, true_world))
    n = len(indices)
    errors = {row: {k: (v / n).tolist() for k, v in acc.items()} for row, acc in sums.items()}

    spread, effect = _spread_and_action_effect(models, data, config, truth)
    report = Report(errors=errors, spread=spread, action_effect=effect, config=config.to_json())
    report.markdown = _markdown(report, title, n, len(data))
    files = {"markdown": out / f"{stem}.md", "json": out / f"{stem}.json", "plot": out / f"{stem}-error.png",
             "figure": out / f"{stem}-futures.png", "gif": out / f"{stem}-futures.gif"}
    report.files = {k: str(v) for k, v in files.items()}
    _plot_errors(report, files["plot"], title)
    showcase = next((m for m in reversed(list(models.values())) if m.stochastic), first)
    _futures(showcase, data, config, files["figure"], files["gif"])
    files["markdown"].write_text(report.markdown)
    files["json"].write_text(json.dumps({"errors": errors, "spread": spread, "action_effect": effect,
                                         "config": config.to_json(), "windows": n}, indent=2))
    for loaded in models.values():
        loaded.model.eval()
    return report


def _spread_and_action_effect(models: dict[str, LoadedModel], data: WindowDataset, config: EvalConfig,
                              truth: Truth | None = None):
    """Per-step std across K latent samples and K dropout masks; braking vs accelerating, predicted and true."""
    indices = data.fixed_indices(config.spread_windows, seed=config.seed + 1)
    K = config.samples
    spread: dict[str, dict[str, list[float]]] = {}
    effect: dict[str, dict[str, float]] = {}
    for name, loaded in models.items():
        acc: dict[str, Tensor] = {}
        eff = {"position_m": 0.0, "true_position_m": 0.0, "image_abs": 0.0, "vehicles_abs": 0.0,
               "true_vehicles_abs": 0.0}
        count = 0
        step = max(1, config.batch_size // max(K, 1))
        for lo in range(0, len(indices), step):
            torch.manual_seed(config.seed + 7919 * lo)
            batch = data.to_batch(data.raw(indices[lo:lo + step]), loaded.normaliser)
            B = len(batch)
            rep = Batch(**{k: v.repeat_interleave(K, 0) for k, v in vars(batch).items()})
            parts = {}
            if loaded.stochastic:
                pred = _predict(loaded, rep, "prior")
                parts["latent"] = pred
                z = _predict(loaded, batch, "prior").z.repeat_interleave(K, 0)   # one latent per window
                parts["dropout"] = _predict(loaded, rep, "given", z=z, dropout=True)
            else:
                parts["dropout"] = _predict(loaded, rep, "prior", dropout=True)
            for kind, pred in parts.items():
                imgs = pred.images.float().view(B, K, *pred.images.shape[1:])
                world = world_states(pred.states, rep.origin, loaded.normaliser).view(B, K, -1, 4)
                img_std = imgs.std(1, correction=0).flatten(2).mean(-1).sum(0)              # (N,)
                pos_std = world[..., :2].std(1, correction=0).norm(dim=-1).sum(0)           # (N,)
                acc[f"{kind}_image_std"] = acc.get(f"{kind}_image_std", 0) + img_std.double().cpu()
                acc[f"{kind}_position_std"] = acc.get(f"{kind}_position_std", 0) + pos_std.double().cpu()
            z = _predict(loaded, batch, "prior").z if loaded.stochastic else None
            source = "given" if loaded.stochastic else "prior"
            brake = _predict(loaded, batch, source, z=z, actions=_constant_actions(batch, loaded.normaliser, BRAKE))
            speed = _predict(loaded, batch, source, z=z,
                             actions=_constant_actions(batch, loaded.normaliser, ACCELERATE))
            wb = world_states(brake.states, batch.origin, loaded.normaliser)
            wa = world_states(speed.states, batch.origin, loaded.normaliser)
            eff["position_m"] += float((wb[:, -1, :2] - wa[:, -1, :2]).norm(dim=-1).sum())
            eff["image_abs"] += float((brake.images[:, -1] - speed.images[:, -1]).abs().mean((1, 2, 3)).sum())
            eff["vehicles_abs"] += float((brake.images[:, -1, VEHICLES] - speed.images[:, -1, VEHICLES]).abs()
                                         .mean((1, 2)).sum())
            # The truth: the exact kinematic model (the simulator's) from the last context state.
            last = world_states(batch.context_states[:, -1:], batch.origin, loaded.normaliser)[:, 0]
            true_b, true_a = (_kinematic_rollout(last, value, config.horizon, loaded.model_config.dt)
                              for value in (BRAKE, ACCELERATE))
            eff["true_position_m"] += float((true_b[:, -1, :2] - true_a[:, -1, :2]).norm(dim=-1).sum())
            if truth is not None:
                ids, starts = (a[indices[lo:lo + step]] for a in (data.vehicle_ids, data.start_frames))
                last_b, last_a = (truth(ids, starts, data.length - 1, t[:, -1:])[:, 0, VEHICLES].float()
                                  for t in (true_b, true_a))
                eff["true_vehicles_abs"] += float((last_b - last_a.to(last_b)).abs().mean((1, 2)).sum())
            count += B
        spread[name] = {k: (v / count).tolist() for k, v in acc.items()}
        effect[name] = {k: v / max(count, 1) for k, v in eff.items()}
    return spread, effect


# ---------------------------------------------------------------------------------------------- outputs

def _kinematic_rollout(state: Tensor, acceleration: float, steps: int, dt: float) -> Tensor:
    """(B, 4) physical state -> (B, steps, 4) under a constant acceleration and no steering."""
    return kinematic_rollout(state, state.new_tensor([acceleration, 0.0]).expand(state.shape[0], steps, 2), dt)


def _horizons(n: int) -> list[int]:
    return sorted({h for h in (1, 5, 10, 20, n) if h <= n})


def _markdown(report: Report, title: str, windows: int, available: int) -> str:
    cfg = report.config
    any_row = next(iter(report.errors.values()))
    n = len(any_row["image_mse"])
    hs = _horizons(n)
    lines = [f"# World model prediction error{': ' + title if title else ''}", "",
             (f"{windows} windows of the {cfg['split']} split (of {available}), {n} predicted steps "
              f"(0.1 s each), recorded actions. Image MSE per pixel (images in [0, 1]); position error in "
              f"metres (world frame); speed error in m/s. 'traffic' is the vehicles channel alone. "
              f"'{BASELINE_COPY}' holds the last context image and "
              f"state; '{BASELINE_CV}' holds the image and extrapolates the position at the last velocity."), ""]
    head = (["model"] + [f"image MSE @{h}" for h in hs] + ["image MSE mean", f"traffic MSE @{hs[-1]}",
                                                             "traffic MSE mean"]
            + [f"position m @{h}" for h in hs] + [f"speed m/s @{hs[-1]}"])
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row, e in report.errors.items():
        cells = ([f"{e['image_mse'][h - 1]:.5f}" for h in hs] + [f"{np.mean(e['image_mse']):.5f}"]
                 + [f"{e['vehicles_mse'][hs[-1] - 1]:.5f}", f"{np.mean(e['vehicles_mse']):.5f}"]
                 + [f"{e['position_error'][h - 1]:.2f}" for h in hs] + [f"{e['speed_error'][hs[-1] - 1]:.2f}"])
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", f"## Spread of the predicted futures ({cfg['samples']} samples, {cfg['spread_windows']} windows)",
              "", ("Standard deviation across latent samples (prior, no dropout) and across dropout masks "
                   "(same latent): per pixel, and of the position in metres."), ""]
    head = ["model", "spread over"] + [f"image std @{h}" for h in hs] + [f"position std m @{h}" for h in hs]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, s in report.spread.items():
        for kind, label in (("latent", "latent samples"), ("dropout", "dropout masks")):
            if f"{kind}_image_std" not in s:
                continue
            cells = ([f"{s[f'{kind}_image_std'][h - 1]:.5f}" for h in hs]
                     + [f"{s[f'{kind}_position_std'][h - 1]:.3f}" for h in hs])
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Effect of the action (same latent)", "",
              (f"Braking ({BRAKE:g} m/s^2) against accelerating ({ACCELERATE:+g} m/s^2), no steering, from the "
               f"same context and latent: mean difference after {n} steps, predicted and true (the true "
               "displacement from the exact kinematic model; the true traffic image as the simulator renders "
               "it along the two trajectories, replayed traffic). A planner can only learn from a model whose "
               "futures differ as the true ones do."), "",
              "| model | position difference m | true m | ratio | vehicles channel abs difference | true | "
              "all channels |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, e in report.action_effect.items():
        ratio = e["position_m"] / e["true_position_m"] if e["true_position_m"] else float("nan")
        lines.append(f"| {name} | {e['position_m']:.2f} | {e['true_position_m']:.2f} | {ratio:.3f} | "
                     f"{e['vehicles_abs']:.5f} | {e['true_vehicles_abs']:.5f} | {e['image_abs']:.5f} |")
    lines += ["", "Evaluation settings:", "", "```json", json.dumps(cfg, indent=2), "```", ""]
    return "\n".join(lines)


def _plot_errors(report: Report, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for row, e in report.errors.items():
        steps = np.arange(1, len(e["image_mse"]) + 1)
        style = {BASELINE_COPY: "--", BASELINE_CV: ":"}.get(row, "-")
        axes[0].plot(steps * 0.1, e["image_mse"], style, label=row)
        axes[1].plot(steps * 0.1, e["position_error"], style, label=row)
    axes[0].set(xlabel="horizon (s)", ylabel="image MSE per pixel", title="image error")
    axes[1].set(xlabel="horizon (s)", ylabel="position error (m)", title="position error")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"World model prediction error{': ' + title if title else ''}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _showcase_window(data: WindowDataset, config: EvalConfig) -> np.ndarray:
    """The window of a fixed candidate set whose future changes most (the vehicles channel, last context
    frame against the last future frame): a scene where something happens."""
    candidates = data.fixed_indices(min(64, len(data)), seed=config.seed + 2)
    raw = data.raw(candidates)
    vehicles = raw.images[:, :, 1].float()
    change = (vehicles[:, -1] - vehicles[:, data.context - 1]).abs().flatten(1).mean(1)
    return candidates[int(change.argmax())][None]


def _futures(loaded: LoadedModel, data: WindowDataset, config: EvalConfig, png: Path, gif: Path) -> None:
    """The true future beside sampled futures and the same latent under other actions: PNG and GIF."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from PIL import Image, ImageDraw

    torch.manual_seed(config.seed)
    batch = data.to_batch(data.raw(_showcase_window(data, config)), loaded.normaliser)
    K = max(1, config.futures)
    rep = Batch(**{k: v.repeat_interleave(K, 0) for k, v in vars(batch).items()})
    if loaded.stochastic:
        samples = _predict(loaded, rep, "prior")
        z = samples.z[:1]
        label = "latent sample"
    else:                                                        # no latent: dropout masks make the samples
        samples = _predict(loaded, rep, "prior", dropout=True)
        z = None
        label = "dropout sample"
    source = "given" if loaded.stochastic else "prior"
    brake = _predict(loaded, batch, source, z=z, actions=_constant_actions(batch, loaded.normaliser, BRAKE))
    speed = _predict(loaded, batch, source, z=z, actions=_constant_actions(batch, loaded.normaliser, ACCELERATE))
    same = _predict(loaded, batch, source, z=z)
    prefix = "same z, " if loaded.stochastic else ""
    rows = ([("true future", batch.target_images[0])] + [(f"{label} {k + 1}", samples.images[k]) for k in range(K)]
            + [("sample 1, recorded actions" if loaded.stochastic else "recorded actions", same.images[0]),
               (f"{prefix}brake {BRAKE:g}", brake.images[0]), (f"{prefix}accel {ACCELERATE:+g}", speed.images[0])])
    rgb = [(name, colourise(seq)) for name, seq in rows]                      # (N, H, W, 3)
    N = rgb[0][1].shape[0]
    cols = sorted({c for c in (1, 2, 5, 10, 15, 20, N) if c <= N})
    # Drawn with the road running left to right (ahead on the right, the ego's left at the top).
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.9 * len(cols) + 1.2, 0.5 * len(rows) + 0.7),
                             squeeze=False)
    for r, (name, seq) in enumerate(rgb):
        for c, col in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(np.rot90(seq[col - 1], k=-1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"+{col / 10:g} s", fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    what = "the latent" if loaded.stochastic else "the dropout mask"
    fig.suptitle(f"Predicted futures from one context: samples vary {what}, the last two the action "
                 f"(driving to the right)", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)

    s = max(1, config.gif_scale)
    label_w, gap = 150, 4
    frames = []
    for t in range(N):
        panels = [np.kron(np.rot90(seq[t], k=-1), np.ones((s, s, 1), dtype=np.uint8)) for _, seq in rgb]
        h, w = panels[0].shape[:2]
        canvas = Image.new("RGB", (label_w + w, len(panels) * (h + gap) + 16), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for i, ((name, _), panel) in enumerate(zip(rgb, panels)):
            top = i * (h + gap)
            canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (label_w, top))
            draw.text((2, top + h // 2 - 5), name, fill=(0, 0, 0))
        draw.text((label_w, len(panels) * (h + gap)), f"t = +{(t + 1) / 10:.1f} s (driving to the right)",
                  fill=(200, 0, 0))
        frames.append(canvas)
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=200, loop=0)
