"""Prediction head: dropout and one linear layer on the fused features (docs/method.md §7)."""

from __future__ import annotations

from torch import Tensor, nn

from decalign.model.kernels import dropout

__all__ = ["PredictionHead"]


class PredictionHead(nn.Module):
    """``Linear(in_features -> 1)`` for regression (output ``[B]``) or ``-> C`` logits ``[B, C]``."""

    def __init__(self, in_features: int, num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        self.num_outputs = num_outputs
        self.linear = nn.Linear(in_features, num_outputs)

    def forward(self, representation: Tensor) -> Tensor:
        out = self.linear(dropout(representation, self.dropout, self.training))
        return out.squeeze(-1) if self.num_outputs == 1 else out
