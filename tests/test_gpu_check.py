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
                 "benchmark: world-model training", "simulator, traffic x1", "simulator, traffic x2"):
        assert f"| {step} | ok |" in out
    assert (tmp_path / "work" / "runs" / "gpu-check-wm" / "checkpoint.pt").is_file()
    report = (tmp_path / "work" / "benchmark-cpu.md").read_text()          # scripts/benchmark.py's own tables
    for part in ("Simulator", "Closed-loop evaluation", "MPC decision latency", "MPUR step at the reference sizes"):
        assert f"#### {part}" in report and report in out
    training = (tmp_path / "work" / "benchmark-cpu-world-model.md").read_text()
    assert "#### World-model training throughput" in training and "#### World-model" not in report
    assert "failed" not in report + training
