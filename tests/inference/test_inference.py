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
    data = decalign.load_dataset(None, ckpt.config.data)  # raw features, as the data file carries them
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
    predictor = decalign.Predictor.from_loaded(decalign.load_checkpoint(run / "seed_3" / "model.safetensors"))
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
        decalign.load_dataset(None, DataConfig(dataset="synthetic")), overrides=TINY[:4]
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


# -- unlabelled data, predict and info ---------------------------------------------------------


def _unlabelled_files(run: Path, tmp: Path) -> dict[str, Path]:
    split = _raw_test_split(run)
    arrays = {m: split.features[m] for m in split.modalities}
    npz = tmp / "new.npz"
    np.savez(npz, ids=split.ids, **arrays)
    from safetensors.numpy import save_file

    st = tmp / "new.safetensors"
    save_file({m: np.ascontiguousarray(x) for m, x in arrays.items()}, str(st))
    from decalign.testing.fixtures import write_pickle

    pkl = write_pickle({"test": {**arrays, "id": list(split.ids)}}, tmp / "new.pkl")
    return {"npz": npz, "safetensors": st, "pickle": pkl}


@pytest.mark.parametrize("fmt", ["npz", "safetensors", "pickle"])
def test_predict_and_info_accept_unlabelled_files(run: Path, tmp_path: Path, fmt: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _unlabelled_files(run, tmp_path)[fmt]
    assert main(["info", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "unlabelled" in shown and "no labels" in shown
    out = tmp_path / "preds.csv"
    assert main(["predict", "--checkpoint", str(run / "seed_3" / "model.safetensors"), "--data", str(path),
                 "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    written = _written(run)
    assert len(rows) == len(written) and "label" not in rows[0]
    split = _raw_test_split(run)
    for row, sample_id in zip(rows, split.ids):
        expected_id = str(sample_id) if fmt != "safetensors" else row["id"]  # safetensors: ids generated
        assert row["id"] == expected_id
        assert float(row["prediction"]) == pytest.approx(written[str(sample_id)], abs=1e-5)


def test_eval_on_unlabelled_data_says_labels_are_needed(run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = _unlabelled_files(run, tmp_path)["pickle"]
    assert main(["eval", "--checkpoint", str(run / "seed_3" / "model.safetensors"), "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no labels" in err and "decalign predict" in err and len(err.strip().splitlines()) == 1


def test_predict_on_the_full_dataset_keeps_labels_and_drops(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    ckpt = str(run / "seed_3" / "model.safetensors")
    assert main(["predict", "--checkpoint", ckpt, "--out", str(out), "--split", "valid", "test"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["split"] for r in rows} == {"valid", "test"} and "label" in rows[0]
    test_rows = {r["id"]: float(r["prediction"]) for r in rows if r["split"] == "test"}
    assert test_rows == pytest.approx(_written(run), abs=1e-5)
    assert main(["predict", "--checkpoint", ckpt, "--out", str(out), "--drop", "audio", "--overwrite"]) == 0
    with open(out, newline="") as fh:
        dropped = {r["id"]: float(r["prediction"]) for r in csv.DictReader(fh)}
    split = _raw_test_split(run)
    expected = decalign.Predictor.from_checkpoint(ckpt).predict(split.features, drop=["audio"]).values
    np.testing.assert_allclose([dropped[str(i)] for i in split.ids], expected, atol=1e-5)
    assert main(["predict", "--checkpoint", ckpt, "--out", str(out), "--drop", "smell"]) == 2


# -- missing modalities in eval --------------------------------------------------------------------


def test_eval_drop_matches_the_predictor_and_drop_each_writes_the_table(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from decalign.metrics import sentiment_metrics

    ckpt = run / "seed_3" / "model.safetensors"
    assert main(["eval", "--checkpoint", str(ckpt), "--drop", "vision", "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    split = _raw_test_split(run)
    values = decalign.Predictor.from_checkpoint(ckpt).predict(split.features, drop=["vision"]).values
    assert metrics["mae"] == pytest.approx(sentiment_metrics(values, split.labels)["mae"], abs=1e-6)
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--drop-each"]) == 0
    shown = capsys.readouterr().out
    for row in ("all", "w/o text", "w/o audio", "w/o vision"):
        assert row in shown
    table = json.loads((run / "drop_each_test.json").read_text())
    assert table["rows"]["w/o vision"]["mean"]["mae"] == pytest.approx(metrics["mae"], abs=1e-9)
    assert table["rows"]["all"]["mean"]["mae"] != table["rows"]["w/o vision"]["mean"]["mae"]
    assert "| w/o audio |" in (run / "drop_each_test.md").read_text()


def test_a_broken_full_dataset_is_reported_not_read_as_samples(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A labelled train/valid/test file that fails validation keeps its error in info and predict
    (the lenient sample reader would otherwise hide it)."""
    from decalign.testing.fixtures import write_pickle

    rng = np.random.default_rng(0)

    def split(n: int, audio_width: int) -> dict[str, object]:
        return {"text": rng.normal(size=(n, 4, 16)).astype(np.float32),
                "audio": rng.normal(size=(n, 4, audio_width)).astype(np.float32),
                "regression_labels": rng.normal(size=n).astype(np.float32)}

    path = write_pickle({"train": split(6, 3), "valid": split(4, 3), "test": split(4, 5)}, tmp_path / "bad.pkl")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "split 'test'" in err and "width" in err


# -- hostile inputs (issue 25) ---------------------------------------------------------------------


def _small_predictor():  # type: ignore[no-untyped-def]
    from decalign.train.checkpoint import ModelInfo, build_model

    config = decalign.resolve_config(decalign.load_dataset(None, DataConfig(dataset="synthetic")), overrides=TINY[:4])
    info = ModelInfo("custom", "regression", ("a", "b"), {"a": 3, "b": 2}, {"a": 5, "b": 4}, 1)
    torch.manual_seed(0)
    return decalign.Predictor(build_model(config, info), config, info)


def test_non_finite_features_are_refused_naming_the_modality() -> None:
    """Non-finite inputs were replaced by 0 with a warning; a caller passing NaN has a bug."""
    predictor = _small_predictor()
    b = np.ones((2, 4, 2))
    for bad in (np.nan, np.inf):
        a = np.ones((2, 5, 3))
        a[1, 2, 0] = bad
        with pytest.raises(DataError, match=r"modality 'a': 1 non-finite feature value\(s\).*sample 1, step 2"):
            predictor.predict({"a": a, "b": b})


def test_features_of_1e30_give_an_error_not_a_nan_prediction() -> None:
    """Issue case: features of 1e30 gave NaN predictions silently."""
    predictor = _small_predictor()
    a, b = np.ones((3, 5, 3)), np.ones((3, 4, 2))
    assert np.isfinite(predictor.predict({"a": a, "b": b}).values).all()
    b[2] = 1e30
    with pytest.raises(DataError, match=r"modality 'b': the prediction of sample 2 is not finite.*1e\+30"):
        predictor.predict({"a": a, "b": b})


@pytest.mark.parametrize(("lengths", "words"), [
    ({"a": [2.5, 3]}, r"lengths of 'a': expected whole numbers of steps, found \[2\.5\]"),
    ({"a": [np.nan, 3]}, r"lengths of 'a': expected whole numbers"),
    ({"z": [1, 1]}, r"lengths of 'z': not a modality of the model"),
])
def test_lengths_must_be_whole_and_of_a_known_modality(lengths: dict, words: str) -> None:
    """Issue case: ``lengths`` of 2.5 (read as 2) or for an unknown modality were accepted."""
    predictor = _small_predictor()
    with pytest.raises(DataError, match=words):
        predictor.predict({"a": np.ones((2, 5, 3)), "b": np.ones((2, 4, 2))}, lengths)
    out = predictor.predict({"a": np.ones((2, 5, 3)), "b": np.ones((2, 4, 2))}, {"a": [2.0, 3]})
    assert len(out) == 2
