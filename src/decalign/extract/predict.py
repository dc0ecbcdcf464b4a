"""``decalign predict --media``: one new video (or audio file) and its transcript to a prediction,
with the extractors recorded in the checkpoint (its training data's extraction record).

The features are made exactly as the training data's were (same extractors, settings, rates),
padded or cut to the lengths the model was built for, standardised with the model's own
statistics, and run through the model. A checkpoint without an extraction record (trained on
benchmark feature files) cannot be used this way: nothing says how its features were made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from decalign.extract.errors import ExtractError

__all__ = ["MediaModel", "predict_media"]


def predict_media(
    checkpoint: str | os.PathLike[str],
    media: str | os.PathLike[str],
    transcript: str,
    *,
    start: float | None = None,
    end: float | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Prediction for one clip: ``{"prediction": float}`` (regression) or ``{"predicted": class,
    "probabilities": {...}}``, plus the clip's status, feature lengths and the extractors used.

    Raises:
        ExtractError: the checkpoint has no extraction record, its extractors cannot be rebuilt
            as recorded (a model directory that moved or changed), or the clip fails (decode
            error, no audio, no face, empty transcript).
    """
    return MediaModel(checkpoint, device).predict(media, transcript, start=start, end=end)


class MediaModel:
    """A checkpoint with its extractors rebuilt from its extraction record, built once and applied
    clip by clip (``predict --media`` builds one per call; ``decalign serve`` keeps them).

    Extraction runs one clip at a time (:attr:`lock`): the extractors keep per-call state
    (decoders, the text model's tokenizer) that is not meant to be shared between threads.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], device: str = "auto") -> None:
        import threading

        from decalign.extract.pipeline import ExtractConfig, Extractors
        from decalign.extract.provenance import Provenance, compare
        from decalign.inference import Predictor
        from decalign.train.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        record = ckpt.info.provenance
        if not record:
            raise ExtractError(
                f"{os.fspath(checkpoint)}: the checkpoint carries no extraction record (it was not trained on data "
                "from decalign extract), so there is no way to make features it understands from media"
            )
        self.provenance = Provenance.from_dict(record)
        self.config = ExtractConfig.from_provenance(self.provenance)
        self.extractors = Extractors(self.config)
        problems = compare(record, self.extractors.provenance().to_dict())
        if problems:
            raise ExtractError(
                f"{os.fspath(checkpoint)}: its extractors cannot be rebuilt as recorded: " + "; ".join(problems)
            )
        self.info = ckpt.info
        self.predictor = Predictor(ckpt.model, ckpt.config, ckpt.info, ckpt.preprocess, device)
        self.lock = threading.Lock()

    def features(
        self, media: str | os.PathLike[str], transcript: str, *, start: float | None = None, end: float | None = None
    ) -> tuple[Any, Any, list[str], dict[str, float]]:
        """The clip as a one-sample test split the predictor takes, its extraction outcome, notes
        on what was cut to the model's lengths, and the seconds each stage took (``extract``,
        ``assemble``)."""
        import time

        from decalign.data.arrays import ReadLog
        from decalign.data.mmsa import read_mmsa
        from decalign.extract.inputs import Clip
        from decalign.extract.pipeline import build_dataset

        began = time.perf_counter()
        clip = Clip("media", Path(media).stem, None, Path(media), start, end, transcript, 0.0, "test")
        with self.lock:
            arrays, outcome = self.extractors.extract(clip)
        extracted = time.perf_counter()
        if outcome.failed:
            raise ExtractError(f"{os.fspath(media)}: {outcome.status}"
                               + (f" ({outcome.detail})" if outcome.detail else ""))
        data, _ = build_dataset([clip], [arrays], self.config, self.provenance)
        cut = []
        for m, length in self.info.seq_lens.items():
            sp = data["test"]
            if m in sp and m != "text" and sp[m].shape[1] > length:
                cut.append(f"{m} cut from {int(sp[f'{m}_lengths'][0])} to {length} steps (the model's length)")
                sp[m] = np.ascontiguousarray(sp[m][:, :length])
                sp[f"{m}_lengths"] = np.minimum(sp[f"{m}_lengths"], length)
        dataset = read_mmsa(data, os.fspath(media), "custom", ReadLog())
        timings = {"extract": extracted - began, "assemble": time.perf_counter() - extracted}
        return dataset.splits["test"], outcome, cut, timings

    def predict(
        self, media: str | os.PathLike[str], transcript: str, *, start: float | None = None, end: float | None = None
    ) -> dict[str, Any]:
        """:func:`predict_media`'s answer for one clip, with the extractors and model of this object."""
        split, outcome, cut, _ = self.features(media, transcript, start=start, end=end)
        prediction = self.predictor.predict_split(split)
        result: dict[str, Any] = {
            "media": os.fspath(media),
            "transcript": transcript,
            "status": outcome.status,
            "lengths": dict(outcome.lengths),
            "extractors": {m: r.describe() for m, r in self.provenance.extractors.items()},
        }
        if cut:
            result["notes"] = cut
        if prediction.task == "regression":
            result["prediction"] = float(prediction.values[0])
        else:
            names = prediction.class_names or ()
            result["predicted"] = names[int(prediction.values[0])]
            assert prediction.probabilities is not None
            result["probabilities"] = {n: float(p) for n, p in zip(names, prediction.probabilities[0])}
        return result
