"""``decalign bench``: every model and every ablation of the paper, same data, seeds and protocol.

One command reruns the paper's ablation table and compares DecAlign with simpler models::

    decalign bench --dataset synthetic --models decalign,mult,tfn,late,early --ablations all \\
        --seeds 1 2 3 --out runs/bench

Each model (``model.architecture``, see :mod:`decalign.model.baselines`) and each ablation
(:data:`decalign.config.ablations.ABLATIONS`, always on DecAlign) is an ordinary training run through
:func:`decalign.api.train` with the same base configuration (preset + ``--set`` + ``--seeds`` +
``--epochs``), so the engine, the model selection on the validation split and the seeds are
identical across rows. The output directory::

    OUT/
      bench.md          the table (mean ± std over seeds, best in bold, the paper's numbers as
                        "(paper)" rows on its benchmarks), figures, what each run switches
      bench.csv         one row per run: name, label, kind, overrides, n_seeds, <metric>_mean/_std
      figures/          ablation_<metric>.png dot plots (models_<metric>.png without ablations)
      runs/<name>/      a complete run directory per model/ablation (config.json, results.json,
                        history.csv, seed_<s>/model.safetensors, plots/ ...); with ``--cv K`` a
                        cross-validation by video (fold_<k>/ runs, cv.json: docs/crossval.md)

Rerunning the same command resumes: complete runs are skipped, interrupted ones continue from
their last completed epoch (``resume=True``), and the report is rewritten. A run directory that
holds other settings is an error rather than a silent mix.

The command line is :mod:`decalign.cli.bench`; this module imports only light registries at module
level.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from decalign.data.detect import DATASET_KINDS, report_columns
from decalign.model.factory import ARCHITECTURES

if TYPE_CHECKING:  # annotations only: this module imports the standard library alone
    from decalign.config import RunConfig
    from decalign.data.types import MultimodalDataset

__all__ = [
    "MODELS",
    "MODEL_LABELS",
    "BenchResult",
    "BenchRun",
    "RunScores",
    "parse_models",
    "plan_runs",
    "run_bench",
    "table_keys",
    "write_report",
]

log = logging.getLogger("decalign")

MODELS: tuple[str, ...] = tuple(ARCHITECTURES)
"""Every ``model.architecture``, in report order (from :data:`decalign.model.factory.ARCHITECTURES`)."""

MODEL_LABELS: dict[str, str] = {name: a.label for name, a in ARCHITECTURES.items()}
"""Architecture -> display label (the paper's row name in ``PAPER_RESULTS`` where it has one)."""

PAPER_KINDS: tuple[str, ...] = tuple(k for k, v in DATASET_KINDS.items() if v.paper)
"""Dataset kinds for which the paper reports numbers (:data:`decalign.metrics.display.PAPER_RESULTS`)."""

_BAR_METRICS = ("mae", "f1_non0", "f1", "waf1", "wacc", "corr")
"""The paper reports ablations as MAE and F1 (WAcc/WAF1 for emotions): bars for the first two."""


@dataclass
class BenchRun:
    """One row of the benchmark: a model or an ablation, trained as a normal run."""

    name: str
    """File-system safe name: the architecture or the ablation name (``runs/<name>/``)."""
    label: str
    """Display label (the paper's row name where it reports this row)."""
    kind: str
    """``model`` or ``ablation``."""
    overrides: dict[str, Any]
    """What this run sets on top of the bench's base configuration."""
    config: RunConfig
    """The fully resolved :class:`decalign.config.RunConfig`."""
    directory: Path
    note: str = ""
    """Why the run may not differ from DecAlign under this preset, if it may not."""


class RunScores(TypedDict):
    """A run's test metrics over its seeds, as the report shows them."""

    mean: dict[str, float]
    std: dict[str, float]
    """Sample or population standard deviation, as the bench was asked (``std``)."""
    n: int
    """The number of seeds."""


@dataclass
class BenchResult:
    out_dir: Path
    runs: list[BenchRun]
    results: dict[str, RunScores]
    """Run name -> its test metrics over seeds."""
    status: dict[str, str]
    """Run name -> ``trained``, ``resumed``, ``skipped`` (already complete) or ``failed``."""
    csv_path: Path
    md_path: Path
    figures: list[Path] = field(default_factory=list)
    table: str = ""
    """The table of ``bench.md`` as plain text (for the terminal)."""
    failures: dict[str, str] = field(default_factory=dict)
    """Run name -> error of the runs that failed (left out of the table; retried on rerun)."""


# ---------------------------------------------------------------------------------------------
# planning


def parse_models(spec: str | Sequence[str]) -> list[str]:
    """``"all"``, ``"none"`` or a comma list / sequence of architectures, validated, in given order."""
    if isinstance(spec, str):
        text = spec.strip()
        if text == "all":
            return list(MODELS)
        if text in ("none", ""):
            return []
        names = [n.strip() for n in text.split(",") if n.strip()]
    else:
        names = list(spec)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODELS)} (or 'all' / 'none')")
    return list(dict.fromkeys(names))


def plan_runs(
    base: RunConfig,
    modalities: Sequence[str],
    out_dir: str | os.PathLike[str],
    models: str | Sequence[str] = MODELS,
    ablations: str | Sequence[str] = "all",
) -> list[BenchRun]:
    """The runs of a benchmark: the models, then the ablations (each on DecAlign).

    Args:
        base: the base :class:`decalign.config.RunConfig` every run starts from.
        modalities: the data's modality names (unimodal/bimodal ablations derive from them).
        out_dir: the bench directory; run ``name`` lives in ``out_dir/runs/name``.
        models: architectures (see :func:`parse_models`).
        ablations: ``all``, ``none`` or names (see :func:`decalign.config.ablations.select_ablations`).
    """
    from decalign.config import apply_overrides
    from decalign.config.ablations import inactive_terms, label, select_ablations

    runs_dir = Path(out_dir) / "runs"
    weights = {k: getattr(base.objective, k) for k in ("w_dec", "alpha", "beta", "w_ct")}
    runs: list[BenchRun] = []
    for arch in parse_models(models):
        overrides: dict[str, Any] = {"model.architecture": arch}
        runs.append(BenchRun(arch, MODEL_LABELS[arch], "model", overrides, apply_overrides(base, overrides),
                             runs_dir / arch))
    for name, switches in select_ablations(ablations, modalities).items():
        overrides = {"model.architecture": "decalign", **switches}
        zeros = inactive_terms(switches, weights)
        note = (
            f"the preset already has {' and '.join(zeros)}: "
            "differs from DecAlign only through random-number consumption"
            if zeros
            else ""
        )
        runs.append(BenchRun(name, label(name), "ablation", overrides, apply_overrides(base, overrides),
                             runs_dir / name, note))
    if not runs:
        raise ValueError("nothing to run: --models and --ablations select no run")
    return runs


# ---------------------------------------------------------------------------------------------
# running


def _run_one(run: BenchRun, dataset: MultimodalDataset, quiet: bool, tensorboard: bool, cv: int | None = None) -> str:
    """Train, resume or skip one run (with ``cv``, one cross-validation); returns what was done."""
    from decalign.api import cross_validate, train
    from decalign.config import ConfigError
    from decalign.train.rundir import CVDir, RunDir

    saved = RunDir(run.directory)
    if cv is not None:
        started = CVDir(run.directory).holds_cv()
        if started and saved.config_file.exists() and saved.config_diff(run.config):
            raise ConfigError(
                f"bench: {str(run.directory)!r} holds a cross-validation with other settings (differences: "
                f"{', '.join(saved.config_diff(run.config))}); rerun with the same settings to resume it, or choose "
                "another --out"
            )
        result = cross_validate(run.config, dataset, run.directory, cv, resume=started, quiet=quiet,
                                tensorboard=tensorboard)
        done = set(result.status.values())
        return "skipped" if done == {"skipped"} else ("resumed" if started else "trained")
    if saved.config_file.exists():
        diff = saved.config_diff(run.config)
        if diff:
            raise ConfigError(
                f"bench: {str(run.directory)!r} holds a run with other settings (differences: "
                f"{', '.join(diff)}); rerun with the same settings to resume it, or choose another --out"
            )
        if set(run.config.train.seeds) <= saved.completed_seeds():
            return "skipped"
        train(run.config, dataset, run.directory, resume=True, quiet=quiet, tensorboard=tensorboard)
        return "resumed"
    train(run.config, dataset, run.directory, resume=False, quiet=quiet, tensorboard=tensorboard)
    return "trained"


def _stale(plot: Path, source: Path) -> bool:
    return not plot.exists() or (source.exists() and plot.stat().st_mtime < source.stat().st_mtime)


def run_bench(
    dataset: MultimodalDataset,
    base: RunConfig,
    out_dir: str | os.PathLike[str],
    models: str | Sequence[str] = MODELS,
    ablations: str | Sequence[str] = "all",
    *,
    quiet: bool = False,
    plots: str = "summary",
    tensorboard: bool = False,
    std: str = "sample",
    cv: int | None = None,
) -> BenchResult:
    """Run (or resume) a benchmark and write its report.

    Args:
        dataset: the :class:`decalign.data.MultimodalDataset` every run trains on.
        base: the base :class:`decalign.config.RunConfig` (preset, overrides, seeds, epochs).
        out_dir: the bench directory (layout in the module docstring).
        models: architectures to train (``"all"``, ``"none"``, a comma list or a sequence).
        ablations: DecAlign ablations (``"all"``, ``"none"``, a comma list or a sequence).
        quiet: no per-epoch logging.
        plots: ``summary`` (dot plots, plus the DecAlign run's curves, embeddings and transport
            plan), ``all`` (every run's figures as well) or ``none``.
        tensorboard: write TensorBoard events in every run (off: a bench has many runs and its
            own figures).
        cv: each row a cross-validation by video with ``cv`` folds instead of one run
            (:func:`decalign.api.cross_validate`; the table shows the pooled out-of-fold metrics
            and the test split is not read); per-run figures are then not drawn.
    """
    if plots not in ("summary", "all", "none"):
        raise ValueError(f"plots must be 'summary', 'all' or 'none', got {plots!r}")
    out = Path(out_dir)
    runs = plan_runs(base, dataset.modalities, out, models, ablations)
    if cv is not None:
        from decalign.data.folds import fold_plan

        fold_plan(dataset, cv)  # ids without a video, too few videos: refused before any row trains
    from decalign.config import ConfigError

    status: dict[str, str] = {}
    errors: dict[str, Exception] = {}
    started = time.perf_counter()
    for i, run in enumerate(runs, 1):
        if run.note:
            log.warning("bench: %s (%s): %s", run.name, run.label, run.note)
        t0 = time.perf_counter()
        try:
            status[run.name] = _run_one(run, dataset, quiet, tensorboard, cv)
        except ConfigError:
            raise  # settings that do not fit this bench directory: nothing else can run either
        except Exception as err:  # one diverging run must not cost the others: report it, retry on rerun
            status[run.name] = "failed"
            errors[run.name] = err
            log.error("bench [%d/%d] %s (%s): failed: %s: %s", i, len(runs), run.name, run.label,
                      type(err).__name__, err)
            continue
        log.info("bench [%d/%d] %s (%s): %s in %.1fs", i, len(runs), run.name, run.label, status[run.name],
                 time.perf_counter() - t0)
    done = [run for run in runs if run.name not in errors]
    if not done:
        raise next(iter(errors.values()))  # every run failed: the first error is the one to fix
    results = {run.name: _read_results(run.directory, std) for run in done}
    if plots == "all" and cv is not None:
        plots = "summary"  # a cross-validation is many runs: its folds' figures are drawn one by one
    if plots != "none":
        from decalign.plots import plots_unavailable

        note = plots_unavailable()
        if note:
            log.warning("bench: %s", note)
            plots = "none"
    if plots != "none":
        from decalign.plots.run import plot_run
        from decalign.train.rundir import RunDir

        plotted = [r for r in done if plots == "all" or r.name == "decalign"]
        plotted = plotted or ([done[0]] if plots == "summary" else [])
        plotted = plotted if cv is None else []
        for run in plotted:
            files = RunDir(run.directory)
            if _stale(files.plots_dir / "curves.png", files.results_file):
                plot_run(run.directory)
    failures = {name: f"{type(err).__name__}: {err}" for name, err in errors.items()}
    md_path, csv_path, figures, table = write_report(out, runs, results, dataset, base, plots=plots != "none", std=std,
                                                     failures=failures, cv=cv)
    log.info("bench: %d runs in %.1fs; report: %s", len(runs), time.perf_counter() - started, md_path)
    return BenchResult(out, runs, results, status, csv_path, md_path, figures, table, failures)


def _read_results(run_dir: Path, std: str = "sample") -> RunScores:
    """A run's test mean and ``std`` (``sample`` or ``population``) over seeds, recomputed from
    its per-seed metrics so that runs written before ``std_population`` existed work too."""
    from decalign.metrics.display import aggregate
    from decalign.train.rundir import CVDir, RunDir

    cv = CVDir(run_dir)
    if cv.holds_cv():  # a cross-validation: its pooled out-of-fold metrics per seed
        pooled = json.loads(cv.summary_file.read_text())["pooled"]
        per_seed = [pooled["seeds"][s] for s in sorted(pooled["seeds"], key=int)]
        return {"mean": pooled["mean"], "std": aggregate(per_seed, std=std)["std"], "n": len(per_seed)}
    payload = RunDir(run_dir).read_results()
    per_seed = [payload["seeds"][s]["test"] for s in sorted(payload["seeds"], key=int)]
    agg = aggregate(per_seed, std=std)
    return {"mean": payload["mean"], "std": agg["std"], "n": len(per_seed)}


# ---------------------------------------------------------------------------------------------
# report


def table_keys(kind: str, task: str, available: Iterable[str]) -> list[str]:
    """The metric columns of the report for a dataset, restricted to the metrics it has."""
    from decalign.model.output import LOG_KEYS

    have = list(dict.fromkeys(available))
    keys = report_columns(kind, task, have)
    return keys or [k for k in have if k not in LOG_KEYS]


def _bar_metrics(keys: Sequence[str]) -> list[str]:
    return [m for m in _BAR_METRICS if m in keys][:2]


def _csv(runs: Sequence[BenchRun], results: Mapping[str, RunScores], std: str = "sample") -> str:
    import io

    from decalign.safety.cells import csv_writer

    metrics: list[str] = []
    for run in runs:
        metrics.extend(k for k in results[run.name]["mean"] if k not in metrics)
    buf = io.StringIO()
    writer = csv_writer(buf, lineterminator="\n")
    writer.writerow(["name", "label", "kind", "architecture", "overrides", "n_seeds",
                     *[f"{m}_{s}" for m in metrics for s in ("mean", f"{std}_std")]])
    for run in runs:
        res = results[run.name]
        cells: list[Any] = []
        for m in metrics:
            cells += [res["mean"].get(m, ""), res["std"].get(m, "")]
        writer.writerow([run.name, run.label, run.kind, run.config.model.architecture,
                         json.dumps(run.overrides, sort_keys=True), res["n"], *cells])
    return buf.getvalue()


def _markdown_table(
    runs: Sequence[BenchRun],
    results: Mapping[str, RunScores],
    keys: Sequence[str],
    paper: Mapping[str, Mapping[str, float]] | None,
    std: str = "sample",
) -> str:
    """Our rows with the best of each column in bold, each followed by the paper's row of the
    same name (never bold: the bold marks the best of *our* runs), then the paper's rows for
    methods the bench cannot run (e.g. CGGM); paper rows of unselected ablations are left out."""
    from decalign.config.ablations import LABELS
    from decalign.metrics.display import format_table

    ours = {run.label: results[run.name] for run in runs}
    lines = format_table(ours, keys=keys, style="markdown", bold_best=True, row_header="run", std=std).splitlines()
    header, body = lines[:2], lines[2:]
    if not paper:
        return "\n".join(lines)
    names = list(paper)
    paper_lines = format_table({f"{n} (paper)": paper[n] for n in names}, keys=keys, style="markdown").splitlines()[2:]
    by_name = dict(zip(names, paper_lines))
    out = list(header)
    for label, line in zip(ours, body):
        out.append(line)
        if label in by_name:
            out.append(by_name.pop(label))
    runnable = {*LABELS.values(), *MODEL_LABELS.values()}
    out.extend(line for name, line in by_name.items() if name not in runnable)
    return "\n".join(out)


def _switches(run: BenchRun) -> str:
    from decalign.config.ablations import DESCRIPTIONS

    shown = {k: v for k, v in run.overrides.items() if k != "model.architecture"}
    if run.kind == "model":
        return f"`model.architecture={run.config.model.architecture}`"
    text = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in shown.items())
    return f"{DESCRIPTIONS[run.name]}: {text}" if run.name in DESCRIPTIONS else text


def write_report(
    out_dir: Path,
    runs: Sequence[BenchRun],
    results: Mapping[str, RunScores],
    dataset: MultimodalDataset,
    base: RunConfig,
    plots: bool = True,
    failures: Mapping[str, str] | None = None,
    std: str = "sample",
    cv: int | None = None,
) -> tuple[Path, Path, list[Path], str]:
    """Write ``bench.csv``, the dot plots and ``bench.md``; returns their paths and the
    plain-text table. ``results`` hold ``std`` (``sample`` or ``population``) standard
    deviations, named in every table header and CSV column. Runs without an entry in ``results``
    (failed) are listed under *Notes* with their ``failures`` message instead of in the table."""
    from decalign.metrics.display import PAPER_RESULTS, STD_KINDS, format_table
    from decalign.train.atomic import write_text

    out_dir = Path(out_dir)
    failed = [run for run in runs if run.name not in results]
    runs = [run for run in runs if run.name in results]
    csv_path = write_text(out_dir / "bench.csv", _csv(runs, results, std))
    available: list[str] = []
    for run in runs:
        available.extend(k for k in results[run.name]["mean"] if k not in available)
    keys = table_keys(dataset.kind, dataset.task, available)
    paper = PAPER_RESULTS.get(dataset.kind) if dataset.kind in PAPER_KINDS else None
    table_md = _markdown_table(runs, results, keys, paper, std)
    text_table = format_table({run.label: results[run.name] for run in runs}, keys=keys, bold_best=True,
                              row_header="run", std=std)

    figures: list[Path] = []
    if plots:
        from decalign.plots import plot_ablation_bars

        rows = {run.label: results[run.name] for run in runs}
        # named for what they compare: ablation_* only when the bench has ablations or modality subsets
        prefix = "ablation" if any(run.kind != "model" for run in runs) else "models"
        for metric in _bar_metrics(keys):
            figures.append(plot_ablation_bars(
                rows, metric, out_dir / "figures" / f"{prefix}_{metric}.png", reference="DecAlign", paper=paper,
                groups={run.label: _group(run) for run in runs},
                std=std,
                title=f"{metric} on {dataset.kind}: models and ablations ({_seed_text(base)})",
            ))

    tc = base.train
    lines = [
        f"# Benchmark: {dataset.kind}",
        "",
        f"Data: {_source(dataset)} ({dataset.kind}, {dataset.layout}, {dataset.task}). Preset `{base.preset}`, "
        f"{_seed_text(base)}, at most {_plural(tc.num_epochs, 'epoch')} "
        f"(early stopping after {tc.early_stop_patience} without improvement), "
        f"model selection on validation `{tc.selection_metric}`.",
        "",
        (f"Test metrics at the best-validation epoch, mean ± {STD_KINDS[std]} over seeds " if cv is None else
         f"Out-of-fold metrics of a {cv}-fold cross-validation by video over the train and valid clips (test fold "
         f"k, valid fold k+1; the test split not read), mean ± {STD_KINDS[std]} over seeds ")
        + "(accuracies and F1 in %); the best of our runs in each column in **bold**."
        + (f" Rows marked *(paper)* are the numbers the paper reports on the full {dataset.kind} benchmark with "
           "its own features (ablations: MAE and F1 only): like for like only when this data is that benchmark."
           if paper else ""),
        "",
        table_md,
        "",
    ]
    if plots:
        lines += ["## Figures", ""]
        for fig in figures:
            metric = fig.stem.partition("_")[2]
            what = "model and ablation" if fig.stem.startswith("ablation_") else "model"
            lines += [f"![{metric} by {what}]({fig.relative_to(out_dir).as_posix()})", ""]
        for run in runs:
            plot_dir = run.directory / "plots"
            pngs = [p for p in ("curves.png", "embeddings.png", "transport_plan.png") if (plot_dir / p).exists()]
            if not pngs:
                continue
            lines += [f"### {run.label} (`runs/{run.name}`, seed {run.config.train.seeds[0]})", ""]
            captions = {"curves.png": "training curves", "embeddings.png": "t-SNE of unique and common features",
                        "transport_plan.png": "prototype transport plan"}
            for p in pngs:
                rel = (plot_dir / p).relative_to(out_dir).as_posix()
                lines += [f"![{run.label}: {captions[p]}]({rel})", ""]
        lines += ["How to read the figures: `docs/ablations.md`.", ""]
    lines += ["## Runs", "", "| run | kind | what it changes | seeds | directory |", "|---|---|---|---:|---|"]
    for run in runs:
        lines.append(f"| {run.label} | {run.kind} | {_switches(run)} | {results[run.name]['n']} | "
                     f"[`runs/{run.name}`](runs/{run.name}/) |")
    notes = [f"- **{run.label}**: {run.note}." for run in runs if run.note]
    notes += [f"- **{run.label}** failed and is not in the table: {(failures or {}).get(run.name, 'no results')}. "
              "Rerun the same command to retry it." for run in failed]
    if notes:
        lines += ["", "## Notes", "", *notes]
    md_path = write_text(out_dir / "bench.md", "\n".join(lines).rstrip() + "\n")
    return md_path, csv_path, figures, text_table


def _group(run: BenchRun) -> str:
    if run.kind == "model":
        return "baseline"
    return "modality subset" if "model.modalities" in run.overrides else "ablation"


def _source(dataset: MultimodalDataset) -> str:
    if dataset.source:
        return f"`{dataset.source}`"
    sizes = ", ".join(f"{len(sp.labels)} {name}" for name, sp in dataset.splits.items())
    return f"the built-in generated dataset ({sizes})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _seed_text(base: RunConfig) -> str:
    seeds = base.train.seeds
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}: {', '.join(map(str, seeds))}"
