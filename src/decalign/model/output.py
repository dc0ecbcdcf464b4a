"""The contract between a model and the objective: what every architecture's forward returns
(:class:`ModelOutput`) and the registry of loss terms (:data:`LOSS_TERMS`) that names its keys.

It sits below DecAlign, the baselines and :mod:`decalign.losses` alike, so that a baseline
returns the shared output without importing DecAlign's module and the objective reads it without
importing any model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["LOG_KEYS", "LOSS_TERMS", "MODEL_LOSSES", "MODEL_TERMS", "WEIGHTED_TERMS", "LossTerm", "ModelOutput"]


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
    """Computed by the model's forward (:attr:`ModelOutput.losses`/``.terms``); otherwise by
    :func:`decalign.losses.objective` from the prediction and the representation."""
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
model output, :func:`decalign.losses.objective`, the engine's logging, the plots). A new term is
one entry here plus its computation (in the model, or in the objective) and its weight in the
config."""

LOG_KEYS: tuple[str, ...] = tuple(t.name for t in LOSS_TERMS)
"""Every term the objective reports, in the order the history lists them."""
MODEL_LOSSES: tuple[str, ...] = tuple(t.name for t in LOSS_TERMS if t.from_model and t.part_of is None)
"""The weighted losses a model's forward returns (:attr:`ModelOutput.losses`)."""
MODEL_TERMS: tuple[str, ...] = tuple(
    t.name for t in LOSS_TERMS if t.from_model and not any(p.part_of == t.name for p in LOSS_TERMS)
)
"""The finest terms a model's forward reports (:attr:`ModelOutput.terms`)."""
WEIGHTED_TERMS: tuple[str, ...] = tuple(t.name for t in LOSS_TERMS if t.weight is not None)
"""The auxiliary terms added to the task loss, each with its weight."""


@dataclass
class ModelOutput:
    """What one forward pass of any architecture returns (DecAlign and every baseline).

    Attributes:
        prediction: ``[B]`` regression output or ``[B, C]`` class logits.
        losses: the auxiliary losses :data:`MODEL_LOSSES` (``decoupling``, ``heterogeneity``:
            OT + local prototype term, ``homogeneity``: moments + MMD), unweighted scalars;
            zeros for a model that has none (the baselines).
        terms: the finest terms :data:`MODEL_TERMS` (``decoupling``, ``ot``, ``proto_local``,
            ``moments``, ``mmd``) for logging (a collapsing or saturated term shows up here).
        representation: ``[B, k]`` fused representation fed to the head (before its dropout);
            the contrastive term uses it.
        unique, common: ``[M, B, d]`` time-pooled unique and common features of every modality
            (zeros for inactive ones), for analysis and plots; ``None`` for models that do not
            decouple.
        plan: the prototype transport plan ``[K, ..., K]`` when it was computed, else ``None``.
    """

    prediction: Tensor
    losses: dict[str, Tensor]
    terms: dict[str, Tensor] = field(default_factory=dict)
    representation: Tensor | None = None
    unique: Tensor | None = None
    common: Tensor | None = None
    plan: Tensor | None = None
