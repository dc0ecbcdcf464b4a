"""The optimised execution paths against the straightforward ones (issue: every optimisation is
checked to give the same outputs and gradients within 1e-5).

* :mod:`decalign.model.kernels` (cheap dropout masks, small-head attention) against
  ``F.dropout`` / ``scaled_dot_product_attention`` / attention written out plainly, switched with
  :func:`~decalign.model.kernels.set_fast_kernels`;
* the batched (modality-stacked) transformer and decoupler against their per-modality loops;
* the whole model, fast kernels on vs off, in eval mode and in train mode with dropout 0, on
  aligned (batched path) and unaligned (per-modality path) inputs, in float64 (the maths) and
  float32 (what users run);
* ``torch.compile`` of the layers, only when ``DECALIGN_TEST_COMPILE=1`` (compiling takes ~30 s
  on two CPU cores).

The comparison with the independent reference implementation of the released model lives in
``test_model_reference.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from decalign.config.presets import get_preset
from decalign.model import DecAlign
from decalign.model.kernels import (
    attention,
    dropout,
    dropout_add,
    dropout_mask,
    fast_kernels,
    set_fast_kernels,
)
from decalign.testing.reference import (
    PRESET_SHAPES,
    random_inputs,
    randomize_,
    with_layers,
    without_dropout,
)

torch.set_num_threads(1)

TOL = 1e-5


@pytest.fixture
def straightforward() -> Iterator[None]:
    """Run the test body with the custom kernels off, restoring the setting afterwards."""
    previous = set_fast_kernels(False)
    try:
        yield
    finally:
        set_fast_kernels(previous)


def test_fast_kernels_are_on_by_default() -> None:
    assert fast_kernels()


# ----------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5])
def test_dropout_keep_rate_and_scale(p: float) -> None:
    torch.manual_seed(0)
    n = 400_000
    y = dropout(torch.ones(n), p, True)
    kept = y != 0
    # every kept element is exactly 1 / (1 - p), as with F.dropout
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1.0 / (1.0 - p)), rtol=1e-6, atol=0)
    rate = kept.double().mean().item()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs((1 - rate) - p) < 5 * sigma, f"drop rate {1 - rate:.5f} vs p={p} (5 sigma = {5 * sigma:.5f})"


def test_dropout_masks_are_independent_and_reproducible() -> None:
    torch.manual_seed(1)
    a = dropout_mask((200, 300), 0.5, torch.float32, torch.device("cpu"))
    b = dropout_mask((200, 300), 0.5, torch.float32, torch.device("cpu"))
    torch.manual_seed(1)
    a2 = dropout_mask((200, 300), 0.5, torch.float32, torch.device("cpu"))
    assert torch.equal(a, a2)  # the default generator drives it: torch.manual_seed reproduces it
    agree = ((a > 0) == (b > 0)).double().mean().item()
    assert abs(agree - 0.5) < 0.01  # consecutive masks are not correlated
    # neighbouring elements (same int64 draw) are not correlated either
    pairs = (a.flatten()[0::2] > 0) == (a.flatten()[1::2] > 0)
    assert abs(pairs.double().mean().item() - 0.5) < 0.01


def test_dropout_gradient_is_the_mask() -> None:
    torch.manual_seed(2)
    x = torch.randn(50, 40, requires_grad=True)
    y = dropout(x, 0.2, True, scale=3.0)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y.detach(), x.detach() * g)  # y = x * mask, dy/dx = mask
    values = torch.unique(g)
    assert len(values) == 2 and values[0] == 0
    assert values[1].item() == pytest.approx(3.0 / 0.8)


def test_dropout_identity_outside_training_and_edge_probabilities() -> None:
    x = torch.randn(10, 3)
    assert dropout(x, 0.3, False) is x
    torch.testing.assert_close(dropout(x, 0.3, False, scale=2.0), 2 * x)
    assert torch.count_nonzero(dropout(x, 1.0, True)) == 0
    torch.testing.assert_close(dropout_add(x, x, 0.0, True), 2 * x)
    torch.testing.assert_close(dropout_add(x, x, 0.5, False), 2 * x)


def test_dropout_add_is_residual_plus_dropout() -> None:
    torch.manual_seed(3)
    r, x = torch.randn(30, 8), torch.randn(30, 8)
    out = dropout_add(r, x, 0.25, True)
    dropped = out - r
    kept = dropped.abs() > 1e-6
    torch.testing.assert_close(dropped[kept], x[kept] / 0.75)


# ----------------------------------------------------------------------------- attention


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(e)) v written out plainly (no dropout)."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        upper = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(upper, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize(("batch", "heads", "t_q", "t_k", "head_dim", "causal"), [
    (4, 8, 50, 100, 8, False),  # MOSI cross-modal
    (2, 8, 35, 86, 4, False),  # SIMS (d = 32, 8 heads)
    (3, 4, 1, 2, 12, False),  # IEMOCAP (T = 1)
    (2, 8, 20, 20, 8, True),  # self-attention ablation with the causal mask
])
def test_attention_matches_plain_and_sdpa(batch: int, heads: int, t_q: int, t_k: int, head_dim: int,
                                          causal: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, t, head_dim, generator=gen, dtype=torch.float64, requires_grad=True)
               for t in (t_q, t_k, t_k))
    grad = torch.randn(batch, heads, t_q, head_dim, generator=gen, dtype=torch.float64)
    # strided inputs, as the transformer passes them
    q_strided = q.transpose(1, 2).contiguous().transpose(1, 2)
    ours = attention(q_strided, k, v, causal=causal)
    plain = attention_reference(q, k, v, causal=causal)
    sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(ours, plain, rtol=TOL, atol=TOL)
    torch.testing.assert_close(ours, sdpa, rtol=TOL, atol=TOL)
    g_ours = torch.autograd.grad(ours, (q, k, v), grad)
    g_plain = torch.autograd.grad(plain, (q, k, v), grad)
    for a, b in zip(g_ours, g_plain):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)


def test_attention_float32_matches_sdpa() -> None:
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(8, 8, t, 8, generator=gen, requires_grad=True) for t in (50, 100, 100))
    ours = attention(q, k, v)
    sdpa = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(ours, sdpa, rtol=TOL, atol=TOL)
    g_ours = torch.autograd.grad(ours.square().sum(), (q, k, v))
    g_sdpa = torch.autograd.grad(sdpa.square().sum(), (q, k, v))
    for a, b in zip(g_ours, g_sdpa):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)


def test_attention_with_dropout_passes_gradcheck() -> None:
    """With the masks fixed (same seed in every call), the hand-written backward is the exact
    derivative of the forward, per-group dropout included."""
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(3, 2, t, 4, generator=gen, dtype=torch.float64, requires_grad=True) for t in (5, 7, 7))

    def grouped(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(3)
        return attention(q, k, v, dropout_p=[0.3, 0.0, 0.5], groups=3)

    def uniform(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(3)
        return attention(q, k, v, dropout_p=0.4, causal=True)

    assert torch.autograd.gradcheck(grouped, (q, k, v))
    assert torch.autograd.gradcheck(uniform, (q, k, v))


def test_attention_dropout_only_hits_its_group() -> None:
    gen = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(6, 2, t, 4, generator=gen) for t in (5, 9, 9))
    out = attention(q, k, v, dropout_p=[0.0, 0.5, 0.0], groups=3)
    plain = attention_reference(q, k, v)
    torch.testing.assert_close(out[:2], plain[:2])
    torch.testing.assert_close(out[4:], plain[4:])
    assert not torch.allclose(out[2:4], plain[2:4])


def test_attention_dropout_is_unbiased() -> None:
    torch.manual_seed(5)
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 1, t, 8, generator=gen) for t in (4, 6, 6))
    reps = 40_000
    out = attention(q.expand(reps, 1, 4, 8), k.expand(reps, 1, 6, 8), v.expand(reps, 1, 6, 8), dropout_p=0.2)
    torch.testing.assert_close(out.mean(0), attention_reference(q, k, v)[0], rtol=0, atol=0.03)


# ----------------------------------------------------------------------------- batched vs per modality


def _small_model(preset: str, lengths: dict[str, int], seed: int = 0, dtype: torch.dtype = torch.float64,
                 layers: int = 2) -> DecAlign:
    dims, outputs = PRESET_SHAPES[preset]
    config = without_dropout(with_layers(get_preset(preset).model, layers))
    torch.manual_seed(seed)
    model = DecAlign(config, dims, outputs, lengths)
    return randomize_(model, seed).to(dtype)


def test_stacked_transformer_equals_per_modality_loop() -> None:
    model = _small_model("mosi", {"text": 7, "audio": 7, "vision": 7})
    model.train()
    gen = torch.Generator().manual_seed(6)
    unique = torch.randn(3, 4, 7, 64, generator=gen, dtype=torch.float64, requires_grad=True)
    batched = model.fusion(unique, [0, 1, 2])
    looped = model.fusion(list(unique.unbind(0)), [0, 1, 2])
    torch.testing.assert_close(batched, looped, rtol=TOL, atol=TOL)
    g_batched = torch.autograd.grad(batched.square().sum(), [unique, *model.fusion.parameters()])
    g_looped = torch.autograd.grad(looped.square().sum(), [unique, *model.fusion.parameters()])
    for a, b in zip(g_batched, g_looped):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)


def test_stacked_decoupler_equals_per_modality() -> None:
    model = _small_model("mosi", {"text": 5, "audio": 5, "vision": 5})
    projected = torch.randn(3, 4, 5, 64, dtype=torch.float64)
    unique, common = model.decoupler(projected, [0, 1, 2])
    for m in range(3):
        u, c = model.decoupler.one(projected[m], m)
        torch.testing.assert_close(unique[m], u, rtol=TOL, atol=TOL)
        torch.testing.assert_close(common[m], c, rtol=TOL, atol=TOL)


# ----------------------------------------------------------------------------- whole model


def _forward_backward(
    model: DecAlign, inputs: dict[str, torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    out = model(inputs)
    values = [out.prediction, *out.losses.values(), out.representation]
    total = out.prediction.square().sum() + sum(out.losses.values())
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(total, [*inputs.values(), *params], allow_unused=True)
    return values, [torch.zeros(()) if g is None else g for g in grads]


CASES = [
    ("mosi", {"text": 8, "audio": 8, "vision": 8}),  # aligned: stacked path
    ("mosei", {"text": 12, "audio": 20, "vision": 16}),  # unaligned, kernel 5: per-modality path
    ("sims", {"text": 9, "audio": 30, "vision": 12}),  # head dim 4
    ("iemocap", {"text": 1, "audio": 1, "vision": 1}),  # T = 1, 6 classes
]


@pytest.mark.parametrize(("preset", "lengths"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_model_fast_equals_straightforward(preset: str, lengths: dict[str, int], mode: str,
                                           dtype: torch.dtype) -> None:
    model = _small_model(preset, lengths, dtype=dtype)
    model.train(mode == "train")
    dims, _ = PRESET_SHAPES[preset]
    inputs = random_inputs(dims, lengths, 16, seed=7, dtype=dtype)
    fast_values, fast_grads = _forward_backward(model, inputs)
    previous = set_fast_kernels(False)
    try:
        slow_values, slow_grads = _forward_backward(model, inputs)
    finally:
        set_fast_kernels(previous)
    for a, b in zip(fast_values, slow_values):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)
    # float32: gradients through 5 EM iterations and 50 Sinkhorn rounds amplify rounding, so
    # compare them relative to each tensor's largest entry
    for a, b in zip(fast_grads, slow_grads):
        scale = 1.0 if dtype == torch.float64 else max(1.0, float(b.abs().max()))
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL * scale)


def test_model_train_mode_with_dropout_runs_on_both_paths(straightforward: None) -> None:
    """Dropout streams differ between the paths, so only shapes and finiteness are compared."""
    dims, outputs = PRESET_SHAPES["mosi"]
    lengths = {"text": 6, "audio": 6, "vision": 6}
    torch.manual_seed(0)
    model = DecAlign(with_layers(get_preset("mosi").model, 2), dims, outputs, lengths).train()
    inputs = random_inputs(dims, lengths, 8, seed=8, dtype=torch.float32)
    slow = model(inputs)
    set_fast_kernels(True)
    fast = model(inputs)
    assert fast.prediction.shape == slow.prediction.shape
    assert torch.isfinite(fast.prediction).all() and torch.isfinite(slow.prediction).all()


@pytest.mark.skipif(os.environ.get("DECALIGN_TEST_COMPILE") != "1",
                    reason="torch.compile takes ~30 s on CPU; set DECALIGN_TEST_COMPILE=1")
def test_compiled_layers_equal_eager() -> None:
    from decalign.model.compile import maybe_compile

    lengths = {"text": 6, "audio": 6, "vision": 6}
    model = _small_model("mosi", lengths, dtype=torch.float32)
    model.eval()
    dims, _ = PRESET_SHAPES["mosi"]
    inputs = random_inputs(dims, lengths, 8, seed=9, dtype=torch.float32)
    eager_values, eager_grads = _forward_backward(model, inputs)
    compiled = maybe_compile(model, True)
    values, grads = _forward_backward(compiled, inputs)
    for a, b in zip(values, eager_values):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL * max(1.0, float(b.abs().max())))


def test_maybe_compile_disabled_is_identity() -> None:
    from decalign.model.compile import maybe_compile

    model = _small_model("mosi", {"text": 4, "audio": 4, "vision": 4})
    assert maybe_compile(model, False) is model
