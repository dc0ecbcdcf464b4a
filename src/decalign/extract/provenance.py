"""What produced a dataset's features: one :class:`ExtractorRecord` per modality.

The record travels with the data (the MMSA pickle's top-level ``extraction`` entry, the native
format's ``meta.json``) and from there into every checkpoint trained on it
(``ModelInfo.provenance``). Prediction compares the two: features made by another extractor, or
with other settings or widths, would be accepted silently by a model that only checks shapes,
and give meaningless predictions. That is the failure this module exists to prevent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FORMAT", "LOCATION_KEYS", "ExtractorRecord", "Provenance", "check", "compare", "describe_modality"]

FORMAT = "decalign-extract-v1"

LOCATION_KEYS: frozenset[str] = frozenset({"model_dir", "openface_dir"})
"""Settings that say where something was found, not what it computes: a model moved to another
directory is the same model (its ``fingerprint`` says so), so these are not compared."""

MANIFEST_KEYS: frozenset[str] = frozenset({"files"})
"""Settings kept to check a recorded folder cheaply (the names and sizes of a model folder's
files, compared without listing or hashing it); the ``fingerprint`` already covers what they
say, and records written before them lack them, so they are not compared either."""


@dataclass(frozen=True)
class ExtractorRecord:
    """One modality's extractor.

    Attributes:
        name: the extractor (``hf-text``, ``opensmile-egemaps``, ``librosa``, ``opencv-hog``,
            ``openface``, ``hf-image``).
        package: the package that computes it (``opensmile``, ``librosa``, ``transformers`` ...).
        version: that package's version.
        settings: everything that changes the numbers (rates, sizes, a model's fingerprint).
        width: the feature width ``D``.
        rate: steps per second of media, or ``None`` (text: one step per token).
    """

    name: str
    package: str
    version: str
    settings: dict[str, Any] = field(default_factory=dict)
    width: int = 0
    rate: float | None = None

    def identity(self) -> dict[str, Any]:
        """What must agree between training and prediction (everything but locations/versions)."""
        settings = {k: v for k, v in self.settings.items() if k not in LOCATION_KEYS | MANIFEST_KEYS}
        return {"name": self.name, "settings": settings, "width": self.width, "rate": self.rate}

    def describe(self) -> str:
        """A one-line summary for messages, e.g. ``librosa 0.11.0, 27-d at 50 Hz``."""
        rate = f" at {self.rate:g} Hz" if self.rate else " per token"
        shown = {k: v for k, v in self.settings.items() if k not in LOCATION_KEYS | MANIFEST_KEYS | {"fingerprint"}}
        extra = ", ".join(f"{k}={v}" for k, v in shown.items())
        return f"{self.name} ({self.package} {self.version}, {self.width}-d{rate}{'; ' + extra if extra else ''})"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExtractorRecord:
        return cls(
            name=str(data["name"]),
            package=str(data.get("package", "")),
            version=str(data.get("version", "")),
            settings=dict(data.get("settings") or {}),
            width=int(data.get("width", 0)),
            rate=None if data.get("rate") is None else float(data["rate"]),
        )


@dataclass(frozen=True)
class Provenance:
    """The extractors of every modality plus the decoding settings shared by all of them."""

    extractors: dict[str, ExtractorRecord]
    media: dict[str, Any] = field(default_factory=dict)
    decalign_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "decalign_version": self.decalign_version,
            "media": dict(self.media),
            "extractors": {m: asdict(r) for m, r in self.extractors.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an extraction record (format {data.get('format')!r}, expected {FORMAT!r})")
        return cls(
            extractors={m: ExtractorRecord.from_dict(r) for m, r in (data.get("extractors") or {}).items()},
            media=dict(data.get("media") or {}),
            decalign_version=str(data.get("decalign_version", "")),
        )


def compare(model: Mapping[str, Any] | None, data: Mapping[str, Any] | None) -> list[str]:
    """Why features recorded by ``data`` do not fit a model trained on ``model`` (both
    :meth:`Provenance.to_dict` payloads); empty when they agree or either side has no record.

    Each entry names the modality and both extractors, for the refusal message.
    """
    if not model or not data:
        return []
    trained, given = Provenance.from_dict(model), Provenance.from_dict(data)
    problems: list[str] = []
    for m, rec in trained.extractors.items():
        other = given.extractors.get(m)
        if other is None:
            problems.append(f"{m}: the model was trained on {rec.describe()}, the data has no {m} features")
        elif rec.identity() != other.identity():
            problems.append(
                f"{m}: the model was trained on {rec.describe()}, the data comes from {other.describe()}"
            )
    for key in ("sample_rate",):
        ours, theirs = trained.media.get(key), given.media.get(key)
        if ours is not None and theirs is not None and ours != theirs:
            problems.append(f"media {key}: the model's features used {ours}, the data's {theirs}")
    return problems


def describe_modality(record: Mapping[str, Any] | None, modality: str) -> str:
    """`` (from <extractor>)`` for messages, or ``""`` when ``record`` says nothing about it."""
    if not record:
        return ""
    try:
        rec = Provenance.from_dict(record).extractors.get(modality)
    except (ValueError, KeyError, TypeError):
        return ""
    return f" (from {rec.describe()})" if rec is not None else ""


def check(model: Mapping[str, Any] | None, data: Mapping[str, Any] | None, where: str) -> None:
    """Refuse data whose extraction record differs from the model's (:func:`compare`), with a
    :class:`~decalign.errors.DataError` naming ``where`` and both extractors of each modality."""
    problems = compare(model, data)
    if problems:
        from decalign.errors import DataError

        raise DataError(f"{where}: features from another extractor than the model's; " + "; ".join(problems))
