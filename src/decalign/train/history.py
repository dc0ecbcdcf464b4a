"""Training history and prediction files as CSV (standard library ``csv``, written atomically)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from decalign.safety.cells import csv_writer
from decalign.train.atomic import write_text

__all__ = ["LEADING_COLUMNS", "read_history", "write_history", "write_predictions"]

LEADING_COLUMNS: tuple[str, ...] = ("seed", "epoch", "split", "lr", "time_s")
"""The columns that place a history row; the rest are loss terms and metrics."""


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(LEADING_COLUMNS)
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def write_history(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """One row per (seed, epoch, split) with every loss term and metric; missing cells empty."""
    buf = io.StringIO()
    columns = _columns(rows)
    writer = csv_writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.write_dict(columns, {k: _cell(v) for k, v in row.items()})
    return write_text(path, buf.getvalue())


def read_history(path: Path) -> list[dict[str, Any]]:
    """Rows of a history file with numbers parsed (empty cells become NaN)."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            parsed: dict[str, Any] = {}
            for k, v in row.items():
                if k == "split":
                    parsed[k] = v
                elif v == "":
                    parsed[k] = math.nan
                else:
                    try:
                        parsed[k] = int(v) if k in ("seed", "epoch") else float(v)
                    except ValueError:
                        parsed[k] = v
            out.append(parsed)
    return out


def write_predictions(
    path: str | os.PathLike[str],
    ids: np.ndarray,
    labels: np.ndarray | None,
    predictions: np.ndarray,
    class_names: Sequence[str] | None,
    splits: Sequence[str] | None = None,
) -> Path:
    """The one prediction file writer (a run's ``test_predictions.csv``, ``decalign predict``):
    ``id,label,prediction`` (regression outputs ``[N]``) or ``id,label,predicted,<p_class>...``
    (classification logits ``[N, C]``: the arg-max class and the softmax probabilities), preceded
    by a ``split`` column when ``splits`` names each row's, without ``label`` when ``labels`` is
    ``None`` (unlabelled data)."""
    buf = io.StringIO()
    writer = csv_writer(buf, lineterminator="\n")  # ids and class names come from users' files
    lead = ["split"] if splits is not None else []
    label_col = ["label"] if labels is not None else []
    where = list(splits) if splits is not None else None
    classification = predictions.ndim == 2
    names = None
    if classification:
        names = list(class_names) if class_names is not None else [f"class_{c}" for c in range(predictions.shape[1])]

    def head(row: int) -> list[Any]:
        cells: list[Any] = [where[row]] if where is not None else []
        cells.append(str(ids[row]))
        if labels is not None:
            y = labels[row]
            if names is None:
                cells.append(float(y))
            else:
                cells.append(names[int(y)] if 0 <= int(y) < len(names) else int(y))
        return cells

    if names is None:
        writer.writerow([*lead, "id", *label_col, "prediction"])
        for row, p in enumerate(predictions):
            writer.writerow([*head(row), float(p)])
    else:
        z = predictions - predictions.max(1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        writer.writerow([*lead, "id", *label_col, "predicted", *[f"p_{n}" for n in names]])
        for row, (logit, p) in enumerate(zip(predictions, probs)):
            writer.writerow([*head(row), names[int(logit.argmax())], *[f"{float(v):.6f}" for v in p]])
    return write_text(path, buf.getvalue())
