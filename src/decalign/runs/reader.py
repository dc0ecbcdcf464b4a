"""Reading finished run directories (``decalign train``'s layout, :mod:`decalign.train.rundir`)
into typed records, for reports and comparisons.

A cross-validation directory (``decalign train --cv K``, :class:`~decalign.train.rundir.CVDir`)
reads as one run whose predictions are the **out-of-fold** predictions: each seed's fold runs
joined, so every pooled clip appears once, predicted by the model that neither trained nor
selected on it. Two cross-validations of the same data hold the same clips, so ``decalign
report`` pairs them clip by clip like two runs on one test split.

Every file is size-checked before it is read (:class:`ReadLimits`) and only the files of the run's
layout are opened, under the directory the user named: a run directory is data a colleague may
have sent, so a malformed one ends in one :class:`~decalign.errors.RunDirError` that names the file.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from decalign.errors import RunDirError
from decalign.train.rundir import CVDir, RunDir
from decalign.train.runguard import RUN_JSON_MAX_BYTES, check_run_file, read_json_file

__all__ = ["Predictions", "ReadLimits", "RunRecord", "SeedRecord", "only_seeds", "pool_runs", "read_run"]


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what a run directory may make the reader load (checked before reading)."""

    max_json_bytes: int = RUN_JSON_MAX_BYTES
    """``config.json``, ``dataset.json``, ``results.json``."""
    max_csv_bytes: int = 512 * 1024 * 1024
    """A prediction file or ``history.csv``."""
    max_rows: int = 5_000_000
    """Rows of a prediction file or ``history.csv``."""
    max_seeds: int = 1000
    """Seeds of one run."""
    max_classes: int = 10_000
    """Probability columns of a classification prediction file."""


@dataclass(frozen=True)
class Predictions:
    """One seed's predictions on one split, in the file's row order."""

    ids: tuple[str, ...]
    labels: np.ndarray
    """``[N]`` float targets (regression) or int64 class indices (classification)."""
    outputs: np.ndarray
    """``[N]`` regression outputs, or ``[N, C]`` log-probabilities (arg-max = the predicted class)."""

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class SeedRecord:
    """One finished seed: what ``results.json`` says about it and its predictions on the split read."""

    seed: int
    best_epoch: int
    epochs_run: int
    metrics: Mapping[str, Mapping[str, float]]
    """split -> metrics as written by training (``valid`` at the best epoch, ``test``)."""
    modalities_left_out: tuple[str, ...] | None
    """With ``train.modality_check``: the modalities the check left out (possibly none)."""
    predictions: Predictions | None
    """Predictions on the split read (``None`` when the seed has no file for it)."""
    check_decisions: tuple[Mapping[str, Any], ...] = ()
    """With ``train.modality_check``: its decisions (leave out, take back, restart) with evidence."""


@dataclass(frozen=True)
class RunRecord:
    """A finished run read from its directory."""

    path: Path
    name: str
    split: str
    """The split whose predictions were read."""
    kind: str
    task: str
    label_range: tuple[float, float] | None
    class_names: tuple[str, ...] | None
    preset: str
    selection_metric: str
    config: Mapping[str, Any]
    """``config.json`` as plain data."""
    dataset: Mapping[str, Any]
    """``dataset.json`` as plain data."""
    seeds: tuple[SeedRecord, ...]
    history: tuple[Mapping[str, Any], ...] = ()
    """Rows of the run's ``history.csv`` (empty unless read with ``history=True``; a
    cross-validation has none of its own: see its folds)."""
    folds: tuple[RunRecord, ...] = ()
    """A cross-validation's fold runs, fold 1 first (empty for a plain run)."""
    folds_sha256: str | None = None
    """A cross-validation's ``folds.csv`` digest: two with the same digest used the same folds."""
    pooled_from: tuple[Path, ...] = ()
    """The directories whose seeds :func:`pool_runs` joined into this record (empty: ``path`` alone)."""

    @property
    def seed_values(self) -> tuple[int, ...]:
        return tuple(s.seed for s in self.seeds)

    def metric_fn(self) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
        """The dataset's metric function (:func:`decalign.metrics.metrics_for`)."""
        from decalign.metrics import metrics_for

        return metrics_for(self.kind, self.task, self.label_range, self.class_names)


def _read_json(path: Path, what: str, limits: ReadLimits) -> dict[str, Any]:
    data = read_json_file(path, what, limits.max_json_bytes)
    if not isinstance(data, dict):
        raise RunDirError(f"{str(path)!r}: the run's {what} must hold a JSON object, found {type(data).__name__}")
    return data


def _csv_rows(path: Path, what: str, limits: ReadLimits) -> tuple[list[str], list[list[str]]]:
    check_run_file(path, what, limits.max_csv_bytes)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise RunDirError(f"{str(path)!r}: the run's {what} is empty")
            rows = []
            for row in reader:
                if len(rows) >= limits.max_rows:
                    raise RunDirError(f"{str(path)!r}: the run's {what} has more than {limits.max_rows} rows, "
                                      "over the limit")
                if len(row) != len(header):
                    raise RunDirError(f"{str(path)!r}, row {len(rows) + 2}: {len(row)} cells, the header has "
                                      f"{len(header)}")
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as err:
        raise RunDirError(f"{str(path)!r}: the run's {what} is not a CSV file ({err})") from None
    return header, rows


def _number(text: str, path: Path, row: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RunDirError(f"{str(path)!r}, row {row}, column {column!r}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise RunDirError(f"{str(path)!r}, row {row}, column {column!r}: {text!r} is not finite")
    return value


def _read_predictions(path: Path, class_names: Sequence[str] | None, limits: ReadLimits) -> Predictions:
    """A prediction file of :func:`decalign.train.history.write_predictions` (with labels)."""
    header, rows = _csv_rows(path, "prediction file", limits)
    if header[:2] != ["id", "label"]:
        raise RunDirError(f"{str(path)!r}: expected the columns 'id,label,...' of a labelled prediction file, "
                          f"found {header[:3]}")
    ids = tuple(r[0] for r in rows)
    if len(set(ids)) != len(ids):
        raise RunDirError(f"{str(path)!r}: sample ids repeat ({len(ids) - len(set(ids))} duplicates)")
    if header[2:] == ["prediction"]:
        labels = np.array([_number(r[1], path, i + 2, "label") for i, r in enumerate(rows)], dtype=np.float64)
        outputs = np.array([_number(r[2], path, i + 2, "prediction") for i, r in enumerate(rows)], dtype=np.float64)
        return Predictions(ids, labels, outputs)
    if len(header) < 5 or header[2] != "predicted" or not all(h.startswith("p_") for h in header[3:]):
        raise RunDirError(f"{str(path)!r}: columns {header[:5]} are neither 'id,label,prediction' nor "
                          "'id,label,predicted,p_<class>...'")
    names = [h[2:] for h in header[3:]]
    if len(names) > limits.max_classes:
        raise RunDirError(f"{str(path)!r}: {len(names)} classes, over the limit of {limits.max_classes}")
    if class_names is not None and list(class_names) != names:
        raise RunDirError(f"{str(path)!r}: the probability columns name classes {names}, the run's dataset.json "
                          f"{list(class_names)}")
    index = {n: i for i, n in enumerate(names)}

    def label(text: str, row: int) -> int:
        if text in index:
            return index[text]
        value = _number(text, path, row, "label")
        if value != int(value) or not 0 <= value < len(names):
            raise RunDirError(f"{str(path)!r}, row {row}: label {text[:40]!r} is not one of the classes {names}")
        return int(value)

    labels = np.array([label(r[1], i + 2) for i, r in enumerate(rows)], dtype=np.int64)
    probs = np.array([[_number(c, path, i + 2, header[3 + j]) for j, c in enumerate(r[3:])]
                      for i, r in enumerate(rows)], dtype=np.float64).reshape(len(rows), len(names))
    # The file keeps probabilities rounded to 6 decimals; their logarithm orders the classes as the
    # logits did (ties at the rounding aside), which is all the classification metrics read.
    return Predictions(ids, labels, np.log(np.clip(probs, 1e-12, None)))


def _prediction_file(run: RunDir, seed: int, split: str) -> Path:
    """``seed_<s>/test_predictions.csv`` (what training writes), ``<split>_predictions.csv`` for others."""
    files = run.seed(seed)
    return files.predictions if split == "test" else files.directory / f"{split}_predictions.csv"


def _plain_seed(value: Any, results: Path) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RunDirError(f"{str(results)!r}: seed {str(value)[:40]!r} is not an integer") from None


def read_run(path: str | os.PathLike[str], split: str = "test", *, name: str | None = None,
             history: bool = False, limits: ReadLimits | None = None) -> RunRecord:
    """Read the finished run in ``path``: its settings, every finished seed of ``results.json``
    and each seed's predictions on ``split`` (``seed_<s>/<split>_predictions.csv``; training
    writes the test split's). ``history`` also reads ``history.csv`` (for curves).

    Raises:
        RunDirError: not a directory, a missing or malformed file (named), no finished seed.
    """
    limits = limits or ReadLimits()
    root = Path(path)
    if not root.is_dir():
        raise RunDirError(f"{str(root)!r} is not a run directory (no such directory)")
    if CVDir(root).holds_cv():
        return _read_cross_validation(CVDir(root), split, name, limits)
    layout = RunDir(root)
    config = _read_json(layout.config_file, "configuration (config.json)", limits)
    dataset = _read_json(layout.dataset_file, "data description (dataset.json)", limits)
    results_file = layout.results_file
    results = _read_json(results_file, "results (results.json)", limits)
    seeds_data = results.get("seeds")
    if not isinstance(seeds_data, dict) or not seeds_data:
        raise RunDirError(f"{str(results_file)!r}: no finished seed in it (key 'seeds')")
    if len(seeds_data) > limits.max_seeds:
        raise RunDirError(f"{str(results_file)!r}: {len(seeds_data)} seeds, over the limit of {limits.max_seeds}")
    kind, task = dataset.get("kind"), dataset.get("task")
    if not isinstance(kind, str) or task not in ("regression", "classification"):
        raise RunDirError(f"{str(layout.dataset_file)!r}: needs 'kind' and 'task' (regression or classification)")
    raw_range = dataset.get("label_range")
    label_range = None
    if isinstance(raw_range, list) and len(raw_range) == 2:
        try:
            label_range = (float(raw_range[0]), float(raw_range[1]))
        except (TypeError, ValueError):
            raise RunDirError(f"{str(layout.dataset_file)!r}: 'label_range' must be two numbers") from None
    raw_names = dataset.get("class_names")
    class_names = tuple(str(n) for n in raw_names) if isinstance(raw_names, list) else None
    records = []
    for key in sorted(seeds_data, key=lambda k: _plain_seed(k, results_file)):
        seed = _plain_seed(key, results_file)
        entry = seeds_data[key]
        if not isinstance(entry, dict):
            raise RunDirError(f"{str(results_file)!r}: seed {seed} is not an object")
        file = _prediction_file(layout, seed, split)
        predictions = _read_predictions(file, class_names, limits) if file.is_file() else None
        left = entry.get("modalities_left_out")
        try:
            records.append(SeedRecord(
                seed=seed,
                best_epoch=int(entry.get("best_epoch", 0)),
                epochs_run=int(entry.get("epochs_run", 0)),
                metrics={s: {str(k): float(v) for k, v in entry[s].items() if isinstance(v, (int, float))}
                         for s in ("valid", "test") if isinstance(entry.get(s), dict)},
                modalities_left_out=tuple(str(m) for m in left) if isinstance(left, list) else None,
                predictions=predictions,
                check_decisions=tuple(d for d in entry.get("modality_check", []) if isinstance(d, dict))
                if isinstance(entry.get("modality_check"), list) else (),
            ))
        except (TypeError, ValueError) as err:
            raise RunDirError(f"{str(results_file)!r}, seed {seed}: a malformed entry ({err})") from None
    train = config.get("train")
    train = train if isinstance(train, dict) else {}
    rows: tuple[Mapping[str, Any], ...] = ()
    if history:
        rows = tuple(_read_history(layout.history_file, limits))
    return RunRecord(
        path=root,
        name=name or root.resolve().name,
        split=split,
        kind=kind,
        task=task,
        label_range=label_range,
        class_names=class_names,
        preset=str(config.get("preset", results.get("preset", "?"))),
        selection_metric=str(results.get("selection_metric", train.get("selection_metric", "loss"))),
        config=config,
        dataset=dataset,
        seeds=tuple(records),
        history=rows,
    )


def _read_plan(cv: CVDir, limits: ReadLimits) -> tuple[list[str], int, str]:
    """The pooled clip ids of ``folds.csv`` (as its cells are written), the number of folds and
    the file's SHA-256."""
    import hashlib

    header, rows = _csv_rows(cv.folds_file, f"fold plan ({cv.FOLDS_FILE})", limits)
    if header != ["id", "video", "fold"]:
        raise RunDirError(f"{str(cv.folds_file)!r}: expected the columns 'id,video,fold', found {header[:4]}")
    folds = {int(_number(r[2], cv.folds_file, i + 2, "fold")) for i, r in enumerate(rows)}
    k = max(folds, default=0)
    if folds != set(range(1, k + 1)) or k < 1:
        raise RunDirError(f"{str(cv.folds_file)!r}: folds {sorted(folds)[:10]} are not 1..K")
    digest = hashlib.sha256(cv.folds_file.read_bytes()).hexdigest()
    return [r[0] for r in rows], k, digest


def _joined(parts: Sequence[Predictions]) -> Predictions:
    return Predictions(tuple(i for p in parts for i in p.ids), np.concatenate([p.labels for p in parts]),
                       np.concatenate([p.outputs for p in parts]))


def _read_cross_validation(cv: CVDir, split: str, name: str | None, limits: ReadLimits) -> RunRecord:
    """A cross-validation as one run (module docstring): per seed, the folds' predictions on
    ``split`` joined, and its test metrics recomputed from the joined test predictions; its
    ``valid`` metrics are the mean over folds of each fold's selected-epoch validation metrics."""
    ids, k, digest = _read_plan(cv, limits)
    config = _read_json(cv.run.config_file, "configuration (config.json)", limits)
    dataset = _read_json(cv.run.dataset_file, "data description (dataset.json)", limits)
    folds = [read_run(cv.fold(f).path, "test", name=f"fold_{f}", limits=limits) for f in range(1, k + 1)]
    on_split = folds if split == "test" else [read_run(r.path, split, name=r.name, limits=limits) for r in folds]
    seeds = folds[0].seed_values
    for fold in folds[1:]:
        if fold.seed_values != seeds:
            raise RunDirError(f"{str(fold.path)!r}: seeds {list(fold.seed_values)}, fold_1 has {list(seeds)}: an "
                              "unfinished cross-validation? (rerun it with --resume)")
    metric_fn = folds[0].metric_fn()
    expected = sorted(ids)
    records = []
    for i, seed in enumerate(seeds):
        test_parts = [f.seeds[i].predictions for f in folds]
        if any(p is None for p in test_parts):
            missing = [f.name for f in folds if f.seeds[i].predictions is None]
            raise RunDirError(f"{str(cv.path)!r}: seed {seed} has no test predictions in {missing}")
        pooled = _joined([p for p in test_parts if p is not None])
        if sorted(pooled.ids) != expected:
            raise RunDirError(f"{str(cv.path)!r}, seed {seed}: the folds' test predictions do not cover the clips "
                              f"of {cv.FOLDS_FILE} once each ({len(pooled.ids)} rows for {len(ids)} clips)")
        parts = [f.seeds[i].predictions for f in on_split]
        predictions = pooled if split == "test" else (
            None if any(p is None for p in parts) else _joined([p for p in parts if p is not None]))
        valid = [f.seeds[i].metrics.get("valid", {}) for f in folds]
        shared = set.intersection(*(set(v) for v in valid)) if all(valid) else set()
        left = [f.seeds[i].modalities_left_out for f in folds]
        records.append(SeedRecord(
            seed=seed,
            best_epoch=0,  # one per fold: see the folds
            epochs_run=sum(f.seeds[i].epochs_run for f in folds),
            metrics={"test": {str(key): float(v) for key, v in metric_fn(pooled.outputs, pooled.labels).items()},
                     "valid": {key: float(np.mean([v[key] for v in valid])) for key in sorted(shared)}},
            modalities_left_out=None if all(m is None for m in left) else tuple(
                sorted({x for m in left for x in (m or ())})),
            predictions=predictions,
            check_decisions=tuple({"fold": f + 1, **d} for f, r in enumerate(folds)
                                  for d in r.seeds[i].check_decisions),
        ))
    first = folds[0]
    train_section = config.get("train")
    train: dict[str, Any] = train_section if isinstance(train_section, dict) else {}
    return RunRecord(
        path=cv.path,
        name=name or cv.path.resolve().name,
        split=split,
        kind=first.kind,
        task=first.task,
        label_range=first.label_range,
        class_names=first.class_names,
        preset=str(config.get("preset", first.preset)),
        selection_metric=str(train.get("selection_metric", first.selection_metric)),
        config=config,
        dataset=dataset,
        seeds=tuple(records),
        folds=tuple(folds),
        folds_sha256=digest,
    )


def pool_runs(records: Sequence[RunRecord], name: str) -> RunRecord:
    """One record of the seeds of ``records``, runs of one setting trained side by side (each
    seed's run depends only on its seed, so seeds 1-5 in one directory and 6-10 in another are
    one run of ten seeds). Cross-validations pool fold by fold.

    Raises:
        UsageError: settings that differ other than in ``train.seeds``, other data, or the same
            seed in two of the directories (each named).
    """
    from decalign.errors import UsageError
    from decalign.train.rundir import config_diff

    first = records[0]
    if len(records) == 1:
        return dataclasses.replace(first, name=name)
    seen: dict[int, Path] = {}
    for r in records:
        differ = [k for k in config_diff(first.config, r.config) if k != "train.seeds"]
        if differ:
            raise UsageError(f"{name!r}: {str(r.path)!r} differs from {str(first.path)!r} in {differ}; pool only the "
                             "seeds of one setting")
        fingerprint = (r.dataset.get("fingerprint") or {}).get("sha256"), (first.dataset.get("fingerprint") or {}).get(
            "sha256")
        if (r.kind, r.task, r.folds_sha256) != (first.kind, first.task, first.folds_sha256) or (
                None not in fingerprint and fingerprint[0] != fingerprint[1]):
            raise UsageError(f"{name!r}: {str(r.path)!r} was trained on other data (or folds) than "
                             f"{str(first.path)!r}; pool only the seeds of one setting")
        for s in r.seeds:
            if s.seed in seen:
                raise UsageError(f"{name!r}: seed {s.seed} is in both {str(seen[s.seed])!r} and {str(r.path)!r}")
            seen[s.seed] = r.path
    folds = tuple(pool_runs([r.folds[f] for r in records], first.folds[f].name) for f in range(len(first.folds)))
    return dataclasses.replace(
        first, name=name, seeds=tuple(sorted((s for r in records for s in r.seeds), key=lambda s: s.seed)),
        history=tuple(row for r in records for row in r.history), folds=folds,
        pooled_from=tuple(r.path for r in records))


def only_seeds(record: RunRecord, seeds: Sequence[int]) -> RunRecord:
    """``record`` with only the seeds in ``seeds`` (its folds too, for a cross-validation).

    Raises:
        UsageError: the run has none of them.
    """
    from decalign.errors import UsageError

    wanted = set(seeds)
    kept = tuple(s for s in record.seeds if s.seed in wanted)
    if not kept:
        raise UsageError(f"--seeds {','.join(map(str, seeds))}: run {record.name!r} has none of them (it has "
                         f"{list(record.seed_values)})")
    def keep(row: Mapping[str, Any]) -> bool:
        seed = row.get("seed")
        return not (isinstance(seed, (int, float)) and math.isfinite(seed)) or int(seed) in wanted

    history = tuple(row for row in record.history if keep(row))
    return dataclasses.replace(record, seeds=kept, history=history,
                               folds=tuple(only_seeds(f, seeds) for f in record.folds))


def _read_history(path: Path, limits: ReadLimits) -> list[dict[str, Any]]:
    header, rows = _csv_rows(path, "history (history.csv)", limits)
    out = []
    for row in rows:
        parsed: dict[str, Any] = {}
        for column, text in zip(header, row):
            if column == "split":
                parsed[column] = text
            elif text == "":
                parsed[column] = math.nan
            else:
                try:
                    parsed[column] = float(text)
                except ValueError:
                    parsed[column] = math.nan
        out.append(parsed)
    return out
