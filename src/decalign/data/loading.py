"""One entry point for every data source: :func:`load_dataset`; plus :func:`describe_dataset`
(for ``decalign info``) and :func:`convert` (for ``decalign convert``).

What a path holds is decided from its content by the readers of :mod:`decalign.data.readers`
(our native format, the MMSA layout, the dialogue-level IEMOCAP sequence). The benchmark
(``kind``) is detected from feature widths unless ``DataConfig.dataset`` forces one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from decalign.config import DataConfig
from decalign.data.checks import check_values
from decalign.data.iemocap import apply_iemocap_protocol
from decalign.data.misleading import MisleadingModality
from decalign.data.native import save_native
from decalign.data.readers import read_file
from decalign.data.synthetic import make_synthetic
from decalign.data.types import SPLITS, DataError, MultimodalDataset

__all__ = ["convert", "describe_dataset", "load_dataset"]


def load_dataset(path: str | os.PathLike[str] | None = None, config: DataConfig | None = None) -> MultimodalDataset:
    """Read and validate a dataset, its features as the file carries them.

    Standardisation is not applied here: :func:`decalign.api.prepare` fits it on the train split
    (``config.standardize``) or applies a checkpoint's saved statistics, and saves it with the
    model; :func:`decalign.data.preprocess.standardize` does it alone.

    Args:
        path: a benchmark pickle, a native ``.npz``/``.safetensors`` file or directory, or
            ``None`` for ``config.path`` (and, if that is ``None`` too, the synthetic benchmark).
        config: ``dataset`` ``"auto"`` detects the kind; a benchmark name or ``"custom"`` forces
            it (a mismatch with the benchmark's shapes is allowed and noted); ``"synthetic"``
            generates ``config.synthetic``. ``iemocap_protocol``, ``valid_fraction`` and
            ``split_seed`` apply to IEMOCAP.

    Returns:
        The dataset; what the reader fixed or noticed is in ``dataset.notes`` (non-finite feature
        values replaced by 0 are also reported with a :class:`~decalign.data.arrays.NonFiniteWarning`).

    Raises:
        DataError: naming file, split, key and expected vs found shape; ``UnsafePickleError``
            (a ``DataError``) for pickles that reference code; for zero widths, labels outside the
            kind's range and absurd feature values (:func:`decalign.data.checks.check_values`).
    """
    config = config or DataConfig()
    if path is None:
        path = config.path
    kind = config.dataset
    if kind == "synthetic" or (path is None and kind == "auto"):
        ds = make_synthetic(config.synthetic)
        if path is not None:
            ds.notes.append(f"dataset 'synthetic' requested: the path {os.fspath(path)!r} was not read")
    elif path is None:
        raise DataError(f"dataset {kind!r} needs its data file: pass --data PATH (or set data.path)")
    else:
        ds = read_file(path, None if kind == "auto" else kind, config)
    if ds.kind == "iemocap":
        ds = apply_iemocap_protocol(ds, config.iemocap_protocol)
    check_values(ds)
    return ds


def convert(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    fmt: str | None = None,
    kind: str | None = None,
    config: DataConfig | None = None,
    overwrite: bool = False,
    misleading: MisleadingModality | None = None,
) -> Path:
    """Read ``in_path`` (any supported layout) and write it in the native format.

    ``fmt``: ``"npz"`` or ``"safetensors"`` (default: from ``out_path``'s suffix, else npz);
    ``out_path`` ending in ``.npz``/``.safetensors`` gives one file, else a directory.
    ``kind`` forces the dataset kind (default: detected). ``config`` supplies the IEMOCAP split
    settings; the features are written as the file carries them (never standardised).
    An existing ``out_path`` is refused unless ``overwrite``, and so is one that is (or holds)
    ``in_path`` (:mod:`decalign.safety.outputs`). ``misleading`` adds a modality that misleads
    (:func:`decalign.data.misleading.add_misleading_modality`). Returns the written path.
    """
    from decalign.safety.outputs import guarded_output

    config = config or DataConfig()
    overrides: dict[str, Any] = {"path": None}
    if kind is not None:
        overrides["dataset"] = kind
    cfg = dataclasses.replace(config, **overrides)
    with guarded_output(out_path, flag="OUT", inputs={"IN": in_path}, overwrite=overwrite) as out:
        ds = load_dataset(in_path, cfg)
        if misleading is not None:
            from decalign.data.misleading import add_misleading_modality

            ds = add_misleading_modality(ds, misleading)
        return save_native(ds, out, fmt)


def _label_summary(labels: np.ndarray, task: str, class_names: tuple[str, ...] | None) -> dict[str, Any]:
    if len(labels) == 0:
        return {}
    if task == "classification":
        values, counts = np.unique(labels, return_counts=True)
        names = class_names or ()
        return {
            "class_counts": {
                (names[int(v)] if int(v) < len(names) else str(int(v))): int(c) for v, c in zip(values, counts)
            }
        }
    return {
        "min": float(labels.min()),
        "max": float(labels.max()),
        "mean": float(labels.mean()),
        "std": float(labels.std()),
        "zeros": int(np.count_nonzero(labels == 0)),
    }


def describe_dataset(ds: MultimodalDataset) -> dict[str, Any]:
    """A JSON-serialisable summary for ``decalign info``: kind, layout, task, per split the sample
    count, per-modality shape/dtype/length range, label range or class counts, and the notes."""
    splits: dict[str, Any] = {}
    for name in SPLITS:
        sp = ds.splits[name]
        splits[name] = {
            "n": len(sp),
            "modalities": {
                m: {
                    "shape": list(x.shape),
                    "dtype": str(x.dtype),
                    "lengths": [int(sp.lengths[m].min()), int(sp.lengths[m].max())] if len(sp) else None,
                }
                for m, x in sp.features.items()
            },
            "labels": _label_summary(sp.labels, ds.task, ds.class_names),
            "extra_labels": sorted(sp.extra_labels),
            "has_text_bert": sp.text_bert is not None,
            "has_raw_text": sp.raw_text is not None,
        }
    return {
        "kind": ds.kind,
        "layout": ds.layout,
        "task": ds.task,
        "source": ds.source,
        "modalities": {m: {"dim": ds.input_dims[m], "seq_len": ds.seq_lens[m]} for m in ds.modalities},
        "aligned": ds.aligned,
        "num_classes": ds.num_classes,
        "class_names": list(ds.class_names) if ds.class_names is not None else None,
        "label_range": list(ds.label_range) if ds.label_range is not None else None,
        "splits": splits,
        "notes": list(ds.notes),
        "extraction": _extraction_summary(ds.provenance),
    }


def _extraction_summary(record: Any) -> dict[str, str] | None:
    """Modality -> one line on the extractor that made its features (``decalign extract`` files)."""
    if not record:
        return None
    from decalign.extract.provenance import Provenance

    try:
        return {m: r.describe() for m, r in Provenance.from_dict(record).extractors.items()}
    except (ValueError, KeyError, TypeError) as err:
        return {"?": f"unreadable extraction record ({err})"}
