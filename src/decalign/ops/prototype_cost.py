r"""Transport costs between Gaussian prototypes of different modalities.

The cost of moving prototype p of modality i onto prototype q of modality j is the squared
2-Wasserstein distance between diagonal Gaussians (paper Eq. for the prototype cost;
``docs/method.md`` §4.3), reduced over dimensions by R (mean, as released, or sum):

.. math::
    C_{ij}[p, q] = R\big((\mu_{ip} - \mu_{jq})^2\big)
                 + R\big(\sigma^2_{ip} + \sigma^2_{jq} - 2\sqrt{\sigma^2_{ip}\sigma^2_{jq} + 10^{-8}}\big).

The second term is the diagonal Bures metric; the 1e-8 keeps the square root differentiable at 0.
For M modalities the joint cost of a tuple of prototypes is the sum over all pairs,
:math:`C[k_1, \dots, k_M] = \sum_{i<j} C_{ij}[k_i, k_j]` (for three modalities
:math:`C_{la} + C_{lv} + C_{av}`).
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

import torch
from torch import Tensor

__all__ = ["gaussian_w2_cost", "joint_pairwise_cost"]

Reduction = Literal["mean", "sum"]


def gaussian_w2_cost(
    means_i: Tensor, vars_i: Tensor, means_j: Tensor, vars_j: Tensor, reduction: Reduction = "mean"
) -> Tensor:
    """Pairwise diagonal-Gaussian W2^2 cost, ``[..., K_i, d]`` x ``[..., K_j, d]`` -> ``[..., K_i, K_j]``."""
    mean_term = (means_i.unsqueeze(-2) - means_j.unsqueeze(-3)).square()
    var_prod = vars_i.unsqueeze(-2) * vars_j.unsqueeze(-3)
    bures = vars_i.unsqueeze(-2) + vars_j.unsqueeze(-3) - 2.0 * torch.sqrt(var_prod + 1e-8)
    total = mean_term + bures
    if reduction == "mean":
        return total.mean(-1)
    if reduction == "sum":
        return total.sum(-1)
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def joint_pairwise_cost(means: Tensor, variances: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Joint M-way cost ``[K, ..., K]`` (M axes) from per-modality prototypes ``[M, K, d]``.

    All pairwise costs are computed in one batched call, then each is broadcast onto its two
    axes and summed.
    """
    n_mod = means.shape[0]
    if n_mod < 2:
        raise ValueError(f"need prototypes of at least 2 modalities, found {n_mod}")
    pairs = list(combinations(range(n_mod), 2))
    left = torch.tensor([i for i, _ in pairs], device=means.device)
    right = torch.tensor([j for _, j in pairs], device=means.device)
    pair_costs = gaussian_w2_cost(means[left], variances[left], means[right], variances[right], reduction)
    k = means.shape[1]
    joint = means.new_zeros([k] * n_mod)
    for (i, j), c in zip(pairs, pair_costs):
        shape = [1] * n_mod
        shape[i], shape[j] = k, k
        joint = joint + c.view(shape)
    return joint
