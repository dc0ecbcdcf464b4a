"""Several runs side by side: mean +- sample std of every metric over seeds, the paired
difference of every metric against a baseline run with its bootstrap interval
(:mod:`decalign.runs.compare`), and each run's protocol card (:mod:`decalign.runs.card`); as a
console table, markdown, CSV and JSON, and the runs' training curves in one figure.

From Python::

    from decalign.runs import report, write_report
    rep = report(["runs/a", "runs/b"], split="test", n_boot=1000)
    print(rep.to_text())
    write_report(rep, "reports/a_vs_b")

A run may be several directories pooled under a label (``{"recipe": ["runs/r1", "runs/r2"]}``: the
seeds of one setting trained side by side), only some seeds may be kept (``seeds=``), and the
rows of a ``decalign probe --json`` file may be shown beside the runs (``probes=``: the linear
floor, deterministic, so shown without a spread and not compared). A cross-validation directory
(``decalign train --cv K``) is one run of out-of-fold predictions (:mod:`decalign.runs.reader`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from decalign.errors import DataError, UsageError
from decalign.metrics.display import aggregate
from decalign.runs.card import ProtocolCard, protocol_card, protocol_differences
from decalign.runs.compare import MetricDifference, aligned_outputs, paired_bootstrap
from decalign.runs.distribution import Distribution
from decalign.runs.reader import ReadLimits, RunRecord, only_seeds, pool_runs, read_run

__all__ = ["REPORT_FILES", "ProbeRow", "Report", "RunSummary", "Runs", "plot_curves", "read_probes", "read_runs",
           "report", "write_distribution", "write_report"]

Runs = Sequence[str | os.PathLike[str]] | Mapping[str, Sequence[str | os.PathLike[str]]]
"""Run directories, or label -> directories whose seeds are pooled into one run."""

REPORT_FILES: tuple[str, ...] = ("report.md", "summary.csv", "comparisons.csv", "cards.csv", "report.json")
"""What :func:`write_report` writes into its directory."""


@dataclass(frozen=True)
class RunSummary:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of each metric over seeds."""

    run: str
    n_seeds: int
    mean: dict[str, float]
    std: dict[str, float]


@dataclass(frozen=True)
class ProbeRow:
    """One feature set of a ``decalign probe --json`` file on the report's split."""

    name: str
    alpha: float
    metrics: dict[str, float]

    @property
    def label(self) -> str:
        return f"ridge {self.name} (alpha {self.alpha:.3g})"


@dataclass(frozen=True)
class Report:
    split: str
    baseline: str
    level: float
    n_boot: int
    bootstrap_seed: int
    n_samples: int
    metrics: tuple[str, ...]
    summaries: tuple[RunSummary, ...]
    comparisons: tuple[MetricDifference, ...]
    cards: tuple[ProtocolCard, ...]
    probes: tuple[ProbeRow, ...] = ()
    """Rows of a ``decalign probe --json`` file, shown beside the runs (not compared)."""
    directories: tuple[str, ...] = ()
    """Every run directory read (a file of one is never written by :func:`write_report`)."""
    protocol_notes: tuple[str, ...] = ()
    """One line per compared run whose protocol differs from the baseline's in what the pairing
    cannot see (:func:`~decalign.runs.card.protocol_differences`)."""

    # -- rendering --------------------------------------------------------------------------------

    @property
    def _what(self) -> str:
        """What the samples are, for headings: a cross-validation's ``test`` is each fold's held-out
        clips (train + valid pooled), not the file's test split, which it never reads."""
        if self.split == "test" and self.cards and all(c.cross_validation for c in self.cards):
            return "out-of-fold"
        return self.split

    def _summary_cells(self) -> list[list[str]]:
        from decalign.metrics.display import format_mean_std, format_value

        rows = [[f"{self._what} (mean ± sample std)", "seeds", *self.metrics]]
        for s in self.summaries:
            rows.append([s.run, str(s.n_seeds), *(format_mean_std(k, s.mean[k], s.std[k]) for k in self.metrics)])
        for p in self.probes:
            rows.append([p.label, "-", *(format_value(k, p.metrics[k]) if k in p.metrics else "–"
                                         for k in self.metrics)])
        return rows

    def _comparison_cells(self) -> list[list[str]]:
        from decalign.metrics.display import format_value

        def signed(key: str, value: float) -> str:
            return ("-" if value < 0 else "+") + format_value(key, abs(value)) if math.isfinite(value) else "nan"

        pct = f"{100 * self.level:g}%"
        rows = [["metric", "run", f"{self.baseline} (baseline)", "run mean", "difference", f"{pct} CI", "verdict"]]
        for c in self.comparisons:
            k = c.metric
            rows.append([k, c.other, format_value(k, c.baseline_mean), format_value(k, c.other_mean),
                         signed(k, c.difference), f"[{signed(k, c.low)}, {signed(k, c.high)}]", c.verdict])
        return rows

    def _comparison_note(self) -> str:
        paired = {c.paired_seeds for c in self.comparisons}
        seeds = "seeds paired (same seed lists)" if paired == {True} else (
            "seeds resampled per run" if paired == {False} else "seeds paired where the seed lists match")
        return (f"accuracies and F1 x 100; difference = run - {self.baseline}; {100 * self.level:g}% percentile "
                "bootstrap interval, "
                f"{self.n_boot} replicates over the {self.n_samples} {self._what} samples (paired) and the seeds "
                f"({seeds}); bootstrap seed {self.bootstrap_seed}")

    def to_text(self) -> str:
        """The console table: the runs side by side, the paired differences, the cards."""
        parts = [_aligned(self._summary_cells())]
        if self.comparisons:
            parts += ["", _aligned(self._comparison_cells()), self._comparison_note(),
                      *(f"note: {n}" for n in self.protocol_notes)]
        for card in self.cards:
            parts += ["", f"protocol of {card.run}:"] + [f"  {k}: {v}" for k, v in card.fields()]
        return "\n".join(parts)

    def to_markdown(self) -> str:
        title = "Out-of-fold predictions" if self._what == "out-of-fold" else f"Runs on the {self.split} split"
        parts = [f"# {title}", "", _markdown(self._summary_cells())]
        if self.comparisons:
            parts += ["", f"## Paired differences against {self.baseline}", "", _markdown(self._comparison_cells()),
                      "", self._comparison_note() + "."]
            parts += [line for note in self.protocol_notes for line in ("", "**Note:** " + " ".join(note.split()))]
        parts += ["", "## Protocol cards"]
        for card in self.cards:
            parts += ["", f"### {card.run}", "", _markdown([["field", "value"], *card.fields()])]
        return "\n".join(parts) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "baseline": self.baseline,
            "level": self.level,
            "n_boot": self.n_boot,
            "bootstrap_seed": self.bootstrap_seed,
            "n_samples": self.n_samples,
            "std_kind": "sample standard deviation (ddof=1); 0 for a single seed",
            "metrics": list(self.metrics),
            "runs": [{"run": s.run, "n_seeds": s.n_seeds, "mean": s.mean, "std": s.std} for s in self.summaries],
            "comparisons": [{**c.__dict__, "verdict": c.verdict} for c in self.comparisons],
            "cards": [c.to_dict() for c in self.cards],
            "probes": [{"name": p.name, "alpha": p.alpha, "metrics": p.metrics} for p in self.probes],
            "protocol_notes": list(self.protocol_notes),
        }

    def summary_rows(self) -> list[list[Any]]:
        rows: list[list[Any]] = [["run", "split", "metric", "mean", "std", "n_seeds"]]
        for s in self.summaries:
            rows += [[s.run, self.split, k, s.mean[k], s.std[k], s.n_seeds] for k in self.metrics]
        for p in self.probes:
            rows += [[p.label, self.split, k, p.metrics[k], math.nan, 0] for k in self.metrics if k in p.metrics]
        return rows

    def comparison_rows(self) -> list[list[Any]]:
        rows: list[list[Any]] = [["baseline", "run", "split", "metric", "baseline_mean", "run_mean", "difference",
                                  "ci_low", "ci_high", "level", "n_samples", "n_boot", "paired_seeds", "verdict"]]
        rows += [[c.baseline, c.other, self.split, c.metric, c.baseline_mean, c.other_mean, c.difference, c.low,
                  c.high, c.level, c.n_samples, c.n_boot, c.paired_seeds, c.verdict] for c in self.comparisons]
        return rows

    def card_rows(self) -> list[list[Any]]:
        rows: list[list[Any]] = [["run", "field", "value"]]
        for card in self.cards:
            rows += [[card.run, k, v] for k, v in card.fields()]
        return rows


def _aligned(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _names(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Directory names, or the paths as given where two runs share a name."""
    base = [Path(p).resolve().name or str(p) for p in paths]
    return [str(p) if base.count(b) > 1 else b for p, b in zip(paths, base)]


def _groups(runs: Runs) -> list[tuple[str, list[str | os.PathLike[str]]]]:
    """``(label, directories)`` per run: a mapping's items, or one directory each named by
    :func:`_names`."""
    if isinstance(runs, Mapping):
        groups = [(str(label), list(dirs)) for label, dirs in runs.items()]
        empty = [label for label, dirs in groups if not dirs]
        if empty:
            raise UsageError(f"report: {empty[0]!r} names no run directory")
        return groups
    return [(n, [p]) for n, p in zip(_names(runs), runs)]


def read_runs(runs: Runs, split: str = "test", *, seeds: Sequence[int] | None = None, history: bool = False,
              limits: ReadLimits | None = None) -> list[RunRecord]:
    """Read ``runs`` (directories, or label -> directories pooled by
    :func:`~decalign.runs.reader.pool_runs`), keeping only ``seeds`` when given.

    Raises:
        UsageError: no runs, the same directory twice, directories that cannot be pooled, or a
            run without any of ``seeds``.
        RunDirError: a directory that is not a finished run (the file is named).
    """
    groups = _groups(runs)
    if not groups:
        raise UsageError("report: name at least one run directory")
    resolved = [Path(p).resolve() for _, dirs in groups for p in dirs]
    if len(set(resolved)) != len(resolved):
        raise UsageError("report: a run directory is named twice")
    records = []
    for label, dirs in groups:
        record = pool_runs([read_run(p, split, name=label, history=history, limits=limits) for p in dirs], label)
        records.append(record if seeds is None else only_seeds(record, seeds))
    return records


def read_probes(path: str | os.PathLike[str], split: str, limits: ReadLimits | None = None) -> tuple[ProbeRow, ...]:
    """The feature sets of a ``decalign probe --json`` file with their metrics on ``split``.

    Raises:
        DataError: a file that is not such a file, or has no metrics on ``split`` (named).
    """
    from decalign.runs.reader import _read_json

    file = Path(path)
    data = _read_json(file, "probe file (decalign probe --json)", limits or ReadLimits())
    rows = []
    for name, entry in data.items():
        metrics = entry.get(split) if isinstance(entry, Mapping) else None
        alpha = entry.get("alpha") if isinstance(entry, Mapping) else None
        if not isinstance(metrics, Mapping) or not isinstance(alpha, (int, float)):
            raise DataError(f"--probes {str(file)!r}: entry {str(name)[:40]!r} has no 'alpha' and {split!r} metrics "
                            "(not a `decalign probe --json` file?)")
        rows.append(ProbeRow(str(name), float(alpha),
                             {str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}))
    if not rows:
        raise DataError(f"--probes {str(file)!r}: no probe in it")
    return tuple(rows)


def report(
    runs: Runs,
    *,
    split: str = "test",
    baseline: str | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    bootstrap_seed: int = 0,
    seeds: Sequence[int] | None = None,
    probes: str | os.PathLike[str] | None = None,
    limits: ReadLimits | None = None,
) -> Report:
    """Read ``runs`` and compare them on ``split``.

    ``runs``: run directories of ``decalign train`` (or of a cross-validation), or a mapping
    label -> directories whose seeds are pooled into one run (:data:`Runs`). ``seeds``: only these
    seeds of every run. ``probes``: a ``decalign probe --json`` file whose rows are shown beside
    the runs (its metrics on ``split``; not compared: a probe has neither seeds nor, in the file,
    predictions).

    Metrics are recomputed from each seed's predictions with the dataset's metric functions
    (:func:`decalign.metrics.metrics_for`), so the table and the differences use the same numbers.
    Every run after the baseline (``baseline``: a run's name, i.e. its label or directory name, or
    its path as given; default the first run) is compared with it by
    :func:`~decalign.runs.compare.paired_bootstrap`.

    Raises:
        UsageError: no runs, an unknown ``baseline``, the same directory twice, runs that cannot be
            pooled, a run without any of ``seeds``.
        RunDirError: a directory that is not a finished run (the file is named).
        DataError: runs on other data kinds or other samples, a split without predictions, a
            malformed probe file.
    """
    groups = _groups(runs)
    records = read_runs(runs, split, seeds=seeds, limits=limits)
    names = [r.name for r in records]
    if baseline is None:
        base_index = 0
    else:
        matches = [i for i, (label, dirs) in enumerate(groups) if baseline == label or baseline in map(str, dirs)]
        if not matches:
            raise UsageError(f"--baseline {baseline!r} names none of the runs {names}")
        base_index = matches[0]
    first = records[base_index]
    for r in records:
        if (r.kind, r.task) != (first.kind, first.task):
            raise DataError(f"run {r.name!r} is a {r.kind} {r.task} run, {first.name!r} a {first.kind} {first.task} "
                            "run: only runs on the same data can be compared")
    metric_fn = first.metric_fn()
    summaries, keys = [], None
    for r in records:
        outputs, labels, _ = aligned_outputs(r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a degenerate seed (constant outputs) has undefined metrics
            per_seed = [metric_fn(o, labels) for o in outputs]
        keys = keys or list(per_seed[0])
        spread = aggregate(per_seed)  # mean and sample std over seeds, as every decalign table
        summaries.append(RunSummary(r.name, len(per_seed), spread["mean"], spread["std"]))
    assert keys is not None
    comparisons: list[MetricDifference] = []
    for i, r in enumerate(records):
        if i != base_index:
            comparisons += paired_bootstrap(first, r, metric_fn, n_boot=n_boot, level=level, seed=bootstrap_seed)
    cards = tuple(protocol_card(r) for r in records)
    notes = tuple(f"{card.run} differs from {first.name} in: {'; '.join(found)}"
                  for i, card in enumerate(cards)
                  if i != base_index and (found := protocol_differences(card, cards[base_index])))
    return Report(
        split=split, baseline=first.name, level=level, n_boot=n_boot, bootstrap_seed=bootstrap_seed,
        n_samples=len(aligned_outputs(first)[2]), metrics=tuple(keys),
        summaries=tuple(summaries), comparisons=tuple(comparisons), cards=cards, protocol_notes=notes,
        probes=() if probes is None else read_probes(probes, split, limits),
        directories=tuple(str(Path(p)) for _, dirs in groups for p in dirs),
    )


# -- files -----------------------------------------------------------------------------------------

def _cell(value: Any) -> Any:
    """A CSV cell: NaN as an empty cell, text escaped (:func:`decalign.safety.cells.escape_cell`)."""
    from decalign.safety.cells import escape_cell

    if isinstance(value, float) and math.isnan(value):
        return ""
    return escape_cell(value)


def _finite(data: Any) -> Any:
    """``data`` with non-finite floats as ``null`` (strict JSON has no NaN)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def _csv_text(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(c) for c in row])
    return buf.getvalue()


def _run_roots(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    return [Path(p).resolve() for p in paths]


def _guard_targets(targets: Sequence[Path], roots: Sequence[Path], overwrite: bool, flag: str = "--out") -> None:
    """The output guard's rules (:mod:`decalign.safety.outputs`): never a file inside a reported
    run (one of the report's inputs), and no existing file replaced without ``overwrite``."""
    from decalign.safety.outputs import check_not_input, check_replaceable

    for target in targets:
        check_not_input(target, {f"RUN #{i}": root for i, root in enumerate(roots, 1)}, flag)
        check_replaceable(target, overwrite, flag)


def write_report(rep: Report, out: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
    """Write :data:`REPORT_FILES` into ``out`` (created): markdown, CSV (cells escaped by
    :func:`decalign.safety.cells.escape_cell`) and JSON, holding the directory's lock. An existing
    file is replaced only with ``overwrite``; a file of a reported run is never written."""
    from decalign.train.atomic import write_text
    from decalign.train.runguard import RunLock

    directory = Path(out)
    targets = [directory / name for name in REPORT_FILES]
    _guard_targets(targets, _run_roots(list(rep.directories) or [c.path for c in rep.cards]), overwrite)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        from decalign.errors import FileAccessError

        raise FileAccessError(
            f"{str(directory)!r}: cannot create the report directory: {err.strerror or err}"
        ) from None
    with RunLock(directory):
        _guard_targets(targets, [], overwrite)  # again under the lock: another writer may have been first
        texts = [rep.to_markdown(), _csv_text(rep.summary_rows()), _csv_text(rep.comparison_rows()),
                 _csv_text(rep.card_rows()), json.dumps(_finite(rep.to_dict()), indent=2, allow_nan=False) + "\n"]
        return [write_text(t, text) for t, text in zip(targets, texts)]


def write_distribution(dist: Distribution, out: str | os.PathLike[str], *,
                       sources: Sequence[str | os.PathLike[str]] = (), overwrite: bool = False) -> list[Path]:
    """Write ``distribution.md`` (:meth:`Distribution.to_markdown`) and ``distribution.csv`` into
    ``out`` (created). An existing file is replaced only with ``overwrite``; a file inside one of
    ``sources`` (the run directories the distribution was read from) is never written."""
    from decalign.train.atomic import write_text

    directory = Path(out)
    targets = [directory / "distribution.md", directory / "distribution.csv"]
    _guard_targets(targets, _run_roots(sources), overwrite)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_text(target, body) for target, body in zip(targets, [dist.to_markdown(), _csv_text(dist.rows())])]


# -- curves ----------------------------------------------------------------------------------------

def _epoch_means(history: Sequence[Mapping[str, Any]], split: str, column: str) -> tuple[list[int], list[float]]:
    """Per epoch, the mean of ``column`` over the seeds that ran it (NaN cells ignored)."""
    values: dict[int, list[float]] = {}
    for row in history:
        v = row.get(column, math.nan)
        if row.get("split") == split and isinstance(v, float) and math.isfinite(v):
            values.setdefault(int(row["epoch"]), []).append(v)
    epochs = sorted(values)
    return epochs, [float(np.mean(values[e])) for e in epochs]


def plot_curves(runs: Runs, path: str | os.PathLike[str], *, metrics: Sequence[str] | None = None,
                seeds: Sequence[int] | None = None, title: str | None = None, overwrite: bool = False,
                limits: ReadLimits | None = None) -> Path:
    """One figure of several runs' training curves from their ``history.csv`` (``runs`` as in
    :func:`report`: directories, or label -> directories pooled). By default: left, the
    validation selection metric per epoch; right, the training loss (the whole objective) per
    epoch; one line per run, the mean over its seeds. With ``metrics`` (validation columns, e.g.
    ``("loss", "corr")``): a panel per metric, a thin line per seed and a dot at each seed's
    selected epoch (:func:`decalign.plots.plot_validation_curves`), which shows how smooth each
    curve is and where selection landed on it. ``seeds``: only these seeds of every run. Needs the
    ``plots`` extra (matplotlib).

    Raises:
        UsageError: not a ``.png`` target, or :func:`read_runs`' refusals.
        DataError: a run without history rows (a cross-validation: draw its folds), or a metric a
            run has no validation values of.
    """
    from decalign._optional import require

    require("matplotlib", extra="plots", feature="report --curves")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from decalign.train.atomic import atomic_write

    target = Path(path)
    if target.suffix.lower() != ".png":
        raise UsageError(f"--curves {str(target)!r}: the figure is written as PNG; name a .png file")
    _guard_targets([target], _run_roots([p for _, dirs in _groups(runs) for p in dirs]), overwrite, "--curves")
    records = read_runs(runs, "test", seeds=seeds, history=True, limits=limits)
    for r in records:
        if r.folds:
            raise DataError(f"run {r.name!r} is a cross-validation: its folds have the curves (draw "
                            f"{str(r.path / 'fold_1')!r} ...)")
        if not r.history:
            raise DataError(f"run {r.name!r}: its history.csv has no rows")
    if metrics is not None:
        from decalign.plots import plot_validation_curves

        _make_parent(target)
        try:
            return plot_validation_curves({r.name: r.history for r in records}, target, tuple(metrics), title)
        except ValueError as err:  # a metric some run has no validation values of
            raise DataError(str(err).replace("plot_validation_curves: ", "--curve-metrics: ")) from None
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    selection = {r.selection_metric for r in records}
    for r in records:
        epochs, values = _epoch_means(r.history, "valid", r.selection_metric)
        label = r.name if len(selection) == 1 else f"{r.name} ({r.selection_metric})"
        left.plot(epochs, values, marker="o", label=label)
        epochs, values = _epoch_means(r.history, "train", "loss")
        right.plot(epochs, values, marker="o", label=r.name)
    left.set(xlabel="epoch", ylabel=" / ".join(sorted(selection)),
             title="validation selection metric (mean over seeds)")
    right.set(xlabel="epoch", ylabel="loss", title="training loss, whole objective (mean over seeds)")
    if title:
        fig.suptitle(title)
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _make_parent(target)
    return atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        from decalign.errors import FileAccessError

        raise FileAccessError(f"{str(target.parent)!r}: cannot create the directory: {err.strerror or err}") from None
