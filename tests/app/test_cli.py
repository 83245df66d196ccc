"""The `ppuu` command line: help texts, the data commands end to end, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ppuu.app.cli import build_parser, main
from tests.shared_data import shared_data_dir


def subcommands(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return action.choices
    return {}


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "ppuu.app.cli", "--help"], capture_output=True, text=True, check=True)
    assert "data" in out.stdout
    data = subcommands(build_parser())["data"]
    for name, sub in subcommands(data).items():
        text = sub.format_help()
        assert "--workdir" in text, name
        assert len(text) > 200, f"`ppuu data {name} --help` explains too little"


def test_generate_help_states_units():
    data = subcommands(build_parser())["data"]
    text = subcommands(data)["generate"].format_help()
    assert "minutes" in text and "seed" in text and "m)" in text


def test_info_without_scenes_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "info", "--workdir", str(tmp_path)]) == 2
    assert "no scenes" in capsys.readouterr().err


def test_import_missing_file_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nope.txt"
    assert main(["data", "import", str(missing), "--workdir", str(tmp_path)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "scenes").exists() or not any((tmp_path / "scenes").iterdir())


def test_import_info_list_on_real_lane1_data(tmp_path, capsys):
    path = shared_data_dir() / "ngsim-i80-lane1" / "i80-lane1-original.txt.gz"
    assert main(["data", "import", str(path), "--site", "lane1", "--name", "lane1", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "wrote scene 'lane1'" in out
    assert "42 flagged as bad trajectories: jump 21, kinematics 1, overlap 14, short 8" in out   # by problem
    assert main(["data", "list", "--workdir", str(tmp_path)]) == 0
    assert "lane1" in capsys.readouterr().out
    assert main(["data", "info", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mean_speed" in out and "| lane |" in out
    report = tmp_path / "reports" / "lane1"
    png = report / "time_space.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["vehicles"] == 374 and summary["lanes"] == 1
    assert sum(summary["splits"].values()) == 374


def test_generated_scene_exported_as_ngsim_reads_back_identically(small_scene, tmp_path):
    """`ppuu data generate --format ngsim`: the NGSIM path is exercised end to end on every generated scene."""
    import numpy as np

    from ppuu.app.cli_data import export_ngsim
    from ppuu.data.ngsim import read_ngsim

    path = export_ngsim(small_scene, tmp_path)
    assert path.name.endswith(".ngsim.txt.gz")
    table, info = read_ngsim(path)
    original = small_scene.trajectories
    assert info["format"] == ["ngsim-raw-18"] or "ngsim-raw-18" in str(info["format"])
    for column in ("vehicle_id", "frame", "lane", "vclass"):
        np.testing.assert_array_equal(table[column].to_numpy(), original[column].to_numpy())
    for column, source in (("x", "x_raw"), ("y", "y_raw"), ("length", "length"), ("width", "width")):
        np.testing.assert_allclose(table[column].to_numpy(), original[source].to_numpy(), atol=1e-3)


def test_evaluate_baselines_states_course_and_seeds(scene_workdir, scene_dir, capsys):
    import pandas as pd

    args = ["evaluate", "baselines", scene_dir.name, "--controllers", "no_action", "--course", "full",
            "--seeds", "0", "1", "--workdir", str(scene_workdir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "course full" in out and "mean ± std over seeds 0, 1" in out and "| no_action | full | 0,1 |" in out
    report = scene_workdir / "reports" / scene_dir.name
    table = pd.read_csv(report / "baselines-no_action-test-replay-full.csv")
    assert set(table["course"]) == {"full"} and set(table["seed"]) == {0, 1}
    assert {"mean_abs_acceleration", "mean_abs_jerk", "distance"} <= set(table.columns)
    md = (report / "baselines-test-replay-full.md").read_text()
    assert md.startswith(f"# Baselines on {scene_dir.name} (test, replay, course full")
    summary = json.loads((report / "baselines-test-replay-full.json").read_text())
    assert summary["course"]["name"] == "full" and summary["seeds"] == [0, 1]
    assert summary["results"]["no_action"]["mean_distance_m_std"] == 0      # deterministic controller


def test_evaluate_compare_pairs_two_controllers_episode_by_episode(scene_workdir, scene_dir, capsys):
    """The human and no action on the same episodes: the counts printed are those of the two CSVs, and
    tables of different episodes are refused naming the file."""
    import pandas as pd

    from ppuu.simulator.paired import mcnemar_exact_p

    assert main(["evaluate", "baselines", scene_dir.name, "--controllers", "human", "no_action", "--course", "full",
                 "--episodes", "12", "--workdir", str(scene_workdir)]) == 0
    report = scene_workdir / "reports" / scene_dir.name
    human, idle = (report / f"baselines-{name}-test-replay-full.csv" for name in ("human", "no_action"))
    capsys.readouterr()
    assert main(["evaluate", "compare", "--pair", str(human), str(idle), "--names", "human", "idle"]) == 0
    out = capsys.readouterr().out
    a, b = (pd.read_csv(path).set_index("vehicle_id")["outcome_name"] == "arrived" for path in (human, idle))
    b = b.loc[a.index]
    row = next(line for line in out.splitlines() if line.startswith("| pair 1 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == str(len(a)) and cells[5] == str(int((a & ~b).sum())) and cells[6] == str(int((b & ~a).sum()))
    far_a, far_b = (pd.read_csv(path).set_index("vehicle_id")["distance"] for path in (human, idle))
    far_b, unfinished = far_b.loc[far_a.index], ~(a & b)
    further = [int((unfinished & (far_a > far_b)).sum()), int((unfinished & (far_b > far_a)).sum())]
    assert cells[8:12] == [f"{far_a.mean():.1f}", f"{far_b.mean():.1f}", *map(str, further)]
    assert cells[12] == f"{mcnemar_exact_p(*further):.3g}"
    assert "only human arrives" in out and "McNemar" in out and "human further" in out and "sign test" in out
    relative = [f"{scene_dir.name}/{path.name}" for path in (human, idle)]            # found under WORKDIR/reports
    assert main(["evaluate", "compare", "--pair", *relative, "--names", "human", "idle",
                 "--workdir", str(scene_workdir)]) == 0
    assert row in capsys.readouterr().out

    fewer = scene_workdir / "fewer.csv"
    pd.read_csv(idle).iloc[1:].to_csv(fewer, index=False)
    assert main(["evaluate", "compare", "--pair", str(human), str(fewer)]) == 2
    assert "lacks" in capsys.readouterr().err


def test_evaluate_baselines_refuses_a_malformed_constant_controller(scene_workdir, scene_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "baselines", scene_dir.name, "--controllers", "constant:0,x", "--workdir", str(scene_workdir)])
    assert exit_info.value.code == 2
    assert "constant:0,x" in capsys.readouterr().err


def test_evaluate_baselines_course_that_does_not_fit_is_a_clear_error(scene_workdir, scene_dir, capsys):
    assert main(["evaluate", "baselines", scene_dir.name, "--course", "10:900", "--workdir",
                 str(scene_workdir)]) == 2
    err = capsys.readouterr().err
    assert "course 10-900m" in err and "does not fit" in err and "at most" in err


def test_evaluate_baselines_help_explains_courses_and_seeds():
    evaluate = subcommands(build_parser())["evaluate"]
    text = subcommands(evaluate)["baselines"].format_help()
    for word in ("--course", "i80-reference", "full", "START:ARRIVAL", "--seeds", "mean ± std", "SPEC §7"):
        assert word in text, word


def test_import_infers_the_road_and_info_plots_it(tmp_path, capsys):
    """Issue 15: an unknown site's road is inferred, written beside the scene, correctable with --geometry,
    and drawn with the vehicles on it by `data info`; a known site that does not fit warns."""
    import pytest

    from ppuu.data.geometry import GeometryWarning

    fixture = __import__("pathlib").Path(__file__).parents[1] / "data" / "fixtures" / "roads"
    data = fixture / "five-lane-on.ngsim.txt.gz"
    assert main(["data", "import", str(data), "--name", "road", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "road (inferred): 5 main lanes" in out and "lane 6 on x=0.." in out
    road = tmp_path / "scenes" / "road" / "road.json"
    obj = json.loads(road.read_text())
    obj["ramps"][0]["x_end"] = 150.0
    road.write_text(json.dumps(obj))
    assert main(["data", "import", str(data), "--name", "fixed", "--geometry", str(road),
                 "--workdir", str(tmp_path)]) == 0
    assert "road (file): 5 main lanes of 3.66 m, section 250 m, lane 6 on x=0..150 m" in capsys.readouterr().out
    assert main(["data", "info", "fixed", "--workdir", str(tmp_path)]) == 0
    png = tmp_path / "reports" / "fixed" / "road.png"
    assert str(png) in capsys.readouterr().out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"

    obj["ramps"][0]["kind"] = "sideways"
    road.write_text(json.dumps(obj))
    assert main(["data", "import", str(data), "--geometry", str(road), "--workdir", str(tmp_path)]) == 2
    assert "ramps[0].kind" in capsys.readouterr().err

    with pytest.warns(GeometryWarning, match="the data has 5 main lanes"):
        assert main(["data", "import", str(data), "--site", "i80", "--name", "wrong", "--workdir", str(tmp_path)]) == 0
    assert "WARNING: scene 'wrong' has 0 episodes" in capsys.readouterr().err
