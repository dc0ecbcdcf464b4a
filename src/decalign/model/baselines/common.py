"""What every baseline shares with DecAlign: the modality bookkeeping, the input path (optional
BERT, text dropout, temporal projection) and the output contract.

A baseline is built like :class:`decalign.model.DecAlign` — ``(config, input_dims, num_outputs,
seq_lens)`` — and returns a :class:`decalign.model.ModelOutput` whose auxiliary ``losses``
(``decoupling``, ``heterogeneity``, ``homogeneity``) are zeros, so the training objective, the
engine, checkpoints and the contrastive term work on it unchanged. Baselines have no decoupled
features and no transport plan: ``unique``, ``common`` and ``plan`` are ``None``.

Inactive modalities follow DecAlign's rule: a modality switched off by ``model.modalities`` or
absent from the input is not computed and its slots of the representation are zeros.
"""

from __future__ import annotations

from torch import Tensor

from decalign.model.base import TEXT, MultimodalModel
from decalign.model.output import MODEL_LOSSES, MODEL_TERMS, ModelOutput

__all__ = ["TEXT", "BaselineModel"]


class BaselineModel(MultimodalModel):
    """Base class of the baselines: :class:`MultimodalModel` plus the output contract.

    Baselines read ``d_model``, ``conv_kernel``, ``text_dropout``, ``output_dropout``,
    ``modalities``, ``fusion`` and ``text_encoder`` of the :class:`ModelConfig` DecAlign uses
    (the alignment switches do not apply to them); the data-parallel ``feature_gather`` hook is
    accepted and unused (the objective still gathers predictions and representations for the
    task and contrastive terms).
    """

    # -- output --------------------------------------------------------------------------------

    def output(self, prediction: Tensor, representation: Tensor) -> ModelOutput:
        """The shared output contract: zero alignment losses and terms (so the objective adds
        nothing but the task and contrastive terms), the representation for the contrastive term."""
        zero = representation.new_zeros(())
        return ModelOutput(
            prediction=prediction,
            losses=dict.fromkeys(MODEL_LOSSES, zero),
            terms=dict.fromkeys(MODEL_TERMS, zero),
            representation=representation,
        )
