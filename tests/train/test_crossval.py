"""Cross-validation by video as a training option (``decalign train --cv K``,
:func:`decalign.api.cross_validate`): one ordinary run per fold on the folds of the plan, pooled
out-of-fold metrics that are the metrics of the joined fold predictions, resume that retrains
only what is missing and gives the same numbers, the one-line refusals, and ``decalign report``
reading a cross-validation as one run (paired clip by clip with another)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from decalign.cli import main
from decalign.metrics import sentiment_metrics
from decalign.testing.fixtures import write_mmsa_pickle
from decalign.testing.runs import TINY

SEEDS = ("1", "2")
QUIET = ["-q", "--no-tensorboard", "--epochs", "1", "--dataset", "mosi"]


def _cv(data: Path, out: Path, *extra: str, folds: str = "3", seeds: tuple[str, ...] = SEEDS) -> int:
    return main(["train", "--data", str(data), "--cv", folds, "--seeds", *seeds, "--out", str(out), *QUIET,
                 "--set", *TINY, *extra])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 27 train+valid clips of 9 videos (3 clips each), 6 test clips that no fold may read
    return write_mmsa_pickle(tmp_path_factory.mktemp("data") / "mosi_tiny.pkl", "mosi", n=(18, 9, 6),
                             dims={"text": 6, "audio": 3, "vision": 4}, seq_lens={"text": 4, "audio": 4, "vision": 4})


@pytest.fixture(scope="module")
def cv(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cv"
    assert _cv(data, out) == 0
    return out


def _predictions(path: Path) -> dict[str, tuple[float, float]]:
    with open(path, newline="") as f:
        return {r["id"]: (float(r["label"]), float(r["prediction"])) for r in csv.DictReader(f)}


def _plan(cv: Path) -> dict[str, int]:
    with open(cv / "folds.csv", newline="") as f:
        return {r["id"]: int(r["fold"]) for r in csv.DictReader(f)}


def test_each_fold_is_a_run_on_its_folds_and_the_test_split_is_not_read(cv: Path) -> None:
    plan = _plan(cv)
    assert len(plan) == 27 and set(plan.values()) == {1, 2, 3}
    assert not any(i.startswith("test") for i in plan)  # the file's test clips are in no fold
    saved = json.loads((cv / "config.json").read_text())
    for k in (1, 2, 3):
        run = cv / f"fold_{k}"
        assert json.loads((run / "config.json").read_text()) == saved  # the same settings in every fold
        sizes = json.loads((run / "dataset.json").read_text())["fingerprint"]["splits"]
        test = _predictions(run / "seed_1" / "test_predictions.csv")
        assert {i for i, f in plan.items() if f == k} == set(test) and sizes["test"] == len(test)
        assert sizes["valid"] == sum(f == k % 3 + 1 for f in plan.values())  # the next fold selects
        assert sizes["train"] == 27 - sizes["test"] - sizes["valid"]
        assert (run / "seed_2" / "model.safetensors").is_file()


def test_pooled_metrics_are_those_of_the_joined_fold_predictions(cv: Path) -> None:
    summary = json.loads((cv / "cv.json").read_text())
    assert summary["folds"] == 3 and summary["n_clips"] == 27
    pooled = []
    for seed in SEEDS:
        rows: dict[str, tuple[float, float]] = {}
        for k in (1, 2, 3):
            rows.update(_predictions(cv / f"fold_{k}" / f"seed_{seed}" / "test_predictions.csv"))
        assert len(rows) == 27  # every clip once
        labels, outputs = (np.array(v) for v in zip(*rows.values()))
        want = sentiment_metrics(outputs, labels)
        got = summary["pooled"]["seeds"][seed]
        for key in ("mae", "corr", "acc2_non0", "acc7"):
            assert got[key] == pytest.approx(want[key], abs=1e-9)
        pooled.append(want)
    assert summary["pooled"]["mean"]["mae"] == pytest.approx(np.mean([m["mae"] for m in pooled]))
    assert summary["pooled"]["std"]["mae"] == pytest.approx(np.std([m["mae"] for m in pooled], ddof=1))
    fold_means = []
    for k, fold in enumerate(summary["per_fold"], 1):
        per_seed = []
        for seed in SEEDS:
            labels, outputs = (np.array(v) for v in zip(
                *_predictions(cv / f"fold_{k}" / f"seed_{seed}" / "test_predictions.csv").values()))
            per_seed.append(sentiment_metrics(outputs, labels)["mae"])
        assert fold["mean"]["mae"] == pytest.approx(np.mean(per_seed))
        fold_means.append(np.mean(per_seed))
    assert summary["fold_std"]["mae"] == pytest.approx(np.std(fold_means, ddof=1))
    with open(cv / "cv.csv", newline="") as f:
        rows_csv = list(csv.DictReader(f))
    assert [r["row"] for r in rows_csv] == ["fold_1", "fold_2", "fold_3", "mean_over_folds", "pooled_out_of_fold"]
    assert float(rows_csv[-1]["mae_mean"]) == pytest.approx(summary["pooled"]["mean"]["mae"])


def test_resume_trains_only_what_is_missing_and_gives_the_same_numbers(cv: Path, data: Path, tmp_path: Path) -> None:
    from decalign import api
    from decalign.config import DataConfig
    from decalign.data import load_dataset

    copy = tmp_path / "cv"
    shutil.copytree(cv, copy)
    shutil.rmtree(copy / "fold_3")
    (copy / "cv.json").unlink()
    config = api.resolve_config(load_dataset(data, DataConfig(dataset="mosi")), "mosi",
                                [*TINY, "train.num_epochs=1", "train.seeds=[1, 2]"], path=data)
    result = api.cross_validate(config, load_dataset(data, DataConfig(dataset="mosi")), copy, 3, resume=True,
                                quiet=True, tensorboard=False)
    assert result.status == {1: "skipped", 2: "skipped", 3: "trained"}
    for seed in SEEDS:  # the retrained fold predicts exactly what it predicted in the first run
        name = f"fold_3/seed_{seed}/test_predictions.csv"
        assert (copy / name).read_text() == (cv / name).read_text()
    assert (copy / "cv.json").read_text() == (cv / "cv.json").read_text()
    assert result.mean["mae"] == json.loads((cv / "cv.json").read_text())["pooled"]["mean"]["mae"]


def test_refusals_are_one_line_and_write_nothing(cv: Path, data: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = (cv / "cv.json").read_text()
    capsys.readouterr()
    cases = [
        (lambda: _cv(data, cv), "already holds a cross-validation; pass --resume"),
        (lambda: _cv(data, cv, "--resume", folds="4"), "the folds differ"),
        (lambda: _cv(data, tmp_path / "two", folds="2"), "needs at least 3 folds"),
        (lambda: _cv(data, tmp_path / "many", folds="10"), "9 video(s) among 27 clips cannot fill 10 folds"),
        (lambda: main(["train", "--cv", "3", "--out", str(tmp_path / "syn"), "-q", "--epochs", "1"]),
         "'train_00000' names no video"),  # the built-in data's ids name no video
    ]
    for call, message in cases:
        assert call() != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], (message, err)
    assert (cv / "cv.json").read_text() == before
    assert not any((tmp_path / name).exists() for name in ("two", "many", "syn"))


def test_report_pairs_two_cross_validations_clip_by_clip(cv: Path, data: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.errors import DataError
    from decalign.runs import read_run, report

    other = tmp_path / "cv_wide"
    assert _cv(data, other, "model.d_model=24") == 0
    rep = report([cv, other], n_boot=50)
    assert rep.n_samples == 27 and [s.n_seeds for s in rep.summaries] == [2, 2]
    pooled = json.loads((cv / "cv.json").read_text())["pooled"]["mean"]
    assert rep.summaries[0].mean["mae"] == pytest.approx(pooled["mae"])
    assert {c.metric for c in rep.comparisons} >= {"mae", "corr"} and all(c.paired_seeds for c in rep.comparisons)
    card = rep.cards[0]
    digest = read_run(cv).folds_sha256
    assert card.cross_validation is not None and digest is not None and digest[:16] in card.cross_validation
    assert card.split_sizes == {"train+valid": 27} and set(card.fold_best_epochs or {}) == {1, 2, 3}
    capsys.readouterr()
    assert main(["report", str(cv), str(other), "--bootstrap", "20"]) == 0
    printed = capsys.readouterr().out
    assert "cross-validation: 3 folds by video" in printed and "fold 3: 1: 1, 2: 1" in printed
    assert rep.protocol_notes == ()  # same folds, same data, same selection
    # its "test" is each fold's held-out clips, not the file's test split (never read): said so
    assert rep.to_markdown().startswith("# Out-of-fold predictions\n\n| out-of-fold (mean ± sample std) |")
    assert "over the 27 out-of-fold samples" in rep.to_text()
    four = tmp_path / "cv_four"
    assert _cv(data, four, folds="4", seeds=("1",)) == 0
    other_folds = report([cv, four], n_boot=10)
    digests = [read_run(r).folds_sha256 or "" for r in (four, cv)]
    assert other_folds.protocol_notes == (
        f"cv_four differs from {cv.name} in: other folds (folds.csv sha256 {digests[0][:16]}, "
        f"baseline {digests[1][:16]})",)
    assert "**Note:** cv_four differs" in other_folds.to_markdown()
    assert other_folds.to_dict()["protocol_notes"] == list(other_folds.protocol_notes)
    plain = tmp_path / "plain"
    assert main(["train", "--data", str(data), "--seeds", "1", "--out", str(plain), *QUIET, "--set", *TINY]) == 0
    with pytest.raises(DataError, match="same samples"):  # the plain run's test clips are not the folds' clips
        report([cv, plain], n_boot=10)


def test_bench_rows_can_be_cross_validations(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    argv = ["bench", "--data", str(data), "--dataset", "mosi", "--models", "late", "--ablations", "none",
            "--cv", "3", "--seeds", "1", "--epochs", "1", "--plots", "none", "--out", str(out), "-q",
            "--set", *TINY]
    assert main(argv) == 0
    for name in ("late",):
        pooled = json.loads((out / "runs" / name / "cv.json").read_text())["pooled"]["mean"]
        with open(out / "bench.csv", newline="") as f:
            row = next(r for r in csv.DictReader(f) if r["name"] == name)
        assert float(row["mae_mean"]) == pytest.approx(pooled["mae"])
    assert "3-fold cross-validation by video" in (out / "bench.md").read_text()
    before = (out / "runs" / "late" / "cv.json").read_text()
    assert main(argv) == 0  # rerun: every fold complete, nothing retrained
    assert (out / "runs" / "late" / "cv.json").read_text() == before
    capsys.readouterr()
    assert main([*argv[:argv.index("--cv")], "--cv", "30", *argv[argv.index("--cv") + 2:]]) != 0
    assert "cannot fill 30 folds" in capsys.readouterr().err
