"""The training loop: learning, resume = uninterrupted, NaN guard, checkpoints, warm start, DDP."""

from __future__ import annotations

import csv
import os
import socket

import pytest
import torch

from tests.world_model.data_fixtures import (CONTEXT, SpySource, datasets, recording, split_ids,  # noqa: F401
                                             tiny_config, wm_workdir)
from ppuu.world_model import train as train_module
from ppuu.world_model.dataset import WindowDataset, sample_indices
from ppuu.world_model.normalisation import Normaliser
from ppuu.world_model.runs import load_checkpoint_file
from ppuu.world_model.train import KIND, TrainConfig, TrainingDiverged, compute_loss, load_model, train


def read_checkpoint(path):
    return load_checkpoint_file(path, KIND)


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_few_steps_reduce_the_loss(recording, split_ids, tmp_path):
    tr, va = datasets(recording, split_ids)
    config = tiny_config(steps=25, lr=3e-3, checkpoint_every=25, log_every=5, val_every=25, val_windows=8)
    # the loss of a fixed batch, before and after training, in eval mode
    tr.fit_normaliser(config.stats_windows, seed=config.seed)
    batch = tr.batch(sample_indices(len(tr), 99, 0, 8))
    torch.manual_seed(config.seed)
    from ppuu.world_model.models import ForwardModel
    model = ForwardModel(config.model).eval()
    with torch.no_grad():
        before, _ = compute_loss(model, batch, config, tr.normaliser)
    summary = train(config, tr, va, tmp_path / "run", progress=False)
    trained = load_model(tmp_path / "run" / "checkpoint.pt")
    with torch.no_grad():
        after, _ = compute_loss(trained.model, batch, config, trained.normaliser)
    assert float(after) < 0.7 * float(before)
    rows = _rows(tmp_path / "run")
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert rows[-1]["val_loss"] and summary["val"]["val_loss"] > 0
    assert (tmp_path / "run" / "config.json").is_file() and (tmp_path / "run" / "best.pt").is_file()
    assert TrainConfig.from_json(__import__("json").loads((tmp_path / "run" / "config.json").read_text())) == config


def test_resume_after_a_kill_equals_an_uninterrupted_run(recording, split_ids, tmp_path):
    config = tiny_config("vae", steps=6, checkpoint_every=3, val_every=3, val_windows=4)
    train(config, *datasets(recording, split_ids), tmp_path / "straight", progress=False)
    # "killed" after step 4: the last checkpoint is step 3; the rows of step 4 are in the CSV already
    train(config, *datasets(recording, split_ids), tmp_path / "resumed", progress=False, stop_after=4)
    ckpt = read_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert ckpt["step"] == 3
    torch.save(ckpt, tmp_path / "resumed" / "checkpoint.pt")        # as the kill left it
    train(config, *datasets(recording, split_ids), tmp_path / "resumed", progress=False)
    a = read_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = read_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for (ka, va), (kb, vb) in zip(a["optimiser"]["state"].items(), b["optimiser"]["state"].items()):
        for name in va:
            assert torch.equal(torch.as_tensor(va[name]), torch.as_tensor(vb[name])), (ka, name)
    steps = [int(r["step"]) for r in _rows(tmp_path / "resumed")]
    assert steps == sorted(set(steps)) and steps[-1] == 6        # no duplicated rows after the resume
    assert [r["loss"] for r in _rows(tmp_path / "resumed")] == [r["loss"] for r in _rows(tmp_path / "straight")]


def test_resume_refuses_a_different_config(recording, split_ids, tmp_path):
    config = tiny_config(steps=2)
    train(config, *datasets(recording, split_ids), tmp_path / "run", progress=False)
    changed = tiny_config(steps=4, lr=0.1)
    with pytest.raises(ValueError, match="cannot resume: lr"):
        train(changed, *datasets(recording, split_ids), tmp_path / "run", progress=False)


def _nan_after(calls: list, bad: set):
    real = compute_loss

    def patched(*args, **kwargs):
        loss, parts = real(*args, **kwargs)
        calls.append(1)
        if len(calls) in bad:
            loss = loss * float("nan")
        return loss, parts
    return patched


def test_nan_guard_skips_then_raises(recording, split_ids, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(train_module, "compute_loss", _nan_after(calls, {2, 3}))
    config = tiny_config(steps=5, max_bad_steps=3, checkpoint_every=5)
    summary = train(config, *datasets(recording, split_ids), tmp_path / "skips", progress=False)
    assert summary["nan_skips"] == 2 and summary["step"] == 5
    assert read_checkpoint(tmp_path / "skips" / "checkpoint.pt")["nan_skips"] == 2
    assert all(torch.isfinite(v).all() for v in load_model(tmp_path / "skips" / "checkpoint.pt")
               .model.state_dict().values())
    assert _rows(tmp_path / "skips")[-1]["nan_skips"] == "2"

    calls.clear()
    monkeypatch.setattr(train_module, "compute_loss", _nan_after(calls, set(range(3, 100))))
    with pytest.raises(TrainingDiverged, match="3 consecutive training steps"):
        train(tiny_config(steps=20, max_bad_steps=3, checkpoint_every=1), *datasets(recording, split_ids),
              tmp_path / "diverges", progress=False)
    assert read_checkpoint(tmp_path / "diverges" / "checkpoint.pt")["step"] == 4   # last good checkpoint


def test_checkpoint_loads_with_weights_only(recording, split_ids, tmp_path):
    config = tiny_config("vae", steps=2)
    train(config, *datasets(recording, split_ids), tmp_path / "run", progress=False)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert {"model", "model_config", "train_config", "normaliser", "optimiser", "step", "rng"} <= set(ckpt)
    assert ckpt["kind"] == "world-model"
    loaded = load_model(tmp_path / "run" / "checkpoint.pt")
    assert loaded.stochastic and loaded.step == 2 and not loaded.model.training
    assert isinstance(loaded.normaliser, Normaliser)
    assert not list(tmp_path.glob("run/.*.tmp"))                            # atomic writes leave nothing behind
    with pytest.raises(ValueError, match="other.pt: not a ppuu checkpoint"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        load_model(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="a 'policy' checkpoint, expected a 'world-model' checkpoint"):
        torch.save({**ckpt, "kind": "policy"}, tmp_path / "policy.pt")
        load_model(tmp_path / "policy.pt")


def test_statistics_in_the_checkpoint_come_from_the_training_split(recording, split_ids, tmp_path):
    spy_train, spy_val = SpySource(recording), SpySource(recording)
    tr = WindowDataset(spy_train, split_ids["train"], CONTEXT, 2)
    va = WindowDataset(spy_val, split_ids["val"], CONTEXT, 2)
    config = tiny_config(steps=1, val_every=1, val_windows=4)
    train(config, tr, va, tmp_path / "run", progress=False)
    assert spy_train.rendered <= set(split_ids["train"]) and spy_val.rendered <= set(split_ids["val"])
    saved = load_model(tmp_path / "run" / "checkpoint.pt").normaliser
    ref = WindowDataset(recording, split_ids["train"], CONTEXT, 2).fit_normaliser(config.stats_windows, config.seed)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(saved.state_dict()[k], v)


def test_vae_warm_start_copies_the_deterministic_weights(recording, split_ids, tmp_path):
    train(tiny_config(steps=1), *datasets(recording, split_ids), tmp_path / "det", progress=False)
    det = read_checkpoint(tmp_path / "det" / "checkpoint.pt")
    config = tiny_config("vae", steps=1, lr=1e-12, init=str(tmp_path / "det" / "checkpoint.pt"))
    train(config, *datasets(recording, split_ids), tmp_path / "vae", progress=False)
    vae = read_checkpoint(tmp_path / "vae" / "checkpoint.pt")
    shared = [k for k in det["model"] if k in vae["model"]]
    assert len(shared) == len(det["model"])
    for k in shared:     # one tiny Adam step away from the deterministic weights
        torch.testing.assert_close(vae["model"][k], det["model"][k], atol=1e-9, rtol=0)
    assert any(k.startswith("posterior") for k in vae["model"])
    for k, v in det["normaliser"].items():
        assert torch.equal(vae["normaliser"][k], v)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, scene_dir: str, run_dir: str, config_json: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from ppuu.data.scene import Scene
    from ppuu.simulator.recording import RecordedObservations

    scene = Scene.load(scene_dir)
    rec = RecordedObservations(scene)
    config = TrainConfig.from_json(config_json)
    tr = WindowDataset(rec, scene.split_vehicle_ids("train"), CONTEXT, config.predicted_steps)
    train(config, tr, None, run_dir, progress=False)
    torch.save(train_module_state(run_dir), f"{run_dir}/rank{rank}.pt")


def train_module_state(run_dir: str) -> dict:
    return read_checkpoint(f"{run_dir}/checkpoint.pt")["model"]


def test_ddp_gloo_two_processes_matches_one(recording, split_ids, wm_workdir, small_scene, tmp_path):
    """2 processes x 2 windows = 1 process x 4 windows (no dropout, so the same arithmetic up to rounding)."""
    import torch.multiprocessing as mp

    from ppuu.data.scene import scene_path

    config = tiny_config(steps=3, batch_size=4, checkpoint_every=3, model={"dropout": 0.0})
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(scene_path(wm_workdir, small_scene.meta.name)),
                                str(tmp_path / "ddp"), config.to_json()), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    train(config, datasets(recording, split_ids)[0], None, tmp_path / "single", progress=False)
    single = read_checkpoint(tmp_path / "single" / "checkpoint.pt")["model"]
    ddp = read_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ddp["step"] == 3
    for k, v in single.items():
        assert torch.equal(ranks[0][k], ranks[1][k])
        torch.testing.assert_close(ddp["model"][k], v, atol=2e-5, rtol=1e-4)
    assert len(_rows(tmp_path / "ddp")) == 3                     # only rank 0 writes


def test_cli_resume_after_sigkill_equals_uninterrupted(wm_workdir, small_scene):
    """`ppuu train world-model` killed (SIGKILL) mid-run, then run again: the same weights as a run left alone."""
    import subprocess
    import sys
    import time

    from ppuu.app.cli import main

    tiny = ["--hidden-channels", "4", "8", "8", "--hidden-mlp", "16", "--batch-size", "2", "--predicted-steps", "2",
            "--stats-windows", "16", "--val-every", "0", "--checkpoint-every", "2", "--log-every", "1",
            "--steps", "40", "--no-progress", "--workdir", str(wm_workdir), "--scene", small_scene.meta.name,
            "--device", "cpu", "--seed", "5"]
    killed = wm_workdir / "runs" / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "ppuu.app.cli", "train", "world-model", "--run", "killed", *tiny],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not (killed / "checkpoint.pt").is_file():
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert proc.returncode != 0, "the run finished before it could be killed"
    step = read_checkpoint(killed / "checkpoint.pt")["step"]
    assert 0 < step < 40
    assert main(["train", "world-model", "--run", "killed", *tiny]) == 0
    assert main(["train", "world-model", "--run", "straight", *tiny]) == 0
    a = read_checkpoint(killed / "checkpoint.pt")
    b = read_checkpoint(wm_workdir / "runs" / "straight" / "checkpoint.pt")
    assert a["step"] == b["step"] == 40
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k


def test_ego_kinematics_model_trains(recording, split_ids, tmp_path):
    config = tiny_config(steps=2, model={"ego_kinematics": True})
    summary = train(config, *datasets(recording, split_ids), tmp_path / "run", progress=False)
    assert summary["step"] == 2 and load_model(tmp_path / "run" / "checkpoint.pt").model_config.ego_kinematics


def test_observation_settings_travel_with_the_checkpoint(recording, split_ids, tmp_path):
    raster = recording.raster.to_json()
    config = tiny_config(steps=1, observation={"raster": raster})
    train(config, *datasets(recording, split_ids), tmp_path / "run", progress=False)
    loaded = load_model(tmp_path / "run" / "checkpoint.pt")
    loaded.check_observation("raster", raster)                          # the same settings pass
    with pytest.raises(ValueError, match="pixels_per_metre: model 1.625, here 2.0"):
        loaded.check_observation("raster", {**raster, "pixels_per_metre": 2.0})
    with pytest.raises(ValueError, match="does not record its 'costs' settings"):
        loaded.check_observation("costs", {})
