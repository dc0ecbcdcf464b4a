"""Results as the field reports them: sample or population std (named in every table header),
and tables for papers (markdown, LaTeX, MMSA's CSV with its metric names)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from decalign.bench import _read_results, plan_runs, write_report
from decalign.cli import main
from decalign.config.presets import get_preset
from decalign.metrics.display import MMSA_NAMES, aggregate, format_mmsa, format_table

SEEDS = [{"mae": 0.70, "acc2_non0": 0.80}, {"mae": 0.72, "acc2_non0": 0.82}, {"mae": 0.74, "acc2_non0": 0.86},
         {"mae": 0.76, "acc2_non0": 0.84}]
TINY = [
    "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
    "train.batch_size=16", "train.num_threads=1",
    "data.synthetic.n_train=48", "data.synthetic.n_valid=24", "data.synthetic.n_test=24", "data.synthetic.seq_len=8",
]


def test_sample_and_population_std_closed_form() -> None:
    # mae 0.70..0.76 step 0.02: squared deviations sum to 4 * 0.0005 = 0.002
    sample, population = aggregate(SEEDS), aggregate(SEEDS, std="population")
    assert sample["std"]["mae"] == pytest.approx(math.sqrt(0.002 / 3))
    assert population["std"]["mae"] == pytest.approx(math.sqrt(0.002 / 4))
    assert population["std"]["acc2_non0"] / sample["std"]["acc2_non0"] == pytest.approx(math.sqrt(3 / 4))
    assert sample["mean"] == population["mean"]
    assert (sample["std_kind"], population["std_kind"]) == ("sample", "population")
    assert aggregate(SEEDS[:1], std="population")["std"]["mae"] == 0.0
    with pytest.raises(ValueError, match="std must be one of"):
        aggregate(SEEDS, std="pooled")


@pytest.mark.parametrize("style", ["text", "markdown", "latex"])
@pytest.mark.parametrize("std", ["sample", "population"])
def test_every_table_header_names_its_std(style: str, std: str) -> None:
    agg = aggregate(SEEDS, std=std)
    header = format_table({"DecAlign": agg}, style=style, std=std, row_header="run").splitlines()[
        2 if style == "latex" else 0]
    assert f"{std} std" in header
    plain = format_table({"paper": {"mae": 0.735}}, style=style, std=std).splitlines()[2 if style == "latex" else 0]
    assert "std" not in plain  # a row of single numbers has no ±


def test_latex_table_is_booktabs_with_escapes_and_bold() -> None:
    rows = {"w/o MMD_x": aggregate(SEEDS), "50% & more": {"mae": 0.9, "acc2_non0": 0.5}}
    text = format_table(rows, style="latex", bold_best=True, names="mmsa")
    lines = text.splitlines()
    assert lines[0] == r"\begin{tabular}{lrr}" and lines[1] == r"\toprule" and lines[-2] == r"\end{tabular}"
    assert lines[-1].startswith("%") and r"\usepackage{booktabs}" in lines[-1]  # said where it is pasted
    assert lines[2] == r"mean $\pm$ sample std & MAE & Non0\_acc\_2 \\"
    assert lines[4].startswith(r"w/o MMD\_x & \textbf{0.730 $\pm$ 0.026} & \textbf{83.00 $\pm$ 2.58}")
    assert lines[5] == r"50\% \& more & 0.900 & 50.00 \\"


def test_latex_columns_have_the_papers_names() -> None:
    """Reproduced: the LaTeX header printed code-style keys (acc2\\_non0) a paper never uses."""
    header = format_table({"DecAlign": aggregate(SEEDS)}, keys=["acc2_non0", "f1_non0", "mae", "corr"],
                          style="latex").splitlines()[2]
    assert header == r"mean $\pm$ sample std & Acc-2 & F1 & MAE & Corr \\"
    assert format_table({"a": {"acc2_non0": 0.5}}, style="markdown").splitlines()[0] == "|  | acc2_non0 |"


def test_mmsa_csv_uses_mmsa_names_and_scales_every_metric() -> None:
    agg = aggregate(SEEDS, std="population")
    rows = list(csv.reader(io.StringIO(format_mmsa({"decalign": agg}))))
    assert rows[0] == ["Model", "MAE", "Non0_acc_2"]
    mae_std = round(math.sqrt(0.002 / 4) * 100, 2)
    acc_std = round(agg["std"]["acc2_non0"] * 100, 2)
    assert rows[1] == ["decalign", f"(73.0, {mae_std})", f"({round(0.83 * 100, 2)}, {acc_std})"]
    assert set(MMSA_NAMES.values()) >= {"Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5",
                                        "Mult_acc_7", "MAE", "Corr"}


def test_bench_report_in_population_std(tmp_path: Path) -> None:
    base = get_preset("mosi")
    runs = plan_runs(base, ("text", "audio", "vision"), tmp_path, ["decalign"], "none")
    run_dir = runs[0].directory
    run_dir.mkdir(parents=True)
    payload = {"mean": aggregate(SEEDS)["mean"], "std": aggregate(SEEDS)["std"],
               "seeds": {str(i): {"test": m} for i, m in enumerate(SEEDS)}}
    (run_dir / "results.json").write_text(json.dumps(payload))
    results = {runs[0].name: _read_results(run_dir, "population")}
    assert results[runs[0].name]["std"]["mae"] == pytest.approx(math.sqrt(0.002 / 4))
    dataset = SimpleNamespace(kind="mosi", task="regression", layout="mmsa-aligned", source="x.pkl", splits={})
    md, csv_path, _, text = write_report(tmp_path, runs, results, dataset, base, plots=False, std="population")
    assert "mean ± population std" in md.read_text() and "run (mean ± population std)" in text
    assert "mae_population_std" in csv_path.read_text().splitlines()[0]


@pytest.mark.slow
def test_train_and_eval_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "-q", "--epochs", "1", "--seeds", "1", "2", "--std", "population", "--no-tensorboard",
                 "--out", str(out), "--set", *TINY]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    per_seed = [results["seeds"][s]["test"] for s in ("1", "2")]
    assert printed.splitlines()[0].startswith("mean ± population std")
    assert results["std_population"] == aggregate(per_seed, std="population")["std"]
    assert results["std"] == aggregate(per_seed)["std"]

    assert main(["eval", "--run", str(out), "--format", "markdown", "--names", "mmsa"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| mean ± sample std |") and "Non0_acc_2" in md[0] and md[1].startswith("|---")

    assert main(["eval", "--run", str(out), "--format", "mmsa", "--json", str(tmp_path / "m.json")]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][:3] == ["Model", "Has0_acc_2", "Has0_F1_score"]
    pop = aggregate(per_seed, std="population")
    mae = f"({round(pop['mean']['mae'] * 100, 2)}, {round(pop['std']['mae'] * 100, 2)})"
    assert rows[1][rows[0].index("MAE")] == mae
    assert json.loads((tmp_path / "m.json").read_text())["std_kind"] == "population"

    assert main(["eval", "--checkpoint", str(out / "seed_1" / "model.safetensors"), "--format", "latex"]) == 0
    latex = capsys.readouterr().out
    assert latex.startswith(r"\begin{tabular}") and "std" not in latex.splitlines()[2]
