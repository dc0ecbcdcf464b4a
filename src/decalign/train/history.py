"""Training history and prediction files as CSV (standard library ``csv``, written atomically)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from decalign.train.atomic import write_text

__all__ = ["read_history", "write_history", "write_predictions"]

_LEADING = ["seed", "epoch", "split", "lr", "time_s"]


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(_LEADING)
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
    writer = csv.DictWriter(buf, fieldnames=_columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
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
    path: Path, ids: np.ndarray, labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str] | None
) -> Path:
    """``id,label,prediction`` (regression) or ``id,label,predicted,<p_class>...`` (classification)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if predictions.ndim == 1:
        writer.writerow(["id", "label", "prediction"])
        for i, y, p in zip(ids, labels, predictions):
            writer.writerow([str(i), float(y), float(p)])
    else:
        names = list(class_names) if class_names is not None else [f"class_{c}" for c in range(predictions.shape[1])]
        z = predictions - predictions.max(1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        writer.writerow(["id", "label", "predicted", *[f"p_{n}" for n in names]])
        for i, y, p in zip(ids, labels, probs):
            writer.writerow([str(i), names[int(y)] if 0 <= int(y) < len(names) else int(y),
                             names[int(p.argmax())], *[f"{float(v):.6f}" for v in p]])
    return write_text(path, buf.getvalue())
