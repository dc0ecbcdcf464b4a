"""``decalign report`` and :mod:`decalign.runs`: run directories read into records, the paired
bootstrap over samples and seeds (closed forms, invariants, coverage in a simulated setting,
determinism), protocol cards, the written files (markdown, CSV, JSON; refusals; cell escaping),
the curves, and the one-line errors of malformed runs."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from decalign.cli import main
from decalign.config import apply_overrides, config_to_dict
from decalign.config.presets import get_preset
from decalign.errors import DataError, RunDirError, UsageError
from decalign.metrics import sentiment_metrics
from decalign.runs import (
    REPORT_FILES,
    Predictions,
    RunRecord,
    SeedRecord,
    paired_bootstrap,
    plot_curves,
    protocol_card,
    read_run,
    report,
    write_report,
)
from decalign.train.history import write_history, write_predictions

N = 60
RNG = np.random.default_rng(0)
LABELS = np.round(RNG.uniform(-3, 3, N), 1)
IDS = [f"clip_{i:03d}" for i in range(N)]


def make_run(root: Path, name: str, outputs: dict[int, np.ndarray], *, overrides: Sequence[str] = (),
             ids: Sequence[str] = IDS, labels: np.ndarray = LABELS, left_out: dict[int, list[str]] | None = None,
             class_names: Sequence[str] | None = None, history: bool = False) -> Path:
    """A finished run directory in ``decalign train``'s layout, with the given test outputs per seed."""
    run = root / name
    run.mkdir(parents=True)
    config = apply_overrides(get_preset("synthetic"), list(overrides))
    (run / "config.json").write_text(json.dumps(config_to_dict(config)))
    classification = class_names is not None
    (run / "dataset.json").write_text(json.dumps({
        "kind": "custom" if classification else "synthetic",
        "task": "classification" if classification else "regression",
        "label_range": None if classification else [-3.0, 3.0],
        "class_names": list(class_names) if classification else None,
        "splits": {"train": {"n": 100}, "valid": {"n": 20}, "test": {"n": len(ids)}},
        "fingerprint": {"sha256": "ab" * 32, "splits": {"train": 100, "valid": 20, "test": len(ids)}},
    }))
    seeds = {}
    rows = []
    for seed, out in outputs.items():
        (run / f"seed_{seed}").mkdir()
        write_predictions(run / f"seed_{seed}" / "test_predictions.csv", np.array(ids), labels, out, class_names)
        seeds[str(seed)] = {"seed": seed, "best_epoch": 2, "epochs_run": 3, "valid": {}, "test": {}}
        if left_out is not None:
            seeds[str(seed)]["modalities_left_out"] = left_out.get(seed, [])
        for epoch in (1, 2, 3):
            rows.append({"seed": seed, "epoch": epoch, "split": "train", "lr": 1e-3, "time_s": 1.0,
                         "loss": 1.0 / epoch + seed * 0.01})
            rows.append({"seed": seed, "epoch": epoch, "split": "valid", "lr": 1e-3, "time_s": 1.0,
                         "loss": 2.0 / epoch})
    if history:
        write_history(run / "history.csv", rows)
    (run / "results.json").write_text(json.dumps({"preset": config.preset, "selection_metric": "loss",
                                                  "seeds": seeds}))
    return run


def noisy(seed: int, scale: float = 0.5, shift: float = 0.0) -> np.ndarray:
    return LABELS + shift + np.random.default_rng(seed).normal(0.0, scale, N)


def record(name: str, outputs: dict[int, np.ndarray], labels: np.ndarray, ids: Sequence[str]) -> RunRecord:
    """An in-memory run (the comparison does not need files)."""
    seeds = tuple(SeedRecord(s, 1, 1, {}, None, Predictions(tuple(ids), labels, o)) for s, o in outputs.items())
    return RunRecord(path=Path(name), name=name, split="test", kind="synthetic", task="regression",
                     label_range=(-3.0, 3.0), class_names=None, preset="synthetic", selection_metric="loss",
                     config={}, dataset={}, seeds=seeds)


# -- the comparison ------------------------------------------------------------------------------

def test_a_run_against_itself_differs_by_exactly_zero(tmp_path: Path) -> None:
    run = make_run(tmp_path, "a", {1: noisy(1), 2: noisy(2), 3: noisy(3)})
    a = read_run(run)
    for d in paired_bootstrap(a, a, n_boot=100):
        assert d.difference == 0.0 and d.low == 0.0 and d.high == 0.0, d.metric
        assert d.paired_seeds and d.verdict in ("no clear difference", "-")


def test_a_constant_shift_moves_mae_by_the_shift(tmp_path: Path) -> None:
    """Predictions above every label, then shifted up by c: each sample's error grows by c, so on
    every resample MAE grows by exactly c (interval [c, c]); corr is shift-invariant."""
    base = {s: LABELS + 0.2 + np.abs(np.random.default_rng(s).normal(0, 0.5, N)) for s in (1, 2)}
    c = 0.25
    a = read_run(make_run(tmp_path, "a", base))
    b = read_run(make_run(tmp_path, "b", {s: o + c for s, o in base.items()}))
    diffs = {d.metric: d for d in paired_bootstrap(a, b, n_boot=200)}
    mae = diffs["mae"]
    assert mae.difference == pytest.approx(c, abs=1e-6)
    assert mae.low == pytest.approx(c, abs=1e-6) and mae.high == pytest.approx(c, abs=1e-6)
    assert mae.verdict == "worse"  # a higher MAE is worse
    assert diffs["corr"].difference == pytest.approx(0.0, abs=1e-6)


def test_the_point_difference_is_the_difference_of_seed_means(tmp_path: Path) -> None:
    a_out = {1: noisy(1, 0.3), 2: noisy(2, 0.6)}
    b_out = {7: noisy(7, 0.2), 8: noisy(8, 0.4), 9: noisy(9, 0.9)}
    a = read_run(make_run(tmp_path, "a", a_out))
    b = read_run(make_run(tmp_path, "b", b_out))
    diffs = {d.metric: d for d in paired_bootstrap(a, b, n_boot=20)}
    want = (np.mean([sentiment_metrics(o, LABELS)["mae"] for o in b_out.values()])
            - np.mean([sentiment_metrics(o, LABELS)["mae"] for o in a_out.values()]))
    assert diffs["mae"].difference == pytest.approx(want, rel=1e-9)
    assert not diffs["mae"].paired_seeds  # other seed lists: resampled per run
    assert diffs["mae"].low <= diffs["mae"].difference <= diffs["mae"].high


def test_the_interval_covers_the_true_difference_at_about_the_nominal_rate() -> None:
    """Simulated runs: p = y + u_i (shared per sample) + delta_run + v_seed + e (per seed and sample);
    metric: the mean error, whose true difference is delta_B - delta_A. Over 60 fresh data sets
    the 95% interval covers it about 95% of the time (both the samples and the seeds vary)."""
    def bias(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return {"bias": float(np.mean(p - y))}

    rng = np.random.default_rng(123)
    n, seeds, trials, delta = 80, 5, 60, 0.1
    ids = [str(i) for i in range(n)]
    covered = 0
    for trial in range(trials):
        y = rng.normal(0, 1, n)
        u = rng.normal(0, 1, n)

        def run(truth: np.ndarray, shift: float, offset: int) -> dict[int, np.ndarray]:
            return {offset + s: truth + shift + rng.normal(0, 0.05) + rng.normal(0, 0.3, n) for s in range(seeds)}

        a = record("a", run(y + u, 0.0, 0), y, ids)
        b = record("b", run(y + u, delta, 100), y, ids)
        (d,) = paired_bootstrap(a, b, bias, n_boot=200, seed=trial)
        covered += d.low <= delta <= d.high
    assert 0.85 <= covered / trials <= 1.0
    assert covered < trials  # an interval that always covers would be too wide to mean anything


def test_deterministic_given_the_bootstrap_seed(tmp_path: Path) -> None:
    a = read_run(make_run(tmp_path, "a", {1: noisy(1), 2: noisy(2)}))
    b = read_run(make_run(tmp_path, "b", {1: noisy(3, 0.4), 2: noisy(4, 0.4)}))
    first = paired_bootstrap(a, b, n_boot=100, seed=5)
    assert first == paired_bootstrap(a, b, n_boot=100, seed=5)
    other = paired_bootstrap(a, b, n_boot=100, seed=6)
    assert [d.low for d in first] != [d.low for d in other]
    assert [d.difference for d in first] == [d.difference for d in other]


def test_runs_on_other_samples_are_refused_naming_the_run_and_counts(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path, "a", {1: noisy(1)})
    b = make_run(tmp_path, "b", {1: noisy(2)[:-5]}, ids=IDS[:-5], labels=LABELS[:-5])
    with pytest.raises(DataError, match=r"run 'b' has 55 test samples, 'a' has 60"):
        paired_bootstrap(read_run(a), read_run(b))
    assert main(["report", str(a), str(b), "--bootstrap", "10"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'b'" in err[0] and "55" in err[0] and "Traceback" not in err[0]


def test_seeds_are_aligned_by_sample_id_not_by_row(tmp_path: Path) -> None:
    out = noisy(1)
    order = np.random.default_rng(9).permutation(N)
    a = read_run(make_run(tmp_path, "a", {1: out}))
    b = read_run(make_run(tmp_path, "b", {1: out[order]}, ids=[IDS[i] for i in order], labels=LABELS[order]))
    assert all(d.difference == 0.0 and d.low == d.high == 0.0 for d in paired_bootstrap(a, b, n_boot=20))


def test_classification_runs_compare_on_their_classes(tmp_path: Path) -> None:
    names = ["neg", "neu", "pos"]
    labels = RNG.integers(0, 3, N)
    logits = {s: np.random.default_rng(s).normal(0, 1, (N, 3)) + 2 * np.eye(3)[labels] for s in (1, 2)}
    a = read_run(make_run(tmp_path, "a", logits, labels=labels, class_names=names))
    assert a.seeds[0].predictions is not None
    np.testing.assert_array_equal(a.seeds[0].predictions.labels, labels)
    np.testing.assert_array_equal(a.seeds[0].predictions.outputs.argmax(1), logits[1].argmax(1))
    diffs = paired_bootstrap(a, a, n_boot=20)
    assert diffs and all(d.difference == 0.0 for d in diffs)


# -- the report ----------------------------------------------------------------------------------

def test_report_means_and_sample_std_over_seeds(tmp_path: Path) -> None:
    a_out = {1: noisy(1), 2: noisy(2), 3: noisy(3)}
    a = make_run(tmp_path, "a", a_out)
    b = make_run(tmp_path, "b", {1: noisy(4, 0.3)})
    rep = report([a, b], n_boot=50)
    maes = [sentiment_metrics(o, LABELS)["mae"] for o in a_out.values()]
    first = rep.summaries[0]
    assert first.n_seeds == 3 and first.mean["mae"] == pytest.approx(np.mean(maes))
    assert first.std["mae"] == pytest.approx(np.std(maes, ddof=1))
    assert rep.summaries[1].std["mae"] == 0.0  # one seed
    assert rep.baseline == "a" and {c.other for c in rep.comparisons} == {"b"}
    assert {c.metric for c in rep.comparisons} == set(rep.metrics)
    text = rep.to_text()
    assert "mae" in text and "95% CI" in text and "protocol of b" in text


def test_baseline_by_name(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {1: noisy(1)})
    b = make_run(tmp_path, "b", {1: noisy(2)})
    c = make_run(tmp_path, "c", {1: noisy(3)})
    rep = report([a, b, c], baseline="b", n_boot=10)
    assert rep.baseline == "b" and {d.other for d in rep.comparisons} == {"a", "c"}
    with pytest.raises(UsageError, match="--baseline 'z'"):
        report([a, b], baseline="z", n_boot=10)


def test_protocol_card(tmp_path: Path) -> None:
    run = make_run(tmp_path, "a", {1: noisy(1), 2: noisy(2)}, left_out={1: ["audio"], 2: []},
                   overrides=["train.lr=0.001", "model.architecture=late", "train.num_epochs=3"])
    card = protocol_card(read_run(run))
    assert card.fingerprint == "ab" * 32 and card.split_sizes == {"train": 100, "valid": 20, "test": N}
    assert card.architecture == "late" and card.preset == "synthetic" and card.epochs == 3
    assert set(card.overrides or ()) == {"train.lr=0.001", 'model.architecture="late"', "train.num_epochs=3"}
    assert card.seeds == (1, 2) and card.best_epochs == {1: 2, 2: 2}
    assert card.modalities_left_out == {1: ("audio",), 2: ()}
    assert card.selection_metric == "loss" and card.selection_split == "valid"
    plain = protocol_card(read_run(make_run(tmp_path, "b", {1: noisy(1)})))
    assert plain.overrides == () and plain.modalities_left_out is None


def test_the_report_notes_other_data_or_selection_behind_the_same_clips(tmp_path: Path) -> None:
    base = make_run(tmp_path, "base", {1: noisy(1)})
    same = make_run(tmp_path, "same", {1: noisy(2)}, overrides=["train.lr=0.5"])  # settings are compared, not noted
    other = make_run(tmp_path, "other", {1: noisy(3)})
    described = json.loads((other / "dataset.json").read_text())
    described["fingerprint"]["sha256"] = "cd" * 32  # e.g. a misleading modality written into the same clips
    (other / "dataset.json").write_text(json.dumps(described))
    results = json.loads((other / "results.json").read_text())
    (other / "results.json").write_text(json.dumps({**results, "selection_metric": "acc2_non0"}))
    rep = report([base, same, other], n_boot=10)
    assert rep.protocol_notes == (
        f"other differs from base in: data sha256 {'cd' * 8} (baseline {'ab' * 8}); "
        "epochs selected by acc2_non0 (baseline loss)",)
    assert rep.to_text().count("note: other differs from base") == 1
    assert report([base, same], n_boot=10).protocol_notes == ()


def test_the_card_table_shortens_absolute_paths_and_the_json_keeps_them(tmp_path: Path) -> None:
    weights = "/home/someone/models/minilm/model"
    run = make_run(tmp_path, "a", {1: noisy(1)},
                   overrides=[f"model.text_encoder.path={weights}", "model.text_encoder.kind=bert"])
    card = protocol_card(read_run(run))
    assert f'model.text_encoder.path="{weights}"' in (card.overrides or ())
    assert card.to_dict()["overrides"] == list(card.overrides or ())
    shown = dict(card.fields())["overrides"]
    assert 'model.text_encoder.path=".../minilm/model"' in shown and "someone" not in shown
    assert 'model.text_encoder.kind="bert"' in shown


def test_written_files_and_refusals(tmp_path: Path) -> None:
    a = make_run(tmp_path, "=cmd", {1: noisy(1), 2: noisy(2)})
    b = make_run(tmp_path, "b", {1: noisy(3), 2: noisy(4)})
    rep = report([a, b], n_boot=30)
    out = tmp_path / "rep"
    written = write_report(rep, out)
    assert [p.name for p in written] == list(REPORT_FILES)
    with open(out / "comparisons.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(rep.metrics) and rows[0]["baseline"] == "'=cmd"  # not a formula
    assert any(float(r["difference"]) < 0 for r in rows) or any(float(r["difference"]) > 0 for r in rows)
    data = json.loads((out / "report.json").read_text())
    assert data["baseline"] == "=cmd" and len(data["cards"]) == 2
    assert (out / "report.md").read_text().startswith("# Runs on the test split")
    with pytest.raises(UsageError, match="exists; pass --overwrite"):
        write_report(rep, out)
    write_report(rep, out, overwrite=True)


def test_command_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path, "a", {1: noisy(1), 2: noisy(2)}, history=True)
    b = make_run(tmp_path, "b", {1: noisy(3, 0.8), 2: noisy(4, 0.8)}, history=True)
    out = tmp_path / "rep"
    args = ["report", str(a), str(b), "--bootstrap", "50", "--bootstrap-seed", "3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "a" in printed and "mae" in printed and "difference" in printed
    first = (out / "comparisons.csv").read_text()
    assert main(args) != 0  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert (out / "comparisons.csv").read_text() == first  # same bootstrap seed, same numbers


def test_curves(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    a = make_run(tmp_path, "a", {1: noisy(1), 2: noisy(2)}, history=True)
    b = make_run(tmp_path, "b", {1: noisy(3)}, history=True)
    path = plot_curves([a, b], tmp_path / "fig" / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UsageError, match="exists"):
        plot_curves([a, b], path)
    with pytest.raises(UsageError, match=r"\.png"):
        plot_curves([a, b], tmp_path / "curves.pdf")
    (a / "plots").mkdir()
    figure_of_a_run = a / "plots" / "curves.png"
    figure_of_a_run.write_bytes(b"a run's own figure")
    with pytest.raises(UsageError, match=r"--curves .* lies inside the input RUN #1"):
        plot_curves([a, b], figure_of_a_run, overwrite=True)
    assert figure_of_a_run.read_bytes() == b"a run's own figure"
    with pytest.raises(UsageError, match="lies inside the input RUN #2"):  # a new file inside a run: also refused
        plot_curves([a, b], b / "curves.png")
    assert not (b / "curves.png").exists()


def test_directories_of_one_setting_pool_into_one_run(tmp_path: Path) -> None:
    outputs = {1: noisy(1), 2: noisy(2), 3: noisy(3)}
    whole = make_run(tmp_path, "whole", outputs)
    part_1 = make_run(tmp_path, "p1", {1: outputs[1], 2: outputs[2]})
    part_2 = make_run(tmp_path, "p2", {3: outputs[3]})
    other = make_run(tmp_path, "other", {1: noisy(4)})
    pooled = report({"pooled": [part_1, part_2], "other": [other]}, n_boot=40)
    single = report({"pooled": [whole], "other": [other]}, n_boot=40)
    assert pooled.summaries == single.summaries and pooled.comparisons == single.comparisons
    assert pooled.summaries[0].n_seeds == 3 and pooled.baseline == "pooled"
    assert pooled.cards[0].path == f"{part_1}, {part_2}" and pooled.cards[0].seeds == (1, 2, 3)
    with pytest.raises(UsageError, match="seed 1 is in both"):
        report({"x": [part_1, whole]}, n_boot=10)
    changed = make_run(tmp_path, "changed", {5: noisy(5)}, overrides=["train.lr=0.5"])
    with pytest.raises(UsageError, match=r"differs from .* in \['train.lr'\]"):
        report({"x": [part_1, changed]}, n_boot=10)
    with pytest.raises(UsageError, match="named twice"):
        report({"x": [part_1], "y": [part_1]}, n_boot=10)


def test_only_some_seeds(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {1: noisy(1), 2: noisy(2), 3: noisy(3)})
    b = make_run(tmp_path, "b", {1: noisy(4), 3: noisy(5)})
    rep = report([a, b], seeds=[1, 3], n_boot=20)
    want = np.mean([sentiment_metrics(noisy(s), LABELS)["mae"] for s in (1, 3)])
    assert rep.summaries[0].mean["mae"] == pytest.approx(want) and rep.cards[0].seeds == (1, 3)
    assert all(c.paired_seeds for c in rep.comparisons)  # the same seed lists once filtered
    with pytest.raises(UsageError, match=r"--seeds 2: run 'b' has none of them \(it has \[1, 3\]\)"):
        report([a, b], seeds=[2], n_boot=10)


def test_probe_rows_beside_the_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path, "a", {1: noisy(1)})
    probes = tmp_path / "probes.json"
    probes.write_text(json.dumps({"text": {"modalities": ["text"], "alpha": 56.2,
                                           "valid": {"mae": 0.9, "corr": 0.7},
                                           "test": {"mae": 0.968, "corr": 0.713, "acc2_non0": 0.7923}}}))
    rep = report([a], probes=probes, n_boot=10)
    assert [(p.label, p.metrics["mae"]) for p in rep.probes] == [("ridge text (alpha 56.2)", 0.968)]
    text = rep.to_text()
    assert "ridge text (alpha 56.2)" in text and "79.23" in text and "0.713" in text  # the tables' units
    from decalign.runs.overview import read_probes

    assert read_probes(probes, "valid")[0].metrics == {"mae": 0.9, "corr": 0.7}  # the report's split
    data = rep.to_dict()
    assert data["probes"] == [{"name": "text", "alpha": 56.2, "metrics": {"mae": 0.968, "corr": 0.713,
                                                                          "acc2_non0": 0.7923}}]
    assert ["ridge text (alpha 56.2)", "test", "mae", 0.968, math.nan, 0][:4] in [r[:4] for r in rep.summary_rows()]
    probes.write_text(json.dumps({"text": {"test": {"mae": 1.0}}}))
    with pytest.raises(DataError, match=r"entry 'text' has no 'alpha'"):
        report([a], probes=probes, n_boot=10)
    capsys.readouterr()
    assert main(["report", str(a), "--probes", str(tmp_path / "nope.json")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.json" in err[0] and "missing" in err[0]


def test_curves_per_seed_of_chosen_metrics_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    a = make_run(tmp_path, "a", {1: noisy(1), 2: noisy(2)}, history=True)
    b = make_run(tmp_path, "b", {3: noisy(3)}, history=True)
    path = plot_curves({"setting": [a, b]}, tmp_path / "v.png", metrics=["loss"], seeds=[1, 3], title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="--curve-metrics: run 'a' has no validation values of \\['corr'\\]"):
        plot_curves([a], tmp_path / "w.png", metrics=["corr"])
    assert main(["report", f"setting={a},{b}", "--curves", str(tmp_path / "cli.png"), "--curve-metrics", "loss",
                 "--bootstrap", "10"]) == 0
    assert "setting" in capsys.readouterr().out and (tmp_path / "cli.png").is_file()
    assert main(["report", str(a), "--curve-metrics", "loss"]) != 0
    assert "--curve-metrics goes with --curves" in capsys.readouterr().err


def test_malformed_runs_are_one_line_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no such directory"):
        read_run(tmp_path / "nope")
    run = make_run(tmp_path, "a", {1: noisy(1)})
    (run / "results.json").write_text("{trunc")
    with pytest.raises(RunDirError, match=r"results\.json.*not valid JSON"):
        read_run(run)
    run = make_run(tmp_path, "b", {1: noisy(1)})
    file = run / "seed_1" / "test_predictions.csv"
    lines = file.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",oops"
    file.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunDirError, match=r"row 4, column 'prediction'"):
        read_run(run)
    run = make_run(tmp_path, "d", {1: noisy(1)})
    (run / "results.json").write_text(json.dumps({"seeds": {"1": {"best_epoch": "late"}}}))
    with pytest.raises(RunDirError, match=r"results\.json', seed 1: a malformed entry"):
        read_run(run)
    run = make_run(tmp_path, "c", {1: noisy(1)})
    with pytest.raises(RunDirError, match="over the limit"):
        from decalign.runs import ReadLimits

        read_run(run, limits=ReadLimits(max_rows=10))
    with pytest.raises(DataError, match="no predictions on the valid split"):
        report([run], split="valid")
