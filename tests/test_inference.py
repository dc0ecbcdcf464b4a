"""The predictor: raw features from a data file -> the prediction the training run wrote for them,
with the run's standardisation; one sample or a batch, numpy or torch, absent modalities, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import decalign
from decalign.cli import main
from decalign.config import DataConfig
from decalign.data.types import DataError

TINY = [
    "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
    "train.batch_size=16", "train.num_threads=1",
    "data.synthetic.n_train=64", "data.synthetic.n_valid=32", "data.synthetic.n_test=40",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run on the built-in data that standardises audio and vision (as MOSEI/SIMS do)."""
    out = tmp_path_factory.mktemp("infer") / "run"
    assert main(["train", "--epochs", "2", "--seeds", "3", "--out", str(out), "-q", "--no-tensorboard",
                 "--set", *TINY, "data.standardize=[1.0, 99.0]", "data.synthetic.variable_lengths=true"]) == 0
    return out


def _raw_test_split(run: Path):  # type: ignore[no-untyped-def]
    ckpt = decalign.load_checkpoint(run / "seed_3" / "model.safetensors")
    data = decalign.load_data(None, ckpt.config.data)  # raw features, as the data file carries them
    return data.splits["test"]


def _written(run: Path) -> dict[str, float]:
    with open(run / "seed_3" / "test_predictions.csv", newline="") as fh:
        return {row["id"]: float(row["prediction"]) for row in csv.DictReader(fh)}


def test_one_sample_matches_the_runs_prediction(run: Path) -> None:
    predictor = decalign.Predictor.from_checkpoint(run / "seed_3" / "model.safetensors")
    assert set(predictor.stats) == {"audio", "vision"}  # the run's standardisation travels with it
    split = _raw_test_split(run)
    written = _written(run)
    for i in (0, 17):
        sample = {m: split.features[m][i] for m in split.modalities}  # [T, D] each
        out = predictor.predict(sample)
        assert len(out) == 1 and out.task == "regression"
        assert out.values[0] == pytest.approx(written[str(split.ids[i])], abs=1e-5)


def test_batch_numpy_and_torch_agree_with_the_run(run: Path) -> None:
    predictor = decalign.load_checkpoint(run / "seed_3" / "model.safetensors").predictor()
    split = _raw_test_split(run)
    written = _written(run)
    expected = np.array([written[str(i)] for i in split.ids])
    batch = predictor.predict(split.features, split.lengths)
    np.testing.assert_allclose(batch.values, expected, atol=1e-5)
    as_torch = predictor.predict({m: torch.from_numpy(x) for m, x in split.features.items()})
    np.testing.assert_allclose(as_torch.values, expected, atol=1e-5)


def test_the_bare_model_on_raw_features_differs(run: Path) -> None:
    """Why the predictor exists: the model without the run's standardisation predicts otherwise."""
    ckpt = decalign.load_checkpoint(run / "seed_3" / "model.safetensors")
    split = _raw_test_split(run)
    with torch.no_grad():
        bare = ckpt.model.eval()({m: torch.from_numpy(x) for m, x in split.features.items()}).prediction.numpy()
    expected = np.array([_written(run)[str(i)] for i in split.ids])
    assert np.abs(bare - expected).max() > 1e-2


def test_shorter_samples_are_padded_like_the_data(run: Path) -> None:
    predictor = decalign.Predictor.from_checkpoint(run / "seed_3" / "model.safetensors")
    split = _raw_test_split(run)
    i = int(np.argmin(split.lengths["audio"]))
    n = int(split.lengths["audio"][i])
    full = {m: split.features[m][i] for m in split.modalities}
    cut = dict(full, audio=full["audio"][:n])  # the valid steps only: padding is zeros at the end
    assert n < split.features["audio"].shape[1]
    np.testing.assert_allclose(predictor.predict(cut).values, predictor.predict(full).values, atol=1e-6)
    listed = predictor.predict({m: [split.features[m][j] for j in range(3)] for m in split.modalities})
    np.testing.assert_allclose(listed.values, predictor.predict({m: x[:3] for m, x in split.features.items()}).values,
                               atol=1e-6)


def test_absent_modality_is_the_models_ablation_rule(run: Path) -> None:
    predictor = decalign.Predictor.from_checkpoint(run / "seed_3" / "model.safetensors")
    split = _raw_test_split(run)
    arrays, _, _ = predictor.prepare(split.features)
    with torch.no_grad():
        expected = predictor.model({m: torch.from_numpy(arrays[m]) for m in ("text", "vision")}).prediction.numpy()
    without = predictor.predict({m: split.features[m] for m in ("text", "vision")})
    dropped = predictor.predict(split.features, drop=["audio"])
    np.testing.assert_allclose(without.values, expected, atol=1e-6)
    np.testing.assert_array_equal(without.values, dropped.values)
    assert np.abs(without.values - predictor.predict(split.features).values).max() > 1e-4


@pytest.mark.parametrize(("features", "message"), [
    ({"audio": np.zeros((10, 7), np.float32)}, "feature width 7"),
    ({"face": np.zeros((10, 4), np.float32)}, "unknown modality 'face'"),
    ({"audio": np.zeros((999, 5), np.float32)}, "time steps"),
    ({"audio": np.zeros((5,), np.float32)}, "expected [T, D]"),
    ({"audio": np.zeros((2, 10, 5), np.float32), "text": np.zeros((3, 10, 768), np.float32)}, "disagree"),
    ({}, "no modality left"),
])
def test_bad_inputs_are_one_line_errors(run: Path, features: dict[str, np.ndarray], message: str) -> None:
    predictor = decalign.Predictor.from_checkpoint(run / "seed_3" / "model.safetensors")
    with pytest.raises(DataError) as err:
        predictor.predict(features)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_classification_gives_class_names_and_probabilities(tmp_path: Path) -> None:
    from decalign.train.checkpoint import ModelInfo, build_model

    config = decalign.resolve_config(
        decalign.load_data(None, DataConfig(dataset="synthetic")), overrides=TINY[:4]
    )
    info = ModelInfo("custom", "classification", ("a", "b"), {"a": 3, "b": 2}, {"a": 5, "b": 4}, 3,
                     class_names=("neg", "neu", "pos"))
    model = build_model(config, info)
    predictor = decalign.Predictor(model, config, info)
    out = predictor.predict({"a": np.random.default_rng(0).normal(size=(4, 5, 3)), "b": np.ones((4, 4, 2))})
    assert out.task == "classification" and out.probabilities is not None and out.logits is not None
    np.testing.assert_allclose(out.probabilities.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out.values, out.logits.argmax(1))
    assert out.labels == [("neg", "neu", "pos")[c] for c in out.values]
