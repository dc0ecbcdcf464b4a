"""``model.padding_mask``: DecAlign ignores zero padding when it has the data's true lengths.

Invariants: with the option on, what sits after a sample's true length (and how much of it there
is) cannot change the prediction or the pooled features; the masked attention equals attention
over the real keys only; the masked mean has its closed form; with the option off the released
behaviour (padding pooled and attended to) is untouched.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from decalign.config import ModelConfig
from decalign.errors import UsageError
from decalign.model.decalign import DecAlign
from decalign.model.kernels import attention, masked_mean

DIMS = {"text": 8, "audio": 5, "vision": 4}
LENGTHS = {"text": [3, 10, 5, 1], "audio": [10, 2, 4, 7], "vision": [6, 6, 2, 3]}


def _batch(steps: dict[str, int], seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    feats, lens = {}, {}
    for m, d in DIMS.items():
        x = torch.randn(4, steps[m], d, generator=gen)
        lengths = torch.tensor(LENGTHS[m])
        x[torch.arange(steps[m])[None, :] >= lengths[:, None]] = 0.0  # zero padding after the true length
        feats[m], lens[m] = x, lengths
    return feats, lens


def _model(padding_mask: bool, **fusion: object) -> DecAlign:
    torch.manual_seed(0)
    cfg = ModelConfig(padding_mask=padding_mask, fusion={"num_layers": 2, **fusion})  # type: ignore[arg-type]
    return DecAlign(cfg, DIMS).eval()


Batch = dict[str, torch.Tensor]


def _repad(feats: Batch, lens: Batch, extra: int, seed: int) -> Batch:
    """Longer padding filled with noise instead of zeros."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for m, x in feats.items():
        y = torch.cat([x, torch.zeros(x.shape[0], extra, x.shape[2])], 1)
        pad = torch.arange(y.shape[1])[None, :] >= lens[m][:, None]
        y[pad] = torch.randn(int(pad.sum()), y.shape[2], generator=gen)
        out[m] = y
    return out


@pytest.mark.parametrize("steps", [{"text": 10, "audio": 10, "vision": 10}, {"text": 10, "audio": 10, "vision": 6}])
def test_prediction_ignores_what_follows_the_true_length(steps: dict[str, int]) -> None:
    """Equal lengths (stacked path) and unequal ones (per-modality path)."""
    model = _model(True)
    feats, lens = _batch(steps)
    with torch.no_grad():
        before = model.predict(feats, lens)
        after = model.predict(_repad(feats, lens, extra=7, seed=1), lens)
        out = model(_repad(feats, lens, extra=3, seed=2), lens)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.prediction, before, atol=1e-5, rtol=1e-5)
    ref = model(feats, lens)
    torch.testing.assert_close(out.unique, ref.unique, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.common, ref.common, atol=1e-5, rtol=1e-5)


def test_self_attention_ablation_with_causal_mask_ignores_padding() -> None:
    model = _model(True, cross_modal=False)
    feats, lens = _batch({"text": 10, "audio": 10, "vision": 10})
    with torch.no_grad():
        torch.testing.assert_close(model.predict(_repad(feats, lens, 5, 3), lens), model.predict(feats, lens),
                                   atol=1e-5, rtol=1e-5)


def test_released_behaviour_sees_padding_and_is_unchanged_without_lengths() -> None:
    """Off (released): more padding changes the output (the time-means include it). On but
    without lengths: the same numbers as off (nothing to mask with)."""
    off, on = _model(False), _model(True)
    feats, lens = _batch({"text": 10, "audio": 10, "vision": 10})
    longer = {m: torch.cat([x, torch.zeros(4, 5, x.shape[2])], 1) for m, x in feats.items()}
    with torch.no_grad():
        assert (off.predict(longer, lens) - off.predict(feats, lens)).abs().max() > 1e-3
        torch.testing.assert_close(on.predict(feats), off.predict(feats))
        torch.testing.assert_close(on.predict(feats, lens), on(feats, lens).prediction)


def test_training_step_with_mask_gives_finite_gradients() -> None:
    model = _model(True).train()
    feats, lens = _batch({"text": 10, "audio": 10, "vision": 6})
    out = model(feats, lens)
    loss = out.prediction.square().mean() + sum(out.losses.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_masked_mean_closed_form() -> None:
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    torch.testing.assert_close(masked_mean(x, mask, 1), torch.tensor([[2.0], [4.0]]))
    torch.testing.assert_close(masked_mean(x, torch.zeros_like(mask), 1), torch.zeros(2, 1))  # no NaN


@pytest.mark.parametrize("causal", [False, True])
def test_masked_attention_equals_attention_over_real_keys(causal: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 6, 4, generator=gen) for _ in range(3))
    valid = [6, 2, 4]
    key_mask = torch.arange(6)[None, :] < torch.tensor(valid)[:, None]
    got = attention(q, k, v, causal=causal, key_mask=key_mask)
    for b, n in enumerate(valid):
        if causal:  # the first n queries see exactly the real keys up to themselves
            want = F.scaled_dot_product_attention(q[b : b + 1, :, :n], k[b : b + 1, :, :n], v[b : b + 1, :, :n],
                                                  is_causal=True)
            torch.testing.assert_close(got[b : b + 1, :, :n], want)
        else:
            want = F.scaled_dot_product_attention(q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n])
            torch.testing.assert_close(got[b : b + 1], want)


def test_export_refuses_a_padding_mask_model() -> None:
    from types import SimpleNamespace

    from decalign.export import PredictionGraph

    with pytest.raises(UsageError, match="padding_mask"):
        PredictionGraph(SimpleNamespace(model=_model(True)))


def test_heterogeneity_masked_pooling_pools_the_prototypes_features_over_real_steps() -> None:
    """``heterogeneity.masked_pooling`` alone: the unique features the prototypes see are the
    real-step means (equal to those of ``padding_mask``, same weights), so more zero padding
    does not change them, while the released mean shrinks with it."""
    feats, lens = _batch({"text": 10, "audio": 10, "vision": 10})
    longer = {m: torch.cat([x, torch.zeros(4, 5, x.shape[2])], 1) for m, x in feats.items()}
    torch.manual_seed(0)
    cfg = ModelConfig(heterogeneity={"masked_pooling": True}, fusion={"num_layers": 2})  # type: ignore[arg-type]
    pooled = DecAlign(cfg, DIMS).eval()
    released = _model(False)
    with torch.no_grad():
        torch.testing.assert_close(pooled(longer, lens).unique, pooled(feats, lens).unique)
        torch.testing.assert_close(pooled(feats, lens).unique, _model(True)(feats, lens).unique)
        assert (released(longer, lens).unique - released(feats, lens).unique).abs().max() > 1e-3
