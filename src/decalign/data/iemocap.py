"""IEMOCAP: the dialogue-level ``IEMOCAP_features_raw_{6,4}way.pkl`` and the evaluation protocols.

The file the DecAlign README links is the conversational-emotion-recognition pickle (a Python 2
pickle, read with latin-1) of a 9-item sequence::

    videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, videoSentence,
    trainVid, testVid

The first seven are dicts keyed by dialogue id holding one entry per utterance (labels int,
text 100-d, audio 100-d, visual 512-d vectors, speakers, sentences); ``trainVid``/``testVid`` list
dialogue ids. DecAlign classifies utterances, so we flatten dialogues into utterance samples with
``T = 1`` per modality and ids ``"<dialogue>$_$<index>"``. Test is the file's ``testVid``;
validation is carved from the training dialogues, whole dialogues at a time (utterances of one
dialogue share speakers and context, so splitting inside a dialogue would leak), with a fixed seed.

The utterance-level file of the DecAlign authors (MMSA layout) is read by :mod:`decalign.data.mmsa`;
:func:`apply_iemocap_protocol` applies ``DataConfig.iemocap_protocol`` to either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from decalign.data.arrays import ReadLog, class_labels, concat_splits, replace_nonfinite_, str_array
from decalign.data.detect import IEMOCAP_CLASSES_4, IEMOCAP_CLASSES_6
from decalign.data.types import DataError, MultimodalDataset, Split, sample_id

__all__ = ["DIALOGUE_ITEMS", "apply_iemocap_protocol", "is_dialogue_layout", "read_iemocap_dialogue"]

DIALOGUE_ITEMS: tuple[str, ...] = (
    "videoIDs",
    "videoSpeakers",
    "videoLabels",
    "videoText",
    "videoAudio",
    "videoVisual",
    "videoSentence",
    "trainVid",
    "testVid",
)
_FEATURE_ITEMS = {"text": "videoText", "audio": "videoAudio", "vision": "videoVisual"}


def is_dialogue_layout(obj: Any) -> bool:
    """A 9-item sequence whose first seven items are dicts: the dialogue-level IEMOCAP pickle."""
    return (
        isinstance(obj, (list, tuple))
        and len(obj) == len(DIALOGUE_ITEMS)
        and all(isinstance(x, Mapping) for x in obj[:7])
    )


def _dialogue_ids(value: Any, source: str, item: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise DataError(f"{source}, item {item!r}: expected a list of dialogue ids, found {type(value).__name__}")
    ids = list(value)
    # Sets have no order: sort them so that the result does not depend on hashing.
    return sorted(ids) if isinstance(value, (set, frozenset)) else ids


def _read_dialogues(
    items: Mapping[str, Mapping[Any, Any]], vids: Sequence[Any], source: str, split: str, log: ReadLog
) -> tuple[Split, dict[str, int]]:
    feats: dict[str, list[np.ndarray]] = {m: [] for m in _FEATURE_ITEMS}
    labels: list[np.ndarray] = []
    ids: list[str] = []
    sentences: list[Any] = []
    dims: dict[str, int] = {}
    for vid in vids:
        where = f"{source}, dialogue {vid!r}"
        for item in ("videoLabels", *_FEATURE_ITEMS.values(), "videoSentence"):
            if vid not in items[item]:
                raise DataError(f"{where}: missing from item {item!r} (listed in the split's dialogue ids)")
        y = class_labels(items["videoLabels"][vid], where, "videoLabels")
        n = int(y.shape[0])
        for m, item in _FEATURE_ITEMS.items():
            try:
                x = np.asarray(items[item][vid], dtype=np.float32)
            except (ValueError, TypeError) as err:
                raise DataError(f"{where}, item {item!r}: utterance vectors do not form an array ({err})") from None
            if x.ndim == 1 and n == 1:
                x = x[None, :]
            d = dims.setdefault(m, int(x.shape[-1]) if x.ndim == 2 else -1)
            if x.ndim != 2 or x.shape != (n, d):
                raise DataError(
                    f"{where}, item {item!r}: expected shape ({n}, {d}) ({n} utterances as videoLabels, "
                    f"width {d} as the other dialogues), found {x.shape}"
                )
            feats[m].append(x)
        sent = items["videoSentence"][vid]
        if len(sent) != n:
            raise DataError(
                f"{where}, item 'videoSentence': expected {n} sentences (as videoLabels), found {len(sent)}"
            )
        labels.append(y)
        sentences.extend(sent)
        ids.extend(sample_id(vid, i) for i in range(n))
    if not labels:
        raise DataError(f"{source}, split {split!r}: no dialogues")
    features: dict[str, np.ndarray] = {}
    for m, parts in feats.items():
        x, bad = replace_nonfinite_(np.concatenate(parts)[:, None, :])
        log.count_nonfinite(split, m, bad)
        features[m] = x
    n_total = sum(len(y) for y in labels)
    split_obj = Split(
        features=features,
        lengths={m: np.ones(n_total, dtype=np.int64) for m in features},
        labels=np.concatenate(labels),
        ids=np.array(ids, dtype=np.str_),
        raw_text=str_array(sentences, f"{source}, split {split!r}", "videoSentence"),
    )
    return split_obj, dims


def read_iemocap_dialogue(
    seq: Sequence[Any],
    source: str,
    kind: str | None,
    log: ReadLog,
    *,
    valid_fraction: float = 0.1,
    split_seed: int = 0,
) -> MultimodalDataset:
    """Read the dialogue-level IEMOCAP pickle into utterance samples (``T = 1``).

    ``valid_fraction`` of the training dialogues (at least one, whole dialogues, chosen with
    ``numpy.random.default_rng(split_seed)`` from the sorted training ids) become the validation
    split; test is exactly ``testVid``. Labels ``0..5`` are the 6-way classes (happy, sad, neutral,
    angry, excited, frustrated); a file whose labels never exceed 3 is the 4-way variant.
    """
    if kind not in (None, "iemocap", "custom"):
        raise DataError(
            f"{source}: this is the dialogue-level IEMOCAP layout (emotion classes only); it cannot "
            f"be read as {kind!r}. Use kind 'iemocap', 'custom' or 'auto'."
        )
    if not is_dialogue_layout(seq):
        raise DataError(
            f"{source}: expected the 9-item dialogue-level IEMOCAP sequence {list(DIALOGUE_ITEMS)}"
        )
    items = dict(zip(DIALOGUE_ITEMS, seq))
    train_vids = _dialogue_ids(items["trainVid"], source, "trainVid")
    test_vids = _dialogue_ids(items["testVid"], source, "testVid")
    test_set = set(test_vids)
    overlap = [v for v in train_vids if v in test_set]
    if overlap:
        train_vids = [v for v in train_vids if v not in test_set]
        log.note(
            f"{len(overlap)} dialogue(s) listed in both trainVid and testVid were kept in test only "
            f"(e.g. {overlap[0]!r})"
        )
    if len(train_vids) < 2:
        raise DataError(
            f"{source}, item 'trainVid': need at least 2 training dialogues to carve a validation "
            f"split, found {len(train_vids)}"
        )
    n_valid = min(len(train_vids) - 1, max(1, round(valid_fraction * len(train_vids))))
    rng = np.random.default_rng(split_seed)
    chosen = {str(v) for v in rng.permutation(np.array(sorted(map(str, train_vids))))[:n_valid]}
    valid_vids = [v for v in train_vids if str(v) in chosen]
    fit_vids = [v for v in train_vids if str(v) not in chosen]
    log.note(
        f"validation split: {len(valid_vids)} of {len(train_vids)} training dialogues "
        f"(fraction {valid_fraction}, seed {split_seed}); test: the file's {len(test_vids)} testVid dialogues"
    )

    splits: dict[str, Split] = {}
    dims: dict[str, int] = {}
    for name, vids in (("train", fit_vids), ("valid", valid_vids), ("test", test_vids)):
        splits[name], d = _read_dialogues(items, vids, source, name, log)
        for m, w in d.items():
            if dims.setdefault(m, w) != w:
                raise DataError(
                    f"{source}, split {name!r}, item {_FEATURE_ITEMS[m]!r}: width {w} differs from "
                    f"train's {dims[m]}"
                )
    top = max(int(s.labels.max()) for s in splits.values())
    class_names: tuple[str, ...] | None
    if top <= 3:
        class_names = IEMOCAP_CLASSES_4
        log.note("labels 0..3 only: read as the 4-way variant (happy, sad, neutral, angry)")
    else:
        class_names = IEMOCAP_CLASSES_6
    if kind == "custom":
        class_names = None
    return MultimodalDataset(
        kind=kind or "iemocap",
        layout="iemocap-dialogue",
        task="classification",
        splits=splits,
        class_names=class_names,
        label_range=None,
        source=source,
    )


def apply_iemocap_protocol(dataset: MultimodalDataset, protocol: str) -> MultimodalDataset:
    """``session_valid``: the splits as read. ``paper_count``: train on train + valid (the
    validation split is kept as is, so it overlaps training; noted in ``dataset.notes``)."""
    if protocol == "session_valid":
        return dataset
    if protocol != "paper_count":
        raise DataError(f"unknown IEMOCAP protocol {protocol!r}; use 'session_valid' or 'paper_count'")
    tr, va = dataset.splits["train"], dataset.splits["valid"]
    merged = concat_splits([tr, va])
    note = (
        f"IEMOCAP protocol 'paper_count': train = train ({len(tr)}) + valid ({len(va)}) = "
        f"{len(merged)} samples; the valid split overlaps training, so validation scores are optimistic"
    )
    return MultimodalDataset(
        kind=dataset.kind,
        layout=dataset.layout,
        task=dataset.task,
        splits={"train": merged, "valid": va, "test": dataset.splits["test"]},
        class_names=dataset.class_names,
        label_range=dataset.label_range,
        source=dataset.source,
        notes=[*dataset.notes, note],
    )
