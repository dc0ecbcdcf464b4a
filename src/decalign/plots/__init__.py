"""Figures of a run and of a benchmark (PNG, matplotlib).

* :func:`plot_training_curves` — task loss, auxiliary losses and two metrics per epoch and split.
* :func:`plot_embeddings` — t-SNE of the modality-unique and modality-common features, coloured
  by modality and by label (the paper's visualisation of decoupling).
* :func:`plot_transport_plan` — the learned prototype transport plan as heat maps.
* :func:`plot_ablation_bars` — one metric of every model/ablation as bars with the seed spread.
* :func:`plot_validation_curves` — the validation curves of several runs side by side (e.g. a
  setting on and off), each seed a thin line, the selected epochs marked.
* :func:`decalign.plots.run.plot_run` draws all of a run's figures with these functions.

matplotlib is imported inside the functions (``decalign --help`` must not pay for it) and used
through its object-oriented API on an Agg canvas, never through ``pyplot``: no global figure state,
no GUI backend, nothing to close. Every file is written atomically. ``docs/ablations.md`` says how
to read each figure.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "collect_features",
    "plot_ablation_bars",
    "plot_confusion",
    "plot_embeddings",
    "plot_regression",
    "plot_test_predictions",
    "plot_training_curves",
    "plot_transport_plan",
    "plot_validation_curves",
]

log = logging.getLogger("decalign")

METRIC_PREFERENCE = ("mae", "f1_non0", "f1", "waf1", "wacc", "acc2_non0", "acc2", "corr", "acc7", "mse")
"""Metrics shown in the training curves: the first two a history has (the paper's ablation
metrics first: MAE and F1 for sentiment, WAF1 and WAcc for emotions)."""

SPLIT_COLORS = {"train": "tab:blue", "valid": "tab:orange", "test": "tab:green"}
DPI = 200
"""Print resolution: the figures are sized in inches as a paper prints them (6.8 in: a full
text width), so 200 dpi keeps 7-8 pt text sharp."""


def plots_unavailable() -> str | None:
    """Why this install cannot draw figures (a note for the log), or ``None`` when it can: the
    figures need the ``plots`` extra (matplotlib, and scikit-learn for t-SNE)."""
    from decalign._optional import available

    missing = [m for m in ("matplotlib", "sklearn") if not available(m)]
    if not missing:
        return None
    return f"figures skipped: {' and '.join(missing)} not installed (pip install 'decalign[plots]')"


def _figure(width: float, height: float) -> Any:
    from decalign._optional import require

    require("matplotlib", feature="drawing figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str], dpi: int = DPI) -> Path:
    from decalign.train.atomic import atomic_write

    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").float().numpy()
    return np.asarray(x, dtype=np.float64)


def _display(metric: str, values: np.ndarray) -> np.ndarray:
    """Values in the units the tables print (accuracies and F1 x 100)."""
    from decalign.metrics.display import is_percentage

    return values * 100.0 if is_percentage(metric) else values


def _metric_label(metric: str) -> str:
    from decalign.metrics.display import higher_is_better, is_percentage

    unit = " (%)" if is_percentage(metric) else ""
    direction = higher_is_better(metric)
    hint = "" if direction is None else (", higher is better" if direction else ", lower is better")
    return f"{metric}{unit}{hint}"


# ---------------------------------------------------------------------------------------------
# training curves


def _finite(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    return any(isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key])) for r in rows)


def _series(rows: Sequence[Mapping[str, Any]], seed: Any, split: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = sorted(
        (int(r["epoch"]), float(r[key]))
        for r in rows
        if r.get("seed") == seed and r.get("split") == split and isinstance(r.get(key), (int, float))
        and math.isfinite(float(r[key]))
    )
    return np.array([p[0] for p in pts], dtype=float), np.array([p[1] for p in pts], dtype=float)


def _plural_seeds(seeds: Sequence[Any]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


def plot_training_curves(
    history_rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Learning curves of one run (all seeds) from its ``history.csv`` rows.

    Panels: the task loss (train: the batch-averaged ``task`` term; valid: the split's task
    ``loss``), the unweighted auxiliary losses of training, and the first two metrics of
    :data:`METRIC_PREFERENCE` the history has, for train and valid. Colours are splits, line
    styles seeds (a legend under the panels says which); the star is the test value at the
    selected (best-validation) epoch. Sized for a full text width (7 in).

    Args:
        history_rows: rows of :func:`decalign.train.history.read_history` (``seed``, ``epoch``,
            ``split`` and a column per loss term and metric).
        path: the PNG to write.
        title: figure title.
    """
    rows = [r for r in history_rows if r.get("split") in SPLIT_COLORS]
    if not rows:
        raise ValueError("plot_training_curves: the history has no train/valid/test rows")
    seeds = sorted({r["seed"] for r in rows})
    styles: list[Literal["-", "--", ":", "-."]] = ["-", "--", ":", "-."]
    metrics = [m for m in METRIC_PREFERENCE if _finite(rows, m)][:2]
    fig = _figure(7.0, 5.6)
    axes = fig.subplots(2, 2).ravel()

    def draw(ax: Any, key_for: Mapping[str, str], ylabel: str, scale_metric: str | None = None) -> None:
        for s_i, seed in enumerate(seeds):
            style = styles[s_i % len(styles)]
            for split, key in key_for.items():
                x, y = _series(rows, seed, split, key)
                if not len(x):
                    continue
                y = _display(scale_metric, y) if scale_metric else y
                if split == "test":
                    ax.plot(x, y, marker="*", markersize=13, linestyle="none", color=SPLIT_COLORS[split],
                            markeredgecolor="black", label="test (best epoch)" if s_i == 0 else None)
                else:
                    ax.plot(x, y, style, marker="o", markersize=3, color=SPLIT_COLORS[split],
                            label=split if s_i == 0 else None)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=6.5)

    draw(axes[0], {"train": "task", "valid": "loss", "test": "loss"}, "task loss")
    axes[0].set_title("Task loss")
    ax = axes[1]
    from decalign.model.output import WEIGHTED_TERMS

    aux = [k for k in WEIGHTED_TERMS if any(abs(float(r.get(k, 0) or 0)) > 0 for r in rows if r["split"] == "train"
                                         and math.isfinite(float(r.get(k, 0) or 0)))]
    colors = ["tab:purple", "tab:red", "tab:cyan", "tab:olive", "tab:brown"]
    for s_i, seed in enumerate(seeds):
        for c_i, key in enumerate(aux):
            x, y = _series(rows, seed, "train", key)
            ax.plot(x, y, styles[s_i % len(styles)], marker="o", markersize=3, color=colors[c_i % len(colors)],
                    label=key if s_i == 0 else None)
    ax.set_title("Auxiliary losses (train, unweighted)")
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel("loss term", fontsize=8)
    ax.grid(alpha=0.3)
    if aux:
        ax.legend(fontsize=6.5)
    else:
        ax.text(0.5, 0.5, "no auxiliary losses", ha="center", va="center", transform=ax.transAxes)
    for ax, metric in zip(axes[2:], [*metrics, None, None]):
        if metric is None:
            ax.axis("off")
            continue
        draw(ax, {"train": metric, "valid": metric, "test": metric}, _metric_label(metric), metric)
        ax.set_title(metric)
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.title.set_fontsize(9)
    if len(seeds) > 1:  # which line style is which seed
        handles = [Line2D([], [], color="0.3", linestyle=styles[i % len(styles)], label=f"seed {seed}")
                   for i, seed in enumerate(seeds)]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(seeds), fontsize=7, frameon=False,
                   title="line style", title_fontsize=7)
    fig.suptitle(f"{title or 'Training curves'} ({_plural_seeds(seeds)})", fontsize=10)
    return _save(fig, path)


def plot_validation_curves(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | os.PathLike[str],
    metrics: Sequence[str] = ("loss", "corr"),
    title: str | None = None,
) -> Path:
    """Validation curves of several runs, one colour each, for comparing settings.

    One panel per metric; each seed is a thin line and the epoch the run selected (its test
    row's epoch) a dot on it, so the figure shows both how smooth a curve is and where on it
    selection landed. Sized for a full text width (7 in).

    Args:
        runs: label -> rows of the run's ``history.csv`` (:func:`decalign.train.history.read_history`;
            several run directories of one setting may be joined).
        path: the PNG to write.
        metrics: validation columns to draw (``loss`` is the task loss the runs select on).
        title: figure title.
    """
    if not runs:
        raise ValueError("plot_validation_curves: no runs to draw")
    for label, rows in runs.items():
        missing = [m for m in metrics if not _finite([r for r in rows if r.get("split") == "valid"], m)]
        if missing:
            raise ValueError(f"plot_validation_curves: run {label!r} has no validation values of {missing}")
    from matplotlib.ticker import MaxNLocator

    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    fig = _figure(7.0, 2.9)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics):
        for r_i, (label, rows) in enumerate(runs.items()):
            color = colors[r_i % len(colors)]
            seeds = sorted({r["seed"] for r in rows if r.get("split") == "valid"})
            for s_i, seed in enumerate(seeds):
                x, y = _series(rows, seed, "valid", metric)
                y = _display(metric, y)
                ax.plot(x, y, "-", linewidth=1.0, alpha=0.8, color=color, label=label if s_i == 0 else None)
                chosen = {int(r["epoch"]) for r in rows if r.get("seed") == seed and r.get("split") == "test"}
                picked = np.isin(x, list(chosen))
                ax.plot(x[picked], y[picked], "o", markersize=4, color=color, markeredgecolor="black",
                        markeredgewidth=0.5)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(_metric_label(metric), fontsize=8)
        ax.set_title(f"validation {metric}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "Validation curves (lines: seeds; dots: the selected epochs)", fontsize=10)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# embeddings


def _tsne(points: np.ndarray, random_state: int) -> np.ndarray:
    from decalign._optional import require

    TSNE = require("sklearn.manifold", extra="plots", feature="the t-SNE embedding figure").TSNE

    n = points.shape[0]
    if n < 4:  # t-SNE needs perplexity < n; show the first two principal directions instead
        centred = points - points.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = centred @ vt[:2].T
        return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
    # 500 iterations (sklearn's default is 1000) halve the time; the layout has settled by then
    # for the few hundred points drawn here. The keyword is ``n_iter`` before scikit-learn 1.5.
    iters = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=random_state, **{iters: 500})
    return tsne.fit_transform(points)


def plot_embeddings(
    unique: Any,
    common: Any,
    labels: Any,
    modality_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    max_samples: int = 250,
    random_state: int = 0,
    title: str | None = None,
) -> Path:
    """Joint 2-D t-SNE of the modality-unique and modality-common features.

    Both panels show the same embedding: circles are unique features, triangles common ones. On
    the left the colour is the modality; on the right the label. Decoupling shows as unique
    features forming one cluster per modality while the common features of all modalities mix;
    label colour shows which features carry the task. Modalities whose features are all zero
    (switched off) are left out.

    Args:
        unique, common: ``[M, N, d]`` pooled features (arrays or tensors).
        labels: ``[N]`` regression targets or class indices.
        modality_names: the M names.
        path: the PNG to write.
        class_names: for classification: the class names (categorical colours and legend);
            ``None``: continuous colour scale.
        max_samples: samples drawn (without replacement, fixed ``random_state``) to keep t-SNE
            fast: at most ``2 M max_samples`` points.
        random_state: seed of the subsample and of t-SNE.
        title: figure title.
    """
    u, c, y = _numpy(unique), _numpy(common), _numpy(labels).reshape(-1)
    if u.shape != c.shape or u.ndim != 3 or u.shape[0] != len(modality_names) or u.shape[1] != y.shape[0]:
        raise ValueError(
            f"plot_embeddings: expected unique and common [M, N, d] with M = {len(modality_names)} and N = "
            f"{y.shape[0]} labels, found {u.shape} and {c.shape}"
        )
    keep = [m for m in range(u.shape[0]) if np.any(u[m]) or np.any(c[m])]
    if not keep:
        raise ValueError("plot_embeddings: every modality's features are zero")
    rng = np.random.default_rng(random_state)
    n = y.shape[0]
    idx = np.sort(rng.choice(n, size=min(n, max_samples), replace=False))
    names = [modality_names[m] for m in keep]
    blocks = [u[m, idx] for m in keep] + [c[m, idx] for m in keep]
    points = np.concatenate(blocks)
    emb = _tsne(points, random_state)
    k = len(idx)
    n_mod = len(keep)
    fig = _figure(7.0, 3.9)  # a full text width; legend under the left panel, never over the points
    ax_mod, ax_lab = fig.subplots(1, 2)
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]
    markers = {"unique": "o", "common": "^"}
    for j, name in enumerate(names):
        color = palette[j % len(palette)]
        for kind, offset in (("unique", 0), ("common", n_mod)):
            block = emb[(offset + j) * k:(offset + j + 1) * k]
            ax_mod.scatter(block[:, 0], block[:, 1], s=7, marker=markers[kind], alpha=0.7,
                           facecolors=color if kind == "unique" else "none", edgecolors=color, linewidths=0.8,
                           label=f"{name} {kind}")
    ax_mod.set_title("coloured by modality (● unique, △ common)", fontsize=8)
    ax_mod.legend(fontsize=6.5, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1), markerscale=1.5,
                  frameon=False)
    y_all = np.tile(y[idx], 2 * n_mod)
    for kind, offset in (("unique", 0), ("common", n_mod)):
        sl = slice(offset * k, (offset + n_mod) * k)
        if class_names is not None:
            # tab10 colours by class index (classes beyond ten reuse colours)
            sc = ax_lab.scatter(emb[sl, 0], emb[sl, 1], c=np.mod(y_all[sl], 10), cmap="tab10", vmin=-0.5,
                                vmax=9.5, s=7, marker=markers[kind], alpha=0.7, linewidths=0.8)
        else:
            sc = ax_lab.scatter(emb[sl, 0], emb[sl, 1], c=y_all[sl], cmap="coolwarm", vmin=float(y.min()),
                                vmax=float(y.max()), s=7, marker=markers[kind], alpha=0.7, linewidths=0.8)
    if class_names is not None:
        from matplotlib import colormaps
        from matplotlib.lines import Line2D

        tab = colormaps["tab10"]
        handles = [Line2D([], [], marker="o", linestyle="none", color=tab(i % 10), label=str(nm))
                   for i, nm in enumerate(class_names)]
        ax_lab.legend(handles=handles, fontsize=6.5, title="class", title_fontsize=6.5, loc="upper center",
                      bbox_to_anchor=(0.5, -0.1), ncol=min(len(handles), 6), frameon=False)
    else:
        cbar = fig.colorbar(sc, ax=ax_lab, shrink=0.85)
        cbar.set_label("label", fontsize=7)
        cbar.ax.tick_params(labelsize=6.5)
    ax_lab.set_title("coloured by label (● unique, △ common)", fontsize=8)
    for ax in (ax_mod, ax_lab):
        ax.set_xlabel("t-SNE 1", fontsize=7)
        ax.set_ylabel("t-SNE 2", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title or 'Decoupled features'}: t-SNE of {k} samples x {n_mod} modalities x (unique, common)",
                 fontsize=8.5)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# transport plan


def plot_transport_plan(
    plan: Any,
    modality_names: Sequence[str],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    r"""The prototype transport plan :math:`P` (``[K, ..., K]``, one axis per modality) as heat maps.

    A multi-marginal plan is shown through its pairwise marginals :math:`P_{ij}` (the plan summed
    over the other modalities), one column per pair. Top row: the mass :math:`P_{ij}[p, q]` moved
    between prototype p of modality i and prototype q of modality j. Bottom row:
    :math:`\log_2 P_{ij}[p, q] / (\nu_i[p]\,\nu_j[q])`, the deviation from the independent
    coupling (0: no preference; +1: twice as much mass as independence would give). With the
    released costs (mean over dimensions, eps = 0.1) the plan is close to independent, so the top
    row mostly shows the prototype weights and the bottom row carries the alignment.

    Args:
        plan: ``[K, ..., K]`` with M >= 2 axes (array or tensor).
        modality_names: the M names, in axis order.
        path: the PNG to write.
        title: figure title.
    """
    p = _numpy(plan)
    if p.ndim < 2 or p.ndim != len(modality_names):
        raise ValueError(f"plot_transport_plan: a plan with one axis per modality ({len(modality_names)}) "
                         f"is needed, found shape {p.shape}")
    total = p.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("plot_transport_plan: the plan has no mass (was the OT term switched off?)")
    p = p / total
    pairs = [(i, j) for i in range(p.ndim) for j in range(i + 1, p.ndim)]
    # A full text width at most (2.3 in per pair); cell values printed only where they stay legible.
    fig = _figure(min(7.0, 2.3 * len(pairs) + 0.6), 4.7)
    axes = np.asarray(fig.subplots(2, len(pairs), squeeze=False))
    eps = 1e-12
    ratios = []
    for i, j in pairs:
        other = tuple(a for a in range(p.ndim) if a not in (i, j))
        pij = p.sum(axis=other) if other else p
        ratios.append(np.log2((pij + eps) / (np.outer(pij.sum(1), pij.sum(0)) + eps)))
    bound = max(float(np.max(np.abs(r))) for r in ratios) or 1.0
    for col, ((i, j), ratio) in enumerate(zip(pairs, ratios)):
        other = tuple(a for a in range(p.ndim) if a not in (i, j))
        pij = p.sum(axis=other) if other else p
        for row, (values, cmap, vmin, vmax, label) in enumerate((
            (pij, "viridis", 0.0, float(pij.max()), "transported mass"),
            (ratio, "RdBu_r", -bound, bound, "log2(P / independent)"),
        )):
            ax = axes[row, col]
            im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper")
            k_i, k_j = values.shape
            if k_i * k_j <= 25:
                for a in range(k_i):
                    for b in range(k_j):
                        text = f"{values[a, b]:.3f}" if row == 0 else f"{values[a, b]:+.2f}"
                        ax.text(b, a, text, ha="center", va="center", fontsize=5.5,
                                color="white" if (row == 0 and values[a, b] < 0.6 * vmax) else "black")
            ax.set_xticks(range(k_j))
            ax.set_yticks(range(k_i))
            ax.tick_params(labelsize=6)
            ax.set_xlabel(f"{modality_names[j]} prototype", fontsize=7)
            ax.set_ylabel(f"{modality_names[i]} prototype", fontsize=7)
            if row == 0:  # the row's meaning is in its colour bar's label
                ax.set_title(f"{modality_names[i]} ↔ {modality_names[j]}", fontsize=8)
            cbar = fig.colorbar(im, ax=ax, shrink=0.8)
            cbar.set_label(label, fontsize=6.5)
            cbar.ax.tick_params(labelsize=6)
    fig.suptitle(title or "Prototype transport plan (pairwise marginals)", fontsize=8.5)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# ablation bars


def _row_stats(row: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    means = row["mean"] if isinstance(row.get("mean"), Mapping) else row
    std = row.get("std")
    stds: Mapping[str, Any] = std if isinstance(std, Mapping) else {}
    if metric not in means:
        return None
    value = float(means[metric])
    if not math.isfinite(value):
        return None
    return value, float(stds.get(metric, 0.0) or 0.0)


def plot_ablation_bars(
    table: Mapping[str, Mapping[str, Any]],
    metric: str,
    path: str | os.PathLike[str],
    *,
    reference: str | None = "DecAlign",
    paper: Mapping[str, Mapping[str, float]] | None = None,
    groups: Mapping[str, str] | None = None,
    title: str | None = None,
    std: str = "sample",
) -> Path:
    """``metric`` for every row of a results table as a dot plot: the mean over seeds as a dot
    with a ± std error bar, one line per row.

    A dot plot rather than bars: a bar encodes its value by its length, so its axis must start at
    zero, which hides differences of a few hundredths between ablations; a dot encodes it by
    position, so the axis may cover just the range of the values. The numbers are printed in a
    column to the right of the axes, where no dot, error bar or reference line can cover them.

    Args:
        table: row label -> an :func:`decalign.metrics.display.aggregate` result (``mean``/``std``
            dicts) or a plain metrics dict, in display order (top to bottom).
        metric: the metric key (accuracies and F1 are shown x 100).
        path: the PNG to write.
        reference: the row drawn in a distinct colour with a dashed line at its value (the full
            model), if present.
        paper: row label -> the paper's reported metrics; drawn as open black diamonds on the rows
            that have ``metric``.
        groups: row label -> group name (e.g. ``baseline``, ``ablation``): one colour per group,
            with a legend. Default: one colour.
        title: figure title.
        std: which standard deviation the rows hold (``sample`` or ``population``), for the label.
    """
    from decalign.metrics.display import STD_KINDS

    entries = [(name, s) for name, row in table.items() if (s := _row_stats(row, metric)) is not None]
    if not entries:
        raise ValueError(f"plot_ablation_bars: no row has metric {metric!r}")
    names = [n for n, _ in entries]
    means = _display(metric, np.array([s[0] for _, s in entries]))
    stds = _display(metric, np.array([s[1] for _, s in entries]))
    paper_vals = {}
    for name in names:
        if paper and name in paper and metric in paper[name]:
            paper_vals[name] = float(_display(metric, np.array([float(paper[name][metric])]))[0])
    lo = min(float((means - stds).min()), *paper_vals.values()) if paper_vals else float((means - stds).min())
    hi = max(float((means + stds).max()), *paper_vals.values()) if paper_vals else float((means + stds).max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    fig = _figure(6.8, 0.2 * len(names) + 1.3)  # a full text width; rows a line of 8 pt text apart
    ax = fig.subplots()
    ypos = np.arange(len(names))
    palette = ["tab:blue", "tab:green", "tab:purple", "tab:olive", "tab:cyan", "tab:brown"]
    group_of = {n: (groups or {}).get(n, "") for n in names}
    group_names = list(dict.fromkeys(g for n, g in group_of.items() if n != reference))
    group_color = {g: palette[i % len(palette)] for i, g in enumerate(group_names)}
    colors = ["tab:red" if n == reference else group_color[group_of[n]] for n in names]
    for y, m, s, c in zip(ypos, means, stds, colors):
        ax.errorbar(m, y, xerr=s, fmt="o", color=c, markersize=4.5, elinewidth=1.2, capsize=2.5, zorder=3)
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    handles: list[Any] = [Line2D([], [], marker="o", linestyle="none", color=group_color[g], label=g)
                          for g in group_names if g]
    if reference in names:
        handles.append(ax.axvline(means[names.index(reference)], color="tab:red", linestyle="--", linewidth=0.9,
                                  zorder=1, label=f"{reference} (ours)"))
    if paper_vals:
        handles.append(ax.scatter(list(paper_vals.values()), [ypos[names.index(n)] for n in paper_vals],
                                  marker="D", facecolors="none", edgecolors="black", s=22, zorder=4,
                                  label="paper (reported)"))
    decimals = 2 if _display(metric, np.array([1.0]))[0] == 100.0 else 3
    right_of_axes = blended_transform_factory(ax.transAxes, ax.transData)
    for y, m, s in zip(ypos, means, stds):
        ax.text(1.02, y, f"{m:.{decimals}f} ± {s:.{decimals}f}", transform=right_of_axes, va="center",
                fontsize=7.5, family="monospace")
    ax.set_yticks(ypos, names, fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(lo - 0.08 * span, hi + 0.08 * span)
    ax.set_xlabel(f"{_metric_label(metric)}: mean ± {STD_KINDS.get(std, std)} over seeds", fontsize=8.5)
    ax.grid(axis="x", alpha=0.3)
    if handles:
        ax.legend(handles=handles, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.06 - 0.6 / len(names)),
                  ncol=len(handles), frameon=False)
    ax.set_title(title or f"{metric} by model and ablation", fontsize=9.5)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# a run's figures


def collect_features(model: Any, data: Any, batch_size: int) -> dict[str, Any]:
    """Eval-mode pooled features of a whole split, in order.

    Returns ``unique``/``common`` (``[M, N, d]`` numpy, ``None`` for models without decoupled
    features), ``labels`` ``[N]`` and ``plan``: the transport plan of the *first* batch (the
    prototypes are refitted on every batch, so plans of different batches are not comparable and
    are not averaged). ``batch_size`` should be the training batch size, the batch statistics the
    alignment was trained with.
    """
    import torch

    from decalign.train.batches import batch_indices

    model.eval()
    device = next(model.parameters()).device
    uniques, commons, labels = [], [], []
    plan = None
    with torch.no_grad():
        for index in batch_indices(len(data), batch_size, shuffle=False):
            batch = data.batch(index, device)
            out = model(batch.features, batch.lengths)
            if out.unique is not None and out.common is not None:
                uniques.append(out.unique.float().cpu())
                commons.append(out.common.float().cpu())
            if plan is None and out.plan is not None:
                plan = out.plan.float().cpu().numpy()
            labels.append(batch.labels.cpu())
    return {
        "unique": torch.cat(uniques, dim=1).numpy() if uniques else None,
        "common": torch.cat(commons, dim=1).numpy() if commons else None,
        "labels": torch.cat(labels).numpy(),
        "plan": plan,
    }


PAPER_DPI = 300
"""Figures meant for a paper (confusion matrix, predictions) are drawn at print size, one or two
columns wide (3.4 or 7 inches) with 8-9 pt text, and saved at 300 dpi."""


def plot_confusion(report: Mapping[str, Any], path: str | os.PathLike[str], title: str = "") -> Path:
    """The confusion matrix of :func:`decalign.metrics.classification_report`: cells coloured by
    the row-normalised share (each row a true class, its diagonal the recall), annotated with
    the share and the count. One column wide."""
    names = list(report["class_names"])
    counts = np.asarray(report["confusion"], dtype=np.int64)
    share = np.asarray(report["confusion_normalized"], dtype=np.float64)
    n = len(names)
    size = 3.4 if n <= 7 else 3.4 + 0.35 * (n - 7)
    fig = _figure(size, size * 0.92)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{share[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center",
                    fontsize=6.5 if n <= 6 else 5.5, color="white" if share[i, j] > 0.55 else "black")
    ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 4 else 0, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted class", fontsize=9)
    ax.set_ylabel("true class", fontsize=9)
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    cbar.ax.tick_params(labelsize=7)
    cbar.set_label("share of the true class", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path, PAPER_DPI)


def plot_regression(predictions: Any, labels: Any, path: str | os.PathLike[str], title: str = "") -> Path:
    """Predicted against true values (with the identity line) and the histogram of residuals
    (prediction - label, with their mean and standard deviation). Two columns wide."""
    pred, true = _numpy(predictions).reshape(-1), _numpy(labels).reshape(-1)
    residual = pred - true
    fig = _figure(7.0, 2.9)
    ax_s, ax_h = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1.0]})
    lo, hi = float(min(pred.min(), true.min())), float(max(pred.max(), true.max()))
    pad = 0.04 * (hi - lo or 1.0)
    ax_s.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=0.8, ls="--", label="prediction = label")
    ax_s.scatter(true, pred, s=6, alpha=0.45, color="tab:blue", edgecolors="none")
    ax_s.set_xlim(lo - pad, hi + pad)
    ax_s.set_ylim(lo - pad, hi + pad)
    ax_s.set_xlabel("label", fontsize=9)
    ax_s.set_ylabel("prediction", fontsize=9)
    varied = pred.size > 1 and pred.std() > 0 and true.std() > 0
    corr = float(np.corrcoef(pred, true)[0, 1]) if varied else float("nan")
    ax_s.set_title(f"N = {pred.size}, MAE {np.abs(residual).mean():.3f}, r = {corr:.3f}", fontsize=9)
    ax_s.legend(fontsize=7, loc="upper left")
    ax_h.hist(residual, bins=min(50, max(10, pred.size // 20)), color="tab:orange", alpha=0.85)
    ax_h.axvline(0.0, color="0.4", lw=0.8, ls="--")
    ax_h.set_xlabel("residual (prediction - label)", fontsize=9)
    ax_h.set_ylabel("samples", fontsize=9)
    ax_h.set_title(f"mean {residual.mean():+.3f}, std {residual.std():.3f}", fontsize=9)
    for ax in (ax_s, ax_h):
        ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path, PAPER_DPI)


def plot_test_predictions(run_dir: str | os.PathLike[str], split: str = "test") -> list[Path]:
    """A run's prediction figure from its first seed's ``test_predictions.csv``:
    ``plots/confusion_test.png`` (classification) or ``plots/predictions_test.png``."""
    import csv

    from decalign.metrics import classification_report

    run = Path(run_dir)
    files = sorted(run.glob("seed_*/test_predictions.csv"))
    if not files:
        return []
    with open(files[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return []
    seed = files[0].parent.name.replace("_", " ")
    if "predicted" in rows[0]:
        names = [k[2:] for k in rows[0] if k.startswith("p_")]
        index = {c: i for i, c in enumerate(names)}
        report = classification_report([index[r["predicted"]] for r in rows], [index[r["label"]] for r in rows], names)
        title = f"{run.name}, {seed}, {split} split"
        return [plot_confusion(report, run / "plots" / f"confusion_{split}.png", title)]
    pred = [float(r["prediction"]) for r in rows]
    true = [float(r["label"]) for r in rows]
    title = f"{run.name}, {seed}, {split} split"
    return [plot_regression(pred, true, run / "plots" / f"predictions_{split}.png", title)]
