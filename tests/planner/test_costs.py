"""The planner's cost adapters: the context-read road costs of the learned-ego model."""

from __future__ import annotations

import pytest
import torch

from .conftest import CONTEXT, tiny_world


def _contexts(recording, ids, count: int = 12):
    """``count`` egocentric windows of CONTEXT frames: (last images (B, C, H, W), normalised last states (B, 4),
    world states (B, 4), ego sizes (B, 2), the world model)."""
    from ppuu.world_model.interface import model_inputs

    world, _ = tiny_world(recording, ids, "learned")
    vehicles, starts = recording.window_starts(ids, CONTEXT)
    pick = torch.linspace(0, len(vehicles) - 1, count).long().numpy()
    win = recording.windows(vehicles[pick], starts[pick], CONTEXT)
    inputs = model_inputs(win.images, win.states, world.normaliser, world.model_config.image_channels)
    return inputs.images[:, -1], inputs.states[:, -1], win.states[:, -1], win.size, world, inputs.origin


def _moved(world, states_world, origin, along: float, left: float, turn: float):
    """Normalised model states of egos moved ``along``/``left`` m in their own frame and turned ``turn`` rad."""
    heading = torch.atan2(states_world[:, 3], states_world[:, 2])
    c, s = torch.cos(heading), torch.sin(heading)
    x = states_world[:, 0] + along * c - left * s
    y = states_world[:, 1] + along * s + left * c
    speed = states_world[:, 2:].norm(dim=-1)
    moved = torch.stack([x - origin, y, speed * torch.cos(heading + turn), speed * torch.sin(heading + turn)], -1)
    return world.normaliser.normalise_states(moved), torch.stack([x, y], -1), heading + turn


def test_context_road_costs_match_the_frame_rendered_at_the_moved_pose(ego_recording, train_ids):
    """Lane and off-road read from the context frame at a moved pose equal the simulator's costs of a frame
    rendered at that pose (the sign conventions of along, left and heading), and the unmoved pose gives the
    context frame's own costs."""
    from ppuu.planner.costs import ContextRoadCosts, EgocentricCosts
    from ppuu.simulator.costs import all_costs
    from ppuu.simulator.raster import render

    last, last_state, world_state, size, world, origin = _contexts(ego_recording, train_ids)
    raster, config = ego_recording.raster, ego_recording.cost_config
    costs = ContextRoadCosts(world.normaliser, raster, config).at_context(last, last_state)
    own = costs(last, last_state, size)
    reference = EgocentricCosts(world.normaliser, raster, config)(last, last_state, size)
    assert torch.allclose(own, reference, atol=1e-5)

    B = last.shape[0]
    empty = torch.zeros(B, 0, 2)
    speed = world_state[:, 2:].norm(dim=-1)

    def truth(along: float, left: float, turn: float) -> torch.Tensor:
        _, centre, heading = _moved(world, world_state, origin, along, left, turn)
        frame = render(ego_recording.road, centre, heading, size, empty, empty, empty, None, raster)
        return torch.stack(all_costs(frame, speed, size, raster, config), -1)[:, 1:]

    def read(along: float, left: float, turn: float) -> torch.Tensor:
        return costs(last, _moved(world, world_state, origin, along, left, turn)[0], size)[:, 1:]

    # whole-pixel moves (1 px/m here): the re-rendered frame is the context frame shifted, so equal
    for along, left in ((4.0, 1.0), (4.0, -1.0), (3.0, 2.0)):
        expected = truth(along, left, 0.0)
        assert torch.allclose(read(along, left, 0.0), expected, atol=1e-4), (along, left)
        assert (read(along, -left, 0.0) - expected).abs().mean() > 0.05, "a mirrored move must read differently"
    assert (read(3.0, 2.0, 0.0) - own[:, 1:]).abs().mean() > 0.1, "2 m across must change the lane cost"
    # a turn re-samples the rotated road: equal up to the raster's resampling
    for turn in (0.03, -0.03):
        assert (read(4.0, 1.0, turn) - truth(4.0, 1.0, turn)).abs().mean() < 0.02, turn


def test_context_road_costs_reach_the_steering_through_the_learned_ego_model(ego_recording, train_ids):
    """Imagined with the learned-ego model, the context-read lane cost reaches the curvature of the plan (and not
    the world model's parameters); unbound use, a wrong count of samples and kinematic models are refused."""
    from ppuu.app.cli_policy import cost_model_for
    from ppuu.planner.costs import ContextRoadCosts
    from ppuu.planner.imagination import imagine
    from ppuu.planner.objective import CostWeights

    world, data = tiny_world(ego_recording, train_ids, "learned", latent_dim=0)
    batch = data.batch(torch.arange(6).numpy())
    costs = cost_model_for(world, ego_recording.raster, ego_recording.cost_config, "context")
    assert isinstance(costs, ContextRoadCosts)
    images, states, size = batch.context_images, batch.context_states, batch.size
    plan = torch.zeros(6, 3, 2, requires_grad=True)
    rollout = imagine(world.model, images, states, size, lambda i, s, t: plan[:, t], 3, costs, CostWeights(),
                      stats=world.normaliser)
    rollout.terms[..., 1].sum().backward()
    assert plan.grad[:, :, 1].abs().sum() > 0
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in world.model.parameters())

    with pytest.raises(TypeError, match="at_context"):
        costs(images[:, -1], states[:, -1], size)
    bound = costs.at_context(images[:, -1], states[:, -1])
    with pytest.raises(ValueError, match="bound to 6 contexts"):
        bound(images[:3, -1], states[:3, -1], size[:3])
    kinematic, _ = tiny_world(ego_recording, train_ids, "learned")
    kinematic.model_config.ego_model = "kinematic"
    with pytest.raises(ValueError, match="learned-ego"):
        cost_model_for(kinematic, ego_recording.raster, ego_recording.cost_config, "context")
