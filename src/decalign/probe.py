"""``decalign probe``: ridge-regression probes on pooled features, the floor a model must clear.

A multimodal model is only worth its cost if it beats a linear model on the same features. The
probe pools every modality's sequence into one vector (the mean and the standard deviation over
the *valid* steps, so padding does not dilute short utterances), concatenates the modalities of
a feature set, and fits a ridge regression whose penalty is chosen by 5-fold cross-validation on
the training split (scikit-learn ``RidgeCV``). Its validation and test metrics are the dataset's
own metrics, so the numbers line up with ``decalign train``'s table::

    decalign probe --data mosi_dev.pkl --sets text audio text,audio --json probes.json

Regression tasks only (the benchmarks' sentiment scores); classification data is an error.
Needs scikit-learn (``pip install 'decalign[probe]'``).
This module imports only the standard library at module level (``decalign --help`` stays fast).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ALPHAS", "ProbeResult", "add_parser", "pooled_features", "ridge_probe", "run"]

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


def _parse_sets(specs: Sequence[str], available: Sequence[str]) -> list[tuple[str, ...]]:
    sets = []
    for spec in specs:
        names = tuple(n.strip() for n in spec.split(",") if n.strip())
        unknown = [n for n in names if n not in available]
        if not names or unknown:
            raise ValueError(f"--sets {spec!r}: unknown modality {unknown or spec!r}; the data has {list(available)}")
        sets.append(names)
    return sets


def add_parser(sub: Any) -> None:
    p = sub.add_parser("probe", help="ridge-regression probes on pooled features (the linear floor)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from decalign.cli_common import add_file_kind_flag, add_verbosity_flags

    p.add_argument("--data", metavar="PATH", help="a data file (regression task; default: the built-in dataset, "
                   "as `decalign train` uses)")
    add_file_kind_flag(p)
    p.add_argument("--sets", nargs="+", metavar="M[,M...]",
                   help="feature sets, each a comma list of modalities (default: each modality, then all)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for the ridge penalty")
    p.add_argument("--json", metavar="FILE", help="also write every set's metrics and penalty to FILE")
    p.add_argument("--overwrite", action="store_true", help="replace --json FILE if it exists")
    add_verbosity_flags(p)


def _table(results: Mapping[str, ProbeResult], split: str) -> str:
    from decalign.metrics.display import format_table

    keys = ["mae", "corr", "acc2_non0", "f1_non0", "acc7"]
    first = next(iter(results.values())).metrics[split]
    keys = [k for k in keys if k in first] or list(first)
    return format_table({f"ridge {name}": r.metrics[split] for name, r in results.items()}, keys=keys)  # type: ignore[misc]


def run(args: argparse.Namespace) -> int:
    from decalign.config import DataConfig
    from decalign.data import load_dataset

    if args.folds < 2:  # before the data is read; the upper bound (the train split's size) after
        from decalign.errors import UsageError

        raise UsageError(f"--folds {args.folds}: the ridge penalty's cross-validation needs at least 2 folds")
    if args.json:
        from decalign.safety.outputs import check_not_input, check_replaceable

        check_not_input(args.json, {"--data": args.data}, "--json")
        check_replaceable(args.json, args.overwrite, "--json")
    kind = "synthetic" if args.data is None else args.dataset  # like train: no --data, the built-in dataset
    dataset = load_dataset(args.data, DataConfig(dataset=kind, path=args.data))
    mods = list(dataset.modalities)
    specs = args.sets or ([*mods, ",".join(mods)] if len(mods) > 1 else mods)
    results = {"+".join(s): ridge_probe(dataset, s, folds=args.folds) for s in _parse_sets(specs, mods)}
    for split in ("valid", "test"):
        if split in dataset.splits:
            print(f"{split}:\n{_table(results, split)}\n")
    if args.json:
        from decalign.safety.outputs import guarded_output
        from decalign.train.atomic import write_json

        with guarded_output(args.json, flag="--json", inputs={"--data": args.data}, overwrite=args.overwrite):
            write_json(args.json, {name: {"modalities": list(r.modalities), "alpha": r.alpha, **r.metrics}
                                   for name, r in results.items()})
        print(f"probes: {args.json}")
    return 0
