"""Checks a dataset must pass before any training: the values, not just the shapes.

:meth:`MultimodalDataset.validate` guarantees shapes and dtypes. These checks catch what is
well-shaped but unusable, and would otherwise surface as a silent bad run or a traceback deep in
training (a ``FloatingPointError`` after minutes, an empty test split after the last epoch):

* a modality of width 0 or padded length 0;
* labels outside the dataset kind's range (MOSI/MOSEI sentiment in [-3, 3], CH-SIMS in [-1, 1],
  IEMOCAP classes below the number of class names);
* feature values that are not finite, or beyond :data:`MAX_ABS_FEATURE` in magnitude;
* (for training, :func:`check_nonempty`) an empty split.

Each error is a :class:`~decalign.errors.DataError` naming the file, split, modality, sample index
and id, and the value found.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from decalign.data.detect import DATASET_KINDS
from decalign.data.types import SPLITS, MultimodalDataset, Split
from decalign.errors import DataError

__all__ = ["MAX_ABS_FEATURE", "InvalidValuesError", "check_nonempty", "check_values"]


class InvalidValuesError(DataError):
    """The data has the right layout but values no model can train on (a zero width, a label
    outside the kind's range, a non-finite or absurd feature): no other reading of the file helps."""

MAX_ABS_FEATURE = 1e8
"""Largest feature magnitude accepted. Real extractors (BERT, COVAREP, Facet, OpenFace, openSMILE)
stay below ~1e5; beyond 1e8 a float32 square is 1e16 and the sums of squares in normalisation,
standardisation and attention overflow or lose every significant digit (1e30 or 3e38 end training
in a ``FloatingPointError``)."""

_LABEL_TOLERANCE = 1e-4
_CHUNK_ELEMENTS = 1 << 22  # scan features in blocks of ~16 MB so the check adds no large copy


def _where(ds: MultimodalDataset) -> str:
    return ds.source or ds.kind


def _sample(sp: Split, i: int) -> str:
    return f"sample {i} (id {str(sp.ids[i])!r})" if i < len(sp.ids) else f"sample {i}"


def label_range(ds: MultimodalDataset) -> tuple[float, float] | None:
    """The valid regression label range of ``ds``: its own, else its kind's (the registry)."""
    if ds.task != "regression":
        return None
    if ds.label_range is not None:
        return ds.label_range
    spec = DATASET_KINDS.get(ds.kind)
    return spec.label_range if spec is not None and spec.task == "regression" else None


def _first_bad_feature(x: np.ndarray, limit: float) -> tuple[int, tuple[int, ...], float] | None:
    """(sample, position, value) of the first value not finite or beyond ``limit``, else None."""
    if x.size == 0:
        return None
    per = max(1, _CHUNK_ELEMENTS // max(1, x[0].size))
    for start in range(0, x.shape[0], per):
        block = x[start : start + per]
        bad = ~(np.abs(block) <= limit)  # NaN compares False, so it is caught too
        if bad.any():
            pos = tuple(int(v) for v in np.argwhere(bad)[0])
            return start + pos[0], pos[1:], float(block[pos])
    return None


def _check_labels(ds: MultimodalDataset, name: str, sp: Split) -> None:
    where = f"{_where(ds)}, split {name!r}"
    rng = label_range(ds)
    if rng is not None and len(sp):
        lo, hi = rng
        tol = _LABEL_TOLERANCE * max(1.0, abs(lo), abs(hi))
        arrays = [("labels", sp.labels)]
        if ds.kind == "sims":  # CH-SIMS unimodal labels share the range
            arrays += sorted(sp.extra_labels.items())
        for key, labels in arrays:
            values = np.asarray(labels, dtype=np.float64)
            outside = np.flatnonzero(~((values >= lo - tol) & (values <= hi + tol)))
            if outside.size:
                i = int(outside[0])
                raise InvalidValuesError(
                    f"{where}, {_sample(sp, i)}: {'label' if key == 'labels' else key} {values[i]:g} is outside "
                    f"{ds.kind}'s range [{lo:g}, {hi:g}] ({outside.size} label(s) outside); if the file uses "
                    "another scale, read it as --dataset custom"
                )
    if ds.task == "classification" and len(sp):
        k = ds.num_classes or 0
        bad = np.flatnonzero((sp.labels < 0) | (sp.labels >= k))
        if bad.size:
            i = int(bad[0])
            names = f" {list(ds.class_names)}" if ds.class_names else ""
            raise InvalidValuesError(
                f"{where}, {_sample(sp, i)}: class {int(sp.labels[i])} is not one of the {k} classes{names}"
            )


def check_values(ds: MultimodalDataset, limit: float = MAX_ABS_FEATURE) -> None:
    """Refuse zero widths, labels outside the kind's range, and non-finite or absurd features.

    Raises:
        DataError: naming the file, split, modality, sample (index and id), position and value.
    """
    src = _where(ds)
    for m, x in ds.splits["train"].features.items():
        if x.shape[2] == 0 or x.shape[1] == 0:
            what = "feature width" if x.shape[2] == 0 else "padded length"
            raise InvalidValuesError(
                f"{src}, modality {m!r}: {what} 0 (shape {tuple(x.shape)}); a modality needs at least one "
                "feature and one step (leave the modality out of the file instead)"
            )
    for name in SPLITS:
        sp = ds.splits[name]
        _check_labels(ds, name, sp)
        for m, x in sp.features.items():
            found = _first_bad_feature(x, limit)
            if found is not None:
                i, pos, value = found
                problem = "is not finite" if not np.isfinite(value) else f"is beyond ±{limit:g}"
                raise InvalidValuesError(
                    f"{src}, split {name!r}, modality {m!r}, {_sample(sp, i)}, step {pos[0]}, feature "
                    f"{pos[1]}: value {value:.4g} {problem}; features this large overflow training "
                    "(rescale or standardise them)"
                )


def check_nonempty(ds: MultimodalDataset, splits: Iterable[str] = SPLITS, purpose: str = "training") -> None:
    """Refuse a dataset with an empty split among ``splits`` (training fits on train, selects
    epochs on valid and reports test: an empty one would fail only after training, or never)."""
    names = list(splits)
    for name in names:
        if len(ds.splits[name]) == 0:
            raise DataError(
                f"{_where(ds)}: split {name!r} is empty (0 samples); {purpose} needs samples in "
                f"{', '.join(repr(s) for s in names)}"
            )
