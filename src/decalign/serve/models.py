"""Checkpoints loaded once and reused, and what the server computes with them.

Loading a checkpoint (and, for media, building its extractors: a text model, openSMILE, a face
detector) takes far longer than a prediction, so :class:`ModelCache` keeps the last few and
loads each at most once even when many requests for it arrive together (one lock per entry).
An entry is keyed by the file and its modification time, so a checkpoint rewritten by a new
training is loaded again. The predictions themselves go through :class:`decalign.Predictor`
and :class:`decalign.extract.predict.MediaModel`, the code of ``decalign predict``, so the
server answers what the command line answers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from decalign.data.types import DataError

if TYPE_CHECKING:
    from decalign.api import Prepared
    from decalign.data.types import MultimodalDataset
    from decalign.extract.predict import MediaModel
    from decalign.inference import Prediction, Predictor, SampleArrays
    from decalign.model.factory import ModelInfo
    from decalign.train.checkpoint import LoadedCheckpoint

T = TypeVar("T")

__all__ = ["ModelCache", "describe_prediction", "predict_with_contributions"]

SCALE_NAMES = {-3: "highly negative", -2: "negative", -1: "weakly negative", 0: "neutral",
               1: "weakly positive", 2: "positive", 3: "highly positive"}
"""The seven-point sentiment scale of MOSI/MOSEI (what ``acc7`` scores)."""


class ModelCache:
    """The last ``size`` objects built from checkpoints (predictors, media models, data), each
    built once per (kind, file, modification time); thread-safe."""

    def __init__(self, size: int = 4, device: str = "cpu") -> None:
        if size < 1:
            raise ValueError("ModelCache: size must be at least 1")
        self.size = size
        self.device = device
        self._entries: OrderedDict[tuple[str, str, int], object] = OrderedDict()
        self._locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads: dict[str, int] = {}
        """How many times each kind was built (tests check that a model is loaded once)."""

    def _get(self, kind: str, path: Path, build: Callable[[], T]) -> T:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            raise DataError(f"{path.name}: missing (the run has no checkpoint for that seed)") from None
        key = (kind, str(path), mtime)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return cast("T", self._entries[key])  # one key, one kind: the entry was built by this kind
            entry_lock = self._locks.setdefault(key, threading.Lock())
        with entry_lock:
            with self._lock:
                if key in self._entries:
                    return cast("T", self._entries[key])
            value = build()
            with self._lock:
                self._entries[key] = value
                self.loads[kind] = self.loads.get(kind, 0) + 1
                while len(self._entries) > self.size:
                    old, _ = self._entries.popitem(last=False)
                    self._locks.pop(old, None)
            return value

    def checkpoint(self, path: Path) -> LoadedCheckpoint:
        """The :class:`~decalign.train.checkpoint.LoadedCheckpoint` of ``path``."""
        from decalign.train.checkpoint import load_checkpoint

        return self._get("checkpoint", path, lambda: load_checkpoint(path))

    def predictor(self, path: Path) -> Predictor:
        """A :class:`decalign.Predictor` over the cached checkpoint (shared model, eval mode)."""
        from decalign.inference import Predictor

        def build() -> Predictor:
            ckpt = self.checkpoint(path)
            return Predictor.from_loaded(ckpt, self.device)

        return self._get("predictor", path, build)

    def media_model(self, path: Path) -> MediaModel:
        """The checkpoint with its extractors (:class:`~decalign.extract.predict.MediaModel`)."""
        from decalign.extract.predict import MediaModel

        return self._get("media", path, lambda: MediaModel(path, self.device))

    def raw_data(self, path: Path) -> MultimodalDataset:
        """The data the checkpoint was trained on, raw (as the data file holds it): the samples
        the pages pick from."""
        from decalign.data import load_dataset

        def build() -> MultimodalDataset:
            config = self.checkpoint(path).config
            return load_dataset(config.data.path, config.data)

        return self._get("raw_data", path, build)

    def prepared_data(self, path: Path) -> Prepared:
        """The trained-on data prepared for the model (its standardisation): what the model's
        forward pass (and its transport plan) takes."""
        from decalign.api import load_for_eval

        return self._get("prepared", path, lambda: load_for_eval(self.checkpoint(path), trained_data=True)[2])


def _scale(value: float, label_range: Sequence[float] | None) -> dict[str, Any]:
    """Polarity and the point of the label scale nearest to a regression value."""
    polarity = "positive" if value > 0 else ("negative" if value < 0 else "neutral")
    out: dict[str, Any] = {"polarity": polarity}
    if label_range is not None:
        lo, hi = float(label_range[0]), float(label_range[1])
        out["range"] = [lo, hi]
        if (lo, hi) == (-3.0, 3.0):
            point = int(np.rint(np.clip(value, lo, hi)))
            out["scale"] = {"value": point, "name": SCALE_NAMES[point]}
        else:
            out["scale"] = {"value": float(np.clip(value, lo, hi)), "name": polarity}
    return out


def describe_prediction(prediction: Prediction, index: int, info: ModelInfo) -> dict[str, Any]:
    """One sample of a :class:`~decalign.inference.Prediction` as JSON: the value (regression) or
    class with its probabilities, and for regression the polarity and the scale point."""
    if prediction.task == "regression":
        value = float(prediction.values[index])
        return {"task": "regression", "prediction": value, **_scale(value, getattr(info, "label_range", None))}
    names = list(prediction.class_names or ())
    assert prediction.probabilities is not None  # every classification prediction carries them
    probs = prediction.probabilities[index]
    return {"task": "classification", "prediction": names[int(prediction.values[index])],
            "probabilities": {n: float(p) for n, p in zip(names, probs)}}


def _score(prediction: Prediction, reference: Prediction) -> float:
    """The number contributions compare: the value (regression) or the probability of the class
    ``reference`` predicted (classification)."""
    if prediction.task == "regression":
        return float(prediction.values[0])
    assert prediction.probabilities is not None  # every classification prediction carries them
    return float(prediction.probabilities[0, int(reference.values[0])])


def predict_with_contributions(
    predictor: Predictor,
    features: Mapping[str, Any],
    lengths: Mapping[str, Any] | None = None,
    drop: Sequence[str] = (),
    split: SampleArrays | None = None,
) -> dict[str, Any]:
    """One sample's prediction, and the prediction with each remaining modality left out.

    A modality's *contribution* is the prediction with everything minus the prediction without it
    (regression: in label units; classification: in probability of the predicted class). It is
    ``None`` for the last modality left, which cannot be dropped. Give either ``features``
    (one sample, ``[T, D]`` per modality) or ``split`` (a one-sample split, media).
    """
    from decalign.inference import check_drop

    drop = check_drop(drop, predictor.info.modalities, predictor.modalities) if drop else ()

    def run(leave: Sequence[str]) -> Prediction:
        if split is not None:
            return predictor.predict_split(split, drop=tuple(leave))
        return predictor.predict(features, lengths, drop=tuple(leave))

    full = run(drop)
    if len(full) != 1:
        raise DataError(f"one sample per request: the input holds {len(full)}")
    given = split.features if split is not None else features
    present = [m for m in predictor.modalities if m not in drop and m in given]
    out = describe_prediction(full, 0, predictor.info)
    out["modalities"] = present
    out["dropped"] = list(drop)
    without: dict[str, Any] = {}
    contributions: dict[str, float | None] = {}
    for m in present:
        if len(present) < 2:
            without[m], contributions[m] = None, None
            continue
        alone = run((*drop, m))
        without[m] = describe_prediction(alone, 0, predictor.info)["prediction"]
        contributions[m] = _score(full, full) - _score(alone, full)
    out["without"] = without
    out["contributions"] = contributions
    return out
