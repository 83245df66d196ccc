"""A figure of one MPC decision: the futures it planned against, the plan's path, its cost over the iterations.

Panels, for one episode of a batched :class:`~ppuu.planner.mpc.Decision`:

* the newest context frame and, for up to four sampled futures, the predicted frame at the end of the
  horizon, with the plan's predicted ego path drawn over each (fixed-frame world models, whose
  images share one frame of reference: the anchor pose at the end of the context);
* the objective at every optimiser evaluation (the first before any update);
* the plan's actions over the horizon, in m/s^2 and 1/m.

Image colours: red = vehicles, green = lane markings, blue = off-road (the model's channels 1, 0, 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from ppuu.planner.mpc import Decision
from ppuu.simulator.recording import is_fixed_frame
from ppuu.world_model.interface import physical_actions


def _rgb(frame: Tensor) -> np.ndarray:
    """(C, h, w) model channels in [0, 1] -> (h, w, 3) RGB (vehicles red, lanes green, off-road blue)."""
    c = frame.shape[0]
    pick = [min(1, c - 1), 0, min(2, c - 1)]
    return frame[pick].permute(1, 2, 0).clamp(0, 1).cpu().numpy()


def path_pixels(states: Tensor, normaliser, centre_ahead: float, pixels_per_metre: float, height: int,
                width: int) -> np.ndarray:
    """Normalised fixed-frame states (N, 4) -> (N, 2) pixel coordinates (column, row) in the model's images.

    The frame's x runs ahead of the anchor pose and y to its left; row 0 is the farthest ahead and column 0 the
    farthest left; the image centre lies ``centre_ahead`` m ahead of the anchor (:mod:`ppuu.simulator.raster`).
    """
    xy = normaliser.denormalise_states(states)[:, :2].detach().cpu().numpy()
    row = (height - 1) / 2 - (xy[:, 0] - centre_ahead) * pixels_per_metre
    col = (width - 1) / 2 - xy[:, 1] * pixels_per_metre
    return np.stack([col, row], axis=1)


def decision_figure(decision: Decision, context: Tensor, world, path: str | Path, episode: int = 0,
                    title: str = "") -> Path:
    """Draw one episode of a decision.

    Args:
        decision: the planner's :class:`~ppuu.planner.mpc.Decision` for S episodes.
        context: (S, T, C, h, w) the model-ready contexts it planned from.
        world: the :class:`~ppuu.world_model.train.LoadedModel` that planned.
        path: the PNG to write.
        episode: which of the S episodes to draw.
        title: the figure's title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = world.observation.get("frame", {})
    fixed = is_fixed_frame(world.observation)
    futures = decision.images.cpu() if decision.images.numel() else None
    shown = 0 if futures is None else min(4, futures.shape[0])
    h, w = context.shape[-2:]
    ppm = float(world.observation["raster"]["pixels_per_metre"])
    plan_path = (path_pixels(decision.states[episode], world.normaliser, float(frame.get("centre_ahead", 0.0)), ppm,
                             h, w) if fixed else None)
    columns = 1 + shown
    fig = plt.figure(figsize=(1.2 * columns + 5.5, 6.0), dpi=110)
    grid = fig.add_gridspec(2, columns + 1, width_ratios=[1] * columns + [4.5])
    images = [("context (now)", context[episode, -1])]
    horizon = decision.plan.shape[1]
    images += [(f"future {f}\n+{horizon / 10:.1f} s", futures[f, episode, -1]) for f in range(shown)]
    for index, (label, image) in enumerate(images):
        ax = fig.add_subplot(grid[:, index])
        ax.imshow(_rgb(image), aspect="equal", interpolation="nearest")
        if plan_path is not None:
            ax.plot(plan_path[:, 0], plan_path[:, 1], color="white", linewidth=1.2)
            ax.plot(plan_path[-1, 0], plan_path[-1, 1], "o", color="white", markersize=3)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    costs = decision.costs[:, episode].detach().cpu().numpy()
    ax = fig.add_subplot(grid[0, -1])
    ax.plot(np.arange(len(costs)), costs, "o-", color="tab:blue")
    ax.set_xlabel("optimiser evaluation (0 = the starting plan)")
    ax.set_ylabel("objective")
    ax.grid(alpha=0.3)
    actions = physical_actions(decision.plan[episode], world.normaliser).detach().cpu().numpy()
    t = np.arange(1, horizon + 1) / 10.0
    ax = fig.add_subplot(grid[1, -1])
    ax.plot(t, actions[:, 0], color="tab:orange", label="acceleration m/s²")
    ax.set_xlabel("s ahead")
    ax.set_ylabel("m/s²", color="tab:orange")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(t, actions[:, 1], color="tab:green", label="curvature 1/m")
    twin.set_ylabel("curvature 1/m", color="tab:green")
    fig.suptitle(title or f"one MPC decision ({decision.seconds * 1e3:.0f} ms for {decision.plan.shape[0]} episodes)",
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
