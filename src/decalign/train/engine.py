"""The training protocol of docs/method.md §10 for one seed: epochs, evaluation, model selection,
early stopping, best-epoch checkpoint, final test, and exact resume.

One seed's run is :func:`fit_seed`. Its loop is plain functions (:func:`train_epoch`,
:func:`evaluate`) around a small amount of state (:class:`EarlyStopping`, the optimizer and the
scheduler) that is written to ``state.pt`` after every epoch, together with every RNG state, so
``--resume`` continues exactly where a killed run stopped. Multi-process (DDP) runs use the same
functions through :class:`decalign.train.distributed.Context`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from decalign.config import RunConfig
from decalign.data.detect import METRIC_FAMILIES
from decalign.losses import objective, task_loss
from decalign.metrics import metric_mode
from decalign.model.factory import ModelInfo, build_model
from decalign.model.output import LOG_KEYS, MODEL_LOSSES
from decalign.train.averaging import WeightAverage
from decalign.train.batches import SplitTensors, batch_indices
from decalign.train.checkpoint import (
    load_training_state,
    load_weights,
    save_checkpoint,
    save_training_state,
)
from decalign.train.devices import resolve_device  # re-exported: its former home
from decalign.train.distributed import Context
from decalign.train.history import LEADING_COLUMNS, write_history, write_predictions
from decalign.train.modality_check import CheckOutcome, CheckState, check_modalities, describe
from decalign.train.rundir import SeedFiles
from decalign.train.seeding import capture_rng, restore_rng, seed_everything
from decalign.train.threads import available_cores, cpu_threads  # noqa: F401 - re-exported: their former home

__all__ = [
    "EarlyStopping",
    "EpochEnd",
    "EvalResult",
    "SeedResult",
    "SeedTraining",
    "build_training",
    "drop_modality",
    "evaluate",
    "fit_seed",
    "lr_factor",
    "make_optimizer",
    "optimizer_step",
    "resolve_device",
    "resume_training",
    "run_epoch",
    "train_epoch",
]

log = logging.getLogger("decalign")

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person at a terminal: not in CI logs, pipes or quiet mode."""
    return not quiet and sys.stderr.isatty() and not os.environ.get("CI")


@dataclass
class EarlyStopping:
    """Model selection on one validation metric with patience (docs/method.md §10)."""

    mode: str
    patience: int
    best: float = math.nan
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's value; True when it is a new best."""
        better = math.isnan(self.best) or (value < self.best if self.mode == "min" else value > self.best)
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])


@dataclass
class EvalResult:
    predictions: np.ndarray
    """``[N]`` regression outputs or ``[N, C]`` logits, in split order."""
    metrics: dict[str, float]
    """The dataset's metrics plus ``loss`` (the task loss over the split) and every loss term."""


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


def make_optimizer(model: nn.Module, config: RunConfig, steps_per_epoch: int = 1) -> torch.optim.Optimizer:
    """Adam with coupled L2 weight decay; BERT parameters (if any) get ``train.bert_lr``, and
    their warm-up and decay (``steps_per_epoch``: optimizer steps in one epoch) ride in their
    group for :func:`optimizer_step`."""
    tc = config.train
    bert, other = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (bert if name.startswith("text_encoder.") else other).append(p)
    groups: list[dict[str, Any]] = [{"params": other, "lr": tc.lr}]
    if bert:
        group: dict[str, Any] = {"params": bert, "lr": tc.bert_lr or tc.lr}
        if tc.bert_warmup_steps:
            # Kept in the group so that it is saved with the optimizer state and resumes exactly.
            group.update(warmup_steps=tc.bert_warmup_steps, warmup_done=0)
        if tc.bert_decay == "linear":
            group.update(decay_steps=tc.num_epochs * steps_per_epoch, decay_done=0)
        groups.append(group)
    try:
        # One fused kernel for all parameters (same update rule): about 4x cheaper than the
        # per-tensor path on CPU for DecAlign's ~200 small tensors.
        return torch.optim.Adam(groups, lr=tc.lr, weight_decay=tc.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without the kernel
        return torch.optim.Adam(groups, lr=tc.lr, weight_decay=tc.weight_decay)


def lr_factor(step: int, warmup: float = 0.0, decay: int = 0) -> float:
    r"""Multiplier of a learning rate at optimizer step ``step`` (0-based):
    :math:`\min(1, (s + 1) / W) \cdot \max(0, (S - s) / S)` with :math:`W` = ``warmup`` and
    :math:`S` = ``decay`` steps, each factor only when its count is positive: a linear warm-up,
    then a linear decay that reaches 0 at step :math:`S`."""
    factor = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return factor * max(0.0, (decay - step) / decay) if decay > 0 else factor


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` with the linear warm-up and decay of groups that have them.

    At a group's step ``s`` its learning rate is ``lr * lr_factor(s, warmup_steps, decay_steps)``
    for this step only; ``lr`` itself is put back afterwards, so ReduceLROnPlateau (which
    rescales ``lr`` between epochs) and the schedule compose instead of overwriting each other.
    The step counters live in the group, so they are saved with the optimizer and resume exactly.
    """
    saved: list[tuple[dict[str, Any], float]] = []
    for group in optimizer.param_groups:
        factor = 1.0
        total, done = int(group.get("warmup_steps", 0)), int(group.get("warmup_done", 0))
        if done < total:
            factor *= lr_factor(done, warmup=total)
            group["warmup_done"] = done + 1
        if "decay_steps" in group:
            done = int(group["decay_done"])
            factor *= lr_factor(done, decay=int(group["decay_steps"]))
            group["decay_done"] = done + 1
        if factor != 1.0:
            saved.append((group, group["lr"]))
            group["lr"] = group["lr"] * factor
    optimizer.step()
    for group, lr in saved:
        group["lr"] = lr


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


_NONFINITE_HINT = "Lower train.lr or check the data for extreme values (decalign info)"


def _check_finite(loss: Tensor, terms: dict[str, Tensor]) -> None:
    if not torch.isfinite(loss):
        shown = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
        raise FloatingPointError(
            f"non-finite training loss ({float(loss.detach())}); terms: {shown}. {_NONFINITE_HINT}"
        )


def train_epoch(
    model: nn.Module,
    data: SplitTensors,
    config: RunConfig,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
    ctx: Context,
    metric_fn: MetricFn,
    progress: bool,
    description: str = "train",
    average: WeightAverage | None = None,
) -> dict[str, float]:
    """One pass over the shuffled training split; returns mean loss terms and the metrics of the
    training predictions (made with dropout on, as they were trained).

    With ``train.grad_accumulation = a`` the gradients of ``a`` consecutive batches, each weighted
    by its share of their samples, are summed before one optimizer step: for per-sample losses
    that is the gradient of one batch ``a`` times as large. DecAlign's alignment losses are batch
    statistics (GMM, OT, moments, MMD, contrastive) and are still computed per batch.

    ``average`` (``train.ema_decay``) is updated after every optimizer step."""
    model.train()
    tc = config.train
    batches = batch_indices(len(data), tc.batch_size, shuffle=True, generator=generator)
    # Loss terms accumulate on the device: a float() per term per step would make CUDA wait.
    totals = torch.zeros(len(LOG_KEYS), dtype=torch.float64, device=device)
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    preds, labels = [], []
    seen = 0
    bar = None
    if progress and ctx.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(batches), desc=description, leave=False, dynamic_ncols=True)
    params = [p for p in model.parameters() if p.requires_grad]
    positions: list[Tensor] = []
    accumulate = tc.grad_accumulation
    for position, global_index in enumerate(batches):
        first = position - position % accumulate
        last_of_group = position % accumulate == accumulate - 1 or position == len(batches) - 1
        index = ctx.shard(global_index)
        n = len(index)
        if n == 0:
            # More processes than samples in this (last) batch: a stand-in sample with weight 0
            # keeps this process in DDP's gradient all-reduce and the feature gather (which drops it).
            index = global_index[:1]
        batch = data.batch(index, device)
        features = batch.features
        if tc.modality_dropout > 0:
            features = drop_modality(features, _unwrap(model).active, tc.modality_dropout, generator)
        with _autocast(device, tc.amp):
            output = model(features, batch.lengths)
        loss, terms = objective(output, batch.labels, config.objective, gather=ctx.feature_gather)
        if device.type == "cpu":
            _check_finite(loss, terms)  # at once: free on the CPU, and names the failing terms
        else:
            nonfinite |= ~torch.isfinite(loss)
        scale = ctx.loss_scale(n, len(global_index))
        if accumulate > 1:
            scale = scale * len(global_index) / sum(len(b) for b in batches[first:first + accumulate])
        if position == first:
            optimizer.zero_grad(set_to_none=True)
        (loss * scale).backward()
        if last_of_group:
            if tc.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            optimizer_step(optimizer)
            if average is not None:
                average.update()
        seen += n
        totals += torch.stack([terms[k] for k in LOG_KEYS]).to(totals.dtype) * n
        if n:
            preds.append(output.prediction.detach().float().cpu()[:n])
            labels.append(batch.labels.cpu()[:n])
            positions.append(index[:n])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(totals[0]) / max(seen, 1):.4f}")
    if bar is not None:
        bar.close()
    sums = dict(zip(LOG_KEYS, totals.tolist()))
    if bool(nonfinite):  # off the CPU the check waits for the epoch's end (no sync per step)
        bad = [f"{k}={v:.4g}" for k, v in sums.items() if not math.isfinite(v)]
        shown = ", ".join(bad) or "none (their sum overflowed)"
        raise FloatingPointError(
            f"non-finite training loss in this epoch; non-finite terms: {shown}. {_NONFINITE_HINT}"
        )
    if ctx.world_size == 1:
        stats = {k: v / max(seen, 1) for k, v in sums.items()}
        prediction, label = torch.cat(preds), torch.cat(labels)
    else:  # sums over every process's samples; metrics of all training predictions
        totals = ctx.sum_dict({**sums, "_samples": float(seen)})
        samples = totals.pop("_samples")
        stats = {k: totals[k] / max(samples, 1.0) for k in sums}
        local = torch.cat(preds) if preds else torch.empty(0)
        pos = torch.cat(positions) if positions else torch.empty(0, dtype=torch.long)
        prediction, label = ctx.gather_predictions(local, pos, len(data)), data.labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate early-epoch predictions are not news here
        stats.update(metric_fn(prediction.numpy(), label.numpy()))
    return stats


def drop_modality(features: dict[str, Tensor], active: tuple[str, ...] | None, p: float,
                  generator: torch.Generator) -> dict[str, Tensor]:
    """Modality dropout (``train.modality_dropout``): with probability ``p`` the batch loses one
    of its active modalities, chosen uniformly; the model treats it as missing.

    Draws from the data-order generator, so the choice is part of the resumable state and the
    same on every process of a data-parallel run (which keeps their graphs alike).
    """
    names = [m for m in features if active is None or m in active]
    if len(names) < 2:
        return features
    if float(torch.rand((), generator=generator)) >= p:
        return features
    out = names[int(torch.randint(len(names), (), generator=generator))]
    return {m: x for m, x in features.items() if m != out}


def _unwrap(model: nn.Module) -> nn.Module:
    module = getattr(model, "module", model)  # DDP
    return getattr(module, "_orig_mod", module)  # torch.compile


def _check(run: SeedTraining, result: EvalResult, data: SplitTensors, config: RunConfig, device: torch.device,
           ctx: Context, metric_fn: MetricFn, epoch: int, seed: int) -> CheckOutcome:
    """``train.modality_check`` at this validation (:mod:`decalign.train.modality_check`): the
    model is evaluated with other active sets through its ``active`` attribute, which is put back."""
    inner = _unwrap(run.train_model)
    original = inner.active

    def evaluate_with(modalities: tuple[str, ...]) -> tuple[np.ndarray, dict[str, float]]:
        inner.active = modalities
        try:
            trial = evaluate(run.train_model, data, config, device, ctx, metric_fn)
        finally:
            inner.active = original
        return trial.predictions, trial.metrics

    tc = config.train
    width = result.predictions.shape[1] if result.predictions.ndim == 2 else None
    # Its own stream, from (seed, epoch): the check draws nothing from the training's generators,
    # so runs with and without it see the same data order, and a resumed run the same resamples.
    rng = np.random.default_rng([seed, epoch])
    return check_modalities(evaluate_with, original, run.built_active, result.predictions, result.metrics,
                            data.labels.numpy(), config.objective.task_loss, width, run.check,
                            level=tc.modality_check_level, agree=tc.modality_check_agree, epoch=epoch, rng=rng)


@torch.no_grad()
def predict_split(model: nn.Module, data: SplitTensors, batch_size: int, device: torch.device, ctx: Context,
                  amp: bool = False) -> tuple[np.ndarray, dict[str, float]]:
    """Eval-mode outputs for a whole split in order, and the mean auxiliary loss terms.

    The alignment losses are batch statistics, so they are computed on evaluation batches of the
    training batch size, as released.
    """
    model.eval()
    outs: list[Tensor] = []
    positions: list[Tensor] = []
    sums = dict.fromkeys(MODEL_LOSSES, 0.0)
    for global_index in batch_indices(len(data), batch_size, shuffle=False):
        index = ctx.shard_eval(global_index)
        if len(index) == 0:
            continue
        batch = data.batch(index, device)
        with _autocast(device, amp):
            output = model(batch.features, batch.lengths)
        outs.append(output.prediction.float().cpu())
        positions.append(index)
        for k in sums:
            sums[k] += float(output.losses[k]) * len(index)
    local = torch.cat(outs) if outs else torch.empty(0)
    pos = torch.cat(positions) if positions else torch.empty(0, dtype=torch.long)
    prediction = ctx.gather_predictions(local, pos, len(data))
    terms = ctx.sum_dict(sums)
    return prediction.numpy(), {k: v / max(len(data), 1) for k, v in terms.items()}


def evaluate(model: nn.Module, data: SplitTensors, config: RunConfig, device: torch.device, ctx: Context,
             metric_fn: MetricFn) -> EvalResult:
    """Predictions, the dataset's metrics, the task loss over the whole split and the mean
    auxiliary losses."""
    batch_size = config.train.eval_batch_size or config.train.batch_size
    prediction, terms = predict_split(model, data, batch_size, device, ctx, config.train.amp)
    labels = data.labels.numpy()
    metrics = dict(metric_fn(prediction, labels))
    metrics["loss"] = float(task_loss(torch.from_numpy(prediction), data.labels, config.objective.task_loss))
    metrics.update(terms)
    return EvalResult(prediction, metrics)


def _log_epoch(epoch: int, total: int, train: dict[str, float], valid: dict[str, float], lr: float,
               seconds: float, keys: list[str], progress: bool | None = None) -> None:
    """One line per epoch: to the ``decalign`` log where it is shown (the CLI, an application
    that configured logging), else, with ``progress=True`` (Python, Jupyter), to stderr through
    ``tqdm.write`` so that it does not tear a progress bar."""
    from decalign.metrics.display import format_value

    shown = " ".join(f"{k} {format_value(k, valid[k])}" for k in keys if k in valid)
    line = (f"epoch {epoch}/{total}  train loss {train['loss']:.4f}  |  valid loss {valid['loss']:.4f} {shown}  |  "
            f"lr {lr:.2e}  {seconds:.1f}s")
    announce(line, progress)


def announce(line: str, progress: bool | None) -> None:
    """A progress line: to the ``decalign`` log where it is shown (the CLI, an application that
    configured logging), else, with ``progress`` (Python, Jupyter), to stderr through
    ``tqdm.write`` so that it does not tear a progress bar."""
    if log.isEnabledFor(logging.INFO) and log.hasHandlers():
        log.info("%s", line)
    elif progress:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)


def interactive() -> bool:
    """A person is watching: a terminal, or a Jupyter kernel (where ``tqdm.auto`` draws a widget)."""
    if sys.stderr.isatty():
        return True
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


def _probe_loss(model: nn.Module, data: SplitTensors, config: RunConfig, device: torch.device) -> Tensor:
    """The training loss on the first few samples: shows a data-parallel context which parameters
    receive gradients at all."""
    batch = data.batch(torch.arange(min(len(data), 4)), device)
    return objective(model(batch.features, batch.lengths), batch.labels, config.objective)[0]


@contextmanager
def _tensorboard(directory: Path, enabled: bool) -> Iterator[Any]:
    writer = None
    if enabled:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(directory))
        except ImportError as err:  # the core install has no tensorboard: not worth a warning on every run
            log.debug("TensorBoard event files are not written: %s (pip install 'decalign[tb]' to write them)", err)
    try:
        yield writer
    finally:
        if writer is not None:
            writer.close()


@dataclass
class SeedTraining:
    """What one seed's loop carries from epoch to epoch; :meth:`state_dict` is ``state.pt``."""

    model: nn.Module
    """The model itself (checkpoints, best weights)."""
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
        lambda m: _probe_loss(m, train_split, config, device))
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
            outcome = _check(run, result, splits["valid"], config, device, ctx, metric_fn, epoch, run.seed)
            kept, valid, evidence = outcome.kept, outcome.metrics, outcome.evidence
            if outcome.decision is not None:  # for the rest of training too
                log.info("%s: %s", description, describe(outcome.decision))
                m = outcome.decision["modality"]
                if outcome.decision["action"] == "leave_out":
                    run.left_out_epochs[m] = epoch
                else:
                    run.left_out_epochs.pop(m, None)
                run.model.active = kept
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
    bars = show_progress(quiet) if progress is None else (progress and not quiet and interactive())
    epochs_run = run.start_epoch - 1
    with _tensorboard(files.tensorboard, tensorboard and ctx.is_main) as tb:
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


def _with_modalities(config: RunConfig, kept: tuple[str, ...], built: tuple[str, ...]) -> RunConfig:
    """``config`` as saved with a checkpoint: with the modalities the check kept, if it left any
    of those the model was ``built`` with out."""
    if kept == built:
        return config
    return replace(config, model=replace(config.model, modalities=tuple(kept)))


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
                save_checkpoint(files.model, run.model, _with_modalities(config, end.kept, run.built_active), info,
                                preprocess, {"seed": seed, "epoch": end.epoch})
        save_training_state(files.state, run.state_dict(end.epoch, rng))
        write_history(files.history, run.history)


def _report_epoch(end: EpochEnd, tb: Any, num_epochs: int, quiet: bool, ctx: Context,
                  progress: bool | None) -> None:
    """Handler: TensorBoard scalars and the epoch's log line (main process)."""
    if not ctx.is_main:
        return
    if tb is not None:
        for split, stats in (("train", end.train), ("valid", end.valid)):
            for k, v in stats.items():
                tb.add_scalar(f"{split}/{k}", v, end.epoch)
        tb.add_scalar("lr", end.lr, end.epoch)
    if not quiet:
        _log_epoch(end.epoch, num_epochs, end.train, end.valid, end.lr, end.seconds, _SHOWN_METRICS, progress)


_SHOWN_METRICS = list(dict.fromkeys(k for columns in METRIC_FAMILIES.values() for k in columns))
"""Validation metrics of the epoch log line (those a dataset has), in report-column order."""


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
        left_out = [m for m in run.built_active if m not in run.best_kept]
        run.model.active = run.best_kept
        summary = "; ".join(describe(d) for d in run.check.decisions) or "no decision (every modality kept)"
        log.info("seed %d: the model tested uses %s: %s", seed, list(run.best_kept), summary)
    test = evaluate(run.train_model, test_split, config, device, ctx, metric_fn)
    best = run.stopper.best_epoch
    valid_best = next((row for row in run.history if row["epoch"] == best and row["split"] == "valid"), {})
    run.history.append({"seed": seed, "epoch": best, "split": "test", "lr": math.nan, "time_s": 0.0, **test.metrics})
    valid_best = {k: v for k, v in valid_best.items() if k not in LEADING_COLUMNS and not k.startswith("check_")}
    return test, valid_best, left_out
