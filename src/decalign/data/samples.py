"""Samples to predict on: a data file with any splits, or none, and labels optional.

Training needs train, valid and test with labels (:func:`decalign.data.load_dataset`). Scoring
new samples needs only features, so ``decalign predict`` and ``decalign info`` also accept

* an MMSA-layout pickle with any of the splits, labels or not (``{"test": {"text": ..., ...}}``);
* a pickle of one flat dict of named arrays (``{"text": [N,T,D], "audio": ..., "id": [N]}``);
* a native ``.npz``/``.safetensors`` file with ``<split>/<key>`` arrays for any splits, or flat
  ``<key>`` arrays (one set of samples), or a directory of such files (one set per file).

Within a set: every float rank-3 array is a modality's ``[N, T, D]`` features; ``<m>_lengths``
gives true lengths; ``id``/``ids`` the sample ids; ``labels``, ``regression_labels`` or
``classification_labels`` labels; ``text_bert`` BERT token ids. Other keys are ignored. Pickles go
through the same restricted unpickler as the benchmarks. Non-finite feature values become 0 and
are noted, as in the dataset readers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from decalign.data.arrays import bert_inputs, float_features, int_lengths, replace_nonfinite_, str_array
from decalign.data.types import SPLITS, DataError, MultimodalDataset, numbered_ids

__all__ = ["SampleSet", "Samples", "describe_samples", "read_samples", "samples_from_dataset", "samples_instead"]

LABEL_KEYS = ("labels", "regression_labels", "classification_labels")
ID_KEYS = ("id", "ids")


@dataclass
class SampleSet:
    """N samples: features ``[N, T_m, D_m]`` float32, lengths ``[N]`` int64, ids ``[N]`` str,
    optional labels ``[N]`` (as stored: float or integer) and BERT token ids ``[N, 3, T]``."""

    features: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    ids: np.ndarray
    labels: np.ndarray | None = None
    text_bert: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.features)


@dataclass
class Samples:
    """Named sets of samples (splits of a file, or one set called ``samples``)."""

    source: str
    sets: dict[str, SampleSet]
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] | None = None
    """The dataset's extraction record (``decalign extract``), if it has one."""

    @property
    def labelled(self) -> bool:
        return all(s.labels is not None for s in self.sets.values())

    @property
    def is_full_dataset(self) -> bool:
        """Labelled train, valid and test sets: a dataset for training, which
        :func:`~decalign.data.load_dataset` reads (and validates) itself."""
        return self.labelled and all(s in self.sets for s in SPLITS)


def samples_from_dataset(dataset: MultimodalDataset) -> Samples:
    """A loaded :class:`~decalign.data.MultimodalDataset` seen as labelled sample sets."""
    sets = {
        name: SampleSet(dict(sp.features), dict(sp.lengths), sp.ids, sp.labels, sp.text_bert)
        for name, sp in dataset.splits.items()
    }
    return Samples(str(dataset.source or dataset.kind), sets, list(dataset.notes), getattr(dataset, "provenance", None))


def _read_set(get: Callable[[str], Any], keys: list[str], where: str, name: str, notes: list[str]) -> SampleSet:
    features: dict[str, np.ndarray] = {}
    for key in keys:
        if key in LABEL_KEYS or key in ID_KEYS or key.endswith("_lengths") or key == "text_bert":
            continue
        value = get(key)
        shape = getattr(value, "shape", None)
        kind = getattr(getattr(value, "dtype", None), "kind", None)
        if isinstance(value, (list, tuple)):
            value = np.asarray(value)
            shape, kind = value.shape, value.dtype.kind
        if shape is None or len(shape) != 3 or kind != "f":
            continue  # raw_text, extra labels, anything that is not [N, T, D] features
        x, bad = replace_nonfinite_(float_features(value, where, key))
        if bad:
            notes.append(f"{where}, key {key!r}: {bad} non-finite feature value(s) replaced by 0")
        features[key] = x
    if not features:
        raise DataError(f"{where}: no features found (float [N, T, D] arrays); found keys {sorted(keys)}")
    sizes = {m: int(x.shape[0]) for m, x in features.items()}
    if len(set(sizes.values())) > 1:
        raise DataError(f"{where}: modalities hold different numbers of samples {sizes}")
    n = next(iter(sizes.values()))
    lengths: dict[str, np.ndarray] = {}
    for m, x in features.items():
        key = f"{m}_lengths"
        if key in keys:
            ln = int_lengths(get(key), where, key)
            if ln.shape != (n,) or (n and (ln.min() < 1 or ln.max() > x.shape[1])):
                raise DataError(f"{where}, key {key!r}: expected {n} lengths in [1, {x.shape[1]}], found shape "
                                f"{ln.shape}, range [{ln.min() if n else '-'}, {ln.max() if n else '-'}]")
            lengths[m] = ln
        else:
            lengths[m] = np.full(n, x.shape[1], dtype=np.int64)
    id_key = next((k for k in ID_KEYS if k in keys), None)
    if id_key is not None:
        ids = str_array(get(id_key), where, id_key)
        if ids.shape != (n,):
            raise DataError(f"{where}, key {id_key!r}: expected shape ({n},), found {ids.shape}")
    else:
        ids = numbered_ids(name, n)
    labels = None
    label_key = next((k for k in LABEL_KEYS if k in keys), None)
    if label_key is not None:
        labels = np.asarray(get(label_key))
        labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
        if labels.shape != (n,) or labels.dtype.kind not in "biuf":
            raise DataError(f"{where}, key {label_key!r}: expected {n} numbers, found {labels.dtype} {labels.shape}")
    text_bert = bert_inputs(get("text_bert"), where, n)[0] if "text_bert" in keys else None
    return SampleSet(features, lengths, ids, labels, text_bert)


def _mapping_sets(obj: Mapping[str, Any], source: str, notes: list[str]) -> dict[str, SampleSet]:
    splits = [s for s in obj if isinstance(obj[s], Mapping)]
    if splits:
        order = [s for s in SPLITS if s in splits] + [s for s in splits if s not in SPLITS]
        return {s: _read_set(obj[s].__getitem__, [str(k) for k in obj[s]], f"{source}, split {s!r}", s, notes)
                for s in order}
    return {"samples": _read_set(obj.__getitem__, [str(k) for k in obj], source, "samples", notes)}


def _prefixed_sets(
    keys: list[str], getter: Callable[[str], Any], source: str, notes: list[str]
) -> dict[str, SampleSet]:
    """Sets from one file's keys: ``<split>/<key>`` groups, or all keys as one set."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        if "/" in k:
            prefix, rest = k.split("/", 1)
            groups.setdefault(prefix, []).append(rest)
    if not groups:
        return {"samples": _read_set(getter, keys, source, "samples", notes)}
    return {
        g: _read_set(lambda key, g=g: getter(f"{g}/{key}"), sub, f"{source}, split {g!r}", g, notes)  # type: ignore[misc]
        for g, sub in groups.items()
    }


def _native_file(path: Path, fmt: str, notes: list[str]) -> dict[str, SampleSet]:
    from decalign.data.native import _open_npz, _open_safetensors

    if fmt == "npz":
        with _open_npz(path) as npz:
            keys = [k for k in npz.files if k != "__meta__"]
            return _prefixed_sets(keys, lambda k: npz[k], str(path), notes)
    import json

    with _open_safetensors(path) as (fh, md):
        keys = list(fh.keys())
        strings = {k: np.asarray(json.loads(v), dtype=np.str_) for k, v in md.items()
                   if k.rsplit("/", 1)[-1] in ID_KEYS}

        def get(key: str) -> Any:
            return strings[key] if key in strings else fh.get_tensor(key)

        return _prefixed_sets(keys + list(strings), get, str(path), notes)


def samples_instead(path: str | os.PathLike[str], full_error: DataError) -> Samples:
    """The samples of ``path`` after the full-dataset reader refused it with ``full_error``:
    a file of samples to predict on is not a training dataset. ``full_error`` is what is raised
    when ``path`` holds no samples either, or holds a full labelled dataset after all (then the
    full reader's complaint is the news)."""
    try:
        samples = read_samples(path)
    except DataError:
        raise full_error from None
    if samples.is_full_dataset:
        raise full_error from None
    return samples


def read_samples(path: str | os.PathLike[str]) -> Samples:
    """Read whatever sets of samples ``path`` holds (see the module docstring)."""
    from decalign.data.native import sniff_format
    from decalign.data.safe_pickle import load_pickle

    p = Path(path)
    notes: list[str] = []
    what = sniff_format(p)
    if what in ("npz", "safetensors"):
        sets = _native_file(p, what, notes)
    elif what == "directory":
        files = sorted(f for f in p.iterdir() if f.suffix in (".npz", ".safetensors"))
        if not files:
            raise DataError(f"{p}: no .npz or .safetensors files in the directory")
        sets = {}
        for f in files:
            for name, s in _native_file(f, f.suffix[1:], notes).items():
                sets[f.stem if name == "samples" else f"{f.stem}/{name}"] = s
    else:
        obj = load_pickle(p)
        if not isinstance(obj, Mapping):
            raise DataError(f"{p}: the pickle holds a {type(obj).__name__}; expected a dict of splits or of "
                            "named arrays")
        sets = _mapping_sets(obj, str(p), notes)
    return Samples(str(p), sets, notes)


def describe_samples(samples: Samples) -> dict[str, Any]:
    """``decalign info`` for sample sets: the keys of :func:`~decalign.data.describe_dataset`."""
    from decalign.data.detect import detect_kind

    first = next(iter(samples.sets.values()))
    dims = {m: int(x.shape[2]) for m, x in first.features.items()}
    splits: dict[str, Any] = {}
    for name, s in samples.sets.items():
        labels: dict[str, Any] = {}
        if s.labels is not None and len(s):
            y = s.labels.astype(np.float64)
            labels = {"min": float(y.min()), "max": float(y.max()), "mean": float(y.mean()),
                      "std": float(y.std()), "zeros": int(np.count_nonzero(y == 0))}
        splits[name] = {
            "n": len(s),
            "modalities": {m: {"shape": list(x.shape), "dtype": str(x.dtype),
                               "lengths": [int(s.lengths[m].min()), int(s.lengths[m].max())] if len(s) else None}
                           for m, x in s.features.items()},
            "labels": labels,
        }
    labelled = samples.labelled
    note = ("labelled samples without the full train/valid/test set: usable with `decalign predict`" if labelled
            else "no labels: usable with `decalign predict`, not with `train` or `eval`")
    return {
        "kind": detect_kind(dims),
        "layout": "samples",
        "task": "labelled" if labelled else "unlabelled",
        "source": samples.source,
        "modalities": {m: {"dim": dims[m], "seq_len": int(first.features[m].shape[1])} for m in dims},
        "aligned": len({x.shape[1] for x in first.features.values()}) == 1,
        "splits": splits,
        "notes": [note, *samples.notes],
    }
