"""The training protocol of docs/method.md §10 for one seed: build, resume, the epochs with
validation, model selection and early stopping, the best-epoch checkpoint, the final test.

One seed's run is :func:`fit_seed`. Its epochs (:func:`run_epoch`) call the loop's plain
functions (:mod:`decalign.train.loop`) around a small amount of state (:class:`SeedTraining`:
the model, the optimizer of :mod:`decalign.train.optim`, the scheduler, early stopping) that is
written to ``state.pt`` after every epoch, together with every RNG state, so ``--resume``
continues exactly where a killed run stopped. Multi-process (DDP) runs use the same functions
through :class:`decalign.train.distributed.Context`. What the modality options do per batch and
per validation is :mod:`decalign.train.modalities`; what the user sees is
:mod:`decalign.train.progress`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from decalign.config import RunConfig
from decalign.metrics import metric_mode
from decalign.model.base import MultimodalModel
from decalign.model.factory import ModelInfo, build_model
from decalign.train.averaging import WeightAverage
from decalign.train.batches import SplitTensors
from decalign.train.checkpoint import (
    load_training_state,
    load_weights,
    save_checkpoint,
    save_training_state,
)
from decalign.train.devices import resolve_device
from decalign.train.distributed import Context
from decalign.train.history import LEADING_COLUMNS, write_history, write_predictions
from decalign.train.loop import EarlyStopping, EvalResult, MetricFn, evaluate, probe_loss, train_epoch
from decalign.train.modalities import apply_decision, check_validation, use_selected, with_modalities
from decalign.train.modality_check import CheckState
from decalign.train.optim import make_optimizer
from decalign.train.progress import report_epoch, show_bars, tensorboard_writer
from decalign.train.rundir import SeedFiles
from decalign.train.seeding import capture_rng, restore_rng, seed_everything
from decalign.train.threads import cpu_threads

__all__ = [
    "EpochEnd",
    "SeedResult",
    "SeedTraining",
    "build_training",
    "fit_seed",
    "resume_training",
    "run_epoch",
]

log = logging.getLogger("decalign")


@dataclass
class SeedResult:
    seed: int
    best_epoch: int
    epochs_run: int
    valid: dict[str, float]
    test: dict[str, float]
    time_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    test_predictions: np.ndarray | None = None
    """``[N]`` outputs or ``[N, C]`` logits of the selected model on the test split (not in JSON)."""
    modalities_left_out: list[str] | None = None
    """With ``train.modality_check``: the modalities the check left out (possibly none)."""
    left_out_epochs: dict[str, int] = field(default_factory=dict)
    """The epoch after whose validation the check left out each of ``modalities_left_out``."""
    check_decisions: list[dict[str, Any]] = field(default_factory=list)
    """With ``train.modality_check``: every decision (leave out, take back) with its evidence."""

    def to_json(self) -> dict[str, Any]:
        out = {"seed": self.seed, "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
               "valid": self.valid, "test": self.test, "time_s": self.time_s}
        if self.modalities_left_out is not None:
            out["modalities_left_out"] = self.modalities_left_out
            out["left_out_epochs"] = self.left_out_epochs
            out["modality_check"] = self.check_decisions
        return out


@dataclass
class SeedTraining:
    """What one seed's loop carries from epoch to epoch; :meth:`state_dict` is ``state.pt``."""

    model: MultimodalModel
    """The model itself (checkpoints, best weights, the ``active`` modalities)."""
    train_model: nn.Module
    """What the loop calls: ``model`` wrapped for data parallelism and/or compiled."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    stopper: EarlyStopping
    generator: torch.Generator
    """Shuffles the training split."""
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 1
    elapsed: float = 0.0
    best_state: dict[str, Tensor] | None = None
    """CPU copy of the best epoch's weights."""
    built_active: tuple[str, ...] = ()
    """The modalities the model was built with (``train.modality_check`` may leave some out)."""
    best_kept: tuple[str, ...] = ()
    """The modalities the best epoch's model uses."""
    average: WeightAverage | None = None
    """``train.ema_decay``: the averaged weights, which are validated, selected and saved."""
    left_out_epochs: dict[str, int] = field(default_factory=dict)
    """``train.modality_check``: the epoch at which each modality was left out for good."""
    check: CheckState = field(default_factory=CheckState)
    """``train.modality_check``: streaks and decisions so far."""
    seed: int = 0

    def evaluated_weights(self) -> AbstractContextManager[None]:
        """Inside the block ``model`` holds the weights that are validated and saved: the
        average with ``train.ema_decay``, else its own."""
        return self.average.applied() if self.average is not None else nullcontext()

    def state_dict(self, epoch: int, rng: list[Any]) -> dict[str, Any]:
        return {
            "epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "early_stopping": self.stopper.state_dict(),
            "rng": rng[0], "history": self.history, "elapsed": self.elapsed, "best_kept": list(self.best_kept),
            "active": list(self.model.active), "left_out_epochs": dict(self.left_out_epochs),
            "modality_check": self.check.state_dict(),
            **({"weight_average": self.average.state_dict()} if self.average is not None else {}),
            **({"rng_per_process": rng} if len(rng) > 1 else {}),
        }


@dataclass
class EpochEnd:
    """What an epoch produced, handed to the per-epoch handlers."""

    epoch: int
    train: dict[str, float]
    valid: dict[str, float]
    lr: float
    seconds: float
    improved: bool
    kept: tuple[str, ...] = ()
    """The modalities the epoch's validated model uses (``train.modality_check``)."""
    evidence: dict[str, float] = field(default_factory=dict)
    """``train.modality_check``: the validation's ``check_*`` columns (history's valid row)."""


def build_training(
    config: RunConfig, info: ModelInfo, train_split: SplitTensors, seed: int, device: torch.device, ctx: Context
) -> SeedTraining:
    """Seed everything, build the model, wrap it (data parallel, compile), and create the
    optimizer, scheduler, early stopping and shuffling generator, in the order that fixes the
    random numbers of a seed."""
    tc = config.train
    seed_everything(seed)
    model = build_model(config, info).to(device)
    # With modality dropout (or a modality the check leaves out) some batches leave parameters
    # without gradients, which the probe (run on full batches) cannot see: data-parallel training
    # must look for unused ones always.
    probe = None if tc.modality_dropout > 0 or tc.modality_check else (
        lambda m: probe_loss(m, train_split, config, device))
    train_model = ctx.wrap(model, gather_alignment=tc.gather_alignment, probe=probe)
    ctx.seed_process(seed)  # after the identical initialisation: each process its own dropout masks
    if tc.compile:
        from decalign.model.compile import maybe_compile

        train_model = maybe_compile(train_model, True)
    batches = -(-len(train_split) // tc.batch_size)
    optimizer = make_optimizer(model, config, steps_per_epoch=-(-batches // tc.grad_accumulation))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=metric_mode(tc.scheduler_metric_name),
        factor=tc.scheduler_factor,
        patience=tc.scheduler_patience,
    )
    stopper = EarlyStopping(mode=metric_mode(tc.selection_metric), patience=tc.early_stop_patience)
    average = WeightAverage(model, tc.ema_decay) if tc.ema_decay > 0 else None
    return SeedTraining(model, train_model, optimizer, scheduler, stopper, torch.Generator().manual_seed(seed),
                        built_active=model.active, best_kept=model.active, average=average, seed=seed)


def resume_training(run: SeedTraining, files: SeedFiles, seed: int, ctx: Context) -> None:
    """Continue from ``state.pt``: weights, optimizer, scheduler, early stopping, history and,
    last of all, every random-number stream."""
    state = load_training_state(files.state)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.stopper.load_state_dict(state["early_stopping"])
    if run.average is not None:
        if "weight_average" not in state:
            raise ValueError(f"{files.state}: saved without train.ema_decay, so it cannot be resumed with it")
        run.average.load_state_dict(state["weight_average"])
    run.history = list(state["history"])
    run.start_epoch = int(state["epoch"]) + 1
    run.elapsed = float(state["elapsed"])
    if run.stopper.best_epoch:
        run.best_state = load_weights(files.model)
        run.best_kept = tuple(state.get("best_kept", run.best_kept))
    run.model.active = tuple(state.get("active", run.model.active))
    run.left_out_epochs = {str(m): int(e) for m, e in state.get("left_out_epochs", {}).items()}
    run.check = CheckState.from_state(state.get("modality_check"))
    per_process = state.get("rng_per_process")
    if per_process is not None and len(per_process) == ctx.world_size:
        restore_rng(per_process[ctx.rank], run.generator)  # last: nothing may draw random numbers after it
    else:  # same data order; a different number of processes cannot replay the dropout masks
        restore_rng(state["rng"], run.generator)
        ctx.seed_process(seed + run.start_epoch)
    log.info("seed %d: resumed after epoch %d (best so far: epoch %d)", seed, run.start_epoch - 1,
             run.stopper.best_epoch)


def _restart(run: SeedTraining, config: RunConfig, info: ModelInfo, train_split: SplitTensors, seed: int,
             device: torch.device, ctx: Context) -> SeedTraining:
    """The seed from its first epoch again, with the same random numbers, carrying the modality
    check's state (whose ``taken_back`` now protects the modality it had provisionally left out)
    and the time spent; the history starts again with it."""
    check, elapsed = run.check, run.elapsed
    check.restart = False
    fresh = build_training(config, info, train_split, seed, device, ctx)
    fresh.check, fresh.elapsed = check, elapsed
    return fresh


def run_epoch(
    run: SeedTraining,
    epoch: int,
    config: RunConfig,
    splits: dict[str, SplitTensors],
    device: torch.device,
    ctx: Context,
    metric_fn: MetricFn,
    progress: bool,
    description: str,
) -> EpochEnd:
    """Train one epoch, validate, step the scheduler and early stopping, keep the best weights
    and append the epoch's rows to the history."""
    tc = config.train
    t0 = time.perf_counter()
    train_stats = train_epoch(run.train_model, splits["train"], config, run.optimizer, run.generator, device, ctx,
                              metric_fn, progress, description, run.average)
    with run.evaluated_weights():
        result = evaluate(run.train_model, splits["valid"], config, device, ctx, metric_fn)
        valid = result.metrics
        if tc.selection_metric not in valid:
            raise KeyError(f"train.selection_metric={tc.selection_metric!r} is not a validation metric of this "
                           f"dataset; choose one of {sorted(valid)}")
        kept = run.model.active
        evidence: dict[str, float] = {}
        if tc.modality_check:  # select (and schedule) on the model as it will be used

            def evaluation() -> tuple[np.ndarray, dict[str, float]]:
                trial = evaluate(run.train_model, splits["valid"], config, device, ctx, metric_fn)
                return trial.predictions, trial.metrics

            outcome = check_validation(run.train_model, evaluation, result.predictions, result.metrics,
                                       splits["valid"].labels.numpy(), config, run.built_active, run.check, epoch,
                                       run.seed)
            kept, valid, evidence = outcome.kept, outcome.metrics, outcome.evidence
            apply_decision(outcome, run.model, run.left_out_epochs, epoch, description)  # for the rest of training
        run.scheduler.step(valid[tc.scheduler_metric_name])
        improved = run.stopper.update(valid[tc.selection_metric], epoch)
        if improved:
            run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
            run.best_kept = kept
    seconds = time.perf_counter() - t0
    run.elapsed += seconds
    lr = run.optimizer.param_groups[0]["lr"]
    return EpochEnd(epoch, train_stats, valid, lr, seconds, improved, kept, evidence)


def fit_seed(
    config: RunConfig,
    info: ModelInfo,
    splits: dict[str, SplitTensors],
    seed: int,
    seed_dir: Path,
    metric_fn: MetricFn,
    *,
    resume: bool = False,
    preprocess: dict[str, dict[str, np.ndarray]] | None = None,
    ctx: Context | None = None,
    quiet: bool = False,
    tensorboard: bool = True,
    epoch_callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> SeedResult:
    """Train one seed, select the best validation epoch, and test it.

    Files in ``seed_dir`` (written by the main process only, see
    :class:`~decalign.train.rundir.SeedFiles`): ``model.safetensors`` (best epoch), ``state.pt``
    (resumable state after the last completed epoch), ``history.csv``, ``test_predictions.csv``
    and TensorBoard events.

    ``epoch_callback(epoch, valid_metrics)`` runs after each epoch (sweeps use it for pruning;
    it may raise to stop the run).

    ``progress``: ``None`` shows batch bars only at a terminal (the CLI's rule); ``True`` also in
    Jupyter and always one line per epoch (stderr when logging does not show it); ``False`` no bars.

    ``threads``: the CPU threads the run chose (:func:`decalign.train.threads.choose_threads`, said
    once in the run's first line); ``None`` chooses here.
    """
    ctx = ctx or Context.single()
    tc = config.train
    device = ctx.device if ctx.device is not None else resolve_device(tc.device)
    if device.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    elif device.type == "cpu":
        threads, why = cpu_threads(tc.num_threads)
        torch.set_num_threads(threads)
        log.info("seed %d: %s", seed, why)
    files = SeedFiles(seed_dir)
    run = build_training(config, info, splits["train"], seed, device, ctx)
    if resume and files.state.exists():
        resume_training(run, files, seed, ctx)
    bars = show_bars(quiet, progress)
    epochs_run = run.start_epoch - 1
    with tensorboard_writer(files.tensorboard, tensorboard and ctx.is_main) as tb:
        handlers = [
            lambda end: _record(run, end, seed),
            lambda end: _save_epoch(run, end, seed, config, info, preprocess, files, ctx),
            lambda end: _report_epoch(end, tb, tc.num_epochs, quiet, ctx, progress),
            lambda end: ctx.barrier(),
        ]
        if epoch_callback is not None:
            handlers.append(lambda end: epoch_callback(end.epoch, end.valid))
        while True:
            if run.check.restart:  # a provisional decision of the modality check was contradicted
                run = _restart(run, config, info, splits["train"], seed, device, ctx)
            for epoch in range(run.start_epoch, tc.num_epochs + 1):
                if run.stopper.should_stop:
                    break
                epochs_run = epoch
                end = run_epoch(run, epoch, config, splits, device, ctx, metric_fn, bars,
                                f"seed {seed} epoch {epoch}/{tc.num_epochs}")
                for handler in handlers:  # they read ``run`` when called: the restarted one after a restart
                    handler(end)
                if run.check.restart:
                    break
            if not run.check.restart:
                break
        test, valid_best, left_out = _test_best(run, config, splits["test"], device, ctx, metric_fn, seed)
        left_out_epochs = {m: run.left_out_epochs[m] for m in left_out or () if m in run.left_out_epochs}
        if ctx.is_main:
            write_history(files.history, run.history)
            write_predictions(files.predictions, splits["test"].ids, splits["test"].labels.numpy(), test.predictions,
                              info.class_names)
            if tb is not None:
                for k, v in test.metrics.items():
                    tb.add_scalar(f"test/{k}", v, run.stopper.best_epoch)
    return SeedResult(seed, run.stopper.best_epoch, epochs_run, valid_best, test.metrics, run.elapsed, run.history,
                      test.predictions, left_out, left_out_epochs, list(run.check.decisions))


def _record(run: SeedTraining, end: EpochEnd, seed: int) -> None:
    """Handler: the epoch's train and valid rows into the history."""
    for split, stats in (("train", end.train), ("valid", {**end.valid, **end.evidence})):
        run.history.append({"seed": seed, "epoch": end.epoch, "split": split, "lr": end.lr, "time_s": end.seconds,
                            **stats})


def _save_epoch(run: SeedTraining, end: EpochEnd, seed: int, config: RunConfig, info: ModelInfo,
                preprocess: dict[str, dict[str, np.ndarray]] | None, files: SeedFiles, ctx: Context) -> None:
    """Handler: the best checkpoint (when improved), ``state.pt`` and ``history.csv``."""
    rng = ctx.gather_objects(capture_rng(run.generator))  # every process's streams, in rank order
    if ctx.is_main:
        if end.improved:
            with run.evaluated_weights():
                save_checkpoint(files.model, run.model, with_modalities(config, end.kept, run.built_active), info,
                                preprocess, {"seed": seed, "epoch": end.epoch})
        save_training_state(files.state, run.state_dict(end.epoch, rng))
        write_history(files.history, run.history)


def _report_epoch(end: EpochEnd, tb: Any, num_epochs: int, quiet: bool, ctx: Context,
                  progress: bool | None) -> None:
    """Handler: TensorBoard scalars and the epoch's log line (main process)."""
    if ctx.is_main:
        report_epoch(tb, end.epoch, num_epochs, end.train, end.valid, end.lr, end.seconds, quiet=quiet,
                     progress=progress)


def _test_best(run: SeedTraining, config: RunConfig, test_split: SplitTensors, device: torch.device, ctx: Context,
               metric_fn: MetricFn, seed: int) -> tuple[EvalResult, dict[str, float], list[str] | None]:
    """Restore the best epoch's weights, test them, add the test row to the history; returns the
    test result, the best epoch's validation metrics and, with ``train.modality_check``, the
    modalities the check left out."""
    if run.best_state is None:
        raise RuntimeError(f"seed {seed}: no epoch was completed (train.num_epochs={config.train.num_epochs})")
    run.model.load_state_dict(run.best_state)
    left_out: list[str] | None = None
    if config.train.modality_check:  # test the selected epoch's model as the check left it
        left_out = use_selected(run.model, run.built_active, run.best_kept, run.check, seed)
    test = evaluate(run.train_model, test_split, config, device, ctx, metric_fn)
    best = run.stopper.best_epoch
    valid_best = next((row for row in run.history if row["epoch"] == best and row["split"] == "valid"), {})
    run.history.append({"seed": seed, "epoch": best, "split": "test", "lr": math.nan, "time_s": 0.0, **test.metrics})
    valid_best = {k: v for k, v in valid_best.items() if k not in LEADING_COLUMNS and not k.startswith("check_")}
    return test, valid_best, left_out
