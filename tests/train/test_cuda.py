"""The CUDA paths, which CI (no GPU) never runs; skipped without a CUDA device.

On a GPU machine: ``pytest tests/train/test_cuda.py`` (``benchmarks/gpu_check.sh`` runs it with the
other GPU checks and records what it measured). What only a GPU exercises: PyTorch's fused
dropout and ``scaled_dot_product_attention`` in place of our CPU kernels
(:mod:`decalign.model.kernels` steps aside off the CPU), the bf16 autocast of ``train.amp`` with the
alignment losses kept in float32, and a model trained on CUDA then used on a CPU.

TF32 is switched off wherever a CUDA result is compared with a CPU one: cuDNN convolutions (our
temporal projection) use it by default, and its 10-bit mantissa would hide a real difference.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model_reference import LENGTHS, assert_same_forward_and_backward, build_pair

from decalign.config.presets import get_preset
from decalign.model import MODEL_LOSSES, DecAlign
from decalign.testing.reference import PRESET_SHAPES, random_inputs, randomize_, without_dropout

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device (CI has none): run benchmarks/gpu_check.sh on a GPU machine",
)

CUDA = torch.device("cuda")
TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
        "train.batch_size=16", "train.seeds=[1]", "train.num_epochs=3"]


@pytest.fixture
def no_tf32() -> Iterator[None]:
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _on_cuda(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {m: x.detach().to(CUDA).requires_grad_() for m, x in inputs.items()}


@pytest.mark.parametrize("layout", ["aligned", "unaligned"])
@pytest.mark.parametrize("preset", list(PRESET_SHAPES))
def test_matches_the_reference_on_cuda(preset: str, layout: str) -> None:
    """The faithfulness check of ``test_model_reference`` (prediction, the three losses, every
    gradient, float64, 1e-5) with both models on the GPU, where our model runs PyTorch's
    attention instead of the CPU kernels."""
    reference, ours = build_pair(get_preset(preset).model, preset)
    reference, ours = reference.to(CUDA).eval(), ours.to(CUDA).eval()
    dims, _ = PRESET_SHAPES[preset]
    inputs = _on_cuda(random_inputs(dims, dict(zip(dims, LENGTHS[preset, layout])), batch=8, seed=1))
    assert_same_forward_and_backward(reference, ours, inputs)


def test_train_mode_without_dropout_matches_the_reference_on_cuda() -> None:
    config = without_dropout(get_preset("mosi").model)
    reference, ours = build_pair(config, "mosi", seed=3)
    reference, ours = reference.to(CUDA).train(), ours.to(CUDA).train()
    dims, _ = PRESET_SHAPES["mosi"]
    inputs = _on_cuda(random_inputs(dims, dict(zip(dims, LENGTHS["mosi", "aligned"])), batch=8, seed=4))
    assert_same_forward_and_backward(reference, ours, inputs)


def _mosi_model(seed: int = 0, dropout: bool = False) -> tuple[DecAlign, dict[str, torch.Tensor]]:
    config = get_preset("mosi").model
    config = config if dropout else without_dropout(config)
    dims, _ = PRESET_SHAPES["mosi"]
    torch.manual_seed(seed)
    model = randomize_(DecAlign(config, dims, 1), seed)
    inputs = random_inputs(dims, dict.fromkeys(dims, 20), batch=32, seed=seed + 1, dtype=torch.float32)
    return model, inputs


def test_float32_on_cuda_equals_the_cpu(no_tf32: None) -> None:
    """The same float32 model on both devices: prediction and losses within float32 rounding."""
    model, inputs = _mosi_model()
    model.eval()
    with torch.no_grad():
        cpu = model(inputs)
        gpu = model.to(CUDA)({m: x.to(CUDA) for m, x in inputs.items()})
    torch.testing.assert_close(gpu.prediction.cpu(), cpu.prediction, rtol=1e-4, atol=1e-5)
    for key in MODEL_LOSSES:
        torch.testing.assert_close(gpu.losses[key].cpu(), cpu.losses[key], rtol=1e-4, atol=1e-6)


def _flat_grad(model: DecAlign) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_amp_keeps_the_alignment_losses_in_float32_and_tracks_float32() -> None:
    """``train.amp``: under bf16 autocast the GMM/OT and moment/MMD losses are still computed in
    float32 (docs/method.md §9), everything stays finite, and the step's gradient points the way
    the float32 gradient does (bf16 has an 8-bit mantissa: close, not equal)."""
    model, inputs = _mosi_model()
    model.to(CUDA).train()
    inputs = {m: x.detach().to(CUDA) for m, x in inputs.items()}
    labels = torch.linspace(-3, 3, 32, device=CUDA)

    def step(amp: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out = model(inputs)
            loss = torch.nn.functional.mse_loss(out.prediction.float().flatten(), labels)
            loss = loss + sum(out.losses[k] for k in MODEL_LOSSES)
        loss.backward()
        return out.prediction.float().detach(), {k: v.detach() for k, v in out.losses.items()}, _flat_grad(model)

    pred32, losses32, grad32 = step(False)
    pred16, losses16, grad16 = step(True)
    for key in ("heterogeneity", "homogeneity"):
        assert losses16[key].dtype == torch.float32, key
    for key in MODEL_LOSSES:
        assert torch.isfinite(losses16[key]), key
        assert math.isclose(float(losses16[key]), float(losses32[key]), rel_tol=0.1, abs_tol=1e-3), key
    assert torch.isfinite(grad16).all()
    scale = float(pred32.abs().max())
    assert float((pred16 - pred32).abs().max()) < 0.05 * scale + 1e-3
    cosine = torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)
    assert float(cosine) > 0.99


def _tiny_data():
    from decalign.config import DataConfig, SyntheticConfig
    from decalign.data import load_dataset

    return load_dataset(None, DataConfig(dataset="synthetic", synthetic=SyntheticConfig(
        n_train=96, n_valid=32, n_test=32, dims={"text": 12, "audio": 5, "vision": 6})))


def _saved_predictions(path: Path) -> np.ndarray:
    with path.open() as fh:
        return np.array([float(row["prediction"]) for row in csv.DictReader(fh)])


@pytest.mark.parametrize("amp", [False, True])
def test_trained_on_cuda_predicts_the_same_on_the_cpu(tmp_path: Path, no_tf32: None, amp: bool) -> None:
    """A run on CUDA (with and without ``train.amp``) writes a checkpoint that a CPU-only user
    loads and evaluates: in float32 the CPU's test predictions are the run's to float32 rounding;
    the bf16 run's are within bf16 rounding of them."""
    from decalign.api import evaluate_checkpoint_outputs, resolve_config, train

    data = _tiny_data()
    config = resolve_config(data, overrides=[*TINY, "train.device=cuda", f"train.amp={str(amp).lower()}"])
    result = train(config, data, tmp_path / "run", quiet=True, tensorboard=False)
    assert all(math.isfinite(v) for v in result.mean.values())
    seed_dir = tmp_path / "run" / "seed_1"
    on_gpu = _saved_predictions(seed_dir / "test_predictions.csv")
    _, on_cpu, labels = evaluate_checkpoint_outputs(seed_dir / "model.safetensors", dataset=_tiny_data(),
                                                    device="cpu")
    assert on_cpu.predictions.shape == on_gpu.shape == labels.shape
    tolerance = 0.05 * float(np.abs(on_gpu).max()) + 1e-3 if amp else 1e-4
    np.testing.assert_allclose(on_cpu.predictions, on_gpu, rtol=0, atol=tolerance)
