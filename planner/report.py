"""Figures of a results table: how each method's episodes ended, how far they got, how training went.

Plain matplotlib PNGs, written beside the Markdown table of ``ppuu evaluate policy``:

* :func:`outcome_bars`: per method, the share of episodes that arrived, collided, left the road
  or ran out of data (a stacked bar, mean over seeds);
* :func:`distance_histograms`: per method, the distribution of the distance driven (m, from the
  end of the context), one step line each;
* :func:`training_curves`: per training run, the loss and the cost terms against the step
  (from the run's ``metrics.csv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ppuu.simulator.episodes import OUTCOMES

OUTCOME_COLOURS = {"arrived": "#2ca02c", "collision": "#d62728", "offroad": "#8c564b", "out_of_data": "#7f7f7f",
                   "running": "#bcbd22"}


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(width, height), constrained_layout=True)


def outcome_bars(results: dict[str, pd.DataFrame], path: str | Path, title: str = "") -> Path:
    """Stacked bars of outcome shares (%) per method (name -> evaluation table with ``outcome_name``)."""
    plt, (fig, ax) = _figure(1.2 + 1.1 * len(results), 3.6)
    names = list(results)
    bottom = np.zeros(len(names))
    for outcome in OUTCOMES:
        share = np.array([100.0 * float((t["outcome_name"] == outcome).mean()) for t in results.values()])
        if share.any():
            ax.bar(names, share, bottom=bottom, color=OUTCOME_COLOURS.get(outcome), label=outcome.replace("_", " "))
            bottom += share
    ax.set_ylabel("episodes (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "outcomes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.tick_params(axis="x", rotation=30)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def distance_histograms(results: dict[str, pd.DataFrame], path: str | Path, title: str = "") -> Path:
    """Step histograms of the distance driven (m) per method."""
    plt, (fig, ax) = _figure(6.0, 3.6)
    top = max(float(t["distance"].max()) for t in results.values()) if results else 1.0
    bins = np.linspace(0.0, max(top, 1.0), 31)
    for name, table in results.items():
        ax.hist(table["distance"], bins=bins, histtype="step", linewidth=1.6, label=name,
                weights=np.full(len(table), 100.0 / max(len(table), 1)))
    ax.set_xlabel("distance driven from the end of the context (m)")
    ax.set_ylabel("episodes (%)")
    ax.set_title(title or "distance driven")
    ax.legend(frameon=False, fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def training_curves(runs: dict[str, Path], path: str | Path,
                    columns: tuple[str, ...] = ("loss", "proximity", "lane", "uncertainty", "il_error")) -> Path | None:
    """Training curves (one panel per column present) of runs (name -> run folder with metrics.csv)."""
    frames = {}
    for name, run in runs.items():
        csv = Path(run) / "metrics.csv"
        if csv.is_file():
            frames[name] = pd.read_csv(csv)
    shown = [c for c in columns if any(c in f and f[c].notna().any() for f in frames.values())]
    if not shown:
        return None
    plt, (fig, axes) = _figure(3.2 * len(shown), 3.0)
    axes = np.atleast_1d(axes)
    for ax, column in zip(axes, shown):
        for name, frame in frames.items():
            if column in frame and frame[column].notna().any():
                rows = frame[frame[column].notna()]
                ax.plot(rows["step"], rows[column], label=name, linewidth=1.2)
        ax.set_xlabel("step")
        ax.set_title(column.replace("_", " "))
    axes[0].legend(frameon=False, fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
