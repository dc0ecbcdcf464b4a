"""Which modalities the model uses while it trains: modality dropout per batch, and the engine's
side of the modality check (``train.modality_check``) per validation.

Both work through the model's ``active`` attribute (the modalities it reads; the others are
treated as missing). The check's statistics and decision rules are
:mod:`decalign.train.modality_check`, which knows nothing of models; this module is how a
training run evaluates the model without a modality for it, applies its decisions, saves the
kept modalities with a checkpoint and tests the selected model as the check left it. Its own
module because these options change together and apart from the loop that calls them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from decalign.config import RunConfig
from decalign.train.modality_check import CheckOutcome, CheckState, check_modalities, describe

__all__ = [
    "HoldsModalities",
    "apply_decision",
    "check_validation",
    "drop_modality",
    "unwrap",
    "use_selected",
    "with_modalities",
]

log = logging.getLogger("decalign")

Evaluation = Callable[[], tuple[np.ndarray, dict[str, float]]]
"""Evaluates the model as it is now on the validation split: ``(predictions, metrics)``."""


class HoldsModalities(Protocol):
    """What this module touches of a model: ``active``, the modalities it reads (every
    :class:`~decalign.model.base.MultimodalModel` has it)."""

    active: tuple[str, ...]


def unwrap(model: nn.Module) -> HoldsModalities:
    """The model itself (which holds ``active``) inside a data-parallel and/or compiled wrapper."""
    module: Any = getattr(model, "module", model)  # DDP
    return getattr(module, "_orig_mod", module)  # torch.compile


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


def check_validation(model: nn.Module, evaluation: Evaluation, predictions: np.ndarray, metrics: dict[str, float],
                     labels: np.ndarray, config: RunConfig, built: tuple[str, ...], state: CheckState, epoch: int,
                     seed: int) -> CheckOutcome:
    """``train.modality_check`` at this validation (:func:`~decalign.train.modality_check.check_modalities`),
    given the validation's ``predictions`` and ``metrics`` with the model's current modalities:
    ``evaluation`` runs again with other active sets, set through the ``active`` attribute of
    ``model`` (wrapped or not), which is put back. ``built``: the modalities the model was built
    with; ``state``: the check's streaks and decisions so far, updated."""
    inner = unwrap(model)
    original = inner.active

    def evaluate_with(modalities: tuple[str, ...]) -> tuple[np.ndarray, dict[str, float]]:
        inner.active = modalities
        try:
            return evaluation()
        finally:
            inner.active = original

    tc = config.train
    width = predictions.shape[1] if predictions.ndim == 2 else None
    # Its own stream, from (seed, epoch): the check draws nothing from the training's generators,
    # so runs with and without it see the same data order, and a resumed run the same resamples.
    rng = np.random.default_rng([seed, epoch])
    return check_modalities(evaluate_with, original, built, predictions, metrics, labels, config.objective.task_loss,
                            width, state, level=tc.modality_check_level, agree=tc.modality_check_agree, epoch=epoch,
                            rng=rng)


def apply_decision(outcome: CheckOutcome, model: HoldsModalities, left_out_epochs: dict[str, int], epoch: int,
                   description: str) -> None:
    """A decision of the check holds for the rest of training: say it, note in
    ``left_out_epochs`` the epoch a modality was left out at (or forget it when taken back), and
    set the modalities ``model`` uses. Nothing without a decision."""
    if outcome.decision is None:
        return
    log.info("%s: %s", description, describe(outcome.decision))
    m = outcome.decision["modality"]
    if outcome.decision["action"] == "leave_out":
        left_out_epochs[m] = epoch
    else:
        left_out_epochs.pop(m, None)
    model.active = outcome.kept


def with_modalities(config: RunConfig, kept: tuple[str, ...], built: tuple[str, ...]) -> RunConfig:
    """``config`` as saved with a checkpoint: with the modalities the check kept, if it left any
    of those the model was ``built`` with out."""
    if kept == built:
        return config
    return replace(config, model=replace(config.model, modalities=tuple(kept)))


def use_selected(model: HoldsModalities, built: tuple[str, ...], kept: tuple[str, ...], state: CheckState,
                 seed: int) -> list[str]:
    """Before the test: ``model`` (the selected epoch's) uses the modalities ``kept`` at that
    epoch; says which and why. Returns those of ``built`` the check left out."""
    left_out = [m for m in built if m not in kept]
    model.active = kept
    summary = "; ".join(describe(d) for d in state.decisions) or "no decision (every modality kept)"
    log.info("seed %d: the model tested uses %s: %s", seed, list(kept), summary)
    return left_out
