"""How the engine talks to other processes: a :class:`Context`.

The engine never calls ``torch.distributed`` itself; it asks its context to shard a batch, scale a
loss, sum statistics, gather predictions and synchronise. In one process all of these are
identities, which is what :meth:`Context.single` returns. :class:`DistributedContext` is the
data-parallel implementation (``torchrun``; DistributedDataParallel; ``gloo`` on CPU, ``nccl`` on
CUDA), and this module is the only place in decalign that calls ``torch.distributed``.

Data-parallel semantics (see ``docs/scaling.md``):

* ``train.batch_size`` is the *global* batch. Every process draws the same permutation (the
  shuffle generator is seeded identically everywhere; this plays the role of a
  ``DistributedSampler``) and takes a contiguous chunk of every global batch, in rank order
  (``tensor_split``). Concatenating the chunks in rank order gives back the single-process batch
  exactly, which matters when features are gathered: the GMM initialises its means from rows at
  fixed batch positions.
* Evaluation batches are split the same way and are never padded; predictions are put back in split
  order by position, and a sample missing or seen twice is an error.
* When a global batch has fewer samples than there are processes (a short last batch), a process
  with an empty chunk runs one stand-in sample with weight 0 so that it still joins DDP's gradient
  all-reduce and the feature gather, which drops the stand-in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from decalign.model.base import MultimodalModel

__all__ = ["Context", "DistributedContext", "chunk_sizes"]

Gather = Callable[[Tensor, int], Tensor]
"""``gather(x, dim)``: the rows of ``x`` along ``dim`` from every process, concatenated in rank order."""
Probe = Callable[[nn.Module], Tensor]
"""``probe(model)``: the training loss of ``model`` on a few samples."""


def chunk_sizes(n: int, world_size: int) -> list[int]:
    """Sizes of ``torch.tensor_split`` of ``n`` items into ``world_size`` contiguous chunks (the
    first ``n % world_size`` chunks have one more)."""
    base, extra = divmod(n, world_size)
    return [base + (1 if r < extra else 0) for r in range(world_size)]


@dataclass
class Context:
    """The single-process context: every operation is an identity."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None

    @classmethod
    def single(cls) -> Context:
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def feature_gather(self) -> Gather | None:
        """The autograd-aware row gather used for the batch-statistic losses, or ``None`` when
        every loss is computed on this process's own batch (always, in one process)."""
        return None

    def wrap(self, model: nn.Module, gather_alignment: bool = False, probe: Probe | None = None) -> nn.Module:
        """The module to train (DDP wraps it). ``gather_alignment`` has no effect in one process:
        the local batch already is the global batch; ``probe`` (the training loss of a few
        samples, see :meth:`DistributedContext.wrap`) is not needed."""
        return model

    def seed_process(self, seed: int) -> None:
        """Give this process its own dropout stream (nothing to do in one process)."""
        return None

    def shard(self, global_index: Tensor) -> Tensor:
        """This process's part of a training batch (may be empty when the batch is shorter than
        the number of processes)."""
        return global_index

    def shard_eval(self, global_index: Tensor) -> Tensor:
        """This process's part of an evaluation batch (never padded; may be empty)."""
        return global_index

    def loss_scale(self, local_n: int, global_n: int) -> float:
        """Factor on a loss that is a mean over this process's ``local_n`` samples so that DDP's
        gradient average equals the gradient of the mean over the ``global_n`` samples."""
        return 1.0

    def average(self, stats: dict[str, float], weight: float = 1.0) -> dict[str, float]:
        """``weight``-weighted mean of per-process statistics."""
        return stats

    def sum_dict(self, values: dict[str, float]) -> dict[str, float]:
        """Sum of per-process values, key by key."""
        return values

    def gather_objects(self, obj: Any) -> list[Any]:
        """One picklable object from every process, in rank order."""
        return [obj]

    def gather_predictions(self, local: Tensor, positions: Tensor, n: int) -> Tensor:
        """All predictions of a split in split order, each sample exactly once."""
        if len(positions) != n or not torch.equal(positions, torch.arange(n)):
            out = torch.empty((n, *local.shape[1:]), dtype=local.dtype)
            out[positions] = local
            return out
        return local

    def barrier(self) -> None:
        return None

    def close(self, finished: bool = True) -> None:
        """Release process-group resources (nothing in one process)."""
        return None


@dataclass
class DistributedContext(Context):
    """One process of a data-parallel job (``torch.distributed`` already initialised).

    Build it with :func:`decalign.train.distributed_setup.context_from_environment`, which reads
    what ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...).
    """

    backend: str = "gloo"
    gathering: bool = False
    """``train.gather_alignment``: batch-statistic losses on features gathered from every process."""
    _batch_sizes: list[int] = field(default_factory=list, repr=False)
    """Chunk sizes of the current training batch (set by :meth:`shard`, used by the gather)."""

    @classmethod
    def initialize(cls, rank: int, world_size: int, device: torch.device) -> DistributedContext:
        """Join the process group (``env://`` rendezvous, as torchrun sets up): ``nccl`` for a
        CUDA device, ``gloo`` otherwise."""
        import inspect

        import torch.distributed as dist

        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_available():
            raise RuntimeError("this PyTorch build has no torch.distributed; multi-process training is unavailable")
        if not dist.is_initialized():
            kwargs: dict[str, Any] = {"backend": backend, "init_method": "env://", "rank": rank,
                                      "world_size": world_size}
            if device.type == "cuda" and "device_id" in inspect.signature(dist.init_process_group).parameters:
                kwargs["device_id"] = device  # torch >= 2.3: bind the NCCL communicator to this GPU now
            dist.init_process_group(**kwargs)
        return cls(rank=rank, world_size=world_size, device=device, backend=backend)

    # -- training ---------------------------------------------------------------------------

    @property
    def feature_gather(self) -> Gather | None:
        return self._gather_rows if self.gathering else None

    def wrap(self, model: nn.Module, gather_alignment: bool = False, probe: Probe | None = None) -> nn.Module:
        """DistributedDataParallel around ``model``; with ``gather_alignment`` also install the
        model's feature-gather hook.

        Which parameters receive a gradient depends on the data and the configuration (a modality
        whose width already equals ``d_model`` skips its projection weight; switched-off
        modalities and alignment terms leave their parameters out; baselines differ again), and
        DDP waits forever for a gradient that never comes unless told to look for unused
        parameters, which costs a graph walk every step. So rather than guess from the
        configuration, ``probe`` (the training loss on a few samples) is differentiated once,
        locally and without drawing from the RNG streams, and ``find_unused_parameters`` is on
        exactly when some parameter got no gradient (always on without a probe). Every process
        probes the same samples, so all agree.

        Buffers are not synchronised in the forward pass: the models keep no running statistics,
        and evaluation forwards (whose shards may be empty on some processes) must not issue
        collectives.
        """
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        find_unused = True if probe is None else self._has_unused_parameters(model, probe)
        self.gathering = bool(gather_alignment)
        if self.gathering:
            if not isinstance(model, MultimodalModel):  # every one has the hook
                raise ValueError(
                    f"train.gather_alignment=true needs a model with a feature_gather hook; "
                    f"{type(model).__name__} has none"
                )
            model.feature_gather = self._gather_rows
        device_ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        no_buffer_sync: dict[str, Any] = ({"forward_sync_buffers": False}  # newer torch renamed broadcast_buffers
                          if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                          else {"broadcast_buffers": False})
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused,
                                       **no_buffer_sync)

    def _has_unused_parameters(self, model: nn.Module, probe: Probe) -> bool:
        params = [p for p in model.parameters() if p.requires_grad]
        was_training = model.training
        model.train()
        devices = [self.device] if self.device is not None and self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                grads = torch.autograd.grad(probe(model), params, allow_unused=True)
        finally:
            model.train(was_training)
        return any(g is None for g in grads)

    def seed_process(self, seed: int) -> None:
        """Re-seed torch (CPU and CUDA) after the model was built identically everywhere, so each
        process draws its own dropout masks; rank 0 keeps the single-process stream."""
        if self.rank:
            torch.manual_seed((int(seed) * 1_000_003 + self.rank) % (2**63))

    def shard(self, global_index: Tensor) -> Tensor:
        self._batch_sizes = chunk_sizes(len(global_index), self.world_size)
        return global_index.tensor_split(self.world_size)[self.rank]

    def shard_eval(self, global_index: Tensor) -> Tensor:
        return global_index.tensor_split(self.world_size)[self.rank]

    def loss_scale(self, local_n: int, global_n: int) -> float:
        """``W n_r / N``. DDP averages gradients over processes, and (1/W) sum_r s_r mean_r is
        the mean over all samples exactly when s_r = W n_r / N. A term every process computes
        identically from gathered rows gets sum_r s_r / W = 1: the same scaling is right for it
        (see :func:`decalign.losses.objective`); a stand-in process (n_r = 0) contributes nothing."""
        return self.world_size * local_n / max(global_n, 1)

    def _gather_rows(self, x: Tensor, dim: int = 0) -> Tensor:
        """Rows of the current training batch from every process along ``dim``, with gradients.

        ``torch.distributed.nn.functional.all_gather`` is differentiable: its backward sums, on
        each process, the gradients that every process's copy of the result sends to that
        process's own rows. Chunks may differ by one row (and a stand-in process holds one row
        that is not part of the batch): every chunk is padded to the largest, gathered, and cut
        back to the sizes recorded by :meth:`shard`.
        """
        if not self._batch_sizes:
            raise RuntimeError("feature gather called outside a training step (no batch was sharded)")
        moved = x.movedim(dim, 0)
        gathered = self._all_gather_rows(moved, self._batch_sizes)
        return gathered.movedim(0, dim)

    def _all_gather_rows(self, x: Tensor, sizes: list[int]) -> Tensor:
        import torch.distributed as dist

        longest = max(max(sizes), 1)
        local = x[: sizes[self.rank]]
        if local.shape[0] < longest:
            local = torch.cat([local, local.new_zeros((longest - local.shape[0], *local.shape[1:]))])
        local = local.contiguous()
        if local.requires_grad:
            import warnings

            import torch.distributed.nn.functional as dist_nn

            # The autograd-aware all_gather that works on gloo and nccl in every torch this package
            # supports (>= 2.2); torch 2.13 marks it deprecated in favour of private functional
            # collectives whose names are still changing.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                parts = list(dist_nn.all_gather(local))
        else:
            parts = [torch.empty_like(local) for _ in range(self.world_size)]
            dist.all_gather(parts, local)
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    # -- statistics and predictions ----------------------------------------------------------

    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" and self.device is not None else torch.device("cpu")

    def _all_reduce(self, values: list[float]) -> list[float]:
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return t.cpu().tolist()

    def average(self, stats: dict[str, float], weight: float = 1.0) -> dict[str, float]:
        keys = sorted(stats)
        total = self._all_reduce([stats[k] * weight for k in keys] + [weight])
        denom = total[-1]
        return {k: (v / denom if denom else math.nan) for k, v in zip(keys, total[:-1])}

    def sum_dict(self, values: dict[str, float]) -> dict[str, float]:
        keys = sorted(values)  # every process must reduce the same keys in the same order
        return dict(zip(keys, self._all_reduce([float(values[k]) for k in keys])))

    def gather_objects(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def gather_predictions(self, local: Tensor, positions: Tensor, n: int) -> Tensor:
        """Every process's predictions put back at their positions in the split.

        Processes hold different numbers of rows (unpadded shards), so the row counts are gathered
        first and every block is padded to the longest for ``all_gather``, then cut back. A
        position that is missing or appears twice means samples would be dropped or counted
        twice in the metrics: that is an error, not a warning.
        """
        import torch.distributed as dist

        dev = self._comm_device()
        count = torch.tensor([len(positions)], dtype=torch.int64, device=dev)
        counts = [torch.empty_like(count) for _ in range(self.world_size)]
        dist.all_gather(counts, count)
        sizes = [int(c.item()) for c in counts]
        all_pos = self._all_gather_rows(positions.to(dev, torch.int64), sizes).cpu()
        # a process without rows sends an empty 1-d tensor: give it the row shape of the others
        shapes = self.gather_objects(tuple(local.shape[1:]) if len(positions) else None)
        row_shape = next((s for s in shapes if s is not None), ())
        block = local.reshape(len(positions), *row_shape).to(dev, torch.float32)
        all_pred = self._all_gather_rows(block, sizes).cpu()
        seen = torch.bincount(all_pos, minlength=n) if len(all_pos) else torch.zeros(n, dtype=torch.int64)
        if len(seen) != n or not bool((seen == 1).all()):
            missing = int((seen[:n] == 0).sum())
            twice = int((seen[:n] > 1).sum())
            raise RuntimeError(
                f"distributed evaluation covered the split of {n} samples wrongly: {missing} missing, "
                f"{twice} seen more than once, {max(len(seen) - n, 0)} out of range"
            )
        out = torch.empty((n, *row_shape), dtype=torch.float32)
        out[all_pos] = all_pred
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.backend == "nccl" and self.device is not None:
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def close(self, finished: bool = True) -> None:
        """Leave the process group, all processes together when the job ``finished``.

        Rank 0 writes the results and figures after the others are done; a process that tore
        its gloo pairs down meanwhile, or exited with a DDP reducer still holding the group,
        was once aborted (SIGABRT, "terminate called without an active exception") under load.
        So a finished job first drops unreachable wrappers (``gc``) and meets at a barrier, and
        only then destroys the group. After an error there is no barrier: the other processes
        may be inside a different collective, and torchrun tears them down.
        """
        import gc

        import torch.distributed as dist

        if not dist.is_initialized():
            return
        if finished:
            gc.collect()
            self.barrier()
        dist.destroy_process_group()
