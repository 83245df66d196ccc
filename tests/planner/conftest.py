"""Fixtures of the planner tests: tiny world models of both ego models on the suite's small scene."""

from __future__ import annotations

import dataclasses

import pytest
import torch

CONTEXT = 4
HORIZON = 3


def tiny_world(recording, ids, ego_model: str = "kinematic", conditioning: str = "state", latent_dim: int = 4,
               dropout: float = 0.1, seed: int = 0):
    """An untrained tiny world model (its gate starts near "copy the last frame", so its futures look
    like the context's traffic) with statistics fitted on the windows, as a LoadedModel."""
    from ppuu.world_model.dataset import WindowDataset
    from ppuu.world_model.models import ForwardModel, ModelConfig
    from ppuu.world_model.train import LoadedModel, TrainConfig

    data = WindowDataset(recording, ids, CONTEXT, HORIZON)
    normaliser = data.fit_normaliser(windows=64, seed=0)
    kinematic = ego_model == "kinematic"
    config = ModelConfig(context=CONTEXT, image_height=recording.raster.length_px, image_width=recording.raster.width_px,
                         hidden_channels=(4, 8, 8), hidden_mlp=16, latent_dim=latent_dim, dropout=dropout,
                         ego_model=ego_model, ego_conditioning=conditioning if kinematic else "state",
                         static_channels=(0, 2) if kinematic else ())
    torch.manual_seed(seed)
    model = ForwardModel(config).eval()
    train_config = TrainConfig(model=config, observation=recording.settings(),
                               model_type="vae" if latent_dim else "deterministic")
    return LoadedModel(model, normaliser, config, train_config, 0), data


def save_tiny_runs(workdir, recording, ids, ego_model: str, world_run: str, policy_run: str) -> None:
    """WORKDIR/runs/{world_run,policy_run}: an untrained tiny world model (:func:`tiny_world`) and a tiny
    policy trained on it for two imitation steps, saved as real checkpoints."""
    from ppuu.planner.policy import PolicyConfig
    from ppuu.planner.train import PolicyTrainConfig, train_policy
    from ppuu.world_model.runs import atomic_save, checkpoint_header

    world, data = tiny_world(recording, ids, ego_model)
    world_path = workdir / "runs" / world_run / "checkpoint.pt"
    atomic_save({**checkpoint_header("world-model"), "model": world.model.state_dict(),
                 "model_config": world.model_config.to_json(), "train_config": world.train_config.to_json(),
                 "normaliser": world.normaliser.state_dict(), "step": 0}, world_path)
    mc = world.model_config
    policy = PolicyConfig(context=CONTEXT, image_channels=mc.image_channels, image_height=mc.image_height,
                          image_width=mc.image_width, hidden_channels=(4, 8, 8), hidden_mlp=16)
    config = PolicyTrainConfig(method="il", world_model=str(world_path), steps=2, batch_size=4, horizon=1, copies=1,
                               val_every=0, checkpoint_every=2, log_every=1, stats_batches=1, policy=policy)
    train_policy(config, world, cost_model(world, recording), data, None, workdir / "runs" / policy_run,
                 progress=False)


@pytest.fixture(scope="session")
def fixed_recording(small_scene):
    from ppuu.simulator.raster import RasterConfig
    from ppuu.simulator.recording import FixedFrame, RecordedObservations

    raster = RasterConfig.covering(60.0, 24 / 1.625, 1.0)
    return RecordedObservations(small_scene, raster, frame=FixedFrame(anchor=CONTEXT - 1, centre_ahead=15.0))


@pytest.fixture(scope="session")
def ego_recording(small_scene):
    from ppuu.simulator.raster import RasterConfig
    from ppuu.simulator.recording import RecordedObservations

    return RecordedObservations(small_scene, RasterConfig.covering(72.0, 24 / 1.625, 1.0))


@pytest.fixture(scope="session")
def train_ids(small_scene):
    return small_scene.split_vehicle_ids("train")


def cost_model(world, recording):
    from ppuu.planner.costs import EgocentricCosts, PoseCosts

    if world.model_config.ego_model == "kinematic":
        return PoseCosts(world.normaliser, recording.raster, recording.cost_config, recording.frame.centre_ahead)
    return EgocentricCosts(world.normaliser, recording.raster, recording.cost_config)


def replace(obj, **kw):
    return dataclasses.replace(obj, **kw)
