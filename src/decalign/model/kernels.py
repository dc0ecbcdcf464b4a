r"""Faster CPU building blocks with the same maths: dropout and small-head attention.

Why these exist (measured on a 2-core AMD EPYC, fp32, PyTorch 2.13, at the presets' shapes; see
``benchmarks/bench_step.py`` and the README's performance section):

* **Dropout.** ``F.dropout`` on CPU draws its mask with ``bernoulli_`` and then multiplies twice;
  it costs about 6 ns per element, and a MOSI training step drops about 16 million elements.
  :func:`dropout` draws 32 random bits per element (``random_`` on int64, reinterpreted as two
  int32), turns them into a scaled float mask with one comparison, and multiplies once: about
  2.3 ns per element. Each element is dropped independently with probability
  :math:`\mathrm{round}(p\, 2^{32}) / 2^{32}` (``torch.rand(...) < p`` would quantise p to
  :math:`2^{-24}`); only the random stream differs from ``F.dropout``.
* **Attention with small heads, in training.** DecAlign's transformers use 4-12 dimensions per
  head. For such heads the backward of the CPU flash kernel of ``scaled_dot_product_attention``
  is slow (forward + backward about 11 GFLOP/s on the MOSI shapes), its math path (taken with
  dropout) materialises extra copies and masks over whole score matrices (52 MB per layer for
  MOSEI's batch of 128), and neither applies a different attention dropout to each modality in
  one call. :func:`attention` is the textbook computation (scores, softmax, dropout, weighted
  sum) as a custom autograd function that works through the heads in cache-sized chunks, uses
  the operand layouts that MKL's batched GEMM runs fastest (up to 2.5x apart for these shapes),
  and in the backward uses :math:`\mathrm{rowsum}(dP \circ P) = \mathrm{rowsum}(dO \circ O)`:
  forward + backward 1.3x (MOSI) to 2x (MOSEI) faster than SDPA. For inference (no gradient, no
  dropout), on CUDA, or with large heads it calls ``scaled_dot_product_attention``, whose fused
  kernels are as fast or faster there.

:func:`set_fast_kernels` switches both off: the straightforward path that the equivalence tests
(``tests/model/test_perf_equivalence.py``) and ``bench_step.py --ab`` compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SMALL_HEAD_DIM",
    "attention",
    "dropout",
    "dropout_add",
    "dropout_mask",
    "fast_kernels",
    "masked_mean",
    "set_fast_kernels",
]

SMALL_HEAD_DIM = 32
"""Head widths up to this use :func:`attention`'s own kernel on CPU (above it, SDPA's flash
kernel is competitive)."""

_FAST = True


def set_fast_kernels(enabled: bool) -> bool:
    """Switch the custom CPU kernels on or off (off: ``F.dropout`` and
    ``scaled_dot_product_attention`` everywhere, the straightforward path tests compare against).
    Returns the previous setting."""
    global _FAST
    previous, _FAST = _FAST, bool(enabled)
    return previous


def fast_kernels() -> bool:
    """Whether the custom CPU kernels are in use (see :func:`set_fast_kernels`)."""
    return _FAST


def _use_custom(x: Tensor) -> bool:
    """The custom kernels are for eager CPU execution; inside ``torch.compile`` the plain ops let
    Inductor fuse and generate its own code; a TorchScript or ONNX trace records the plain ops."""
    return _FAST and x.device.type == "cpu" and not torch.compiler.is_compiling() and not torch.jit.is_tracing()


def _random_int32(shape: torch.Size | tuple[int, ...], device: torch.device) -> Tensor:
    """Uniform int32 bits in ``shape``: half as many full-range int64 draws, reinterpreted.

    ``random_`` fills int64 at about 1.7 ns per 64 bits on CPU, while ``bernoulli_`` costs about
    6 ns per element and ``rand`` about 2.8 ns; the generator is the default one, so
    ``torch.manual_seed`` makes masks reproducible as usual.
    """
    n = 1
    for s in shape:
        n *= s
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=device).random_(-(2**63), None)
    return bits.view(torch.int32)[:n].view(shape)


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device,
                 scale: float = 1.0) -> Tensor:
    r"""A float mask whose entries are independently 0 with probability p and
    :math:`\text{scale} / (1 - p)` otherwise (``0 < p < 1``)."""
    # P(int32 bits < threshold) = round(p 2^32) / 2^32 (clamped: int32 holds up to 2^31 - 1)
    threshold = min(round(p * 2**32) - 2**31, 2**31 - 1)
    mask = torch.ge(_random_int32(shape, device), threshold, out=torch.empty(shape, dtype=dtype, device=device))
    return mask.mul_(scale / (1.0 - p))


def dropout(x: Tensor, p: float, training: bool, scale: float = 1.0) -> Tensor:
    """``F.dropout(x * scale, p, training)``, with the cheaper mask of :func:`dropout_mask` on CPU.

    ``scale`` folds a constant factor (the transformer's :math:`\\sqrt d`) into the mask, so
    scaling and dropout cost one multiplication. Gradients are those of ``x * mask``.
    """
    if not training or p == 0.0:
        return x * scale if scale != 1.0 else x
    if p >= 1.0 or not _use_custom(x):
        return F.dropout(x * scale if scale != 1.0 else x, p, True)
    return x * dropout_mask(x.shape, p, x.dtype, x.device, scale)


def dropout_add(residual: Tensor, x: Tensor, p: float, training: bool) -> Tensor:
    """``residual + F.dropout(x, p, training)`` as one ``addcmul`` with the mask of
    :func:`dropout_mask` on CPU (the transformer's residual connections)."""
    if not training or p == 0.0:
        return residual + x
    if p >= 1.0 or not _use_custom(x):
        return residual + F.dropout(x, p, True)
    return torch.addcmul(residual, x, dropout_mask(x.shape, p, x.dtype, x.device))


SCORE_CHUNK_ELEMENTS = 1 << 18
"""Score-matrix elements (1 MiB of float32) processed at a time by :func:`attention`'s kernel."""


def _chunks(n: int, rows_per_group: int, probs: list[float], per_chunk: int) -> list[tuple[slice, float]]:
    """Consecutive row blocks of at most ``per_chunk`` heads that do not straddle two groups,
    each with its group's dropout probability."""
    out = []
    for g, p in enumerate(probs):
        for start in range(g * rows_per_group, (g + 1) * rows_per_group, per_chunk):
            out.append((slice(start, min(start + per_chunk, (g + 1) * rows_per_group)), p))
    return out


class _SmallHeadAttention(torch.autograd.Function):
    r"""softmax(q k^T * scale [+ causal mask]) (dropout) v for heads ``[G, H, T, e]``.

    Forward: ``S = (q scale) k^T``; ``P = softmax(S)``; ``P_d = P * mask`` (mask pre-scaled by
    1/(1-p)) where the head's group has dropout; ``O = P_d v``. Backward with ``dO``:
    ``dP_d = dO v^T``; ``dP = dP_d * mask``; ``dS = P (dP - D)`` with
    ``D = rowsum(dP * P) = rowsum(dO * O)``; ``dq = scale dS k``; ``dk = dS^T (q scale)``;
    ``dv = P_d^T dO``.

    Why it is fast on CPU:

    * Heads are processed in chunks of about 1 MiB of scores (:data:`SCORE_CHUNK_ELEMENTS`), so
      the score-sized intermediates (``S``, ``P_d``, ``dP``, ``dS``) stay in cache; only ``P``
      (and the dropout masks) are written once for the backward and read once there. With batch
      128 (MOSEI) the scores of one layer are 52 MB, beyond the last-level cache.
    * Layouts: the inputs may be strided views (heads split out of ``[.., T, H e]``); each is
      copied once into the layout its matmuls want: ``q scale`` as ``[N, T, e]`` and ``k``, ``v``
      transposed as ``[N, e, Tk]`` (N = G H). Products whose natural form has a transposed left
      operand are computed transposed, e.g. ``dk^T = (q scale)^T dS``: MKL's batched GEMM runs
      these layouts 1.5-2.5x faster for such small matrices.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, scale: float,  # type: ignore[override]
                chunks: list[tuple[slice, float]], causal: bool) -> Tensor:
        lead, (t_q, e), t_k = q.shape[:-2], q.shape[-2:], k.shape[-2]
        n = q[..., 0, 0].numel()
        qs = q.reshape(n, t_q, e) * scale
        kt = k.new_empty(*lead, e, t_k)
        kt.copy_(k.transpose(-1, -2))
        vt = v.new_empty(*lead, e, t_k)
        vt.copy_(v.transpose(-1, -2))
        kt, vt = kt.view(n, e, t_k), vt.view(n, e, t_k)
        probs = q.new_empty(n, t_q, t_k)
        out = q.new_empty(n, t_q, e)
        upper = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).triu_(1) if causal else None
        masks: list[Tensor | None] = []
        for rows, p in chunks:
            scores = torch.bmm(qs[rows], kt[rows], out=probs[rows])
            if upper is not None:
                scores.masked_fill_(upper, float("-inf"))
            _softmax_(scores)
            mask = dropout_mask(scores.shape, p, q.dtype, q.device) if p > 0.0 else None
            masks.append(mask)
            torch.bmm(scores if mask is None else scores * mask, vt[rows].transpose(1, 2), out=out[rows])
        ctx.scale, ctx.chunks, ctx.masks, ctx.lead = scale, chunks, masks, lead
        ctx.save_for_backward(qs, kt, vt, probs, out)
        return out.view(*lead, t_q, e)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore
        qs, kt, vt, probs, out = ctx.saved_tensors
        n, t_q, e = qs.shape
        t_k = kt.shape[-1]
        grad_out = grad_out.reshape(n, t_q, e)
        row_dot = (grad_out * out).sum(-1, keepdim=True)  # D = rowsum(dP * P)
        grad_q = torch.empty_like(qs)
        grad_kt = torch.empty_like(kt)
        grad_vt = torch.empty_like(vt)
        for (rows, _), mask in zip(ctx.chunks, ctx.masks):
            p = probs[rows]
            torch.bmm(grad_out[rows].transpose(1, 2), p if mask is None else p * mask, out=grad_vt[rows])
            grad_scores = torch.bmm(grad_out[rows], vt[rows])  # dP_d
            if mask is not None:
                grad_scores.mul_(mask)
            grad_scores.sub_(row_dot[rows]).mul_(p)  # dS
            torch.bmm(grad_scores, kt[rows].transpose(1, 2), out=grad_q[rows])
            torch.bmm(qs[rows].transpose(1, 2), grad_scores, out=grad_kt[rows])
        grad_q.mul_(ctx.scale)
        lead = ctx.lead
        return (grad_q.view(*lead, t_q, e), grad_kt.view(*lead, e, t_k).transpose(-1, -2),
                grad_vt.view(*lead, e, t_k).transpose(-1, -2), None, None, None)


def _softmax_(scores: Tensor) -> Tensor:
    """Row softmax in place (the chunk is in cache, so the separate passes are cheap)."""
    scores.sub_(scores.amax(-1, keepdim=True)).exp_()
    return scores.div_(scores.sum(-1, keepdim=True))


def attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float | list[float] = 0.0, causal: bool = False,
              groups: int = 1, key_mask: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention, ``F.scaled_dot_product_attention``'s maths and layout.

    Args:
        q, k, v: ``[..., T, e]`` and ``[..., Tk, e]`` (e.g. ``[B, H, T, e]``; strided views are
            fine); the leading dimensions are flattened into N heads.
        dropout_p: attention dropout (pass 0 outside training); a list gives one probability per
            group of ``N / groups`` consecutive heads (one group per modality).
        causal: mask keys after the query's position (self-attention only).
        groups: number of groups that a list ``dropout_p`` refers to.
        key_mask: optional boolean ``[q.shape[0], Tk]`` (e.g. ``[B, Tk]``, shared by the heads),
            True where a key may be attended to (padding masks). Every query must keep at least one key. It
            runs ``scaled_dot_product_attention`` with a boolean mask (the small-head kernel
            has no mask).

    Returns:
        ``[..., T, e]``, equal to ``F.scaled_dot_product_attention`` with the same dropout
        distribution (different random stream).
    """
    probs = [float(p) for p in dropout_p] if isinstance(dropout_p, list) else [float(dropout_p)] * groups
    n = q[..., 0, 0].numel()
    if len(probs) != groups or n % groups:
        raise ValueError(f"{len(probs)} dropout values for {groups} groups of {n} heads")
    if key_mask is not None:
        return _sdpa_grouped(q, k, v, probs, causal, _full_mask(key_mask, q, causal))
    if not _use_custom(q) or q.shape[-1] > SMALL_HEAD_DIM or any(p >= 1.0 for p in probs):
        return _sdpa_grouped(q, k, v, probs, causal)
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    if not needs_grad and not any(probs):
        # Inference: SDPA's CPU flash kernel is as fast here and, working in cache-sized tiles,
        # much steadier than materialising the scores when other processes share the caches.
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    t_q, t_k = q.shape[-2], k.shape[-2]
    per_chunk = max(1, SCORE_CHUNK_ELEMENTS // (t_q * t_k))
    chunks = _chunks(n, n // groups, probs, per_chunk)
    return _SmallHeadAttention.apply(q, k, v, q.shape[-1] ** -0.5, chunks, causal)


def _full_mask(key_mask: Tensor, q: Tensor, causal: bool) -> Tensor:
    """``[N0, Tk]`` key mask -> a boolean mask broadcastable to the scores ``[..., T, Tk]``, with
    the causal triangle folded in (SDPA takes either ``is_causal`` or a mask, not both)."""
    t_q, t_k = q.shape[-2], key_mask.shape[-1]
    mask = key_mask.reshape(q.shape[0], *([1] * (q.dim() - 2)), t_k).bool()
    if causal:
        mask = mask & torch.ones(t_q, t_k, dtype=torch.bool, device=mask.device).tril()
    return mask


def _sdpa_grouped(q: Tensor, k: Tensor, v: Tensor, probs: list[float], causal: bool,
                  mask: Tensor | None = None) -> Tensor:
    """``scaled_dot_product_attention``, one call per run of equal dropout probabilities (with a
    boolean ``mask``, causality is already in it)."""
    is_causal = causal and mask is None
    if len(set(probs)) == 1:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=probs[0], is_causal=is_causal)
    per = q.shape[0] // len(probs)  # groups split the first dimension
    return torch.cat([
        F.scaled_dot_product_attention(
            q[g * per : (g + 1) * per], k[g * per : (g + 1) * per], v[g * per : (g + 1) * per],
            attn_mask=None if mask is None else mask[g * per : (g + 1) * per],
            dropout_p=p, is_causal=is_causal,
        )
        for g, p in enumerate(probs)
    ])


def masked_mean(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    r"""Mean of ``x`` over dimension ``dim`` where ``mask`` is True:
    :math:`\bar x = \sum_t m_t x_t / \max(1, \sum_t m_t)`.

    ``mask`` has ``x``'s shape without its last (feature) dimension; a row with no True entry
    gives zeros rather than NaN.
    """
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim) / w.sum(dim).clamp_min(1.0)
