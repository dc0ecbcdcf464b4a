"""Splits by video: cross-validation folds over train + valid, and the validation split in halves.

A held-out split of a small corpus holds few videos (mosi-dev: 9 in valid, 9 in test), and two
configurations a point apart on one split can swap places on the next. Cross-validation by video
uses every labelled video of the train and valid splits as test data once, by a model that
neither trained nor selected its epoch on it:

* :func:`cv_folds` pools the **train and valid** splits (the test split is left out: no fold
  reads it), cuts the pooled clips into ``K`` folds by whole video (:func:`assign_folds`), and
  returns ``K`` datasets; in dataset ``k`` fold ``k`` is the test split, fold ``k+1`` (mod ``K``)
  the validation split the run selects its epoch on, and the other ``K-2`` folds the training
  split.
* :func:`valid_halves` cuts the **valid** split by video into two halves and returns two datasets
  with the original train split: in the first, half A selects and half B measures, in the second
  the other way round (an estimate free of the selection's optimism, test split again unread).

Clips are grouped by video through their ids (:func:`video_of`): MMSA files, IEMOCAP dialogues
and ``decalign extract`` write ``<video>$_$<clip>``. Every function is deterministic: the same
ids give the same folds on every machine, so two cross-validations of the same data are paired
clip by clip. ``decalign train --cv K`` trains the folds (:func:`decalign.api.cross_validate`);
``decalign convert --folds K`` / ``--valid-halves`` writes them as files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from decalign.data.types import ID_SEPARATOR, SPLITS, MultimodalDataset, Split
from decalign.errors import DataError

if TYPE_CHECKING:
    from decalign.config import DataConfig
    from decalign.data.misleading import MisleadingModality

__all__ = [
    "MIN_FOLDS",
    "FoldPlan",
    "PooledData",
    "assign_folds",
    "cv_folds",
    "fold_dataset",
    "fold_plan",
    "pool_splits",
    "valid_halves",
    "video_of",
    "write_split_files",
]

GENERATED_ID_PREFIXES = frozenset(SPLITS)
"""The readers number a file without ids ``<split>$_$<index>``: such a "video" is a split."""

MIN_FOLDS = 3
"""A fold each for test and validation, and at least one to train on."""


def video_of(clip_id: str) -> str:
    """The video of a clip: its id up to the last ``$_$`` (``03bSnISJMiM$_$11`` -> ``03bSnISJMiM``).

    Raises:
        DataError: an id without a video part (one line that names the id and the expected form).
    """
    video, sep, _ = str(clip_id).rpartition(ID_SEPARATOR)
    if not sep or not video:
        raise DataError(f"sample id {str(clip_id)[:80]!r} names no video: splitting by video needs ids "
                        f"'<video>{ID_SEPARATOR}<clip>' (as MMSA files and `decalign extract` write them)")
    return video


def assign_folds(ids: Sequence[str] | np.ndarray, k: int) -> np.ndarray:
    """``[N]`` fold index (``0..k-1``) of each clip, whole videos per fold.

    Videos are taken largest first (ties by name) and each goes to the fold with the fewest clips
    so far (ties to the lower index), so fold sizes differ by at most one video's clips and the
    result does not depend on the order of ``ids``.

    Raises:
        DataError: an id without a video (:func:`video_of`), or fewer videos than folds.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"the number of folds must be a positive integer, got {k!r}")
    videos = np.array([video_of(i) for i in ids], dtype=np.str_)
    names, counts = np.unique(videos, return_counts=True)
    if set(names.tolist()) <= GENERATED_ID_PREFIXES:
        raise DataError(f"the sample ids are '<split>{ID_SEPARATOR}<index>' ({', '.join(map(str, names))}): "
                        "the file has no ids of its own, so no clip names its video; cross-validation by video "
                        f"needs ids '<video>{ID_SEPARATOR}<clip>'")
    if len(names) < k:
        raise DataError(f"{len(names)} video(s) among {len(videos)} clips cannot fill {k} folds")
    sizes = [0] * k
    fold_of_video: dict[str, int] = {}
    for j in sorted(range(len(names)), key=lambda j: (-int(counts[j]), str(names[j]))):
        f = min(range(k), key=lambda f: (sizes[f], f))
        fold_of_video[str(names[j])] = f
        sizes[f] += int(counts[j])
    return np.array([fold_of_video[str(v)] for v in videos], dtype=np.int64)


def pool_splits(dataset: MultimodalDataset, names: Sequence[str] = ("train", "valid")) -> Split:
    """The splits ``names`` of ``dataset`` as one split, in that order (a copy).

    Raises:
        DataError: the splits cannot be joined as they are (a modality padded to other lengths,
            other per-sample labels, token ids or transcripts in one split only); the message
            names the key.
    """
    parts = [dataset.splits[n] for n in names]
    src = dataset.source or dataset.kind
    first = parts[0]

    def joined(key: str, arrays: list[np.ndarray]) -> np.ndarray:
        shapes = sorted({a.shape[1:] for a in arrays})
        if len(shapes) > 1:
            raise DataError(f"{src}, key {key!r}: splits {list(names)} have per-sample shapes {shapes}; "
                            "they cannot be pooled (pad them alike first)")
        return np.concatenate(arrays)

    for name, part in zip(names, parts):
        if set(part.extra_labels) != set(first.extra_labels):
            raise DataError(f"{src}, split {name!r}: extra labels {sorted(part.extra_labels)}, split {names[0]!r} "
                            f"has {sorted(first.extra_labels)}; they cannot be pooled")
        for key in ("text_bert", "raw_text"):
            if (getattr(part, key) is None) != (getattr(first, key) is None):
                raise DataError(f"{src}: key {key!r} is in some of the splits {list(names)} only; they cannot be "
                                "pooled")
    return Split(
        features={m: joined(m, [p.features[m] for p in parts]) for m in first.features},
        lengths={m: np.concatenate([p.lengths[m] for p in parts]) for m in first.lengths},
        labels=np.concatenate([p.labels for p in parts]),
        ids=np.concatenate([np.asarray(p.ids, dtype=np.str_) for p in parts]),
        extra_labels={k: np.concatenate([p.extra_labels[k] for p in parts]) for k in first.extra_labels},
        # present in every split or in none (checked above)
        text_bert=None if first.text_bert is None else joined(
            "text_bert", [p.text_bert for p in parts if p.text_bert is not None]),
        raw_text=None if first.raw_text is None else np.concatenate(
            [p.raw_text for p in parts if p.raw_text is not None]),
    )


@dataclass(frozen=True)
class PooledData:
    """The train and valid splits of a dataset as one split, with what identifies the data
    (:func:`decalign.train.runguard.data_fingerprint` reads ``kind``, ``task``, ``modalities``
    and ``splits``)."""

    kind: str
    task: str
    modalities: tuple[str, ...]
    splits: dict[str, Split]
    """``{"train+valid": the pooled split}``."""


@dataclass(frozen=True)
class FoldPlan:
    """Which fold tests each pooled clip (:func:`fold_plan`)."""

    k: int
    pooled: PooledData
    videos: np.ndarray
    """``[N]`` the video of each pooled clip."""
    fold: np.ndarray
    """``[N]`` its fold, ``0..k-1``."""

    @property
    def split(self) -> Split:
        return self.pooled.splits["train+valid"]

    @property
    def ids(self) -> np.ndarray:
        return self.split.ids

    def roles(self, f: int) -> dict[str, np.ndarray]:
        """Boolean masks over the pooled clips of fold ``f`` (0-based): ``test`` is fold ``f``,
        ``valid`` fold ``f + 1`` (mod ``k``), ``train`` the rest."""
        test, valid = self.fold == f, self.fold == (f + 1) % self.k
        return {"train": ~(test | valid), "valid": valid, "test": test}

    def rows(self) -> list[tuple[str, str, int]]:
        """``(id, video, fold)`` per pooled clip, folds numbered from 1 (``folds.csv``)."""
        return [(str(i), str(v), int(f) + 1) for i, v, f in zip(self.ids, self.videos, self.fold)]


def fold_plan(dataset: MultimodalDataset, k: int) -> FoldPlan:
    """Pool ``dataset``'s train and valid splits and assign their clips to ``k`` folds by video
    (:func:`assign_folds`). The test split is not read.

    Raises:
        DataError: ``k`` below :data:`MIN_FOLDS`, ids without a video, too few videos, or splits
            that cannot be pooled.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < MIN_FOLDS:
        raise DataError(f"cross-validation needs at least {MIN_FOLDS} folds (a test, a validation and a training "
                        f"fold), got {k!r}")
    split = pool_splits(dataset)
    if len(set(split.ids.tolist())) != len(split):
        raise DataError(f"{dataset.source or dataset.kind}: sample ids repeat across the train and valid splits; "
                        "folds need one id per clip")
    fold = assign_folds(split.ids, int(k))
    videos = np.array([video_of(i) for i in split.ids], dtype=np.str_)
    pooled = PooledData(dataset.kind, dataset.task, dataset.modalities, {"train+valid": split})
    return FoldPlan(int(k), pooled, videos, fold)


def _with_splits(dataset: MultimodalDataset, splits: dict[str, Split], source: str) -> MultimodalDataset:
    return dataclasses.replace(dataset, splits=splits, source=source, notes=list(dataset.notes))


def fold_dataset(dataset: MultimodalDataset, plan: FoldPlan, f: int) -> MultimodalDataset:
    """Cross-validation dataset ``f`` (0-based) of ``plan`` (module docstring): fold ``f`` is the
    test split, fold ``f + 1`` the valid split, the rest train; each split keeps the pooled order
    (train clips first, then valid, as in the file). Its arrays are its own (training may
    standardise them in place). Made one at a time, so only one fold's copy is held at once."""
    if not 0 <= f < plan.k:
        raise ValueError(f"fold {f} is not one of 0..{plan.k - 1}")
    splits = {name: plan.split.subset(np.flatnonzero(mask)) for name, mask in plan.roles(f).items()}
    return _with_splits(dataset, splits, f"{dataset.source or dataset.kind}, fold {f + 1} of {plan.k}")


def cv_folds(dataset: MultimodalDataset, k: int) -> list[MultimodalDataset]:
    """The ``k`` cross-validation datasets of ``dataset`` (:func:`fold_dataset` of
    :func:`fold_plan`)."""
    plan = fold_plan(dataset, k)
    return [fold_dataset(dataset, plan, f) for f in range(plan.k)]


def valid_halves(dataset: MultimodalDataset) -> tuple[MultimodalDataset, MultimodalDataset]:
    """Two datasets from ``dataset``'s valid split cut by video (:func:`assign_folds` with two
    folds): in the first, half A is the valid split and half B the test split; in the second the
    other way round. Both keep the train split; the original test split is in neither.

    Raises:
        DataError: ids without a video, or a valid split of fewer than two videos.
    """
    valid = dataset.splits["valid"]
    try:
        in_a = assign_folds(valid.ids, 2) == 0
    except DataError as err:
        if "cannot fill" not in str(err):
            raise
        raise DataError(f"{dataset.source or dataset.kind}: the valid split has fewer than 2 videos; two halves "
                        "need at least 2") from None
    a, b = valid.subset(np.flatnonzero(in_a)), valid.subset(np.flatnonzero(~in_a))
    src = dataset.source or dataset.kind
    train = dataset.splits["train"]

    def own(split: Split) -> Split:  # each dataset its own arrays: training may standardise in place
        return split.subset(np.arange(len(split)))

    return (_with_splits(dataset, {"train": own(train), "valid": a, "test": b}, f"{src}, valid half A selects"),
            _with_splits(dataset, {"train": own(train), "valid": own(b), "test": own(a)},
                         f"{src}, valid half B selects"))


def write_split_files(
    in_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    folds: int | None = None,
    halves: bool = False,
    fmt: str = "npz",
    kind: str | None = None,
    config: DataConfig | None = None,
    overwrite: bool = False,
    misleading: MisleadingModality | None = None,
) -> list[Path]:
    """Write the cross-validation datasets (``folds``: :func:`cv_folds`) or the valid halves
    (``halves``: :func:`valid_halves`) of the data in ``in_path`` as native files in the new
    directory ``out_dir``: ``fold_1.<fmt>`` .. ``fold_K.<fmt>``, or ``half_a.<fmt>`` (half A
    selects, half B tests) and ``half_b.<fmt>``. Features are kept as they are (no
    standardisation, as :func:`decalign.data.convert`); ``misleading`` adds that modality to each
    written dataset (built from its own splits: label-driven on its train split only).

    The directory is written whole or not at all, and refused when it exists (unless
    ``overwrite``) or is the input (:mod:`decalign.safety.outputs`). Returns the written files.
    """
    from decalign.config import DataConfig
    from decalign.data.loading import load_dataset
    from decalign.data.native import save_native
    from decalign.errors import UsageError
    from decalign.safety.outputs import atomic_directory, guarded_output

    if (folds is None) == (not halves):
        raise UsageError("write_split_files: give either folds or halves")
    if fmt not in ("npz", "safetensors"):
        raise UsageError(f"unknown native format {fmt!r}; use 'npz' or 'safetensors'")
    overrides: dict[str, object] = {"standardize": None, "path": None}
    if kind is not None:
        overrides["dataset"] = kind
    cfg = dataclasses.replace(config or DataConfig(), **overrides)  # type: ignore[arg-type]
    with guarded_output(out_dir, flag="OUT", inputs={"IN": in_path}, overwrite=overwrite) as out:
        dataset = load_dataset(in_path, cfg)
        plan = fold_plan(dataset, folds) if folds is not None else None  # refused before anything is written
        pair = valid_halves(dataset) if halves else None

        def datasets() -> Iterator[tuple[str, MultimodalDataset]]:
            if plan is not None:
                yield from ((f"fold_{f + 1}", fold_dataset(dataset, plan, f)) for f in range(plan.k))
            else:
                assert pair is not None
                yield from zip(("half_a", "half_b"), pair)

        names: list[str] = []

        def fill(folder: Path) -> None:
            from decalign.data.misleading import add_misleading_modality

            for name, ds in datasets():
                save_native(ds if misleading is None else add_misleading_modality(ds, misleading),
                            folder / f"{name}.{fmt}", fmt)
                names.append(f"{name}.{fmt}")

        atomic_directory(out, fill)
        return [Path(out) / n for n in names]
