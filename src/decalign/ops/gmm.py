r"""Differentiable diagonal-covariance Gaussian mixtures fitted by EM (DecAlign's prototypes).

DecAlign summarises each modality's batch of pooled unique features :math:`u_b \in \mathbb{R}^d`
by a K-component mixture :math:`\sum_k \pi_k \mathcal{N}(\mu_k, \operatorname{diag}\sigma^2_k)`
fitted inside the forward pass (paper Sec. 3.2, prototype construction), so gradients flow from
the transport loss through the EM iterations into the encoders. Everything here is batched over
leading dimensions, so the mixtures of all modalities are fitted by the same kernels at once.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DiagonalGMM",
    "diag_gaussian_log_prob",
    "fit_diag_gmm",
    "gmm_init_indices",
    "gmm_log_likelihood",
    "gmm_responsibilities",
]

_LOG_2PI = math.log(2.0 * math.pi)
_MIN_COUNT = 1e-6  # released clamp on the soft counts N_k


class DiagonalGMM(NamedTuple):
    """Mixture parameters; leading dimensions ``...`` batch independent mixtures."""

    weights: Tensor
    """``[..., K]`` mixing proportions :math:`\\pi_k`."""
    means: Tensor
    """``[..., K, d]`` component means :math:`\\mu_k`."""
    variances: Tensor
    """``[..., K, d]`` diagonal variances :math:`\\sigma^2_k`."""


def gmm_init_indices(batch: int, k: int) -> list[int]:
    """Sample indices whose rows initialise the K means.

    ``round(linspace(0, B - 1, K))`` (numpy, float64, round half to even), spread over the batch;
    when the batch has fewer rows than components they are repeated cyclically (``k mod B``).
    """
    if batch < 1 or k < 1:
        raise ValueError(f"need batch >= 1 and k >= 1, got batch={batch}, k={k}")
    if batch < k:
        return [i % batch for i in range(k)]
    return [int(i) for i in np.round(np.linspace(0, batch - 1, k))]


def diag_gaussian_log_prob(x: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    r""":math:`\log \mathcal{N}(x_b \mid \mu_k, \operatorname{diag}\sigma^2_k)` for every b, k.

    Args:
        x: ``[..., B, d]``; means, variances: ``[..., K, d]``.

    Returns:
        ``[..., B, K]``:
        :math:`-\tfrac12 \sum_d \big(\log 2\pi + \log\sigma^2_{kd} + (x_{bd}-\mu_{kd})^2/\sigma^2_{kd}\big)`.

    The squared difference is formed explicitly rather than by expanding
    :math:`x^2 - 2x\mu + \mu^2`: with variances near the floor (1e-4) the expansion cancels
    catastrophically in float32.
    """
    diff = x.unsqueeze(-2) - means.unsqueeze(-3)  # [..., B, K, d]
    maha = (diff.square() / variances.unsqueeze(-3)).sum(-1)
    log_det = variances.log().sum(-1).unsqueeze(-2)  # [..., 1, K]
    return -0.5 * (maha + log_det + x.shape[-1] * _LOG_2PI)


def gmm_responsibilities(x: Tensor, gmm: DiagonalGMM) -> Tensor:
    r"""Posterior :math:`\gamma_{bk} = \operatorname{softmax}_k(\log\pi_k + \log\mathcal{N}(x_b|\mu_k,\sigma^2_k))`,
    shape ``[..., B, K]``."""
    logits = gmm.weights.log().unsqueeze(-2) + diag_gaussian_log_prob(x, gmm.means, gmm.variances)
    return torch.softmax(logits, dim=-1)


def gmm_log_likelihood(x: Tensor, gmm: DiagonalGMM) -> Tensor:
    r"""Mean log-likelihood :math:`\frac1B \sum_b \log \sum_k \pi_k \mathcal{N}(x_b|\mu_k,\sigma^2_k)`,
    shape ``[...]``."""
    logits = gmm.weights.log().unsqueeze(-2) + diag_gaussian_log_prob(x, gmm.means, gmm.variances)
    return torch.logsumexp(logits, dim=-1).mean(-1)


def _m_step(x: Tensor, gamma: Tensor, var_floor: float) -> DiagonalGMM:
    counts = gamma.sum(-2).clamp_min(_MIN_COUNT)  # [..., K]
    weights = counts / x.shape[-2]
    gamma_t = gamma.transpose(-1, -2)  # [..., K, B]
    means = (gamma_t @ x) / counts.unsqueeze(-1)
    second = (gamma_t @ x.square()) / counts.unsqueeze(-1)
    variances = (second - means.square()).clamp_min(var_floor)
    return DiagonalGMM(weights, means, variances)


def fit_diag_gmm(
    x: Tensor, n_components: int, n_iters: int, var_floor: float = 1e-4, init: DiagonalGMM | None = None
) -> tuple[DiagonalGMM, Tensor]:
    r"""Fit a diagonal Gaussian mixture to each batch in ``x`` by ``n_iters`` EM steps.

    Initialisation (released behaviour, unless ``init`` is given): means are the rows at
    :func:`gmm_init_indices`, every component's variance is the biased per-dimension batch variance
    clamped to ``>= var_floor``, weights are :math:`1/K`. Each iteration is

    .. math::
        \gamma_{bk} \propto \pi_k \mathcal{N}(x_b|\mu_k,\sigma_k^2),\quad
        N_k = \max(\textstyle\sum_b \gamma_{bk}, 10^{-6}),\quad \pi_k = N_k / B,\\
        \mu_k = \textstyle\sum_b \gamma_{bk} x_b / N_k,\quad
        \sigma^2_k = \max\big(\textstyle\sum_b \gamma_{bk} x_b^2 / N_k - \mu_k^2,\ \text{var\_floor}\big),

    and the returned responsibilities are the posterior under the fitted parameters. Every
    operation is differentiable, so gradients reach ``x`` through all iterations.

    Args:
        x: ``[..., B, d]`` samples (leading dimensions: independent mixtures, e.g. modalities).
        n_components: K.
        n_iters: EM iterations (0 returns the initialisation).
        var_floor: lower bound on every variance.
        init: optional starting parameters (tests use it to compare with scikit-learn).

    Returns:
        ``(gmm, gamma)`` with ``gamma`` of shape ``[..., B, K]``.
    """
    if x.dim() < 2:
        raise ValueError(f"x must be [..., B, d], found shape {tuple(x.shape)}")
    if init is None:
        idx = torch.tensor(gmm_init_indices(x.shape[-2], n_components), device=x.device)
        means = x.index_select(-2, idx)
        var = x.var(dim=-2, unbiased=False, keepdim=True).clamp_min(var_floor)
        variances = var.expand_as(means)
        weights = torch.full(means.shape[:-1], 1.0 / n_components, dtype=x.dtype, device=x.device)
        gmm = DiagonalGMM(weights, means, variances)
    else:
        gmm = init
    for _ in range(n_iters):
        gmm = _m_step(x, gmm_responsibilities(x, gmm), var_floor)
    return gmm, gmm_responsibilities(x, gmm)
