"""Affordable fine-tuning of the BERT text encoder: top-k layers with a cache of the frozen ones,
the encoder's learning-rate group and warm-up, and gradient accumulation.

A tiny random BERT saved to a temporary directory stands in for MiniLM (same code path)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from decalign.config import ConfigError, RunConfig, TextEncoderConfig, apply_overrides
from decalign.config.presets import get_preset
from decalign.data.synthetic import make_synthetic
from decalign.data.types import MultimodalDataset
from decalign.model import DecAlign
from decalign.testing.reference import with_layers
from decalign.train.batches import SplitTensors
from decalign.train.distributed import Context
from decalign.train.loop import train_epoch
from decalign.train.optim import make_optimizer, optimizer_step

transformers = pytest.importorskip("transformers")
from decalign.model.text_encoder import BertTextEncoder  # noqa: E402  (needs transformers)

torch.set_num_threads(1)
VOCAB, LAYERS, HIDDEN = 50, 4, 16


def _save_bert(path: Path, dropout: float) -> Path:
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                                     hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """No dropout: the uncached reference (plain ``transformers`` forward) is deterministic too."""
    return _save_bert(tmp_path_factory.mktemp("bert_nodrop"), 0.0)


@pytest.fixture(scope="module")
def bert_dropout_dir(tmp_path_factory) -> Path:
    return _save_bert(tmp_path_factory.mktemp("bert_drop"), 0.1)


def tokens(batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    """``[B, 3, T]`` ids / mask (varied true lengths, zero-padded) / segments."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, steps), generator=gen)
    lengths = torch.randint(2, steps + 1, (batch,), generator=gen)
    mask = (torch.arange(steps)[None] < lengths[:, None]).long()
    return torch.stack([ids * mask, mask, torch.zeros_like(ids)], dim=1)


def frozen_reference(path: Path, k: int) -> BertTextEncoder:
    """The plain full-model encoder with the embeddings and all but the top ``k`` layers frozen."""
    ref = BertTextEncoder(path)
    for p in ref.model.parameters():
        p.requires_grad_(False)
    for layer in ref.model.encoder.layer[LAYERS - k:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    return ref


@pytest.mark.parametrize("k", [1, 3])
def test_cached_top_k_equals_the_uncached_frozen_model(bert_dir: Path, k: int) -> None:
    encoder = BertTextEncoder(bert_dir, train_layers=k).train()
    reference = frozen_reference(bert_dir, k).train()
    text = tokens(6, 10)
    # Fill the cache from other batches (different composition and order), then read from it.
    with torch.no_grad():
        encoder(torch.cat([text[[4, 2, 0]], tokens(3, 10, seed=5)]))
        encoder(text[[5, 3, 1]])
    assert encoder.cache is not None and len(encoder.cache) == 9 and encoder.cache.misses == 9
    weights = torch.randn(6, 10, HIDDEN, generator=torch.Generator().manual_seed(2))
    out = encoder(text)
    assert encoder.cache.hits == 6 and encoder.cache.misses == 9  # every row came from the cache
    expected = reference(text)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    trainable = dict(encoder.named_parameters())
    for name, param in reference.named_parameters():
        if param.requires_grad:
            assert trainable[name].requires_grad
            torch.testing.assert_close(trainable[name].grad, param.grad, rtol=1e-4, atol=1e-6)
        else:
            assert not trainable[name].requires_grad and trainable[name].grad is None
    assert sum(p.requires_grad for p in encoder.parameters()) == sum(p.requires_grad for p in reference.parameters())


def test_frozen_part_has_no_dropout_and_cache_equals_recomputation(bert_dropout_dir: Path) -> None:
    cached = BertTextEncoder(bert_dropout_dir, train_layers=1).train()
    uncached = BertTextEncoder(bert_dropout_dir, train_layers=1, cache_frozen=False).train()
    assert uncached.cache is None
    assert not cached.model.embeddings.training and not cached.model.encoder.layer[0].training
    assert cached.model.encoder.layer[LAYERS - 1].training
    text = tokens(5, 8)
    with torch.no_grad():
        cached(text[[1, 0]])  # part of the batch cached beforehand
        torch.manual_seed(3)
        a = cached(text)
        torch.manual_seed(3)
        b = uncached(text)
        torch.manual_seed(4)
        c = uncached(text)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # same dropout masks in the top layer
    assert not torch.allclose(b, c)  # and the top layer does use dropout in training mode


def test_cache_is_emptied_when_the_frozen_weights_change(bert_dir: Path) -> None:
    encoder = BertTextEncoder(bert_dir, train_layers=2).eval()
    text = tokens(4, 8)
    with torch.no_grad():
        before = encoder(text)
        state = copy.deepcopy(encoder.state_dict())
        state["model.embeddings.word_embeddings.weight"] += 0.5
        encoder.load_state_dict(state)  # as the engine does with the best epoch's weights
        after = encoder(text)
        fresh = BertTextEncoder(bert_dir, train_layers=2, cache_frozen=False).eval()
        fresh.load_state_dict(state)
        expected = fresh(text)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
    assert encoder.cache is not None and encoder.cache.misses == 8


def test_train_layers_is_checked_at_the_edge(bert_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"train_layers=5 .* only 4 layers"):
        BertTextEncoder(bert_dir, train_layers=5)
    with pytest.raises(ValueError, match=r"train_layers needs model\.text_encoder\.kind='bert'"):
        TextEncoderConfig(train_layers=1)
    with pytest.raises(ConfigError, match="train_layers"):
        apply_overrides(get_preset("mosi"), ["model.text_encoder.train_layers=-1"])
    with pytest.raises(ConfigError, match=r"bert_warmup_steps > 0 needs model\.text_encoder\.kind='bert'"):
        apply_overrides(get_preset("mosi"), ["train.bert_warmup_steps=10"])
    with pytest.raises(ConfigError, match="grad_accumulation"):
        apply_overrides(get_preset("mosi"), ["train.grad_accumulation=0"])
    # max_length was never read (the token length is the data's): refused rather than ignored,
    # while a saved config that holds its default (null) still loads
    with pytest.raises(ConfigError, match=r"max_length is not read: .* --text-max-len"):
        apply_overrides(get_preset("mosi"), ["model.text_encoder.max_length=30"])
    assert TextEncoderConfig(**{"kind": "features", "max_length": None}).max_length is None
    frozen = BertTextEncoder(bert_dir, train_layers=0)
    assert not any(p.requires_grad for p in frozen.parameters())


class _TwoPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.text_encoder = nn.Linear(3, 3)
        self.head = nn.Linear(3, 1)
        self.text_encoder.bias.requires_grad_(False)  # frozen: must not be optimised at all


def test_encoder_learning_rate_group_and_linear_warm_up(bert_dir: Path) -> None:
    config = apply_overrides(get_preset("mosi"), {
        "model.text_encoder.kind": "bert", "model.text_encoder.path": str(bert_dir), "train.lr": 1e-2,
        "train.bert_lr": 1e-3, "train.bert_warmup_steps": 4, "train.weight_decay": 0.0})
    model = _TwoPart()
    optimizer = make_optimizer(model, config)
    other, bert = optimizer.param_groups
    assert [id(p) for p in bert["params"]] == [id(model.text_encoder.weight)]
    assert {id(p) for p in other["params"]} == {id(p) for p in model.head.parameters()}
    before = [p.detach().clone() for p in (model.text_encoder.weight, model.head.weight)]
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    model.head(model.text_encoder(x)).pow(2).sum().backward()
    optimizer_step(optimizer)
    # Adam's first step moves every coordinate by lr * g / (|g| + eps), i.e. by lr where |g| >> eps.
    encoder_step = (model.text_encoder.weight - before[0]).abs()
    head_step = (model.head.weight - before[1]).abs()
    torch.testing.assert_close(encoder_step, torch.full_like(encoder_step, 1e-3 / 4), rtol=1e-3, atol=0)
    torch.testing.assert_close(head_step, torch.full_like(head_step, 1e-2), rtol=1e-3, atol=0)
    assert bert["lr"] == 1e-3 and bert["warmup_done"] == 1  # the scheduler's lr is left as it was
    for _ in range(5):
        optimizer_step(optimizer)
    assert bert["warmup_done"] == 4 and bert["lr"] == 1e-3
    restored = make_optimizer(_TwoPart(), config)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.param_groups[1]["warmup_done"] == 4  # resumes where it stopped


def test_linear_decay_of_the_encoder_rate_is_the_closed_form(bert_dir: Path) -> None:
    """``train.bert_decay=linear``: lr * min(1, (s+1)/W) * (S-s)/S at step s, S = epochs x steps per
    epoch, 0 after S; the other group and the group's own ``lr`` are untouched."""
    config = apply_overrides(get_preset("mosi"), {
        "model.text_encoder.kind": "bert", "model.text_encoder.path": str(bert_dir), "train.lr": 1e-2,
        "train.bert_lr": 1e-3, "train.bert_warmup_steps": 3, "train.bert_decay": "linear",
        "train.num_epochs": 2})
    optimizer = make_optimizer(_TwoPart(), config, steps_per_epoch=5)
    other, bert = optimizer.param_groups
    applied: list[tuple[float, float]] = []
    optimizer.step = lambda: applied.append((other["lr"], bert["lr"]))  # type: ignore[method-assign]
    for _ in range(12):
        optimizer_step(optimizer)
    want = [1e-3 * min(1.0, (s + 1) / 3) * max(0.0, (10 - s) / 10) for s in range(12)]
    assert [b for _, b in applied] == pytest.approx(want)
    assert want[-1] == 0.0 and want[9] == pytest.approx(1e-4)
    assert all(a == 1e-2 for a, _ in applied) and bert["lr"] == 1e-3
    restored = make_optimizer(_TwoPart(), config, steps_per_epoch=5)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.param_groups[1]["decay_done"] == 12
    with pytest.raises(ConfigError, match=r"bert_decay='linear' needs model\.text_encoder\.kind='bert'"):
        apply_overrides(get_preset("mosi"), ["train.bert_decay=linear"])


def _dataset(n: int = 16) -> tuple[RunConfig, SplitTensors]:
    synthetic = make_synthetic(replace(get_preset("synthetic").data.synthetic, n_train=n, n_valid=4, n_test=4,
                                       seq_len=6, dims={"text": 8, "audio": 3}))
    assert isinstance(synthetic, MultimodalDataset)
    return get_preset("mosi"), SplitTensors.from_split(synthetic.splits["train"])


def _one_epoch_delta(config: RunConfig, data: SplitTensors, model: nn.Module) -> list[torch.Tensor]:
    """Parameter change after one epoch with SGD(lr=1): minus the summed gradient of each step."""
    model = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    train_epoch(model, data, config, optimizer, torch.Generator().manual_seed(0), torch.device("cpu"),
                Context.single(), lambda p, y: {}, progress=False)
    return [p.detach() - b for p, b in zip(model.parameters(), before)]


def _no_dropout(config: RunConfig, **objective: float) -> RunConfig:
    overrides: dict[str, object] = {
        "model.text_dropout": 0.0, "model.output_dropout": 0.0, "model.fusion.attn_dropout": 0.0,
        "model.fusion.relu_dropout": 0.0, "model.fusion.embed_dropout": 0.0, "model.fusion.res_dropout": 0.0,
        "train.grad_clip": None, **{f"objective.{k}": v for k, v in objective.items()}}
    return apply_overrides(config, overrides)


def test_accumulating_two_half_batches_is_one_full_batch_for_per_sample_losses() -> None:
    base, data = _dataset(16)
    # Task loss + the decoupling loss (a per-sample mean): no batch statistics in the objective.
    config = _no_dropout(base, alpha=0.0, beta=0.0, w_ct=0.0)
    torch.manual_seed(0)
    model = DecAlign(with_layers(config.model, 1), {"text": 8, "audio": 3})
    full = _one_epoch_delta(apply_overrides(config, {"train.batch_size": 16}), data, model)
    halves = _one_epoch_delta(apply_overrides(config, {"train.batch_size": 8, "train.grad_accumulation": 2}),
                              data, model)
    separate = _one_epoch_delta(apply_overrides(config, {"train.batch_size": 8}), data, model)
    for a, b in zip(full, halves):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(full, separate))


def test_batch_statistic_losses_make_accumulation_differ_from_the_full_batch() -> None:
    """The prototype OT, moment matching, MMD and contrastive terms are statistics of a batch: two
    half-batches give the gradient of the mean of two half-batch statistics, not of the full
    batch's. Documented in docs/finetune.md; this pins the difference down."""
    base, data = _dataset(16)
    config = _no_dropout(base, alpha=1.0, beta=1.0)
    torch.manual_seed(0)
    model = DecAlign(with_layers(config.model, 1), {"text": 8, "audio": 3})
    full = _one_epoch_delta(apply_overrides(config, {"train.batch_size": 16}), data, model)
    halves = _one_epoch_delta(apply_overrides(config, {"train.batch_size": 8, "train.grad_accumulation": 2}),
                              data, model)
    gap = max(float((a - b).abs().max()) for a, b in zip(full, halves))
    scale = max(float(a.abs().max()) for a in full)
    assert gap > 1e-3 * scale


def test_decalign_trains_with_the_cached_top_layer(bert_dir: Path, tmp_path: Path) -> None:
    """End to end through :func:`decalign.api.train`: one epoch, top layer fine-tuned from the cache."""
    from decalign.api import train

    synthetic = make_synthetic(replace(get_preset("synthetic").data.synthetic, n_train=24, n_valid=8, n_test=8,
                                       seq_len=6, dims={"text": 8, "audio": 3}))
    splits = {}
    for i, (name, split) in enumerate(synthetic.splits.items()):
        ids = tokens(len(split), 6, seed=10 + i).numpy().astype(np.int64)
        # text lengths from the attention mask, as the MMSA reader derives them
        splits[name] = replace(split, text_bert=ids, lengths={**split.lengths, "text": ids[:, 1].sum(axis=1)})
    dataset = replace(synthetic, splits=splits)
    config = apply_overrides(get_preset("synthetic"), {
        "model.text_encoder.kind": "bert", "model.text_encoder.path": str(bert_dir),
        "model.text_encoder.train_layers": 1, "model.fusion.num_layers": 1, "train.num_epochs": 2,
        "train.seeds": [0], "train.batch_size": 8, "train.bert_warmup_steps": 2, "train.grad_accumulation": 2,
        "train.bert_lr": 1e-3, "train.bert_decay": "linear", "train.early_stop_patience": 5})
    result = train(config, dataset, tmp_path / "run", quiet=True, tensorboard=False)
    # 24 clips at batch 8, accumulated in twos: 2 optimizer steps an epoch, so the decay spans 4
    from decalign.train.checkpoint import load_training_state

    group = load_training_state(tmp_path / "run" / "seed_0" / "state.pt")["optimizer"]["param_groups"][1]
    assert group["decay_steps"] == 4 and group["decay_done"] == 4
    assert (tmp_path / "run" / "seed_0" / "model.safetensors").is_file()
    assert np.isfinite(result.mean["mae"])
    # the saved model predicts the test split from the file's token ids and lengths (lengths up
    # to T = 6, beyond the 3 rows of a token array) as the engine did at test time
    import csv

    from decalign.inference import Predictor

    predictor = Predictor.from_checkpoint(tmp_path / "run" / "seed_0" / "model.safetensors")
    got = predictor.predict_split(dataset.splits["test"]).values
    with open(tmp_path / "run" / "seed_0" / "test_predictions.csv") as f:
        want = np.array([float(row["prediction"]) for row in csv.DictReader(f)])
    assert dataset.splits["test"].lengths["text"].max() > 3
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
