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

import torch.nn.functional as F
from torch import Tensor

from decalign.config import ObjectiveConfig
from decalign.model.output import LOG_KEYS, LOSS_TERMS, MODEL_LOSSES, ModelOutput
from decalign.ops.contrastive import sentiment_classes, supervised_contrastive_loss

__all__ = ["objective", "task_loss"]

_WEIGHT = {t.name: t.weight for t in LOSS_TERMS if t.weight is not None}
"""Term -> the :class:`~decalign.config.ObjectiveConfig` field weighting it
(:data:`decalign.model.output.LOSS_TERMS`)."""


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
    output: ModelOutput,
    labels: Tensor,
    config: ObjectiveConfig,
    *,
    gather: Callable[[Tensor, int], Tensor] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and every term (unweighted, detached) for logging under
    :data:`~decalign.model.output.LOG_KEYS`.

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
