"""One epoch of training, the evaluation of a split, and model selection with early stopping:
the loop that every seed of every architecture runs (docs/method.md §10).

Its own module because these are plain functions of a model, a split and the config, without the
per-seed protocol around them (:mod:`decalign.train.engine`: building, resuming, saving,
testing): a benchmark times :func:`train_epoch` alone, evaluation of a checkpoint is
:func:`evaluate`, and a data-parallel run calls the same functions through its
:class:`~decalign.train.distributed.Context`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from decalign.config import RunConfig
from decalign.losses import objective, task_loss
from decalign.model.output import LOG_KEYS, MODEL_LOSSES
from decalign.train.averaging import WeightAverage
from decalign.train.batches import SplitTensors, batch_indices
from decalign.train.distributed import Context
from decalign.train.modalities import drop_modality, unwrap
from decalign.train.optim import optimizer_step
from decalign.train.progress import batch_bar

__all__ = [
    "EarlyStopping",
    "EvalResult",
    "MetricFn",
    "autocast",
    "evaluate",
    "predict_split",
    "probe_loss",
    "train_epoch",
]

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]


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
    """What :func:`evaluate` gives for a split: what model selection, the modality check and
    reports read."""

    predictions: np.ndarray
    """``[N]`` regression outputs or ``[N, C]`` logits, in split order."""
    metrics: dict[str, float]
    """The dataset's metrics plus ``loss`` (the task loss over the split) and every loss term."""


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager[Any]:
    """``train.amp``: bfloat16 autocast on CUDA; elsewhere (and without it) nothing."""
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
    bar = batch_bar(len(batches), description) if progress and ctx.is_main else None
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
            features = drop_modality(features, unwrap(model).active, tc.modality_dropout, generator)
        with autocast(device, tc.amp):
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
        with autocast(device, amp):
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


def probe_loss(model: nn.Module, data: SplitTensors, config: RunConfig, device: torch.device) -> Tensor:
    """The training loss on the first few samples: shows a data-parallel context which parameters
    receive gradients at all."""
    batch = data.batch(torch.arange(min(len(data), 4)), device)
    return objective(model(batch.features, batch.lengths), batch.labels, config.objective)[0]
