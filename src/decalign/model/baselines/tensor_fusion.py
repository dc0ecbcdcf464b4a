r"""Tensor Fusion Network (Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment
Analysis", EMNLP 2017).

::

    x_m --TemporalProjection--> mean_t --subnetwork_m (2-layer MLP)--> z_m        [B, h]
    Z = [z_1; 1] ⊗ [z_2; 1] ⊗ ... ⊗ [z_M; 1]                                      [B, (h+1)^M]
    Z --dropout--> Linear -> ReLU -> Linear -> ReLU --> r  [B, d]  --PredictionHead--> prediction

Appending the constant 1 before the outer product keeps every unimodal and every lower-order
interaction term inside the fused tensor, as in the paper. A missing or switched-off modality has
:math:`z_m = 0`, so its factor is :math:`[0, \dots, 0, 1]` and the tensor reduces exactly to the
fusion of the other modalities.

The fused tensor has :math:`(h+1)^M` entries, so ``h`` is kept small: the largest value with
:math:`(h+1)^M \le` :data:`TENSOR_BUDGET` and :math:`h \le d/4` (see :func:`tensor_hidden_size`;
e.g. ``h = 15`` for three modalities and ``d = 64``, a 4096-entry tensor). Deviations from the
original: every modality (text included) uses the same pooled MLP subnetwork, where the paper
used an LSTM for text; the subnetworks read DecAlign's temporal projection so that a preset sizes
this model like DecAlign.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from decalign.config import ModelConfig
from decalign.model.baselines.common import BaselineModel
from decalign.model.heads import PredictionHead
from decalign.model.output import ModelOutput

__all__ = ["TENSOR_BUDGET", "TensorFusion", "outer_fusion", "tensor_hidden_size"]

TENSOR_BUDGET = 4096
"""Largest number of entries of the fused tensor :math:`(h+1)^M`."""


def tensor_hidden_size(d_model: int, n_modalities: int, budget: int = TENSOR_BUDGET) -> int:
    """Subnetwork width ``h``: the largest ``h <= max(1, d/4)`` with ``(h+1)^M <= budget`` (>= 1)."""
    h = max(1, d_model // 4)
    while h > 1 and (h + 1) ** n_modalities > budget:
        h -= 1
    return h


def outer_fusion(vectors: list[Tensor]) -> Tensor:
    r"""Batched outer product :math:`[z_1; 1] \otimes \dots \otimes [z_M; 1]`, flattened.

    Args:
        vectors: M tensors ``[B, h_m]``.

    Returns:
        ``[B, prod_m (h_m + 1)]``.
    """
    fused: Tensor | None = None
    for z in vectors:
        z1 = torch.cat([z, z.new_ones(z.shape[0], 1)], dim=-1)
        fused = z1 if fused is None else torch.einsum("bi,bj->bij", fused, z1).flatten(1)
    if fused is None:
        raise ValueError("outer_fusion needs at least one modality")
    return fused


class TensorFusion(BaselineModel):
    """Pooled subnetworks, outer-product fusion, post-fusion MLP; representation ``[B, d]``."""

    def __init__(
        self,
        config: ModelConfig,
        input_dims: Mapping[str, int],
        num_outputs: int = 1,
        seq_lens: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(config, input_dims, num_outputs, seq_lens)
        d = config.d_model
        n = len(self.modalities)
        self.hidden_size = h = tensor_hidden_size(d, n)
        dropout = config.output_dropout
        self.projection = self.make_projection()
        self.subnetworks = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout), nn.Linear(h, h), nn.ReLU())
                for m in self.modalities
            }
        )
        self.post_fusion = nn.Sequential(
            nn.Dropout(dropout), nn.Linear((h + 1) ** n, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU()
        )
        self.head = PredictionHead(d, num_outputs, dropout)

    def forward(self, features: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> ModelOutput:
        """``features``: modality -> ``[B, T_m, D_m]`` (modalities may be left out)."""
        index, projected = self.project(self.projection, features)
        z = torch.stack([self.subnetworks[self.modalities[i]](p.mean(1)) for i, p in zip(index, projected)])
        z_all = self.scatter(z, index)  # inactive modalities: z_m = 0
        representation = self.post_fusion(outer_fusion(list(z_all)))
        return self.output(self.head(representation), representation)
