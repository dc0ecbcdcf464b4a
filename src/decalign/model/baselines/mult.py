"""MulT-style baseline: DecAlign's architecture without decoupling and without alignment.

::

    x_m --TemporalProjection--> p_m --CrossModalTransformer (query p_m, context the other p_j)--> h_m
    [h_1 .. h_M] --PredictionHead--> prediction

DecAlign's fusion stack (docs/method.md §6) applied to the *projected* sequences instead of the
modality-unique ones, with no common branch, no decoupling loss and no prototype or distribution
alignment. It isolates what decoupling and alignment add on top of cross-modal attention (Tsai et
al., "Multimodal Transformer for Unaligned Multimodal Language Sequences", ACL 2019). Unlike the
original MulT there is one cross-modal transformer per target modality attending to the
concatenation of all other modalities (as in DecAlign), no separate self-attention stage and the
time-mean instead of the last step: the same fusion maths as DecAlign, so the comparison is fair.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from decalign.config import ModelConfig
from decalign.model.baselines.common import BaselineModel
from decalign.model.heads import PredictionHead
from decalign.model.output import ModelOutput
from decalign.model.transformer import CrossModalTransformer

__all__ = ["MulT", "fuse_sequences"]


def fuse_sequences(fusion: CrossModalTransformer, sequences: list[Tensor], index: list[int]) -> Tensor:
    """Run a :class:`CrossModalTransformer` on per-modality ``[B, T_m, d]`` sequences, stacked
    into one batched call when their lengths agree. Returns ``[M', B, d]``."""
    if len({s.shape[1] for s in sequences}) == 1:
        return fusion(torch.stack(sequences), index)
    return fusion(sequences, index)


class MulT(BaselineModel):
    """Projection + cross-modal transformer + concat head; representation ``[B, M d]``."""

    def __init__(
        self,
        config: ModelConfig,
        input_dims: Mapping[str, int],
        num_outputs: int = 1,
        seq_lens: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(config, input_dims, num_outputs, seq_lens)
        d = config.d_model
        self.projection = self.make_projection()
        self.fusion = CrossModalTransformer(self.modalities, d, config.fusion)
        self.head = PredictionHead(len(self.modalities) * d, num_outputs, config.output_dropout)

    def forward(self, features: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> ModelOutput:
        """``features``: modality -> ``[B, T_m, D_m]`` (modalities may be left out); ``lengths``
        is accepted for the shared contract and unused (pooling covers padding, as released)."""
        index, projected = self.project(self.projection, features)
        fused = fuse_sequences(self.fusion, projected, index)  # [M', B, d]
        representation = self.concat(self.scatter(fused, index))
        return self.output(self.head(representation), representation)
