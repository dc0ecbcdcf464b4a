"""The pages' figures, drawn on the server as PNG bytes with matplotlib's Agg canvas (no display,
no browser-side code). The transport plan and the confusion matrix are the figures of
:mod:`decalign.plots` (``decalign train --plots``, ``decalign eval --figure``); the training
curves here show every column of ``history.csv`` (each loss term and metric), one small panel
each, where the paper-sized figure of ``plots`` keeps to the main ones."""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["confusion_png", "curves_png", "plan_png"]

_NOT_CURVES = {"seed", "epoch", "split", "time_s"}
MAX_PANELS = 40
"""A history with more columns shows the first 40 (a wider one is probably not a run's)."""


def _figure(width: float, height: float) -> Any:
    from decalign._optional import require

    require("matplotlib", "plots", feature="decalign serve's figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, dpi: int = 90) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def curves_png(rows: Sequence[Mapping[str, Any]], title: str = "") -> bytes:
    """Every loss term and metric of ``history.csv`` against the epoch: one panel per column,
    a line per split and seed (train solid, valid dashed, test dotted)."""
    columns = [k for k in (rows[0] if rows else {}) if k not in _NOT_CURVES]
    columns = [c for c in columns if any(np.isfinite(_num(r.get(c))) for r in rows)][:MAX_PANELS]
    if not columns:
        fig = _figure(4, 1.2)
        fig.text(0.5, 0.5, "history.csv has no curves yet", ha="center", va="center")
        return _png(fig)
    ncols = 4
    nrows = math.ceil(len(columns) / ncols)
    fig = _figure(12, 2.3 * nrows + (0.4 if title else 0))
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    styles = {"train": "-", "valid": "--", "test": ":"}
    seeds = sorted({str(r.get("seed")) for r in rows})
    colours = {s: f"C{i % 10}" for i, s in enumerate(seeds)}
    for ax, column in zip(axes, columns):
        for split in styles:
            for seed in seeds:
                pts = [(_num(r.get("epoch")), _num(r.get(column))) for r in rows
                       if r.get("split") == split and str(r.get("seed")) == seed]
                pts = [(e, v) for e, v in pts if np.isfinite(e) and np.isfinite(v)]
                if pts:
                    e, v = zip(*sorted(pts))
                    ax.plot(e, v, styles[split], color=colours[seed], marker="." if len(pts) < 4 else None,
                            label=f"{split} seed {seed}")
        ax.set_title(column, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(labels)), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _through_file(draw: Callable[[Path], Any]) -> bytes:
    """The PNG a :mod:`decalign.plots` function writes to a path, as bytes (a private temporary
    folder; nothing is written near the runs)."""
    with tempfile.TemporaryDirectory(prefix="decalign-serve-") as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return path.read_bytes()


def plan_png(plan: np.ndarray, modalities: Sequence[str], title: str) -> bytes:
    """The prototype transport plan heat maps of :func:`decalign.plots.plot_transport_plan`."""
    from decalign.plots import plot_transport_plan

    return _through_file(lambda p: plot_transport_plan(plan, modalities, p, title=title))


def confusion_png(report: Mapping[str, Any], title: str) -> bytes:
    """The confusion matrix of :func:`decalign.plots.plot_confusion`."""
    from decalign.plots import plot_confusion

    return _through_file(lambda p: plot_confusion(report, p, title=title))
