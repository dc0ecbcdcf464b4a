"""Batch moments against numpy / scipy, and the moment distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decalign.ops.moments import BatchMoments, batch_moments, moment_distance

F64 = torch.float64


def data(seed, batch=40, dim=5):
    g = torch.Generator().manual_seed(seed)
    # skewed marginals (exponential) so the skewness check is not trivially ~0
    return torch.randn(batch, dim, generator=g, dtype=F64).exp() + torch.arange(dim, dtype=F64)


@pytest.mark.parametrize("seed", [0, 1])
def test_against_numpy_and_scipy(seed):
    reason = "scipy is the reference for skewness: pip install -e '.[test]'"
    skew = pytest.importorskip("scipy.stats", reason=reason).skew
    z = data(seed)
    moments = batch_moments(z)
    np.testing.assert_allclose(moments.mean.numpy(), z.numpy().mean(0), rtol=1e-13)
    np.testing.assert_allclose(moments.cov.numpy(), np.cov(z.numpy(), rowvar=False), rtol=1e-12, atol=1e-14)
    # scipy's default skew is the biased m3 / m2^1.5, as specified
    np.testing.assert_allclose(moments.skew.numpy(), skew(z.numpy(), axis=0), rtol=1e-12)
    assert float(moments.skew.abs().min()) > 0.3


def test_batched_over_leading_dims():
    zs = torch.stack([data(s) for s in range(3)])
    batched = batch_moments(zs)
    for m in range(3):
        single = batch_moments(zs[m])
        for a, b in zip(batched, single):
            torch.testing.assert_close(a[m], b, rtol=1e-13, atol=1e-13)


def test_degenerate_batches():
    # B = 1: covariance divides by max(B - 1, 1) = 1 and is 0; the variance floor keeps skew finite
    one = batch_moments(torch.tensor([[1.0, 2.0]], dtype=F64))
    torch.testing.assert_close(one.cov, torch.zeros(2, 2, dtype=F64))
    torch.testing.assert_close(one.skew, torch.zeros(2, dtype=F64))
    # a constant dimension: variance 0 floored at 1e-6, skew 0 (no NaN)
    z = data(4)
    z[:, 1] = 3.0
    moments = batch_moments(z)
    assert bool(torch.isfinite(moments.skew).all())
    assert float(moments.skew[1]) == 0.0


def test_symmetric_data_has_zero_skew():
    g = torch.Generator().manual_seed(0)
    half = torch.randn(10, 3, generator=g, dtype=F64)
    z = torch.cat([half, -half]) + 2.0
    torch.testing.assert_close(batch_moments(z).skew, torch.zeros(3, dtype=F64), rtol=0, atol=1e-13)


def test_moment_distance():
    a, b = data(0), data(1)
    ma, mb = batch_moments(a), batch_moments(b)
    assert float(moment_distance(ma, batch_moments(a.clone()))) == 0.0
    # invariant to the order of samples in the batch
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    assert float(moment_distance(ma, batch_moments(a[perm]))) == pytest.approx(0.0, abs=1e-24)
    expected = (
        np.mean((ma.mean - mb.mean).numpy() ** 2)
        + np.mean((ma.cov - mb.cov).numpy() ** 2)
        + np.mean((ma.skew - mb.skew).numpy() ** 2)
    )
    assert float(moment_distance(ma, mb)) == pytest.approx(expected, rel=1e-13)
    assert float(moment_distance(ma, mb)) == pytest.approx(float(moment_distance(mb, ma)), rel=1e-15)
    # a pure mean shift moves only the mean term: covariance and skewness are shift-invariant
    shifted = batch_moments(a + 0.5)
    assert float(moment_distance(ma, shifted)) == pytest.approx(0.25, rel=1e-10)


def test_manual_moments_struct_broadcasts():
    zero = BatchMoments(torch.zeros(2, 3), torch.zeros(2, 3, 3), torch.zeros(2, 3))
    one = BatchMoments(torch.ones(3), torch.ones(3, 3), torch.ones(3))
    torch.testing.assert_close(moment_distance(zero, one), torch.full((2,), 3.0))


def test_gradient():
    z = data(5, batch=6, dim=2).requires_grad_(True)
    target = batch_moments(data(6, batch=6, dim=2))
    assert torch.autograd.gradcheck(lambda x: moment_distance(batch_moments(x), target), (z,))
