"""Per-modality layers whose parameters are stacked along a leading modality axis.

DecAlign gives every modality its own unique encoder, transformer and distribution encoder with
identical shapes. Stacking their weights as ``[M, ...]`` lets one batched matmul serve all
modalities when their sequences have the same length (aligned data), instead of M small ones;
with unequal lengths each modality uses its slice. ``index`` arguments select the active
modalities (ablations, missing inputs) by their position in the model's modality list.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["StackedLayerNorm", "StackedLinear", "select"]


def select(param: Tensor, index: list[int] | None) -> Tensor:
    """Rows of a stacked parameter for the active modalities; a view (no copy) when they are
    consecutive, e.g. all modalities or one."""
    if index is None:
        return param
    start = index[0]
    if index == list(range(start, start + len(index))):
        return param[start : start + len(index)]
    return param[index]


class StackedLinear(nn.Module):
    """M independent ``Linear(in_features, out_features)`` layers, weights ``[M, out, in]``.

    ``init`` is ``"xavier"`` (MulT's transformer layers: Xavier-uniform weights, zero bias) or
    ``"torch"`` (``nn.Linear``'s default, used for the distribution encoders).
    """

    def __init__(self, n: int, in_features: int, out_features: int, bias: bool = True, init: str = "xavier") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(n, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n, out_features)) if bias else None
        for i in range(n):
            if init == "xavier":
                nn.init.xavier_uniform_(self.weight.data[i])
            else:
                nn.init.kaiming_uniform_(self.weight.data[i], a=math.sqrt(5))
        if self.bias is not None:
            if init == "xavier":
                nn.init.zeros_(self.bias)
            else:
                bound = 1.0 / math.sqrt(in_features)
                nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, index: list[int] | None = None) -> Tensor:
        """``x``: ``[M', N, in]`` (one row block per selected modality) -> ``[M', N, out]``."""
        w = select(self.weight, index).transpose(-1, -2)
        if self.bias is None:
            return torch.bmm(x, w)
        return torch.baddbmm(select(self.bias, index).unsqueeze(1), x, w)

    def one(self, x: Tensor, m: int) -> Tensor:
        """Apply modality ``m``'s layer to ``x`` ``[..., in]``."""
        return F.linear(x, self.weight[m], None if self.bias is None else self.bias[m])


class StackedLayerNorm(nn.Module):
    """M LayerNorms over the last dimension with their own affine parameters ``[M, d]``."""

    def __init__(self, n: int, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n, d))
        self.bias = nn.Parameter(torch.zeros(n, d))

    def forward(self, x: Tensor, index: list[int] | None = None) -> Tensor:
        """``x``: ``[M', N, d]``."""
        y = F.layer_norm(x, (self.weight.shape[-1],), eps=self.eps)
        return torch.addcmul(select(self.bias, index).unsqueeze(1), y, select(self.weight, index).unsqueeze(1))

    def one(self, x: Tensor, m: int) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight[m], self.bias[m], self.eps)
