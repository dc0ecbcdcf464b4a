"""Choosing the execution context from the environment (``torchrun`` sets RANK and WORLD_SIZE).

``torchrun --nproc_per_node N -m decalign train ...`` starts N processes with ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set (multi-node runs get them
from torchrun's rendezvous). Each process joins the process group here: ``nccl`` on its own GPU
(``cuda:LOCAL_RANK``) when CUDA is used, ``gloo`` on the CPU otherwise.
"""

from __future__ import annotations

import os

import torch

from decalign.train.distributed import Context, DistributedContext

__all__ = ["context_from_environment"]


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise RuntimeError(f"WORLD_SIZE > 1 but {name} is not set: start multi-process training with torchrun")
        return default
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={value!r} is not an integer") from None


def context_from_environment(device: str = "auto") -> Context:
    """A single-process context unless launched by ``torchrun`` with more than one process.

    Args:
        device: ``train.device``. ``auto`` and ``cuda`` use ``cuda:LOCAL_RANK`` with ``nccl`` when
            CUDA is available (``cuda`` without CUDA is an error); ``cpu`` uses ``gloo``; Apple
            ``mps`` has no multi-process backend and is refused.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return Context.single()
    rank = _env_int("RANK")
    local_rank = _env_int("LOCAL_RANK", 0)
    if device == "mps":
        raise RuntimeError("multi-process training is not available on Apple MPS; use train.device=cpu")
    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise RuntimeError("train.device=cuda but CUDA is not available on this machine (use auto or cpu)")
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} visible GPU(s): "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    return DistributedContext.initialize(rank, world_size, dev)
