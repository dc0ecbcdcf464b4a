r"""Moment matching of latent distributions (the paper's semantic term "Sem", docs/method.md §5.2).

For a batch :math:`z \in \mathbb{R}^{B \times p}` the matched statistics are the mean
:math:`\mu`, the covariance :math:`\Sigma = (z-\mu)^\top (z-\mu) / \max(B-1, 1)` and the
per-dimension skewness :math:`\gamma_1 = \overline{(z-\mu)^3} / \max(\overline{(z-\mu)^2}, 10^{-6})^{3/2}`.
The loss between two modalities is :math:`\mathrm{MSE}(\mu_i,\mu_j) + \mathrm{MSE}(\Sigma_i,\Sigma_j)
+ \mathrm{MSE}(\gamma_{1,i},\gamma_{1,j})`, each MSE the mean of squared differences over elements.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

__all__ = ["BatchMoments", "batch_moments", "moment_distance"]


class BatchMoments(NamedTuple):
    mean: Tensor
    """``[..., p]``"""
    cov: Tensor
    """``[..., p, p]``"""
    skew: Tensor
    """``[..., p]``"""


def batch_moments(z: Tensor) -> BatchMoments:
    """Mean, covariance and skewness of ``z`` ``[..., B, p]`` over its batch dimension."""
    batch = z.shape[-2]
    mean = z.mean(-2)
    centred = z - mean.unsqueeze(-2)
    cov = centred.transpose(-1, -2) @ centred / max(batch - 1, 1)
    var = centred.square().mean(-2).clamp_min(1e-6)
    skew = centred.pow(3).mean(-2) / var.pow(1.5)
    return BatchMoments(mean, cov, skew)


def moment_distance(a: BatchMoments, b: BatchMoments) -> Tensor:
    """Sum of the mean-squared differences of the three moments (broadcast over leading dims)."""
    return (
        (a.mean - b.mean).square().mean(-1)
        + (a.cov - b.cov).square().mean((-1, -2))
        + (a.skew - b.skew).square().mean(-1)
    )
