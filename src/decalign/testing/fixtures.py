"""Small files in exactly the benchmark layouts, for tests, examples and benchmarks.

None of the real benchmark files can be downloaded here, so the readers are built and tested
against these. Each writer produces the structure described in ``docs/data.md`` (keys, dtypes,
shapes, Python 2 pickling for the dialogue-level IEMOCAP file) with random content, and can add
the quirks real files have: ``-inf`` in audio, float ``text_bert``, swapped mask/segment rows,
lists instead of arrays, object-dtype strings.

    from decalign.testing.fixtures import write_mmsa_pickle, write_iemocap_dialogue_pickle
    path = write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind="mosi")
    path = write_iemocap_dialogue_pickle(tmp_path / "IEMOCAP_features_raw_4way.pkl", ways=4)
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "LAYOUTS",
    "write_iemocap_dialogue_pickle",
    "write_iemocap_utterance_pickle",
    "write_mmsa_pickle",
    "write_pickle",
]

SPLITS = ("train", "valid", "test")

LAYOUTS: dict[str, dict[str, Any]] = {
    # kind -> widths, padded lengths per layout, label kind
    "mosi": {
        "dims": {"text": 768, "audio": 5, "vision": 20},
        "aligned": {"text": 50, "audio": 50, "vision": 50},
        "unaligned": {"text": 50, "audio": 375, "vision": 500},
    },
    "mosei": {
        "dims": {"text": 768, "audio": 74, "vision": 35},
        "aligned": {"text": 50, "audio": 50, "vision": 50},
        "unaligned": {"text": 50, "audio": 500, "vision": 500},
    },
    "sims": {
        "dims": {"text": 768, "audio": 33, "vision": 709},
        "unaligned": {"text": 39, "audio": 400, "vision": 55},
    },
    "iemocap": {
        "dims": {"text": 1024, "audio": 512, "vision": 1024},
        "aligned": {"text": 1, "audio": 1, "vision": 1},
    },
    "custom": {
        "dims": {"text": 16, "audio": 4, "vision": 6},
        "aligned": {"text": 8, "audio": 8, "vision": 8},
        "unaligned": {"text": 8, "audio": 12, "vision": 10},
    },
}


def write_pickle(obj: Any, path: str | os.PathLike[str], protocol: int = 4) -> Path:
    """``pickle.dump`` ``obj`` to ``path`` (parents created); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return p


def _strings(items: list[str], as_object: bool) -> Any:
    if as_object:
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
        return arr
    return list(items)


def _mmsa_split(
    rng: np.random.Generator,
    name: str,
    n: int,
    kind: str,
    dims: Mapping[str, int],
    seq_lens: Mapping[str, int],
    aligned: bool,
    *,
    float_text_bert: bool,
    swapped_bert_rows: bool,
    object_strings: bool,
    regression: bool,
    classification: bool,
    unimodal_labels: bool,
    extra_keys: bool,
) -> dict[str, Any]:
    sp: dict[str, Any] = {}
    vids = [f"{name}vid{i // 3:03d}$_${i % 3 + 1}" for i in range(n)]
    sp["id"] = _strings(vids, object_strings)
    sp["raw_text"] = _strings([f"sample {i} of {name} says something" for i in range(n)], object_strings)
    t_text = seq_lens.get("text")
    if t_text is not None and kind != "iemocap":
        # BERT inputs: token ids, attention mask (1 up to the text length), segment ids (all 0).
        text_len = rng.integers(max(1, t_text // 2), t_text + 1, size=n)
        mask = (np.arange(t_text)[None, :] < text_len[:, None]).astype(np.int64)
        ids = rng.integers(1000, 30000, size=(n, t_text)) * mask
        ids[:, 0] = 101
        segments = np.zeros((n, t_text), dtype=np.int64)
        rows = [ids, segments, mask] if swapped_bert_rows else [ids, mask, segments]
        bert = np.stack(rows, axis=1)
        sp["text_bert"] = bert.astype(np.float64 if float_text_bert else np.int64)
    for m, d in dims.items():
        t = seq_lens[m]
        x = rng.standard_normal((n, t, d)).astype(np.float32)
        if not aligned and m != "text":
            lengths = rng.integers(1, t + 1, size=n)
            x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
            sp[f"{m}_lengths"] = [int(v) for v in lengths]  # MMSA stores them as lists
        sp[m] = x
    lo, hi, step = (-1.0, 1.0, 0.2) if kind == "sims" else (-3.0, 3.0, 1.0 / 3.0)
    if regression:
        k = round((hi - lo) / step)
        y = (lo + step * rng.integers(0, k + 1, size=n)).astype(np.float32)
        y[0] = 0.0  # exact 0 occurs in MOSI/MOSEI/SIMS
        sp["regression_labels"] = np.round(y, 4).astype(np.float32)
        if unimodal_labels:
            for suffix in ("T", "A", "V"):
                yu = lo + step * rng.integers(0, k + 1, size=n)
                sp[f"regression_labels_{suffix}"] = np.round(yu, 4).astype(np.float32)
        if classification:
            sp["classification_labels"] = (np.sign(sp["regression_labels"]) + 1).astype(np.float32)
    elif classification:
        classes = 6
        y = rng.integers(0, classes, size=n)
        y[: min(n, classes)] = np.arange(min(n, classes))  # every class appears
        sp["classification_labels"] = y.astype(np.float32)  # IEMOCAP stores floats
    if extra_keys:
        sp["annotations"] = _strings(["Neutral"] * n, object_strings)
    return sp


def _to_lists(sp: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in sp.items()}


def write_mmsa_pickle(
    path: str | os.PathLike[str],
    kind: str = "mosi",
    aligned: bool | None = None,
    n: Sequence[int] = (24, 8, 8),
    seed: int = 0,
    *,
    dims: Mapping[str, int] | None = None,
    seq_lens: Mapping[str, int] | None = None,
    neg_inf_audio: int = 0,
    float_text_bert: bool = True,
    swapped_bert_rows: bool = False,
    as_lists: bool = False,
    object_strings: bool = True,
    unimodal_labels: bool | None = None,
    regression: bool | None = None,
    classification: bool = True,
    extra_keys: bool = True,
    protocol: int = 4,
) -> Path:
    """Write a pickle in the MMSA layout of ``kind`` and return its path.

    Args:
        kind: ``mosi``, ``mosei``, ``sims``, ``iemocap`` (the DecAlign authors' utterance-level
            layout: T = 1, widths 1024/512/1024, float class labels 0..5) or ``custom`` (small
            widths; set ``dims``/``seq_lens``).
        aligned: aligned layout (no ``*_lengths`` keys, ``aligned_50.pkl``) or unaligned
            (``unaligned_50.pkl``: audio/vision with true lengths as lists, zero padding).
            Default: unaligned for ``sims`` (its only published layout), else aligned.
        n: train/valid/test sizes.
        dims / seq_lens: override the widths / padded lengths (modality -> int); omitting a
            modality from ``dims`` leaves it out of the file.
        neg_inf_audio: number of ``-inf`` values put into the train split's audio (like MOSEI).
        float_text_bert: store ``text_bert`` as float64 (as some toolkits do) instead of int64.
        swapped_bert_rows: store ``text_bert`` rows as token ids, segment ids, mask (older dumps).
        as_lists: store every array value of the split dicts as (nested) lists.
        object_strings: ``id``/``raw_text`` as numpy object arrays of str (else lists).
        unimodal_labels: add ``regression_labels_T/_A/_V`` (default: only for ``sims``).
        regression: add ``regression_labels`` (default: all kinds but ``iemocap``).
        classification: add ``classification_labels``.
        extra_keys: add an ``annotations`` key readers must ignore.
        protocol: pickle protocol.
    """
    if kind not in LAYOUTS:
        raise ValueError(f"unknown kind {kind!r}; use one of {sorted(LAYOUTS)}")
    layout = LAYOUTS[kind]
    if aligned is None:
        aligned = "aligned" in layout
    lens_key = "aligned" if aligned else "unaligned"
    if lens_key not in layout and seq_lens is None:
        raise ValueError(f"{kind} has no {lens_key} layout; pass seq_lens to make one up")
    dims = dict(dims) if dims is not None else dict(layout["dims"])
    seq_lens = dict(seq_lens) if seq_lens is not None else dict(layout[lens_key])
    if regression is None:
        regression = kind != "iemocap"
    if unimodal_labels is None:
        unimodal_labels = kind == "sims"
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for name, size in zip(SPLITS, n):
        sp = _mmsa_split(
            rng,
            name,
            int(size),
            kind,
            dims,
            seq_lens,
            aligned,
            float_text_bert=float_text_bert,
            swapped_bert_rows=swapped_bert_rows,
            object_strings=object_strings,
            regression=regression,
            classification=classification,
            unimodal_labels=unimodal_labels,
            extra_keys=extra_keys,
        )
        if name == "train" and neg_inf_audio:
            flat = sp["audio"].reshape(-1)
            pos = rng.choice(flat.size, size=neg_inf_audio, replace=False)
            flat[pos] = -np.inf
        data[name] = _to_lists(sp) if as_lists else sp
    return write_pickle(data, path, protocol=protocol)


def write_iemocap_utterance_pickle(
    path: str | os.PathLike[str], n: Sequence[int] = (24, 8, 8), seed: int = 0, **quirks: Any
) -> Path:
    """The DecAlign authors' utterance-level IEMOCAP layout (``iemocap_data.pkl``)."""
    return write_mmsa_pickle(path, kind="iemocap", n=n, seed=seed, **quirks)


# ---------------------------------------------------------------- Python 2 style (dialogue IEMOCAP)


class _Py2Pickler(pickle._Pickler):  # type: ignore[misc,name-defined]
    """Protocol-2 pickler that writes what Python 2's cPickle wrote: text as byte strings
    (``BINSTRING``), ``__builtin__`` and ``numpy.core.multiarray`` module names. Loading such a
    file in Python 3 needs ``encoding="latin1"`` (numpy's raw array data arrive as latin-1 str)."""

    dispatch: ClassVar[dict[Any, Any]] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        name = name or getattr(obj, "__qualname__", None) or obj.__name__
        module = getattr(obj, "__module__", None) or pickle.whichmodule(obj, name)
        module = {"builtins": "__builtin__"}.get(module, module)
        module = module.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)

    dispatch[types.FunctionType] = save_global


def write_iemocap_dialogue_pickle(
    path: str | os.PathLike[str],
    ways: int = 6,
    n_dialogues: tuple[int, int] = (10, 4),
    utterances: tuple[int, int] = (2, 6),
    seed: int = 0,
    *,
    dims: Mapping[str, int] | None = None,
    vid_sets: bool = False,
    features_as_arrays: bool = False,
    feature_dtype: Any = np.float64,
    py2: bool = True,
) -> Path:
    """Write the dialogue-level ``IEMOCAP_features_raw_{6,4}way.pkl`` layout; return its path.

    A 9-item tuple ``videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual,
    videoSentence, trainVid, testVid``; per dialogue one entry per utterance (labels int, feature
    vectors text 100 / audio 100 / visual 512, speakers 'M'/'F', sentences str).

    Args:
        ways: 6 (labels 0..5) or 4 (labels 0..3); every class occurs in train and test.
        n_dialogues: number of training and test dialogues.
        utterances: min and max utterances per dialogue.
        dims: widths ``{"text", "audio", "vision"}`` (default 100/100/512).
        vid_sets: store ``trainVid``/``testVid`` as sets (some copies do) instead of lists.
        features_as_arrays: one ``[n_utt, D]`` array per dialogue instead of a list of vectors.
        py2: pickle like Python 2 (byte strings, ``__builtin__``, ``numpy.core``); needs latin-1.
    """
    if ways not in (4, 6):
        raise ValueError(f"ways must be 4 or 6, got {ways}")
    d = dict(dims) if dims is not None else {"text": 100, "audio": 100, "vision": 512}
    rng = np.random.default_rng(seed)
    n_train, n_test = n_dialogues
    train_vids = [f"Ses0{1 + i % 4}{'FM'[i % 2]}_impro{i:02d}" for i in range(n_train)]
    test_vids = [f"Ses05{'FM'[i % 2]}_script{i:02d}" for i in range(n_test)]
    items: list[dict[str, Any]] = [{} for _ in range(7)]
    video_ids, speakers, labels, text, audio, visual, sentences = items
    for group in (train_vids, test_vids):
        first = True
        for vid in group:
            k = int(rng.integers(utterances[0], utterances[1] + 1))
            y = rng.integers(0, ways, size=k)
            if first:  # make every class occur in this group
                k = max(k, ways)
                y = np.concatenate([np.arange(ways), rng.integers(0, ways, size=k - ways)])
                first = False
            video_ids[vid] = [f"{vid}_{'FM'[j % 2]}{j:03d}" for j in range(k)]
            speakers[vid] = ["M" if j % 2 else "F" for j in range(k)]
            labels[vid] = [int(v) for v in y]
            for store, m in ((text, "text"), (audio, "audio"), (visual, "vision")):
                x = rng.standard_normal((k, d[m])).astype(feature_dtype)
                store[vid] = x if features_as_arrays else list(x)
            sentences[vid] = [f"utterance {j} of {vid}." for j in range(k)]
    train_c: Any = set(train_vids) if vid_sets else list(train_vids)
    test_c: Any = set(test_vids) if vid_sets else list(test_vids)
    obj = (video_ids, speakers, labels, text, audio, visual, sentences, train_c, test_c)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not py2:
        return write_pickle(obj, p, protocol=2)
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    p.write_bytes(buf.getvalue())
    return p
