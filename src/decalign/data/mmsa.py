"""Reader for the MMSA pickle layout: CMU-MOSI, CMU-MOSEI (aligned and unaligned), CH-SIMS, the
DecAlign authors' utterance-level IEMOCAP file, and any other file with the same structure.

The layout (``docs/data.md``): a dict ``{"train", "valid", "test"}``, each a dict with features
``text``/``audio``/``vision`` ``[N, T, D]``, optional ``audio_lengths``/``vision_lengths``
(unaligned files), ``regression_labels`` and/or ``classification_labels``, ``id``, ``raw_text``,
``text_bert`` and, for CH-SIMS, unimodal labels ``regression_labels_T/_A/_V``. Extra keys are
ignored; values may be numpy arrays or lists.

The benchmark is recognised from the feature widths (:mod:`decalign.data.detect`), not the file
name. Anything that is not one of the four benchmarks reads as ``custom``: widths and lengths come
from the data, the task from the labels present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from decalign.data.arrays import (
    ReadLog,
    bert_inputs,
    class_labels,
    float_features,
    int_lengths,
    regression_labels,
    replace_nonfinite_,
    str_array,
)
from decalign.data.detect import BENCHMARKS, detect_kind, shape_mismatch
from decalign.data.types import SPLITS, DataError, MultimodalDataset, Split, Task, numbered_ids

__all__ = ["MODALITY_KEYS", "UNIMODAL_LABEL_KEYS", "read_mmsa"]

MODALITY_KEYS: tuple[str, ...] = ("text", "audio", "vision")
UNIMODAL_LABEL_KEYS: tuple[str, ...] = ("regression_labels_T", "regression_labels_A", "regression_labels_V")


def _split_dicts(obj: Any, source: str) -> dict[str, Mapping[str, Any]]:
    if not isinstance(obj, Mapping):
        raise DataError(
            f"{source}: expected a dict with splits 'train', 'valid', 'test' at the top level, "
            f"found {type(obj).__name__}"
        )
    missing = [s for s in SPLITS if s not in obj]
    if missing:
        raise DataError(
            f"{source}: missing split(s) {missing}; expected 'train', 'valid', 'test', found keys "
            f"{sorted(map(str, obj))}"
        )
    out: dict[str, Mapping[str, Any]] = {}
    for name in SPLITS:
        sp = obj[name]
        if not isinstance(sp, Mapping):
            raise DataError(f"{source}, split {name!r}: expected a dict of arrays, found {type(sp).__name__}")
        out[name] = sp
    return out


def _require(sp: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in sp:
        raise DataError(f"{where}: missing key {key!r}; found keys {sorted(map(str, sp))}")
    return sp[key]


def _task_for(kind: str, train: Mapping[str, Any], where: str) -> tuple[Task, str]:
    """The task and the label key it reads, for ``kind``."""
    spec = BENCHMARKS.get(kind)
    if spec is not None and spec.task is not None:  # every benchmark has its task
        return spec.task, "regression_labels" if spec.task == "regression" else "classification_labels"
    if "regression_labels" in train:
        return "regression", "regression_labels"
    if "classification_labels" in train:
        return "classification", "classification_labels"
    raise DataError(
        f"{where}: missing key 'regression_labels' (or 'classification_labels'); found keys "
        f"{sorted(map(str, train))}"
    )


def read_mmsa(obj: Any, source: str, kind: str | None, log: ReadLog) -> MultimodalDataset:
    """Turn an unpickled MMSA-layout dict into a validated dataset.

    Args:
        obj: the unpickled object (converted features replace the raw values in its split
            dicts, so that copies made by the conversion do not coexist with the originals).
        source: the file name for messages.
        kind: a forced kind (``mosi``/``mosei``/``sims``/``iemocap``/``custom``) or ``None`` to
            detect it from the feature widths.
        log: collects notes and non-finite counts.
    """
    raw = _split_dicts(obj, source)
    train_where = f"{source}, split 'train'"
    modalities = tuple(m for m in MODALITY_KEYS if m in raw["train"])
    if len(modalities) < 2:
        absent = [m for m in MODALITY_KEYS if m not in raw["train"]]
        raise DataError(
            f"{train_where}: missing key(s) {absent}; the MMSA layout needs at least two of the "
            f"feature keys {list(MODALITY_KEYS)}, found keys {sorted(map(str, raw['train']))}"
        )
    has_lengths = any(f"{m}_lengths" in raw[s] for s in SPLITS for m in modalities)

    # Features first (the heavy part), so that kind and task can be decided from the widths.
    features: dict[str, dict[str, np.ndarray]] = {}
    for name in SPLITS:
        sp, where = raw[name], f"{source}, split {name!r}"
        feats: dict[str, np.ndarray] = {}
        for m in modalities:
            x = float_features(_require(sp, m, where), where, m)
            if isinstance(sp, dict):
                sp[m] = x  # drop the file's value: if conversion copied (lists, float64), it is freed
            x, bad = replace_nonfinite_(x)
            log.count_nonfinite(name, m, bad)
            feats[m] = x
        features[name] = feats

    dims = {m: int(x.shape[2]) for m, x in features["train"].items()}
    seq_lens = {m: int(x.shape[1]) for m, x in features["train"].items()}
    if kind is None:
        kind = detect_kind(dims)
    mismatch = shape_mismatch(kind, dims, seq_lens)
    if mismatch:
        log.note(mismatch)
    task, label_key = _task_for(kind, raw["train"], train_where)

    splits: dict[str, Split] = {}
    swapped: list[str] = []
    for name in SPLITS:
        sp, where = raw[name], f"{source}, split {name!r}"
        value = _require(sp, label_key, where)
        labels = (regression_labels if task == "regression" else class_labels)(value, where, label_key)
        n = int(labels.shape[0])
        lengths: dict[str, np.ndarray] = {}
        text_bert = None
        if "text_bert" in sp:
            text_bert, was_swapped = bert_inputs(sp["text_bert"], where, n)
            if was_swapped:
                swapped.append(name)
        for m in modalities:
            x = features[name][m]
            key = f"{m}_lengths"
            if key in sp:
                lengths[m] = int_lengths(sp[key], where, key, log)
            elif has_lengths and m == "text" and text_bert is not None and x.shape[0] == n:
                # Unaligned files give no text lengths: the BERT attention mask holds them.
                lengths[m] = np.clip(text_bert[:, 1].sum(axis=1), 1, x.shape[1]).astype(np.int64)
                log.note("text lengths taken from the text_bert attention mask (no 'text_lengths' key)")
            else:
                lengths[m] = np.full(x.shape[0], x.shape[1], dtype=np.int64)
        if "id" in sp:
            ids = str_array(sp["id"], where, "id")
        else:
            ids = numbered_ids(name, n)
            log.note("no 'id' key: ids generated as '<split>$_$<index>'")
        raw_text = str_array(sp["raw_text"], where, "raw_text") if "raw_text" in sp else None
        extra = {
            k: regression_labels(sp[k], where, k) for k in UNIMODAL_LABEL_KEYS if k in sp
        }
        splits[name] = Split(
            features=features[name],
            lengths=lengths,
            labels=labels,
            ids=ids,
            extra_labels=extra,
            text_bert=text_bert,
            raw_text=raw_text,
        )
    if swapped:
        log.note(
            f"text_bert rows 1 and 2 were swapped in split(s) {swapped} (the attention mask is the "
            "row with the larger sum); put back in the order token ids, mask, segment ids"
        )

    spec = BENCHMARKS.get(kind)
    if kind == "iemocap":
        layout = "iemocap-utterance"
    else:
        layout = "mmsa-unaligned" if has_lengths else "mmsa-aligned"
    return MultimodalDataset(
        kind=kind,
        layout=layout,
        task=task,
        splits=splits,
        class_names=spec.class_names if spec is not None else None,
        label_range=spec.label_range if spec is not None else None,
        source=source,
        provenance=_extraction_record(obj, source),
    )


def _extraction_record(obj: Mapping[str, Any], source: str) -> dict[str, Any] | None:
    """The ``extraction`` entry that ``decalign extract`` writes next to the splits (a JSON
    string, so the pickle stays plain data), or ``None``."""
    import json

    text = obj.get("extraction")
    if text is None:
        return None
    try:
        record = json.loads(str(text))
    except ValueError as err:
        raise DataError(f"{source}, key 'extraction': not a JSON extraction record ({err})") from None
    if not isinstance(record, dict):
        raise DataError(f"{source}, key 'extraction': expected a JSON object, found {type(record).__name__}")
    return record
