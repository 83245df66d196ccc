"""``ppuu demo``: every stage runs, the report holds the table, a second run resumes instead of redoing."""

from __future__ import annotations

import json

import pytest

from ppuu.app.cli import main
from ppuu.app.demo import PROFILES, STAGES, Demo, StageFailed


@pytest.fixture(scope="module")
def demo_workdir(tmp_path_factory, small_scene):
    from ppuu.data.scene import scene_path

    workdir = tmp_path_factory.mktemp("demo")
    small_scene.save(scene_path(workdir, small_scene.meta.name))
    return workdir


@pytest.mark.slow
def test_the_tiny_demo_runs_every_stage_and_writes_the_report(demo_workdir, small_scene, capsys):
    code = main(["demo", "--profile", "tiny", "--scene", small_scene.meta.name, "--workdir", str(demo_workdir),
                 "--threads", "1"])
    assert code == 0
    out = capsys.readouterr().out
    report = demo_workdir / "reports" / "demo-tiny-s0"
    text = (report / "README.md").read_text()
    for row in ("| human |", "| no_action |", "| il (demo-tiny-s0-il) |", "| mpc-il (demo-tiny-s0-mpc-il) |",
                "| mpur (demo-tiny-s0-mpur) |", "| mpc-adam |"):
        assert row in text and row in out
    for name in ("outcomes.png", "distance.png", "training.png", "mpur-driving.gif", "mpc-decision.png", "configs/world-model.json",
                 "configs/il.json", "configs/mpc-il.json", "configs/mpur.json"):
        assert (report / name).stat().st_size > 0, name
    done = json.loads((demo_workdir / "demo" / "tiny-s0" / "stages.json").read_text())
    assert list(done) == list(STAGES)
    mpur = done["mpur"]["command"]
    assert mpur[:3] == ["train", "policy", "--scene"] and mpur[mpur.index("--init") + 1] == "demo-tiny-s0-mpc-il"
    assert (demo_workdir / "runs" / "demo-tiny-s0-mpc-il" / "mpc-targets-train.pt").is_file()
    fitted = json.loads((report / "configs" / "mpc-il.json").read_text())
    assert (fitted["method"], fitted["planner_iterations"], fitted["planner_lr"]) == ("mpc-il", 2, 0.2)
    assert fitted["policy"]["fixed_curvature"] is not None
    assert "`ppuu train world-model --scene" in text and f"report: {report / 'README.md'}" in out
    # The verdict against no action, on the same episodes, from the evaluation tables themselves.
    import pandas as pd

    from ppuu.app.demo import verdict

    tables = Demo(demo_workdir, PROFILES["tiny"], scene=small_scene.meta.name, run=lambda a: 0).results()
    lines = verdict(tables, "mpur (demo-tiny-s0-mpur)")
    assert [line.split(":")[0] for line in lines] == ["MPUR", "MPC"]
    mpc = tables["mpc-adam"]
    same = tables["no_action"][tables["no_action"]["vehicle_id"].isin(mpc["vehicle_id"])]
    assert f"no action's {100 * (same['outcome_name'] == 'arrived').mean():.1f} %" in lines[1]
    assert f"same {len(mpc)} episodes" in lines[1] and isinstance(mpc, pd.DataFrame)
    for line in lines:
        assert line in text and line in out

    # a second run finds every stage finished: no command runs, the report is rewritten
    calls = []
    again = Demo(demo_workdir, PROFILES["tiny"], scene=small_scene.meta.name, run=lambda argv: calls.append(argv) or 0,
                 log=lambda line: None)
    assert again.stages_to_run() == [] and again.run_all() == report and calls == []


def test_a_failed_stage_stops_the_demo_and_is_not_marked_done(tmp_path, small_scene):
    from ppuu.data.scene import scene_path

    small_scene.save(scene_path(tmp_path, small_scene.meta.name))
    calls = []

    def runner(argv):
        calls.append(argv[:2])
        return 2 if argv[:2] == ["train", "policy"] else 0         # the IL stage fails

    demo = Demo(tmp_path, PROFILES["tiny"], scene=small_scene.meta.name, run=runner, log=lambda line: None)
    with pytest.raises(StageFailed, match="stage il failed .* ppuu train policy"):
        demo.run_all()
    assert calls == [["train", "world-model"], ["train", "policy"]]
    assert list(demo.finished()) == ["scene", "world-model"]
    calls.clear()
    with pytest.raises(StageFailed):
        demo.run_all()                                             # resumes at the failed stage
    assert calls == [["train", "policy"]]


def test_a_missing_scene_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--scene nowhere"):
        Demo(tmp_path, PROFILES["tiny"], scene="nowhere", run=lambda argv: 0).run_all()
    assert main(["demo", "--profile", "tiny", "--scene", "nowhere", "--workdir", str(tmp_path)]) == 2


def test_every_profile_builds_every_stage_command(tmp_path):
    for profile in PROFILES.values():
        demo = Demo(tmp_path, profile, seed=3, threads=1, run=lambda argv: 0)
        for stage in STAGES[:-1]:
            argv = demo.command(stage)
            assert argv[-4:] == ["--workdir", str(tmp_path), "--threads", "1"], (profile.name, stage)
        assert demo.command("scene")[:2] == ["data", "generate"] and "--seed" in demo.command("scene")
        assert demo.scene_name == f"i80-sumo-{profile.minutes:g}min-s3" and demo.command("report") is None
    with pytest.raises(ValueError, match="unknown stage"):
        demo.command("nothing")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profiles_stage_commands_parse(profile, tmp_path):
    """Each stage of each profile (``paper`` included, which only a GPU runs in earnest) is a valid ``ppuu``
    command line: the flags exist and their values parse."""
    from ppuu.app.cli import build_parser

    demo = Demo(tmp_path, PROFILES[profile], run=lambda argv: 0)
    parser = build_parser()
    for stage in STAGES:
        argv = demo.command(stage)
        if argv is not None:
            args = parser.parse_args(argv)
            assert callable(args.func), (profile, stage)
