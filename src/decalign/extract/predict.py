"""``decalign predict --media``: one new video (or audio file) and its transcript to a prediction,
with the extractors recorded in the checkpoint (its training data's extraction record).

The features are made exactly as the training data's were (same extractors, settings, rates),
padded or cut to the lengths the model was built for, standardised with the model's own
statistics, and run through the model. A checkpoint without an extraction record (trained on
benchmark feature files) cannot be used this way: nothing says how its features were made.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from decalign.extract.errors import ExtractError
from decalign.extract.media import MEDIA_LIMITS, MediaLimits
from decalign.extract.provenance import ExtractorRecord

if TYPE_CHECKING:
    from decalign.data.types import Split
    from decalign.extract.report import ClipOutcome
    from decalign.inference import Prediction, Predictor

__all__ = ["MediaModel", "describe_prediction", "format_prediction", "predict_media", "recorded_model_dir"]


def recorded_model_dir(record: ExtractorRecord, what: str, flag: str, checkpoint: str) -> str:
    """The model folder a checkpoint's extraction record names, if it is cheaply seen to hold the
    recorded files: each file the record lists (names and sizes, at most
    :data:`~decalign.safety.paths.MAX_MODEL_DIR_ENTRIES`) is looked up by name, nothing is listed,
    walked or hashed before that. Otherwise an :class:`ExtractError` asking for ``flag``.

    A checkpoint is data: naming ``/usr`` or ``/proc`` in it must not make decalign walk that tree.
    """
    from decalign.errors import DataError
    from decalign.safety.paths import MAX_MODEL_DIR_ENTRIES, safe_name

    recorded = record.settings.get("model_dir")
    files = record.settings.get("files")
    ask = f"pass {flag} DIR (the {what} the model was trained with)"
    if not isinstance(recorded, str) or not recorded:
        raise ExtractError(f"{checkpoint}: the extraction record names no {what} folder; {ask}")
    shown = recorded[:120]
    if not isinstance(files, dict) or not files or len(files) > MAX_MODEL_DIR_ENTRIES:
        raise ExtractError(f"{checkpoint}: the record does not list the files of its {what} {shown!r} (it predates "
                           f"the check), so that folder is not used; {ask}")
    if "config.json" not in files:
        raise ExtractError(f"{checkpoint}: the record's {what} {shown!r} lists no config.json; {ask}")
    folder = Path(recorded)
    for name, size in files.items():
        try:
            safe_name(str(name), f"{checkpoint}: the record's {what} files", "file name")
        except DataError as err:
            raise ExtractError(f"{err}; {ask}") from None
        try:
            st = (folder / str(name)).stat()
        except (OSError, ValueError):
            raise ExtractError(f"{checkpoint}: the {what} folder the record names, {shown!r}, has no file "
                               f"{str(name)[:80]!r} as recorded; {ask}") from None
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise ExtractError(f"{checkpoint}: {str(name)[:80]!r} in the {what} folder {shown!r} differs from the "
                               f"record (size {st.st_size}, recorded {size}); {ask}")
    return recorded


def predict_media(
    checkpoint: str | os.PathLike[str],
    media: str | os.PathLike[str],
    transcript: str,
    *,
    start: float | None = None,
    end: float | None = None,
    device: str = "auto",
    text_model: str | os.PathLike[str] | None = None,
    vision_model: str | os.PathLike[str] | None = None,
    openface_dir: str | os.PathLike[str] | None = None,
    limits: MediaLimits = MEDIA_LIMITS,
) -> dict[str, Any]:
    """Prediction for one clip: ``{"prediction": float}`` (regression) or ``{"predicted": class,
    "probabilities": {...}}``, plus the clip's status, feature lengths and the extractors used.

    Model folders are ``text_model``/``vision_model``/``openface_dir`` when given; else the
    folder the record names, used only if it holds the recorded files (:func:`recorded_model_dir`).
    A clip without a face is predicted with vision missing.

    Raises:
        ExtractError: the checkpoint has no extraction record, its extractors cannot be rebuilt
            as recorded (a model directory that moved or changed: pass it), or the clip fails
            (decode error, no audio, empty transcript, too long).
    """
    from decalign.extract.inputs import check_times

    check_times(start, end, "--start/--end")
    if not Path(media).is_file():
        raise ExtractError(f"--media {os.fspath(media)!r}: not a file")
    model = MediaModel(checkpoint, device, text_model=text_model, vision_model=vision_model,
                       openface_dir=openface_dir, limits=limits)
    return model.predict(media, transcript, start=start, end=end)


class MediaModel:
    """A checkpoint with its extractors rebuilt from its extraction record, built once and applied
    clip by clip (``predict --media`` builds one per call; ``decalign serve`` keeps them).

    Extraction runs one clip at a time (:attr:`lock`): the extractors keep per-call state
    (decoders, the text model's tokenizer) that is not meant to be shared between threads.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], device: str = "auto", *,
                 text_model: str | os.PathLike[str] | None = None,
                 vision_model: str | os.PathLike[str] | None = None,
                 openface_dir: str | os.PathLike[str] | None = None,
                 limits: MediaLimits = MEDIA_LIMITS) -> None:
        import threading

        from decalign.extract.pipeline import ExtractConfig, Extractors
        from decalign.extract.provenance import Provenance, compare
        from decalign.inference import Predictor
        from decalign.train.checkpoint import load_checkpoint

        where = os.fspath(checkpoint)
        ckpt = load_checkpoint(checkpoint)
        record = ckpt.info.provenance
        if not record:
            raise ExtractError(
                f"{where}: the checkpoint carries no extraction record (it was not trained on data "
                "from decalign extract), so there is no way to make features it understands from media"
            )
        try:
            prov = Provenance.from_dict(record)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ExtractError(f"{where}: unreadable extraction record ({str(err)[:200]})") from None
        text_rec, vision_rec = prov.extractors.get("text"), prov.extractors.get("vision")
        if text_rec is not None and text_model is None:
            text_model = recorded_model_dir(text_rec, "text model", "--text", where)
        if vision_rec is not None and vision_rec.name == "hf-image" and vision_model is None:
            vision_model = recorded_model_dir(vision_rec, "image model", "--vision-model", where)
        if vision_rec is not None and vision_rec.name == "openface" and openface_dir is None:
            raise ExtractError(f"{where}: the model's vision features are OpenFace CSVs; pass --openface-dir DIR "
                               "with <clip>.csv for each clip")
        self.provenance = prov
        self.config = replace(ExtractConfig.from_provenance(
            prov, text_model=None if text_model is None else os.fspath(text_model),
            vision_model=None if vision_model is None else os.fspath(vision_model),
            openface_dir=None if openface_dir is None else os.fspath(openface_dir)), limits=limits)
        self.extractors = Extractors(self.config)
        problems = compare(record, self.extractors.provenance().to_dict())
        if problems:
            raise ExtractError(f"{where}: its extractors cannot be rebuilt as recorded: " + "; ".join(problems))
        self.info = ckpt.info
        self.predictor = Predictor.from_loaded(ckpt, device)
        self.lock = threading.Lock()

    def features(
        self, media: str | os.PathLike[str], transcript: str, *, start: float | None = None, end: float | None = None
    ) -> tuple[Split, ClipOutcome, list[str], dict[str, float]]:
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
        result.update(describe_prediction(self.predictor, split, prediction))
        return result


def describe_prediction(predictor: Predictor, split: Split, prediction: Prediction) -> dict[str, Any]:
    """What one clip's prediction means: the value (regression: with its polarity and the label
    scale the model was trained on; classification: the class and every probability), and what
    each modality contributes: the prediction with that modality left out (the model's rule for a
    missing modality) and, for regression, the difference it makes."""
    out: dict[str, Any] = {}
    active = [m for m in predictor.modalities if m in split.features]
    without = {m: predictor.predict_split(split, drop=[m]) for m in active} if len(active) > 1 else {}
    if prediction.task == "regression":
        value = float(prediction.values[0])
        out["prediction"] = value
        out["polarity"] = "positive" if value > 0 else "negative" if value < 0 else "neutral"
        label_range = predictor.info.label_range
        out["scale"] = list(label_range) if label_range is not None else None
        out["without"] = {m: float(p.values[0]) for m, p in without.items()}
        out["contribution"] = {m: value - v for m, v in out["without"].items()}
    else:
        names = prediction.class_names or ()
        out["predicted"] = names[int(prediction.values[0])]
        assert prediction.probabilities is not None
        out["probabilities"] = {n: float(p) for n, p in zip(names, prediction.probabilities[0])}
        out["without"] = {m: names[int(p.values[0])] for m, p in without.items()}
    return out


def format_prediction(result: dict[str, Any]) -> str:
    """``predict --media`` as text: the prediction on its scale with its polarity, then the
    prediction without each modality (what that modality contributes)."""
    lines = []
    if "prediction" in result:
        value = result["prediction"]
        scale = result.get("scale")
        on = " on the training labels' scale" + (f" [{scale[0]:g}, {scale[1]:g}]" if scale else "")
        lines.append(f"prediction: {value:+.4f}{on} ({result.get('polarity', '?')})")
        for m, v in result.get("without", {}).items():
            lines.append(f"  without {m}: {v:+.4f}  ({m} contributes {result['contribution'][m]:+.4f})")
    else:
        probs = result.get("probabilities", {})
        lines.append(f"prediction: {result['predicted']} (probability {probs.get(result['predicted'], 0.0):.3f}; "
                     + ", ".join(f"{n} {p:.3f}" for n, p in probs.items()) + ")")
        for m, c in result.get("without", {}).items():
            lines.append(f"  without {m}: {c}")
    if result.get("without"):
        lines.append("(a modality's contribution: the prediction with it minus the prediction with it left out)")
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    if result.get("status", "ok") != "ok":
        lines.append(f"note: {result['status']}")
    return "\n".join(lines)
