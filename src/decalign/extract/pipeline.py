"""The extraction run: clips -> per-clip features (cached) -> report -> dataset file.

:class:`ExtractConfig` holds every setting (validated once); :class:`Extractors` builds the
extractors it names and turns one :class:`~decalign.extract.inputs.Clip` into arrays and a
:class:`~decalign.extract.report.ClipOutcome`; :func:`run_extraction` does that for every clip
(in ``workers`` processes, with a progress bar and the cache), writes ``extract_report.csv``,
stops with the list of failed clips unless ``skip_failed``, and writes the dataset;
:func:`extract_folder` is all of ``decalign extract``: the clips of a media folder and its
transcripts, split by video where they have no split, then :func:`run_extraction`.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from decalign.extract.errors import ExtractError, MediaError
from decalign.extract.inputs import Clip
from decalign.extract.media import MEDIA_LIMITS, MediaLimits
from decalign.extract.provenance import ExtractorRecord, Provenance
from decalign.extract.report import TOO_LONG, VISION_MISSING, ClipOutcome, write_report

__all__ = [
    "RANGES",
    "ExtractConfig",
    "ExtractResult",
    "Extractors",
    "build_dataset",
    "extract_folder",
    "run_extraction",
    "usable_cores",
]

log = logging.getLogger("decalign")

OUTPUT_FORMATS = ("mmsa", "npz", "safetensors")


RANGES: dict[str, tuple[str, float, float, bool]] = {
    "text_max_length": ("--text-max-len", 3, 512, True),
    "audio_rate": ("--audio-rate", 1e-3, 1000.0, False),
    "fps": ("--fps", 1e-3, 120.0, False),
    "sample_rate": ("--sample-rate", 1000, 192_000, True),
    "max_audio_len": ("--max-audio-len", 1, 1_000_000, True),
    "max_vision_len": ("--max-vision-len", 1, 1_000_000, True),
}
"""setting: (flag, lowest, highest, whole number): the range of every number of an extraction.
512 tokens is a BERT's length; 1000 audio steps per second is ten times openSMILE's own rate;
120 frames per second is the fastest common video; 192 kHz the highest audio rate in use."""


def _check_range(value: object, name: str, lo: float, hi: float, integer: bool) -> None:
    """``value`` a finite number in ``[lo, hi]`` (whole when ``integer``), else an
    :class:`ExtractError` naming ``name`` and the range."""
    kind = "a whole number" if integer else "a finite number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi
    if ok and integer and value != int(value):
        ok = False
    if not ok:
        raise ExtractError(f"{name} must be {kind} in [{lo:g}, {hi:g}], found {value!r}")


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extraction (all of them end up in the dataset's extraction record).

    Attributes:
        text_model: a local HuggingFace encoder directory, or ``None`` for no text modality.
        audio: ``egemaps``, ``compare``, ``librosa`` or ``none``.
        vision: ``hog``, ``image-model``, ``openface`` or ``none``.
        vision_model: the image model directory (``vision="image-model"``).
        openface_dir: directory of OpenFace 2.0 CSVs (``vision="openface"``).
        text_max_length: tokens per transcript (``text_bert`` width); longer ones are truncated.
        audio_rate: audio feature steps per second.
        fps: video frames sampled per second for face detection.
        sample_rate: audio is decoded and resampled to this rate (Hz).
        max_audio_len / max_vision_len: cap on the padded length (longer sequences are cut;
            the report and the log say how many).
        limits: bounds of decoding one clip (:class:`~decalign.extract.media.MediaLimits`:
            longest clip, most frames); a clip beyond them gets the status ``too long``.

    Every number has a finite range (:data:`RANGES`), checked here, and the error names the
    command-line flag: ``--fps inf`` would loop for ever, ``--sample-rate 1000000000`` allocate
    gigabytes.
    """

    text_model: str | None
    audio: str = "egemaps"
    vision: str = "hog"
    vision_model: str | None = None
    openface_dir: str | None = None
    text_max_length: int = 50
    audio_rate: float = 50.0
    fps: float = 10.0
    sample_rate: int = 16000
    max_audio_len: int | None = None
    max_vision_len: int | None = None
    limits: MediaLimits = MEDIA_LIMITS

    def __post_init__(self) -> None:
        from decalign.extract.audio import AUDIO_EXTRACTORS
        from decalign.extract.vision import VISION_EXTRACTORS

        if self.audio not in (*AUDIO_EXTRACTORS, "none"):
            raise ExtractError(f"audio: unknown extractor {self.audio!r}; choose from {[*AUDIO_EXTRACTORS, 'none']}")
        if self.vision not in (*VISION_EXTRACTORS, "none"):
            raise ExtractError(f"vision: unknown extractor {self.vision!r}; choose from {[*VISION_EXTRACTORS, 'none']}")
        if self.vision == "image-model" and not self.vision_model:
            raise ExtractError("vision 'image-model' needs --vision-model DIR (a local HuggingFace image model)")
        if self.vision == "openface" and not self.openface_dir:
            raise ExtractError("vision 'openface' needs --openface-dir DIR (OpenFace FeatureExtraction CSVs)")
        for name, (flag, lo, hi, integer) in RANGES.items():
            value = getattr(self, name)
            if value is None and name.startswith("max_"):
                continue
            _check_range(value, f"{name} ({flag})", lo, hi, integer)
        if not isinstance(self.limits, MediaLimits):
            raise ExtractError(f"limits must be a MediaLimits, found {type(self.limits).__name__}")
        if sum(x is not None and x != "none" for x in (self.text_model, self.audio, self.vision)) < 2:
            raise ExtractError("extract at least two modalities (text, audio, vision): DecAlign aligns modalities")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, on in (("text", self.text_model is not None), ("audio", self.audio != "none"),
                                     ("vision", self.vision != "none")) if on)

    @classmethod
    def from_provenance(
        cls, prov: Provenance, *, text_model: str | None = None, vision_model: str | None = None,
        openface_dir: str | None = None,
    ) -> ExtractConfig:
        """The settings that reproduce a dataset's features (for ``predict --media``).

        Model folders are the ones passed here (``--text``, ``--vision-model``,
        ``--openface-dir``), not the record's: a checkpoint may not choose a folder to load. A
        record's numbers are checked like any other setting.
        """
        from decalign.extract.audio import AUDIO_EXTRACTORS

        ex = prov.extractors
        text = ex.get("text")
        audio = ex.get("audio")
        vision = ex.get("vision")
        vision_name = {"opencv-hog": "hog", "hf-image": "image-model", "openface": "openface"}
        if vision is not None and vision.name not in vision_name:
            raise ExtractError(f"unknown vision extractor {vision.name[:40]!r} in the extraction record")
        if audio is not None and audio.name.removeprefix("opensmile-") not in AUDIO_EXTRACTORS:
            raise ExtractError(f"unknown audio extractor {audio.name[:40]!r} in the extraction record")
        try:
            return cls(
                text_model=text_model if text else None,
                audio=audio.name.removeprefix("opensmile-") if audio else "none",
                vision=vision_name[vision.name] if vision else "none",
                vision_model=vision_model if vision else None,
                openface_dir=openface_dir if vision else None,
                text_max_length=int(text.settings.get("max_length", 50)) if text else 50,
                audio_rate=float(prov.media.get("audio_rate", 50.0)),
                fps=float(prov.media.get("fps", 10.0)),
                sample_rate=int(prov.media.get("sample_rate", 16000)),
            )
        except (TypeError, ValueError, OverflowError) as err:
            if isinstance(err, ExtractError):
                raise
            raise ExtractError(f"the extraction record holds a setting that is not a number ({err})") from None


class Extractors:
    """The extractors of a config, built once (per worker process) and applied clip by clip."""

    def __init__(self, config: ExtractConfig) -> None:
        from decalign.extract.audio import make_audio_extractor

        self.config = config
        self.text = None
        if config.text_model is not None:
            from decalign.extract.text import HFTextExtractor

            self.text = HFTextExtractor(config.text_model, config.text_max_length)
        self.audio = None if config.audio == "none" else make_audio_extractor(
            config.audio, config.audio_rate, config.sample_rate)
        self.vision: Any = None
        if config.vision == "hog":
            from decalign.extract.vision import HogExtractor

            self.vision = HogExtractor(config.fps)
        elif config.vision == "image-model":
            from decalign.extract.vision import HFImageExtractor

            self.vision = HFImageExtractor(config.vision_model or "", config.fps)
        elif config.vision == "openface":
            from decalign.extract.vision import OpenFaceImporter

            self.vision = OpenFaceImporter(config.openface_dir or "")

    def provenance(self) -> Provenance:
        from decalign import __version__

        records: dict[str, ExtractorRecord] = {}
        for m, ex in (("text", self.text), ("audio", self.audio), ("vision", self.vision)):
            if ex is not None:
                records[m] = ex.record()
        media = {"sample_rate": self.config.sample_rate, "audio_rate": self.config.audio_rate,
                 "fps": self.config.fps, "decoder": "av (PyAV)"}
        from decalign.extract.common import package_version

        media["decoder_version"] = package_version("av")
        return Provenance(records, media, __version__)

    def extract(self, clip: Clip) -> tuple[dict[str, np.ndarray], ClipOutcome]:
        """Features of one clip, and what happened. Problems with the clip's input are statuses;
        anything else (a bug) propagates.

        Frames go one at a time from the decoder to the vision extractor (memory does not grow
        with the clip's duration); a clip beyond ``config.limits`` gets the status ``too long``.
        A clip in which no face is found keeps its text and audio, with vision missing (no
        ``vision`` array: length 0 in the dataset), as the benchmarks' faceless frames are zeros.
        """
        from decalign.extract.media import LimitExceeded, iter_frames, probe, read_audio

        began = time.perf_counter()
        limits = self.config.limits
        out = ClipOutcome(clip.sample_id, "" if clip.media is None else str(clip.media), clip.mode)
        arrays: dict[str, np.ndarray] = {}
        details: list[str] = []

        def media_failed(err: MediaError) -> None:
            out.statuses.append(TOO_LONG if isinstance(err, LimitExceeded) else "decode error")
            details.append(str(err))

        if self.text is not None:
            if not clip.text.strip():
                out.statuses.append("empty transcript")
            else:
                states, bert = self.text(clip.text)
                arrays["text"], arrays["text_bert"] = states, bert
                out.lengths["text"] = int(states.shape[0])
        needs_media = self.audio is not None or (self.vision is not None and self.config.vision != "openface")
        info = None
        if needs_media:
            if clip.media is None:
                out.statuses.append("media not found")
            else:
                try:
                    info = probe(clip.media)
                    span = _header_span(info.duration, clip.start, clip.end)
                    if span is not None and span > limits.max_seconds:
                        raise LimitExceeded(f"{clip.media}: clip of {span:g} s (from its header) is longer than the "
                                            f"limit of {limits.max_seconds:g} s (max_clip_seconds)")
                except MediaError as err:
                    media_failed(err)
                    info = None
        if self.audio is not None and info is not None:
            try:
                signal = read_audio(clip.media or "", self.config.sample_rate, clip.start, clip.end, limits)
            except MediaError as err:
                media_failed(err)
            else:
                if signal is None or len(signal) == 0:
                    out.statuses.append("no audio")
                else:
                    arrays["audio"] = self.audio(signal)
                    out.lengths["audio"] = int(arrays["audio"].shape[0])
                del signal
        if self.vision is not None:
            result = None
            if self.config.vision == "openface":
                csv_file = self.vision.find(clip.clip_id, clip.video_id)
                if csv_file is None:
                    out.statuses.append("no OpenFace CSV")
                    details.append(f"no {clip.clip_id}.csv in {self.vision.directory}")
                else:
                    result = self.vision(csv_file, clip.start, clip.end)
            elif info is not None and TOO_LONG not in out.statuses:
                if not info.has_video:
                    out.statuses.append("no video")
                else:
                    frames = (rgb for rgb, _ in iter_frames(clip.media or "", self.config.fps, clip.start, clip.end,
                                                            limits=limits))
                    try:
                        result = self.vision(frames)
                    except MediaError as err:
                        media_failed(err)
                    if result is not None and result.frames == 0:
                        out.statuses.append("no video")
                        result = None
            if result is not None:
                out.sampled_frames, out.face_frames = result.frames, result.face_frames
                missing = result.frames - result.face_frames
                if result.face_frames:
                    arrays["vision"] = result.features
                    out.lengths["vision"] = int(result.features.shape[0])
                    if missing:
                        out.statuses.append(f"no face in {round(100 * missing / result.frames)}% of frames")
                elif result.frames:
                    out.statuses.append(f"{VISION_MISSING} (no face in any of {result.frames} sampled frames)")
                    out.lengths["vision"] = 0
        out.statuses = list(dict.fromkeys(out.statuses))
        out.detail = " | ".join(details)
        out.seconds = time.perf_counter() - began
        return arrays, out


def _header_span(duration: float | None, start: float | None, end: float | None) -> float | None:
    """The clip's length as far as the container's header tells (``None``: unknown)."""
    if start is not None and end is not None:
        return end - start
    if duration is None or not math.isfinite(duration):
        return None
    return (duration if end is None else end) - (start or 0.0)


@dataclass
class ExtractResult:
    """What :func:`run_extraction` produced."""

    dataset: Path | None
    report: Path | None
    outcomes: list[ClipOutcome]
    included: list[str]
    provenance: Provenance
    notes: list[str] = field(default_factory=list)


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota
    (``cpu.max``, as containers set it). ``--workers`` is capped here: each worker holds its own
    copy of the models, so workers beyond the cores only cost memory."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


_WORKER: dict[str, Extractors] = {}
"""Per-process extractors of a worker pool (set by :func:`_init_worker`; empty in the parent).
Models are loaded once per process, not once per clip."""


def _init_worker(config: ExtractConfig) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if config.text_model is not None or config.vision == "image-model":  # only then is torch needed
        import torch

        torch.set_num_threads(1)  # N processes x 1 thread, not N x all cores
    _WORKER["extractors"] = Extractors(config)


def _work(clip: Clip) -> tuple[dict[str, np.ndarray], ClipOutcome]:
    return _WORKER["extractors"].extract(clip)


def _pad(seqs: Sequence[np.ndarray | None], length: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences padded with zeros to ``[N, length, width]`` and their lengths; a missing one
    (``None`` or empty) is all zeros with length 0, which the data layer reads as one zero step
    (as the benchmarks' features for frames without a face)."""
    out = np.zeros((len(seqs), length, width), np.float32)
    lengths = np.zeros(len(seqs), np.int64)
    for i, s in enumerate(seqs):
        if s is None:
            continue
        n = min(len(s), length)
        out[i, :n] = s[:n]
        lengths[i] = n
    return out, lengths


def build_dataset(
    clips: Sequence[Clip], arrays: Sequence[dict[str, np.ndarray]], config: ExtractConfig, prov: Provenance
) -> tuple[dict[str, Any], list[str]]:
    """The MMSA unaligned-layout dict (``{'train'|'valid'|'test': {...}, 'extraction': json}``)
    of the included clips, and notes on what was cut.

    Text is padded to ``text_max_length`` tokens (as MMSA's ``text_bert``); audio and vision to
    the longest clip (or ``max_*_len``). A clip without one modality (vision, when no face was
    found) has zeros and length 0 there.
    """
    notes: list[str] = []
    unlabelled = [c.sample_id for c in clips if c.label is None]
    if unlabelled:
        raise ExtractError(
            f"no label for {len(unlabelled)} clip(s) (e.g. {unlabelled[:5]}): a dataset needs a numeric 'label' "
            "column (in the transcripts or --labels CSV); to predict one video use decalign predict --media"
        )
    widths = {m: r.width for m, r in prov.extractors.items()}
    lengths = {}
    for m in config.modalities:
        if m == "text":
            lengths[m] = config.text_max_length
            continue
        longest = max((len(a[m]) for a in arrays if m in a), default=1)
        cap = config.max_audio_len if m == "audio" else config.max_vision_len
        if cap is not None and longest > cap:
            cut = sum(len(a[m]) > cap for a in arrays if m in a)
            notes.append(f"{m}: {cut} clip(s) longer than {cap} steps were cut to {cap}")
            longest = cap
        lengths[m] = max(1, longest)
    data: dict[str, Any] = {}
    for split in ("train", "valid", "test"):
        idx = [i for i, c in enumerate(clips) if c.mode == split]
        sp: dict[str, Any] = {
            "id": np.array([clips[i].sample_id for i in idx], dtype=np.str_),
            "raw_text": np.array([clips[i].text for i in idx], dtype=np.str_),
            "regression_labels": np.array([clips[i].label for i in idx], dtype=np.float32),
        }
        for m in config.modalities:
            feats, lens = _pad([arrays[i].get(m) for i in idx], lengths[m], widths[m])
            sp[m], sp[f"{m}_lengths"] = feats, lens
        if "text" in config.modalities:
            sp["text_bert"] = np.stack([arrays[i]["text_bert"] for i in idx]).astype(np.int64) if idx else \
                np.zeros((0, 3, config.text_max_length), np.int64)
        data[split] = sp
    data["extraction"] = prov.to_json()
    return data, notes


def _write(data: dict[str, Any], out: Path, fmt: str) -> Path:
    from decalign.train.atomic import atomic_write

    if fmt == "mmsa":
        def dump(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                pickle.dump(data, fh, protocol=4)

        return atomic_write(out, dump)
    from decalign.data.arrays import ReadLog
    from decalign.data.mmsa import read_mmsa
    from decalign.data.native import save_native

    ds = read_mmsa(dict(data), str(out), "custom", ReadLog())
    return save_native(ds, out, fmt)


def output_format(out: Path, fmt: str | None) -> str:
    """``fmt``, or from the name: ``.pkl`` -> MMSA pickle, ``.npz``/``.safetensors`` -> native
    file, anything else -> native directory (npz)."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise ExtractError(f"unknown output format {fmt!r}; choose from {list(OUTPUT_FORMATS)}")
        return fmt
    suffix = out.suffix.lower()
    return {".pkl": "mmsa", ".pickle": "mmsa", ".safetensors": "safetensors"}.get(suffix, "npz")


def report_location(out: str | os.PathLike[str] | None, report: str | os.PathLike[str] | None,
                    cache_dir: str | os.PathLike[str] | None) -> Path | None:
    """Where the report goes: ``report``, else ``extract_report.csv`` beside ``out``, else in the
    cache folder, else nowhere."""
    if report is not None:
        return Path(report)
    if out is not None:
        return Path(out).parent / "extract_report.csv"
    return Path(cache_dir) / "extract_report.csv" if cache_dir is not None else None


def _is_earlier_report(path: Path) -> bool:
    """Whether ``path`` is a report an earlier ``extract`` wrote (its header row is ours): such a
    file is replaced by the next run (the rerun after fixing failed clips), anything else only
    with ``overwrite``."""
    from decalign.extract.report import REPORT_COLUMNS

    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.readline(4096).rstrip("\r\n") == ",".join(REPORT_COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False


def run_extraction(
    clips: Sequence[Clip],
    config: ExtractConfig,
    out: str | os.PathLike[str] | None,
    *,
    overwrite: bool = False,
    inputs: dict[str, str | os.PathLike[str] | None] | None = None,
    **options: Any,
) -> ExtractResult:
    """:func:`extract_clips` behind the output guard (:mod:`decalign.safety.outputs`), checked
    before any clip is extracted and held until the dataset is written: ``out`` and the report may
    not be one of ``inputs`` (flag -> path: the transcripts and labels CSVs, the media folder) nor
    a clip's media file, and both are locked, so two runs on one ``out`` cannot both succeed; an
    existing ``out`` is refused unless ``overwrite``, an existing report too unless it is an
    earlier extract report. ``options`` are those of :func:`extract_clips`."""
    import contextlib

    from decalign.safety.outputs import guarded_output

    named: dict[str, str | os.PathLike[str] | None] = dict(inputs or {})
    named.update({f"(the media of clip {c.sample_id!r})": c.media for c in clips if c.media is not None})
    report_path = report_location(out, options.get("report"), options.get("cache_dir"))
    with contextlib.ExitStack() as guards:
        if out is not None:
            guards.enter_context(guarded_output(out, flag="--out", inputs=named, overwrite=overwrite))
        if report_path is not None:
            also = {"--out": out} if out is not None else {}
            replace = overwrite or (report_path.is_file() and _is_earlier_report(report_path))
            guards.enter_context(guarded_output(report_path, flag="--report", inputs={**named, **also},
                                                overwrite=replace))
        return extract_clips(clips, config, out, **options)


def extract_folder(
    media: str | os.PathLike[str],
    config: ExtractConfig,
    out: str | os.PathLike[str],
    *,
    transcripts: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    split_seed: int = 0,
    report: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    workers: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
    skip_failed: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> ExtractResult:
    """``decalign extract``: the clips of ``media`` with their ``transcripts`` and ``labels``
    (:func:`~decalign.extract.inputs.discover_clips`), those without a split assigned one 70/15/15
    by video with ``split_seed``, extracted with ``config`` into the dataset ``out`` by
    :func:`run_extraction` (``report``, ``fmt``, ``workers``, ``skip_failed``, ``progress``,
    ``overwrite`` as there). The per-clip cache is ``cache_dir`` (default ``<out>.cache``), or none
    without ``cache``. The input files are the output guard's inputs: ``out`` may be none of them."""
    from decalign.extract.inputs import assign_splits, discover_clips

    if workers < 1:
        raise ExtractError(f"--workers must be >= 1, found {workers}")
    if not 0 <= split_seed < 2**32:
        raise ExtractError(f"--split-seed must be in [0, 2**32 - 1], found {split_seed}")
    clips = discover_clips(media, transcripts, labels)
    unsplit = sum(c.mode is None for c in clips)
    if unsplit:
        clips = assign_splits(clips, seed=split_seed)
        log.warning("extract: %d clip(s) have no 'mode'; split 70/15/15 by video (seed %d)", unsplit, split_seed)
    out = Path(out)
    cache_path = (Path(cache_dir) if cache_dir is not None else Path(f"{out}.cache")) if cache else None
    inputs = {"--media": media, "--transcripts": transcripts, "--labels": labels,
              "--openface-dir": config.openface_dir}
    return run_extraction(clips, config, out, report=report, fmt=fmt, workers=workers, cache_dir=cache_path,
                          skip_failed=skip_failed, progress=progress, overwrite=overwrite, inputs=inputs)


def extract_clips(
    clips: Sequence[Clip],
    config: ExtractConfig,
    out: str | os.PathLike[str] | None,
    *,
    report: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    workers: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    skip_failed: bool = False,
    progress: bool = True,
    on_clip: Callable[[ClipOutcome], None] | None = None,
) -> ExtractResult:
    """Extract every clip, write the report, then (unless a clip failed and ``skip_failed`` is
    off) the dataset ``out``.

    The report goes to ``report``, else beside ``out``, else into ``cache_dir``; with none of
    them (``out=None``: extraction only) the outcomes are only returned.

    Raises:
        ExtractError: listing the failed clips and naming the report, when clips failed and
            ``skip_failed`` is off (the report and the cache are written first, so fixing the
            inputs and rerunning only redoes the failed clips).
    """
    from tqdm.auto import tqdm

    from decalign.extract.cache import ClipCache

    if not clips:
        raise ExtractError("no clips to extract (the transcripts CSV lists none)")
    ids = [c.sample_id for c in clips]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ExtractError(f"sample ids appear more than once: {dupes[:5]}")
    out_path = Path(out) if out is not None else None
    report_path = report_location(out, report, cache_dir)
    main = Extractors(config)  # in this process too: the record, and the work when workers == 1
    prov = main.provenance()
    cache = ClipCache(cache_dir, prov.to_json()) if cache_dir is not None else None
    if workers < 1:
        raise ExtractError(f"--workers must be >= 1, found {workers}")

    results: dict[int, tuple[dict[str, np.ndarray], ClipOutcome]] = {}
    todo: list[int] = []
    for i, clip in enumerate(clips):
        hit = cache.load(clip) if cache is not None else None
        if hit is not None:
            results[i] = hit
        else:
            todo.append(i)
    if results:
        log.info("extract: %d of %d clip(s) from the cache %s", len(results), len(clips), cache_dir)
    if cache is not None and cache.rejected:
        log.warning("extract: %d cache entr(y/ies) did not fit and are extracted again (see the report's detail)",
                    len(cache.rejected))
    cores = usable_cores()
    if workers > cores:
        log.warning("extract: --workers %d capped to the %d usable core(s)", workers, cores)
        workers = cores

    def done(i: int, res: tuple[dict[str, np.ndarray], ClipOutcome]) -> None:
        rejected = cache.rejected.get(clips[i].sample_id) if cache is not None else None
        if rejected:
            res[1].detail = " | ".join(x for x in (res[1].detail, rejected) if x)
        results[i] = res
        if cache is not None and TOO_LONG not in res[1].statuses:
            # (limits are not part of the key: a clip refused as too long is tried again with a higher limit)
            cache.save(clips[i], *res)
        if on_clip is not None:
            on_clip(res[1])

    bar = tqdm(total=len(clips), initial=len(results), unit="clip", desc="extract", disable=not progress)
    try:
        workers = min(workers, len(todo))
        if workers <= 1:
            for i in todo:
                done(i, main.extract(clips[i]))
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from concurrent.futures.process import BrokenProcessPool

            # spawn, not fork: the parent has torch (and maybe a model) loaded and threads running.
            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(config,))
            try:
                futures = {pool.submit(_work, clips[i]): i for i in todo}
                for fut in as_completed(futures):
                    done(futures[fut], fut.result())
                    bar.update()
            except BrokenProcessPool:
                kept = (f"the {len(results)} finished clip(s) are in the cache {cache_dir}: rerun to go on"
                        if cache is not None else "nothing was kept (--no-cache)")
                raise ExtractError(
                    f"an extraction worker process ended abruptly (killed by the operating system, often for "
                    f"lack of memory) after {len(results)} of {len(clips)} clip(s); {kept}, with fewer --workers"
                ) from None
            finally:
                # On Ctrl-C or an error, clips not yet started are dropped (the cache keeps the
                # finished ones) instead of the pool working through the whole queue first.
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()

    outcomes = [results[i][1] for i in range(len(clips))]
    failed = [o for o in outcomes if o.failed]
    keep = [i for i in range(len(clips)) if not outcomes[i].failed]
    included = {clips[i].sample_id for i in keep} if (skip_failed or not failed) else set()
    if report_path is not None:
        write_report(report_path, outcomes, included)
    result = ExtractResult(None, report_path, outcomes, sorted(included), prov)
    if failed and not skip_failed:
        listing = "; ".join(f"{o.sample_id}: {o.status}" for o in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        raise ExtractError(
            f"{len(failed)} of {len(clips)} clip(s) failed: {listing}{more}. "
            + (f"Every clip is in {report_path}; " if report_path is not None else "")
            + "fix them, or pass --skip-failed to leave them out"
        )
    if failed:
        log.warning("extract: %d clip(s) left out (--skip-failed); see %s", len(failed), report_path)
    if not keep:
        raise ExtractError("no clip could be extracted" + (f"; see {report_path}" if report_path else ""))
    if out_path is None:
        return result
    data, notes = build_dataset([clips[i] for i in keep], [results[i][0] for i in keep], config, prov)
    result.notes = notes
    for note in notes:
        log.warning("extract: %s", note)
    result.dataset = _write(data, out_path, output_format(out_path, fmt))
    return result
