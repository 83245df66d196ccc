"""scripts/lane_keeping.py: drift from the lane centre and the fitted steering response."""

import numpy as np
import pytest
import torch

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world and tiny-policy as real checkpoints)
from tests.scripts import load_script


def script():
    return load_script("lane_keeping")


def test_offsets_are_measured_from_the_nearest_lane_centre_ramps_included():
    from types import SimpleNamespace

    module = script()
    meta = SimpleNamespace(lane_widths=[3.0, 3.0], ramps=[SimpleNamespace(y_left=-6.0, y_right=-10.0)])
    centres = module.lane_centres(meta)
    np.testing.assert_allclose(centres, [-1.5, -4.5, -8.0])
    y = np.array([-1.5, -1.0, -2.9, -4.0, -5.0, -7.0, -9.5])
    np.testing.assert_allclose(module.lane_offsets(centres, y), [0.0, 0.5, -1.4, 0.5, -0.5, 1.0, -1.5])


def test_the_fit_recovers_a_known_steering_law(scene):  # noqa: F811
    from ppuu.simulator.evaluate import Trace, evaluate

    module = script()
    centres = module.lane_centres(scene.meta)

    def steer_back(observation, sim):      # a lane keeper: curvature = -0.02 offset - 0.05 heading (+ left)
        unit = sim.ego.heading
        heading = torch.atan2(unit[:, 1], unit[:, 0])
        offset = torch.as_tensor(module.lane_offsets(centres, sim.ego.position[:, 1].cpu().numpy()))
        curvature = -0.02 * offset.to(heading) - 0.05 * heading
        return torch.stack([torch.zeros_like(curvature), curvature], dim=1)

    trace = Trace()
    evaluate(scene, steer_back, "test", device="cpu", progress=False, trace=trace, episodes=6)
    fit = module.lane_keeping(centres, trace)
    assert fit["k_offset"] == pytest.approx(-0.02, abs=2e-3)
    assert fit["k_heading"] == pytest.approx(-0.05, abs=5e-3)
    assert abs(fit["bias"]) < 1e-4 and fit["r2"] > 0.99
    assert fit["running_1s"] > 0 and fit["offset_1s"] >= 0


def test_the_table_has_a_row_per_controller_and_no_action_does_not_steer(runs, scene, capsys):  # noqa: F811
    assert script().main(["--workdir", str(runs), "--scene", scene.meta.name, "--split", "test", "--controllers",
                          "human", "no_action", "--policies", "tiny-policy", "--episodes", "6"]) == 0
    body = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in body}
    assert set(cells) == {"human", "no_action", "tiny-policy"}
    assert float(cells["no_action"][-1]) == 0.0            # mean |curvature| of no action
    assert float(cells["human"][1]) == 100.0                # the recording arrives


def test_bad_input_is_refused(scene_workdir, scene):  # noqa: F811
    with pytest.raises(SystemExit):
        script().main(["--workdir", str(scene_workdir), "--scene", "no-such-scene"])
    with pytest.raises(SystemExit):
        script().main(["--workdir", str(scene_workdir), "--scene", scene.meta.name, "--policies", "no-such-run"])
