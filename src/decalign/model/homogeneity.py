r"""Homogeneity alignment of the common features by distribution matching (docs/method.md §5).

Each modality's time-pooled common features pass through its own distribution encoder
(``Linear(d, d) -> ReLU -> Dropout -> Linear(d, pde_dim)``), and the encoded batches of every pair
of modalities are matched by their first three moments (:math:`\mathcal{L}_{sem}`) and by a
Gaussian-kernel MMD (:math:`\mathcal{L}_{MMD}`); :math:`\mathcal{L}_{homo}` is their sum, each
averaged over the pairs. The encoders feed only this loss (released behaviour), so it can be
lowered by collapsing them; the training history logs both terms so that shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch
from torch import Tensor, nn

from decalign.config import HomogeneityConfig
from decalign.model.kernels import dropout
from decalign.model.stacked import StackedLinear
from decalign.ops.mmd import stacked_pairwise_mmd
from decalign.ops.moments import batch_moments, moment_distance

__all__ = ["DistributionMatching", "HomogeneityOutput"]


@dataclass
class HomogeneityOutput:
    loss: Tensor
    moments: Tensor
    mmd: Tensor
    encoded: Tensor
    """``[M, B, pde_dim]`` encoded common features."""


class DistributionMatching(nn.Module):
    """Per-modality distribution encoders (stacked) and the homogeneity loss."""

    def __init__(self, n_modalities: int, d_model: int, dropout: float, config: HomogeneityConfig) -> None:
        super().__init__()
        self.config = config
        self.dropout = dropout
        self.hidden = StackedLinear(n_modalities, d_model, d_model, init="torch")
        self.out = StackedLinear(n_modalities, d_model, config.pde_dim, init="torch")

    def encode(self, common_pooled: Tensor, index: list[int] | None = None) -> Tensor:
        """``[M', B, d]`` -> ``[M', B, pde_dim]``."""
        h = dropout(torch.relu(self.hidden(common_pooled, index)), self.dropout, self.training)
        return self.out(h, index)

    def forward(self, common_pooled: Tensor, index: list[int] | None = None) -> HomogeneityOutput:
        cfg = self.config
        z = self.encode(common_pooled, index)
        n_mod = z.shape[0]
        pairs = list(combinations(range(n_mod), 2))
        left = [i for i, _ in pairs]
        right = [j for _, j in pairs]
        zero = z.new_zeros(())
        moments = zero
        if cfg.moments:
            mom = batch_moments(z)
            moments = moment_distance(
                type(mom)(*(t[left] for t in mom)), type(mom)(*(t[right] for t in mom))
            ).mean()
        mmd = zero
        if cfg.mmd:
            if cfg.mmd_kernel == "fixed":
                mmd_matrix = stacked_pairwise_mmd(z, [cfg.mmd_bandwidth])
            elif cfg.mmd_kernel == "median":
                mmd_matrix = stacked_pairwise_mmd(z, [1.0], relative_to_median=True)
            else:
                mmd_matrix = stacked_pairwise_mmd(z, list(cfg.mmd_bandwidths), relative_to_median=True)
            mmd = mmd_matrix[left, right].mean()
        return HomogeneityOutput(moments + mmd, moments, mmd, z)
