"""Seeding and RNG state capture, so a run is repeatable and a resumed run continues the same
random streams (dropout, shuffling) as one that never stopped."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "restore_rng", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices), as the released protocol does per seed."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - the released protocol seeds NumPy's global RNG
    torch.manual_seed(seed)


def capture_rng(*generators: torch.Generator) -> dict[str, Any]:
    """Every RNG state the training loop draws from, in a form ``torch.load(weights_only=True)``
    accepts (tensors, numbers, strings, lists, dicts)."""
    np_state = np.random.get_state(legacy=True)  # noqa: NPY002 - the global RNG is what code may draw from
    if not isinstance(np_state, tuple):  # NumPy gives a dict only for a generator other than its MT19937
        raise RuntimeError("NumPy's global random generator is not MT19937; its state cannot be saved")
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [*internal, version, gauss],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "generators": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], *generators: torch.Generator) -> None:
    py = state["python"]
    random.setstate((py[-2], tuple(py[:-2]), py[-1]))
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    legacy = ("MT19937", keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    np.random.set_state(legacy)  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    for g, s in zip(generators, state["generators"]):
        g.set_state(s)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
