"""The baselines (``model.architecture``): shapes, gradients, sizes under a preset, missing
modalities, the output contract the objective relies on, and checkpoint round trips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from decalign.config import ModelConfig, RunConfig, apply_overrides
from decalign.config.presets import get_preset
from decalign.losses import objective
from decalign.model import MODEL_LOSSES, DecAlign
from decalign.model.baselines import (
    BASELINES,
    EarlyFusion,
    LateFusion,
    MulT,
    TensorFusion,
    build_baseline,
)
from decalign.model.baselines.early_fusion import resample_steps
from decalign.model.baselines.tensor_fusion import TENSOR_BUDGET, outer_fusion, tensor_hidden_size
from decalign.train.checkpoint import ModelInfo, build_model, load_checkpoint, save_checkpoint

torch.set_num_threads(1)

ARCHS = sorted(BASELINES)
DIMS = {"text": 12, "audio": 5, "vision": 7}
TINY = ModelConfig(d_model=16, fusion=dataclasses.replace(ModelConfig().fusion, num_heads=2, num_layers=2))


def _config(arch: str, base: ModelConfig = TINY, **changes: object) -> ModelConfig:
    return dataclasses.replace(base, architecture=arch, **changes)


def _inputs(lengths: dict[str, int], batch: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, lengths[m], DIMS[m], generator=g) for m in lengths}


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _representation_width(arch: str, config: ModelConfig, n_mod: int) -> int:
    if arch == "text":  # the text's own width: its features are pooled, not projected
        return DIMS["text"]
    return n_mod * config.d_model if arch in ("mult", "late") else config.d_model


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("lengths", [{"text": 6, "audio": 6, "vision": 6}, {"text": 6, "audio": 9, "vision": 4}],
                         ids=["aligned", "unaligned"])
def test_forward_backward(arch: str, lengths: dict[str, int]) -> None:
    torch.manual_seed(0)
    config = _config(arch)
    model = build_baseline(config, DIMS, 1, seq_lens=lengths)
    assert isinstance(model, BASELINES[arch])
    out = model(_inputs(lengths))
    assert out.prediction.shape == (5,)
    assert out.representation is not None
    assert out.representation.shape == (5, _representation_width(arch, config, 3))
    assert set(out.losses) == set(MODEL_LOSSES) and all(float(v) == 0.0 for v in out.losses.values())
    assert out.unique is None and out.common is None and out.plan is None
    labels = torch.tensor([-2.0, -2.0, 1.0, 1.0, 0.0])  # pairs: the contrastive term has positives
    loss, terms = objective(out, labels, get_preset("mosi").objective)  # contrastive term included
    assert float(terms["contrastive"]) > 0 and float(terms["decoupling"]) == 0.0
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{arch}: no gradient for {name}"
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("arch", ARCHS)
def test_classification_and_missing_modalities(arch: str) -> None:
    torch.manual_seed(0)
    lengths = {"text": 4, "audio": 7, "vision": 5}
    model = build_baseline(_config(arch), DIMS, 4, seq_lens=lengths).eval()
    full = _inputs(lengths)
    assert model(full).prediction.shape == (5, 4)
    without_vision = {m: x for m, x in full.items() if m != "vision"}
    out = model(without_vision)
    assert out.prediction.shape == (5, 4) and torch.isfinite(out.prediction).all()
    assert model({"audio": full["audio"]}).prediction.shape == (5, 4)
    with pytest.raises(ValueError, match="not built for"):
        model({**full, "smell": full["text"]})


@pytest.mark.parametrize("arch", ARCHS)
def test_switched_off_modality_equals_missing_input(arch: str) -> None:
    """``model.modalities`` (the unimodal/bimodal ablations) works for baselines like for DecAlign."""
    torch.manual_seed(0)
    lengths = {"text": 6, "audio": 6, "vision": 6}
    full_model = build_baseline(_config(arch), DIMS, 1, seq_lens=lengths).eval()
    sub_model = build_baseline(_config(arch, modalities=("text", "audio")), DIMS, 1, seq_lens=lengths).eval()
    sub_model.load_state_dict(full_model.state_dict())
    x = _inputs(lengths)
    with torch.no_grad():
        a = sub_model(x).prediction
        b = full_model({m: x[m] for m in ("text", "audio")}).prediction
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="does not have"):
        build_baseline(_config(arch, modalities=("smell",)), DIMS)


def test_sizes_under_a_preset() -> None:
    """Baselines reuse DecAlign's blocks at the preset's width and depth: MulT is exactly DecAlign
    without the decoupler, the homogeneity encoders and the common half of the head."""
    model_cfg = get_preset("mosi").model
    dims = {"text": 768, "audio": 5, "vision": 20}
    d, pde, n = model_cfg.d_model, model_cfg.homogeneity.pde_dim, 3
    decalign = _n_params(DecAlign(model_cfg, dims))
    assert decalign == 842_241  # the released MOSI model
    mult = MulT(_config("mult", model_cfg), dims)
    extra = (n * d * d + d * d) + n * (d * d + d + d * pde + pde) + n * d
    assert _n_params(mult) == decalign - extra
    assert len(mult.fusion.layers) == model_cfg.fusion.num_layers and mult.fusion.d_model == d
    late = LateFusion(_config("late", model_cfg), dims)
    assert _n_params(late) == _n_params(mult) and not late.encoders.config.cross_modal
    tfn = TensorFusion(_config("tfn", model_cfg), dims)
    h = tfn.hidden_size
    assert h == tensor_hidden_size(d, n) == 15
    assert tfn.post_fusion[1].in_features == (h + 1) ** n <= TENSOR_BUDGET
    early = EarlyFusion(_config("early", model_cfg), dims)
    assert early.projection.convs["fused"].in_channels == sum(dims.values())
    assert len(early.encoder.layers) == model_cfg.fusion.num_layers


def test_tensor_hidden_size_respects_the_budget() -> None:
    for d in (8, 16, 32, 64, 256):
        for m in (1, 2, 3, 4, 5):
            h = tensor_hidden_size(d, m)
            assert 1 <= h <= max(1, d // 4)
            assert h == 1 or (h + 1) ** m <= TENSOR_BUDGET
            assert (h + 2) ** m > TENSOR_BUDGET or h == max(1, d // 4)


def test_outer_fusion_closed_form() -> None:
    a, b = torch.tensor([[2.0, 3.0]]), torch.tensor([[5.0]])
    fused = outer_fusion([a, b]).view(3, 2)
    expected = torch.tensor([[10.0, 2.0], [15.0, 3.0], [5.0, 1.0]])
    torch.testing.assert_close(fused, expected)
    # a zero factor keeps exactly the other modality's terms (TFN's missing modality)
    fused = outer_fusion([a, torch.zeros(1, 4)]).view(3, 5)
    torch.testing.assert_close(fused[:, -1], torch.tensor([2.0, 3.0, 1.0]))
    assert float(fused[:, :-1].abs().sum()) == 0.0


def test_early_fusion_resampling() -> None:
    x = torch.arange(12.0).view(1, 6, 2)
    assert resample_steps(x, 6) is x
    torch.testing.assert_close(resample_steps(x, 3), torch.tensor([[[1.0, 2.0], [5.0, 6.0], [9.0, 10.0]]]))


def test_early_fusion_checks_the_kernel_against_lengths() -> None:
    with pytest.raises(ValueError, match="conv kernel"):
        EarlyFusion(
            _config("early", conv_kernel={"default": 5}), DIMS, 1, seq_lens={"text": 6, "audio": 3, "vision": 6}
        )


@pytest.mark.parametrize("arch", ["decalign", *ARCHS])
def test_checkpoint_round_trip(arch: str, tmp_path: Path) -> None:
    """``build_model`` dispatches on the architecture, so save/load (and eval, predict, resume)
    work for every model unchanged."""
    torch.manual_seed(0)
    config = apply_overrides(RunConfig(), {"model.architecture": arch, "model.d_model": 16,
                                           "model.fusion.num_heads": 2, "model.fusion.num_layers": 1,
                                           "model.homogeneity.pde_dim": 8})
    lengths = {"text": 6, "audio": 6, "vision": 6}
    info = ModelInfo(kind="synthetic", task="regression", modalities=tuple(DIMS), input_dims=dict(DIMS),
                     seq_lens=lengths, num_outputs=1)
    model = build_model(config, info).eval()
    expected = DecAlign if arch == "decalign" else BASELINES[arch]
    assert type(model) is expected
    path = save_checkpoint(tmp_path / "model.safetensors", model, config, info)
    loaded = load_checkpoint(path)
    assert type(loaded.model) is expected and loaded.config.model.architecture == arch
    x = _inputs(lengths)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(x).prediction, model(x).prediction)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match=r"model\.architecture"):
        apply_overrides(RunConfig(), {"model.architecture": "lstm"})
    with pytest.raises(ValueError, match="not a baseline"):
        build_baseline(TINY, DIMS)
