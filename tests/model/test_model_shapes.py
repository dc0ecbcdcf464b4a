"""Shapes and modality handling of DecAlign (docs/method.md §1, §8): aligned and unaligned
inputs, any number of modalities, tiny batches, classification, missing and switched-off
modalities, and the conv-kernel length check."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from decalign.config import ModelConfig
from decalign.config.presets import get_preset
from decalign.model import MODEL_LOSSES, MODEL_TERMS, DecAlign
from decalign.testing.reference import random_inputs, randomize_, with_layers

torch.set_num_threads(1)

DIMS = {"text": 12, "audio": 5, "vision": 7}
SMALL = ModelConfig(d_model=16, fusion=replace(ModelConfig().fusion, num_heads=4, num_layers=1),
                    homogeneity=replace(ModelConfig().homogeneity, pde_dim=8))


def build(config: ModelConfig = SMALL, dims: dict[str, int] = DIMS, outputs: int = 1, seed: int = 0) -> DecAlign:
    torch.manual_seed(seed)
    return randomize_(DecAlign(config, dims, outputs), seed).eval()


def check_output(model: DecAlign, out, batch: int) -> None:
    n, d = len(model.modalities), model.config.d_model
    assert out.prediction.shape == ((batch,) if model.num_outputs == 1 else (batch, model.num_outputs))
    assert out.representation.shape == (batch, 2 * n * d)
    assert out.unique.shape == out.common.shape == (n, batch, d)
    assert set(out.losses) == set(MODEL_LOSSES)
    assert set(out.terms) == set(MODEL_TERMS)
    for value in [*out.losses.values(), *out.terms.values()]:
        assert value.shape == () and torch.isfinite(value)
    assert torch.isfinite(out.prediction).all()


@pytest.mark.parametrize("lengths", [{"text": 6, "audio": 6, "vision": 6}, {"text": 4, "audio": 9, "vision": 13}],
                         ids=["aligned", "unaligned"])
def test_three_modalities(lengths: dict[str, int]) -> None:
    model = build()
    out = model(random_inputs(DIMS, lengths, batch=8, seed=1, dtype=torch.float32))
    check_output(model, out, 8)
    k = SMALL.heterogeneity.num_prototypes
    assert out.plan.shape == (k, k, k)
    torch.testing.assert_close(out.plan.sum(), torch.tensor(1.0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("names", [("a", "b"), ("w", "x", "y", "z")])
@pytest.mark.parametrize("aligned", [True, False])
def test_other_numbers_of_modalities(names: tuple[str, ...], aligned: bool) -> None:
    dims = {m: 3 + i for i, m in enumerate(names)}
    lengths = {m: 5 if aligned else 4 + 2 * i for i, m in enumerate(names)}
    model = build(ModelConfig(fusion=replace(ModelConfig().fusion, num_layers=1)), dims)
    out = model(random_inputs(dims, lengths, batch=6, seed=2, dtype=torch.float32))
    check_output(model, out, 6)
    k = model.config.heterogeneity.num_prototypes
    assert out.plan.shape == (k,) * len(names)
    assert out.losses["heterogeneity"] != 0 and out.losses["homogeneity"] != 0


@pytest.mark.parametrize("batch", [1, 3])
def test_batches_smaller_than_the_number_of_prototypes(batch: int) -> None:
    """B < K: the GMM initialisation tiles the rows; everything stays finite, gradients too."""
    model = build().train()
    inputs = random_inputs(DIMS, dict.fromkeys(DIMS, 5), batch=batch, seed=3, dtype=torch.float32)
    out = model(inputs)
    check_output(model, out, batch)
    total = out.prediction.sum() + sum(out.losses.values())
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert all(torch.isfinite(x.grad).all() for x in inputs.values())


def test_classification_head() -> None:
    model = build(outputs=4)
    out = model(random_inputs(DIMS, dict.fromkeys(DIMS, 5), batch=5, seed=4, dtype=torch.float32))
    assert out.prediction.shape == (5, 4)
    check_output(model, out, 5)


def _slots(out, model: DecAlign, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused and the common slot of ``modality`` in the representation."""
    n, d = len(model.modalities), model.config.d_model
    i = model.modalities.index(modality)
    rep = out.representation
    return rep[:, i * d : (i + 1) * d], rep[:, (n + i) * d : (n + i + 1) * d]


@pytest.mark.parametrize("aligned", [True, False])
def test_missing_modality_at_forward_time(aligned: bool) -> None:
    model = build()
    lengths = dict.fromkeys(DIMS, 6) if aligned else {"text": 4, "audio": 9, "vision": 13}
    inputs = random_inputs(DIMS, lengths, batch=8, seed=5, dtype=torch.float32)
    partial = {m: inputs[m] for m in ("text", "audio")}
    out = model(partial)
    check_output(model, out, 8)
    assert out.losses["heterogeneity"] == 0 and out.losses["homogeneity"] == 0
    assert out.plan is None
    fused, common = _slots(out, model, "vision")
    assert not fused.any() and not common.any()
    assert not out.unique[2].any() and not out.common[2].any()
    for m in ("text", "audio"):
        fused, common = _slots(out, model, m)
        assert fused.abs().sum() > 0 and common.abs().sum() > 0
    # The decoupling loss averages over the modalities present.
    alone = [model({m: inputs[m]}).losses["decoupling"] for m in ("text", "audio")]
    torch.testing.assert_close(out.losses["decoupling"], (alone[0] + alone[1]) / 2)
    # Vision is left out of the others' context: the same as switching it off in the config.
    ablated = DecAlign(replace(SMALL, modalities=("text", "audio")), DIMS).eval()
    ablated.load_state_dict(model.state_dict())
    switched_off = ablated(inputs)
    torch.testing.assert_close(switched_off.prediction, out.prediction)
    for key in MODEL_LOSSES:
        torch.testing.assert_close(switched_off.losses[key], out.losses[key])


@pytest.mark.parametrize("active", [("audio",), ("text", "vision")])
def test_modality_ablation_subsets(active: tuple[str, ...]) -> None:
    full = build()
    model = DecAlign(replace(SMALL, modalities=active), DIMS).eval()
    model.load_state_dict(full.state_dict())
    inputs = random_inputs(DIMS, {"text": 4, "audio": 9, "vision": 13}, batch=8, seed=6, dtype=torch.float32)
    out = model(inputs)
    check_output(model, out, 8)
    assert out.losses["heterogeneity"] == 0 and out.losses["homogeneity"] == 0
    for m in DIMS:
        fused, common = _slots(out, model, m)
        assert bool(fused.any()) == (m in active)
        assert bool(common.any()) == (m in active)
    expected = torch.stack([full({m: inputs[m]}).losses["decoupling"] for m in active]).mean()
    torch.testing.assert_close(out.losses["decoupling"], expected)
    # Switched-off modalities get no gradient.
    out.prediction.sum().backward()
    for m in DIMS:
        grad = model.projection.convs[m].weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == (m in active), m


def test_unknown_modalities_are_errors() -> None:
    with pytest.raises(ValueError, match="'speech'"):
        DecAlign(replace(SMALL, modalities=("text", "speech")), DIMS)
    model = build()
    with pytest.raises(ValueError, match="'speech'"):
        model({"text": torch.randn(2, 3, 12), "speech": torch.randn(2, 3, 4)})


def test_conv_kernel_longer_than_a_sequence_names_the_setting() -> None:
    config = with_layers(get_preset("mosei").model, 1)  # kernel 5 everywhere
    dims = {"text": 16, "audio": 74, "vision": 35}
    model = DecAlign(config, dims)
    inputs = random_inputs(dims, {"text": 9, "audio": 3, "vision": 9}, batch=2, seed=7, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"'audio'.*model\.conv_kernel\.audio"):
        model(inputs)
    with pytest.raises(ValueError, match=r"model\.conv_kernel\.vision"):
        DecAlign(config, dims, seq_lens={"text": 9, "audio": 9, "vision": 4})
    # The exact length works and leaves one step.
    inputs["audio"] = torch.randn(2, 5, 74)
    check_output(model, model(inputs), 2)


def test_projection_is_skipped_when_the_width_is_already_d_model() -> None:
    """docs/method.md §2: with D_m == d the projection is the identity, its weight unused."""
    dims = {"text": 12, "audio": SMALL.d_model, "vision": 7}
    model = build(dims=dims)
    inputs = random_inputs(dims, dict.fromkeys(dims, 5), batch=8, seed=8, dtype=torch.float32)
    out = model(inputs)
    total = out.prediction.sum() + sum(out.losses.values())
    grads = torch.autograd.grad(total, [model.projection.convs["audio"].weight, model.projection.convs["text"].weight],
                                allow_unused=True)
    assert grads[0] is None or not grads[0].any()
    assert grads[1] is not None and grads[1].abs().sum() > 0
