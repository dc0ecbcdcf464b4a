"""The devices a run can ask for (``train.device``, every ``--device`` flag).

Standard library only at import, so that the command line lists them without torch;
:func:`resolve_device` turns a name into the ``torch.device`` a run uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "Device", "resolve_device"]

Device = Literal["auto", "cpu", "cuda", "mps"]
"""A device name of ``train.device``; ``auto`` picks CUDA, then Apple MPS, then the CPU."""
DEVICES: tuple[Device, ...] = get_args(Device)
"""The names of :data:`Device`, for choices and messages."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an unavailable device is an error."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but CUDA is not available on this machine (use auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise RuntimeError("train.device=mps but Apple MPS is not available on this machine (use auto or cpu)")
    return torch.device(name)
