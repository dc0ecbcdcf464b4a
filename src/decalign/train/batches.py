"""Splits as tensors and the batches drawn from them.

The benchmark splits fit in memory, so a split is converted to tensors once (``torch.from_numpy``
shares the arrays' memory) and batches are gathered by index. This is what a ``DataLoader`` with an
in-memory dataset would do, minus its per-sample Python overhead. Shuffling uses a dedicated
generator so the order is part of the resumable state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from decalign.data import Split

__all__ = ["Batch", "SplitTensors", "batch_indices"]


@dataclass
class Batch:
    features: dict[str, Tensor]
    lengths: dict[str, Tensor]
    labels: Tensor
    index: Tensor
    """Positions of these samples in their split (to put sharded predictions back in order)."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class SplitTensors:
    features: dict[str, Tensor]
    lengths: dict[str, Tensor]
    labels: Tensor
    ids: np.ndarray

    @classmethod
    def from_split(cls, split: Split, bert_text: bool = False) -> SplitTensors:
        """Tensors sharing ``split``'s memory. With ``bert_text`` the ``text`` modality is the
        ``[N, 3, T]`` BERT token tensor instead of precomputed features."""
        features = {m: torch.from_numpy(np.ascontiguousarray(x)) for m, x in split.features.items()}
        if bert_text:
            if split.text_bert is None:
                raise ValueError(
                    "the BERT text encoder needs the data file's 'text_bert' token ids, which this file does not have"
                )
            features["text"] = torch.from_numpy(np.ascontiguousarray(split.text_bert, dtype=np.int64))
        return cls(
            features=features,
            lengths={m: torch.from_numpy(np.ascontiguousarray(v)) for m, v in split.lengths.items()},
            labels=torch.from_numpy(np.ascontiguousarray(split.labels)),
            ids=split.ids,
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, index: Tensor, device: torch.device, modalities: tuple[str, ...] | None = None) -> Batch:
        names = modalities if modalities is not None else tuple(self.features)
        non_blocking = device.type == "cuda"
        return Batch(
            features={m: self.features[m][index].to(device, non_blocking=non_blocking) for m in names},
            lengths={m: self.lengths[m][index].to(device, non_blocking=non_blocking) for m in names},
            labels=self.labels[index].to(device, non_blocking=non_blocking),
            index=index,
        )


def batch_indices(
    n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> list[Tensor]:
    """Index tensors of consecutive batches over ``n`` samples (a permutation when shuffling);
    the last batch keeps the remainder (no dropping, as released)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return list(order.split(batch_size))
