r"""Decoupling into modality-unique and modality-common features (docs/method.md §3).

Each modality m has its own *unique* encoder and all modalities share one *common* encoder, both
``Conv1d(d -> d, kernel 1, no bias)``: :math:`s_m = W^{u}_m p_m`, :math:`c_m = W^{c} p_m`. The
decoupling loss drives the two apart by penalising the squared cosine similarity of each sample's
flattened unique and common sequences (paper Eq. for :math:`\mathcal{L}_{dec}`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decalign.model.stacked import select

__all__ = ["Decoupler", "decoupling_loss"]


def decoupling_loss(unique: Tensor, common: Tensor) -> Tensor:
    r""":math:`\frac1B \sum_b \cos(\mathrm{vec}\, s_b, \mathrm{vec}\, c_b)^2` for ``[..., B, T, d]``
    inputs, averaged over any leading (modality) dimensions."""
    cos = F.cosine_similarity(unique.flatten(-2), common.flatten(-2), dim=-1, eps=1e-8)
    return cos.square().mean()


class Decoupler(nn.Module):
    """Unique encoders (one per modality, stacked ``[M, d, d]``) and the shared common encoder."""

    def __init__(self, n_modalities: int, d_model: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(d_model)  # Conv1d's default init for a kernel-1 conv
        self.unique_weight = nn.Parameter(torch.empty(n_modalities, d_model, d_model).uniform_(-bound, bound))
        self.common_weight = nn.Parameter(torch.empty(d_model, d_model).uniform_(-bound, bound))

    def forward(self, projected: Tensor, index: list[int] | None = None) -> tuple[Tensor, Tensor]:
        """Stacked input ``[M', B, T, d]`` -> ``(unique, common)`` of the same shape."""
        unique = torch.matmul(projected, select(self.unique_weight, index).transpose(-1, -2).unsqueeze(1))
        common = torch.matmul(projected, self.common_weight.T)
        return unique, common

    def one(self, projected: Tensor, m: int) -> tuple[Tensor, Tensor]:
        """Single modality ``m``: ``[B, T, d]`` -> ``(unique, common)``."""
        return F.linear(projected, self.unique_weight[m]), F.linear(projected, self.common_weight)
