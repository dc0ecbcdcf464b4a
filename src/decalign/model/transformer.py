r"""Cross-modal transformer fusion of the unique sequences (docs/method.md §6; MulT-style).

For each modality m, the query is its unique sequence :math:`s_m` and keys/values are the
concatenation over time of the other modalities' unique sequences. Inputs are scaled by
:math:`\sqrt d`; dropout ``embed_dropout`` hits the query and, with independent masks, the keys
and the values; there is no positional embedding. Each of ``num_layers`` post-norm layers computes

.. math::
    x \leftarrow \mathrm{LN}(x + \mathrm{drop}(\mathrm{MHA}(x, k, v))),\qquad
    x \leftarrow \mathrm{LN}(x + \mathrm{drop}(W_2\, \mathrm{drop}(\mathrm{ReLU}(W_1 x)))),

and every layer attends to the same (scaled, dropped-out) context. With cross-modal attention
switched off (ablation), or when a modality has no partner, each layer attends to its own input,
with a causal mask when ``attn_mask`` is set. The fused vector :math:`h_m` is the time-mean of
the output.

All modalities' transformers share one set of stacked ``[M, ...]`` weights (see
:mod:`decalign.model.stacked`), so with equal sequence lengths the M transformers run as batched
matmuls and one attention call for all modalities, each with its own attention dropout
(:func:`decalign.model.kernels.attention`: ``scaled_dot_product_attention`` for inference and on
CUDA, a small-head kernel for training on CPU). Dropout masks come from
:func:`decalign.model.kernels.dropout` (same distribution as ``F.dropout``, cheaper on CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from decalign.config import FusionConfig
from decalign.model.kernels import attention, dropout, dropout_add, masked_mean
from decalign.model.stacked import StackedLayerNorm, StackedLinear, select

__all__ = ["CrossModalLayer", "CrossModalTransformer"]


class CrossModalLayer(nn.Module):
    """One post-norm layer for M modalities at once; tensors are ``[M', B, T, d]``."""

    def __init__(self, n_modalities: int, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.d_model, self.num_heads = d_model, num_heads
        self.attn_in = StackedLinear(n_modalities, d_model, 3 * d_model)
        self.attn_out = StackedLinear(n_modalities, d_model, d_model)
        self.attn_norm = StackedLayerNorm(n_modalities, d_model)
        self.fc1 = StackedLinear(n_modalities, d_model, 4 * d_model)
        self.fc2 = StackedLinear(n_modalities, 4 * d_model, d_model)
        self.ffn_norm = StackedLayerNorm(n_modalities, d_model)

    def _heads(self, x: Tensor, batch: int) -> Tensor:
        """``[M', B*T, d]`` -> ``[M'*B, H, T, d/H]`` (a view)."""
        n_mod, _, d = x.shape
        return x.view(n_mod * batch, -1, self.num_heads, d // self.num_heads).transpose(1, 2)

    def _merge(self, heads: Tensor, n_mod: int, batch: int) -> Tensor:
        """Inverse of :meth:`_heads`: ``[M'*B, H, T, d/H]`` -> ``[M', B*T, d]``."""
        return heads.transpose(1, 2).reshape(n_mod, -1, self.d_model)

    def _project_qkv(
        self, flat: Tensor, keys: Tensor | None, values: Tensor | None, index: list[int]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """In-projection ``[M', N, d]`` -> q, k, v; with a cross-modal context, q from ``flat`` and
        k, v from ``keys`` and ``values`` (one matmul when they are the same tensor)."""
        n_mod, _, d = flat.shape
        w = select(self.attn_in.weight, index).transpose(-1, -2)  # [M', d, 3d]
        b = select(self.attn_in.bias, index).unsqueeze(1)  # type: ignore  # [M', 1, 3d]; attn_in has a bias
        if keys is None:
            q, k, v = torch.baddbmm(b, flat, w).chunk(3, dim=-1)
            return q, k, v
        assert values is not None
        q = torch.baddbmm(b[..., :d], flat, w[..., :d])
        if values is keys:  # no dropout: one matmul for keys and values
            k, v = torch.baddbmm(b[..., d:], keys.reshape(n_mod, -1, d), w[..., d:]).chunk(2, dim=-1)
        else:
            k = torch.baddbmm(b[..., d : 2 * d], keys.reshape(n_mod, -1, d), w[..., d : 2 * d])
            v = torch.baddbmm(b[..., 2 * d :], values.reshape(n_mod, -1, d), w[..., 2 * d :])
        return q, k, v

    def forward(
        self,
        x: Tensor,
        keys: Tensor | None,
        values: Tensor | None,
        index: list[int],
        attn_dropout: Sequence[float],
        relu_dropout: float,
        res_dropout: float,
        causal: bool,
        key_mask: Tensor | None = None,
    ) -> Tensor:
        """``x`` ``[M', B, T, d]``; ``keys``/``values`` ``[M', B, Tc, d]`` (cross-modal) or ``None``
        (self-attention on ``x``); ``attn_dropout`` per selected modality; ``key_mask`` optional
        boolean ``[M', B, Tc]`` (True: a real step)."""
        n_mod, batch, steps, d = x.shape
        flat = x.reshape(n_mod, batch * steps, d)
        q, k, v = self._project_qkv(flat, keys, values, index)
        probs = [float(p) if self.training else 0.0 for p in attn_dropout]
        attn = attention(
            self._heads(q, batch), self._heads(k, batch), self._heads(v, batch),
            dropout_p=probs, causal=causal and keys is None, groups=n_mod,
            key_mask=None if key_mask is None else key_mask.reshape(n_mod * batch, -1),
        )
        h = self.attn_out(self._merge(attn, n_mod, batch), index)
        flat = self.attn_norm(dropout_add(flat, h, res_dropout, self.training), index)
        h = dropout(self.fc1(flat, index).relu_(), relu_dropout, self.training)
        flat = self.ffn_norm(dropout_add(flat, self.fc2(h, index), res_dropout, self.training), index)
        return flat.view(n_mod, batch, steps, d)


class CrossModalTransformer(nn.Module):
    """The M per-modality transformers; returns the time-pooled fused vectors :math:`h_m`."""

    def __init__(self, modalities: Sequence[str], d_model: int, config: FusionConfig) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.config = config
        self.d_model = d_model
        self.attn_dropout = [float(config.attn_dropout.get(m, config.attn_dropout["default"])) for m in modalities]
        self.layers = nn.ModuleList(
            CrossModalLayer(len(modalities), d_model, config.num_heads) for _ in range(config.num_layers)
        )

    def _run(self, x: Tensor, context: Tensor | None, index: list[int], query_mask: Tensor | None = None,
             key_mask: Tensor | None = None) -> Tensor:
        """``x`` ``[M', B, T, d]`` through the layers, then the time-mean (over the steps where
        ``query_mask`` ``[M', B, T]`` is True, when given); ``key_mask`` masks the context's
        keys ``[M', B, Tc]``, or ``x``'s own steps in self-attention."""
        cfg = self.config
        scale = math.sqrt(self.d_model)
        x = dropout(x, cfg.embed_dropout, self.training, scale=scale)
        keys = values = None
        if context is not None:
            if self.training and cfg.embed_dropout > 0:  # independent masks for keys and values
                keys = dropout(context, cfg.embed_dropout, True, scale=scale)
                values = dropout(context, cfg.embed_dropout, True, scale=scale)
            else:
                keys = values = context * scale
        drops = [self.attn_dropout[i] for i in index]
        for layer in self.layers:
            x = layer(x, keys, values, index, drops, cfg.relu_dropout, cfg.res_dropout, cfg.attn_mask, key_mask)
        return x.mean(2) if query_mask is None else masked_mean(x, query_mask, dim=2)

    def forward(self, unique: Tensor | Sequence[Tensor], index: list[int],
                masks: Sequence[Tensor] | None = None) -> Tensor:
        """Fuse the unique sequences of the active modalities ``index`` (positions in
        ``self.modalities``).

        Args:
            unique: stacked ``[M', B, T, d]`` when all lengths agree, else a sequence of M'
                tensors ``[B, T_m, d]``.
            index: the active modalities, in the order of ``unique``.
            masks: optional boolean ``[B, T_m]`` per active modality, True at real steps
                (``model.padding_mask``): padded keys are not attended to and the time-mean
                runs over real steps. ``None``: released behaviour, padding included.

        Returns:
            ``[M', B, d]`` fused vectors.
        """
        n_active = len(index)
        cross = self.config.cross_modal and n_active > 1
        if isinstance(unique, Tensor):
            context = None
            if cross:
                others = torch.tensor([[j for j in range(n_active) if j != i] for i in range(n_active)],
                                      device=unique.device)
                _, batch, steps, d = unique.shape
                context = unique[others].permute(0, 2, 1, 3, 4).reshape(n_active, batch, (n_active - 1) * steps, d)
            if masks is None:
                return self._run(unique, context, index)
            query_mask = torch.stack(list(masks))  # [M', B, T]
            key_mask = query_mask
            if cross:
                key_mask = query_mask[others].permute(0, 2, 1, 3).reshape(n_active, batch, (n_active - 1) * steps)
            return self._run(unique, context, index, query_mask, key_mask)
        fused = []
        for i, m in enumerate(index):
            context = key_mask = query_mask = None
            if cross:
                context = torch.cat([unique[j] for j in range(n_active) if j != i], dim=1)[None]
            if masks is not None:
                query_mask = key_mask = masks[i][None]
                if cross:
                    key_mask = torch.cat([masks[j] for j in range(n_active) if j != i], dim=1)[None]
            fused.append(self._run(unique[i][None], context, [m], query_mask, key_mask)[0])
        return torch.stack(fused)
