"""Late fusion: independent per-modality encoders, time-pooled, concatenated, one head.

::

    x_m --TemporalProjection--> p_m --self-attention transformer_m--> mean_t --> h_m
    [h_1 .. h_M] --PredictionHead--> prediction

Each modality's encoder is DecAlign's transformer in self-attention mode (the ``cross_modal=False``
setting of :class:`CrossModalTransformer`, same depth, width and dropouts), so no information
crosses modalities before the head's single linear layer. Against :class:`MulT` it measures what
cross-modal attention adds; against DecAlign's "w/o cross-modal attention" ablation, what the
decoupled branches and alignment add to independent encoders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from torch import Tensor

from decalign.config import ModelConfig
from decalign.model.baselines.common import BaselineModel
from decalign.model.baselines.mult import fuse_sequences
from decalign.model.heads import PredictionHead
from decalign.model.output import ModelOutput
from decalign.model.transformer import CrossModalTransformer

__all__ = ["LateFusion"]


class LateFusion(BaselineModel):
    """Per-modality self-attention encoders + concat head; representation ``[B, M d]``."""

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
        self.encoders = CrossModalTransformer(
            self.modalities, d, dataclasses.replace(config.fusion, cross_modal=False)
        )
        self.head = PredictionHead(len(self.modalities) * d, num_outputs, config.output_dropout)

    def forward(self, features: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> ModelOutput:
        """``features``: modality -> ``[B, T_m, D_m]`` (modalities may be left out)."""
        index, projected = self.project(self.projection, features)
        encoded = fuse_sequences(self.encoders, projected, index)  # [M', B, d], no cross-talk
        representation = self.concat(self.scatter(encoded, index))
        return self.output(self.head(representation), representation)
