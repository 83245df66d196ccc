"""Evaluation: the table with the copy-last-frame baseline, the plot, the figure and GIF of futures; the CLI."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.world_model.data_fixtures import (CONTEXT, datasets, recording, split_ids, tiny_config,  # noqa: F401
                                             wm_workdir)
from ppuu.world_model.dataset import WindowDataset
from ppuu.world_model.evaluate import BASELINE_COPY, EvalConfig, colourise, evaluate
from ppuu.world_model.train import load_model, train

HORIZON = 3


@pytest.fixture(scope="module")
def checkpoints(recording, split_ids, tmp_path_factory):
    root = tmp_path_factory.mktemp("wm-eval")
    train(tiny_config(steps=2), *datasets(recording, split_ids), root / "det", progress=False)
    train(tiny_config("vae", steps=2, init=str(root / "det" / "checkpoint.pt")), *datasets(recording, split_ids),
          root / "vae", progress=False)
    return root / "det" / "checkpoint.pt", root / "vae" / "checkpoint.pt"


def test_evaluation_writes_table_plot_figure_and_gif(recording, split_ids, checkpoints, tmp_path):
    det, vae = (load_model(p) for p in checkpoints)
    data = WindowDataset(recording, split_ids["test"], CONTEXT, HORIZON)
    config = EvalConfig(windows=6, horizon=HORIZON, samples=3, spread_windows=2, batch_size=4, futures=2)
    report = evaluate({"deterministic": det, "vae": vae}, data, tmp_path, config, title="small",
                      truth=recording.render_states)
    rows = set(report.errors)
    assert rows == {BASELINE_COPY, "constant velocity", "deterministic", "vae (posterior z)", "vae (prior z)"}
    for e in report.errors.values():
        assert len(e["image_mse"]) == HORIZON and all(v >= 0 for v in e["position_error"])
    # the copy-last-frame baseline holds the position: its error grows with the horizon
    copy = report.errors[BASELINE_COPY]["position_error"]
    assert copy[-1] > copy[0] > 0
    md = (tmp_path / "world-model.md").read_text()
    assert f"| {BASELINE_COPY} |" in md and "| vae (prior z) |" in md and "latent samples" in md
    assert "dropout masks" in md
    assert set(report.spread["vae"]) == {"latent_image_std", "latent_position_std", "dropout_image_std",
                                         "dropout_position_std"}
    assert set(report.spread["deterministic"]) == {"dropout_image_std", "dropout_position_std"}
    # the action changes the prediction (same latent): a state head trained 2 steps still moves the car
    assert report.action_effect["vae"]["image_abs"] > 0 and report.action_effect["deterministic"]["position_m"] > 0
    # the kinematic ego state (the default) moves exactly as the simulator would: the true displacement
    effect = report.action_effect["deterministic"]
    assert effect["true_position_m"] > 0.05 and abs(effect["position_m"] / effect["true_position_m"] - 1) < 1e-3
    assert effect["true_vehicles_abs"] > 0            # egocentric: the view moves with the ego
    for e in report.errors.values():
        assert len(e["vehicles_mse"]) == HORIZON
    assert Image.open(tmp_path / "world-model-error.png").format == "PNG"
    assert Image.open(tmp_path / "world-model-futures.png").format == "PNG"
    gif = Image.open(tmp_path / "world-model-futures.gif")
    assert gif.format == "GIF" and gif.n_frames == HORIZON
    assert json.loads((tmp_path / "world-model.json").read_text())["windows"] == 6


def test_colourise_shapes():
    import torch

    out = colourise(torch.rand(2, 3, 4, 117, 24))
    assert out.shape == (2, 3, 117, 24, 3) and out.dtype.name == "uint8"


def test_cli_train_then_evaluate(wm_workdir, small_scene, capsys):
    from ppuu.app.cli import main

    tiny = ["--hidden-channels", "4", "8", "8", "--hidden-mlp", "16", "--latent-dim", "4", "--batch-size", "2",
            "--predicted-steps", "2", "--stats-windows", "16", "--val-windows", "4", "--no-progress",
            "--workdir", str(wm_workdir), "--scene", small_scene.meta.name, "--device", "cpu"]
    assert main(["train", "world-model", "--steps", "2", "--run", "det", *tiny]) == 0
    run = wm_workdir / "runs" / "det"
    assert (run / "checkpoint.pt").is_file() and (run / "metrics.csv").is_file() and (run / "config.json").is_file()
    assert main(["train", "world-model", "--model", "vae", "--steps", "1", "--run", "vae",
                 "--init", str(run / "checkpoint.pt"), *tiny]) == 0
    assert "warm start" in capsys.readouterr().out
    assert main(["evaluate", "world-model", "--workdir", str(wm_workdir), "--scene", small_scene.meta.name,
                 "--checkpoint", "vae", "--deterministic", str(run), "--windows", "4", "--horizon", "2",
                 "--samples", "2", "--device", "cpu", "--report", "scored"]) == 0
    report = wm_workdir / "reports" / small_scene.meta.name
    for name in ("scored.md", "scored-error.png", "scored-futures.png", "scored-futures.gif"):
        assert (report / name).is_file(), name
    # Every file follows the report's name: none is left under the default one to be overwritten by the next report.
    assert not list(report.glob("world-model*"))
    assert set(json.loads((report / "scored-models.json").read_text())) == {"vae", "deterministic"}
    assert main(["evaluate", "world-model", "--workdir", str(wm_workdir), "--checkpoint", "nope"]) == 2
