"""scripts/uncertainty_profile.py: the uncertainty cost of constant, recorded and policy plans on the same windows."""

import math

import pytest

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world and tiny-policy as real checkpoints)
from tests.scripts import load_script


def script():
    return load_script("uncertainty_profile")


def rows(text: str) -> dict[str, list[float]]:
    body = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in body]
    return {c[0]: [float(v) for v in c[1:]] for c in cells}


def test_plans_are_scored_against_the_recorded_plan_and_reproducibly(runs, scene, capsys):  # noqa: F811
    flags = ["--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "tiny-world", "--split", "test",
             "--windows", "6", "--horizon", "4", "--copies", "3", "--accelerations", "-2", "0", "2",
             "--curvatures", "0.01", "--policies", "tiny-policy"]
    assert script().main(flags) == 0
    first = capsys.readouterr().out
    table = rows(first)
    assert set(table) == {"constant -2.0 m/s^2", "constant +0.0 m/s^2", "constant +2.0 m/s^2",
                          "constant +0.0100 1/m", "recorded (human)", "policy tiny-policy"}
    assert all(math.isfinite(v) for values in table.values() for v in values)
    recorded = table["recorded (human)"]
    assert all(abs(v) < 1e-2 for v in recorded[:3])          # the scale's origin: its own mean, 0 sd
    assert all(values[3] >= 0 for values in table.values())   # a hinge: never negative
    assert table["constant +2.0 m/s^2"][6] == pytest.approx(2.0) and table["constant +0.0 m/s^2"][6] == 0.0
    assert table["constant +0.0100 1/m"][6:] == [0.0, pytest.approx(0.01)] and table["constant +2.0 m/s^2"][7] == 0.0
    assert all(0 <= values[4] and 0 <= values[5] for values in table.values())   # predicted costs
    assert script().main(flags) == 0
    assert capsys.readouterr().out == first                  # seeded: the same draws, the same table


def test_bad_arguments_are_named(runs, scene):  # noqa: F811
    with pytest.raises(SystemExit, match="no-such"):
        script().main(["--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "no-such-run"])
    with pytest.raises(SystemExit):
        script().main(["--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "tiny-world",
                       "--copies", "1"])
