"""The text alone: the text encoder's states, averaged over the real tokens, and one linear
output; the other modalities are ignored.

::

    tokens [B, 3, T] --BERT (fine-tuned)--> h [B, T, H] --mean over attended t--> p [B, H] --Linear--> prediction
    or text features [B, T, D] ---------------------------> mean over t ------> p [B, D] --Linear--> prediction

With ``model.text_encoder.kind=bert`` this is the usual way to fine-tune a sentence encoder for
regression (every encoder parameter trained, masked mean pooling, a linear head, MSE; the preset
``text_finetune`` sets the optimiser): the baseline a multimodal model must beat before its other
modalities and its alignment can be said to add anything. With the data's precomputed text
features (``kind=features``) it is the same head on frozen features, the floor of a text-only model.

Inside the engine it is an ordinary architecture: the encoder's parameters are named
``text_encoder.*``, so they get ``train.bert_lr`` and the warm-up and decay of
``train.bert_warmup_steps`` / ``train.bert_decay``, and the head gets ``train.lr``. It returns
the shared output with zero alignment terms (:meth:`BaselineModel.output`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from decalign.config import ModelConfig
from decalign.errors import ConfigError
from decalign.model.baselines.common import TEXT, BaselineModel
from decalign.model.heads import PredictionHead
from decalign.model.kernels import dropout
from decalign.model.output import ModelOutput

__all__ = ["TextAlone", "masked_mean"]


def masked_mean(states: Tensor, mask: Tensor | None) -> Tensor:
    r"""``[B, T, H]`` states -> ``[B, H]``: :math:`\sum_t m_t h_t / \max(1, \sum_t m_t)` with the
    0/1 mask ``[B, T]`` (``None``: every step counts)."""
    if mask is None:
        return states.mean(1)
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class TextAlone(BaselineModel):
    """Text encoder (or the text features) -> masked mean -> linear head; representation
    ``[B, H]`` (``H``: the encoder's hidden size, or the text feature width)."""

    def __init__(
        self,
        config: ModelConfig,
        input_dims: Mapping[str, int],
        num_outputs: int = 1,
        seq_lens: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(config, input_dims, num_outputs, seq_lens)
        if TEXT not in self.modalities:
            raise ValueError(f"model.architecture='text' needs a modality named 'text'; the data has "
                             f"{list(self.modalities)}")
        if TEXT not in self.active:
            raise ValueError(f"model.architecture='text' reads only the text, but model.modalities="
                             f"{list(self.active)} leaves it out")
        if config.text_encoder.kind != "bert" and config.text_encoder.path:
            # The preset trains on the text features until told otherwise: a path alone would be
            # ignored silently, and the user would believe the encoder was fine-tuned.
            raise ConfigError(
                f"model.text_encoder.path={config.text_encoder.path!r} is set but model.text_encoder.kind is "
                "'features', so the encoder would not be used: give the folder as --encoder DIR instead (the "
                "encoder and the preset's schedule), or add model.text_encoder.kind=bert"
            )
        self.width = self.input_dims[TEXT]
        self.head = PredictionHead(self.width, num_outputs, config.output_dropout)

    def forward(self, features: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> ModelOutput:
        """``features``: modality -> ``[B, T_m, D_m]`` (the text as ``[B, 3, T]`` token ids with the
        BERT encoder); modalities other than the text are checked and ignored. Without the text the
        representation is zeros, as for any missing modality."""
        self.active_index(features)  # unknown modalities and an input without any active one are refused
        x = features.get(TEXT)
        if x is None:
            weight = self.head.linear.weight
            pooled = weight.new_zeros(next(iter(features.values())).shape[0], self.width)
        elif self.text_encoder is not None:
            if x.dim() != 3 or x.shape[1] != 3:
                raise ValueError(f"modality 'text': the BERT encoder needs [B, 3, T] token ids, found {tuple(x.shape)}")
            # Attention over steps that every sample of the batch pads is wasted work: cut them.
            width = max(int(x[:, 1].sum(1).max()), 1)
            tokens = x[:, :, :width]
            states = dropout(self.text_encoder(tokens), self.config.text_dropout, self.training)
            pooled = masked_mean(states, tokens[:, 1])
        else:
            if x.dim() != 3:
                raise ValueError(f"modality 'text': expected a [B, T, D] tensor, found shape {tuple(x.shape)}")
            mask = None
            if self.config.padding_mask and lengths is not None and TEXT in lengths:
                steps = torch.arange(x.shape[1], device=x.device)
                mask = steps[None, :] < lengths[TEXT].to(x.device)[:, None]
            pooled = masked_mean(dropout(x, self.config.text_dropout, self.training), mask)
        return self.output(self.head(pooled), pooled)
