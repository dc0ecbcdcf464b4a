"""Decoding media with PyAV: mono audio at one sample rate, video frames at one frame rate.

PyAV wraps FFmpeg and its wheels ship the codecs, so mp4/mkv/webm/avi and wav/flac/mp3 decode
the same on every machine without a system FFmpeg. Every failure to open or decode a file becomes
a :class:`~decalign.extract.errors.MediaError` naming it (the clip's ``decode error`` status).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from decalign.extract.errors import MediaError, require

__all__ = ["AUDIO_SUFFIXES", "MEDIA_SUFFIXES", "VIDEO_SUFFIXES", "MediaInfo", "probe", "read_audio", "read_frames"]

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
MEDIA_SUFFIXES: tuple[str, ...] = VIDEO_SUFFIXES + AUDIO_SUFFIXES


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
    path: str | os.PathLike[str], sample_rate: int, start: float | None = None, end: float | None = None
) -> np.ndarray | None:
    """The first audio stream of ``path`` between ``start`` and ``end`` seconds (whole file when
    ``None``), downmixed to mono float32 at ``sample_rate``; ``None`` if there is no audio stream.
    """
    av = require("av", "av (PyAV)")
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        first: float | None = None
        try:
            _seek(container, stream, start)
            for frame in container.decode(stream):
                if first is None:
                    first = float(frame.time) if frame.time is not None else 0.0
                if end is not None and frame.time is not None and frame.time > end:
                    break
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except Exception as err:
            raise MediaError(f"{os.fspath(path)}: audio decode error ({type(err).__name__}: {err})") from None
    signal = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    offset = first or 0.0
    lo = max(0, round(((start or 0.0) - offset) * sample_rate))
    hi = len(signal) if end is None else max(lo, round((end - offset) * sample_rate))
    return signal[lo:hi]


def read_frames(
    path: str | os.PathLike[str], fps: float, start: float | None = None, end: float | None = None,
    max_side: int = 640,
) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames (``uint8 [H, W, 3]``) of the first video stream sampled at ``fps`` between
    ``start`` and ``end`` seconds, with their times; frames wider or taller than ``max_side`` are
    scaled down (face detection needs no more, and decoding stays fast).

    A frame is taken at each multiple of ``1/fps`` from the clip start: the first decoded frame at
    or after that time (so a 10 fps source sampled at 25 fps yields 10 frames per second, never
    duplicates). Raises :class:`MediaError` if the file has no video stream or fails to decode.
    """
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{os.fspath(path)}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames: list[np.ndarray] = []
        times: list[float] = []
        begin = start or 0.0
        k = 0  # index of the next sampling time begin + k / fps (no accumulated rounding)
        eps = 1e-6
        try:
            _seek(container, stream, start)
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else begin + k / fps
                if end is not None and t >= end:
                    break
                if t + eps < begin + k / fps:
                    continue
                scale = max_side / max(frame.width, frame.height)
                if scale < 1:
                    frame = frame.reformat(width=int(frame.width * scale) // 2 * 2,
                                           height=int(frame.height * scale) // 2 * 2)
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(t)
                while begin + k / fps <= t + eps:
                    k += 1
        except Exception as err:
            raise MediaError(f"{os.fspath(path)}: video decode error ({type(err).__name__}: {err})") from None
    return frames, times
