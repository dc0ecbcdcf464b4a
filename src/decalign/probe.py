"""``decalign probe``: ridge-regression probes on pooled features, the floor a model must clear.

A multimodal model is only worth its cost if it beats a linear model on the same features. The
probe pools every modality's sequence into one vector (the mean and the standard deviation over
the *valid* steps, so padding does not dilute short utterances), concatenates the modalities of
a feature set, and fits a ridge regression whose penalty is chosen by 5-fold cross-validation on
the training split (scikit-learn ``RidgeCV``). Its validation and test metrics are the dataset's
own metrics, so the numbers line up with ``decalign train``'s table::

    decalign probe --data mosi_dev.pkl --sets text audio text,audio --json probes.json

From Python: ``run_probes(dataset, [("text",), ("text", "audio")])``; the command line is
:mod:`decalign.cli.probe`. Regression tasks only (the benchmarks' sentiment scores);
classification data is an error. Needs scikit-learn (``pip install 'decalign[probe]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ALPHAS", "ProbeResult", "pooled_features", "probe_table", "ridge_probe", "run_probes"]

log = logging.getLogger("decalign")

DEFAULT_ALPHAS: tuple[float, ...] = tuple(10.0 ** (-2 + 0.25 * i) for i in range(25))
"""Ridge penalties tried by cross-validation: 1e-2 .. 1e4, four per decade."""


@dataclass
class ProbeResult:
    modalities: tuple[str, ...]
    alpha: float
    """The penalty cross-validation chose on the training split."""
    metrics: dict[str, dict[str, float]]
    """Split name (``train``, ``valid``, ``test``) -> the dataset's metrics of the probe."""
    predictions: dict[str, Any]
    """Split name -> ``[N]`` predictions."""

    def to_dict(self) -> dict[str, Any]:
        """The modalities, the penalty and every split's metrics (``decalign probe --json``)."""
        return {"modalities": list(self.modalities), "alpha": self.alpha, **self.metrics}


def pooled_features(split: Any, modalities: Sequence[str]) -> Any:
    r"""``[N, sum_m 2 D_m]``: per modality the mean and standard deviation over the valid steps.

    For a sequence :math:`x_{1..L}` with true length :math:`L`:
    :math:`\mu = \frac1L \sum_{t \le L} x_t`, :math:`\sigma = \sqrt{\frac1L \sum_{t \le L}
    (x_t - \mu)^2}`. Utterance-level features (:math:`L = 1`) give :math:`\sigma = 0`.
    """
    import numpy as np

    blocks = []
    for m in modalities:
        if m not in split.features:
            raise ValueError(f"probe: the data has no modality {m!r}; it has {list(split.features)}")
        x = split.features[m].astype(np.float64)
        steps = x.shape[1]
        length = np.clip(split.lengths[m], 1, steps).astype(np.float64)
        mask = (np.arange(steps)[None, :] < length[:, None])[..., None]
        mean = (x * mask).sum(1) / length[:, None]
        std = np.sqrt((((x - mean[:, None]) ** 2) * mask).sum(1) / length[:, None])
        blocks += [mean, std]
    return np.concatenate(blocks, axis=1)


def ridge_probe(dataset: Any, modalities: Sequence[str], alphas: Sequence[float] = DEFAULT_ALPHAS,
                folds: int = 5) -> ProbeResult:
    """Fit ridge on the train split's pooled ``modalities``; metrics on every split."""
    from decalign._optional import require
    from decalign.metrics import metrics_for

    RidgeCV = require("sklearn.linear_model", extra="probe", feature="decalign probe").RidgeCV

    if dataset.task != "regression":
        raise ValueError(f"probe: ridge probes need a regression task; this data is {dataset.task}")
    metric_fn = metrics_for(dataset.kind, dataset.task, dataset.label_range)
    train = dataset.splits["train"]
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(train):
        from decalign.errors import UsageError

        raise UsageError(f"--folds {folds!r}: the ridge penalty's cross-validation needs between 2 and {len(train)} "
                         f"folds (the train split has {len(train)} samples)")
    ridge = RidgeCV(alphas=list(alphas), cv=folds).fit(pooled_features(train, modalities), train.labels)
    metrics, predictions = {}, {}
    for name, split in dataset.splits.items():
        pred = ridge.predict(pooled_features(split, modalities)).astype("float32")
        predictions[name] = pred
        metrics[name] = {k: float(v) for k, v in metric_fn(pred, split.labels).items()}
    return ProbeResult(tuple(modalities), float(ridge.alpha_), metrics, predictions)


def run_probes(dataset: Any, sets: Sequence[Sequence[str]] | None = None, *, folds: int = 5,
               alphas: Sequence[float] = DEFAULT_ALPHAS) -> dict[str, ProbeResult]:
    """:func:`ridge_probe` of each feature set, keyed by its modalities joined with ``+``
    (``text+audio``). Default sets: each modality alone, then all of them together."""
    if sets:
        chosen = [tuple(s) for s in sets]
    else:
        mods = tuple(dataset.modalities)
        chosen = [(m,) for m in mods] + ([mods] if len(mods) > 1 else [])
    return {"+".join(s): ridge_probe(dataset, s, alphas=alphas, folds=folds) for s in chosen}


def probe_table(results: Mapping[str, ProbeResult], split: str) -> str:
    """The probes' metrics on ``split``, one row per feature set (the sentiment columns where the
    data has them)."""
    from decalign.metrics.display import format_table

    keys = ["mae", "corr", "acc2_non0", "f1_non0", "acc7"]
    first = next(iter(results.values())).metrics[split]
    keys = [k for k in keys if k in first] or list(first)
    return format_table({f"ridge {name}": r.metrics[split] for name, r in results.items()}, keys=keys)  # type: ignore[misc]
