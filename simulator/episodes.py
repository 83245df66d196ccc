"""Which recorded vehicles make episodes, and what an episode's outcome can be.

An episode replaces one recorded vehicle by the ego car from its first frame.
A vehicle qualifies when it is usable as ego (no quality flag, see
:mod:`ppuu.data.quality`), is in the requested split, has at least the context plus
one step of data, has not arrived by the end of its context, and its recording
reaches the arrival line: otherwise even a
perfect driver could not succeed (e.g. vehicles leaving by an off-ramp, or still
in the section when the recording ends).
"""

from __future__ import annotations

import numpy as np

from ppuu.data.scene import Scene

RUNNING, ARRIVED, COLLISION, OFFROAD, OUT_OF_DATA = range(5)
OUTCOMES = ("running", "arrived", "collision", "offroad", "out_of_data")
"""Outcome names, indexed by the codes above."""


def episode_vehicles(scene: Scene, split: str | None, arrival_x: float, context_steps: int = 20) -> np.ndarray:
    """Vehicle ids that make episodes, sorted.

    Args:
        scene: the scene.
        split: "train", "val", "test", or None for every split.
        arrival_x: m, the arrival line (:attr:`ppuu.simulator.road.Road.arrival_x`).
        context_steps: frames the ego follows its recording before actions drive it.

    Returns:
        (E,) int64 vehicle ids.
    """
    if split not in (None, "train", "val", "test"):
        raise ValueError(f"split {split!r}: expected 'train', 'val', 'test' or None")
    t = scene.trajectories
    per_vehicle = t.groupby("vehicle_id", sort=True).agg(frames=("frame", "size"), x_last=("x", "last"))
    at_context_end = t[t.groupby("vehicle_id").cumcount() == context_steps - 1].set_index("vehicle_id")["x"]
    v = scene.vehicles.set_index("vehicle_id").join(per_vehicle)
    v["x_context"] = at_context_end.reindex(v.index)
    ok = (v["usable_as_ego"] & (v["frames"] > context_steps) & (v["x_last"] >= arrival_x)
          & (v["x_context"] < arrival_x))
    if split is not None:
        ok &= v["split"] == split
    return np.asarray(v.index[ok.to_numpy()], dtype=np.int64)
