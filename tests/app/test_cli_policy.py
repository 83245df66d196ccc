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
