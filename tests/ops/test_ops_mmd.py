"""Gaussian-kernel MMD: closed cases, invariants, the stacked form, and the released saturation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from decalign.ops.mmd import (
    gaussian_mmd,
    median_bandwidth,
    multi_gaussian_mmd,
    pairwise_sq_dists,
    stacked_pairwise_mmd,
)

F64 = torch.float64


def sample(seed, n=16, dim=3, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=F64).to(dtype)


def loop_mmd(x, y, bandwidth):
    """Biased MMD^2 written out pair by pair."""

    def k(a, b):
        return math.exp(-sum((float(p) - float(q)) ** 2 for p, q in zip(a, b)) / (2.0 * bandwidth))

    n, m = len(x), len(y)
    kxx = sum(k(a, b) for a in x for b in x) / n**2
    kyy = sum(k(a, b) for a in y for b in y) / m**2
    kxy = sum(k(a, b) for a in x for b in y) / (n * m)
    return kxx + kyy - 2.0 * kxy


@pytest.mark.parametrize("bandwidth", [0.5, 1.0, 4.0])
def test_matches_direct_loop(bandwidth):
    x, y = sample(0, n=7), sample(1, n=5) + 0.5
    assert float(gaussian_mmd(x, y, bandwidth)) == pytest.approx(loop_mmd(x, y, bandwidth), rel=1e-12, abs=1e-15)


def test_one_point_each_closed_form():
    # n = m = 1: MMD^2 = 2 - 2 exp(-||x - y||^2 / (2h))
    x = torch.tensor([[0.0, 0.0]], dtype=F64)
    y = torch.tensor([[3.0, 4.0]], dtype=F64)
    assert float(gaussian_mmd(x, y, 2.0)) == pytest.approx(2 - 2 * math.exp(-25 / 4), rel=1e-14)


def test_zero_for_identical_samples_and_permutations():
    x = sample(2)
    assert float(gaussian_mmd(x, x.clone(), 1.0)) == pytest.approx(0.0, abs=1e-15)
    shuffled = x[torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    assert float(gaussian_mmd(x, shuffled, 1.0)) == pytest.approx(0.0, abs=1e-14)
    z = torch.stack([x, x.clone(), x.flip(0)])
    torch.testing.assert_close(stacked_pairwise_mmd(z, [1.0]), torch.zeros(3, 3, dtype=F64), rtol=0, atol=1e-14)


def test_symmetric_and_non_negative():
    x, y = sample(3), sample(4) * 2
    for bw in (0.3, 1.0, 10.0):
        a, b = gaussian_mmd(x, y, bw), gaussian_mmd(y, x, bw)
        assert float(a) == pytest.approx(float(b), rel=1e-13)
        assert float(a) > 0


@pytest.mark.parametrize("use_median", [False, True])
def test_grows_with_mean_shift(use_median):
    x, y = sample(5, n=32, dim=2), sample(6, n=32, dim=2)
    direction = torch.tensor([1.0, 1.0], dtype=F64) / math.sqrt(2)
    values = []
    for shift in torch.linspace(0, 5, 11, dtype=F64):
        y_shifted = y + shift * direction
        if use_median:
            values.append(float(multi_gaussian_mmd(x, y_shifted, [1.0])))
        else:
            values.append(float(gaussian_mmd(x, y_shifted, 1.0)))
    assert all(b > a for a, b in itertools.pairwise(values)), values
    assert values[-1] > 10 * values[0]


def test_pairwise_sq_dists():
    x, y = sample(7, n=4), sample(8, n=5)
    expected = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    torch.testing.assert_close(pairwise_sq_dists(x, y), expected, rtol=1e-12, atol=1e-12)
    assert float(pairwise_sq_dists(x, x).min()) >= 0.0  # clamped against rounding


def test_median_bandwidth():
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=F64)  # off-diagonal squared distances 1, 9, 4
    d2 = pairwise_sq_dists(x, x)
    assert float(median_bandwidth(d2)) == pytest.approx(4.0 / 2)
    assert not median_bandwidth(d2.requires_grad_(True)).requires_grad
    assert float(median_bandwidth(torch.zeros(3, 3, dtype=F64))) == 1e-6
    with pytest.raises(ValueError, match="square"):
        median_bandwidth(torch.zeros(2, 3))


def test_shape_error():
    with pytest.raises(ValueError, match="same feature width"):
        gaussian_mmd(torch.zeros(3, 2), torch.zeros(3, 4))


@pytest.mark.parametrize("n_mod", [2, 3, 4])
def test_stacked_equals_pairwise(n_mod):
    z = torch.stack([sample(10 + m, n=9, dim=4) * (1 + 0.3 * m) + 0.2 * m for m in range(n_mod)])
    # fixed single bandwidth (released)
    stacked = stacked_pairwise_mmd(z, [1.0])
    # several fixed bandwidths: the kernel is their average
    multi = stacked_pairwise_mmd(z, [0.5, 2.0, 8.0])
    # relative to the median over all M * B points
    median = stacked_pairwise_mmd(z, [0.5, 1.0, 2.0], relative_to_median=True)
    flat = z.reshape(-1, 4)
    base = median_bandwidth(pairwise_sq_dists(flat, flat))
    for i in range(n_mod):
        for j in range(n_mod):
            x, y = z[i], z[j]
            assert float(stacked[i, j]) == pytest.approx(float(gaussian_mmd(x, y, 1.0)), abs=1e-13)
            expected_multi = multi_gaussian_mmd(x, y, [0.5, 2.0, 8.0], base=1.0)
            assert float(multi[i, j]) == pytest.approx(float(expected_multi), abs=1e-13)
            expected_median = multi_gaussian_mmd(x, y, [0.5, 1.0, 2.0], base=base)
            assert float(median[i, j]) == pytest.approx(float(expected_median), abs=1e-13)
    torch.testing.assert_close(stacked, stacked.T, rtol=0, atol=1e-15)
    assert float(stacked.diagonal().abs().max()) < 1e-14


def test_multi_default_base_is_pooled_median():
    x, y = sample(20), sample(21) + 1
    z = torch.cat([x, y])
    base = median_bandwidth(pairwise_sq_dists(z, z))
    torch.testing.assert_close(multi_gaussian_mmd(x, y, [0.5, 1.0]), multi_gaussian_mmd(x, y, [0.5, 1.0], base=base))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_released_bandwidth_saturates(dtype):
    """Known property of the release (docs/method.md §17, kept): with bandwidth h = 1 the
    kernel is exp(-||a - b||^2 / 2). For unit-variance 64-d features ||a - b||^2 is about 128, so
    every off-diagonal kernel value is about e^-64 ~ 1e-28 (at most ~1e-15 over a batch): the
    estimate is pinned at 2/n and its gradient w.r.t. the inputs is ~1e-18, i.e. no training
    signal. (Not an exact float underflow: e^-64 is representable even in float32, whose
    smallest normal is ~1e-38, so the gradient is negligible rather than exactly 0.) The
    median-heuristic bandwidth keeps the kernel informative: its gradient is ~3e-4 here, 13+
    orders of magnitude larger."""
    n = 32
    x = sample(30, n=n, dim=64, dtype=dtype).requires_grad_(True)
    y = sample(31, n=n, dim=64, dtype=dtype)
    off_diagonal = torch.exp(-pairwise_sq_dists(x, y).detach() / 2.0)
    assert float(off_diagonal.max()) < 1e-12
    released = gaussian_mmd(x, y, 1.0)
    assert float(released.detach()) == pytest.approx(2.0 / n, rel=1e-5)
    (grad,) = torch.autograd.grad(released, x)
    assert float(grad.abs().max()) < 1e-15
    stacked = stacked_pairwise_mmd(torch.stack([x, y]), [1.0])[0, 1]
    (grad_stacked,) = torch.autograd.grad(stacked, x)
    assert float(grad_stacked.abs().max()) < 1e-15
    informative = multi_gaussian_mmd(x, y, [1.0])
    (grad_median,) = torch.autograd.grad(informative, x)
    assert bool(torch.isfinite(grad_median).all())
    assert float(grad_median.abs().max()) > 1e-5
    assert float(grad_median.abs().max()) > 1e10 * float(grad.abs().max())
