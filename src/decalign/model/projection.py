"""Temporal projection: each modality's features to the shared width d (docs/method.md §2).

``Conv1d(D_m -> d, kernel k_m, padding 0, no bias)`` over time, so the output has
``T_m - k_m + 1`` steps. As released, a modality whose width already equals d is passed through
unchanged although its weight exists (and is counted in the parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TemporalProjection"]


class TemporalProjection(nn.Module):
    def __init__(self, input_dims: Mapping[str, int], d_model: int, kernels: Mapping[str, int]) -> None:
        super().__init__()
        self.d_model = d_model
        self.kernels = {m: int(kernels[m]) for m in input_dims}
        self.convs = nn.ModuleDict(
            {m: nn.Conv1d(dim, d_model, self.kernels[m], bias=False) for m, dim in input_dims.items()}
        )

    def conv(self, modality: str) -> nn.Conv1d:
        """The modality's convolution (a ``ModuleDict`` hands out plain modules)."""
        return cast(nn.Conv1d, self.convs[modality])

    def steps_lost(self, modality: str) -> int:
        """Steps the projection removes from a sequence: ``k - 1``, or 0 for a pass-through."""
        return 0 if self.conv(modality).in_channels == self.d_model else self.kernels[modality] - 1

    def output_length(self, modality: str, length: int) -> int:
        """Steps left after the projection of a sequence of ``length`` steps."""
        self.check_length(modality, length)
        return length - self.steps_lost(modality)

    def output_lengths(self, modality: str, lengths: Tensor) -> Tensor:
        """:meth:`output_length` of each of a batch's true lengths ``[B]`` (not checked: a true
        length may be shorter than the kernel; the caller clamps)."""
        return lengths - self.steps_lost(modality)

    def check_length(self, modality: str, length: int) -> None:
        """A kernel longer than the sequence would give an empty output: say what to set."""
        k = self.kernels[modality]
        if length < k and self.conv(modality).in_channels != self.d_model:
            raise ValueError(
                f"modality {modality!r}: the projection's conv kernel ({k}) is longer than its "
                f"sequence length ({length}); set model.conv_kernel.{modality}=1 (or at most {length})"
            )

    def forward(self, modality: str, x: Tensor) -> Tensor:
        """``x``: ``[B, T, D_m]`` -> ``[B, T - k + 1, d]``."""
        conv = self.conv(modality)
        if x.shape[-1] != conv.in_channels:
            raise ValueError(
                f"modality {modality!r}: expected feature width {conv.in_channels}, found input shape {tuple(x.shape)}"
            )
        if conv.in_channels == self.d_model:
            return x
        self.check_length(modality, x.shape[1])
        if conv.kernel_size[0] == 1:  # a 1x1 conv is a matmul; skip the layout round trip
            return F.linear(x, conv.weight.squeeze(-1))
        return F.conv1d(x.transpose(1, 2), conv.weight).transpose(1, 2)
