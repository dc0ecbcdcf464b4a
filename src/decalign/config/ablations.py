"""The paper's ablations as configuration switches: one name per ablation, its ``--set``-style
overrides, and the label of the row the paper reports it under.

Every ablation is DecAlign (``model.architecture=decalign``) with some switches of
:class:`decalign.config.ModelConfig` / :class:`decalign.config.ObjectiveConfig` flipped; the
switches are plain settings, so any ablation can also be trained by hand::

    decalign train --set model.homogeneity.mmd=false        # = the "no_mmd" ablation

Names are file-system safe (each becomes a run directory of ``decalign bench``); :data:`LABELS`
gives the display label, equal to the row name in :data:`decalign.metrics.display.PAPER_RESULTS` where
the paper reports the ablation. Modality subsets (unimodal, bimodal) depend on the data's
modality names: :data:`ABLATIONS` has them for the benchmark modalities ``text``/``audio``/
``vision`` and :func:`ablations_for` derives them for any other set. Standard library only (the
names are plain data), so the CLI can list ablations without importing torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ABLATIONS",
    "BENCHMARK_MODALITIES",
    "DESCRIPTIONS",
    "LABELS",
    "SWITCH_ABLATIONS",
    "SWITCH_TABLE",
    "Ablation",
    "ablations_for",
    "inactive_terms",
    "label",
    "modality_ablations",
    "select_ablations",
]

BENCHMARK_MODALITIES: tuple[str, ...] = ("text", "audio", "vision")

@dataclass(frozen=True)
class Ablation:
    """One switch ablation: DecAlign with some settings changed."""

    name: str
    """File-system safe name (a run directory of ``decalign bench``)."""
    overrides: Mapping[str, Any]
    """``--set``-style settings it changes."""
    label: str
    """Display label: the paper's row name in ``PAPER_RESULTS`` where the paper reports it."""
    description: str
    """One line saying what it switches off."""


SWITCH_TABLE: tuple[Ablation, ...] = (
    # the paper's Table of hierarchical-alignment ablations (MAE / F1 on MOSI and MOSEI)
    Ablation("no_homogeneity", {"model.homogeneity.enabled": False}, "w/o homogeneity",
             "no homogeneity alignment (moment matching + MMD on the common features)"),
    Ablation("no_heterogeneity", {"model.heterogeneity.enabled": False}, "w/o heterogeneity",
             "no heterogeneity alignment (prototype OT + local prototype term on the unique features)"),
    Ablation("decoupling_only", {"model.heterogeneity.enabled": False, "model.homogeneity.enabled": False},
             "decoupling only", "decoupling loss only: neither alignment"),
    Ablation("no_decoupling_and_alignment",
             {"model.decoupling_loss": False, "model.heterogeneity.enabled": False,
              "model.homogeneity.enabled": False},
             "w/o decoupling and alignment",
             "no decoupling loss and no alignment (the paper's \"none\"; the decoupled architecture is kept)"),
    # the paper's component ablations
    Ablation("no_mmd", {"model.homogeneity.mmd": False}, "w/o MMD", "homogeneity without the MMD term"),
    Ablation("no_moments", {"model.homogeneity.moments": False}, "w/o moment matching (Sem)",
             "homogeneity without moment matching (mean, covariance, skewness)"),
    Ablation("no_contrastive", {"objective.w_ct": 0.0}, "w/o contrastive (CT)",
             "no supervised contrastive term (objective.w_ct = 0)"),
    Ablation("no_prototype_ot", {"model.heterogeneity.prototype_ot": False}, "w/o prototype OT",
             "heterogeneity without the multi-marginal prototype OT term"),
    # further switches of the method, not in the paper's tables
    Ablation("no_decoupling_loss", {"model.decoupling_loss": False}, "w/o decoupling loss",
             "no decoupling (orthogonality) loss; both alignments kept"),
    Ablation("no_prototype_local", {"model.heterogeneity.prototype_local": False}, "w/o local prototype term",
             "heterogeneity without the sample-to-prototype term"),
    Ablation("no_cross_modal", {"model.fusion.cross_modal": False}, "w/o cross-modal attention",
             "self-attention instead of cross-modal attention in the fusion transformers"),
)
"""Ablations that flip loss or architecture switches (independent of the modality names): the one
table of switch ablations. A new one is one row here."""

SWITCH_ABLATIONS: dict[str, dict[str, Any]] = {a.name: dict(a.overrides) for a in SWITCH_TABLE}
"""Switch ablation name -> ``--set``-style overrides."""

_SWITCH_LABELS = {a.name: a.label for a in SWITCH_TABLE}

DESCRIPTIONS: dict[str, str] = {a.name: a.description for a in SWITCH_TABLE}
"""Ablation name -> one line saying what it switches off (unimodal/bimodal: see :func:`label`)."""


def _subset_name(subset: Sequence[str]) -> str:
    return f"{subset[0]}_only" if len(subset) == 1 else "+".join(subset)


def modality_ablations(modalities: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Unimodal and bimodal subsets of ``modalities`` as ``model.modalities`` overrides.

    Names are ``<m>_only`` (one modality) and ``<a>+<b>`` (two, in data order). With two
    modalities the bimodal subset is the full model and is left out.
    """
    mods = list(modalities)
    out: dict[str, dict[str, Any]] = {}
    for size in (1, 2):
        if size >= len(mods):
            break
        for subset in itertools.combinations(mods, size):
            out[_subset_name(subset)] = {"model.modalities": list(subset)}
    return out


def ablations_for(modalities: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every ablation that applies to data with ``modalities``: the switches, then the subsets."""
    return {**SWITCH_ABLATIONS, **modality_ablations(modalities)}


ABLATIONS: dict[str, dict[str, Any]] = ablations_for(BENCHMARK_MODALITIES)
"""Every ablation for the benchmark modalities: name -> ``--set``-style overrides."""

LABELS: dict[str, str] = {
    **_SWITCH_LABELS,
    **{name: " + ".join(v["model.modalities"]) + (" only" if len(v["model.modalities"]) == 1 else "")
       for name, v in modality_ablations(BENCHMARK_MODALITIES).items()},
}
"""Ablation name -> display label; the paper's row name in ``PAPER_RESULTS`` where it has one."""


def label(name: str) -> str:
    """Display label of an ablation (also for subsets of non-benchmark modalities)."""
    if name in LABELS:
        return LABELS[name]
    if name.endswith("_only"):
        return f"{name[: -len('_only')]} only"
    return name.replace("+", " + ")


def select_ablations(spec: str | Sequence[str], modalities: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ablations named by ``spec`` for data with ``modalities``.

    Args:
        spec: ``"all"``, ``"none"`` (no ablations), or a comma-separated list / sequence of
            names. (The paper's "none" row is the ablation ``no_decoupling_and_alignment``.)
        modalities: the data's modality names (subset ablations are derived from them).

    Raises:
        ValueError: an unknown name, with the valid ones.
    """
    available = ablations_for(modalities)
    if isinstance(spec, str):
        text = spec.strip()
        if text == "all":
            return dict(available)
        if text in ("none", ""):
            return {}
        names = [n.strip() for n in text.split(",") if n.strip()]
    else:
        names = list(spec)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; for modalities {list(modalities)} choose from "
                         f"{list(available)} (or 'all' / 'none')")
    return {n: available[n] for n in dict.fromkeys(names)}


def inactive_terms(overrides: Mapping[str, Any], weights: Mapping[str, float]) -> list[str]:
    """Why an ablation may be a no-op under a preset: the loss weights it zeroes that are already 0.

    Args:
        overrides: the ablation's overrides.
        weights: the preset's ``w_dec``, ``alpha``, ``beta`` and ``w_ct``.

    Returns:
        e.g. ``["objective.beta = 0"]`` when the ablation only removes homogeneity terms and the
        preset does not weight homogeneity at all (the run then differs from DecAlign only by
        random-number consumption). Empty when the ablation changes the objective.
    """
    switched = {k for k, v in overrides.items() if v is False or (k == "objective.w_ct" and v == 0)}
    if not switched:
        return []
    family = {
        "model.decoupling_loss": "w_dec",
        "model.heterogeneity.enabled": "alpha",
        "model.heterogeneity.prototype_ot": "alpha",
        "model.heterogeneity.prototype_local": "alpha",
        "model.homogeneity.enabled": "beta",
        "model.homogeneity.moments": "beta",
        "model.homogeneity.mmd": "beta",
        "objective.w_ct": "w_ct",
    }
    if not switched <= set(family):
        return []  # an architectural switch (e.g. cross-modal attention) always changes the model
    zeros = sorted({family[k] for k in switched})
    if all(float(weights.get(w, 1.0)) == 0.0 for w in zeros):
        return [f"objective.{w} = 0" for w in zeros]
    return []
