"""Reports a researcher expects: confusion matrix and per-class scores for classification (in
results.json, eval output and a figure), predictions against labels for regression, and the
paper's numbers beside ours on its benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from decalign.cli import main
from decalign.metrics import classification_report, emotion_metrics, report_from_confusion
from decalign.testing.fixtures import write_iemocap_utterance_pickle, write_mmsa_pickle

TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
        "train.batch_size=16", "train.num_threads=1"]


def test_classification_report_closed_form() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 1, 0, 1, 2, 2])
    report = classification_report(pred, labels, ["a", "b", "c"])
    assert report["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    np.testing.assert_allclose(report["confusion_normalized"][0], [2 / 3, 1 / 3, 0])
    assert report["per_class"]["a"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    assert report["per_class"]["b"]["precision"] == 0.5 and report["per_class"]["c"]["recall"] == 1.0
    logits = np.eye(3)[pred] + 0.1
    f1 = emotion_metrics(logits, labels, ["a", "b", "c"])
    for name in "abc":  # the same F1 as the metrics' one-vs-rest F1
        assert report["per_class"][name]["f1"] == pytest.approx(f1[f"f1_{name}"])
    assert report_from_confusion(np.asarray(report["confusion"]) * 2, ["a", "b", "c"])["per_class"] == {
        k: {**v, "support": 2 * v["support"]} for k, v in report["per_class"].items()
    }


def test_classification_report_matches_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    report = classification_report(pred, labels, list("wxyz"))
    np.testing.assert_array_equal(report["confusion"], metrics.confusion_matrix(labels, pred, labels=range(4)))
    p, r, f, support = metrics.precision_recall_fscore_support(labels, pred, labels=range(4), zero_division=0)
    got = report["per_class"]
    np.testing.assert_allclose([got[c]["precision"] for c in "wxyz"], p)
    np.testing.assert_allclose([got[c]["recall"] for c in "wxyz"], r)
    np.testing.assert_allclose([got[c]["f1"] for c in "wxyz"], f)
    assert [got[c]["support"] for c in "wxyz"] == support.tolist()


@pytest.mark.slow
def test_classification_run_writes_a_confusion_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    data = write_iemocap_utterance_pickle(tmp_path / "iemocap.pkl", n=(48, 16, 24))
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--epochs", "1", "--seeds", "1", "2", "--out", str(out),
                 "--no-tensorboard", "--set", *TINY]) == 0
    assert "paper (iemocap, DecAlign)" in capsys.readouterr().err  # the paper's row beside ours
    results = json.loads((out / "results.json").read_text())
    per_seed = results["seeds"]["1"]["test_report"]
    assert np.asarray(per_seed["confusion"]).sum() == 24
    pooled = results["test_report"]
    assert pooled["seeds_pooled"] == 2 and np.asarray(pooled["confusion"]).sum() == 48
    assert set(pooled["per_class"]) == set(per_seed["class_names"])

    assert main(["eval", "--run", str(out), "--data", str(data), "--json", str(tmp_path / "e.json"),
                 "--figure", str(tmp_path / "confusion.png")]) == 0
    shown = capsys.readouterr().out
    assert "confusion matrix" in shown and "precision" in shown and "paper (iemocap, DecAlign)" in shown
    payload = json.loads((tmp_path / "e.json").read_text())
    assert payload["report"]["confusion"] == pooled["confusion"]  # eval reproduces the run's test
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", "--run", str(out), "--data", str(data), "--drop-each"]) == 0  # classification too
    table = json.loads((out / "drop_each_test.json").read_text())
    assert list(table["rows"]) == ["all", "w/o text", "w/o audio", "w/o vision"]
    assert table["rows"]["all"]["mean"]["wacc"] == pytest.approx(payload["mean"]["wacc"])
    assert "waf1" in capsys.readouterr().out


@pytest.mark.slow
def test_regression_eval_draws_predictions_and_residuals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    data = write_mmsa_pickle(tmp_path / "mosi.pkl", kind="mosi", n=(32, 16, 16))
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--epochs", "1", "--seeds", "1", "--out", str(out),
                 "--no-tensorboard", "--set", *TINY]) == 0
    capsys.readouterr()
    figure = tmp_path / "pred.png"
    assert main(["eval", "--checkpoint", str(out / "seed_1" / "model.safetensors"), "--data", str(data),
                 "--figure", str(figure)]) == 0
    shown = capsys.readouterr().out
    assert "paper (mosi, DecAlign)" in shown and "85.75" in shown  # the paper's Acc-2 beside ours
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", "--checkpoint", str(out / "seed_1" / "model.safetensors"), "--data", str(data),
                 "--drop-each", "--json", str(tmp_path / "d.json")]) == 0
    assert set(json.loads((tmp_path / "d.json").read_text())["rows"]) == {"all", "w/o text", "w/o audio", "w/o vision"}
    from decalign.plots import plot_test_predictions

    written = plot_test_predictions(out)
    assert [p.name for p in written] == ["predictions_test.png"]
