"""``scripts/paper_table.py``: the paper's table over seeds: every method's command, a tiny real run that pools
the seeds into one row per method, resuming without redoing a finished step."""

from __future__ import annotations


import pytest

from tests.scripts import load_script as load_script_file

TINY_WORLD_MODEL = "--steps 6 --batch-size 4 --val-every 0 --stats-windows 64"
TINY_POLICY = "--steps 2 --horizon 4 --copies 2 --batch-size 2 --val-every 0"
TINY_EVALUATE = "--episodes 3 --mpc-horizon 4 --mpc-futures 2 --mpc-iterations 1 --mpc-replan-every 4"


def load_script():
    return load_script_file("paper_table")


def test_every_method_trains_through_its_model_for_every_seed(tmp_path):
    script = load_script()
    recipe = script.Recipe(tmp_path, "scene", seeds=(0, 1), run=lambda argv: 0)
    steps = dict(recipe.steps())
    assert len(steps) == 2 * (2 + len(script.METHODS) + 1)
    for seed in (0, 1):
        vae = steps[f"world-model vae s{seed}"]
        assert vae[vae.index("--init") + 1].endswith(f"det-s{seed}/checkpoint.pt")
        for method, model in script.METHODS.items():
            argv = steps[f"{method} s{seed}"]
            assert argv[argv.index("--world-model") + 1] == recipe.run_name(model, seed)
            assert argv[argv.index("--seed") + 1] == str(seed)
        evaluate = steps[f"evaluate s{seed}"]
        assert evaluate[evaluate.index("--mpc") + 1] == recipe.run_name("det", seed)
    assert {"svg", "mpur"} == {m for m, model in script.METHODS.items() if model == "vae"}
    recipe = script.Recipe(tmp_path, "scene", seeds=(0,), run=lambda argv: 0, extra_policy_flags=("--steps", "60"),
                           extra_il_flags=("--batch-size", "64", "--steps", "300"))
    steps = dict(recipe.steps())
    il, mpur = steps["il s0"], steps["mpur s0"]
    assert il.index("300") > il.index("60") and "--batch-size" in il      # after the policies' flags: it wins
    assert "--batch-size" not in mpur and "300" not in mpur
    with pytest.raises(ValueError):
        script.Recipe(tmp_path, "scene", profile="huge")
    several = script.Recipe(tmp_path, "scene", extra_evaluate_flags=("--mpc-optimizer", "adam", "cem", "--episodes", "4"))
    assert several._mpc_rows() == ["mpc-adam", "mpc-cem"]
    assert script.Recipe(tmp_path, "scene", mpc=False)._mpc_rows() == []
    assert "--mpc" not in dict(script.Recipe(tmp_path, "scene", mpc=False, run=lambda a: 0).steps())["evaluate s2"]


def test_the_mpc_il_warm_start_trains_first_and_starts_vg_svg_and_mpur(tmp_path):
    script = load_script()
    recipe = script.Recipe(tmp_path, "scene", seeds=(0,), run=lambda argv: 0, warm_start="mpc-il",
                           extra_mpc_il_flags=("--planner-contexts", "800"))
    order = [name for name, _ in recipe.steps()]
    steps = dict(recipe.steps())
    fitted = recipe.run_name("mpc-il", 0)
    assert "-from-mpc-il-" in fitted
    assert order.index("mpc-il s0") < min(order.index(f"{m} s0") for m in script.WARM_STARTED)
    mpc_il = steps["mpc-il s0"]
    assert mpc_il[mpc_il.index("--world-model") + 1] == recipe.run_name("det", 0) and "800" in mpc_il
    for method in ("il", "mper", "mpc-il"):
        assert "--init" not in steps[f"{method} s0"] and (method == "mpc-il") == ("800" in steps[f"{method} s0"])
    for method in script.WARM_STARTED:
        argv = steps[f"{method} s0"]
        assert argv[argv.index("--init") + 1] == fitted
    evaluate = steps["evaluate s0"]
    assert fitted in evaluate and "mpc-il" in recipe._controllers(0).values()
    with pytest.raises(ValueError, match="warm_start"):
        script.Recipe(tmp_path, "scene", warm_start="il")


def test_cost_flags_reach_vg_svg_and_mpur_only_and_win_over_the_policy_flags(tmp_path, capsys):
    from ppuu.app.cli import build_parser

    script = load_script()
    recipe = script.Recipe(tmp_path, "scene", seeds=(0,), run=lambda argv: 0, warm_start="mpc-il",
                           extra_policy_flags=("--steering", "straight"),
                           extra_cost_flags=("--steering", "learned", "--reached-fraction", "0.5"))
    steps = dict(recipe.steps())
    parser = build_parser()
    for method in ("il", "mper", "mpc-il", *script.WARM_STARTED):
        args = parser.parse_args(steps[f"{method} s0"])
        cost = method in script.WARM_STARTED
        assert args.steering == ("learned" if cost else "straight"), method
        assert args.reached_fraction == (0.5 if cost else None), method
    assert script.main(["--scene", "scene", "--workdir", str(tmp_path), "--seeds", "0", "--dry-run",
                        "--extra-cost-flags=--reached-fraction 0.5"]) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ppuu train policy")]
    assert sum("--reached-fraction 0.5" in line for line in commands) == 3 < len(commands)


@pytest.mark.slow
def test_tiny_recipe_pools_the_seeds_and_resumes(tmp_path, small_scene, capsys):
    from ppuu.data.scene import scene_path

    small_scene.save(scene_path(tmp_path, small_scene.meta.name))
    script = load_script()
    argv = ["--scene", small_scene.meta.name, "--workdir", str(tmp_path), "--seeds", "0", "1", "--ego-model",
            "kinematic", f"--extra-world-model-flags={TINY_WORLD_MODEL}", f"--extra-policy-flags={TINY_POLICY}",
            f"--extra-evaluate-flags={TINY_EVALUATE}", "--threads", "1"]
    assert script.main(argv) == 0
    report = next((tmp_path / "reports").glob("paper-*/README.md")).read_text()
    for row in ("human", "no_action", *script.METHODS, "mpc-adam"):
        line = next(line for line in report.splitlines() if line.startswith(f"| {row} |"))
        assert line.split("|")[3].strip() == "0,1", line          # the seeds column: both seeds pooled
    assert "not run" not in report
    # Run again: every step is finished, nothing is trained or driven again.
    calls = []
    recipe = script.Recipe(tmp_path, small_scene.meta.name, seeds=(0, 1), ego_model="kinematic",
                           run=lambda a: calls.append(a) or 0, log=lambda line: None)
    recipe.extra = {**recipe.extra, "policy": tuple(TINY_POLICY.split()),
                    "world-model": tuple(TINY_WORLD_MODEL.split()), "evaluate": tuple(TINY_EVALUATE.split())}
    recipe.run_all()
    assert calls == []
    # A finished step run again with other settings is refused, not silently mixed into the table.
    recipe.extra = {**recipe.extra, "policy": (*recipe.extra["policy"], "--speed-weight", "0.5")}
    with pytest.raises(RuntimeError, match="another command"):
        recipe.run_all()
