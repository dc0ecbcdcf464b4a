"""Conversions and checks shared by every reader: raw file values -> the arrays of :class:`Split`.

Each helper takes the value found in a file (numpy array or list), the ``where`` prefix of error
messages (``"<file>, split 'train'"``) and the key, and returns the contract's dtype or raises a
:class:`DataError` naming file, split, key, expected and found. They avoid copies: a float32 array
passes through ``np.asarray`` untouched and non-finite values are replaced in place, chunk by chunk,
so reading a MOSEI-sized file costs about the file's array bytes in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from decalign.data.types import DataError, MultimodalDataset, Split

__all__ = [
    "CHUNK_ELEMENTS",
    "NonFiniteWarning",
    "ReadLog",
    "bert_inputs",
    "class_labels",
    "concat_splits",
    "float_features",
    "int_lengths",
    "regression_labels",
    "replace_nonfinite_",
    "str_array",
]

CHUNK_ELEMENTS = 1 << 22
"""Elements per chunk for in-place passes (16 MiB of float32): the boolean temporaries stay small."""


class NonFiniteWarning(UserWarning):
    """Feature values that were NaN or infinite and have been replaced by 0."""


@dataclass
class ReadLog:
    """What a reader fixed or noticed, turned into ``dataset.notes`` and one warning at the end."""

    notes: list[str] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=dict)
    """``"<split> <key>"`` -> number of non-finite feature values replaced by 0."""

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def count_nonfinite(self, split: str, key: str, count: int) -> None:
        if count:
            self.nonfinite[f"{split} {key}"] = self.nonfinite.get(f"{split} {key}", 0) + count

    def finish(self, dataset: MultimodalDataset, stacklevel: int = 3) -> MultimodalDataset:
        """Append the notes to ``dataset.notes`` and warn about replaced non-finite values (never
        silently: MOSEI audio holds ``-inf`` and a user should know it was zeroed)."""
        if self.nonfinite:
            total = sum(self.nonfinite.values())
            detail = ", ".join(f"{k} {v}" for k, v in self.nonfinite.items())
            msg = (
                f"{dataset.source or dataset.kind}: replaced {total} non-finite feature value(s) "
                f"(NaN/inf) by 0 ({detail})"
            )
            self.note(msg)
            warnings.warn(msg, NonFiniteWarning, stacklevel=stacklevel)
        for text in self.notes:
            if text not in dataset.notes:
                dataset.notes.append(text)
        return dataset


def _shape_of(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def replace_nonfinite_(x: np.ndarray, chunk_elements: int = CHUNK_ELEMENTS) -> tuple[np.ndarray, int]:
    """Replace NaN/±inf in ``x`` by 0, in place, one block of samples at a time.

    Returns ``(x, count)``. ``x`` is copied only when it holds a non-finite value and is read-only.
    Blocks run along the first axis, so strided (non-contiguous) arrays work without a copy.
    """
    if x.size == 0 or not np.issubdtype(x.dtype, np.floating):
        return x, 0
    per_sample = max(1, x.size // max(1, x.shape[0]))
    step = max(1, chunk_elements // per_sample)
    count = 0
    for start in range(0, x.shape[0], step):
        block = x[start : start + step]
        finite = np.isfinite(block)
        if finite.all():
            continue
        bad = ~finite
        del finite
        n_bad = int(np.count_nonzero(bad))
        if not x.flags.writeable:
            x = x.copy()
            block = x[start : start + step]
        block[bad] = 0
        count += n_bad
    return x, count


def float_features(value: Any, where: str, key: str) -> np.ndarray:
    """``[N, T, D]`` float32 features (no copy if already float32); rank checked."""
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        x = value
    else:
        try:
            if isinstance(value, np.ndarray) and value.dtype == object:
                value = value.tolist()
            x = np.asarray(value, dtype=np.float32)
        except (ValueError, TypeError) as err:
            raise DataError(
                f"{where}, key {key!r}: expected a float array [N, T, D], found {_shape_of(value)} "
                f"that does not convert ({err})"
            ) from None
    if x.ndim != 3:
        raise DataError(f"{where}, key {key!r}: expected shape [N, T, D] (rank 3), found {x.shape}")
    return x


def int_lengths(value: Any, where: str, key: str, log: ReadLog | None = None) -> np.ndarray:
    """``[N]`` int64 true lengths from a list or array; non-integral or negative values are
    errors, zero lengths become 1 (the first, padded step then counts as valid) with a note."""
    arr = np.asarray(value)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{where}, key {key!r}: expected lengths of shape [N], found {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise DataError(f"{where}, key {key!r}: lengths must be whole numbers, found {arr[:5]}...")
    elif arr.dtype.kind not in "iub" and arr.size:
        raise DataError(f"{where}, key {key!r}: expected integer lengths, found dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        raise DataError(f"{where}, key {key!r}: lengths must be >= 0, found {int(out.min())}")
    zeros = int(np.count_nonzero(out == 0))
    if zeros:
        out[out == 0] = 1
        if log is not None:
            log.note(f"{where}, key {key!r}: {zeros} zero length(s) set to 1")
    return out


def _labels_1d(value: Any, where: str, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except ValueError as err:
        raise DataError(f"{where}, key {key!r}: labels do not form an array ({err})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:  # some dumps store [N, 1]
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{where}, key {key!r}: expected labels of shape [N], found {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{where}, key {key!r}: expected numeric labels, found dtype {arr.dtype}")
    return arr


def regression_labels(value: Any, where: str, key: str) -> np.ndarray:
    """``[N]`` float32 regression labels; non-finite labels are an error (never zeroed)."""
    arr = _labels_1d(value, where, key).astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"{where}, key {key!r}: {bad.size} non-finite label(s) (first at index {int(bad[0])}: "
            f"{arr[bad[0]]}); labels cannot be repaired, fix or drop those samples"
        )
    return arr


def class_labels(value: Any, where: str, key: str) -> np.ndarray:
    """``[N]`` int64 class indices from int or integral float labels (IEMOCAP stores floats)."""
    arr = _labels_1d(value, where, key)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise DataError(
                f"{where}, key {key!r}: {bad.size} non-finite class label(s) (first at index "
                f"{int(bad[0])})"
            )
        frac = np.flatnonzero(arr != np.round(arr))
        if frac.size:
            raise DataError(
                f"{where}, key {key!r}: class labels must be whole numbers, found {arr[frac[0]]} at "
                f"index {int(frac[0])} ({frac.size} non-integral)"
            )
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        raise DataError(f"{where}, key {key!r}: class labels must be >= 0, found {int(out.min())}")
    return out


def str_array(value: Any, where: str, key: str) -> np.ndarray:
    """``[N]`` numpy unicode array (not object: it saves without pickle) from object arrays or
    lists of str/bytes (Python 2 pickles give bytes when not decoded)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        arr = value
    else:
        seq: Sequence[Any] = value.tolist() if isinstance(value, np.ndarray) else list(value)
        items = [
            v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v) for v in seq
        ]
        arr = np.array(items, dtype=np.str_) if items else np.zeros(0, dtype="<U1")
    if arr.ndim != 1:
        raise DataError(f"{where}, key {key!r}: expected shape [N], found {arr.shape}")
    return arr


def bert_inputs(value: Any, where: str, n: int) -> tuple[np.ndarray, bool]:
    """``[N, 3, T]`` int64 BERT inputs (rows: token ids, attention mask, segment ids).

    Files store them as float or int64. Older dumps swap rows 1 and 2; the attention mask is the
    row with the larger sum (segment ids are mostly 0), so we put it back in row 1. Returns the
    array and whether the rows were swapped.
    """
    arr = np.asarray(value)
    if arr.ndim != 3 or arr.shape[:2] != (n, 3):
        raise DataError(f"{where}, key 'text_bert': expected shape ({n}, 3, T), found {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise DataError(f"{where}, key 'text_bert': token ids/mask/segments must be whole numbers")
    elif arr.dtype.kind not in "iub":
        raise DataError(f"{where}, key 'text_bert': expected numbers, found dtype {arr.dtype}")
    out = arr.astype(np.int64)  # a fresh array, so the swap below never touches the file's data
    swapped = bool(out[:, 2].sum() > out[:, 1].sum())
    if swapped:
        out[:, [1, 2]] = out[:, [2, 1]]
    return out, swapped


def concat_splits(parts: Sequence[Split]) -> Split:
    """The samples of ``parts`` one after another (a copy); modalities and widths must agree.
    Optional fields (``text_bert``, ``raw_text``, extra labels) survive only if every part has
    them."""
    first = parts[0]

    def cat(arrays: list[np.ndarray | None]) -> np.ndarray | None:
        present = [a for a in arrays if a is not None]
        return np.concatenate(present) if len(present) == len(arrays) else None

    extra_keys = [k for k in first.extra_labels if all(k in p.extra_labels for p in parts)]
    return Split(
        features={m: np.concatenate([p.features[m] for p in parts]) for m in first.features},
        lengths={m: np.concatenate([p.lengths[m] for p in parts]) for m in first.lengths},
        labels=np.concatenate([p.labels for p in parts]),
        ids=np.concatenate([p.ids for p in parts]),
        extra_labels={k: np.concatenate([p.extra_labels[k] for p in parts]) for k in extra_keys},
        text_bert=cat([p.text_bert for p in parts]),
        raw_text=cat([p.raw_text for p in parts]),
    )
