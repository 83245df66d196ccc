"""Traffic statistics of a scene, per lane, and its time-space diagrams.

These are the numbers traffic engineers compare traffic by (Treiber & Kesting,
*Traffic Flow Dynamics*, ch. 3): flow at a virtual detector, density, speeds,
and the gaps between followers and leaders. They let a user judge a generated
scene against real data, and the tests hold the generated HOV lane against the
real I-80 lane-1 recording.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ppuu.data.scene import Scene


def follower_gaps(trajectories: pd.DataFrame) -> pd.DataFrame:
    """For every row with a leader in the same lane at the same frame: gaps to that leader.

    Returns a frame aligned with the follower rows that have a leader, with columns
    lane, frame, speed (m/s), spacing (m, centre to centre), gap (m, bumper to bumper),
    time_headway (s, spacing / speed, NaN below 0.5 m/s).
    """
    t = trajectories.sort_values(["frame", "lane", "x"], kind="stable")
    frame = t["frame"].to_numpy()
    lane = t["lane"].to_numpy()
    x = t["x"].to_numpy()
    length = t["length"].to_numpy()
    speed = t["speed"].to_numpy() if "speed" in t else np.full(len(t), np.nan)
    has_leader = (frame[1:] == frame[:-1]) & (lane[1:] == lane[:-1])
    follower = np.flatnonzero(has_leader)       # row i is followed (led) by row i + 1
    spacing = x[follower + 1] - x[follower]
    gap = spacing - (length[follower + 1] + length[follower]) / 2
    v = speed[follower]
    with np.errstate(divide="ignore", invalid="ignore"):
        headway = np.where(v > 0.5, spacing / v, np.nan)
    return pd.DataFrame({"lane": lane[follower], "frame": frame[follower], "speed": v,
                         "spacing": spacing, "gap": gap, "time_headway": headway})


def lane_statistics(scene: Scene) -> pd.DataFrame:
    """Per-lane traffic statistics over the whole scene.

    Columns: lane, vehicles (distinct ids seen in the lane), flow (veh/h through a
    detector at mid-section), density (veh/km, time average over the section),
    mean_speed (m/s, over all samples, i.e. space-mean), speed_p10 / speed_p90 (m/s),
    stopped (fraction of samples below 1 m/s), median_gap (m, bumper to bumper),
    median_time_headway (s), lane_changes (into this lane).
    """
    t = scene.trajectories
    meta = scene.meta
    duration_h = max(1, t["frame"].max() - t["frame"].min() + 1) / meta.frame_rate / 3600
    section_km = meta.section_length / 1000
    n_frames = t["frame"].max() - t["frame"].min() + 1

    vid = t["vehicle_id"].to_numpy()
    x = t["x"].to_numpy()
    lane = t["lane"].to_numpy()
    same = vid[1:] == vid[:-1]
    detector = meta.section_length / 2
    crossing = same & (x[:-1] < detector) & (x[1:] >= detector)
    changes = same & (lane[1:] != lane[:-1])

    gaps = follower_gaps(t)
    rows = []
    for lane_id, group in t.groupby("lane", sort=True):   # a handful of lanes, not a hot path
        speed = group["speed"].to_numpy()
        g = gaps[gaps["lane"] == lane_id]
        rows.append({
            "lane": int(lane_id),
            "vehicles": int(group["vehicle_id"].nunique()),
            "flow": float(np.sum(crossing & (lane[:-1] == lane_id)) / duration_h),
            "density": float(len(group) / n_frames / section_km),
            "mean_speed": float(speed.mean()),
            "speed_p10": float(np.quantile(speed, 0.1)),
            "speed_p90": float(np.quantile(speed, 0.9)),
            "stopped": float(np.mean(speed < 1.0)),
            "median_gap": float(g["gap"].median()) if len(g) else float("nan"),
            "median_time_headway": float(g["time_headway"].median()) if len(g) else float("nan"),
            "lane_changes": int(np.sum(changes & (lane[1:] == lane_id))),
        })
    return pd.DataFrame(rows)


def flag_counts(vehicles: pd.DataFrame) -> dict[str, int]:
    """Vehicles with each quality problem (:data:`ppuu.data.quality.PROBLEMS`), from the ``flags``
    column of a scene's vehicle table; problems no vehicle has are left out."""
    flags = vehicles["flags"].str.split(",").explode()
    flags = flags[flags != ""]
    return {k: int(n) for k, n in flags.value_counts().sort_index().items()}


def scene_summary(scene: Scene) -> dict:
    """Headline numbers of a scene: sizes, duration, speeds, splits, quality flags."""
    t, v = scene.trajectories, scene.vehicles
    return {
        "name": scene.meta.name,
        "site": scene.meta.site,
        "source": scene.meta.source,
        "rows": int(len(t)),
        "vehicles": int(len(v)),
        "duration_s": float((t["frame"].max() - t["frame"].min() + 1) / scene.meta.frame_rate),
        "lanes": scene.meta.lane_count,
        "section_length_m": float(scene.meta.section_length),
        "mean_speed_mps": float(t["speed"].mean()),
        "vehicle_classes": {int(k): int(n) for k, n in v["vclass"].value_counts().sort_index().items()},
        "splits": {k: int(n) for k, n in v["split"].value_counts().sort_index().items()},
        "usable_as_ego": int(v["usable_as_ego"].sum()),
        "flags": flag_counts(v),
    }


def plot_time_space(scene: Scene, path: str | Path, lanes: list[int] | None = None, max_points: int = 400_000) -> Path:
    """Time-space diagram, one panel per lane: position along the road against time, coloured by speed.

    Stop-and-go waves show as bands running backwards (upstream) in time.
    Writes a PNG to ``path`` and returns it.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = scene.trajectories
    lanes = sorted(int(lane) for lane in t["lane"].unique()) if lanes is None else lanes
    stride = max(1, len(t) // max_points)       # thin very large scenes; the picture is the same
    thin = t.iloc[::stride]
    fig, axes = plt.subplots(len(lanes), 1, figsize=(11, 2.2 * len(lanes) + 0.6), sharex=True, squeeze=False,
                             layout="constrained")
    time = thin["frame"].to_numpy() / scene.meta.frame_rate
    scatter = None
    for ax, lane_id in zip(axes[:, 0], lanes):
        sel = thin["lane"].to_numpy() == lane_id
        scatter = ax.scatter(time[sel], thin["x"].to_numpy()[sel], c=thin["speed"].to_numpy()[sel], s=0.3,
                             cmap="RdYlGn", vmin=0, vmax=25, rasterized=True, linewidths=0)
        ax.set_ylabel(f"lane {lane_id}\nx (m)")
        ax.set_ylim(0, scene.meta.section_length)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{scene.meta.name}: time-space diagram (colour: speed, m/s)")
    if scatter is not None:
        fig.colorbar(scatter, ax=axes[:, 0].tolist(), label="speed (m/s)", fraction=0.02)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_table(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A pandas frame as a GitHub Markdown table (no extra dependency)."""
    def fmt(value) -> str:
        if isinstance(value, (float, np.floating)):
            return format(value, floatfmt)
        return str(value)

    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def plot_road(scene: Scene, path: str | Path, max_points: int = 200_000) -> Path:
    """The drivable area of the scene's layout (main lanes, ramps; metres) with the recorded vehicle
    centres on it, coloured by Lane_ID, and each vehicle's first position marked: a layout that does not
    fit its data shows as points off the grey area. Writes a PNG to ``path`` and returns it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    meta, t = scene.meta, scene.trajectories
    stride = max(1, len(t) // max_points)
    thin = t.iloc[::stride]
    width = float(sum(meta.lane_widths))
    low = min([-width] + [r.y_right for r in meta.ramps])
    fig, ax = plt.subplots(figsize=(12, 2.5 + 0.25 * (-low)), layout="constrained")
    ax.add_patch(Rectangle((0, -width), meta.section_length, width, color="0.85", zorder=0, label="main road"))
    y = 0.0
    for w in meta.lane_widths[:-1]:
        y -= w
        ax.plot([0, meta.section_length], [y, y], color="white", lw=1, zorder=1)
    for r in meta.ramps:
        ax.add_patch(Rectangle((r.x_start, r.y_right), r.x_end - r.x_start, r.y_left - r.y_right, color="0.7",
                               zorder=0))
        ax.text(r.x_start + 2, (r.y_left + r.y_right) / 2, f"{r.lane} ({r.kind})", va="center", fontsize=8, zorder=3)
    lanes = thin["lane"].to_numpy()
    sc = ax.scatter(thin["x"], thin["y"], c=lanes, s=0.2, cmap="tab10", vmin=0.5, vmax=10.5, rasterized=True,
                    linewidths=0, zorder=2)
    first = t.groupby("vehicle_id", sort=False)[["x", "y"]].first()
    ax.scatter(first["x"], first["y"], s=6, marker="x", color="black", linewidths=0.6, zorder=3,
               label="first recorded position")
    ax.set_xlim(min(-5.0, float(thin["x"].min()) - 5), max(meta.section_length, float(thin["x"].max())) + 5)
    ax.set_ylim(min(low, float(thin["y"].min())) - 2, max(0.0, float(thin["y"].max())) + 2)
    ax.set_xlabel("x along the road (m)")
    ax.set_ylabel("y (m)")
    geometry = meta.notes.get("geometry", "site") if isinstance(meta.notes, dict) else "site"
    ax.set_title(f"{meta.name}: road ({geometry}: {meta.lane_count} lanes, {len(meta.ramps)} ramps) and vehicle "
                 "positions (colour: Lane_ID)")
    fig.colorbar(sc, ax=ax, label="Lane_ID", fraction=0.02)
    ax.legend(loc="upper right", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
