"""Decoding media with PyAV: mono audio at one sample rate, video frames at one frame rate.

PyAV wraps FFmpeg and its wheels ship the codecs, so mp4/mkv/webm/avi and wav/flac/mp3 decode
the same on every machine without a system FFmpeg. Every failure to open or decode a file becomes
a :class:`~decalign.extract.errors.MediaError` naming it (the clip's ``decode error`` status).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from decalign.extract.errors import MediaError, require

__all__ = [
    "AUDIO_SUFFIXES", "MEDIA_LIMITS", "MEDIA_SUFFIXES", "VIDEO_SUFFIXES", "LimitExceeded", "MediaInfo", "MediaLimits",
    "check_span", "iter_frames", "probe", "read_audio", "read_frames",
]

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
MEDIA_SUFFIXES: tuple[str, ...] = VIDEO_SUFFIXES + AUDIO_SUFFIXES


@dataclass(frozen=True)
class MediaLimits:
    """Bounds of decoding one clip, enforced while decoding (a header's duration can lie).

    Attributes:
        max_seconds: longest clip decoded (10 minutes; MOSI/MOSEI/CH-SIMS clips last seconds).
            A longer clip gets the status ``too long`` (raise it with ``--max-clip-seconds``).
        max_frames: most video frames decoded per clip (60 fps for 10 minutes), whatever their
            timestamps say.

    Memory does not grow with either: frames are processed one at a time, and the audio kept is
    at most ``max_seconds x sample_rate`` float32 samples (38 MB at 16 kHz).
    """

    max_seconds: float = 600.0
    max_frames: int = 36_000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_seconds) and 0 < self.max_seconds <= MAX_CLIP_SECONDS):
            raise MediaError(f"max_clip_seconds (--max-clip-seconds) must be a finite number in "
                             f"(0, {MAX_CLIP_SECONDS:g}], found {self.max_seconds}")
        if not 1 <= self.max_frames <= 10_000_000:
            raise MediaError(f"max_frames must be in [1, 10000000], found {self.max_frames}")


MAX_CLIP_SECONDS = 86_400.0
"""Largest ``max_clip_seconds`` accepted (a day)."""

MEDIA_LIMITS = MediaLimits()


class LimitExceeded(MediaError):
    """A clip beyond :class:`MediaLimits` (the clip's ``too long`` status)."""


def check_span(path: str | os.PathLike[str], start: float | None, end: float | None, limits: MediaLimits) -> None:
    """Refuse a requested ``[start, end)`` longer than ``limits.max_seconds`` before decoding."""
    if start is not None and end is not None and end - start > limits.max_seconds:
        raise LimitExceeded(f"{os.fspath(path)}: clip of {end - start:g} s is longer than the limit of "
                            f"{limits.max_seconds:g} s (max_clip_seconds)")


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds."""

    has_audio: bool
    has_video: bool
    duration: float | None


def _open(path: str | os.PathLike[str]) -> Any:
    av = require("av", "av (PyAV)")
    if not Path(path).is_file():
        raise MediaError(f"{os.fspath(path)}: media file does not exist")
    try:
        return av.open(os.fspath(path))
    except Exception as err:  # FFmpeg reports many error types for broken files
        raise MediaError(f"{os.fspath(path)}: cannot open as media ({type(err).__name__}: {err})") from None


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Streams and duration of ``path`` (raises :class:`MediaError` if it is not media)."""
    with _open(path) as container:
        duration = container.duration / 1_000_000 if container.duration else None
        return MediaInfo(bool(container.streams.audio), bool(container.streams.video), duration)


def _seek(container: Any, stream: Any, start: float | None) -> None:
    if start and start > 0 and stream.time_base:
        # Seeks land on the keyframe before ``start``; frames before it are dropped by time below.
        container.seek(int(start / stream.time_base), stream=stream, any_frame=False, backward=True)


def read_audio(
    path: str | os.PathLike[str], sample_rate: int, start: float | None = None, end: float | None = None,
    limits: MediaLimits = MEDIA_LIMITS,
) -> np.ndarray | None:
    """The first audio stream of ``path`` between ``start`` and ``end`` seconds (whole file when
    ``None``), downmixed to mono float32 at ``sample_rate``; ``None`` if there is no audio stream.

    Decoded frame by frame (only the resampled signal is kept), and stopped with
    :class:`LimitExceeded` past ``limits.max_seconds`` of signal, whatever the header says.
    """
    av = require("av", "av (PyAV)")
    check_span(path, start, end, limits)
    max_samples = int(limits.max_seconds * sample_rate) + sample_rate  # one second of slack for the seek
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        total = 0
        allowed = max_samples
        first: float | None = None
        try:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            _seek(container, stream, start)
            for frame in container.decode(stream):
                if first is None:
                    first = float(frame.time) if frame.time is not None else 0.0
                    if start is not None and math.isfinite(first) and first < start:  # decoded from before start
                        allowed += round(min(start - first, limits.max_seconds) * sample_rate)
                if end is not None and frame.time is not None and frame.time > end:
                    break
                for f in resampler.resample(frame):
                    chunks.append(f.to_ndarray().reshape(-1))
                    total += len(chunks[-1])
                if total > allowed:
                    raise LimitExceeded(f"{os.fspath(path)}: audio longer than the limit of {limits.max_seconds:g} s "
                                        "(max_clip_seconds)")
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except MediaError:
            raise
        except Exception as err:
            raise MediaError(f"{os.fspath(path)}: audio decode error ({type(err).__name__}: {err})") from None
    signal = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    offset = first or 0.0
    lo = max(0, round(((start or 0.0) - offset) * sample_rate))
    hi = len(signal) if end is None else max(lo, round((end - offset) * sample_rate))
    return signal[lo:hi]


def iter_frames(
    path: str | os.PathLike[str], fps: float, start: float | None = None, end: float | None = None,
    max_side: int = 640, limits: MediaLimits = MEDIA_LIMITS,
) -> Iterator[tuple[np.ndarray, float]]:
    """RGB frames (``uint8 [H, W, 3]``) of the first video stream sampled at ``fps`` between
    ``start`` and ``end`` seconds, with their times, one at a time (a clip's frames are never all
    in memory); frames wider or taller than ``max_side`` are scaled down (face detection needs no
    more, and decoding stays fast).

    A frame is taken at each multiple of ``1/fps`` from the clip start: the first decoded frame at
    or after that time (so a 10 fps source sampled at 25 fps yields 10 frames per second, never
    duplicates). Raises :class:`MediaError` if the file has no video stream or fails to decode,
    :class:`LimitExceeded` past ``limits.max_seconds`` or ``limits.max_frames`` decoded frames.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise MediaError(f"{os.fspath(path)}: frame rate must be a finite number > 0, found {fps}")
    check_span(path, start, end, limits)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{os.fspath(path)}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        begin = start or 0.0
        k = 0  # index of the next sampling time begin + k / fps (no accumulated rounding)
        eps = 1e-6
        decoded = 0
        origin: float | None = start
        try:
            _seek(container, stream, start)
            for frame in container.decode(stream):
                decoded += 1
                t = float(frame.time) if frame.time is not None else begin + k / fps
                if origin is None:
                    origin = t
                if end is not None and t >= end:
                    break
                if t - origin > limits.max_seconds or decoded > limits.max_frames:
                    what = (f"more than {limits.max_frames} video frames (max_frames)" if decoded > limits.max_frames
                            else f"video longer than the limit of {limits.max_seconds:g} s (max_clip_seconds)")
                    raise LimitExceeded(f"{os.fspath(path)}: {what}")
                if t + eps < begin + k / fps:
                    continue
                scale = max_side / max(frame.width, frame.height, 1)
                if scale < 1:
                    frame = frame.reformat(width=max(2, int(frame.width * scale) // 2 * 2),
                                           height=max(2, int(frame.height * scale) // 2 * 2))
                rgb = frame.to_ndarray(format="rgb24")
                while begin + k / fps <= t + eps:
                    k += 1
                yield rgb, t
        except MediaError:
            raise
        except Exception as err:
            raise MediaError(f"{os.fspath(path)}: video decode error ({type(err).__name__}: {err})") from None


def read_frames(
    path: str | os.PathLike[str], fps: float, start: float | None = None, end: float | None = None,
    max_side: int = 640, limits: MediaLimits = MEDIA_LIMITS,
) -> tuple[list[np.ndarray], list[float]]:
    """Every frame of :func:`iter_frames` in a list, with their times (for short clips and tests;
    extraction streams)."""
    frames: list[np.ndarray] = []
    times: list[float] = []
    for rgb, t in iter_frames(path, fps, start, end, max_side, limits):
        frames.append(rgb)
        times.append(t)
    return frames, times
