"""Small helpers shared by the extractors."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from decalign.extract.errors import ExtractError

__all__ = ["directory_fingerprint", "load_checked", "package_version", "resample_steps"]

T = TypeVar("T")


def package_version(dist: str) -> str:
    """The installed version of distribution ``dist`` (``"unknown"`` if it has no metadata)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def directory_fingerprint(path: str | os.PathLike[str], what: str) -> str:
    """A short hash of a model directory's configuration and weight files (names, sizes, and the
    bytes of every small file), so a model is recognised wherever it is installed, and a
    different model in the same place is not.

    Weight files are hashed by name and size only: reading gigabytes on every run to detect an
    edit that keeps the size is not worth it. Only called on a folder the user passed (or one
    whose :func:`~decalign.safety.paths.model_files` matched the record), and bounded even then:
    more than :data:`~decalign.safety.paths.MAX_MODEL_DIR_ENTRIES` files is not a model folder.
    """
    from decalign.safety.paths import MAX_MODEL_DIR_ENTRIES

    root = Path(path)
    if not root.is_dir():
        raise ExtractError(f"{what} {os.fspath(path)!r} is not a directory (a local HuggingFace model folder)")
    found = []
    for n, p in enumerate(root.rglob("*")):
        if n >= MAX_MODEL_DIR_ENTRIES:
            raise ExtractError(f"{what} {os.fspath(path)!r} holds more than {MAX_MODEL_DIR_ENTRIES} entries: not a "
                               "model folder (config.json and weights)")
        if p.is_file() and "__pycache__" not in p.parts:
            found.append(p)
    digest = hashlib.sha256()
    for file in sorted(found):
        rel = file.relative_to(root).as_posix()
        size = file.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        if size <= 4 * 1024 * 1024:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def load_checked(load: Callable[[], T], model_dir: str | os.PathLike[str], what: str) -> T:
    """Run a ``from_pretrained`` call for a local folder, its failures as one-line
    :class:`ExtractError` naming the folder (the callers pass ``use_safetensors=True``,
    ``trust_remote_code=False`` and ``local_files_only=True``)."""
    try:
        return load()
    except (OSError, ValueError, KeyError, TypeError, ImportError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExtractError(f"{what} {os.fspath(model_dir)!r} cannot be loaded: {first[:300]}") from None


def load_local_model(preprocessor: Any, model_dir: str | os.PathLike[str], what: str) -> tuple[Any, Any]:
    """A local Hugging Face folder's ``preprocessor`` (a tokenizer or image processor class) and
    model, in evaluation mode: local files only, safetensors weights only, no remote code (a
    model folder is data and must not run code or reach a hub); failures as one line
    (:func:`load_checked`)."""
    from decalign.extract.errors import require

    transformers = require("transformers")
    where = os.fspath(model_dir)
    pre = load_checked(lambda: preprocessor.from_pretrained(where, local_files_only=True, trust_remote_code=False),
                       model_dir, what)
    model = load_checked(lambda: transformers.AutoModel.from_pretrained(
        where, local_files_only=True, use_safetensors=True, trust_remote_code=False), model_dir, what)
    return pre, model.eval()


def resample_steps(values: np.ndarray, times: np.ndarray, rate: float, duration: float) -> np.ndarray:
    """Average frame-level ``values`` ``[n, D]`` (frame centres ``times`` in seconds) into bins of
    ``1/rate`` seconds covering ``[0, duration)``; bins without a frame take the nearest
    frame's values. Returns ``[max(1, round(duration * rate)), D]`` float32.

    openSMILE's low-level descriptors come at a fixed 100 Hz; averaging (not picking) keeps every
    frame's information at a lower rate.
    """
    n_out = max(1, round(duration * rate))
    if len(values) == 0:
        return np.zeros((n_out, values.shape[1] if values.ndim == 2 else 0), np.float32)
    idx = np.clip(np.floor(times * rate).astype(np.int64), 0, n_out - 1)
    sums = np.zeros((n_out, values.shape[1]), np.float64)
    np.add.at(sums, idx, values)
    counts = np.bincount(idx, minlength=n_out)
    out = np.empty_like(sums)
    has = counts > 0
    out[has] = sums[has] / counts[has, None]
    if not has.all():
        centres = (np.arange(n_out) + 0.5) / rate
        nearest = np.abs(times[None, :] - centres[~has, None]).argmin(axis=1)
        out[~has] = values[nearest]
    return out.astype(np.float32)
