r"""The optimizer of a run and the learning-rate schedule of its BERT parameters.

Its own module because it changes for its own reasons (a new parameter group, another schedule)
and is used beyond the engine: ``benchmarks/bench_finetune.py`` times epochs with this optimizer.

Every run uses Adam with coupled L2 weight decay (docs/method.md §10). The parameters of a BERT
text encoder (named ``text_encoder.*``) form a second group with ``train.bert_lr`` and, with
``train.bert_warmup_steps`` = :math:`W` and ``train.bert_decay = "linear"`` over
:math:`S` = ``train.num_epochs`` x (optimizer steps per epoch), the learning rate of optimizer
step :math:`s` (0-based) is

.. math::

    \eta_s = \eta \cdot \min\left(1, \frac{s + 1}{W}\right) \cdot \max\left(0, \frac{S - s}{S}\right)

(:func:`lr_factor`), applied for that step only by :func:`optimizer_step`, so that it composes
with ``ReduceLROnPlateau``, which rescales :math:`\eta` between epochs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from decalign.config import RunConfig

__all__ = ["lr_factor", "make_optimizer", "optimizer_step"]


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
