"""Baselines trained by the same engine and protocol as DecAlign (``model.architecture``).

========== ==================================================================================
``mult``   :class:`MulT`: projection + cross-modal transformer + concat head, no decoupling or
           alignment (DecAlign's fusion on the projected sequences).
``tfn``    :class:`TensorFusion`: pooled subnetworks, outer product with an appended 1, MLP.
``late``   :class:`LateFusion`: per-modality self-attention encoders, pooled, concat head.
``early``  :class:`EarlyFusion`: inputs concatenated per time step, one encoder, head.
``text``   :class:`TextAlone`: the text encoder fine-tuned alone (or the text features), masked
           mean, linear head; the other modalities are ignored (preset ``text_finetune``).
========== ==================================================================================

All share DecAlign's constructor ``(config, input_dims, num_outputs, seq_lens)``, its forward
``(features, lengths=None)`` and its output (:class:`decalign.model.ModelOutput` with zero
alignment losses), and reuse its building blocks (:class:`TemporalProjection`,
:class:`CrossModalTransformer`, :class:`PredictionHead`) with the sizes and dropouts of the
config, so a preset sizes a baseline like DecAlign. Build one with :func:`build_baseline`, or any
architecture with :func:`decalign.model.factory.build_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from decalign.config import ModelConfig
from decalign.model.baselines.common import BaselineModel
from decalign.model.baselines.early_fusion import EarlyFusion
from decalign.model.baselines.late_fusion import LateFusion
from decalign.model.baselines.mult import MulT
from decalign.model.baselines.tensor_fusion import TensorFusion
from decalign.model.baselines.text_alone import TextAlone
from decalign.model.factory import ARCHITECTURES, architecture_class

__all__ = ["BASELINES", "BaselineModel", "EarlyFusion", "LateFusion", "MulT", "TensorFusion", "TextAlone",
           "build_baseline"]

BASELINES: dict[str, type[BaselineModel]] = {
    name: cast("type[BaselineModel]", architecture_class(name)) for name in ARCHITECTURES if name != "decalign"
}
"""``model.architecture`` value -> baseline class (from :data:`decalign.model.factory.ARCHITECTURES`)."""


def build_baseline(
    config: ModelConfig,
    input_dims: Mapping[str, int],
    num_outputs: int = 1,
    seq_lens: Mapping[str, int] | None = None,
) -> BaselineModel:
    """The baseline named by ``config.architecture``."""
    try:
        cls = BASELINES[config.architecture]
    except KeyError:
        raise ValueError(
            f"model.architecture={config.architecture!r} is not a baseline; baselines are {sorted(BASELINES)}"
        ) from None
    return cls(config, input_dims, num_outputs, seq_lens)
