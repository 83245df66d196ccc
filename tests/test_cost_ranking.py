"""scripts/cost_ranking.py: plans scored on the true and the predicted traffic, optimised plans, policies."""

import math

import pytest

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world and tiny-policy as real checkpoints)
from tests.scripts import load_script


def script():
    return load_script("cost_ranking")


def rows(text: str) -> dict[str, list[float]]:
    body = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = [[c.strip().strip("*") for c in line.strip("|").split("|")] for line in body]
    return {c[0]: [float(v) for v in c[1:]] for c in cells}


def test_plans_optimised_on_the_true_traffic_never_score_worse_than_no_action(runs, scene, capsys):  # noqa: F811
    weights = ["0", "0.5"]
    assert script().main(["--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "tiny-world",
                          "--windows", "6", "--horizon", "4", "--accelerations", "-1", "0", "1",
                          "--speed-weights", *weights, "--optimise", "3", "--policies", "tiny-policy",
                          "--gradient-check"]) == 0
    out = capsys.readouterr().out
    plans, check = out.split("Gradient check")
    table = rows(plans)
    expected = {"constant -1.0 m/s^2", "constant +0.0 m/s^2", "constant +1.0 m/s^2", "recorded (human)",
                "policy tiny-policy"} | {f"optimised on the {t} traffic, w_s = {w}" for t in ("predicted", "true")
                                         for w in weights}
    assert set(table) == expected
    assert all(math.isfinite(v) for values in table.values() for v in values)
    for k, w in enumerate(weights):     # totals are the last columns, one per speed weight
        oracle = table[f"optimised on the true traffic, w_s = {w}"][6 + k]
        assert oracle <= table["constant +0.0 m/s^2"][6 + k] + 1e-6
    assert table["constant +1.0 m/s^2"][5] > table["constant -1.0 m/s^2"][5]    # metres driven
    slopes = [line.strip("|").split("|") for line in check.splitlines() if line.startswith("| predicted")
              or line.startswith("| true")]
    assert len(slopes) == 6
    assert max(abs(float(cells[3])) for cells in slopes) > 1e-3    # some car lies on the masks' ramps
    # the cars on the tiny world's ramps are ahead of the ego, where the gradient is the derivative of the
    # value (behind, it leaves out the follower's share by design); a detached speed gave a ninth of it here
    for cells in slopes:
        grad, fd = float(cells[2]), float(cells[3])
        assert grad == pytest.approx(fd, abs=1e-4 + 0.1 * abs(fd))


def test_missing_runs_are_named(runs, scene):  # noqa: F811
    for flags in (["--world-model", "no-such-run"], ["--world-model", "tiny-world", "--policies", "no-such-policy"]):
        with pytest.raises(SystemExit, match="no-such"):
            script().main(["--workdir", str(runs), "--scene", scene.meta.name, *flags])
