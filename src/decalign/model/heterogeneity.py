r"""Heterogeneity alignment of the unique features by prototype-guided OT (docs/method.md §4).

Per modality, a diagonal GMM fitted to the batch of pooled unique features gives K prototypes
:math:`(\mu_k, \sigma^2_k)` and soft assignments :math:`\gamma`. The prototype marginals
:math:`\nu_m = \mathrm{mean}_b \gamma_m` and the joint Gaussian W2 cost define an entropic
multi-marginal OT problem whose value is :math:`\mathcal{L}_{OT}`; the sample-to-prototype term

.. math::
    \mathcal{L}_{proto} = \operatorname*{mean}_{i \ne j} \frac1B \sum_b \sum_k \gamma_i[b,k]\,
        R\big((u_i[b] - \mu_{jk})^2\big)

pulls each sample towards the other modalities' prototypes. :math:`\mathcal{L}_{hete} =
\mathcal{L}_{OT} + \mathcal{L}_{proto}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from decalign.config import HeterogeneityConfig
from decalign.ops.gmm import DiagonalGMM, fit_diag_gmm
from decalign.ops.prototype_cost import joint_pairwise_cost
from decalign.ops.sinkhorn import entropic_ot

__all__ = ["HeterogeneityOutput", "PrototypeTransport", "prototype_local_loss"]


@dataclass
class HeterogeneityOutput:
    loss: Tensor
    ot: Tensor
    local: Tensor
    plan: Tensor
    """``[K, ..., K]`` transport plan between the modalities' prototypes (for plots)."""
    gmm: DiagonalGMM


def prototype_local_loss(
    unique: Tensor, gamma: Tensor, means: Tensor, variances: Tensor, reduction: str = "mean", normalize: bool = False
) -> Tensor:
    """:math:`\\mathcal{L}_{proto}` for ``unique`` ``[M, B, d]``, ``gamma`` ``[M, B, K]``,
    ``means``/``variances`` ``[M, K, d]``; mean over the M(M-1) ordered pairs of modalities."""
    n_mod, _, d = unique.shape
    if normalize:  # (u - mu)^2 / var: formed directly, var can sit at the 1e-4 floor
        diff = unique[:, None, :, None, :] - means[None, :, None, :, :]  # [i, j, B, K, d]
        dist = (diff.square() / variances[None, :, None, :, :]).sum(-1)
    else:  # ||u - mu||^2 = ||u||^2 - 2 u.mu + ||mu||^2, as matmuls (linear in B, no [.., B, K, d])
        u2 = unique.square().sum(-1)  # [M, B]
        mu2 = means.square().sum(-1)  # [M, K]
        cross = torch.einsum("ibd,jkd->ijbk", unique, means)
        dist = (u2[:, None, :, None] - 2.0 * cross + mu2[None, :, None, :]).clamp_min(0.0)
    if reduction == "mean":
        dist = dist / d
    per_pair = (gamma[:, None] * dist).sum(-1).mean(-1)  # [i, j]
    off_diagonal = ~torch.eye(n_mod, dtype=torch.bool, device=unique.device)
    return per_pair[off_diagonal].mean()


class PrototypeTransport(nn.Module):
    """:math:`\\mathcal{L}_{hete}` from the pooled unique features of all modalities (no parameters)."""

    def __init__(self, config: HeterogeneityConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, unique_pooled: Tensor) -> HeterogeneityOutput:
        """``unique_pooled``: ``[M, B, d]`` with M >= 2 modalities."""
        cfg = self.config
        gmm, gamma = fit_diag_gmm(unique_pooled, cfg.num_prototypes, cfg.em_iters, cfg.var_floor)
        nu = gamma.mean(1)
        nu = nu / nu.sum(-1, keepdim=True)
        zero = unique_pooled.new_zeros(())
        if cfg.prototype_ot:
            cost = joint_pairwise_cost(gmm.means, gmm.variances, cfg.cost_reduction)
            marginals = list(nu.unbind(0))
            ot, plan = entropic_ot(
                cost, marginals, cfg.ot_eps, cfg.ot_iters, method=cfg.ot_solver, gradient=cfg.ot_gradient
            )
        else:
            ot, plan = zero, unique_pooled.new_zeros([cfg.num_prototypes] * unique_pooled.shape[0])
        local = (
            prototype_local_loss(
                unique_pooled, gamma, gmm.means, gmm.variances, cfg.cost_reduction, cfg.local_normalize
            )
            if cfg.prototype_local
            else zero
        )
        return HeterogeneityOutput(ot + local, ot, local, plan, gmm)
