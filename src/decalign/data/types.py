"""In-memory, validated multimodal datasets: the contract between readers, engine and model.

Every reader (MMSA pickles, IEMOCAP, our own ``.npz``/``.safetensors`` format, the synthetic
generator) returns a :class:`MultimodalDataset`. Its invariants are checked once, in
:meth:`Split.validate`, so the engine and the model never have to re-check shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from decalign.data.detect import SPLITS
from decalign.errors import DataError

__all__ = ["ID_SEPARATOR", "SPLITS", "DataError", "MultimodalDataset", "Split", "Task", "numbered_ids", "sample_id"]

Task = Literal["regression", "classification"]

ID_SEPARATOR = "$_$"
"""Between the group (video, dialogue) and the clip in a sample id, as MMSA writes them
(``03bSnISJMiM$_$11``); cross-validation by video splits ids at its last occurrence."""


def sample_id(group: object, clip: object) -> str:
    """The id of clip ``clip`` of video or dialogue ``group``: ``<group>$_$<clip>``."""
    return f"{group}{ID_SEPARATOR}{clip}"


def numbered_ids(split: str, n: int) -> np.ndarray:
    """Ids for a file that has none: ``<split>$_$<index>`` (which name no video)."""
    return np.array([sample_id(split, i) for i in range(n)], dtype=np.str_)


@dataclass
class Split:
    """One split (train, valid or test) of a multimodal dataset.

    Attributes:
        features: modality name -> float32 array ``[N, T_m, D_m]``; finite (readers replace
            non-finite values by 0 and report how many).
        lengths: modality name -> int64 array ``[N]`` of true sequence lengths, ``1 <= len <= T_m``
            (aligned files: all ``T_m``). Positions past a length are padding.
        labels: float32 ``[N]`` (regression) or int64 ``[N]`` class indices (classification).
        ids: ``[N]`` array of str sample ids.
        extra_labels: further per-sample labels carried but not trained on (CH-SIMS unimodal
            ``regression_labels_T/_A/_V``).
        text_bert: int64 ``[N, 3, T_l]`` BERT inputs (token ids, attention mask, segment ids), or
            ``None``. Needed only by the fine-tuned BERT text encoder.
        raw_text: ``[N]`` array of str transcripts, or ``None``.
    """

    features: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    labels: np.ndarray
    ids: np.ndarray
    extra_labels: dict[str, np.ndarray] = field(default_factory=dict)
    text_bert: np.ndarray | None = None
    raw_text: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.features)

    def subset(self, index: np.ndarray | Sequence[int]) -> Split:
        """The samples at ``index`` (a copy), in that order."""
        idx = np.asarray(index, dtype=np.int64)
        return Split(
            features={m: a[idx] for m, a in self.features.items()},
            lengths={m: a[idx] for m, a in self.lengths.items()},
            labels=self.labels[idx],
            ids=self.ids[idx],
            extra_labels={k: a[idx] for k, a in self.extra_labels.items()},
            text_bert=None if self.text_bert is None else self.text_bert[idx],
            raw_text=None if self.raw_text is None else self.raw_text[idx],
        )

    def validate(self, where: str, task: Task) -> None:
        """Check every invariant above; ``where`` (e.g. ``"data.pkl, split 'train'"``) prefixes
        each error so the user knows which file and split is at fault."""
        n = len(self)
        if self.labels.ndim != 1:
            raise DataError(f"{where}: labels must have shape [N], found {self.labels.shape}")
        if task == "regression":
            if self.labels.dtype != np.float32:
                raise DataError(f"{where}: regression labels must be float32, found {self.labels.dtype}")
            if not np.isfinite(self.labels).all():
                bad = int((~np.isfinite(self.labels)).sum())
                raise DataError(f"{where}: labels contain {bad} non-finite value(s)")
        else:
            if self.labels.dtype != np.int64:
                raise DataError(f"{where}: class labels must be int64, found {self.labels.dtype}")
            if n and self.labels.min() < 0:
                raise DataError(f"{where}: class labels must be >= 0, found {int(self.labels.min())}")
        if self.ids.shape != (n,):
            raise DataError(f"{where}, key 'id': expected shape ({n},), found {self.ids.shape}")
        if len(self.features) < 1:
            raise DataError(f"{where}: no modality features")
        if set(self.lengths) != set(self.features):
            raise DataError(
                f"{where}: lengths given for {sorted(self.lengths)} but features for {sorted(self.features)}"
            )
        for m, x in self.features.items():
            if x.ndim != 3:
                raise DataError(f"{where}, key {m!r}: expected shape [N, T, D] (rank 3), found {x.shape}")
            if x.shape[0] != n:
                raise DataError(f"{where}, key {m!r}: expected {n} samples (as labels), found shape {x.shape}")
            if x.dtype != np.float32:
                raise DataError(f"{where}, key {m!r}: expected float32, found {x.dtype}")
            ln = self.lengths[m]
            if ln.shape != (n,) or ln.dtype != np.int64:
                raise DataError(
                    f"{where}, key '{m}_lengths': expected int64 shape ({n},), found {ln.dtype} {ln.shape}"
                )
            if n and (ln.min() < 1 or ln.max() > x.shape[1]):
                raise DataError(
                    f"{where}, key '{m}_lengths': lengths must lie in [1, {x.shape[1]}] "
                    f"(the padded length of {m!r} {x.shape}), found [{int(ln.min())}, {int(ln.max())}]"
                )
        for k, a in self.extra_labels.items():
            if a.shape != (n,):
                raise DataError(f"{where}, key {k!r}: expected shape ({n},), found {a.shape}")
        if self.text_bert is not None and (self.text_bert.ndim != 3 or self.text_bert.shape[:2] != (n, 3)):
            raise DataError(f"{where}, key 'text_bert': expected shape ({n}, 3, T), found {self.text_bert.shape}")


@dataclass
class MultimodalDataset:
    """A dataset with train/valid/test splits that share modalities, widths and task.

    Attributes:
        kind: ``mosi``, ``mosei``, ``sims``, ``iemocap``, ``synthetic`` or ``custom``; selects the
            preset and the metrics.
        layout: how the file was read (``mmsa-aligned``, ``mmsa-unaligned``, ``iemocap-utterance``,
            ``iemocap-dialogue``, ``npz``, ``safetensors``, ``synthetic``).
        task: ``regression`` or ``classification``.
        splits: ``train``, ``valid`` and ``test``.
        class_names: class names for classification, in label order.
        label_range: ``(lo, hi)`` of regression labels by construction (``(-3, 3)`` for MOSI).
        source: the file it came from (``None`` for generated data).
        notes: what the reader fixed or noticed (non-finite values replaced, rows swapped, ...),
            shown by ``decalign info`` and logged at training start.
        provenance: how the features were made, for files written by ``decalign extract``
            (:meth:`decalign.extract.provenance.Provenance.to_dict`); carried into checkpoints so
            that prediction can refuse features from another extractor. ``None`` otherwise.
    """

    kind: str
    layout: str
    task: Task
    splits: dict[str, Split]
    class_names: tuple[str, ...] | None = None
    label_range: tuple[float, float] | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.splits["train"].modalities

    @property
    def input_dims(self) -> dict[str, int]:
        return {m: int(x.shape[2]) for m, x in self.splits["train"].features.items()}

    @property
    def seq_lens(self) -> dict[str, int]:
        return {m: int(x.shape[1]) for m, x in self.splits["train"].features.items()}

    @property
    def aligned(self) -> bool:
        """All modalities share one padded length and every step is valid."""
        tr = self.splits["train"]
        return len(set(self.seq_lens.values())) == 1 and all(
            (tr.lengths[m] == tr.features[m].shape[1]).all() for m in tr.features
        )

    @property
    def num_classes(self) -> int | None:
        if self.task != "classification":
            return None
        if self.class_names is not None:
            return len(self.class_names)
        return int(max(int(s.labels.max()) for s in self.splits.values() if len(s)) + 1)

    def validate(self) -> None:
        src = self.source or self.kind
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise DataError(f"{src}: missing split(s) {missing}; found {sorted(self.splits)}")
        ref = self.splits["train"]
        if len(ref.modalities) < 1:
            raise DataError(f"{src}: no modalities")
        for name in SPLITS:
            sp = self.splits[name]
            where = f"{src}, split {name!r}"
            sp.validate(where, self.task)
            if sp.modalities != ref.modalities:
                raise DataError(f"{where}: modalities {sp.modalities} differ from train's {ref.modalities}")
            for m in ref.modalities:
                if sp.features[m].shape[2] != ref.features[m].shape[2]:
                    raise DataError(
                        f"{where}, key {m!r}: feature width {sp.features[m].shape[2]} differs from "
                        f"train's {ref.features[m].shape[2]} (shapes {sp.features[m].shape} vs "
                        f"{ref.features[m].shape})"
                    )
        if self.task == "classification" and self.class_names is not None:
            k = len(self.class_names)
            for name in SPLITS:
                sp = self.splits[name]
                if len(sp) and sp.labels.max() >= k:
                    raise DataError(
                        f"{src}, split {name!r}: class label {int(sp.labels.max())} out of range for "
                        f"{k} classes {self.class_names}"
                    )
