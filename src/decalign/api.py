"""High-level Python API: resolve a configuration for some data, train over seeds, evaluate and
predict with saved checkpoints. The CLI is a thin layer over these functions.

The run directory's layout and files belong to :class:`decalign.train.rundir.RunDir`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from decalign.config import (
    ConfigError,
    DataConfig,
    Override,
    RunConfig,
    apply_overrides,
    section_overrides,
)
from decalign.config.presets import PRESETS, custom_preset, finetune_changes, get_preset
from decalign.data import DataError, MultimodalDataset, describe_dataset, load_dataset
from decalign.train.modality_check import summary as check_summary

if TYPE_CHECKING:  # annotations only: importing the API stays free of torch
    from decalign.metrics.display import MetricNames, ReportStyle, TableStyle
    from decalign.model.factory import ModelInfo
    from decalign.runs.crossval import CrossValidation
    from decalign.train.batches import SplitTensors
    from decalign.train.checkpoint import LoadedCheckpoint
    from decalign.train.distributed import Context
    from decalign.train.engine import EvalResult
    from decalign.train.rundir import RunDir

__all__ = [
    "CVResult",
    "RunResult",
    "cross_validate",
    "data_config",
    "evaluate_checkpoint",
    "load_and_resolve",
    "load_for_eval",
    "predict_checkpoint",
    "prepare",
    "resolve_config",
    "train",
]

log = logging.getLogger("decalign")


@dataclass
class RunResult:
    out_dir: Path
    config: RunConfig
    seeds: dict[int, dict[str, Any]]
    mean: dict[str, float]
    std: dict[str, float]
    """Sample standard deviation over seeds (``ddof=1``)."""
    std_population: dict[str, float] = dataclasses.field(default_factory=dict)
    """Population standard deviation over seeds (``ddof=0``, as MMSA reports)."""

    @property
    def modality_check(self) -> str | None:
        """``train.modality_check``: the run's one-line summary of the check's decisions."""
        return check_summary(self.seeds)

    def table(self, style: ReportStyle = "text", std: str = "sample") -> str:
        """The test metrics (mean ± ``std`` over seeds: ``sample`` or ``population``) as the
        paper prints them; the header says which std."""
        spread = self.std_population if std == "population" else self.std
        return metrics_table(run_label(self.config), self.mean, spread, style, kind=self.config.data.dataset,
                             std_kind=std, seeds=len(self.seeds))


def run_label(config: RunConfig) -> str:
    """A results row's name: the data it was measured on and the preset, e.g. ``aligned_50.pkl
    (preset mosi)`` or ``built-in synthetic (preset synthetic)``."""
    data = Path(config.data.path).name if config.data.path else f"built-in {config.data.dataset}"
    return f"{data} (preset {config.preset})"


def metrics_table(name: str, mean: Mapping[str, float], std: Mapping[str, float],
                  style: ReportStyle = "text", kind: str | None = None,
                  std_kind: str = "sample", names: MetricNames = "ours", seeds: int | None = None) -> str:
    """One-row table of the dataset's metrics (loss terms left out), with the paper's reported
    DecAlign row beside it when ``kind`` is one of its benchmarks. ``style``: ``text``,
    ``markdown``, ``latex`` or ``mmsa`` (MMSA's result CSV); the header names the ``std_kind``
    (``sample`` or ``population``) that ``std`` holds; ``names="mmsa"``: MMSA's metric names.
    ``seeds=1``: one seed has no spread, so the row shows plain values (no "± 0.00")."""
    from decalign.metrics.display import PAPER_RESULTS, format_mmsa, format_table
    from decalign.model.output import LOG_KEYS

    keys = [k for k in mean if k not in LOG_KEYS]
    rows: dict[str, Any] = {name: dict(mean) if seeds == 1 else {"mean": dict(mean), "std": dict(std)}}
    paper = PAPER_RESULTS.get(kind or "", {}).get("DecAlign")
    if paper:
        rows[f"paper ({kind}, DecAlign)"] = dict(paper)
    if style == "mmsa":
        return format_mmsa(rows, keys=keys)
    return format_table(rows, keys=keys, style=style, std=std_kind, names=names,
                        row_header="test, 1 seed" if seeds == 1 else "")


def resolve_config(
    dataset: MultimodalDataset,
    preset: str | None = None,
    overrides: Iterable[Override] | Mapping[str, Any] = (),
    path: str | os.PathLike[str] | None = None,
    encoder: str | os.PathLike[str] | None = None,
) -> RunConfig:
    """The preset for ``dataset`` (its kind unless ``preset`` names one), with ``overrides``.

    ``custom`` data gets :func:`decalign.config.presets.custom_preset` for its task.
    ``encoder``: a local text-encoder folder to fine-tune (``--encoder``); the preset's
    fine-tuning settings (:func:`~decalign.config.presets.finetune_changes`) go between the
    preset and ``overrides``.
    """
    name = preset or dataset.kind
    if name == "custom" or name not in PRESETS:
        if preset is not None and preset not in (*PRESETS, "custom"):
            get_preset(preset)  # raises with the list of presets
        base = custom_preset(dataset.task)
    else:
        base = get_preset(name)
    base = dataclasses.replace(
        base, data=dataclasses.replace(base.data, dataset=dataset.kind, path=None if path is None else os.fspath(path))
    )
    if encoder is not None:
        base = apply_overrides(base, finetune_changes(base.preset, os.fspath(encoder)))
    config = apply_overrides(base, overrides)
    task_loss = config.objective.task_loss
    if dataset.task == "classification" and task_loss != "ce":
        raise ConfigError(f"the data is a classification task but objective.task_loss={task_loss!r}; use 'ce'")
    if dataset.task == "regression" and task_loss == "ce":
        raise ConfigError("the data is a regression task but objective.task_loss='ce'; use 'mse' or 'l1'")
    return config


def data_config(
    path: str | os.PathLike[str] | None = None,
    kind: str | None = None,
    overrides: Iterable[Override] = (),
) -> DataConfig:
    """The data settings a run loads its data with, before the rest of its configuration is known:
    ``path`` (``None``: the built-in synthetic benchmark), ``kind`` (``None``: detected from the
    file, or ``synthetic`` without a file) and every override of a ``data`` setting in ``overrides``,
    in any form the config accepts (``data.split_seed``, ``split_seed``, ``synthetic.n_train``);
    the other overrides are left for :func:`resolve_config`."""
    kind = kind or ("auto" if path else "synthetic")
    base = RunConfig(data=DataConfig(dataset=kind, path=None if path is None else os.fspath(path)))  # type: ignore[arg-type]
    return apply_overrides(base, section_overrides(overrides, "data")).data


def load_and_resolve(
    path: str | os.PathLike[str] | None = None,
    kind: str | None = None,
    preset: str | None = None,
    overrides: Sequence[Override] = (),
    encoder: str | os.PathLike[str] | None = None,
) -> tuple[MultimodalDataset, RunConfig]:
    """The data at ``path`` (see :func:`data_config`) and its configuration: ``preset`` (default:
    the data's own) with ``overrides`` (and ``encoder``, see :func:`resolve_config`), the way
    ``decalign train``, ``bench`` and ``sweep`` resolve their flags. The data is built from the
    same overrides its ``config.json`` records."""
    data = data_config(path, kind, overrides)
    dataset = load_dataset(data.path, data)
    return dataset, resolve_config(dataset, preset, overrides, path=path, encoder=encoder)


@dataclass
class Prepared:
    """A dataset turned into what the engine consumes, plus what must be saved with the model."""

    splits: dict[str, SplitTensors]
    info: ModelInfo
    preprocess: dict[str, dict[str, np.ndarray]]
    metric_fn: Callable[[np.ndarray, np.ndarray], dict[str, float]]


def _metric_fn(info: ModelInfo) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    from decalign.metrics import metrics_for

    return metrics_for(info.kind, info.task, info.label_range, info.class_names)


def _check_compatible(dataset: MultimodalDataset, info: ModelInfo, where: str) -> None:
    trained_on = info.provenance
    if trained_on and dataset.provenance:
        from decalign.extract.provenance import check

        check(trained_on, dataset.provenance, where)
    missing = [m for m in info.modalities if m not in dataset.modalities]
    if missing:
        raise ValueError(
            f"{where}: the model was trained with modalities {list(info.modalities)}; the data lacks {missing}"
        )
    for m in info.modalities:
        found, expected = dataset.input_dims[m], info.input_dims[m]
        if found != expected:
            from decalign.extract.provenance import describe_modality

            found_from = describe_modality(dataset.provenance, m)
            raise ValueError(f"{where}: modality {m!r} has feature width {found}{found_from}, "
                             f"the model expects {expected}{describe_modality(trained_on, m)}")
    if dataset.task != info.task:
        raise ValueError(f"{where}: the data is a {dataset.task} task, the model was trained for {info.task}")


def prepare(
    config: RunConfig,
    dataset: MultimodalDataset,
    preprocess: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    info: ModelInfo | None = None,
    in_place: bool = False,
) -> Prepared:
    """Standardise (fitting on train unless ``preprocess`` gives saved statistics), convert to
    tensors, and pick the metrics.

    With ``in_place`` the dataset's arrays are standardised where they are (the caller owns
    them); otherwise a copy is made, which for MOSEI costs gigabytes.
    """
    from decalign.data.preprocess import FeatureStats, standardize
    from decalign.model.factory import ModelInfo
    from decalign.train.batches import SplitTensors

    saved_stats = None
    if preprocess:
        saved_stats = {m: FeatureStats(**{k: np.asarray(v) for k, v in s.items()}) for m, s in preprocess.items()}
    dataset, stats = standardize(dataset, config.data.standardize, saved_stats, in_place=in_place)
    info = info or ModelInfo.from_dataset(dataset)
    bert = config.model.text_encoder.kind == "bert"
    splits = {name: SplitTensors.from_split(sp, bert_text=bert) for name, sp in dataset.splits.items()}
    saved = {m: dict(s._asdict()) for m, s in stats.items()}
    return Prepared(splits, info, saved, _metric_fn(info))


def _pooled_report(seeds: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Classification: the test confusion matrix summed over seeds, with per-class scores."""
    reports = [seeds[s]["test_report"] for s in sorted(seeds) if "test_report" in seeds[s]]
    if not reports or len(reports) != len(seeds):
        return {}
    from decalign.metrics import report_from_confusion

    total = np.sum([np.asarray(r["confusion"]) for r in reports], axis=0)
    return {"test_report": {"seeds_pooled": len(reports), **report_from_confusion(total, reports[0]["class_names"])}}


def train(
    config: RunConfig,
    dataset: MultimodalDataset,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    ctx: Context | None = None,
    epoch_callback: Callable[[int, dict[str, float]], None] | None = None,
    tensorboard: bool = True,
    in_place: bool = False,
    progress: bool | None = True,
    std: str = "sample",
) -> RunResult:
    """Train ``config`` on ``dataset`` for every seed in ``config.train.seeds``, writing the run
    directory described in the module docstring, and return the test metrics over seeds.

    Before anything is written the data (:mod:`decalign.data.checks`) and the device are checked.
    The run directory is locked for the whole run (a second run on it is refused), ``--resume``
    on other data than the run's is refused (:func:`decalign.train.runguard.data_fingerprint`),
    ``overwrite`` replaces an existing run, and a run that fails before its first epoch was saved
    leaves nothing that blocks the next attempt (:func:`decalign.train.runguard.opened_run`).

    ``progress=True`` (the default) shows a progress bar in a terminal and in Jupyter
    (``tqdm.auto``) and one line per epoch (to stderr when logging is not set up to show it, as in
    a notebook or a script), so a long run is never silent; ``None`` (the command line's rule)
    shows bars only at a terminal; ``False`` nothing.

    On the CPU the run's first line says how many threads it uses and why
    (:func:`decalign.train.threads.choose_threads`: the cores this process may use less the load
    on them at start); ``results.json`` records it under ``run_info``.

    ``in_place`` lets preprocessing modify ``dataset``'s arrays instead of copying them. ``std``
    (``sample`` or ``population``) is the standard deviation the logged table shows; ``results.json``
    holds both (``std``, ``std_population``)."""
    from decalign.data.checks import check_nonempty, check_values
    from decalign.train.distributed import Context
    from decalign.train.rundir import RunDir
    from decalign.train.runguard import check_device, data_fingerprint

    check_nonempty(dataset)  # before the run directory exists: nothing to clean up
    check_values(dataset)
    check_device(config.train.device)
    fingerprint = data_fingerprint(dataset)
    ctx = ctx or Context.single()
    kwargs = {"resume": resume, "quiet": quiet, "ctx": ctx, "epoch_callback": epoch_callback,
              "tensorboard": tensorboard, "in_place": in_place, "progress": progress, "std": std,
              "fingerprint": fingerprint}
    run = RunDir(out_dir)
    if not ctx.is_main:
        return _train(config, dataset, run, **kwargs)
    with run.opened(resume=resume, overwrite=overwrite, inputs={"--data": config.data.path}):
        return _train(config, dataset, run, **kwargs)


def _train(
    config: RunConfig,
    dataset: MultimodalDataset,
    run: RunDir,
    *,
    resume: bool,
    quiet: bool,
    ctx: Context,
    epoch_callback: Callable[[int, dict[str, float]], None] | None,
    tensorboard: bool,
    in_place: bool,
    progress: bool | None,
    std: str,
    fingerprint: dict[str, Any],
) -> RunResult:
    from decalign.train.engine import fit_seed
    from decalign.train.rundir import results_payload

    out = run.path
    run_info = _choose_threads(config, ctx, progress, quiet)
    if ctx.world_size > 1:  # every process refuses alike (and exits cleanly) before rank 0 writes
        run.check(config, resume, fingerprint)
        ctx.barrier()
    if ctx.is_main:
        run.check(config, resume, fingerprint)  # on other data: refused, touching nothing
        description = describe_dataset(dataset)
        run.create(config, description, fingerprint)
        for note in dataset.notes:
            log.warning("data: %s", note)
    ctx.barrier()
    prepared = prepare(config, dataset, in_place=in_place)
    seeds: dict[int, dict[str, Any]] = {}
    histories: list[dict[str, Any]] = []
    for seed in config.train.seeds:
        seed_dir = run.seed(seed).directory
        done = run.read_seed_result(seed) if resume else None
        if done is not None:
            seeds[seed] = done
            histories.extend(run.read_history(seed))
            log.info("seed %d: already complete, skipped", seed)
            continue
        if ctx.is_main:
            seed_dir.mkdir(parents=True, exist_ok=True)
        log.info("seed %d: training %s on %s (%d train / %d valid / %d test)", seed, config.preset, dataset.kind,
                 *(len(prepared.splits[s]) for s in ("train", "valid", "test")))
        result = fit_seed(
            config, prepared.info, prepared.splits, seed, seed_dir, prepared.metric_fn,
            resume=resume, preprocess=prepared.preprocess, ctx=ctx, quiet=quiet, tensorboard=tensorboard,
            epoch_callback=epoch_callback, progress=progress, threads=run_info.get("threads", {}).get("threads"),
        )
        seeds[seed] = result.to_json()
        if prepared.info.task == "classification" and result.test_predictions is not None:
            from decalign.inference import class_report

            seeds[seed]["test_report"] = class_report(result.test_predictions, prepared.splits["test"].labels.numpy(),
                                                      prepared.info)
        histories.extend(result.history)
        if ctx.is_main:
            run.write_seed_result(seed, seeds[seed])
            run.write_results({**results_payload(config, dataset, seeds), **_pooled_report(seeds),
                               "run_info": run_info})
            run.write_history(histories)
    payload = {**results_payload(config, dataset, seeds), **_pooled_report(seeds), "run_info": run_info}
    if ctx.is_main:
        from decalign.train.model_card import write_model_card

        run.write_results(payload)
        run.write_history(histories)
        write_model_card(out, config, payload, description, fingerprint)
        if not quiet:
            spread = payload["std_population"] if std == "population" else payload["std"]
            log.info("test metrics of the best-validation epoch over %d seed%s:\n%s", len(seeds),
                     "" if len(seeds) == 1 else "s",
                     metrics_table(run_label(config), payload["mean"], spread, kind=dataset.kind, std_kind=std,
                                   seeds=len(seeds)))
            if check_summary(seeds):
                log.info("%s", check_summary(seeds))
    return RunResult(out, config, seeds, payload["mean"], payload["std"], payload["std_population"])


@dataclass
class CVResult:
    """A finished cross-validation (:func:`cross_validate`)."""

    out_dir: Path
    config: RunConfig
    summary: CrossValidation
    """Per-fold and pooled out-of-fold metrics (:func:`decalign.runs.read_cross_validation`)."""
    folds: list[Path]
    """The fold runs' directories, fold 1 first."""
    status: dict[int, str]
    """Fold -> ``trained``, ``resumed`` or ``skipped`` (already complete)."""

    @property
    def mean(self) -> dict[str, float]:
        """Pooled out-of-fold metrics, mean over seeds."""
        return dict(self.summary.mean)

    def table(self, style: TableStyle = "text") -> str:
        """The folds, their mean ± std over folds and the pooled out-of-fold row."""
        return self.summary.table(style)


def cross_validate(
    config: RunConfig,
    dataset: MultimodalDataset,
    out_dir: str | os.PathLike[str],
    folds: int = 5,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    tensorboard: bool = True,
    progress: bool | None = True,
    std: str = "sample",
) -> CVResult:
    """Cross-validation by video: train ``config`` on each of ``folds`` folds of ``dataset``'s
    train + valid splits (:func:`decalign.data.folds.fold_plan`; the test split is never read)
    and score every clip's out-of-fold prediction.

    Fold ``k`` is an ordinary run directory ``out_dir/fold_k`` (test: fold ``k``; valid, where the
    epoch is selected: fold ``k+1``; train: the rest) trained by :func:`train` over every seed of
    ``config.train.seeds``: checkpointed, resumable, readable by every command that reads runs.
    The directory's layout is :class:`decalign.train.rundir.CVDir`; it ends with ``cv.json`` and
    ``cv.csv`` (:func:`decalign.runs.read_cross_validation`), and ``decalign report`` reads it as
    one run whose test predictions are the out-of-fold ones.

    ``resume`` continues a cross-validation with the same settings, data and folds (complete folds
    are skipped, an interrupted one continues from its last epoch); ``overwrite`` replaces what
    ``out_dir`` holds. Other arguments as :func:`train`.

    Raises:
        DataError: fewer than 3 folds, sample ids without a video (``<video>$_$<clip>``), fewer
            videos than folds, splits that cannot be pooled; before anything is written.
        RunDirError: ``out_dir`` holds a run (without ``resume``/``overwrite``), or another
            cross-validation (with ``resume``).
    """
    from decalign.data.folds import fold_dataset, fold_plan
    from decalign.runs.crossval import read_cross_validation, write_cv_summary
    from decalign.train.rundir import CVDir
    from decalign.train.runguard import data_fingerprint

    plan = fold_plan(dataset, folds)
    layout = CVDir(out_dir)
    fingerprint = data_fingerprint(plan.pooled)
    plan_text = layout.plan_text(plan.rows())
    description = describe_dataset(dataset)
    description["splits"] = {"train+valid": {"n": len(plan.split), "videos": len(set(plan.videos.tolist()))}}
    description["cross_validation"] = {"folds": plan.k, "by": "video", "test_split": "not read"}
    status: dict[int, str] = {}
    with layout.opened(resume=resume, overwrite=overwrite, inputs={"--data": config.data.path}):
        layout.check(config, resume, fingerprint, plan_text)
        layout.create(config, description, fingerprint, plan_text)
        for f in range(plan.k):
            run = layout.fold(f + 1)
            started = resume and run.config_file.exists()
            if started and set(config.train.seeds) <= run.completed_seeds() and run.results_file.exists():
                status[f + 1] = "skipped"
                log.info("fold %d of %d: already complete, skipped", f + 1, plan.k)
                continue
            log.info("fold %d of %d: %s", f + 1, plan.k, "resuming" if started else "training")
            train(config, fold_dataset(dataset, plan, f), run.path, resume=started, quiet=quiet,
                  tensorboard=tensorboard, in_place=True, progress=progress, std=std)
            status[f + 1] = "resumed" if started else "trained"
        summary = read_cross_validation(layout.path)
        write_cv_summary(summary)
    if not quiet:
        log.info("cross-validation by video, %d folds (test fold k, valid fold k+1):\n%s", plan.k, summary.table())
    return CVResult(layout.path, config, summary, [layout.fold(f + 1).path for f in range(plan.k)], status)


def _choose_threads(config: RunConfig, ctx: Context, progress: bool | None, quiet: bool) -> dict[str, Any]:
    """On the CPU: choose the thread count once for the run, say it in the run's first line and
    return it for ``results.json`` (``{"threads": {...}}``); elsewhere ``{}``."""
    from decalign.train.devices import resolve_device
    from decalign.train.progress import announce
    from decalign.train.threads import choose_threads

    device = ctx.device if ctx.device is not None else resolve_device(config.train.device)
    if device.type != "cpu":
        return {}
    choice = choose_threads(config.train.num_threads)
    if ctx.is_main and not quiet:
        announce(choice.line(), progress)
    return {"threads": choice.to_json()}


def load_for_eval(
    checkpoint: str | os.PathLike[str] | LoadedCheckpoint,
    data: str | os.PathLike[str] | None = None,
    dataset: MultimodalDataset | None = None,
    *,
    trained_data: bool = False,
) -> tuple[LoadedCheckpoint, MultimodalDataset, Prepared]:
    """A checkpoint and data prepared for it with its own preprocessing statistics: what
    evaluation, prediction and a run's figures all start from.

    Args:
        checkpoint: a ``model.safetensors`` path or a loaded
            :class:`~decalign.train.checkpoint.LoadedCheckpoint`.
        data: a data file (its kind detected). Without it: the built-in dataset for a model trained
            on it, or with ``trained_data`` the data the model was trained on (its saved
            ``data`` settings: path, kind, options).
        dataset: an already loaded dataset instead of ``data`` (copied, never modified).

    Returns:
        ``(checkpoint, dataset, prepared)``.
    """
    from decalign.train.checkpoint import LoadedCheckpoint, load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    owned = dataset is None
    if dataset is None:
        if trained_data and data is None:
            data, data_cfg = ckpt.config.data.path, ckpt.config.data
        else:
            kind = "auto" if data is not None else ckpt.config.data.dataset
            data_cfg = dataclasses.replace(ckpt.config.data, dataset=kind)
            if data is None and ckpt.config.data.dataset != "synthetic":
                raise ValueError("--data is required: the checkpoint was not trained on the built-in dataset")
        try:
            dataset = load_dataset(data, data_cfg)
        except DataError as err:
            from decalign.inference import unlabelled_error

            raise unlabelled_error(data, err) from None
    _check_compatible(dataset, ckpt.info, str(data or "data"))
    prepared = prepare(ckpt.config, dataset, ckpt.preprocess, ckpt.info, in_place=owned)
    return ckpt, dataset, prepared


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    split: str = "test",
    dataset: MultimodalDataset | None = None,
    device: str = "auto",
    drop: Sequence[str] = (),
    *,
    percent: bool = False,
) -> dict[str, float]:
    """Metrics of a saved model on a split of a data file (the model's own preprocessing).

    ``drop`` names modalities to leave out, as missing at test time: the model treats them as
    inactive, the rule of its modality ablations.

    Units: like ``results.json``, :class:`RunResult` and every JSON file decalign writes,
    accuracies and F1 are fractions (0.8575) and MAE/Corr plain numbers; the tables (and the
    paper) print accuracies and F1 x 100. ``percent=True`` returns them x 100 as the tables
    show them (:func:`decalign.metrics.display.in_table_units`)."""
    metrics = evaluate_checkpoint_outputs(checkpoint, data, split, dataset, device, drop)[1].metrics
    if percent:
        from decalign.metrics.display import in_table_units

        return in_table_units(metrics)
    return metrics


def evaluate_checkpoint_outputs(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    split: str = "test",
    dataset: MultimodalDataset | None = None,
    device: str = "auto",
    drop: Sequence[str] = (),
) -> tuple[LoadedCheckpoint, EvalResult, np.ndarray]:
    """:func:`evaluate_checkpoint` with what reports need: the loaded checkpoint, the
    :class:`~decalign.train.loop.EvalResult` (predictions and metrics) and the labels."""
    from decalign.data.checks import check_nonempty
    from decalign.inference import drop_modalities
    from decalign.train.devices import resolve_device
    from decalign.train.distributed import Context
    from decalign.train.loop import evaluate

    ckpt, loaded, prepared = load_for_eval(checkpoint, data, dataset)
    if split not in prepared.splits:
        raise ValueError(f"unknown split {split!r}; the data has {sorted(prepared.splits)}")
    check_nonempty(loaded, [split], "evaluation")
    dev = resolve_device(device)
    ckpt.model.to(dev)
    tensors = drop_modalities(prepared.splits[split], drop, ckpt.model)
    result = evaluate(ckpt.model, tensors, ckpt.config, dev, Context.single(), prepared.metric_fn)
    return ckpt, result, tensors.labels.numpy()


def predict_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str] | None,
    out_csv: str | os.PathLike[str],
    splits: Sequence[str] | None = None,
    device: str = "auto",
    drop: Sequence[str] = (),
    overwrite: bool = False,
) -> Path:
    """Write one row per sample (``split,id,[label,]prediction`` or class probabilities); the
    data may be unlabelled and hold any splits (see :func:`decalign.inference.predict_to_csv`).
    An existing ``out_csv`` is refused unless ``overwrite``; the checkpoint or data, always."""
    from decalign.inference import predict_to_csv

    return Path(predict_to_csv(checkpoint, data, out_csv, splits, drop, device, overwrite=overwrite))
