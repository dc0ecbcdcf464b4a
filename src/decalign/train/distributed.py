"""How the engine talks to other processes: a single-process :class:`Context` by default.

The engine never calls ``torch.distributed`` itself; it asks its context to shard a batch, scale a
loss, average statistics, gather predictions and synchronise. In one process all of these are
identities, which is what :meth:`Context.single` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["Context"]


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None

    @classmethod
    def single(cls) -> Context:
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train (DDP wraps it)."""
        return model

    def shard(self, global_index: Tensor) -> Tensor:
        """This process's part of a training batch."""
        return global_index

    def shard_eval(self, global_index: Tensor) -> Tensor:
        """This process's part of an evaluation batch (never padded)."""
        return global_index

    def loss_scale(self, local_n: int, global_n: int) -> float:
        """Factor on the local loss so averaged gradients equal the global batch's."""
        return 1.0

    def average(self, stats: dict[str, float]) -> dict[str, float]:
        """Sample-weighted mean of per-process epoch statistics."""
        return stats

    def sum_dict(self, values: dict[str, float]) -> dict[str, float]:
        return values

    def gather_predictions(self, local: Tensor, positions: Tensor, n: int) -> Tensor:
        """All predictions of a split in split order, each sample exactly once."""
        if len(positions) != n or not torch.equal(positions, torch.arange(n)):
            out = torch.empty((n, *local.shape[1:]), dtype=local.dtype)
            out[positions] = local
            return out
        return local

    def barrier(self) -> None:
        return None

    def close(self) -> None:
        """Release process-group resources (nothing in one process)."""
        return None
