"""Choosing the execution context from the environment (``torchrun`` sets RANK and WORLD_SIZE)."""

from __future__ import annotations

import os

from decalign.train.distributed import Context

__all__ = ["context_from_environment"]


def context_from_environment() -> Context:
    """A single-process context unless launched by ``torchrun`` with more than one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise NotImplementedError("multi-process training is not available yet")
    return Context.single()
