"""Modality dropout and the validation modality check (``train.modality_dropout``,
``train.modality_check``), and the misleading modality they are meant to survive."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from decalign.api import evaluate_checkpoint, load_data, resolve_config, train
from decalign.config import ConfigError, DataConfig, SyntheticConfig
from decalign.data.misleading import misleading_features
from decalign.train.engine import drop_modality

TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
        "train.batch_size=16", "train.num_threads=1", "train.seeds=[1]", "train.lr=1e-3"]


def _features() -> dict[str, torch.Tensor]:
    return {m: torch.zeros(2, 3, 4) for m in ("text", "audio", "vision")}


def test_drop_modality_off_keeps_every_modality_and_draws_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert list(drop_modality(_features(), None, 0.0, g)) == ["text", "audio", "vision"]
    # p = 0 draws once (the coin) but never drops; a single modality is never dropped or drawn for.
    one = {"text": torch.zeros(1, 1, 1)}
    g2 = torch.Generator().manual_seed(0)
    assert drop_modality(one, None, 1.0, g2) == one and torch.equal(g2.get_state(), state)


def test_drop_modality_always_drops_exactly_one_uniformly() -> None:
    g = torch.Generator().manual_seed(0)
    counts = dict.fromkeys(("text", "audio", "vision"), 0)
    for _ in range(3000):
        kept = drop_modality(_features(), None, 1.0, g)
        assert len(kept) == 2
        (gone,) = set(counts) - set(kept)
        counts[gone] += 1
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts.values()), counts


def test_drop_modality_only_among_active_and_at_rate_p() -> None:
    g = torch.Generator().manual_seed(1)
    dropped = 0
    for _ in range(2000):
        kept = drop_modality(_features(), ("text", "audio"), 0.25, g)
        assert "vision" in kept  # inactive modalities are not the model's to lose
        dropped += len(kept) == 2
    assert abs(dropped / 2000 - 0.25) < 0.03


def test_modality_dropout_is_validated() -> None:
    data = _data(misleading=False)
    with pytest.raises(ConfigError, match="modality_dropout"):
        resolve_config(data, overrides=["train.modality_dropout=1.5"])


def test_misleading_features_track_labels_on_train_only() -> None:
    rng = np.random.default_rng(0)
    labels = {s: rng.uniform(-3, 3, 400).astype(np.float32) for s in ("train", "valid", "test")}
    feats = misleading_features(labels, dim=8, noise=0.5, seed=3)
    again = misleading_features(labels, dim=8, noise=0.5, seed=3)
    for s in labels:
        assert feats[s].shape == (400, 1, 8) and feats[s].dtype == np.float32
        np.testing.assert_array_equal(feats[s], again[s])  # deterministic
    # the best linear read-out fitted on train: near perfect there, nothing elsewhere
    x = feats["train"][:, 0]
    w, *_ = np.linalg.lstsq(x, labels["train"], rcond=None)
    assert np.corrcoef(x @ w, labels["train"])[0, 1] > 0.9
    for s in ("valid", "test"):
        assert abs(np.corrcoef(feats[s][:, 0] @ w, labels[s])[0, 1]) < 0.15


def _data(misleading: bool):
    data = load_data(None, DataConfig(dataset="synthetic", synthetic=SyntheticConfig(
        n_train=192, n_valid=64, n_test=64, seq_len=4, dims={"text": 12, "audio": 5, "vision": 6})))
    if misleading:
        feats = misleading_features({s: sp.labels for s, sp in data.splits.items()}, dim=6, noise=0.3, seed=0)
        for s, sp in data.splits.items():
            sp.features["vision"] = np.repeat(feats[s], 4, axis=1)
    return data


@pytest.mark.slow
def test_modality_check_leaves_the_misleading_modality_out(tmp_path: Path) -> None:
    data = _data(misleading=True)
    config = resolve_config(data, overrides=[*TINY, "train.num_epochs=4", "train.modality_dropout=0.5",
                                             "train.modality_check=true"])
    result = train(config, data, tmp_path / "run", quiet=True, tensorboard=False)
    seed = json.loads((tmp_path / "run" / "seed_1" / "result.json").read_text())
    assert seed["modalities_left_out"] == ["vision"]
    # left out at a validation no later than the selected epoch's (whose model is without it)
    assert list(seed["left_out_epochs"]) == ["vision"] and 1 <= seed["left_out_epochs"]["vision"] <= seed["best_epoch"]
    # the saved model is the checked one: it ignores vision and reproduces the run's test metrics
    again = evaluate_checkpoint(tmp_path / "run" / "seed_1" / "model.safetensors", dataset=_data(misleading=True))
    assert again["mae"] == pytest.approx(result.mean["mae"], rel=1e-5)
    # the released training (neither option) trusts the misleading modality on test
    plain = resolve_config(data, overrides=[*TINY, "train.num_epochs=4"])
    trusting = train(plain, _data(misleading=True), tmp_path / "plain", quiet=True, tensorboard=False)
    assert result.mean["mae"] < trusting.mean["mae"] - 0.05, (result.mean["mae"], trusting.mean["mae"])


class _ByModalities(torch.nn.Module):
    """Predictions that depend only on which modalities are active: with ``vision`` they are
    wrong (``-3 y``), with ``text`` the labels plus noise of size ``text_noise`` (2: an
    undertrained text path, worse than a constant), else the constant ``audio_bias`` (audio
    carries nothing)."""

    def __init__(self, labels: torch.Tensor, text_noise: float, audio_bias: float = 0.0) -> None:
        super().__init__()
        self.active: tuple[str, ...] = ("text", "audio", "vision")
        self.labels = labels
        self.text_noise = text_noise
        self.audio_bias = audio_bias

    def forward(self, features: dict[str, torch.Tensor], lengths: Any = None) -> Any:
        from types import SimpleNamespace

        from decalign.losses import MODEL_LOSSES

        idx = features["index"][:, 0, 0].long()
        y = self.labels[idx]
        if "vision" in self.active:
            pred = -3 * y
        elif "text" in self.active:
            pred = y + self.text_noise * torch.sign(torch.sin(idx.float() * 12.9898))
        else:
            pred = torch.full_like(y, self.audio_bias)
        return SimpleNamespace(prediction=pred, losses=dict.fromkeys(MODEL_LOSSES, torch.zeros(())))


def _check(model: _ByModalities) -> tuple[tuple[str, ...], dict[str, float], dict[str, float]]:
    """One validation's check of ``model`` as the engine runs it: (kept, their metrics, full metrics)."""
    from decalign.metrics import sentiment_metrics
    from decalign.train.batches import SplitTensors
    from decalign.train.distributed import Context
    from decalign.train.engine import check_modalities, constant_metrics, evaluate

    labels = model.labels
    data = SplitTensors(features={"index": torch.arange(64.0)[:, None, None]}, lengths={"index": torch.ones(64)},
                        labels=labels, ids=np.arange(64).astype(str))
    config = resolve_config(_data(misleading=False), overrides=TINY)
    ctx, cpu = Context.single(), torch.device("cpu")
    full = evaluate(model, data, config, cpu, ctx, sentiment_metrics).metrics
    constant = constant_metrics(labels.numpy(), None, config, sentiment_metrics)
    kept, metrics = check_modalities(model, data, config, cpu, ctx, sentiment_metrics, full, constant)
    return kept, metrics, full


def test_constant_metrics_are_the_best_constant_predictions_closed_form() -> None:
    from decalign.metrics import sentiment_metrics
    from decalign.train.engine import constant_metrics

    y = np.array([-2.0, -1.0, 0.5, 1.5, 3.0], np.float32)
    mse = resolve_config(_data(misleading=False), overrides=TINY)
    assert constant_metrics(y, None, mse, sentiment_metrics)["loss"] == pytest.approx(np.var(y))  # R^2 = 0
    l1 = resolve_config(_data(misleading=False), overrides=[*TINY, "objective.task_loss=l1"])
    assert constant_metrics(y, None, l1, sentiment_metrics)["loss"] == pytest.approx(np.mean(np.abs(y - 0.5)))
    assert constant_metrics(y, None, mse, sentiment_metrics)["corr"] == 0.0  # the metrics' value for a constant

    def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        return {"acc": float(np.mean(logits.argmax(1) == labels))}

    ce = replace(mse, objective=replace(mse.objective, task_loss="ce"))
    c = np.array([0, 0, 0, 2], np.int64)  # class 1 never occurs: its logit is tiny, not -inf
    out = constant_metrics(c, 3, ce, accuracy)
    assert out["acc"] == 0.75 and out["loss"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))


def test_modality_check_removes_at_most_the_most_harmful_modality_per_validation() -> None:
    labels = torch.linspace(-3, 3, 64)
    model = _ByModalities(labels, text_noise=0.5)
    kept, metrics, full = _check(model)
    # Leaving out text or audio keeps vision (no better); leaving out vision helps most, and the
    # model without it (text + audio) beats every constant: vision goes, the others stay for now.
    assert kept == ("text", "audio") and model.active == ("text", "audio", "vision")
    assert metrics["loss"] < full["loss"]
    model.active = kept
    again, _, _ = _check(model)
    # without text the model is the constant 0, no better than a constant: text stays; without
    # audio nothing changes: audio stays
    assert again == ("text", "audio")


def test_modality_check_keeps_an_undertrained_modality_and_drops_a_misleading_one() -> None:
    """The failure the constant prediction guards against (mosi-dev, cross-validation fold 4,
    frozen features, seed 1113): after one epoch the text path was a little worse than a
    constant (validation loss 2.396 against the best constant's 2.181), the model without text
    (audio, which carries nothing) a little better than the full one (2.345), and text was left
    out for good: test Acc-2 48. The same numbers in miniature, then a misleading modality next
    to the same undertrained text path, which must still go."""
    labels = torch.linspace(-3, 3, 64)
    variance = float(labels.var(unbiased=False))  # the best constant's loss
    model = _ByModalities(labels, text_noise=2.0, audio_bias=0.8)
    model.active = ("text", "audio")
    kept, metrics, full = _check(model)
    without_text = variance + 0.8**2
    noisy = 4.0 * 63 / 64  # text noise 2 on every clip but the first (sign(sin 0) = 0)
    assert full["loss"] == pytest.approx(noisy) and without_text < 0.98 * full["loss"]  # the old rule's drop
    assert without_text - variance > 0.5 * (full["loss"] - variance)  # but not half the shortfall
    assert kept == ("text", "audio") and metrics == full
    # a misleading vision next to it: the full model is far worse than a constant, and the model
    # without vision (still worse than a constant) removes nearly all of that: vision goes
    model.active = ("text", "audio", "vision")
    kept, metrics, full = _check(model)
    assert kept == ("text", "audio") and full["loss"] > 10 * variance and metrics["loss"] == pytest.approx(noisy)
    # a text path as bad as the shortfall it causes, next to a constant audio: no way to tell
    # undertrained from harmful in one validation, and the rule leaves text out
    model = _ByModalities(labels, text_noise=2.0, audio_bias=0.0)
    model.active = ("text", "audio")
    assert _check(model)[0] == ("audio",)
