"""End-to-end runs of the CLI on tiny data: written files and keys, every benchmark layout,
eval/predict consistency with training, error messages for things a user gets wrong."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from decalign.cli import main
from decalign.config import RunConfig, config_from_dict
from decalign.metrics import SENTIMENT_KEYS, SIMS_KEYS
from decalign.testing.fixtures import (
    write_iemocap_dialogue_pickle,
    write_iemocap_utterance_pickle,
    write_mmsa_pickle,
)

pytestmark = pytest.mark.slow

TINY = [
    "model.d_model=16",
    "model.fusion.num_heads=2",
    "model.fusion.num_layers=1",
    "model.homogeneity.pde_dim=8",
    "train.batch_size=16",
    "train.num_threads=1",
]
TINY_SYNTHETIC = [*TINY, "data.synthetic.n_train=64", "data.synthetic.n_valid=32", "data.synthetic.n_test=40"]


def _run(argv: list[str]) -> int:
    return main(argv)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "synthetic"
    assert _run(["train", "--epochs", "2", "--seeds", "7", "8", "--out", str(out), "--set", *TINY_SYNTHETIC]) == 0
    return out


def test_train_writes_every_file(synthetic_run: Path) -> None:
    out = synthetic_run
    config = config_from_dict(RunConfig, json.loads((out / "config.json").read_text()))
    assert config.preset == "synthetic" and config.train.seeds == (7, 8) and config.train.num_epochs == 2
    assert config.model.d_model == 16
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["kind"] == "synthetic"
    results = json.loads((out / "results.json").read_text())
    assert set(results["seeds"]) == {"7", "8"}
    for seed in ("7", "8"):
        entry = results["seeds"][seed]
        assert 1 <= entry["best_epoch"] <= 2
        assert set(SENTIMENT_KEYS) <= set(entry["test"])
        assert (out / f"seed_{seed}" / "model.safetensors").stat().st_size > 0
        if importlib.util.find_spec("tensorboard") is not None:  # the tb extra; without it a note
            assert list((out / f"seed_{seed}" / "tensorboard").glob("events.out.tfevents.*"))
        preds = _read_csv(out / f"seed_{seed}" / "test_predictions.csv")
        assert len(preds) == 40 and set(preds[0]) == {"id", "label", "prediction"}
    assert set(SENTIMENT_KEYS) <= set(results["mean"]) and set(results["mean"]) == set(results["std"])
    means = [results["seeds"][s]["test"]["mae"] for s in ("7", "8")]
    assert results["mean"]["mae"] == pytest.approx(sum(means) / 2)
    rows = _read_csv(out / "history.csv")
    # 2 seeds x 2 epochs x (train, valid) + one test row per seed
    assert len(rows) == 2 * 2 * 2 + 2
    assert {r["split"] for r in rows} == {"train", "valid", "test"}
    for key in ("loss", "task", "decoupling", "ot", "proto_local", "moments", "mmd", "contrastive", "mae"):
        assert key in rows[0], key
    train_rows = [r for r in rows if r["split"] == "train"]
    assert all(float(r["ot"]) != 0.0 for r in train_rows)  # the alignment losses are really computed


def test_eval_reproduces_training_test_metrics(synthetic_run: Path, tmp_path: Path) -> None:
    results = json.loads((synthetic_run / "results.json").read_text())
    report = tmp_path / "eval.json"
    assert _run(["eval", "--checkpoint", str(synthetic_run / "seed_7" / "model.safetensors"), "--json", str(report),
                 "--device", "cpu"]) == 0
    metrics = json.loads(report.read_text())["metrics"]
    for key in SENTIMENT_KEYS:
        assert metrics[key] == pytest.approx(results["seeds"]["7"]["test"][key], abs=1e-6)
    run_report = tmp_path / "eval_run.json"
    assert _run(["eval", "--run", str(synthetic_run), "--json", str(run_report), "--device", "cpu"]) == 0
    assert json.loads(run_report.read_text())["mean"]["mae"] == pytest.approx(results["mean"]["mae"], abs=1e-6)


def test_predict_writes_one_row_per_sample(synthetic_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.csv"
    ckpt = synthetic_run / "seed_8" / "model.safetensors"
    assert _run(["predict", "--checkpoint", str(ckpt), "--out", str(out), "--split", "valid", "test",
                 "--device", "cpu"]) == 0
    rows = _read_csv(out)
    assert len(rows) == 32 + 40
    assert len({(r["split"], r["id"]) for r in rows}) == len(rows)
    trained = {r["id"]: float(r["prediction"]) for r in _read_csv(synthetic_run / "seed_8" / "test_predictions.csv")}
    for r in rows:
        if r["split"] == "test":
            assert float(r["prediction"]) == pytest.approx(trained[r["id"]], abs=1e-5)


def test_existing_run_is_not_overwritten(synthetic_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (synthetic_run / "results.json").read_bytes()
    assert _run(["train", "--epochs", "1", "--out", str(synthetic_run), "--set", *TINY_SYNTHETIC]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (synthetic_run / "results.json").read_bytes() == before


def test_unknown_setting_lists_valid_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["train", "--out", str(tmp_path / "x"), "--set", "model.fusion.num_layer=2"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'model.fusion.num_layer'" in err and "model.fusion.num_layers" in err


def test_invalid_value_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["train", "--out", str(tmp_path / "x"), "--set", "train.lr=-1"]) == 2
    assert "train.lr" in capsys.readouterr().err


def test_corrupt_checkpoint_is_named(synthetic_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "model.safetensors"
    data = (synthetic_run / "seed_7" / "model.safetensors").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    assert _run(["eval", "--checkpoint", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and ("corrupt" in err or "truncated" in err)


def test_info_reports_the_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_mmsa_pickle(tmp_path / "unaligned_50.pkl", kind="mosei", aligned=False, n=(6, 3, 3), neg_inf_audio=5)
    assert _run(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mosei" in out and "mmsa-unaligned" in out


LAYOUTS = [
    ("mosi", True, SENTIMENT_KEYS),
    ("mosi", False, SENTIMENT_KEYS),
    ("mosei", True, SENTIMENT_KEYS),
    ("mosei", False, SENTIMENT_KEYS),
    ("sims", False, SIMS_KEYS),
]


@pytest.mark.parametrize(("kind", "aligned", "keys"), LAYOUTS)
def test_train_on_each_benchmark_layout(tmp_path: Path, kind: str, aligned: bool, keys: tuple[str, ...]) -> None:
    data = write_mmsa_pickle(tmp_path / "data.pkl", kind=kind, aligned=aligned, n=(20, 8, 8))
    out = tmp_path / "run"
    assert _run(["train", "--data", str(data), "--epochs", "2", "--seeds", "1", "--out", str(out), "-q",
                 "--no-tensorboard", "--set", *TINY]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["preset"] == kind and results["dataset"]["kind"] == kind
    assert set(keys) <= set(results["seeds"]["1"]["test"])
    assert (out / "seed_1" / "model.safetensors").exists()


@pytest.mark.parametrize("writer", [write_iemocap_utterance_pickle, write_iemocap_dialogue_pickle])
def test_train_on_iemocap_layouts(tmp_path: Path, writer: object) -> None:
    data = writer(tmp_path / "iemocap.pkl")  # type: ignore[operator]
    out = tmp_path / "run"
    assert _run(["train", "--data", str(data), "--dataset", "iemocap", "--epochs", "2", "--seeds", "1",
                 "--out", str(out), "-q", "--no-tensorboard", "--set", *TINY]) == 0
    results = json.loads((out / "results.json").read_text())
    test = results["seeds"]["1"]["test"]
    assert {"wacc", "waf1", "acc_happy", "f1_frustrated"} <= set(test)
    preds = _read_csv(out / "seed_1" / "test_predictions.csv")
    emotions = {"happy", "sad", "neutral", "angry", "excited", "frustrated"}
    assert "p_happy" in preds[0] and preds[0]["predicted"] in emotions


def test_info_lists_class_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_iemocap_dialogue_pickle(tmp_path / "IEMOCAP_features_raw_6way.pkl")
    assert _run(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "iemocap-dialogue" in out and "6 classes" in out and "frustrated" in out
    assert _run(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "iemocap"
