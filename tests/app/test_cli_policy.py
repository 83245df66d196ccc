"""`ppuu train policy` from the command line: an imitation warm start (--init) feeds an MPUR run."""

import torch

from ppuu.app.cli import main
from tests.app.test_drive import runs  # noqa: F401  (the tiny world model and policy, as real checkpoints)


def test_mpur_starts_from_an_imitation_run(runs, scene, capsys):  # noqa: F811
    common = ["train", "policy", "--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "tiny-world",
              "--batch-size", "2", "--val-every", "0", "--checkpoint-every", "1", "--no-progress", "--threads", "1"]
    assert main([*common, "--method", "il", "--steps", "2", "--run", "il-warm"]) == 0
    assert main([*common, "--method", "mpur", "--steps", "1", "--horizon", "2", "--copies", "2",
                 "--speed-weight", "0.5", "--init", "il-warm", "--run", "mpur-warm"]) == 0
    il = torch.load(runs / "runs" / "il-warm" / "checkpoint.pt", weights_only=True)
    mpur = torch.load(runs / "runs" / "mpur-warm" / "checkpoint.pt", weights_only=True)
    assert mpur["train_config"]["weights"]["speed"] == 0.5
    # one optimiser step from the imitation weights: close to them, not equal (it trained)
    moved = [float((mpur["policy"][k] - v).abs().max()) for k, v in il["policy"].items() if v.is_floating_point()]
    assert 0 < max(moved) < 0.1


def test_two_checkpoints_of_one_run_are_two_rows_and_a_repeat_is_refused(runs, scene, tmp_path, capsys):  # noqa: F811
    """Snapshots of one run (``run/a.pt``, ``run/b.pt``) are reported apart, not merged under the run's name."""
    import json
    import shutil

    folder = tmp_path / "snapshots"
    folder.mkdir()
    for name in ("a.pt", "b.pt"):
        shutil.copy(runs / "runs" / "tiny-policy" / "checkpoint.pt", folder / name)
    common = ["evaluate", "policy", scene.meta.name, "--workdir", str(runs), "--controllers", "--no-gifs",
              "--episodes", "2", "--threads", "1", "--report", "snapshots"]
    assert main([*common, "--policy", str(folder / "a.pt"), str(folder / "b.pt")]) == 0
    reports = list((runs / "reports" / scene.meta.name).glob("snapshots-*.json"))
    assert len(reports) == 1
    names = sorted(json.loads(reports[0].read_text())["results"])
    assert [n.split(" ", 1)[1] for n in names] == ["(snapshots/a.pt)", "(snapshots/b.pt)"]
    assert main([*common, "--policy", str(folder / "a.pt"), str(folder / "a.pt")]) != 0
    assert "(snapshots/a.pt) is given twice" in capsys.readouterr().err


def test_releasing_the_wheel_of_a_straight_warm_start_starts_steering_straight(runs, scene):  # noqa: F811
    from ppuu.planner.train import load_policy

    common = ["train", "policy", "--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "tiny-world",
              "--batch-size", "2", "--val-every", "0", "--no-progress", "--threads", "1"]
    assert main([*common, "--method", "il", "--steps", "2", "--steering", "straight", "--run", "il-straight"]) == 0
    assert main([*common, "--method", "svg", "--steps", "1", "--horizon", "2", "--lr", "1e-9",
                 "--init", "il-straight", "--run", "svg-released"]) == 0
    straight = load_policy(runs / "runs" / "il-straight" / "checkpoint.pt")
    released = load_policy(runs / "runs" / "svg-released" / "checkpoint.pt")
    assert straight.policy.config.fixed_curvature is not None and released.policy.config.fixed_curvature is None
    c = released.policy.config
    images = torch.rand(4, c.context, c.image_channels, c.image_height, c.image_width)
    states = torch.randn(4, c.context, 4)
    with torch.no_grad():
        action, before = released.policy(images, states), straight.policy(images, states)
    assert torch.allclose(action[:, 1], before[:, 1], atol=1e-5)        # steering: straight, as before
    assert torch.allclose(action[:, 0], before[:, 0], atol=1e-4)        # acceleration: the warm start's
    assert released.policy.head[-1].weight[1].abs().max() < 1e-6          # the steering row starts at zero


def test_a_policy_trains_on_the_contexts_it_reaches_from_the_command_line(runs, scene):  # noqa: F811
    import pandas as pd

    common = ["train", "policy", "--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "tiny-world",
              "--batch-size", "4", "--val-every", "0", "--no-progress", "--threads", "1", "--method", "svg",
              "--steps", "2", "--horizon", "2", "--checkpoint-every", "1"]
    assert main([*common, "--reached-fraction", "0.5", "--reached-every", "1", "--reached-episodes", "2",
                 "--reached-steps", "4", "--reached-stride", "2", "--run", "svg-reached"]) == 0
    ckpt = torch.load(runs / "runs" / "svg-reached" / "checkpoint.pt", weights_only=True)
    assert ckpt["train_config"]["reached_fraction"] == 0.5 and ckpt["reached_step"] == 1
    assert pd.read_csv(runs / "runs" / "svg-reached" / "metrics.csv")["reached_lane"].notna().all()
    assert main([*common, "--reached-fraction", "0.5", "--method", "il", "--run", "il-reached"]) != 0


def test_road_costs_from_the_context_from_the_command_line(runs, scene, capsys):  # noqa: F811
    """A learned-ego model trains with ``--road-costs context`` (recorded in the checkpoint); a kinematic-ego model,
    whose frames are fixed already, refuses it with a reason."""
    from ppuu.simulator.raster import RasterConfig
    from ppuu.simulator.recording import RecordedObservations
    from tests.planner.conftest import save_tiny_runs

    recording = RecordedObservations(scene, RasterConfig.covering(72.0, 24 / 1.625, 1.0))
    save_tiny_runs(runs, recording, scene.split_vehicle_ids("train"), "learned", "tiny-ego-world", "tiny-ego-policy")
    common = ["train", "policy", "--workdir", str(runs), "--scene", scene.meta.name, "--batch-size", "2",
              "--val-every", "0", "--no-progress", "--threads", "1", "--method", "svg", "--steps", "1",
              "--horizon", "2", "--road-costs", "context"]
    assert main([*common, "--world-model", "tiny-ego-world", "--run", "svg-context-road"]) == 0
    ckpt = torch.load(runs / "runs" / "svg-context-road" / "checkpoint.pt", weights_only=True)
    assert ckpt["train_config"]["road_costs"] == "context"
    capsys.readouterr()
    assert main([*common, "--world-model", "tiny-world", "--run", "svg-context-road-kinematic"]) != 0
    assert "learned-ego" in capsys.readouterr().err
