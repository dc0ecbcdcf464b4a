"""Gaussian W2^2 prototype costs: closed forms and the pairwise-sum structure of the joint cost."""

from __future__ import annotations

import itertools

import pytest
import torch

from decalign.ops.prototype_cost import gaussian_w2_cost, joint_pairwise_cost

F64 = torch.float64


def random_prototypes(seed, n_mod, k, dim):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_mod, k, dim, generator=g, dtype=F64)
    variances = 0.25 + torch.rand(n_mod, k, dim, generator=g, dtype=F64)  # sigma >= 0.5
    return means, variances


def test_one_dimensional_gaussians_closed_form():
    # W2^2(N(mu1, s1^2), N(mu2, s2^2)) = (mu1 - mu2)^2 + (s1 - s2)^2
    mu_i = torch.tensor([[0.0], [1.5], [-2.0]], dtype=F64)
    s_i = torch.tensor([[1.0], [0.5], [2.0]], dtype=F64)
    mu_j = torch.tensor([[0.3], [-1.0]], dtype=F64)
    s_j = torch.tensor([[0.7], [3.0]], dtype=F64)
    cost = gaussian_w2_cost(mu_i, s_i.square(), mu_j, s_j.square())
    expected = (mu_i - mu_j.T).square() + (s_i - s_j.T).square()
    # sqrt(s1^2 s2^2 + 1e-8) - s1 s2 <= 1e-8 / (2 s1 s2): a shift of at most 1e-8 / (s1 s2) <= 3e-8
    torch.testing.assert_close(cost, expected, rtol=0, atol=3e-8)
    assert float((cost - expected).max()) <= 0.0  # the 1e-8 only ever lowers the cost


def test_identical_gaussians_cost_only_the_regulariser():
    means, variances = random_prototypes(0, 1, 4, 6)
    cost = gaussian_w2_cost(means[0], variances[0], means[0], variances[0])
    diag = cost.diagonal()
    v = variances[0]
    expected = (2 * v - 2 * torch.sqrt(v * v + 1e-8)).mean(-1)
    torch.testing.assert_close(diag, expected, rtol=0, atol=1e-15)
    assert float(diag.abs().max()) < 1e-7


def test_sum_is_sum_of_one_dimensional_costs_and_mean_is_sum_over_d():
    means, variances = random_prototypes(1, 2, 3, 5)
    total = gaussian_w2_cost(means[0], variances[0], means[1], variances[1], reduction="sum")
    mean = gaussian_w2_cost(means[0], variances[0], means[1], variances[1], reduction="mean")
    per_dim = sum(
        gaussian_w2_cost(means[0][:, [d]], variances[0][:, [d]], means[1][:, [d]], variances[1][:, [d]])
        for d in range(5)
    )
    torch.testing.assert_close(total, per_dim, rtol=1e-14, atol=0)
    torch.testing.assert_close(mean, total / 5, rtol=1e-14, atol=0)
    closed = (
        (means[0].unsqueeze(1) - means[1].unsqueeze(0)).square()
        + (variances[0].sqrt().unsqueeze(1) - variances[1].sqrt().unsqueeze(0)).square()
    ).sum(-1)
    torch.testing.assert_close(total, closed, rtol=0, atol=5 * 4e-8)


def test_symmetry_and_batching():
    means, variances = random_prototypes(2, 3, 4, 2)
    c01 = gaussian_w2_cost(means[0], variances[0], means[1], variances[1])
    c10 = gaussian_w2_cost(means[1], variances[1], means[0], variances[0])
    torch.testing.assert_close(c01, c10.T, rtol=0, atol=0)
    batched = gaussian_w2_cost(means[:2], variances[:2], means[1:], variances[1:])
    assert batched.shape == (2, 4, 4)
    torch.testing.assert_close(batched[0], c01, rtol=0, atol=0)


def test_reduction_error():
    means, variances = random_prototypes(0, 2, 2, 2)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        gaussian_w2_cost(means[0], variances[0], means[1], variances[1], reduction="max")


@pytest.mark.parametrize("n_mod", [2, 3, 4])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_joint_cost_is_sum_of_pairwise(n_mod, reduction):
    k = 3
    means, variances = random_prototypes(n_mod, n_mod, k, 4)
    joint = joint_pairwise_cost(means, variances, reduction)
    assert joint.shape == (k,) * n_mod
    pair = {
        (i, j): gaussian_w2_cost(means[i], variances[i], means[j], variances[j], reduction)
        for i, j in itertools.combinations(range(n_mod), 2)
    }
    for index in itertools.product(range(k), repeat=n_mod):
        expected = sum(c[index[i], index[j]] for (i, j), c in pair.items())
        assert float(joint[index]) == pytest.approx(float(expected), rel=1e-14, abs=1e-15)


def test_joint_cost_three_modalities_is_la_plus_lv_plus_av():
    means, variances = random_prototypes(9, 3, 7, 8)
    c = [[gaussian_w2_cost(means[i], variances[i], means[j], variances[j]) for j in range(3)] for i in range(3)]
    expected = c[0][1][:, :, None] + c[0][2][:, None, :] + c[1][2][None, :, :]
    torch.testing.assert_close(joint_pairwise_cost(means, variances), expected, rtol=1e-14, atol=0)


def test_joint_cost_needs_two_modalities_and_is_differentiable():
    means, variances = random_prototypes(0, 1, 3, 2)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        joint_pairwise_cost(means, variances)
    means, variances = random_prototypes(0, 3, 2, 2)
    means.requires_grad_(True)
    variances.requires_grad_(True)
    assert torch.autograd.gradcheck(joint_pairwise_cost, (means, variances))
