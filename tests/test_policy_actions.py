"""scripts/policy_actions.py: trained policies' actions on recorded contexts beside the recorded drivers'."""

import numpy as np
import pytest

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world and tiny-policy as real checkpoints)
from tests.scripts import load_script


def script():
    return load_script("policy_actions")


def cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_the_summary_of_known_actions():
    rng = np.random.default_rng(0)
    recorded = np.stack([rng.normal(0.0, 0.6, 1000), rng.normal(0.0, 0.006, 1000)], axis=1)
    itself = cells(script().summary_row("drivers", recorded, recorded))
    assert float(itself[5]) <= 2.5 and float(itself[6]) <= 2.5 and float(itself[7]) == pytest.approx(1.0)
    # a policy that never brakes and steers four times harder than the drivers
    policy = np.stack([np.abs(recorded[:, 0]), 4 * recorded[:, 1]], axis=1)
    row = cells(script().summary_row("policy", policy, recorded))
    assert float(row[1]) >= 0.0 > float(itself[1])                  # its 1 % acceleration quantile: no braking
    assert float(row[3]) < 3 * float(itself[3])                      # steers harder (negative quantiles)
    assert float(row[6]) > 40.0                                      # most of its steering outside the drivers' range
    assert abs(float(row[7])) < 0.2                                  # |a| is uncorrelated with a


def test_a_trained_policy_on_the_recorded_contexts(runs, scene, capsys):  # noqa: F811
    assert script().main(["--workdir", str(runs), "--scene", scene.meta.name, "--split", "train",
                          "--contexts", "16", "--policies", "tiny-policy", "tiny-policy"]) == 0
    body = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [cells(r)[0] for r in body] == ["the recorded drivers (16 contexts)", "tiny-policy", "tiny-policy"]
    assert body[1] == body[2]                                        # deterministic: the same contexts, the same actions
    for row in body:
        values = [float(v) for v in cells(row)[1:7]]
        assert values[0] <= values[1] and values[2] <= values[3] and 0 <= values[4] <= 100 and 0 <= values[5] <= 100


def test_bad_input_is_refused(scene_workdir, scene):  # noqa: F811
    with pytest.raises(SystemExit):
        script().main(["--workdir", str(scene_workdir), "--scene", "no-such-scene", "--policies", "x"])
    with pytest.raises(SystemExit):
        script().main(["--workdir", str(scene_workdir), "--scene", scene.meta.name, "--policies", "no-such-run"])
    with pytest.raises(SystemExit):
        script().main(["--workdir", str(scene_workdir), "--scene", scene.meta.name, "--policies", "x", "--contexts", "1"])
