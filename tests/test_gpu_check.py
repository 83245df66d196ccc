"""scripts/gpu_check.sh, the one-call GPU check, runs end to end (a dry run on the CPU with tiny sizes)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(tmp_path):
    env = dict(os.environ, DEVICE="cpu", SMALL="1", LIMIT="240", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "work")], env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    for step in ("generate scene", "GPU-marked tests", "rasteriser", "simulator", "world model", "MPC"):
        assert f"| {step} | ok |" in out
    assert "| gpu-check-wm | plan-free traffic | 1 |" in out          # the MPC benchmark's own table
    assert (tmp_path / "work" / "runs" / "gpu-check-wm" / "checkpoint.pt").is_file()
