"""The architecture registry, what a model is built for, and the one function that builds it.

:data:`ARCHITECTURES` is the one list of ``model.architecture`` values: configuration
validation, ``decalign bench --models`` and its report read it. Every architecture has the same
constructor ``(model_config, input_dims, num_outputs, seq_lens=...)`` and forward contract, so
training, checkpoints, evaluation, prediction and resume need no other dispatch. Adding a
baseline is its module under :mod:`decalign.model.baselines` plus one :class:`Architecture`
entry here.

Standard library only at import (the classes are imported when a model is built), so the
configuration and the command line can read the registry without torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decalign.config import RunConfig
    from decalign.data.types import MultimodalDataset
    from decalign.model.base import MultimodalModel

__all__ = ["ARCHITECTURES", "Architecture", "ModelInfo", "architecture_class", "build_model"]


@dataclass(frozen=True)
class Architecture:
    """One ``model.architecture``: what it is called, shown as, and implemented by."""

    name: str
    label: str
    """Display label (the paper's row name in ``PAPER_RESULTS`` where it reports the model)."""
    target: str
    """``module:Class`` implementing it."""
    description: str


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("decalign", "DecAlign", "decalign.model.decalign:DecAlign",
                     "decoupling, hierarchical alignment and cross-modal fusion (the method)"),
        Architecture("mult", "MulT", "decalign.model.baselines.mult:MulT",
                     "projection + cross-modal transformer + concat head; no decoupling or alignment"),
        Architecture("tfn", "TFN", "decalign.model.baselines.tensor_fusion:TensorFusion",
                     "pooled subnetworks, outer product with an appended 1, MLP"),
        Architecture("late", "late fusion", "decalign.model.baselines.late_fusion:LateFusion",
                     "per-modality self-attention encoders, pooled, concat head"),
        Architecture("early", "early fusion", "decalign.model.baselines.early_fusion:EarlyFusion",
                     "inputs concatenated per time step, one encoder, head"),
        Architecture("text", "text alone", "decalign.model.baselines.text_alone:TextAlone",
                     "the text encoder fine-tuned alone (model.text_encoder.kind=bert) or the text features: "
                     "masked mean, linear head; other modalities ignored"),
    )
}
"""Every architecture, in report order (DecAlign first)."""


def architecture_class(name: str) -> type[MultimodalModel]:
    """The class implementing architecture ``name``."""
    try:
        target = ARCHITECTURES[name].target
    except KeyError:
        raise ValueError(f"unknown model.architecture {name!r}; choose one of {list(ARCHITECTURES)}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ModelInfo:
    """What a model was built for: enough to rebuild it and to check new data against it."""

    kind: str
    task: str
    modalities: tuple[str, ...]
    input_dims: dict[str, int]
    seq_lens: dict[str, int]
    num_outputs: int
    class_names: tuple[str, ...] | None = None
    label_range: tuple[float, float] | None = None
    provenance: dict[str, Any] | None = None
    """The extraction record of the training data (``decalign extract``), or ``None``."""

    @classmethod
    def from_dataset(cls, dataset: MultimodalDataset) -> ModelInfo:
        classes = dataset.num_classes  # None for regression
        return cls(
            kind=dataset.kind,
            task=dataset.task,
            modalities=tuple(dataset.modalities),
            input_dims=dict(dataset.input_dims),
            seq_lens=dict(dataset.seq_lens),
            num_outputs=1 if classes is None else int(classes),
            class_names=tuple(dataset.class_names) if dataset.class_names is not None else None,
            label_range=tuple(dataset.label_range) if dataset.label_range is not None else None,
            provenance=getattr(dataset, "provenance", None),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(
            kind=data["kind"],
            task=data["task"],
            modalities=tuple(data["modalities"]),
            input_dims={k: int(v) for k, v in data["input_dims"].items()},
            seq_lens={k: int(v) for k, v in data["seq_lens"].items()},
            num_outputs=int(data["num_outputs"]),
            class_names=tuple(data["class_names"]) if data.get("class_names") is not None else None,
            label_range=tuple(data["label_range"]) if data.get("label_range") is not None else None,
            provenance=data.get("provenance"),
        )


def build_model(config: RunConfig, info: ModelInfo) -> MultimodalModel:
    """The model of ``config.model.architecture`` (DecAlign or a baseline) for the data described
    by ``info``."""
    cls = architecture_class(config.model.architecture)
    return cls(config.model, info.input_dims, info.num_outputs, seq_lens=info.seq_lens)
