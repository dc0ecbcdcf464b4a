"""Optional speed settings: ``torch.compile`` of DecAlign (``train.compile``) and the CPU allocator.

Only the cross-modal transformer layers are compiled by default: they hold nearly all of the
step's FLOPs and have static shapes, while the alignment losses are tiny tensors with
data-dependent control flow (the Sinkhorn loop stops when its scalings are stationary) that
would only cause graph breaks and recompilations. Inside a compiled region the custom CPU kernels
of :mod:`decalign.model.kernels` step aside (``torch.compiler.is_compiling()``), so Inductor sees
``F.dropout`` and ``scaled_dot_product_attention`` and can fuse them with its own generated code.

Measured on 2 CPU cores (``benchmarks/bench_step.py --compile``): see the README's performance
section for the compile time and whether it pays off; on CPU it is off by default.
"""

from __future__ import annotations

import time
from typing import Any, Literal, cast

from torch import nn

__all__ = ["compile_seconds", "maybe_compile", "tune_cpu_allocator"]

Scope = Literal["layers", "model"]

_LAST_COMPILE: dict[str, float] = {}


def maybe_compile(model: nn.Module, enabled: bool, scope: Scope = "layers", **options: Any) -> nn.Module:
    """Return ``model`` compiled with ``torch.compile`` when ``enabled``, else unchanged.

    Args:
        model: a :class:`~decalign.model.DecAlign` (or a wrapper such as DDP around one).
        enabled: ``train.compile``; ``False`` returns ``model`` itself.
        scope: ``"layers"`` compiles each cross-modal transformer layer in place (the module
            returned is ``model``, its ``state_dict`` unchanged); ``"model"`` compiles the whole
            forward (returns the compiled wrapper; expect graph breaks in the alignment losses).
        options: passed to ``torch.compile`` (e.g. ``mode="max-autotune"``, ``dynamic=False``).

    Compilation happens lazily, at the first forward of each new input shape; the time it takes is
    part of the first training step (the benchmark reports it).
    """
    if not enabled:
        return model
    import torch

    start = time.perf_counter()
    if scope == "model":
        compiled = cast(nn.Module, torch.compile(model, **options))
        _LAST_COMPILE["wrap_s"] = time.perf_counter() - start
        return compiled
    if scope != "layers":
        raise ValueError(f"scope must be 'layers' or 'model', got {scope!r}")
    from decalign.model.transformer import CrossModalLayer

    layers = [m for m in model.modules() if isinstance(m, CrossModalLayer)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no cross-modal transformer layers to compile")
    for layer in layers:
        layer.compile(**options)
    _LAST_COMPILE["wrap_s"] = time.perf_counter() - start
    return model


def compile_seconds() -> dict[str, float]:
    """Timings of the last :func:`maybe_compile` call (wrapping only; compilation is lazy)."""
    return dict(_LAST_COMPILE)


_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


def tune_cpu_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Keep freed CPU memory in the process instead of returning it to the OS (glibc only).

    PyTorch's CPU tensors come from ``malloc``. glibc serves large blocks with ``mmap`` and
    gives freed memory back to the kernel, so every large temporary of the next step (attention
    scores, MMD Gram matrices) is faulted in and zeroed page by page again: thousands of page
    faults per training step, expensive in virtual machines (measured: the batch-512 MMD term
    fwd + bwd 76 -> 38 ms, see ``benchmarks/bench_step.py --tune-allocator``). Raising the mmap
    and trim thresholds makes ``malloc`` reuse the freed blocks; peak memory stays the same,
    memory is just not handed back between steps. Process-wide, so it is opt-in: call it once
    at the start of a training process (or set ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` in the environment, or preload jemalloc/tcmalloc).

    Returns:
        Whether the settings were applied (``False`` off Linux/glibc).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(min(mmap_threshold, (1 << 31) - 1)))
    ok_trim = mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(min(trim_threshold, (1 << 31) - 1)))
    return bool(ok_mmap and ok_trim)
