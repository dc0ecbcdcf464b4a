"""Which benchmark a file holds, decided from its array shapes (never from its file name).

MMSA names both CMU-MOSI and CMU-MOSEI files ``aligned_50.pkl``; users rename files freely. The
feature widths, however, identify each benchmark uniquely (``docs/data.md``): MOSI 768/5/20, MOSEI
768/74/35, CH-SIMS 768/33/709, the DecAlign authors' IEMOCAP 1024/512/1024 (the dialogue-level
IEMOCAP features, 100/100/512, count as IEMOCAP too). Padded lengths decide
nothing (users truncate sequences), but a mismatch with the published lengths is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from decalign.data.types import Task

__all__ = [
    "BENCHMARKS",
    "IEMOCAP_CLASSES_4",
    "IEMOCAP_CLASSES_6",
    "BenchmarkSpec",
    "detect_kind",
    "shape_mismatch",
]

IEMOCAP_CLASSES_6: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "excited", "frustrated")
IEMOCAP_CLASSES_4: tuple[str, ...] = IEMOCAP_CLASSES_6[:4]


@dataclass(frozen=True)
class BenchmarkSpec:
    """Published shapes and task of one benchmark (``docs/data.md``)."""

    kind: str
    dims: Mapping[str, int]
    seq_lens: Mapping[str, Mapping[str, int]]
    """Layout name (``aligned``/``unaligned``/``utterance``) -> padded length per modality."""
    task: Task
    label_range: tuple[float, float] | None
    class_names: tuple[str, ...] | None = None
    other_dims: tuple[Mapping[str, int], ...] = ()
    """Further width sets of the same benchmark (IEMOCAP's dialogue-level features)."""

    def matches(self, dims: Mapping[str, int]) -> bool:
        return any(dict(dims) == dict(d) for d in (self.dims, *self.other_dims))


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "mosi": BenchmarkSpec(
        "mosi",
        {"text": 768, "audio": 5, "vision": 20},
        {
            "aligned": {"text": 50, "audio": 50, "vision": 50},
            "unaligned": {"text": 50, "audio": 375, "vision": 500},
        },
        "regression",
        (-3.0, 3.0),
    ),
    "mosei": BenchmarkSpec(
        "mosei",
        {"text": 768, "audio": 74, "vision": 35},
        {
            "aligned": {"text": 50, "audio": 50, "vision": 50},
            "unaligned": {"text": 50, "audio": 500, "vision": 500},
        },
        "regression",
        (-3.0, 3.0),
    ),
    "sims": BenchmarkSpec(
        "sims",
        {"text": 768, "audio": 33, "vision": 709},
        {"unaligned": {"text": 39, "audio": 400, "vision": 55}},
        "regression",
        (-1.0, 1.0),
    ),
    "iemocap": BenchmarkSpec(
        "iemocap",
        {"text": 1024, "audio": 512, "vision": 1024},
        {"utterance": {"text": 1, "audio": 1, "vision": 1}},
        "classification",
        None,
        IEMOCAP_CLASSES_6,
        other_dims=({"text": 100, "audio": 100, "vision": 512},),
    ),
}


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
        want = "/".join(f"{m} {d}" for m, d in spec.dims.items())
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
