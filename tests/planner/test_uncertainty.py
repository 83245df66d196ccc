"""The uncertainty cost's variances across dropout copies and its standardised hinge."""

from __future__ import annotations

import pytest
import torch

from ppuu.planner.uncertainty import UncertaintyStats, copy_variance, variances


@pytest.mark.parametrize("shape", [(2, 5, 3, 7, 4), (10, 3, 6), (3,)])
def test_copy_variance_is_the_population_variance_with_its_gradient(shape):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + 1).requires_grad_(True)
    y = x.detach().clone().requires_grad_(True)
    ours, reference = copy_variance(x), y.var(dim=0, unbiased=False)
    torch.testing.assert_close(ours, reference)
    weights = torch.randn(reference.shape, generator=gen, dtype=torch.float64)
    (ours * weights).sum().backward()
    (reference * weights).sum().backward()
    torch.testing.assert_close(x.grad, y.grad)


def test_variances_of_identical_copies_are_zero_and_grow_with_their_spread():
    images, states, cost = torch.rand(1, 4, 3, 6, 5), torch.rand(1, 4, 4), torch.rand(1, 4)
    same = variances(images.expand(3, -1, -1, -1, -1), states.expand(3, -1, -1), cost.expand(3, -1))
    assert same.shape == (4, 3) and float(same.abs().max()) < 1e-12
    spread = torch.tensor([-1.0, 0.0, 1.0])
    wide = variances(images + spread.view(3, 1, 1, 1, 1), states + 2 * spread.view(3, 1, 1),
                     cost + 3 * spread.view(3, 1))
    torch.testing.assert_close(wide, torch.tensor([[2 / 3, 8 / 3, 6.0]]).expand(4, 3))
    with pytest.raises(ValueError, match="at least 2"):
        variances(images, states, cost)


def test_the_cost_is_a_hinge_on_standardised_variances():
    stats = UncertaintyStats(mean=torch.tensor([1.0, 0.0, 2.0]), std=torch.tensor([0.5, 0.0, 1.0]), hinge=0.5)
    assert float(stats.std[1]) > 0                       # a term with no spread gets a floor, not a division by 0
    at_mean = stats.cost(stats.mean)
    assert float(at_mean) == 0.0
    above = stats.cost(torch.tensor([2.0, 0.0, 2.0]))    # two standard deviations above on the first term
    assert float(above) == pytest.approx(2.0 - 0.5)
