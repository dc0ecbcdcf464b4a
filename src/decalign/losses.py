r"""The training objective (docs/method.md §9):

.. math::
    \mathcal{L} = \mathcal{L}_{task} + w_{dec}\mathcal{L}_{dec} + \alpha\,\mathcal{L}_{hete}
        + \beta\,\mathcal{L}_{homo} + w_{ct}\mathcal{L}_{ct} \;(+\, w_{bin}\mathcal{L}_{bin}),

with the task loss MSE (sentiment presets), L1 or cross-entropy (IEMOCAP), the supervised
contrastive term on the fused representation, and for CH-SIMS a binary BCE-with-logits term on the
regression output for samples with a non-zero label (target ``y > 0``).

In data-parallel training each process holds a shard of the global batch and DDP averages the
processes' gradients; with ``train.gather_alignment`` :func:`objective` computes the batch-level
terms on the gathered global batch (see ``docs/scaling.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

from decalign.config import ObjectiveConfig
from decalign.ops.contrastive import sentiment_classes, supervised_contrastive_loss

if TYPE_CHECKING:
    from decalign.model.decalign import DecAlignOutput

__all__ = ["LOG_KEYS", "LOSS_TERMS", "MODEL_LOSSES", "MODEL_TERMS", "WEIGHTED_TERMS", "LossTerm", "objective",
           "task_loss"]


@dataclass(frozen=True)
class LossTerm:
    """One term of the objective as it is computed, weighted and logged."""

    name: str
    """Key in the model output, the history, TensorBoard and the logs."""
    weight: str | None
    """The :class:`~decalign.config.ObjectiveConfig` field that weights it in the total;
    ``None`` for the total, the task loss and the parts of a weighted term."""
    part_of: str | None
    """The weighted term this one is a part of (reported, never added on its own)."""
    from_model: bool
    """Computed by the model's forward (``DecAlignOutput.losses``/``.terms``); otherwise by
    :func:`objective` from the prediction and the representation."""
    description: str


LOSS_TERMS: tuple[LossTerm, ...] = (
    LossTerm("loss", None, None, False, "the total objective"),
    LossTerm("task", None, None, False, "task loss (objective.task_loss: mse, l1 or ce)"),
    LossTerm("decoupling", "w_dec", None, True, "squared cosine of unique and common features"),
    LossTerm("heterogeneity", "alpha", None, True, "prototype-guided optimal transport on the unique features"),
    LossTerm("ot", None, "heterogeneity", True, "multi-marginal OT between the modalities' prototypes"),
    LossTerm("proto_local", None, "heterogeneity", True, "sample-to-prototype cost"),
    LossTerm("homogeneity", "beta", None, True, "latent distribution matching on the common features"),
    LossTerm("moments", None, "homogeneity", True, "mean, covariance and skewness matching"),
    LossTerm("mmd", None, "homogeneity", True, "maximum mean discrepancy"),
    LossTerm("contrastive", "w_ct", None, False, "supervised contrastive term on the fused representation"),
    LossTerm("binary", "w_bin", None, False, "BCE on the sign of non-zero labels (CH-SIMS)"),
)
"""Every loss term, in the order the history lists them: the one source of loss names (the
model output, :func:`objective`, the engine's logging, the plots). A new term is one entry here
plus its computation (in the model, or in :func:`objective`) and its weight in the config."""

LOG_KEYS: tuple[str, ...] = tuple(t.name for t in LOSS_TERMS)
"""Every term :func:`objective` reports, in the order the history lists them."""
MODEL_LOSSES: tuple[str, ...] = tuple(t.name for t in LOSS_TERMS if t.from_model and t.part_of is None)
"""The weighted losses a model's forward returns (``DecAlignOutput.losses``)."""
MODEL_TERMS: tuple[str, ...] = tuple(
    t.name for t in LOSS_TERMS if t.from_model and not any(p.part_of == t.name for p in LOSS_TERMS)
)
"""The finest terms a model's forward reports (``DecAlignOutput.terms``)."""
WEIGHTED_TERMS: tuple[str, ...] = tuple(t.name for t in LOSS_TERMS if t.weight is not None)
"""The auxiliary terms added to the task loss, each with its weight."""
_WEIGHT = {t.name: t.weight for t in LOSS_TERMS}


def task_loss(prediction: Tensor, labels: Tensor, kind: str) -> Tensor:
    """Mean task loss: ``mse`` / ``l1`` on ``[B]`` regression outputs, ``ce`` on ``[B, C]`` logits."""
    if kind == "ce":
        return F.cross_entropy(prediction, labels.long())
    prediction = prediction.float()
    if kind == "mse":
        return F.mse_loss(prediction, labels.float())
    if kind == "l1":
        return F.l1_loss(prediction, labels.float())
    raise ValueError(f"unknown task loss {kind!r}")


def objective(
    output: DecAlignOutput,
    labels: Tensor,
    config: ObjectiveConfig,
    *,
    gather: Callable[[Tensor, int], Tensor] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and every term (unweighted, detached) for logging under :data:`LOG_KEYS`.

    ``gather`` is for data-parallel training with ``train.gather_alignment`` (the model then
    already computed the heterogeneity and homogeneity losses on features gathered from every
    process): it gathers the predictions, the representation and the labels along the batch, with
    gradients, so that the task, contrastive and binary terms are computed on the global batch too
    and every process holds the same value of every term except the decoupling term (a per-sample
    mean over the local sequences). The caller scales the returned loss by ``W n_r / N`` as for
    purely local losses: for a term every process holds identically, those weights average to 1
    over the processes, ``all_gather``'s backward sums the ``W`` copies of its gradient arriving at
    each process's own rows, and DDP divides by ``W``, so the gradient is the global batch's.
    """
    prediction, representation, targets = output.prediction, output.representation, labels
    if gather is not None:
        prediction, targets = gather(prediction, 0), gather(labels, 0)
        if representation is not None and config.w_ct > 0:
            representation = gather(representation, 0)
    task = task_loss(prediction, targets, config.task_loss)
    zero = task.new_zeros(())
    total = task
    for name in MODEL_LOSSES:
        total = total + getattr(config, _WEIGHT[name]) * output.losses[name]
    contrastive = zero
    if config.w_ct > 0 and representation is not None:
        classes = targets.long() if config.task_loss == "ce" else sentiment_classes(targets.float())
        contrastive = supervised_contrastive_loss(representation.float(), classes, config.ct_temperature)
        total = total + config.w_ct * contrastive
    binary = zero
    if config.w_bin > 0:
        nonzero = targets != 0
        if bool(nonzero.any()):
            binary = F.binary_cross_entropy_with_logits(
                prediction[nonzero].float(), (targets[nonzero] > 0).float()
            )
            total = total + config.w_bin * binary
    computed = {"loss": total, "task": task, "contrastive": contrastive, "binary": binary, **output.losses}
    terms = {k: computed[k] if k in computed else output.terms.get(k, zero) for k in LOG_KEYS}
    return total, {k: v.detach() for k, v in terms.items()}
