import io
import json

import pytest
import torch

from ppuu.simulator.dynamics import EgoState
from ppuu.simulator.dynamics import step as simulator_step
from ppuu.world_model.kinematics import kinematic_rollout, kinematic_step
from ppuu.world_model.layers import encoder_sizes, kl_standard_normal
from ppuu.world_model.models import ForwardModel, ModelConfig, Prediction, count_parameters, slide, unroll_policy
from ppuu.world_model.normalisation import Normaliser

B, N = 2, 2


def tiny(**overrides) -> ModelConfig:
    """The small config the tests use: runs in milliseconds on a CPU (learned ego state unless overridden)."""
    fields = {"hidden_channels": (8, 16, 32), "hidden_mlp": 32, "context": 4, "latent_dim": 4, "ego_kinematics": False}
    fields.update(overrides)
    return ModelConfig(**fields)


def make_model(seed=0, **overrides) -> ForwardModel:
    torch.manual_seed(seed)
    return ForwardModel(tiny(**overrides))


def random_batch(config: ModelConfig, b=B, n=N, seed=0):
    """Context images/states, actions and the true future: (images, states, actions, target_images, target_states)."""
    g = torch.Generator().manual_seed(seed)
    C, H, W, T = config.image_channels, config.image_height, config.image_width, config.context
    images = torch.rand(b, T, C, H, W, generator=g)
    states = torch.randn(b, T, config.state_dim, generator=g)
    actions = torch.randn(b, n, config.action_dim, generator=g)
    target_images = torch.rand(b, n, C, H, W, generator=g)
    target_states = torch.randn(b, n, config.state_dim, generator=g)
    return images, states, actions, target_images, target_states


def check_shapes(p: Prediction, config: ModelConfig, b=B, n=N):
    C, H, W = config.image_channels, config.image_height, config.image_width
    assert p.images.shape == (b, n, C, H, W)
    assert p.states.shape == (b, n, config.state_dim)
    assert p.kl.shape == (b, n)
    assert p.z.shape == (b, n, config.latent_dim)
    assert p.images.numel() == 0 or (p.images.min() >= 0.0 and p.images.max() <= 1.0)
    assert torch.isfinite(p.states).all() and torch.isfinite(p.kl).all()


# ---------------------------------------------------------------------------- config and shapes
def test_config_json_round_trip_and_validation():
    c = tiny(ego_kinematics=True, z_dropout=0.25)
    d = c.to_json()
    assert d["hidden_channels"] == [8, 16, 32]
    assert ModelConfig.from_json(d) == c
    assert ModelConfig.from_json(json.dumps(d)) == c
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_json({**d, "bogus": 1})
    with pytest.raises(ValueError, match="latent_dim"):
        ModelConfig(latent_dim=-1)
    with pytest.raises(ValueError, match="z_dropout"):
        ModelConfig(z_dropout=1.5)
    with pytest.raises(ValueError, match="ego_kinematics"):
        ModelConfig(ego_kinematics=True, state_dim=6)


def test_reference_sizes_give_a_256_x_14_x_3_map():
    assert encoder_sizes(117, 24, 3) == [(117, 24), (58, 12), (29, 6), (14, 3)]
    config = ModelConfig(ego_kinematics=False)         # the reference's learned state head
    torch.manual_seed(0)
    model = ForwardModel(config).eval()
    assert model.map_shape == (256, 14, 3)
    assert 13e6 < count_parameters(model) < 16e6   # the reference's 15.6 M, give or take the posterior
    assert count_parameters(ForwardModel(ModelConfig())) < count_parameters(model) - 2e6   # no state head
    images, states, actions, _, _ = random_batch(config, b=1, n=1)
    with torch.no_grad():
        assert model.encode(images, states).shape == (1, 256, 14, 3)
        check_shapes(model(images, states, actions, z_source="prior"), config, b=1, n=1)


@pytest.mark.parametrize("height,width", [(117, 24), (64, 32), (33, 17)])
def test_decoder_restores_any_image_size(height, width):
    config = tiny(image_height=height, image_width=width, latent_dim=0)
    model = make_model(image_height=height, image_width=width, latent_dim=0)
    images, states, actions, _, _ = random_batch(config)
    check_shapes(model(images, states, actions), config)


@pytest.mark.parametrize("latent_dim", [0, 4])
@pytest.mark.parametrize("z_source", ["posterior", "prior", "given"])
def test_shapes_for_every_z_source(latent_dim, z_source):
    config = tiny(latent_dim=latent_dim)
    model = make_model(latent_dim=latent_dim)
    images, states, actions, target_images, target_states = random_batch(config)
    z = torch.randn(B, N, latent_dim) if z_source == "given" else None
    p = model(images, states, actions, target_images, target_states, z_source=z_source, z=z)
    check_shapes(p, config)
    if z_source == "given" and latent_dim:
        torch.testing.assert_close(p.z, z)
    if latent_dim == 0 or z_source != "posterior":
        assert torch.all(p.kl == 0)
    assert model.unroll(images, states, actions, target_images, target_states, z_source=z_source,
                        z=z).images.shape == p.images.shape


def test_zero_steps_give_empty_prediction():
    config = tiny()
    model = make_model()
    images, states, _, _, _ = random_batch(config)
    p = model(images, states, torch.zeros(B, 0, 2), z_source="prior")
    check_shapes(p, config, n=0)


def test_bad_inputs_are_named():
    config = tiny()
    model = make_model()
    images, states, actions, target_images, target_states = random_batch(config)
    with pytest.raises(ValueError, match="context frames"):
        model(images[:, 1:], states[:, 1:], actions, z_source="prior")
    with pytest.raises(ValueError, match="needs target_images"):
        model(images, states, actions)
    with pytest.raises(ValueError, match="needs z of shape"):
        model(images, states, actions, z_source="given")
    with pytest.raises(ValueError, match="z_source"):
        model(images, states, actions, z_source="sometimes")
    with pytest.raises(ValueError, match="actions of shape"):
        model(images, states, actions[..., :1], z_source="prior")
    with pytest.raises(ValueError, match="target_states"):
        model(images, states, actions, target_images, target_states[:, :1])


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("overrides", [{"latent_dim": 0}, {"latent_dim": 4}, {"latent_dim": 4, "ego_kinematics": True}])
def test_gradient_reaches_every_parameter(overrides):
    config = tiny(**overrides)
    model = make_model(**overrides)
    images, states, actions, target_images, target_states = random_batch(config)
    actions.requires_grad_(True)
    stats = Normaliser.identity() if config.ego_kinematics else None
    p = model(images, states, actions, target_images, target_states, z_dropout=0.0, stats=stats)
    loss = ((p.images - target_images) ** 2).mean() + ((p.states - target_states) ** 2).mean() + p.kl.mean()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert actions.grad.abs().sum() > 0
    if config.ego_kinematics:
        assert not hasattr(model, "state_head")


# ---------------------------------------------------------------------------- latent and KL
def test_kl_closed_form():
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                                  torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), reference)
    assert kl_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0


def test_kl_zero_where_z_dropout_picks_the_prior():
    config = tiny()
    model = make_model()
    images, states, actions, target_images, target_states = random_batch(config, b=32)
    all_prior = model(images, states, actions, target_images, target_states, z_dropout=1.0)
    assert torch.all(all_prior.kl == 0)
    all_posterior = model(images, states, actions, target_images, target_states, z_dropout=0.0)
    assert torch.all(all_posterior.kl > 0)
    half = model(images, states, actions, target_images, target_states, z_dropout=0.5)
    assert torch.all(half.kl >= 0)
    zero_fraction = float((half.kl == 0).float().mean())
    assert 0.2 < zero_fraction < 0.8
    # train mode uses the config's z_dropout; eval mode uses none
    model.eval()
    with torch.no_grad():
        assert torch.all(model(images, states, actions, target_images, target_states).kl > 0)


def test_kl_and_z_follow_a_known_posterior():
    """Pin the posterior's output layer to constants: KL must equal the closed form, z ~ N(mu, sigma^2)."""
    config = tiny()
    model = make_model().eval()
    mu = torch.tensor([0.5, -1.0, 2.0, 0.0])
    logvar = torch.tensor([0.0, -1.0, 0.5, -2.0])
    head = model.posterior.head[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.cat([mu, logvar]))
    images, states, actions, target_images, target_states = random_batch(config, b=256, n=1)
    with torch.no_grad():
        p = model(images, states, actions, target_images, target_states, z_dropout=0.0)
    expected = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum()
    torch.testing.assert_close(p.kl, expected.expand(256, 1))
    z = p.z[:, 0]
    torch.testing.assert_close(z.mean(0), mu, atol=0.2, rtol=0)
    torch.testing.assert_close(z.std(0), (0.5 * logvar).exp(), atol=0.15, rtol=0)


def test_different_z_give_different_predictions():
    config = tiny()
    model = make_model().eval()
    images, states, actions, _, _ = random_batch(config)
    with torch.no_grad():
        a = model(images, states, actions, z_source="given", z=torch.zeros(B, N, 4))
        b = model(images, states, actions, z_source="given", z=torch.full((B, N, 4), 2.0))
    assert (a.images - b.images).abs().max() > 1e-4
    assert (a.states - b.states).abs().max() > 1e-4


def test_dropout_masks_vary_in_train_mode_and_eval_is_deterministic():
    config = tiny()
    model = make_model()
    images, states, actions, _, _ = random_batch(config)
    z = torch.randn(B, N, 4)
    with torch.no_grad():
        a = model(images, states, actions, z_source="given", z=z)
        b = model(images, states, actions, z_source="given", z=z)
        assert (a.images - b.images).abs().max() > 1e-4
        assert (a.states - b.states).abs().max() > 1e-4
        model.eval()
        c = model(images, states, actions, z_source="given", z=z)
        d = model(images, states, actions, z_source="given", z=z)
    assert torch.equal(c.images, d.images) and torch.equal(c.states, d.states)


def test_the_action_changes_the_prediction():
    config = tiny()
    model = make_model().eval()
    images, states, actions, _, _ = random_batch(config)
    z = torch.randn(B, N, 4)
    with torch.no_grad():
        a = model(images, states, actions, z_source="given", z=z)
        b = model(images, states, actions + 1.0, z_source="given", z=z)
    assert (a.images - b.images).abs().max() > 1e-4
    assert (a.states - b.states).abs().max() > 1e-4


def test_unroll_feeds_its_own_predictions_back():
    """Two steps at once == one step, then one step from the window shifted by the first prediction."""
    config = tiny()
    model = make_model().eval()
    images, states, actions, _, _ = random_batch(config)
    z = torch.randn(B, 2, 4)
    with torch.no_grad():
        both = model(images, states, actions, z_source="given", z=z)
        first = model(images, states, actions[:, :1], z_source="given", z=z[:, :1])
        window_images = torch.cat([images[:, 1:], first.images], 1)
        window_states = torch.cat([states[:, 1:], first.states], 1)
        second = model(window_images, window_states, actions[:, 1:], z_source="given", z=z[:, 1:])
    torch.testing.assert_close(both.images[:, :1], first.images)
    torch.testing.assert_close(both.images[:, 1:], second.images)
    torch.testing.assert_close(both.states[:, 1:], second.states)


# ---------------------------------------------------------------------------- reproducibility and checkpoints
def test_same_seed_same_parameters_and_output():
    config = tiny()
    images, states, actions, target_images, target_states = random_batch(config)
    outputs = []
    for _ in range(2):
        model = make_model(seed=7)
        torch.manual_seed(3)
        outputs.append((model.state_dict(), model(images, states, actions, target_images, target_states)))
    (sd_a, p_a), (sd_b, p_b) = outputs
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    for field in ("images", "states", "kl", "z"):
        assert torch.equal(getattr(p_a, field), getattr(p_b, field))
    other = make_model(seed=8)
    assert not torch.equal(other.state_dict()["condition_embed.0.weight"], sd_a["condition_embed.0.weight"])


def test_checkpoint_round_trip_with_weights_only():
    config = tiny(ego_kinematics=True)
    model = make_model(ego_kinematics=True).eval()
    images, states, actions, _, _ = random_batch(config)
    states = states.abs() + 1.0
    normaliser = Normaliser.from_data(torch.randn(100, 4) * 3 + 10, torch.randn(100, 2))
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "config": config.to_json(), "stats": normaliser.state_dict()}, buf)
    buf.seek(0)
    checkpoint = torch.load(buf, weights_only=True)
    loaded_config = ModelConfig.from_json(checkpoint["config"])
    assert loaded_config == config
    fresh = ForwardModel(loaded_config).eval()
    fresh.load_state_dict(checkpoint["model"])
    stats = Normaliser.from_state_dict(checkpoint["stats"])
    z = torch.randn(B, N, 4)
    with torch.no_grad():
        a = model(images, states, actions, z_source="given", z=z, stats=normaliser)
        b = fresh(images, states, actions, z_source="given", z=z, stats=stats)
    assert torch.equal(a.images, b.images) and torch.equal(a.states, b.states)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_like_on_cpu():
    """Same weights, inputs and z on CUDA and CPU give the same prediction; stats may stay on the CPU."""
    config = tiny(ego_kinematics=True)
    model = make_model(ego_kinematics=True).eval()
    images, states, actions, _, _ = random_batch(config)
    stats = Normaliser.identity()
    z = torch.randn(B, N, 4)
    with torch.no_grad():
        cpu = model(images, states.abs() + 1, actions, z_source="given", z=z, stats=stats)
        model.cuda()
        gpu = model(images.cuda(), states.cuda().abs() + 1, actions.cuda(), z_source="given", z=z.cuda(), stats=stats)
        prior = model(images.cuda(), states.cuda().abs() + 1, actions.cuda(), z_source="prior", stats=stats)
    assert gpu.images.is_cuda and gpu.kl.is_cuda and prior.z.is_cuda
    torch.testing.assert_close(gpu.images.cpu(), cpu.images, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gpu.states.cpu(), cpu.states, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------- ego kinematics
def test_kinematic_step_matches_the_simulator():
    g = torch.Generator().manual_seed(0)
    angle = torch.rand(16, generator=g, dtype=torch.float64) - 0.5
    speed = torch.rand(16, generator=g, dtype=torch.float64) * 30
    position = torch.randn(16, 2, generator=g, dtype=torch.float64) * 50
    action = torch.randn(16, 2, generator=g, dtype=torch.float64) * torch.tensor([2.0, 0.05], dtype=torch.float64)
    ego = EgoState.from_angle(position, angle, speed)
    expected = simulator_step(ego, action, 0.1)
    ours = kinematic_step(torch.cat([position, ego.velocity], -1), action, 0.1)
    torch.testing.assert_close(ours[:, :2], expected.position)
    torch.testing.assert_close(ours[:, 2:], expected.velocity)


def test_kinematic_step_from_standstill_pulls_away_along_the_road():
    states = torch.zeros(1, 4, requires_grad=True)
    nxt = kinematic_step(states, torch.tensor([[2.0, 0.1]]), 0.1)
    torch.testing.assert_close(nxt.detach(), torch.tensor([[0.0, 0.0, 0.2, 0.0]]))
    nxt.sum().backward()
    assert torch.isfinite(states.grad).all()


def test_kinematic_rollout_equals_the_stepwise_loop_with_stops_and_restarts():
    """All H steps at once equal H calls of kinematic_step, values and gradients, including cars that
    start stopped, brake to a stop, and pull away again (the heading restarts along +x)."""
    g = torch.Generator().manual_seed(0)
    B, H = 32, 30
    states = torch.randn(B, 4, generator=g, dtype=torch.float64) * torch.tensor([10.0, 2, 5, 0.5], dtype=torch.float64)
    states[:4, 2:] = 0                                                      # stopped at the start
    actions = torch.randn(B, H, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.02], dtype=torch.float64)
    actions[4:8, :, 0] = -8.0                                               # brake to a stop and stay
    actions[8:12, :10, 0], actions[8:12, 10:, 0] = -8.0, 3.0               # stop, then pull away
    weights = torch.randn(B, H, 4, generator=g, dtype=torch.float64)

    def loop(a):
        state, out = states, []
        for t in range(H):
            state = kinematic_step(state, a[:, t], 0.1)
            out.append(state)
        return torch.stack(out, 1)

    a_loop, a_all = actions.clone().requires_grad_(True), actions.clone().requires_grad_(True)
    expected, got = loop(a_loop), kinematic_rollout(states, a_all, 0.1)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    assert (expected[4:12, :, 2:].norm(dim=-1) == 0).any()                  # the stops did happen
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    torch.testing.assert_close(a_all.grad, a_loop.grad, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="actions of shape"):
        kinematic_rollout(states, actions[0], 0.1)


def test_ego_kinematics_predicts_the_exact_kinematic_state():
    config = tiny(ego_kinematics=True)
    model = make_model(ego_kinematics=True)
    stats = Normaliser(torch.tensor([100.0, 3.0, 20.0, 0.0]), torch.tensor([50.0, 2.0, 5.0, 0.5]),
                       torch.tensor([0.1, 0.0]), torch.tensor([1.5, 0.02]))
    g = torch.Generator().manual_seed(1)
    raw_states = torch.cat([torch.randn(B, 4, 2, generator=g) * 10 + 100,
                            torch.rand(B, 4, 1, generator=g) * 10 + 15, torch.randn(B, 4, 1, generator=g)], -1)
    raw_actions = torch.randn(B, 3, 2, generator=g) * torch.tensor([1.5, 0.02])
    images = torch.rand(B, 4, 3, 117, 24, generator=g)
    p = model(images, stats.normalise_states(raw_states), stats.normalise_actions(raw_actions), z_source="prior",
              stats=stats)
    state = raw_states[:, -1]
    for t in range(3):
        state = kinematic_step(state, raw_actions[:, t], config.dt)
        torch.testing.assert_close(stats.denormalise_states(p.states[:, t]), state, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="stats"):
        model(images, stats.normalise_states(raw_states), raw_actions, z_source="prior")


# ---------------------------------------------------------------------------- learning
def structured_windows(n=4, T=4, N=3, H=117, W=24, seed=0):
    """A bright 8 x 3 rectangle (vehicles channel) whose velocity the action changes, over a
    static road (lanes, off-road); states = its normalised (row, col,
    vrow, vcol). Returns (images, states, actions, target_images, target_states)."""
    g = torch.Generator().manual_seed(seed)
    steps = T + N
    images = torch.zeros(n, steps, 3, H, W)
    images[:, :, 0, :, [5, 11, 17]] = 1.0
    images[:, :, 2, :, :2] = 1.0
    images[:, :, 2, :, -2:] = 1.0
    actions = torch.randn(n, steps, 2, generator=g)
    states = torch.zeros(n, steps, 4)
    position = torch.stack([torch.randint(20, 90, (n,), generator=g), torch.randint(4, 18, (n,), generator=g)], -1)
    velocity = torch.zeros(n, 2)
    high = torch.tensor([H - 8.0, W - 3.0])
    for t in range(steps):
        states[:, t] = torch.cat([position, velocity], -1)
        for i in range(n):
            r, c = int(position[i, 0].round()), int(position[i, 1].round())
            images[i, t, 1, r:r + 8, c:c + 3] = 1.0
        velocity = velocity + torch.stack([3 * actions[:, t, 0], actions[:, t, 1]], -1).round()
        position = torch.minimum(torch.clamp(position + velocity, min=0.0), high)
    states = Normaliser.from_data(states, actions).normalise_states(states)
    return images[:, :T], states[:, :T], actions[:, T - 1:T - 1 + N], images[:, T:], states[:, T:]


def test_overfits_a_handful_of_windows():
    """80 Adam steps on 4 windows (about 5 s on one CPU thread) cut the training loss >= 10x.

    Dropout is off here: its noise sets a floor an overfitting test should not measure (with
    p = 0.1 the same run reaches only about 8x). z-dropout stays at the config's 0.5."""
    images, states, actions, target_images, target_states = structured_windows()
    model = make_model(dropout=0.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        p = model(images, states, actions, target_images, target_states)
        loss = (((p.images - target_images) ** 2).mean() + ((p.states - target_states) ** 2).mean()
                + 1e-6 * p.kl.mean())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert last < first / 10, (first, last)


# ---------------------------------------------------------------------------- one step, policy unroll
@pytest.mark.parametrize("latent_dim", [0, 4])
def test_forward_is_a_loop_over_step(latent_dim):
    config = tiny(latent_dim=latent_dim)
    model = make_model(latent_dim=latent_dim).eval()
    images, states, actions, _, _ = random_batch(config, n=3)
    z = torch.randn(B, 3, latent_dim)
    with torch.no_grad():
        whole = model(images, states, actions, z_source="given", z=z)
        window_i, window_s = images, states
        for t in range(3):
            out = model.step(window_i, window_s, actions[:, t], z_source="given", z=z[:, t])
            torch.testing.assert_close(out.image, whole.images[:, t])
            torch.testing.assert_close(out.state, whole.states[:, t])
            window_i, window_s = slide(window_i, out.image), slide(window_s, out.state)
    with pytest.raises(ValueError, match="action of shape"):
        model.step(images, states, actions)
    if latent_dim:
        with pytest.raises(ValueError, match="needs the target"):
            model.step(images, states, actions[:, 0], z_source="posterior")


def test_policy_unroll_acts_on_predicted_windows_and_passes_gradients():
    config = tiny(latent_dim=4)
    model = make_model(latent_dim=4).eval()
    for p in model.parameters():
        p.requires_grad_(False)                        # frozen, as when a policy is trained through it
    images, states, _, _, _ = random_batch(config)
    policy = torch.nn.Linear(config.context * config.state_dim, config.action_dim)
    seen = []

    def act(window_images, window_states):
        seen.append((window_images.detach().clone(), window_states.detach().clone()))
        return policy(window_states.flatten(1))

    z = torch.randn(B, 3, 4)
    pred, actions = unroll_policy(model, images, states, act, 3, z_source="given", z=z)
    check_shapes(pred, config, n=3)
    assert actions.shape == (B, 3, config.action_dim) and len(seen) == 3
    torch.testing.assert_close(seen[0][0], images)
    torch.testing.assert_close(seen[1][0][:, -1], pred.images[:, 0].detach())   # the policy saw its own future
    torch.testing.assert_close(seen[2][1][:, -1], pred.states[:, 1].detach())
    # The same actions through forward give the same prediction.
    with torch.no_grad():
        again = model(images, states, actions, z_source="given", z=z)
    torch.testing.assert_close(again.images, pred.images.detach())
    # Gradients reach the policy through the model (and nothing of the frozen model).
    pred.images.sum().backward()
    assert policy.weight.grad is not None and float(policy.weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="no true future"):
        unroll_policy(model, images, states, act, 1, z_source="posterior")


# ---------------------------------------------------------------------------- the kinematic (fixed-frame) variant
@pytest.mark.parametrize("conditioning", ["state", "none"])
def test_kinematic_variant_copies_static_channels_and_moves_the_ego_exactly(conditioning):
    config = tiny(ego_model="kinematic", ego_kinematics=True, ego_conditioning=conditioning, static_channels=(0, 2))
    model = make_model(ego_model="kinematic", ego_kinematics=True, ego_conditioning=conditioning,
                       static_channels=(0, 2)).eval()
    images, states, actions, _, _ = random_batch(config)
    stats = Normaliser.identity()
    states[..., 2:] = torch.tensor([8.0, 0.0])                      # moving along +x at 8 m/s
    actions = actions.clone().requires_grad_(True)
    with torch.no_grad():
        pred = model(images, states, actions.detach(), z_source="prior", stats=stats)
    # lanes and off-road are the newest context frame's, at every step
    torch.testing.assert_close(pred.images[:, :, [0, 2]], images[:, -1:, [0, 2]].expand(-1, N, -1, -1, -1))
    assert not torch.equal(pred.images[:, :, 1], images[:, -1:, 1].expand(-1, N, -1, -1))
    torch.testing.assert_close(pred.states[:, 0], kinematic_step(states[:, -1], actions[:, 0].detach(), config.dt))
    # the traffic reacts to the ego's motion only when conditioned on it
    z = torch.randn(B, N, config.latent_dim)
    out = model(images, states, actions, z_source="given", z=z, stats=stats)
    grad, = torch.autograd.grad(out.images[:, -1, 1].sum(), actions, allow_unused=True)
    if conditioning == "none":
        assert grad is None or float(grad.abs().sum()) == 0
        other = model(images, states, -actions.detach(), z_source="given", z=z, stats=stats)
        torch.testing.assert_close(other.images, out.images.detach())          # the same traffic for any plan
    else:
        assert float(grad.abs().sum()) > 0
    assert "condition_embed.0.weight" in model.state_dict() or conditioning == "none"


def test_kinematic_variant_config_is_checked():
    with pytest.raises(ValueError, match="ego_kinematics must be True"):
        ModelConfig(ego_model="kinematic", ego_kinematics=False)
    with pytest.raises(ValueError, match="static_channels"):
        ModelConfig(static_channels=(0, 1, 2))
    with pytest.raises(ValueError, match="ego_conditioning"):
        ModelConfig(ego_model="kinematic", ego_conditioning="action")
    c = ModelConfig(ego_model="kinematic", static_channels=(2, 0))
    assert c.static_channels == (0, 2) and c.dynamic_channels == (1,) and ModelConfig.from_json(c.to_json()) == c
