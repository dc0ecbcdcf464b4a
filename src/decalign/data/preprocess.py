"""Per-dimension percentile clipping and standardisation of audio and vision features.

The MOSEI and CH-SIMS presets (docs/method.md §11) standardise every feature
dimension ``j`` of audio and vision with statistics of the train split, over all samples and
time steps, padding included:

.. math::

    \\ell_j, h_j = \\mathrm{percentile}_{p_{lo}, p_{hi}}(x_{\\cdot,\\cdot,j}), \\quad
    \\tilde x = \\mathrm{clip}(x, \\ell_j, h_j), \\quad
    \\mu_j = \\mathrm{mean}(\\tilde x_{\\cdot,\\cdot,j}), \\quad
    \\sigma_j = \\max(\\mathrm{std}(\\tilde x_{\\cdot,\\cdot,j}), 10^{-6})

and every split is mapped to :math:`(\\mathrm{clip}(x, \\ell, h) - \\mu) / \\sigma`, non-finite
inputs and results set to 0. ``std`` is the population standard deviation (``ddof=0``);
percentiles use numpy's default linear interpolation.

MOSEI's unaligned audio train split is 16326 x 500 x 74 floats (2.4 GB), so both passes work on
blocks of dimensions (percentiles) or samples (moments, application) and never hold more than a
bounded temporary besides the output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np

from decalign.data.arrays import CHUNK_ELEMENTS
from decalign.data.types import DataError, MultimodalDataset, Split

__all__ = [
    "FeatureStats",
    "apply_standardizer",
    "apply_standardizer_",
    "fit_standardizer",
    "standardize",
    "standardize_array",
    "standardized_modalities",
]

STD_FLOOR = 1e-6
_PERCENTILE_BLOCK = 1 << 25
"""Elements copied at a time for the percentile pass (128 MiB of float32): each copy of a few
dimensions reads every row of the array, so fewer, larger blocks are much faster."""


class FeatureStats(NamedTuple):
    """Train statistics of one modality, each float32 ``[D]``: clip bounds, mean and std of the
    clipped values."""

    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def standardized_modalities(dataset: MultimodalDataset) -> tuple[str, ...]:
    """The modalities the presets standardise: every one but ``text`` (audio and vision on the
    benchmarks; BERT features are left as they are)."""
    return tuple(m for m in dataset.modalities if m != "text")


def _sample_step(x: np.ndarray) -> int:
    per_sample = max(1, int(np.prod(x.shape[1:])))
    return max(1, CHUNK_ELEMENTS // per_sample)


def _fit_one(x: np.ndarray, percentiles: tuple[float, float]) -> FeatureStats:
    n, t, d = x.shape
    rows = n * t
    if rows == 0:
        raise DataError(f"cannot fit standardisation statistics on an empty array {x.shape}")
    lo = np.empty(d, dtype=np.float64)
    hi = np.empty(d, dtype=np.float64)
    group = max(1, _PERCENTILE_BLOCK // rows)
    for j0 in range(0, d, group):
        j1 = min(d, j0 + group)
        # [g, N*T] contiguous copy of a few dimensions; percentile may then partition it in place.
        block = np.ascontiguousarray(np.moveaxis(x[:, :, j0:j1], 2, 0)).reshape(j1 - j0, rows)
        np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        q = np.percentile(block, list(percentiles), axis=1, overwrite_input=True)
        lo[j0:j1], hi[j0:j1] = q[0], q[1]
        del block
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    # Moments of the clipped values, accumulated in float64 around the centre of the clip range
    # (values are then bounded by half the range, so sum of squares minus squared sum is stable).
    shift = ((lo + hi) / 2).astype(np.float32)
    s1 = np.zeros(d, dtype=np.float64)
    s2 = np.zeros(d, dtype=np.float64)
    step = _sample_step(x)
    for i in range(0, n, step):
        c = np.nan_to_num(x[i : i + step], nan=0.0, posinf=0.0, neginf=0.0)
        np.clip(c, lo32, hi32, out=c)
        c -= shift
        s1 += c.sum(axis=(0, 1), dtype=np.float64)
        s2 += np.einsum("ntd,ntd->d", c, c, dtype=np.float64)
    mean_shifted = s1 / rows
    var = np.maximum(s2 / rows - mean_shifted**2, 0.0)
    mean = (mean_shifted + shift).astype(np.float32)
    std = np.maximum(np.sqrt(var), STD_FLOOR).astype(np.float32)
    return FeatureStats(lo32, hi32, mean, std)


def fit_standardizer(
    split: Split, modalities: Iterable[str], percentiles: tuple[float, float]
) -> dict[str, FeatureStats]:
    """Clip bounds, mean and std per feature dimension of ``modalities`` on ``split`` (the train
    split), padding included. ``percentiles`` are in [0, 100], e.g. ``(0.5, 99.5)`` for MOSEI."""
    lo_p, hi_p = percentiles
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise DataError(f"percentiles must satisfy 0 <= lo < hi <= 100, found {percentiles}")
    stats: dict[str, FeatureStats] = {}
    for m in modalities:
        if m not in split.features:
            raise DataError(f"cannot standardise modality {m!r}: the split has {list(split.features)}")
        stats[m] = _fit_one(split.features[m], (float(lo_p), float(hi_p)))
    return stats


def _transform_into(x: np.ndarray, out: np.ndarray, st: FeatureStats) -> None:
    step = _sample_step(x)
    for i in range(0, x.shape[0], step):
        c = out[i : i + step]
        if out is not x:
            c[...] = x[i : i + step]
        np.nan_to_num(c, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        np.clip(c, st.lo, st.hi, out=c)
        c -= st.mean
        c /= st.std
        np.nan_to_num(c, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def _check_stats(dataset: MultimodalDataset, stats: Mapping[str, FeatureStats]) -> None:
    for m, st in stats.items():
        if m not in dataset.modalities:
            raise DataError(f"standardisation statistics for {m!r}, but the dataset has {dataset.modalities}")
        d = dataset.input_dims[m]
        if any(np.shape(a) != (d,) for a in st):
            raise DataError(
                f"standardisation statistics for {m!r} have shapes {[np.shape(a) for a in st]}, "
                f"expected ({d},) each (the feature width)"
            )


def _note(stats: Mapping[str, FeatureStats]) -> str:
    return f"standardised {sorted(stats)} per feature dimension with train clip/mean/std statistics"


def apply_standardizer(dataset: MultimodalDataset, stats: Mapping[str, FeatureStats]) -> MultimodalDataset:
    """A new dataset whose ``stats`` modalities are clipped and standardised in every split.

    ``dataset`` is not modified; arrays of other modalities, labels and ids are shared with it.
    """
    _check_stats(dataset, stats)
    st32 = {m: FeatureStats(*(np.asarray(a, dtype=np.float32) for a in st)) for m, st in stats.items()}
    splits: dict[str, Split] = {}
    for name, sp in dataset.splits.items():
        feats = dict(sp.features)
        for m, st in st32.items():
            out = np.empty_like(sp.features[m])
            _transform_into(sp.features[m], out, st)
            feats[m] = out
        splits[name] = Split(
            features=feats,
            lengths=sp.lengths,
            labels=sp.labels,
            ids=sp.ids,
            extra_labels=sp.extra_labels,
            text_bert=sp.text_bert,
            raw_text=sp.raw_text,
        )
    return MultimodalDataset(
        kind=dataset.kind,
        layout=dataset.layout,
        task=dataset.task,
        splits=splits,
        class_names=dataset.class_names,
        label_range=dataset.label_range,
        source=dataset.source,
        notes=[*dataset.notes, _note(stats)],
    )


def apply_standardizer_(dataset: MultimodalDataset, stats: Mapping[str, FeatureStats]) -> MultimodalDataset:
    """In-place variant of :func:`apply_standardizer` for a dataset nobody else holds (the loader
    uses it so that MOSEI is not held twice). Returns ``dataset``."""
    _check_stats(dataset, stats)
    for sp in dataset.splits.values():
        for m, st in stats.items():
            x = sp.features[m]
            if not x.flags.writeable:
                x = sp.features[m] = x.copy()
            _transform_into(x, x, FeatureStats(*(np.asarray(a, dtype=np.float32) for a in st)))
    dataset.notes.append(_note(stats))
    return dataset


def standardize_array(x: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """A standardised float32 copy of one modality's ``[..., D]`` features with saved ``stats``:
    the transform every split of a run went through, for new samples (the predictor)."""
    st = FeatureStats(*(np.asarray(a, dtype=np.float32) for a in stats))
    out = np.array(x, dtype=np.float32, copy=True)
    flat = out.reshape(-1, 1, out.shape[-1]) if out.ndim != 3 else out
    _transform_into(flat, flat, st)
    return out


def standardize(
    dataset: MultimodalDataset,
    percentiles: tuple[float, float] | None = None,
    stats: Mapping[str, FeatureStats] | None = None,
    *,
    in_place: bool = False,
) -> tuple[MultimodalDataset, dict[str, FeatureStats]]:
    """The one preparation step for features: clip and standardise every non-text modality with
    ``stats`` (saved with a model) or, without them, statistics fitted here on the train split at
    ``percentiles`` (``None``: nothing to do). Returns the dataset (``dataset`` itself with
    ``in_place``, else a copy) and the statistics used."""
    if stats is None:
        modalities = standardized_modalities(dataset) if percentiles is not None else ()
        stats = fit_standardizer(dataset.splits["train"], modalities, percentiles) if modalities and percentiles else {}
    if stats:
        dataset = (apply_standardizer_ if in_place else apply_standardizer)(dataset, stats)
    return dataset, dict(stats)
