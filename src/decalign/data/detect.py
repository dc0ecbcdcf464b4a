"""The dataset-kind registry, and which benchmark a file holds, decided from its array shapes
(never from its file name).

:data:`DATASET_KINDS` is the one list of dataset kinds: config validation
(``data.dataset``), every command-line ``--dataset`` choice, ``decalign bench`` (paper rows,
report columns), ``decalign sweep`` and :func:`decalign.metrics.metrics_for` all read it. Adding
a benchmark in the MMSA layout is one :class:`DatasetKind` entry here (plus its preset in
:mod:`decalign.config.presets` and its search space in ``config/spaces/<kind>.yaml``).

MMSA names both CMU-MOSI and CMU-MOSEI files ``aligned_50.pkl``; users rename files freely. The
feature widths, however, identify each benchmark uniquely (``docs/data.md``): MOSI 768/5/20, MOSEI 768/74/35,
CH-SIMS 768/33/709, the DecAlign authors' IEMOCAP 1024/512/1024 (the dialogue-level IEMOCAP
features, 100/100/512, count as IEMOCAP too). Padded lengths decide nothing (users truncate
sequences), but a mismatch with the published lengths is reported.

Standard library only: the command line builds its ``--dataset`` choices from this module
without importing numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BENCHMARKS",
    "DATASET_KINDS",
    "IEMOCAP_CLASSES_4",
    "IEMOCAP_CLASSES_6",
    "METRIC_FAMILIES",
    "SPLITS",
    "BenchmarkSpec",
    "DatasetKind",
    "detect_kind",
    "file_kind_choices",
    "kind_choices",
    "report_columns",
    "shape_mismatch",
]

SPLITS: tuple[str, ...] = ("train", "valid", "test")
"""The splits every dataset has, in order."""

IEMOCAP_CLASSES_6: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "excited", "frustrated")
IEMOCAP_CLASSES_4: tuple[str, ...] = IEMOCAP_CLASSES_6[:4]

METRIC_FAMILIES: dict[str, tuple[str, ...]] = {
    "sentiment": ("mae", "corr", "acc2_non0", "acc7", "f1_non0"),
    "sims": ("mae", "corr", "acc2", "acc3", "acc5", "f1"),
    "emotion": ("wacc", "waf1"),
    "regression": ("mae", "mse", "corr"),
}
"""Metric family (a function of :mod:`decalign.metrics`) -> the columns a report shows, as the
paper prints them. ``auto`` (custom data) picks ``emotion`` for classification, otherwise
``sentiment`` or ``regression`` from the label range."""


@dataclass(frozen=True)
class DatasetKind:
    """One dataset kind: its task, metrics and, for a published benchmark, its shapes."""

    kind: str
    dims: Mapping[str, int] | None
    """Published feature widths (detection); ``None``: never detected from shapes."""
    seq_lens: Mapping[str, Mapping[str, int]]
    """Layout name (``aligned``/``unaligned``/``utterance``) -> padded length per modality."""
    task: Literal["regression", "classification"] | None
    """``None``: whatever the data holds (custom)."""
    label_range: tuple[float, float] | None
    class_names: tuple[str, ...] | None = None
    other_dims: tuple[Mapping[str, int], ...] = ()
    """Further width sets of the same benchmark (IEMOCAP's dialogue-level features)."""
    metrics: str = "auto"
    """Metric family (a key of :data:`METRIC_FAMILIES`, or ``auto``)."""
    paper: bool = False
    """The paper reports results on it (:data:`decalign.metrics.display.PAPER_RESULTS`)."""
    from_file: bool = True
    """Read from a file (``False``: generated, the built-in synthetic benchmark)."""

    def matches(self, dims: Mapping[str, int]) -> bool:
        return self.dims is not None and any(dict(dims) == dict(d) for d in (self.dims, *self.other_dims))


BenchmarkSpec = DatasetKind
"""Former name of :class:`DatasetKind` (kept for existing imports)."""

_MOSI_LIKE = {"aligned": {"text": 50, "audio": 50, "vision": 50}}

DATASET_KINDS: dict[str, DatasetKind] = {
    "mosi": DatasetKind(
        "mosi",
        {"text": 768, "audio": 5, "vision": 20},
        {**_MOSI_LIKE, "unaligned": {"text": 50, "audio": 375, "vision": 500}},
        "regression",
        (-3.0, 3.0),
        metrics="sentiment",
        paper=True,
    ),
    "mosei": DatasetKind(
        "mosei",
        {"text": 768, "audio": 74, "vision": 35},
        {**_MOSI_LIKE, "unaligned": {"text": 50, "audio": 500, "vision": 500}},
        "regression",
        (-3.0, 3.0),
        metrics="sentiment",
        paper=True,
    ),
    "sims": DatasetKind(
        "sims",
        {"text": 768, "audio": 33, "vision": 709},
        {"unaligned": {"text": 39, "audio": 400, "vision": 55}},
        "regression",
        (-1.0, 1.0),
        metrics="sims",
        paper=True,
    ),
    "iemocap": DatasetKind(
        "iemocap",
        {"text": 1024, "audio": 512, "vision": 1024},
        {"utterance": {"text": 1, "audio": 1, "vision": 1}},
        "classification",
        None,
        IEMOCAP_CLASSES_6,
        other_dims=({"text": 100, "audio": 100, "vision": 512},),
        metrics="emotion",
        paper=True,
    ),
    "synthetic": DatasetKind(
        "synthetic", None, {}, "regression", (-3.0, 3.0), metrics="sentiment", from_file=False
    ),
    "custom": DatasetKind("custom", None, {}, None, None, metrics="auto"),
}
"""Every dataset kind, in the order commands list them."""

BENCHMARKS: dict[str, DatasetKind] = {k: v for k, v in DATASET_KINDS.items() if v.dims is not None}
"""The kinds with published shapes, detected from a file's feature widths."""


def kind_choices() -> tuple[str, ...]:
    """What ``--dataset`` / ``data.dataset`` accept: ``auto`` and every kind."""
    return ("auto", *DATASET_KINDS)


def file_kind_choices() -> tuple[str, ...]:
    """What a command that reads a file (``info``, ``convert``) accepts for ``--dataset``."""
    return ("auto", *(k for k, v in DATASET_KINDS.items() if v.from_file))


def report_columns(kind: str, task: str, available: Iterable[str]) -> list[str]:
    """The metric columns a report shows for data of ``kind``/``task``, among ``available``."""
    have = list(dict.fromkeys(available))
    spec = DATASET_KINDS.get(kind)
    family = spec.metrics if spec is not None else "auto"
    if task == "classification":
        family = "emotion"
    elif family != "sims":  # sentiment-style keys when the labels gave them, else plain regression
        family = "sentiment" if "acc2_non0" in have else "regression"
    return [k for k in METRIC_FAMILIES[family] if k in have]


def detect_kind(dims: Mapping[str, int]) -> str:
    """The benchmark whose feature widths equal ``dims`` (modality -> D), else ``"custom"``."""
    for spec in BENCHMARKS.values():
        if spec.matches(dims):
            return spec.kind
    return "custom"


def shape_mismatch(kind: str, dims: Mapping[str, int], seq_lens: Mapping[str, int]) -> str | None:
    """Why ``dims``/``seq_lens`` differ from benchmark ``kind``'s published shapes (a sentence for
    ``dataset.notes``), or ``None`` when they match (or ``kind`` is not a benchmark)."""
    spec = BENCHMARKS.get(kind)
    if spec is None:
        return None
    found = ", ".join(f"{m} T={seq_lens.get(m)} D={dims[m]}" for m in dims)
    if not spec.matches(dims):
        want = "/".join(f"{m} {d}" for m, d in (spec.dims or {}).items())
        detected = detect_kind(dims)
        hint = f" (they match {detected!r})" if detected != "custom" else ""
        return (
            f"read as {kind!r} as requested, but the feature widths ({found}) are not "
            f"{kind}'s ({want}){hint}"
        )
    if not any(dict(seq_lens) == dict(v) for v in spec.seq_lens.values()):
        want = "; ".join(
            f"{name} " + "/".join(str(t) for t in v.values()) for name, v in spec.seq_lens.items()
        )
        return f"padded lengths ({found}) differ from the published {kind} lengths ({want})"
    return None
