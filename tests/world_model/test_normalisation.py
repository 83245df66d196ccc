import io

import pytest
import torch

from ppuu.world_model.normalisation import STD_FLOOR, Normaliser


def sample_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(5, 7, 4, generator=g, dtype=torch.float64) * torch.tensor([100.0, 3.0, 10.0, 0.5],
                                                                                   dtype=torch.float64)
    states = states + torch.tensor([200.0, 5.0, 25.0, 0.0], dtype=torch.float64)
    actions = torch.randn(5, 7, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.01], dtype=torch.float64)
    return states, actions


def test_from_data_pools_leading_dims():
    states, actions = sample_data()
    n = Normaliser.from_data(states, actions)
    flat = states.reshape(-1, 4)
    torch.testing.assert_close(n.state_mean, flat.mean(0).float())
    torch.testing.assert_close(n.state_std, flat.std(0, correction=0).float())
    torch.testing.assert_close(n.action_mean, actions.reshape(-1, 2).mean(0).float())
    assert n.state_dim == 4 and n.action_dim == 2
    z = n.normalise_states(states.float())
    torch.testing.assert_close(z.reshape(-1, 4).mean(0), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.reshape(-1, 4).std(0, correction=0), torch.ones(4), atol=1e-4, rtol=0)


def test_constant_feature_std_is_floored_and_finite():
    states = torch.ones(10, 4)
    actions = torch.zeros(10, 2)
    n = Normaliser.from_data(states, actions)
    assert torch.all(n.state_std == STD_FLOOR) and torch.all(n.action_std == STD_FLOOR)
    assert torch.isfinite(n.normalise_states(states)).all()
    torch.testing.assert_close(n.normalise_states(states), torch.zeros(10, 4))


def test_non_finite_rows_are_ignored():
    states, actions = sample_data()
    with_nan = torch.cat([states.reshape(-1, 4), torch.tensor([[float("nan"), 1.0, 2.0, 3.0]], dtype=torch.float64)])
    a = Normaliser.from_data(with_nan, actions)
    b = Normaliser.from_data(states, actions)
    torch.testing.assert_close(a.state_mean, b.state_mean)
    with pytest.raises(ValueError, match="no finite rows"):
        Normaliser.from_data(torch.full((3, 4), float("nan")), actions)


def test_round_trip_and_dtype_device_follow_input():
    states, actions = sample_data()
    n = Normaliser.from_data(states, actions)
    z = n.normalise_states(states)
    assert z.dtype == torch.float64 and z.device == states.device
    torch.testing.assert_close(n.denormalise_states(z), states, rtol=1e-6, atol=1e-4)
    za = n.normalise_actions(actions)
    torch.testing.assert_close(n.denormalise_actions(za), actions, rtol=1e-6, atol=1e-7)
    # broadcasting over any leading shape
    assert n.normalise_actions(actions[0, 0]).shape == (2,)


def test_wrong_last_dimension_is_an_error():
    n = Normaliser.identity()
    with pytest.raises(ValueError, match="last dimension of 4"):
        n.normalise_states(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="last dimension of 2"):
        n.denormalise_actions(torch.zeros(3, 4))


def test_state_dict_loads_with_weights_only():
    states, actions = sample_data()
    n = Normaliser.from_data(states, actions)
    buf = io.BytesIO()
    torch.save({"stats": n.state_dict()}, buf)
    buf.seek(0)
    loaded = Normaliser.from_state_dict(torch.load(buf, weights_only=True)["stats"])
    for name in ("state_mean", "state_std", "action_mean", "action_std"):
        torch.testing.assert_close(getattr(loaded, name), getattr(n, name))


def test_from_state_dict_validates():
    n = Normaliser.identity()
    d = n.state_dict()
    del d["action_std"]
    with pytest.raises(KeyError, match="action_std"):
        Normaliser.from_state_dict(d)
    with pytest.raises(ValueError, match="same"):
        Normaliser(torch.zeros(4), torch.ones(3), torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="> 0"):
        Normaliser(torch.zeros(4), torch.zeros(4), torch.zeros(2), torch.ones(2))


def test_to_changes_dtype():
    m = Normaliser.identity().to(dtype=torch.float64)
    assert all(t.dtype == torch.float64 for t in (m.state_mean, m.state_std, m.action_mean, m.action_std))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_to_moves_every_tensor_to_cuda():
    n = Normaliser.identity().to("cuda")
    assert all(t.is_cuda for t in (n.state_mean, n.state_std, n.action_mean, n.action_std))
    assert n.normalise_states(torch.zeros(2, 4, device="cuda")).is_cuda


def test_to_returns_itself_or_one_kept_copy():
    """Hot paths call ``to`` per step: nothing moves where nothing needs to, and a move is made once."""
    n = Normaliser.from_data(torch.randn(50, 4), torch.randn(50, 2))
    assert n.to("cpu") is n and n.to(torch.device("cpu"), torch.float32) is n
    double = n.to(dtype=torch.float64)
    assert double is not n and n.to(dtype=torch.float64) is double           # kept, not made again
    assert double.state_std.dtype == torch.float64
    torch.testing.assert_close(double.state_std.float(), n.state_std)
