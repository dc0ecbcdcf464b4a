"""Every plotting function writes a non-empty PNG, refuses inputs it cannot draw, and
``decalign train --plots`` writes a run's figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="figures need the plots extra: pip install -e '.[plots]'")
pytest.importorskip("sklearn", reason="the t-SNE figure needs the plots extra: pip install -e '.[plots]'")

from decalign.plots import (
    plot_ablation_bars,
    plot_embeddings,
    plot_training_curves,
    plot_transport_plan,
    plot_validation_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def _history(seeds: tuple[int, ...] = (1, 2), epochs: int = 3, baseline: bool = False) -> list[dict[str, float]]:
    rows: list[dict] = []
    for seed in seeds:
        for epoch in range(1, epochs + 1):
            decay = 1.0 / epoch
            aux = 0.0 if baseline else decay
            rows.append({"seed": seed, "epoch": epoch, "split": "train", "lr": 1e-3, "time_s": 0.1, "loss": 1 + decay,
                         "task": decay, "decoupling": aux, "heterogeneity": -aux, "homogeneity": aux,
                         "contrastive": 2 * decay, "binary": 0.0, "mae": decay, "f1_non0": 1 - decay / 2})
            rows.append({"seed": seed, "epoch": epoch, "split": "valid", "lr": 1e-3, "time_s": 0.1,
                         "loss": 1.1 * decay, "mae": 1.1 * decay, "f1_non0": 0.9 - decay / 2})
        rows.append({"seed": seed, "epoch": epochs, "split": "test", "lr": math.nan, "time_s": 0.0,
                     "loss": 0.5, "mae": 0.4, "f1_non0": 0.7})
    return rows


def test_training_curves(tmp_path: Path) -> None:
    assert _is_png(plot_training_curves(_history(), tmp_path / "curves.png", title="demo"))
    assert _is_png(plot_training_curves(_history(seeds=(1,), baseline=True), tmp_path / "baseline.png"))
    with pytest.raises(ValueError, match="no train"):
        plot_training_curves([], tmp_path / "empty.png")


def test_validation_curves_mark_each_seeds_selected_epoch(tmp_path: Path, drawn: list) -> None:
    runs = {"raw": _history(seeds=(1, 2)), "averaged": _history(seeds=(1,), epochs=4)}
    assert _is_png(plot_validation_curves(runs, tmp_path / "v.png", metrics=("loss", "f1_non0")))
    fig = drawn[0]
    loss_ax, f1_ax = fig.axes
    dots = [ln for ln in loss_ax.lines if ln.get_marker() == "o"]
    assert [list(ln.get_xdata()) for ln in dots] == [[3.0], [3.0], [4.0]]  # each seed's test-row epoch
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["raw", "averaged"]
    assert max(max(ln.get_ydata()) for ln in f1_ax.lines) > 1  # F1 drawn in percent, as tables print it
    with pytest.raises(ValueError, match="'raw' has no validation values of \\['corr'\\]"):
        plot_validation_curves(runs, tmp_path / "x.png", metrics=("corr",))
    with pytest.raises(ValueError, match="no runs"):
        plot_validation_curves({}, tmp_path / "x.png")


def test_embeddings_regression_and_classification(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    unique = rng.normal(size=(3, 40, 8)) + np.arange(3)[:, None, None] * 3
    common = rng.normal(size=(3, 40, 8))
    labels = rng.uniform(-3, 3, size=40)
    path = plot_embeddings(unique, common, labels, ["text", "audio", "vision"], tmp_path / "emb.png", max_samples=30)
    assert _is_png(path)
    unique[2] = common[2] = 0.0  # a switched-off modality is left out
    classes = rng.integers(0, 4, size=40)
    path = plot_embeddings(unique, common, classes, ["text", "audio", "vision"], tmp_path / "emb_cls.png",
                           class_names=["a", "b", "c", "d"])
    assert _is_png(path)
    with pytest.raises(ValueError, match=r"\[M, N, d\]"):
        plot_embeddings(unique, common[:2], labels, ["text", "audio", "vision"], tmp_path / "bad.png")


def test_transport_plan(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    plan3 = rng.uniform(size=(4, 4, 4))
    assert _is_png(plot_transport_plan(plan3 / plan3.sum(), ["text", "audio", "vision"], tmp_path / "plan3.png"))
    plan2 = rng.uniform(size=(5, 5))
    assert _is_png(plot_transport_plan(plan2, ["text", "audio"], tmp_path / "plan2.png"))
    with pytest.raises(ValueError, match="no mass"):
        plot_transport_plan(np.zeros((3, 3)), ["a", "b"], tmp_path / "zero.png")
    with pytest.raises(ValueError, match="one axis per modality"):
        plot_transport_plan(plan3, ["a", "b"], tmp_path / "mismatch.png")


def test_ablation_bars(tmp_path: Path) -> None:
    table = {
        "DecAlign": {"mean": {"mae": 0.74, "f1_non0": 0.85}, "std": {"mae": 0.01, "f1_non0": 0.004}},
        "MulT": {"mean": {"mae": 0.85, "f1_non0": 0.81}, "std": {"mae": 0.02, "f1_non0": 0.01}},
        "w/o MMD": {"mae": 0.75},  # a plain row (one number) is drawn too
    }
    paper = {"DecAlign": {"mae": 0.735, "f1_non0": 0.8582}}
    groups = {"MulT": "baseline", "w/o MMD": "ablation"}
    assert _is_png(plot_ablation_bars(table, "mae", tmp_path / "mae.png", paper=paper, groups=groups))
    assert _is_png(plot_ablation_bars(table, "f1_non0", tmp_path / "f1.png"))
    with pytest.raises(ValueError, match="no row has metric"):
        plot_ablation_bars(table, "waf1", tmp_path / "none.png")


@pytest.mark.slow
def test_train_plots_writes_the_run_figures(tmp_path: Path) -> None:
    from decalign.cli import main

    out = tmp_path / "run"
    tiny = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
            "train.batch_size=16", "train.num_threads=1", "data.synthetic.n_train=48", "data.synthetic.n_valid=16",
            "data.synthetic.n_test=24"]
    assert main(["train", "--epochs", "2", "--seeds", "5", "--out", str(out), "--plots", "--no-tensorboard", "-q",
                 "--set", *tiny]) == 0
    for name in ("curves.png", "embeddings.png", "transport_plan.png", "predictions_test.png"):
        assert _is_png(out / "plots" / name), name
    # a baseline has no decoupled features and no plan: only its curves and test predictions
    base = tmp_path / "tfn"
    assert main(["train", "--epochs", "1", "--seeds", "5", "--out", str(base), "--plots", "--no-tensorboard", "-q",
                 "--set", *tiny, "model.architecture=tfn"]) == 0
    assert sorted(p.name for p in (base / "plots").iterdir()) == ["curves.png", "predictions_test.png"]


# ---------------------------------------------------------------------------------------------
# what a reviewer checks (the figures are captured before they are saved)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    import decalign.plots as plots

    figures: list = []
    save = plots._save

    def keep(fig, path):  # type: ignore[no-untyped-def]
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def test_curves_legend_names_each_seeds_line_style(tmp_path: Path, drawn: list) -> None:
    plot_training_curves(_history(seeds=(11, 22, 33)), tmp_path / "c.png")
    legend = drawn[0].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["seed 11", "seed 22", "seed 33"]
    styles = [h.get_linestyle() for h in legend.legend_handles]
    assert len(set(styles)) == 3  # three distinguishable styles
    plot_training_curves(_history(seeds=(5,)), tmp_path / "one.png")
    assert not drawn[1].legends  # one seed: nothing to tell apart


def test_ablation_figure_is_a_dot_plot_whose_labels_clear_the_reference_line(tmp_path: Path, drawn: list) -> None:
    from matplotlib.patches import Rectangle

    table = {name: {"mean": {"mae": m}, "std": {"mae": 0.004}}
             for name, m in [("DecAlign", 0.741), ("w/o MMD", 0.742), ("w/o OT", 0.7405), ("MulT", 0.85)]}
    plot_ablation_bars(table, "mae", tmp_path / "mae.png", std="population")
    fig = drawn[0]
    ax = fig.axes[0]
    # no bars: a bar's length would need an axis from zero; the dots' axis covers the values only
    assert not [p for p in ax.patches if isinstance(p, Rectangle)]
    assert ax.get_xlim()[0] > 0.5
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    line = next(ln for ln in ax.lines if ln.get_linestyle() == "--")  # the reference (DecAlign) line
    line_box = line.get_window_extent(renderer)
    labels = [t for t in ax.texts if "±" in t.get_text()]
    assert len(labels) == 4
    for text in labels:
        assert not text.get_window_extent(renderer).overlaps(line_box), text.get_text()
    assert "population std" in ax.get_xlabel()
