"""scripts/gpu_device_run.sh and the gpu_check.sh it runs, the one-call GPU check, run end to end (a dry run on
the CPU with tiny sizes). As on the lent machine, the scene is carried in the workspace (here the suite's own
small scene), so the dry run spends its time on the steps a GPU call runs; ``ppuu data generate`` has tests of
its own."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(small_scene, tmp_path):
    small_scene.save(tmp_path / "work" / "scenes" / small_scene.meta.name)
    env = dict(os.environ, DEVICE="cpu", SMALL="1", LIMIT="240", PYTHON=sys.executable, EGO_WORLD_MODEL="gpu-check-wm",
               SCENE=small_scene.meta.name, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    log = tmp_path / "log.md"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_device_run.sh"), str(tmp_path / "work"), str(log)],
                          env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert log.read_text() == out                                        # the log holds everything printed
    assert "ppuu.planner.mpc" in out and "gpu_check.sh" in out
    assert "generate scene" not in out                                   # the carried scene is used
    for step in ("GPU-marked tests", "rasteriser", "train world model (for MPC)", "benchmark",
                 "benchmark: closed loop", "benchmark: world-model training", "simulator, traffic x1",
                 "simulator, traffic x2", "profiles", "MPC latency through the model"):
        assert f"| {step} | ok |" in out
    # the steps that a short lease most needs come first
    assert out.index("## benchmark\n") < out.index("## simulator, traffic x1") < out.index("## GPU-marked tests")
    assert "tests/planner/test_mpc_graph.py::" in out                   # the CUDA-graph MPC tests are among them
    assert (tmp_path / "work" / "runs" / "gpu-check-wm" / "checkpoint.pt").is_file()
    work = tmp_path / "work"
    report = (work / "benchmark-cpu.md").read_text()                      # scripts/benchmark.py's own tables
    for part in ("Simulator", "MPC decision latency", "MPUR step at the reference sizes"):
        assert f"#### {part}" in report and report in out
    closed_loop = (work / "benchmark-cpu-closed-loop.md").read_text()     # a step and a file of its own
    assert "#### Closed-loop evaluation" in closed_loop and "#### Closed-loop" not in report and closed_loop in out
    training = (work / "benchmark-cpu-world-model.md").read_text()
    assert "#### World-model training throughput" in training and "#### World-model" not in report
    assert "failed" not in report + closed_loop + training


def test_gpu_pack_recompresses_the_scene_and_keeps_what_a_run_needs(small_scene, tmp_path, capsys):
    from ppuu.data.scene import Scene

    gpu_pack = load_script("gpu_pack")

    work = tmp_path / "work"
    small_scene.save(work / "scenes" / "small")
    run = work / "runs" / "wm"
    run.mkdir(parents=True)
    for name in ("checkpoint.pt", "config.json", "best.pt", "metrics.csv"):
        (run / name).write_bytes(name.encode() * 100)
    out = tmp_path / "gpu-work"
    args = ["--workdir", str(work), "--scene", "small", "--run", "demo=wm", "--out", str(out), "--no-wheels",
            "--no-test-scene"]
    assert gpu_pack.main(args) == 0
    packed = Scene.load(out / "scenes" / "small")
    assert packed.trajectories.equals(small_scene.trajectories) and packed.vehicles.equals(small_scene.vehicles)
    assert sorted(f.name for f in (out / "runs" / "demo").iterdir()) == ["checkpoint.pt", "config.json"]
    assert "carry:" in capsys.readouterr().out
    assert gpu_pack.main(args + ["--limit-mib", "0.001"]) == 1                 # over the limit: says so, fails
    assert "over the 0.001-MiB carry limit" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no checkpoint.pt"):
        gpu_pack.main(args[:4] + ["--run", "demo=missing"] + args[6:])
    with pytest.raises(SystemExit):                                          # NAME=RUN is checked by argparse
        gpu_pack.main(args[:4] + ["--run", "no-equals-sign"] + args[6:])
    assert not [p for p in out.rglob("tmp*")]                                # no temporary folder left behind
