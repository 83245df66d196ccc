"""scripts/cost_gradients.py: each cost term's gradient on the no-action plan, per world model and road reading."""

import math

import pytest

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world, a kinematic-ego model, as a real checkpoint)
from tests.scripts import load_script


def rows(text: str) -> dict[tuple[str, str, str], list[float]]:
    body = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in body]
    return {tuple(c[:3]): [float(v) for v in c[3:]] for c in cells}


def test_each_term_of_each_model_and_road_reading_is_reported(runs, scene, capsys):  # noqa: F811
    from ppuu.simulator.raster import RasterConfig
    from ppuu.simulator.recording import RecordedObservations
    from tests.planner.conftest import save_tiny_runs

    recording = RecordedObservations(scene, RasterConfig.covering(72.0, 24 / 1.625, 1.0))
    save_tiny_runs(runs, recording, scene.split_vehicle_ids("train"), "learned", "tiny-ego-world-g", "tiny-ego-pol-g")
    flags = ["--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "tiny-ego-world-g", "tiny-world",
             "--split", "test", "--windows", "6", "--horizon", "4"]
    assert load_script("cost_gradients").main(flags) == 0
    first = capsys.readouterr().out
    table = rows(first)
    assert set(table) == {(model, road, term) for model, roads in (("tiny-ego-world-g", ("predicted", "context")),
                                                                  ("tiny-world", ("predicted",)))
                          for road in roads for term in ("proximity", "lane", "offroad")}
    assert all(math.isfinite(v) and v >= 0 for values in table.values() for v in values)
    ego = "tiny-ego-world-g"
    # proximity is read from the predicted frame either way; the road terms move with the reading
    assert table[(ego, "predicted", "proximity")] == table[(ego, "context", "proximity")]
    assert table[(ego, "context", "lane")][2] > 0 and table[(ego, "context", "lane")][1] > 0
    assert load_script("cost_gradients").main(flags) == 0
    assert capsys.readouterr().out == first                  # seeded: the same table


def test_a_missing_world_model_is_named(runs, scene):  # noqa: F811
    with pytest.raises(SystemExit, match="no-such-run"):
        load_script("cost_gradients").main(["--workdir", str(runs), "--scene", scene.meta.name,
                                            "--world-model", "no-such-run"])
