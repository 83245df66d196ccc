"""The shared run plumbing: threads, checkpoint files, metrics log."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ppuu.world_model.runs import (MetricsLog, THREADS_ENV, atomic_save, checkpoint_header, configure_threads,
                                   default_threads, load_checkpoint_file)


def test_threads_from_argument_environment_and_default(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv(THREADS_ENV, "2")
        assert configure_threads(None) == 2 and torch.get_num_threads() == 2
        monkeypatch.delenv(THREADS_ENV)
        assert configure_threads(None) == default_threads() >= 1
        monkeypatch.setenv(THREADS_ENV, "many")
        with pytest.raises(ValueError, match="PPUU_THREADS='many'"):
            configure_threads(None)
        with pytest.raises(ValueError, match="threads = 0"):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)


def test_cli_threads_flag_is_checked(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ppuu", "data", "list", "--workdir", str(tmp_path), "--threads", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "threads = 0" in out.stderr


def test_checkpoint_kind_is_checked(tmp_path):
    path = tmp_path / "run" / "checkpoint.pt"
    atomic_save({**checkpoint_header("policy"), "x": torch.ones(2)}, path)
    assert load_checkpoint_file(path, "policy")["x"].sum() == 2
    with pytest.raises(ValueError, match="a 'policy' checkpoint, expected a 'world-model'"):
        load_checkpoint_file(path, "world-model")
    with pytest.raises(FileNotFoundError):
        load_checkpoint_file(tmp_path / "none.pt", "policy")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint_file(tmp_path / "junk.pt", "policy")
    assert not list(path.parent.glob(".*.tmp"))


def test_metrics_log_rewrites_up_to_the_resumed_step(tmp_path):
    log = MetricsLog(tmp_path, ("step", "loss"), 0, enabled=True)
    for step in (1, 2, 3):
        log.write({"step": step, "loss": 1.0 / step})
    log.close()
    log = MetricsLog(tmp_path, ("step", "loss"), 2, enabled=True)
    log.write({"step": 3, "loss": 0.25})
    log.close()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["step,loss", "1,1", "2,0.5", "3,0.25"]
