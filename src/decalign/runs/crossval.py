"""A finished cross-validation summarised: per-fold metrics and the pooled out-of-fold metrics.

Two numbers answer two questions. The **pooled out-of-fold** metric joins every fold's test
predictions (each clip predicted once, by the model that neither trained nor selected on its
video) and scores them together, per seed, then averages over seeds: the estimate of how the
procedure does on unseen videos, on all the clips at once, which is what ``decalign report``
compares (paired, clip by clip). The **per-fold** metrics (each fold's test clips alone, mean
over seeds) show how much the estimate moves with the videos tested; their mean and standard
deviation over folds is the spread a single held-out split would have shown.

:func:`read_cross_validation` reads the directory (:func:`decalign.runs.read_run` reads a cross-validation as
one run), :func:`write_cv_summary` writes ``cv.json`` and ``cv.csv`` beside the folds.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from decalign.errors import RunDirError
from decalign.metrics.display import aggregate
from decalign.runs.reader import ReadLimits, RunRecord, read_run

if TYPE_CHECKING:
    from decalign.metrics.display import TableStyle

__all__ = ["CrossValidation", "FoldSummary", "read_cross_validation", "write_cv_summary"]


@dataclass(frozen=True)
class FoldSummary:
    """One fold: its split sizes and its test metrics (mean and sample std over seeds)."""

    fold: int
    sizes: dict[str, int]
    """Clips per split of the fold's run (``train``, ``valid``, ``test``)."""
    mean: dict[str, float]
    std: dict[str, float]


@dataclass(frozen=True)
class CrossValidation:
    """A finished cross-validation (module docstring)."""

    path: Path
    n_clips: int
    folds_sha256: str
    metrics: tuple[str, ...]
    folds: tuple[FoldSummary, ...]
    fold_mean: dict[str, float]
    """Mean over folds of each fold's mean over seeds."""
    fold_std: dict[str, float]
    """Sample standard deviation over folds of the same (ddof=1)."""
    seeds: dict[int, dict[str, float]]
    """Per seed, the pooled out-of-fold metrics."""
    mean: dict[str, float]
    std: dict[str, float]
    """Sample standard deviation over seeds (ddof=1; 0 for one seed)."""
    std_population: dict[str, float]
    """Population standard deviation over seeds (ddof=0)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": len(self.folds),
            "by": "video",
            "n_clips": self.n_clips,
            "folds_sha256": self.folds_sha256,
            "metrics": list(self.metrics),
            "pooled": {"seeds": {str(s): m for s, m in self.seeds.items()}, "mean": self.mean, "std": self.std,
                       "std_population": self.std_population,
                       "what": "every clip's out-of-fold prediction scored together, per seed; mean and sample "
                               "std over seeds"},
            "per_fold": [{"fold": f.fold, "sizes": f.sizes, "mean": f.mean, "std": f.std} for f in self.folds],
            "fold_mean": self.fold_mean,
            "fold_std": self.fold_std,
            "std_kind": "sample standard deviation (ddof=1); 0 for a single seed or fold",
        }

    def rows(self) -> list[list[Any]]:
        """``cv.csv``: a row per fold (over seeds), the folds' mean (std over folds), the pooled row."""
        columns = [f"{k}_{s}" for k in self.metrics for s in ("mean", "std")]
        out: list[list[Any]] = [["row", "test_clips", "n", *columns]]
        n_seeds = len(self.seeds)
        for f in self.folds:
            out.append([f"fold_{f.fold}", f.sizes.get("test", ""), n_seeds,
                        *(v for k in self.metrics for v in (f.mean[k], f.std[k]))])
        out.append(["mean_over_folds", self.n_clips, len(self.folds),
                    *(v for k in self.metrics for v in (self.fold_mean[k], self.fold_std[k]))])
        out.append(["pooled_out_of_fold", self.n_clips, n_seeds,
                    *(v for k in self.metrics for v in (self.mean[k], self.std[k]))])
        return out

    def table(self, style: TableStyle = "text") -> str:
        """The folds, their mean ± std over folds, and the pooled out-of-fold row (mean ± std
        over seeds), in the units of every decalign table (accuracies x 100)."""
        from decalign.metrics.display import format_table

        rows: dict[str, Any] = {}
        for f in self.folds:
            rows[f"fold {f.fold} ({f.sizes.get('test', '?')} test clips)"] = {"mean": f.mean, "std": f.std}
        rows[f"mean ± std over the {len(self.folds)} folds"] = {"mean": self.fold_mean, "std": self.fold_std}
        rows[f"out-of-fold, all {self.n_clips} clips"] = {"mean": self.mean, "std": self.std}
        return format_table(rows, keys=list(self.metrics), style=style,
                            row_header=f"{len(self.seeds)} seed(s), by video")


def _per_seed(run: RunRecord) -> list[dict[str, float]]:
    metric_fn = run.metric_fn()
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate seed (constant outputs) has undefined metrics
        for s in run.seeds:
            assert s.predictions is not None  # the reader refuses a fold seed without test predictions
            out.append({k: float(v) for k, v in metric_fn(s.predictions.outputs, s.predictions.labels).items()})
    return out


def read_cross_validation(path: str | os.PathLike[str], limits: ReadLimits | None = None) -> CrossValidation:
    """Read the finished cross-validation in ``path`` (see the module docstring).

    Raises:
        RunDirError: not a cross-validation directory, or an unfinished one (the file is named).
    """
    record = read_run(path, "test", limits=limits)
    if not record.folds:
        raise RunDirError(f"{os.fspath(path)!r} is a run, not a cross-validation (no folds.csv)")
    assert record.folds_sha256 is not None
    pooled = [{k: float(v) for k, v in s.metrics["test"].items()} for s in record.seeds]
    metrics = tuple(pooled[0])
    folds = []
    for number, fold in enumerate(record.folds, 1):
        per_seed = _per_seed(fold)
        splits = fold.dataset.get("splits")
        sizes = {str(k): int(v["n"]) for k, v in splits.items()
                 if isinstance(v, Mapping) and isinstance(v.get("n"), int)} if isinstance(splits, Mapping) else {}
        over_seeds = aggregate(per_seed)
        folds.append(FoldSummary(number, sizes, over_seeds["mean"], over_seeds["std"]))
    first = record.seeds[0].predictions
    assert first is not None
    over_folds = aggregate([f.mean for f in folds])
    over_seeds = aggregate(pooled)
    return CrossValidation(
        path=Path(path),
        n_clips=len(first),
        folds_sha256=record.folds_sha256,
        metrics=metrics,
        folds=tuple(folds),
        fold_mean=over_folds["mean"],
        fold_std=over_folds["std"],
        seeds={s.seed: m for s, m in zip(record.seeds, pooled)},
        mean=over_seeds["mean"],
        std=over_seeds["std"],
        std_population=aggregate(pooled, std="population")["std"],
    )


def write_cv_summary(cv: CrossValidation) -> list[Path]:
    """Write ``cv.json`` and ``cv.csv`` into the cross-validation's directory (atomically; the
    caller holds its lock)."""
    from decalign.safety.cells import csv_writer
    from decalign.train.atomic import write_json, write_text
    from decalign.train.rundir import CVDir

    layout = CVDir(cv.path)
    buf = io.StringIO()
    csv_writer(buf, lineterminator="\n").writerows(cv.rows())
    return [write_json(layout.summary_file, cv.to_dict()), write_text(layout.table_file, buf.getvalue())]
