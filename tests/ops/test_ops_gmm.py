"""Differentiable diagonal GMM EM against scikit-learn, and the invariants of EM."""

from __future__ import annotations

import importlib.util
import itertools
import warnings

import numpy as np
import pytest
import torch

from decalign.ops.gmm import (
    DiagonalGMM,
    diag_gaussian_log_prob,
    fit_diag_gmm,
    gmm_init_indices,
    gmm_log_likelihood,
    gmm_responsibilities,
)

F64 = torch.float64


needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn's GaussianMixture is the reference here: pip install -e '.[test]'",
)


def blobs(seed, batch=60, dim=3, k=3, spread=4.0):
    """Well-separated clusters with unit-ish spread, so no variance comes near the 1e-4 floor."""
    g = torch.Generator().manual_seed(seed)
    centres = spread * torch.randn(k, dim, generator=g, dtype=F64)
    labels = torch.arange(batch) % k
    scales = 0.5 + torch.rand(k, dim, generator=g, dtype=F64)
    return centres[labels] + scales[labels] * torch.randn(batch, dim, generator=g, dtype=F64)


def start_params(x, k, seed):
    """A deliberately rough start (not the released one) so EM has work to do."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(k, generator=g, dtype=F64) + 0.5
    weights = weights / weights.sum()
    means = x[torch.randperm(x.shape[0], generator=g)[:k]] + 0.3 * torch.randn(k, x.shape[1], generator=g, dtype=F64)
    variances = x.var(0, unbiased=False).expand(k, -1) * (0.5 + torch.rand(k, x.shape[1], generator=g, dtype=F64))
    return DiagonalGMM(weights, means, variances.contiguous())


def sklearn_fit(x, init, n_iters):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        n_components=init.weights.shape[0], covariance_type="diag", max_iter=n_iters, tol=0.0,
        reg_covar=0.0, weights_init=init.weights.numpy(), means_init=init.means.numpy(),
        precisions_init=1.0 / init.variances.numpy(), init_params="random_from_data", random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: never "converged", by design
        gm.fit(x.numpy())
    return gm


@pytest.mark.parametrize(("seed", "k", "n_iters"), [(0, 3, 1), (1, 3, 5), (2, 4, 10), (3, 2, 25)])
@needs_sklearn
def test_em_equals_sklearn_from_same_start(seed, k, n_iters):
    x = blobs(seed, k=3)
    init = start_params(x, k, seed)
    gmm, gamma = fit_diag_gmm(x, k, n_iters, var_floor=1e-4, init=init)
    gm = sklearn_fit(x, init, n_iters)
    assert gm.n_iter_ == n_iters
    # the floor must not bite for this comparison to be exact
    assert float(gmm.variances.min()) > 1e-2
    # Same float64 arithmetic up to rounding: sklearn adds 10 * float64 eps (2e-15) to every soft
    # count and expands (x - mu)^2 in its log-density; observed differences are ~1e-14 relative.
    torch.testing.assert_close(gmm.weights, torch.from_numpy(gm.weights_), rtol=1e-12, atol=0)
    torch.testing.assert_close(gmm.means, torch.from_numpy(gm.means_), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gmm.variances, torch.from_numpy(gm.covariances_), rtol=1e-12, atol=0)
    torch.testing.assert_close(gamma, torch.from_numpy(gm.predict_proba(x.numpy())), rtol=0, atol=1e-12)
    # sklearn's lower bound per iteration is the mean log-likelihood of the parameters the
    # E-step used, i.e. after 0, 1, ..., n-1 M-steps
    expected = [gmm_log_likelihood(x, fit_diag_gmm(x, k, i, init=init)[0]) for i in range(n_iters)]
    np.testing.assert_allclose([float(v) for v in expected], gm.lower_bounds_, rtol=1e-11)


@needs_sklearn
def test_log_prob_equals_sklearn_and_scipy():
    from scipy.stats import multivariate_normal

    x = blobs(5)
    init = start_params(x, 3, 5)
    log_prob = diag_gaussian_log_prob(x, init.means, init.variances)
    for k in range(3):
        expected = multivariate_normal(init.means[k].numpy(), np.diag(init.variances[k].numpy())).logpdf(x.numpy())
        np.testing.assert_allclose(log_prob[:, k].numpy(), expected, rtol=1e-12)
    gm = sklearn_fit(x, init, 1)
    gm.weights_, gm.means_ = init.weights.numpy(), init.means.numpy()
    gm.precisions_cholesky_ = 1.0 / np.sqrt(init.variances.numpy())
    np.testing.assert_allclose(gmm_log_likelihood(x, init).item(), gm.score(x.numpy()), rtol=1e-12)
    np.testing.assert_allclose(gmm_responsibilities(x, init).numpy(), gm.predict_proba(x.numpy()), atol=1e-12)


@pytest.mark.parametrize(("seed", "floor"), [(0, 1e-4), (1, 1e-4), (2, 0.5)])
def test_em_never_decreases_log_likelihood(seed, floor):
    # floor = 0.5 bites on these data: the constrained M-step max(var, floor) still maximises
    # the expected complete log-likelihood per dimension, so EM stays monotone (generalised EM)
    x = blobs(seed, batch=50, dim=4, k=4, spread=2.0)
    gmm, _ = fit_diag_gmm(x, 5, 0, var_floor=floor)
    values = [float(gmm_log_likelihood(x, gmm))]
    bites = False
    for _ in range(30):
        gmm, _ = fit_diag_gmm(x, 5, 1, var_floor=floor, init=gmm)
        values.append(float(gmm_log_likelihood(x, gmm)))
        bites |= bool((gmm.variances == floor).any())
    assert bites == (floor == 0.5)
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values)), values
    assert values[-1] > values[0]


def test_variance_floor_respected():
    # duplicated rows: a component that captures one point would have variance 0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g, dtype=F64).repeat(2, 1) * torch.tensor([1.0, 1e-3, 1e-4], dtype=F64)
    for floor in (1e-4, 1e-2):
        gmm, gamma = fit_diag_gmm(x, 5, 10, var_floor=floor)
        assert float(gmm.variances.min()) >= floor
        assert bool((gmm.variances == floor).any())
        assert bool(torch.isfinite(gamma).all())
        torch.testing.assert_close(gamma.sum(-1), torch.ones(16, dtype=F64))
        assert float(gmm.weights.sum()) == pytest.approx(1.0, abs=1e-9)


def test_init_indices():
    assert gmm_init_indices(32, 7) == [int(i) for i in np.round(np.linspace(0, 31, 7))]
    assert gmm_init_indices(32, 7) == [0, 5, 10, 16, 21, 26, 31]
    assert gmm_init_indices(10, 4) == [0, 3, 6, 9]
    # numpy rounds half to even: linspace(0, 5, 3) = 0, 2.5, 5 -> 0, 2, 5
    assert gmm_init_indices(6, 3) == [0, 2, 5]
    assert gmm_init_indices(7, 7) == list(range(7))
    # B < K: the rows are tiled cyclically
    assert gmm_init_indices(3, 7) == [0, 1, 2, 0, 1, 2, 0]
    assert gmm_init_indices(1, 3) == [0, 0, 0]
    with pytest.raises(ValueError, match="batch >= 1"):
        gmm_init_indices(0, 3)


def test_released_initialisation():
    x = blobs(0, batch=20, dim=3)
    x[:, 2] = 0.5  # a constant dimension: its batch variance 0 is floored
    gmm, _ = fit_diag_gmm(x, 7, 0, var_floor=1e-4)
    idx = gmm_init_indices(20, 7)
    torch.testing.assert_close(gmm.means, x[idx])
    expected_var = torch.from_numpy(np.maximum(np.var(x.numpy(), axis=0), 1e-4)).expand(7, 3)
    torch.testing.assert_close(gmm.variances, expected_var)
    torch.testing.assert_close(gmm.weights, torch.full((7,), 1 / 7, dtype=F64))
    # a batch smaller than K tiles its rows
    small, _ = fit_diag_gmm(x[:3], 7, 0)
    torch.testing.assert_close(small.means, x[[0, 1, 2, 0, 1, 2, 0]])


def test_batched_over_modalities_equals_separate_fits():
    xs = torch.stack([blobs(s, batch=24, dim=5) for s in range(3)])  # [M, B, d]
    gmm, gamma = fit_diag_gmm(xs, 4, 5)
    assert gamma.shape == (3, 24, 4)
    assert gmm.means.shape == (3, 4, 5) and gmm.variances.shape == (3, 4, 5) and gmm.weights.shape == (3, 4)
    for m in range(3):
        single, gamma_m = fit_diag_gmm(xs[m], 4, 5)
        torch.testing.assert_close(gmm.means[m], single.means, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gmm.variances[m], single.variances, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gmm.weights[m], single.weights, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gamma[m], gamma_m, rtol=1e-12, atol=1e-12)


def test_gradients_flow_through_em():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, generator=g, dtype=F64).requires_grad_(True)

    def fitted(x):
        gmm, gamma = fit_diag_gmm(x, 2, 3, var_floor=1e-4)
        return gmm.weights, gmm.means, gmm.variances, gamma

    assert torch.autograd.gradcheck(fitted, (x,), eps=1e-6, atol=1e-6)
    # and the gradient really depends on the iterations (not only on the final E-step)
    grads = []
    for n_iters in (0, 3):
        xi = x.detach().clone().requires_grad_(True)
        gmm, _ = fit_diag_gmm(xi, 2, n_iters)
        (grad,) = torch.autograd.grad(gmm.means.square().sum(), xi)
        grads.append(grad)
    assert float((grads[0] - grads[1]).abs().max()) > 1e-3


def test_shape_error():
    with pytest.raises(ValueError, match=r"\[\.\.\., B, d\]"):
        fit_diag_gmm(torch.zeros(5), 2, 1)
