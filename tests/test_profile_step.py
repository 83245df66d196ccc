"""scripts/profile_step.py: the profile tables of a simulator step and an MPC decision, on the CPU."""

import re

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world as a real checkpoint)
from tests.scripts import load_script


def test_profile_step_reports_both_calls(runs, scene, capsys):  # noqa: F811
    module = load_script("profile_step")
    code = module.main(["--workdir", str(runs), "--scene", scene.meta.name, "--what", "sim", "mpc",
                        "--world-model", "tiny-world", "--device", "cpu", "--sim-batch", "4", "--repeats", "1",
                        "--rows", "5", "--mpc-horizon", "3", "--mpc-futures", "2", "--mpc-iterations", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "### simulator step, B = 4" in out and "### MPC decision, B = 1, H 3 x F 2 x 1 Adam iterations" in out
    walls = [float(ms) for ms in re.findall(r"wall ([\d.]+) ms per call", out)]
    assert len(walls) == 2 and all(ms > 0 for ms in walls)
    # each table lists operators with their self CPU time, the costliest first
    assert out.count("Self CPU time total") == 2 and "aten::" in out
    counts = [(int(a), int(b)) for a, b in re.findall(r"operators per call: (\d+) called from Python, (\d+) with", out)]
    assert len(counts) == 2 and all(0 < a <= b for a, b in counts)


def test_profile_step_times_the_training_data_path_and_an_mpur_step(runs, scene, capsys):  # noqa: F811
    module = load_script("profile_step")
    code = module.main(["--workdir", str(runs), "--scene", scene.meta.name, "--what", "windows", "mpur",
                        "--world-model", "tiny-world", "--device", "cpu", "--data-batch", "4", "--mpur-batch", "2",
                        "--horizon", "3", "--repeats", "1", "--rows", "5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "### training windows, 4 of context + 3 frames" in out and "### MPUR step, batch 2, H 3, K 2" in out
    walls = [float(ms) for ms in re.findall(r"wall ([\d.]+) ms per call", out)]
    assert len(walls) == 2 and all(ms > 0 for ms in walls)
    assert "convolution" in out                     # the MPUR step runs the world model and the policy
