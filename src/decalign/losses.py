r"""The training objective (spec section 2):

.. math::
    \mathcal{L} = \mathcal{L}_{task} + w_{dec}\mathcal{L}_{dec} + \alpha\,\mathcal{L}_{hete}
        + \beta\,\mathcal{L}_{homo} + w_{ct}\mathcal{L}_{ct} \;(+\, w_{bin}\mathcal{L}_{bin}),

with the task loss MSE (sentiment presets), L1 or cross-entropy (IEMOCAP), the supervised
contrastive term on the fused representation, and for CH-SIMS a binary BCE-with-logits term on the
regression output for samples with a non-zero label (target ``y > 0``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from decalign.config import ObjectiveConfig
from decalign.model.decalign import DecAlignOutput
from decalign.ops.contrastive import sentiment_classes, supervised_contrastive_loss

__all__ = ["LOG_KEYS", "objective", "task_loss"]

LOG_KEYS = ("loss", "task", "decoupling", "heterogeneity", "ot", "proto_local", "homogeneity", "moments",
            "mmd", "contrastive", "binary")
"""Every term :func:`objective` reports, in the order the history lists them."""


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


def objective(output: DecAlignOutput, labels: Tensor, config: ObjectiveConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and every term (unweighted, detached) for logging under :data:`LOG_KEYS`."""
    task = task_loss(output.prediction, labels, config.task_loss)
    zero = task.new_zeros(())
    total = task
    total = total + config.w_dec * output.losses["decoupling"]
    total = total + config.alpha * output.losses["heterogeneity"]
    total = total + config.beta * output.losses["homogeneity"]
    contrastive = zero
    if config.w_ct > 0 and output.representation is not None:
        classes = labels.long() if config.task_loss == "ce" else sentiment_classes(labels.float())
        contrastive = supervised_contrastive_loss(output.representation.float(), classes, config.ct_temperature)
        total = total + config.w_ct * contrastive
    binary = zero
    if config.w_bin > 0:
        nonzero = labels != 0
        if bool(nonzero.any()):
            binary = F.binary_cross_entropy_with_logits(
                output.prediction[nonzero].float(), (labels[nonzero] > 0).float()
            )
            total = total + config.w_bin * binary
    terms = {
        "loss": total,
        "task": task,
        "decoupling": output.losses["decoupling"],
        "heterogeneity": output.losses["heterogeneity"],
        "ot": output.terms.get("ot", zero),
        "proto_local": output.terms.get("proto_local", zero),
        "homogeneity": output.losses["homogeneity"],
        "moments": output.terms.get("moments", zero),
        "mmd": output.terms.get("mmd", zero),
        "contrastive": contrastive,
        "binary": binary,
    }
    return total, {k: v.detach() for k, v in terms.items()}
