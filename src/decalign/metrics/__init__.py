"""Evaluation metrics exactly as the DecAlign paper and the MMSA toolkit compute them.

Each function takes predictions and labels as numpy arrays, torch tensors or sequences and returns
a plain ``dict[str, float]`` of Python floats in natural units (fractions, not percentages; see
:mod:`decalign.metrics.display` for the paper's x 100 display). The definitions follow
``docs/method.md`` §14:

* :func:`sentiment_metrics` -- CMU-MOSI / CMU-MOSEI style regression in [-3, 3].
  **The paper's "Acc-2" and "F1" are** ``acc2_non0`` **and** ``f1_non0`` (neutral samples excluded).
* :func:`sims_metrics` -- CH-SIMS regression in [-1, 1] with right-closed buckets.
* :func:`emotion_metrics` -- IEMOCAP (and any classification): ``wacc``, ``waf1``, per class.
* :func:`regression_metrics` -- custom regression targets outside [-3, 3].
* :func:`metrics_for` -- picks one of the above for a dataset kind and task.

Degenerate inputs never produce NaN: an undefined value is replaced by a documented constant and a
:class:`MetricWarning` says so. Malformed inputs (empty, mismatched shapes, NaN predictions) raise a
``ValueError`` that says what was found. torch is never imported here; tensors are recognised by
their ``detach`` method.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

__all__ = [
    "EMOTION_KEYS",
    "LOWER_IS_BETTER",
    "REGRESSION_KEYS",
    "SENTIMENT_KEYS",
    "SIMS_KEYS",
    "MetricWarning",
    "classification_report",
    "emotion_metrics",
    "higher_is_better",
    "metric_mode",
    "metrics_for",
    "regression_metrics",
    "report_from_confusion",
    "sentiment_metrics",
    "sims_metrics",
]

SENTIMENT_KEYS: tuple[str, ...] = (
    "acc2_has0",
    "f1_has0",
    "acc2_non0",
    "f1_non0",
    "acc5",
    "acc7",
    "mae",
    "corr",
)
SIMS_KEYS: tuple[str, ...] = ("acc2", "acc3", "acc5", "f1", "mae", "corr")
REGRESSION_KEYS: tuple[str, ...] = ("mae", "mse", "corr")
EMOTION_KEYS: tuple[str, ...] = ("wacc", "waf1")
"""Class-independent emotion keys; :func:`emotion_metrics` adds ``acc_<class>``/``f1_<class>``."""

# CH-SIMS bucket edges (MMSA ``__eval_sims_regression``): value v is in bucket i when
# edges[i] < v <= edges[i + 1]. The outer edges are +-1.01 so the clipped ends -1 and 1 fall inside.
SIMS_EDGES: dict[int, tuple[float, ...]] = {
    2: (-1.01, 0.0, 1.01),
    3: (-1.01, -0.1, 0.1, 1.01),
    5: (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01),
}

Metrics = dict[str, float]
MetricFn = Callable[[Any, Any], Metrics]


class MetricWarning(UserWarning):
    """A metric was undefined for these inputs and replaced by a documented constant."""


# ---------------------------------------------------------------------------------------------
# input handling

ArrayLike = npt.ArrayLike
"""Predictions, logits or labels: a numpy array, a list, or a torch tensor (on any device; it
converts through ``__array__``, and :func:`_to_numpy` moves it to the CPU first)."""


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """numpy view of an array-like; torch tensors (duck-typed by ``detach``) are moved to CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        t = cast(Any, x).detach().cpu()
        try:
            return t.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            return t.float().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: cannot be read as an array ({err})") from err


def _as_float(a: np.ndarray, name: str) -> np.ndarray:
    """Floating copy that keeps float32/float64 precision (see :func:`sims_metrics` for why)."""
    if a.dtype.kind == "f":
        return a.astype(np.float32) if a.dtype.itemsize < 4 else a
    if a.dtype.kind in "biu":
        return a.astype(np.float64)
    raise ValueError(f"{name}: expected numbers, found dtype {a.dtype}")


def _check_finite(a: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        n_nan = int(np.isnan(a).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(
            f"{name}: {n_nan} NaN and {n_inf} infinite value(s) among {a.size}; "
            "metrics are undefined for non-finite values (did training diverge?)"
        )


def _vector(a: np.ndarray, name: str) -> np.ndarray:
    """``[N]`` from ``[N]`` or ``[N, 1]`` (a regression head's output); anything else is an error."""
    if a.ndim == 2 and a.shape[1] == 1:
        return a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name}: expected shape [N] or [N, 1], found {tuple(a.shape)}")
    return a


def _regression_pair(preds: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p_raw = _to_numpy(preds, "preds")
    y_raw = _to_numpy(labels, "labels")
    p = _vector(_as_float(p_raw, "preds"), "preds")
    y = _vector(_as_float(y_raw, "labels"), "labels")
    if p.shape != y.shape:
        raise ValueError(
            f"preds and labels must have the same length: preds shape {tuple(p_raw.shape)}, "
            f"labels shape {tuple(y_raw.shape)}"
        )
    if p.size == 0:
        raise ValueError("cannot compute metrics of an empty split (0 predictions and 0 labels)")
    _check_finite(p, "preds")
    _check_finite(y, "labels")
    return p, y


def _warn(message: str, depth: int = 0) -> None:
    """Warn at the caller of the public metric function; ``depth`` counts the private helpers
    between that function and this one."""
    warnings.warn(message, MetricWarning, stacklevel=3 + depth)


# ---------------------------------------------------------------------------------------------
# building blocks


def _accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(pred == true))


def _weighted_f1(true: np.ndarray, pred: np.ndarray, labels: Sequence[int] | None = None) -> float:
    r"""Support-weighted F1, the same number as sklearn's ``f1_score(average="weighted",
    zero_division=0)``: per class :math:`F1_c = \frac{2 TP_c}{2 TP_c + FP_c + FN_c}` (0 where
    the denominator is 0), averaged with weights :math:`n_c / \sum n_c` (:math:`n_c`: true
    samples of class c).

    Written with numpy (a dozen lines) so that training and evaluation need no scikit-learn,
    which belongs to the ``plots`` extra; ``tests/metrics/test_metrics.py`` checks it against sklearn.

    Args:
        true, pred: label vectors of the same length (any comparable dtype, e.g. bool).
        labels: the classes to average over (default: every value in ``true`` or ``pred``).
    """
    true = np.asarray(true).ravel()
    pred = np.asarray(pred).ravel()
    classes = np.unique(np.concatenate([true, pred])) if labels is None else np.asarray(list(labels))
    support = np.array([np.sum(true == c) for c in classes], dtype=np.float64)
    if classes.size == 0 or support.sum() == 0:
        return 0.0
    tp = np.array([np.sum((true == c) & (pred == c)) for c in classes], dtype=np.float64)
    fp = np.array([np.sum((true != c) & (pred == c)) for c in classes], dtype=np.float64)
    denom = 2 * tp + fp + (support - tp)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.sum(f1 * support) / support.sum())


def _pearson(p: np.ndarray, y: np.ndarray) -> float:
    r"""Pearson correlation :math:`r = \frac{\sum (p-\bar p)(y-\bar y)}{\sqrt{\sum (p-\bar p)^2
    \sum (y-\bar y)^2}}`, defined as 0 (with a :class:`MetricWarning`) when either side is
    constant, where the formula divides by zero."""
    p = p.astype(np.float64)
    y = y.astype(np.float64)
    constant = [name for name, a in (("predictions", p), ("labels", y)) if np.ptp(a) == 0]
    if constant:
        _warn(
            f"corr: the {' and the '.join(constant)} are constant over {p.size} sample(s), so the "
            "Pearson correlation is undefined; reporting 0.0",
            depth=1,
        )
        return 0.0
    pc = p - p.mean()
    yc = y - y.mean()
    # Scale before squaring so that very large values cannot overflow to inf.
    pc /= np.abs(pc).max()
    yc /= np.abs(yc).max()
    r = float(np.dot(pc, yc) / np.sqrt(np.dot(pc, pc) * np.dot(yc, yc)))
    return min(1.0, max(-1.0, r))


def _bucket(v: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Index i of the right-closed interval ``edges[i] < v <= edges[i+1]`` holding each value."""
    # Edges are cast to v's dtype so a float32 label 0.1 equals the edge 0.1 (as in MMSA, where
    # numpy compares a float32 array with a Python float in float32).
    e = np.asarray(edges, dtype=v.dtype)
    return np.searchsorted(e, v, side="left") - 1


# ---------------------------------------------------------------------------------------------
# public metric functions


def sentiment_metrics(preds: ArrayLike, labels: ArrayLike) -> Metrics:
    r"""Sentiment regression metrics in [-3, 3] (CMU-MOSI, CMU-MOSEI, the synthetic benchmark).

    With predictions :math:`p` and labels :math:`y` over :math:`N` samples:

    * ``acc2_non0`` = mean over samples with :math:`y \ne 0` of :math:`[p > 0] = [y > 0]`;
      ``f1_non0`` = weighted F1 (sklearn ``average="weighted"``) of the same binary problem.
      **These are the paper's "Acc-2" and "F1"**: neutral (exactly 0) labels are left out.
    * ``acc2_has0`` / ``f1_has0`` = the same with :math:`[p \ge 0]` vs :math:`[y \ge 0]` over all
      samples (neutral counts as non-negative).
    * ``acc7`` = mean of :math:`\mathrm{round}(\mathrm{clip}(p,-3,3)) =
      \mathrm{round}(\mathrm{clip}(y,-3,3))`, numpy rounding (half to even: 2.5 -> 2, -0.5 -> 0).
    * ``acc5`` = the same with clipping to [-2, 2].
    * ``mae`` = :math:`\frac1N\sum|p-y|` on unclipped values.
    * ``corr`` = Pearson correlation of :math:`p` and :math:`y`.

    Degenerate cases: constant predictions or labels give ``corr`` 0.0; a split without any
    non-zero label gives ``acc2_non0 = f1_non0 = 0.0``; both with a :class:`MetricWarning`.

    Args:
        preds: ``[N]`` or ``[N, 1]`` predictions (numpy, torch or sequence).
        labels: ``[N]`` or ``[N, 1]`` labels.

    Returns:
        The keys of :data:`SENTIMENT_KEYS`, as Python floats (fractions, not percentages).

    Raises:
        ValueError: empty input, different lengths, or non-finite predictions or labels.
    """
    p, y = _regression_pair(preds, labels)
    out: Metrics = {}
    out["acc2_has0"] = _accuracy(p >= 0, y >= 0)
    out["f1_has0"] = _weighted_f1(y >= 0, p >= 0)
    non0 = y != 0
    if non0.any():
        out["acc2_non0"] = _accuracy(p[non0] > 0, y[non0] > 0)
        out["f1_non0"] = _weighted_f1(y[non0] > 0, p[non0] > 0)
    else:
        _warn(
            f"acc2_non0/f1_non0: all {y.size} label(s) are exactly 0, so the non-zero binary "
            "accuracy and F1 are undefined; reporting 0.0"
        )
        out["acc2_non0"] = 0.0
        out["f1_non0"] = 0.0
    out["acc5"] = _accuracy(np.round(np.clip(p, -2, 2)), np.round(np.clip(y, -2, 2)))
    out["acc7"] = _accuracy(np.round(np.clip(p, -3, 3)), np.round(np.clip(y, -3, 3)))
    out["mae"] = float(np.mean(np.abs(p.astype(np.float64) - y.astype(np.float64))))
    out["corr"] = _pearson(p, y)
    return {k: out[k] for k in SENTIMENT_KEYS}


def sims_metrics(preds: ArrayLike, labels: ArrayLike) -> Metrics:
    r"""CH-SIMS regression metrics in [-1, 1] (MMSA ``__eval_sims_regression``).

    Predictions and labels are first clipped to [-1, 1]; then every value :math:`v` is put in
    the bucket :math:`i` with :math:`s_i < v \le s_{i+1}` (right-closed) for the splits

    * 2 classes: ``[-1.01, 0.0, 1.01]`` (so 0 is negative),
    * 3 classes: ``[-1.01, -0.1, 0.1, 1.01]`` (so -0.1 is negative and 0.1 neutral),
    * 5 classes: ``[-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]``.

    ``acc2``, ``acc3``, ``acc5`` are the accuracies of the bucketed values; ``f1`` is the weighted
    F1 of the 2-class buckets (**the paper's "F1"**); ``mae`` (**the paper's "MAE"**) and ``corr``
    are the mean absolute error and Pearson correlation of the *clipped* values.

    The bucket comparison is done in the inputs' own precision (float32 stays float32), as in
    MMSA: in float64 a float32 0.1 is 0.10000000149 and would cross the edge at 0.1.

    Degenerate cases: constant (clipped) predictions or labels give ``corr`` 0.0 with a
    :class:`MetricWarning`.

    Raises:
        ValueError: empty input, different lengths, or non-finite predictions or labels.
    """
    p, y = _regression_pair(preds, labels)
    dtype = np.result_type(p.dtype, y.dtype)
    p = np.clip(p.astype(dtype), -1, 1)
    y = np.clip(y.astype(dtype), -1, 1)
    out: Metrics = {}
    p2, y2 = _bucket(p, SIMS_EDGES[2]), _bucket(y, SIMS_EDGES[2])
    out["acc2"] = _accuracy(p2, y2)
    out["acc3"] = _accuracy(_bucket(p, SIMS_EDGES[3]), _bucket(y, SIMS_EDGES[3]))
    out["acc5"] = _accuracy(_bucket(p, SIMS_EDGES[5]), _bucket(y, SIMS_EDGES[5]))
    out["f1"] = _weighted_f1(y2, p2)
    out["mae"] = float(np.mean(np.abs(p.astype(np.float64) - y.astype(np.float64))))
    out["corr"] = _pearson(p, y)
    return out


def regression_metrics(preds: ArrayLike, labels: ArrayLike) -> Metrics:
    r"""Generic regression metrics for custom targets outside [-3, 3].

    ``mae`` = :math:`\frac1N\sum|p-y|`, ``mse`` = :math:`\frac1N\sum(p-y)^2`, ``corr`` = Pearson
    correlation (0.0 with a :class:`MetricWarning` when either side is constant).

    Raises:
        ValueError: empty input, different lengths, or non-finite predictions or labels.
    """
    p, y = _regression_pair(preds, labels)
    err = p.astype(np.float64) - y.astype(np.float64)
    return {
        "mae": float(np.mean(np.abs(err))),
        "mse": float(np.mean(err**2)),
        "corr": _pearson(p, y),
    }


def _class_indices(a: np.ndarray, name: str) -> np.ndarray:
    """int64 class indices from integer (or integral float) values."""
    if a.dtype.kind in "biu":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        _check_finite(a, name)
        if not np.array_equal(a, np.round(a)):
            raise ValueError(f"{name}: class indices must be whole numbers, found e.g. "
                             f"{a[a != np.round(a)][0]!r}")
        return a.astype(np.int64)
    raise ValueError(f"{name}: expected class indices, found dtype {a.dtype}")


def emotion_metrics(
    logits: ArrayLike, labels: ArrayLike, class_names: Sequence[str] | None = None
) -> Metrics:
    r"""Classification metrics (IEMOCAP's 6 emotions, or any custom classification task).

    With :math:`\hat c = \arg\max` of the logits and true classes :math:`c` over :math:`N` samples:

    * ``wacc`` = :math:`\frac1N\sum[\hat c = c]`, the overall accuracy -- **the paper's "WAcc"**.
    * ``waf1`` = sklearn ``f1_score(average="weighted", labels=range(C), zero_division=0)``:
      per-class F1 weighted by the class's support -- **the paper's "WAF1"**.
    * ``acc_<name>`` = accuracy of the one-vs-rest prediction :math:`[\hat c = k]` against
      :math:`[c = k]` (true negatives count as correct), and ``f1_<name>`` = the F1 of that binary
      problem, :math:`2TP / (2TP + FP + FN)`, 0.0 when the class is neither present nor predicted.

    Args:
        logits: ``[N, C]`` scores (argmax is taken), or ``[N]`` integer predicted classes.
        labels: ``[N]`` class indices in ``0..C-1`` (integers, or floats holding whole numbers as
            in MMSA pickles).
        class_names: C names used in the per-class keys; default ``class_0 .. class_{C-1}``.
            With ``[N]`` predictions and no names, C is inferred from the largest index seen.

    Returns:
        ``wacc``, ``waf1``, then ``acc_<name>`` and ``f1_<name>`` for each class in order.

    Raises:
        ValueError: empty input, different N, non-finite logits, C different from the number of
            class names, or labels outside ``0..C-1``.

    A class with no sample among the labels gets a :class:`MetricWarning` (its F1 is 0 unless
    it is also never predicted, and it carries no weight in ``waf1``).
    """
    raw = _to_numpy(logits, "logits")
    y_raw = _to_numpy(labels, "labels")
    y = _class_indices(_vector(y_raw, "labels"), "labels")
    if raw.ndim == 2:
        scores = _as_float(raw, "logits")
        if scores.shape[0] != y.shape[0]:
            raise ValueError(
                f"logits and labels must have the same N: logits shape {tuple(raw.shape)}, "
                f"labels shape {tuple(y_raw.shape)}"
            )
        if scores.shape[0] == 0:
            raise ValueError("cannot compute metrics of an empty split (0 logits and 0 labels)")
        _check_finite(scores, "logits")
        n_classes = scores.shape[1]
        pred = np.argmax(scores, axis=1).astype(np.int64)
    elif raw.ndim == 1:
        if raw.dtype.kind not in "biu":
            raise ValueError(
                f"logits: a 1-D input must hold integer predicted classes, found dtype {raw.dtype}; "
                "pass [N, C] scores to take the argmax"
            )
        pred = raw.astype(np.int64)
        if pred.shape != y.shape:
            raise ValueError(
                f"predictions and labels must have the same N: predictions shape "
                f"{tuple(raw.shape)}, labels shape {tuple(y_raw.shape)}"
            )
        if pred.size == 0:
            raise ValueError("cannot compute metrics of an empty split (0 predictions and 0 labels)")
        if class_names is not None:
            n_classes = len(class_names)
        else:
            n_classes = int(max(pred.max(), y.max())) + 1
        if pred.min() < 0 or pred.max() >= n_classes:
            raise ValueError(
                f"predictions: class indices must lie in 0..{n_classes - 1}, found "
                f"[{int(pred.min())}, {int(pred.max())}]"
            )
    else:
        raise ValueError(f"logits: expected shape [N, C] (or [N] classes), found {tuple(raw.shape)}")

    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(
            f"class_names has {len(names)} name(s) ({names}) but the logits have C={n_classes} "
            f"columns (shape {tuple(raw.shape)})"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be distinct, found {names}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(
            f"labels: class indices must lie in 0..{n_classes - 1}, found "
            f"[{int(y.min())}, {int(y.max())}]"
        )

    out: Metrics = {
        "wacc": _accuracy(pred, y),
        "waf1": _weighted_f1(y, pred, labels=list(range(n_classes))),
    }
    absent = []
    for k, name in enumerate(names):
        is_pred, is_true = pred == k, y == k
        tp = int(np.sum(is_pred & is_true))
        fp = int(np.sum(is_pred & ~is_true))
        fn = int(np.sum(~is_pred & is_true))
        if not is_true.any():
            absent.append(name)
        out[f"acc_{name}"] = _accuracy(is_pred, is_true)
        out[f"f1_{name}"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    if absent:
        _warn(
            f"class(es) {absent} have no sample among the {y.size} label(s): their F1 is 0.0 "
            "and they carry no weight in waf1"
        )
    return out


def classification_report(
    logits: ArrayLike, labels: ArrayLike, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    r"""Confusion matrix and per-class precision, recall and F1 (what sklearn's
    ``confusion_matrix`` and ``classification_report`` give, without sklearn).

    With predicted classes :math:`\hat c = \arg\max` of the logits, ``confusion[i][j]`` counts
    samples of true class i predicted as j; ``confusion_normalized`` divides each row by its
    class's support (rows of absent classes stay 0), so its diagonal is each class's recall.
    For class k: precision :math:`TP/(TP+FP)`, recall :math:`TP/(TP+FN)`, F1 their harmonic mean
    (:math:`2TP/(2TP+FP+FN)`, equal to ``f1_<name>`` of :func:`emotion_metrics`); a zero
    denominator gives 0.0.

    Returns:
        ``{"class_names": [...], "confusion": [[int]], "confusion_normalized": [[float]],
        "per_class": {name: {"precision", "recall", "f1", "support"}}}`` (JSON-ready).
    """
    raw = _to_numpy(logits, "logits")
    y = _class_indices(_vector(_to_numpy(labels, "labels"), "labels"), "labels")
    if raw.ndim == 2:
        n_classes = raw.shape[1]
        pred = np.argmax(_as_float(raw, "logits"), axis=1).astype(np.int64)
    else:
        pred = _class_indices(_vector(raw, "predictions"), "predictions")
        n_classes = len(class_names) if class_names is not None else int(max(pred.max(), y.max())) + 1
    if pred.shape != y.shape:
        raise ValueError(f"predictions and labels must have the same N, found {pred.shape} and {y.shape}")
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} classes")
    if y.size and (min(y.min(), pred.min()) < 0 or max(y.max(), pred.max()) >= n_classes):
        raise ValueError(f"class indices must lie in 0..{n_classes - 1}")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    return report_from_confusion(confusion, names)


def report_from_confusion(confusion: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """:func:`classification_report` of a ``[C, C]`` count matrix (rows true, columns predicted),
    e.g. the sum of several seeds' matrices."""
    confusion = np.asarray(confusion, dtype=np.int64)
    names = list(class_names)
    support = confusion.sum(axis=1)
    normalized = confusion / np.maximum(support, 1)[:, None]
    per_class: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        tp = int(confusion[k, k])
        fp = int(confusion[:, k].sum()) - tp
        fn = int(support[k]) - tp
        per_class[name] = {
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
            "support": int(support[k]),
        }
    return {"class_names": names, "confusion": confusion.tolist(), "confusion_normalized": normalized.tolist(),
            "per_class": per_class}


# ---------------------------------------------------------------------------------------------
# direction

LOWER_IS_BETTER: tuple[str, ...] = ("mae", "mse", "rmse")
"""Error metrics; every name containing ``loss`` is lower-is-better too."""


def higher_is_better(metric: str) -> bool | None:
    """The one definition of a metric's direction (model selection, learning-rate schedule,
    sweeps, the bold best value of a report): ``False`` for errors and losses (``mae``, ``mse``,
    ``*loss*``), ``True`` for accuracies, F1 and ``corr``, ``None`` for a key without a known
    direction."""
    if metric in LOWER_IS_BETTER or "loss" in metric:
        return False
    if metric in ("wacc", "waf1", "corr") or metric.startswith(("acc", "f1")):
        return True
    return None


def metric_mode(metric: str) -> Literal["min", "max"]:
    """``min`` when a smaller value is better (errors, losses), else ``max``."""
    return "min" if higher_is_better(metric) is False else "max"


# ---------------------------------------------------------------------------------------------
# dispatch

_FAMILIES: dict[str, MetricFn] = {}  # filled below, once the functions exist


def metrics_for(
    kind: str,
    task: str,
    label_range: tuple[float, float] | None = None,
    class_names: Sequence[str] | None = None,
) -> MetricFn:
    """The metric function for a dataset: ``fn(preds_or_logits, labels) -> dict[str, float]``.

    * ``task == "classification"`` (IEMOCAP or any custom classification): :func:`emotion_metrics`
      with ``class_names`` (default ``class_0 ..`` from the number of logit columns).
    * ``mosi``, ``mosei``, ``synthetic``: :func:`sentiment_metrics`.
    * ``sims``: :func:`sims_metrics`.
    * ``custom`` regression: :func:`sentiment_metrics` when ``label_range = (min, max)`` of the
      labels lies within [-3, 3], otherwise :func:`regression_metrics`. Without a range the generic
      :func:`regression_metrics` is used, since the sentiment buckets would be meaningless for
      arbitrary targets. Decide once per dataset (from the train labels) so that every split and
      every seed reports the same keys.

    Raises:
        ValueError: an unknown ``kind`` or ``task``, IEMOCAP with a regression task, or a malformed
            ``label_range``.
    """
    from decalign.data.detect import DATASET_KINDS

    kind = kind.lower()
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {list(DATASET_KINDS)}")
    spec = DATASET_KINDS[kind]
    if task == "classification":
        names = None if class_names is None else tuple(class_names)
        return functools.partial(emotion_metrics, class_names=names)
    if spec.task == "classification":
        raise ValueError(f"dataset kind {kind!r} is a classification task, got task='regression'")
    if spec.metrics != "auto":
        return _FAMILIES[spec.metrics]
    if label_range is None:
        return regression_metrics
    if len(label_range) != 2 or not label_range[0] <= label_range[1]:
        raise ValueError(f"label_range must be (min, max) with min <= max, got {label_range!r}")
    lo, hi = float(label_range[0]), float(label_range[1])
    return sentiment_metrics if lo >= -3.0 and hi <= 3.0 else regression_metrics


_FAMILIES.update(sentiment=sentiment_metrics, sims=sims_metrics, regression=regression_metrics)
"""Metric family of :data:`decalign.data.detect.METRIC_FAMILIES` -> regression metric function
(``emotion`` is :func:`emotion_metrics` with the class names)."""
