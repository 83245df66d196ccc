"""The scene cache: scenes written before the exact smoothing (format 1) still load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppuu.data.scene import SCENE_FORMAT_VERSION, Scene
from ppuu.data.smoothing import followable_actions


def test_scene_of_format_1_loads_with_a_followable_column_and_a_warning(small_scene, tmp_path):
    """A format-1 scene (no followable column) gets the column from its stored actions, and a warning
    that its tracks and flags come from the older smoothing; a current scene loads silently."""
    assert small_scene.meta.format_version == SCENE_FORMAT_VERSION == 2
    current = small_scene.save(tmp_path / "current")
    old = small_scene.save(tmp_path / "old")
    small_scene.trajectories.drop(columns=["followable"]).to_parquet(old / "trajectories.parquet", index=False)
    meta = json.loads((old / "scene.json").read_text())
    (old / "scene.json").write_text(json.dumps({**meta, "format_version": 1}))

    with pytest.warns(UserWarning, match="format 1"):
        loaded = Scene.load(old)
    t = loaded.trajectories
    np.testing.assert_array_equal(t["followable"], followable_actions(t["acceleration"], t["curvature"]))
    np.testing.assert_array_equal(t["followable"], small_scene.trajectories["followable"])
    assert "followable" in Scene.load(current).trajectories.columns
