"""Early fusion: the modalities are concatenated at the input, then one encoder and one head.

::

    [x_1 | x_2 | ... | x_M]  (per time step)  --TemporalProjection--> p
    p --self-attention transformer--> mean_t --> h  --PredictionHead--> prediction

Fusion happens per time step on the raw features, before any modality-specific processing, so
the encoder sees one sequence of width ``sum_m D_m``. Aligned data (all modalities with the same
number of steps, like MOSI ``aligned_50``) is concatenated step by step as it is. Unaligned data has
no common time axis: every modality is first resampled to the *shortest* active length by
adaptive average pooling over time (each new step averages a contiguous window of old steps),
which keeps the input-level fusion and never invents steps by interpolation. A missing or
switched-off modality contributes zeros to its input slots (zero imputation).

The fused stream is called ``fused`` for the per-modality settings: its projection kernel is
``model.conv_kernel.fused`` (default: ``model.conv_kernel.default``) and its attention dropout
``model.fusion.attn_dropout.fused`` (default: the ``default`` entry).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from decalign.config import ModelConfig
from decalign.model.baselines.common import BaselineModel
from decalign.model.heads import PredictionHead
from decalign.model.output import ModelOutput
from decalign.model.projection import TemporalProjection
from decalign.model.transformer import CrossModalTransformer

__all__ = ["FUSED", "EarlyFusion", "resample_steps"]

FUSED = "fused"


def resample_steps(x: Tensor, steps: int) -> Tensor:
    """``[B, T, D]`` -> ``[B, steps, D]`` by adaptive average pooling over time (identity when
    ``T == steps``)."""
    if x.shape[1] == steps:
        return x
    return F.adaptive_avg_pool1d(x.transpose(1, 2), steps).transpose(1, 2)


class EarlyFusion(BaselineModel):
    """Input-level concatenation + one self-attention encoder + head; representation ``[B, d]``."""

    def __init__(
        self,
        config: ModelConfig,
        input_dims: Mapping[str, int],
        num_outputs: int = 1,
        seq_lens: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(config, input_dims, num_outputs, seq_lens)
        d = config.d_model
        width = sum(self.input_dims.values())
        self.projection = TemporalProjection({FUSED: width}, d, {FUSED: config.kernel_for(FUSED)})
        active_lens = [t for m, t in self.seq_lens.items() if m in self.active]
        if active_lens:
            self.projection.output_length(FUSED, min(active_lens))
        self.encoder = CrossModalTransformer((FUSED,), d, dataclasses.replace(config.fusion, cross_modal=False))
        self.head = PredictionHead(d, num_outputs, config.output_dropout)

    def forward(self, features: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> ModelOutput:
        """``features``: modality -> ``[B, T_m, D_m]`` (modalities may be left out: zeros)."""
        index, xs = self.inputs(features)
        steps = min(x.shape[1] for x in xs)
        present = {self.modalities[i]: resample_steps(x, steps) for i, x in zip(index, xs)}
        ref = xs[0]
        parts = [
            present[m] if m in present else ref.new_zeros(ref.shape[0], steps, dim)
            for m, dim in self.input_dims.items()
        ]
        fused = self.projection(FUSED, torch.cat(parts, dim=-1))  # [B, T', d]
        representation = self.encoder(fused[None], [0])[0]  # [B, d]
        return self.output(self.head(representation), representation)
