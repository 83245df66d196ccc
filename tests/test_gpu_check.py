"""scripts/gpu_device_run.sh and the gpu_check.sh it runs, the one-call GPU check, run end to end (a dry run on
the CPU with tiny sizes)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(tmp_path):
    env = dict(os.environ, DEVICE="cpu", SMALL="1", LIMIT="240", PYTHON=sys.executable, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    log = tmp_path / "log.md"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_device_run.sh"), str(tmp_path / "work"), str(log)],
                          env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert log.read_text() == out                                        # the log holds everything printed
    assert "ppuu.planner.mpc" in out and "gpu_check.sh" in out
    for step in ("generate scene", "GPU-marked tests", "rasteriser", "train world model (for MPC)", "benchmark",
                 "benchmark: closed loop", "benchmark: world-model training", "simulator, traffic x1",
                 "simulator, traffic x2", "profiles"):
        assert f"| {step} | ok |" in out
    # the steps that a short lease most needs come first
    assert out.index("## benchmark\n") < out.index("## simulator, traffic x1") < out.index("## GPU-marked tests")
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
