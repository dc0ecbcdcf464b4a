"""The devices a run can ask for (``train.device``, every ``--device`` flag).

Standard library only, so that the command line lists them without importing torch; the device
itself is chosen by :func:`decalign.train.engine.resolve_device`.
"""

from __future__ import annotations

__all__ = ["DEVICES"]

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
"""``auto`` picks CUDA, then Apple MPS, then the CPU."""
