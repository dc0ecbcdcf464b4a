"""``decalign bench``: a 1-epoch, 1-seed benchmark of every model and every ablation on tiny
synthetic data (files, table, figures, links), resuming, and the ablation definitions."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from decalign.bench import MODEL_LABELS, MODELS, BenchRun, parse_models, plan_runs, write_report
from decalign.cli import main
from decalign.config import RunConfig, apply_overrides, config_from_dict, config_to_dict
from decalign.config.ablations import (
    ABLATIONS,
    LABELS,
    SWITCH_ABLATIONS,
    ablations_for,
    inactive_terms,
    label,
    select_ablations,
)
from decalign.config.presets import get_preset
from decalign.metrics.display import PAPER_RESULTS

TINY_SYNTHETIC = [
    "model.d_model=16",
    "model.fusion.num_heads=2",
    "model.fusion.num_layers=1",
    "model.homogeneity.pde_dim=8",
    "train.batch_size=16",
    "train.num_threads=1",
    "data.synthetic.n_train=64",
    "data.synthetic.n_valid=32",
    "data.synthetic.n_test=40",
]
ARGV = ["bench", "--dataset", "synthetic", "--models", ",".join(MODELS), "--ablations", "all", "--seeds", "3",
        "--epochs", "1", "-q", "--set", *TINY_SYNTHETIC]
ALL_RUNS = [*MODELS, *ABLATIONS]

needs_plots = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None or importlib.util.find_spec("sklearn") is None,
    reason="figures need the plots extra: pip install -e '.[plots]'",
)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "out"
    assert main([*ARGV, "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------------------------------------
# the end-to-end bench


@pytest.mark.slow
def test_every_run_is_a_complete_run_directory(bench_dir: Path) -> None:
    runs = sorted(p.name for p in (bench_dir / "runs").iterdir())
    assert runs == sorted(ALL_RUNS)
    for name in ALL_RUNS:
        run = bench_dir / "runs" / name
        results = json.loads((run / "results.json").read_text())
        assert set(results["seeds"]) == {"3"}
        assert (run / "seed_3" / "model.safetensors").stat().st_size > 0
        config = config_from_dict(RunConfig, json.loads((run / "config.json").read_text()))
        assert config.train.num_epochs == 1 and config.model.d_model == 16
        assert config.model.architecture == (name if name in MODELS else "decalign")
    ablated = config_from_dict(RunConfig, json.loads((bench_dir / "runs" / "no_mmd" / "config.json").read_text()))
    assert not ablated.model.homogeneity.mmd and ablated.model.homogeneity.moments
    subset = config_from_dict(RunConfig, json.loads((bench_dir / "runs" / "text+vision" / "config.json").read_text()))
    assert subset.model.modalities == ("text", "vision")


@pytest.mark.slow
def test_bench_csv(bench_dir: Path) -> None:
    rows = _read_csv(bench_dir / "bench.csv")
    assert [r["name"] for r in rows] == ALL_RUNS
    assert {r["kind"] for r in rows[: len(MODELS)]} == {"model"}
    assert {r["kind"] for r in rows[len(MODELS):]} == {"ablation"}
    for row in rows:
        assert row["n_seeds"] == "1"
        for metric in ("mae", "corr", "acc2_non0", "f1_non0", "acc7"):
            assert float(row[f"{metric}_sample_std"]) == 0.0  # one seed
            assert row[f"{metric}_mean"] != ""
        results = json.loads((bench_dir / "runs" / row["name"] / "results.json").read_text())
        assert float(row["mae_mean"]) == pytest.approx(results["mean"]["mae"])
        assert json.loads(row["overrides"])["model.architecture"] == (
            row["name"] if row["name"] in MODELS else "decalign")


@pytest.mark.slow
@needs_plots
def test_bench_md_table_and_figures(bench_dir: Path) -> None:
    text = (bench_dir / "bench.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    header = table[0]
    for key in ("mae", "corr", "acc2_non0", "acc7", "f1_non0"):
        assert f" {key} " in header
    for name in ALL_RUNS:
        shown = MODEL_LABELS[name] if name in MODELS else LABELS[name]
        assert any(line.startswith(f"| {shown} |") and "±" in line for line in table), shown
    assert "**" in text  # best of each column in bold
    assert "(paper)" not in text  # the built-in dataset is not a paper benchmark
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "figures/ablation_mae.png" in links and "figures/ablation_f1_non0.png" in links
    assert {"runs/decalign/plots/curves.png", "runs/decalign/plots/embeddings.png",
            "runs/decalign/plots/transport_plan.png"} <= set(links)
    for link in links:
        assert not Path(link).is_absolute()
        target = bench_dir / link
        assert target.is_file() and target.stat().st_size > 1000, link


@pytest.mark.slow
@needs_plots
def test_rerun_skips_completed_runs(bench_dir: Path) -> None:
    files = [bench_dir / "runs" / name / f for name in ALL_RUNS for f in ("results.json", "seed_3/model.safetensors")]
    files.append(bench_dir / "runs" / "decalign" / "plots" / "embeddings.png")
    before = {f: f.stat().st_mtime_ns for f in files}
    report_before = (bench_dir / "bench.csv").read_text()
    assert main([*ARGV, "--out", str(bench_dir)]) == 0
    assert {f: f.stat().st_mtime_ns for f in files} == before  # nothing retrained or redrawn
    assert (bench_dir / "bench.csv").read_text() == report_before


@pytest.mark.slow
def test_rerun_resumes_an_interrupted_run(bench_dir: Path) -> None:
    """A run killed after its last epoch but before its results were written is finished from its
    saved state (not retrained): same test metrics as before."""
    run = bench_dir / "runs" / "no_mmd"
    before = json.loads((run / "results.json").read_text())["seeds"]["3"]["test"]
    checkpoint_time = (run / "seed_3" / "model.safetensors").stat().st_mtime_ns
    (run / "results.json").unlink()
    (run / "seed_3" / "result.json").unlink()
    assert main([*ARGV, "--out", str(bench_dir)]) == 0
    after = json.loads((run / "results.json").read_text())["seeds"]["3"]["test"]
    assert after["mae"] == pytest.approx(before["mae"], abs=1e-6)
    assert (run / "seed_3" / "model.safetensors").stat().st_mtime_ns == checkpoint_time


@pytest.mark.slow
def test_rerun_with_other_settings_is_refused(bench_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a if a != "1" else "2" for a in ARGV]  # --epochs 2
    assert main([*argv, "--out", str(bench_dir)]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "train.num_epochs" in err


def test_bench_command_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--models", "decalign,lstm", "--out", str(tmp_path / "x")]) == 2
    assert "lstm" in capsys.readouterr().err
    assert main(["bench", "--models", "none", "--ablations", "no_such", "--out", str(tmp_path / "y"),
                 "--set", *TINY_SYNTHETIC]) == 2
    assert "no_such" in capsys.readouterr().err


def test_bench_help_imports_nothing_heavy() -> None:
    code = ("import sys; from decalign.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'numpy', 'matplotlib', 'sklearn') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# the report on a paper benchmark (no training: fake results)


def test_report_puts_the_papers_numbers_beside_ours(tmp_path: Path) -> None:
    base = get_preset("mosi")
    runs = plan_runs(base, ("text", "audio", "vision"), tmp_path, ["decalign", "mult", "tfn"], "no_mmd,text_only")
    results = {}
    for i, run in enumerate(runs):
        mean = {"mae": 0.8 + 0.01 * i, "corr": 0.7, "acc2_non0": 0.8 - 0.01 * i, "acc7": 0.4, "f1_non0": 0.8,
                "loss": 1.0}
        results[run.name] = {"mean": mean, "std": dict.fromkeys(mean, 0.01), "n": 3}
    dataset = SimpleNamespace(kind="mosi", task="regression", layout="mmsa-aligned", source="aligned_50.pkl",
                              splits={})
    md, csv_path, figures, _ = write_report(tmp_path, runs, results, dataset, base, plots=False)
    assert figures == [] and csv_path.exists()
    text = md.read_text()
    lines = [line for line in text.split("## ")[0].splitlines() if line.startswith("| ")]  # the results table
    names = [line.split("|")[1].strip() for line in lines[1:]]
    assert names == ["DecAlign", "DecAlign (paper)", "MulT", "MulT (paper)", "TFN", "w/o MMD", "w/o MMD (paper)",
                     "text only", "CGGM (paper)"]  # paper rows of ablations not run are left out
    paper_rows = [line for line in lines if "(paper)" in line]
    assert all("**" not in line for line in paper_rows)  # bold marks the best of our runs only
    assert "| DecAlign (paper) | 0.735 | 0.811 | 85.75 | 45.07 | 85.82 |" in lines
    assert "| w/o MMD (paper) | 0.741 | – | – | – | 84.61 |" in lines
    assert "**0.800 ± 0.010**" in lines[1]  # DecAlign has the best MAE of ours
    # the paper's rows say where they come from, since a subset or other features are not like for like
    assert "the paper reports on the full mosi benchmark with its own features" in text


# ---------------------------------------------------------------------------------------------
# ablation definitions


def test_ablations_cover_the_papers_rows() -> None:
    paper_rows = {row for bench in ("mosi", "mosei") for row in PAPER_RESULTS[bench]}
    ablation_rows = paper_rows - {"DecAlign", "CGGM", "MulT"}
    assert ablation_rows <= {LABELS[name] for name in ABLATIONS}
    assert MODEL_LABELS["decalign"] in PAPER_RESULTS["mosi"] and MODEL_LABELS["mult"] in PAPER_RESULTS["mosi"]
    for name in ("text_only", "audio_only", "vision_only", "text+audio", "text+vision", "audio+vision"):
        assert name in ABLATIONS


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_ablation_is_a_valid_change(name: str) -> None:
    base = get_preset("mosi")
    ablated = apply_overrides(base, ABLATIONS[name])
    assert config_to_dict(ablated) != config_to_dict(base)
    assert ablated.model.architecture == "decalign"
    assert name.replace("+", "").replace("_", "").isalnum()  # a safe directory name


def test_selection_and_modality_subsets() -> None:
    assert select_ablations("all", ("text", "audio", "vision")) == ABLATIONS
    assert select_ablations("none", ("text", "audio", "vision")) == {}
    assert list(select_ablations("no_mmd, text_only", ("text", "audio", "vision"))) == ["no_mmd", "text_only"]
    custom = ablations_for(("eeg", "ecg", "text", "video"))
    assert {"eeg_only", "video_only", "eeg+ecg", "text+video"} <= set(custom)
    assert label("eeg+ecg") == "eeg + ecg" and label("eeg_only") == "eeg only"
    assert set(ablations_for(("a", "b"))) - set(SWITCH_ABLATIONS) == {"a_only", "b_only"}  # a+b is the full model
    with pytest.raises(ValueError, match="text_only"):
        select_ablations("text_only", ("eeg", "ecg"))


def test_noop_ablations_are_flagged() -> None:
    mosei = get_preset("mosei").objective  # beta = 0: homogeneity is not weighted
    weights = {k: getattr(mosei, k) for k in ("w_dec", "alpha", "beta", "w_ct")}
    assert inactive_terms(ABLATIONS["no_mmd"], weights) == ["objective.beta = 0"]
    assert inactive_terms(ABLATIONS["no_homogeneity"], weights) == ["objective.beta = 0"]
    assert inactive_terms(ABLATIONS["decoupling_only"], weights) == []  # alpha > 0
    assert inactive_terms(ABLATIONS["no_cross_modal"], {"w_dec": 0, "alpha": 0, "beta": 0, "w_ct": 0}) == []
    runs = plan_runs(get_preset("iemocap"), ("text", "audio", "vision"), "out", "none", "no_contrastive,no_mmd")
    assert "w_ct = 0" in runs[0].note and runs[1].note == ""


def test_plan_runs() -> None:
    base = apply_overrides(get_preset("mosi"), {"model.architecture": "tfn"})  # ablations still run DecAlign
    runs = plan_runs(base, ("text", "audio", "vision"), "out", "mult,decalign", "no_mmd")
    assert [(r.name, r.kind, r.config.model.architecture) for r in runs] == [
        ("mult", "model", "mult"), ("decalign", "model", "decalign"), ("no_mmd", "ablation", "decalign")]
    assert all(isinstance(r, BenchRun) and r.directory == Path("out") / "runs" / r.name for r in runs)
    assert parse_models("all") == list(MODELS) and parse_models("none") == []
    with pytest.raises(ValueError, match="nothing to run"):
        plan_runs(base, ("text",), "out", "none", "none")


@pytest.mark.slow
def test_a_failing_run_does_not_stop_the_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import decalign.bench as bench
    from decalign.api import resolve_config
    from decalign.config import DataConfig
    from decalign.data import load_dataset

    data_overrides = [o for o in TINY_SYNTHETIC if o.startswith("data.")]
    data = apply_overrides(RunConfig(data=DataConfig(dataset="synthetic")), data_overrides).data
    dataset = load_dataset(None, data)
    base = resolve_config(dataset, None, [*TINY_SYNTHETIC, "train.seeds=[4]", "train.num_epochs=1"])
    original = bench._run_one

    def diverge_mult(run: BenchRun, *args: object) -> str:
        if run.name == "mult":
            raise FloatingPointError("non-finite training loss")
        return original(run, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bench, "_run_one", diverge_mult)
    result = bench.run_bench(dataset, base, tmp_path, "decalign,mult,tfn", "none", quiet=True, plots="none")
    assert result.status == {"decalign": "trained", "mult": "failed", "tfn": "trained"}
    assert "non-finite" in result.failures["mult"]
    assert [r["name"] for r in _read_csv(result.csv_path)] == ["decalign", "tfn"]
    assert "**MulT** failed" in result.md_path.read_text()
    monkeypatch.setattr(bench, "_run_one", original)
    result = bench.run_bench(dataset, base, tmp_path, "decalign,mult,tfn", "none", quiet=True, plots="none")
    assert result.status == {"decalign": "skipped", "mult": "trained", "tfn": "skipped"} and not result.failures
    assert "failed" not in result.md_path.read_text()


@pytest.mark.slow
@needs_plots
def test_figures_of_a_bench_without_ablations_are_not_named_ablation(bench_dir: Path, tmp_path: Path) -> None:
    """Reproduced: `bench --ablations none` wrote figures/ablation_<metric>.png."""
    from decalign.api import resolve_config
    from decalign.bench import _read_results, plan_runs, write_report
    from decalign.config import DataConfig
    from decalign.data import load_dataset

    data = load_dataset(None, DataConfig(dataset="synthetic"))
    base = resolve_config(data, overrides=[*TINY_SYNTHETIC, "train.seeds=[3]", "train.num_epochs=1"])
    data = load_dataset(None, base.data)
    copy = tmp_path / "bench"
    shutil.copytree(bench_dir, copy)
    runs = plan_runs(base, data.modalities, copy, MODELS, "none")
    results = {r.name: _read_results(r.directory) for r in runs}
    md, _, figures, _ = write_report(copy, runs, results, data, base)
    assert figures and all(f.name.startswith("models_") for f in figures)
    figures_section = md.read_text().split("## Figures")[1].split("\n## ")[0]
    assert "(figures/models_mae.png)" in figures_section and "ablation_" not in figures_section
