"""The modality bookkeeping shared by DecAlign and the baselines.

Modalities are data: a model is built for the modalities of a dataset (names and widths from the
data, in data order) and ``forward`` takes a mapping name -> ``[B, T, D]``. A modality switched off
by ``ModelConfig.modalities`` or absent from the input is *inactive*: it is not computed and its
slots of the representation are zeros (:meth:`MultimodalModel.scatter`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from decalign.config import ModelConfig
from decalign.model.kernels import dropout
from decalign.model.projection import TemporalProjection

__all__ = ["TEXT", "MultimodalModel"]

TEXT = "text"


class MultimodalModel(nn.Module):
    """What DecAlign and every baseline share: the modality set, the active modalities, the input
    path (optional BERT, text dropout, temporal projection) and the bookkeeping of inactive
    modalities.

    Args:
        config: the architecture settings; this class reads ``modalities``, ``text_encoder``,
            ``text_dropout``, ``d_model`` and ``conv_kernel``.
        input_dims: modality name -> input width ``D_m``, in data order.
        num_outputs: 1 for regression, C >= 2 for C-class classification.
        seq_lens: modality name -> padded length, if known (checked against the conv kernels).
    """

    def __init__(
        self,
        config: ModelConfig,
        input_dims: Mapping[str, int],
        num_outputs: int = 1,
        seq_lens: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if len(input_dims) < 1:
            raise ValueError(f"{name} needs at least one modality")
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be 1 (regression) or >= 2 classes, got {num_outputs}")
        self.config = config
        self.num_outputs = num_outputs
        """1 for regression, C for C-class classification: the width of the head's output."""
        self.modalities: tuple[str, ...] = tuple(input_dims)
        active = config.modalities if config.modalities is not None else self.modalities
        unknown = [m for m in active if m not in self.modalities]
        if unknown:
            raise ValueError(
                f"model.modalities names {unknown}, which the data does not have; it has {list(self.modalities)}"
            )
        self.active: tuple[str, ...] = tuple(m for m in self.modalities if m in active)
        dims = dict(input_dims)
        self.text_encoder: nn.Module | None = None
        if config.text_encoder.kind == "bert":
            if TEXT not in dims:
                raise ValueError(f"the BERT text encoder needs a modality named 'text'; the data has {list(dims)}")
            from decalign.model.text_encoder import BertTextEncoder

            tec = config.text_encoder
            self.text_encoder = BertTextEncoder(tec.path or "", tec.train_layers, tec.cache_frozen)
            dims[TEXT] = self.text_encoder.hidden_size
        self.input_dims: dict[str, int] = dims
        self.seq_lens: dict[str, int] = {m: int(t) for m, t in (seq_lens or {}).items() if m in dims}
        self.feature_gather: Callable[[Tensor, int], Tensor] | None = None
        """Set by a data-parallel context with ``train.gather_alignment``: ``gather(x, dim)``
        returns the rows of every process along ``dim`` (with gradients), so that batch-statistic
        losses see the global batch. Used in training mode only; models without such losses
        ignore it."""

    def predict(self, features: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> Tensor:
        """The prediction alone (``[B]`` or ``[B, C]`` logits): ``forward(...).prediction``.
        Models with training-only terms in ``forward`` override this to skip them (the
        predictor and the exported graphs call it)."""
        return self(features, lengths).prediction  # type: ignore[no-any-return]

    # -- building blocks -----------------------------------------------------------------------

    def make_projection(self) -> TemporalProjection:
        """DecAlign's per-modality projection (docs/method.md §2), checked against ``seq_lens``."""
        projection = TemporalProjection(
            self.input_dims, self.config.d_model, {m: self.config.kernel_for(m) for m in self.input_dims}
        )
        for m, length in self.seq_lens.items():
            projection.output_length(m, length)
        return projection

    def active_index(self, features: Mapping[str, Tensor]) -> list[int]:
        """Positions (in ``self.modalities``) of the modalities that are active and present."""
        extra = [m for m in features if m not in self.modalities]
        if extra:
            raise ValueError(f"input has modalities {extra} that the model was not built for ({list(self.modalities)})")
        index = [i for i, m in enumerate(self.modalities) if m in self.active and m in features]
        if not index:
            raise ValueError(
                f"none of the model's active modalities {list(self.active)} is in the input (got {list(features)})"
            )
        return index

    def prepare_input(self, name: str, x: Tensor) -> Tensor:
        """BERT (if configured) and text dropout on the text modality; shape check. ``[B, T, D]``."""
        if name == TEXT:
            if self.text_encoder is not None:
                x = self.text_encoder(x)
            x = dropout(x, self.config.text_dropout, self.training)
        if x.dim() != 3:
            raise ValueError(f"modality {name!r}: expected a [B, T, D] tensor, found shape {tuple(x.shape)}")
        return x

    def inputs(self, features: Mapping[str, Tensor]) -> tuple[list[int], list[Tensor]]:
        """Active modality positions and their prepared ``[B, T_m, D_m]`` inputs (batch checked)."""
        index = self.active_index(features)
        xs = [self.prepare_input(self.modalities[i], features[self.modalities[i]]) for i in index]
        batch = xs[0].shape[0]
        for i, x in zip(index, xs):
            if x.shape[0] != batch:
                raise ValueError(
                    f"modality {self.modalities[i]!r} has batch size {x.shape[0]}, "
                    f"{self.modalities[index[0]]!r} has {batch}"
                )
        return index, xs

    def project(self, projection: TemporalProjection, features: Mapping[str, Tensor]) -> tuple[list[int], list[Tensor]]:
        """Active positions and their projected sequences ``[B, T'_m, d]``."""
        index, xs = self.inputs(features)
        return index, [projection(self.modalities[i], x) for i, x in zip(index, xs)]

    def scatter(self, vectors: Tensor, index: Sequence[int]) -> Tensor:
        """``[M', B, k]`` vectors of the active modalities -> ``[M, B, k]`` with zeros elsewhere."""
        n = len(self.modalities)
        if len(index) == n:
            return vectors
        pos = torch.tensor(list(index), device=vectors.device)
        return vectors.new_zeros(n, *vectors.shape[1:]).index_copy(0, pos, vectors)

    @staticmethod
    def concat(vectors: Tensor) -> Tensor:
        """``[M, B, k]`` -> ``[B, M k]`` in modality order."""
        m, batch, k = vectors.shape
        return vectors.permute(1, 0, 2).reshape(batch, m * k)
