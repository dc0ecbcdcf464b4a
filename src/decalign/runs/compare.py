r"""Paired comparison of two runs on the same samples: the difference of every metric with a
bootstrap confidence interval over test samples *and* seeds.

Why both: a run's score moves with the seed (initialisation, data order) and with the finite test
set. Resampling only the seeds ignores that another test set would give other numbers; resampling
only the samples ignores that another set of seeds would. Why paired: both runs predicted the same
samples, and most of a metric's sampling noise is which samples are hard; resampling the sample
indices once per replicate and applying them to both runs cancels that shared part, so the
interval is much narrower than comparing two independent intervals.

The estimator (:func:`paired_bootstrap`). Let :math:`y_i` (:math:`i = 1..N`) be the shared
samples, :math:`\hat y^R_{s}` the predictions of seed :math:`s \in S_R` of run :math:`R \in \{A, B\}`,
and :math:`m(\hat y, y)` a metric over a set of samples. The point estimate is the difference of
the seed means

.. math::

    \Delta = \frac{1}{|S_B|} \sum_{s \in S_B} m(\hat y^B_{s}, y)
           - \frac{1}{|S_A|} \sum_{s \in S_A} m(\hat y^A_{s}, y).

Replicate :math:`r = 1..R` draws :math:`I_r`, :math:`N` sample indices with replacement (one draw,
used by both runs), and :math:`S^A_r`, :math:`|S_A|` seeds of :math:`S_A` with replacement, and
:math:`S^B_r` likewise, and computes

.. math::

    \Delta_r = \operatorname{mean}_{s \in S^B_r} m(\hat y^B_{s}[I_r], y[I_r])
             - \operatorname{mean}_{s \in S^A_r} m(\hat y^A_{s}[I_r], y[I_r]).

The interval at level :math:`1 - \alpha` is the percentile interval
:math:`[q_{\alpha/2}(\Delta_r), q_{1 - \alpha/2}(\Delta_r)]`. When both runs have the same seed
list, the seeds are paired too (:math:`S^B_r` is the same draw of positions as :math:`S^A_r`):
seeds are independent units, so a paired draw is as valid as two independent ones, and it makes a
run compared with itself give exactly :math:`\Delta = 0` with the interval :math:`[0, 0]`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from decalign.errors import DataError
from decalign.runs.reader import RunRecord

__all__ = ["MetricDifference", "aligned_outputs", "paired_bootstrap"]

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]


@dataclass(frozen=True)
class MetricDifference:
    """``other - baseline`` for one metric, with its bootstrap interval."""

    metric: str
    baseline: str
    other: str
    baseline_mean: float
    other_mean: float
    difference: float
    low: float
    high: float
    level: float
    higher_is_better: bool | None
    """Direction of the metric (:func:`decalign.metrics.higher_is_better`); ``None``: unknown."""
    n_samples: int
    n_boot: int
    paired_seeds: bool

    @property
    def verdict(self) -> str:
        """``better`` / ``worse`` when the interval excludes 0 (in the metric's direction),
        ``no clear difference`` otherwise."""
        if self.higher_is_better is None:
            return "-"
        if not np.isfinite([self.low, self.high]).all() or self.low <= 0.0 <= self.high:
            return "no clear difference"
        up = self.low > 0.0
        return "better" if up == self.higher_is_better else "worse"


def aligned_outputs(run: RunRecord, order: Sequence[str] | None = None) -> tuple[list[np.ndarray], np.ndarray,
                                                                                     tuple[str, ...]]:
    """Every seed's outputs of ``run`` in the sample order ``order`` (default: the first seed's),
    with the labels and the order.

    Raises:
        DataError: a seed without predictions on the run's split, or whose sample ids differ.
    """
    missing = [s.seed for s in run.seeds if s.predictions is None]
    if missing:
        raise DataError(f"run {run.name!r} ({str(run.path)!r}): seed(s) {missing} have no predictions on the "
                        f"{run.split} split (seed_<s>/{run.split}_predictions.csv; training writes the test split's)")
    first = run.seeds[0].predictions
    assert first is not None
    ids = tuple(order) if order is not None else first.ids
    outputs, labels = [], None
    for record in run.seeds:
        pred = record.predictions
        assert pred is not None
        position = {k: i for i, k in enumerate(pred.ids)}
        if len(pred.ids) != len(ids) or any(k not in position for k in ids):
            unknown = sum(1 for k in ids if k not in position)
            raise DataError(
                f"run {run.name!r} seed {record.seed}: its {run.split} predictions cover {len(pred.ids)} samples, "
                f"{unknown} of the {len(ids)} compared ids are not among them: compare runs on the same samples"
            )
        index = np.fromiter((position[k] for k in ids), dtype=np.int64, count=len(ids))
        outputs.append(pred.outputs[index])
        y = pred.labels[index]
        if labels is None:
            labels = y
        elif not np.array_equal(labels, y):
            bad = int(np.sum(labels != y))
            raise DataError(f"run {run.name!r} seed {record.seed}: {bad} labels differ from the run's first seed on "
                            "the same sample ids")
    assert labels is not None
    return outputs, labels, ids


def _seed_metrics(metric_fn: MetricFn, outputs: Sequence[np.ndarray], labels: np.ndarray,
                  index: np.ndarray | None) -> list[dict[str, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resample (constant labels) has undefined metrics
        if index is None:
            return [metric_fn(o, labels) for o in outputs]
        return [metric_fn(o[index], labels[index]) for o in outputs]


def paired_bootstrap(
    baseline: RunRecord,
    other: RunRecord,
    metric_fn: MetricFn | None = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[MetricDifference]:
    """``other - baseline`` for every metric of ``metric_fn`` (default: the dataset's), with the
    paired bootstrap interval of the module docstring; ``seed`` fixes the draws.

    Raises:
        DataError: the runs' sample ids differ (the message names the run and the counts), or
            their labels differ on the same ids.
        ValueError: ``n_boot`` < 1 or ``level`` outside (0, 1).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    metric_fn = metric_fn or baseline.metric_fn()
    out_a, labels, ids = aligned_outputs(baseline)
    first_b = other.seeds[0].predictions
    if first_b is not None and set(first_b.ids) != set(ids):
        extra = len(set(first_b.ids) - set(ids))
        lacking = len(set(ids) - set(first_b.ids))
        raise DataError(
            f"run {other.name!r} has {len(first_b.ids)} {other.split} samples, {baseline.name!r} has {len(ids)} "
            f"({lacking} of {baseline.name!r}'s ids missing, {extra} others): paired comparison needs the same samples"
        )
    out_b, labels_b, _ = aligned_outputs(other, ids)
    if not np.array_equal(labels, labels_b):
        raise DataError(f"runs {baseline.name!r} and {other.name!r}: {int(np.sum(labels != labels_b))} labels differ "
                        "on the same sample ids (not the same data)")
    point_a = _seed_metrics(metric_fn, out_a, labels, None)
    point_b = _seed_metrics(metric_fn, out_b, labels, None)
    keys = [k for k in point_a[0] if k in point_b[0]]
    paired = baseline.seed_values == other.seed_values
    rng = np.random.default_rng(seed)
    n, sa, sb = len(labels), len(out_a), len(out_b)
    draws = np.empty((n_boot, len(keys)), dtype=np.float64)
    for r in range(n_boot):
        index = rng.integers(0, n, size=n)
        pick_a = rng.integers(0, sa, size=sa)
        pick_b = pick_a if paired else rng.integers(0, sb, size=sb)
        # Each seed's metric once per replicate, then weighted by how often the draw picked it.
        ma = _seed_metrics(metric_fn, out_a, labels, index)
        mb = _seed_metrics(metric_fn, out_b, labels, index)
        weight_a = np.bincount(pick_a, minlength=sa) / sa
        weight_b = np.bincount(pick_b, minlength=sb) / sb
        for j, k in enumerate(keys):
            draws[r, j] = float(np.dot(weight_b, [m[k] for m in mb]) - np.dot(weight_a, [m[k] for m in ma]))
    alpha = 1.0 - level
    from decalign.metrics import higher_is_better

    result = []
    for j, k in enumerate(keys):
        mean_a = float(np.mean([m[k] for m in point_a]))
        mean_b = float(np.mean([m[k] for m in point_b]))
        column = draws[:, j]
        finite = column[np.isfinite(column)]
        low, high = (np.quantile(finite, [alpha / 2, 1 - alpha / 2]) if len(finite) else (np.nan, np.nan))
        result.append(MetricDifference(
            metric=k, baseline=baseline.name, other=other.name, baseline_mean=mean_a, other_mean=mean_b,
            difference=mean_b - mean_a, low=float(low), high=float(high), level=level,
            higher_is_better=higher_is_better(k), n_samples=n, n_boot=n_boot, paired_seeds=paired,
        ))
    return result
