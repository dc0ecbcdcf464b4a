"""Media made on the machine, for tests and the extraction walk-through (no download).

* Speech-like audio: a glottal pulse train (F0 with a slow vibrato) through three formant
  resonances, switched on and off in syllables; deterministic for a seed.
* A real face: the portrait of Grace Hopper that matplotlib ships as sample data
  (``mpl-data/sample_data/grace_hopper.jpg``), cropped to the face and moved across a grey
  background frame by frame.

Needs the ``extract`` extra (PyAV writes the containers, OpenCV resizes).

``python -m decalign.testing.media DIR`` writes the walk-through folder of docs/extract.md
(:func:`write_demo_folder`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["face_image", "speech_like", "write_blank_video", "write_demo_folder", "write_media"]


def face_image(size: int = 64) -> np.ndarray:
    """Grace Hopper's face (RGB ``uint8 [size, size, 3]``) from matplotlib's sample data."""
    import cv2
    import matplotlib.cbook as cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path))
    face = bgr[80:360, 130:400]  # the head and a margin (the detector finds the face at 155,105 222x222)
    return cv2.cvtColor(cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def speech_like(seconds: float, sample_rate: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced, syllabic signal (float32 in [-1, 1]) with pitch around ``f0`` Hz."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)))
    phase = np.cumsum(pitch) / sample_rate
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    y = pulses
    for formant, bandwidth in ((700, 110), (1220, 120), (2600, 160)):
        r = np.exp(-np.pi * bandwidth / sample_rate)
        theta = 2 * np.pi * formant / sample_rate
        y = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], y)
    syllables = 0.5 * (1 + np.sign(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6))))
    y = y / (np.abs(y).max() + 1e-12) * syllables + 0.003 * rng.standard_normal(n)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def write_media(
    path: str | os.PathLike[str],
    seconds: float = 1.0,
    *,
    fps: int = 10,
    size: int = 128,
    face: bool = True,
    audio: bool = True,
    video: bool = True,
    sample_rate: int = 16000,
    f0: float = 140.0,
    seed: int = 0,
) -> Path:
    """Write a clip: ``.mp4``/``.mkv``/``.avi`` (MPEG-4 video, AAC/MP3 audio) or ``.wav``/``.flac``
    (audio only). With ``face`` Grace Hopper's face moves across the frames; without, the frames
    hold moving grey shapes and no face."""
    import av

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    audio_only = out.suffix.lower() in (".wav", ".flac", ".mp3")
    container = av.open(str(out), "w")
    v_stream = a_stream = None
    if video and not audio_only:
        v_stream = container.add_stream("mpeg4", rate=fps)
        v_stream.width = v_stream.height = size
        v_stream.pix_fmt = "yuv420p"
    if audio or audio_only:
        codec = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "mp3", ".avi": "mp3"}.get(out.suffix.lower(), "aac")
        a_stream = container.add_stream(codec, rate=sample_rate)
        a_stream.layout = "mono"
    if v_stream is not None:
        rng = np.random.default_rng(seed)
        img = face_image(size // 2) if face else None
        n_frames = round(seconds * fps)
        for i in range(n_frames):
            frame = np.full((size, size, 3), 110, np.uint8)
            s = size // 2
            x = int((size - s) * (0.5 + 0.4 * np.sin(2 * np.pi * i / max(n_frames, 1))))
            y = int((size - s) * (0.5 + 0.2 * np.cos(2 * np.pi * i / max(n_frames, 1))))
            if img is not None:
                frame[y:y + s, x:x + s] = img
            else:
                frame[y:y + s // 2, x:x + s] = rng.integers(60, 200)
            for packet in v_stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in v_stream.encode():
            container.mux(packet)
    if a_stream is not None:
        signal = speech_like(seconds, sample_rate, f0, seed)
        fmt = "s16" if a_stream.codec_context.name.startswith("pcm") else a_stream.codec_context.format.name
        chunk = a_stream.codec_context.frame_size or 1024
        for start in range(0, len(signal), chunk):
            part = signal[start:start + chunk]
            if fmt.startswith("s16"):
                data = (np.clip(part, -1, 1) * 32767).astype(np.int16)[None]
                frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
            else:
                frame = av.AudioFrame.from_ndarray(part[None], format="flt", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in a_stream.encode(frame):
                container.mux(packet)
        for packet in a_stream.encode():
            container.mux(packet)
    container.close()
    return out


def write_blank_video(
    path: str | os.PathLike[str], seconds: float, *, size: int = 640, fps: int = 25, codec: str = "libx264",
) -> Path:
    """A black ``size`` x ``size`` H.264 clip of ``seconds`` (no audio): the smallest file that
    decodes to the most pixels (120 s at 640x640 is about 41 KB), to measure what decoding costs.

    Every frame is the same black frame, so encoding is fast even for an hour (x264 ``ultrafast``,
    long GOPs); only the decoder has to produce each frame again.
    """
    import av

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    black = None
    with av.open(str(out), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "51", "g": str(fps * 60)}
        for i in range(round(seconds * fps)):
            if black is None:
                black = av.VideoFrame.from_ndarray(np.zeros((size, size, 3), np.uint8), format="rgb24")
            black.pts = i
            for packet in stream.encode(black):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


_POSITIVE = ("i loved it", "a wonderful film", "really great acting", "what a delight", "so much fun")
_NEGATIVE = ("i hated it", "a boring mess", "really bad acting", "what a waste", "so dull")


def write_demo_folder(root: str | os.PathLike[str], clips: int = 20, seconds: float = 1.5) -> Path:
    """A folder for ``decalign extract``: ``media/clip_NN.mp4`` and ``transcripts.csv``
    (``clip_id, text, label, mode``). Positive clips have positive words and a higher voice
    (label in (0, 3]); negative ones the opposite. Clip 7 shows no face and clip 13 is a corrupt
    file, so the report has something to report. Returns the transcripts CSV."""
    import csv

    out = Path(root)
    (out / "media").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(clips):
        positive = i % 2 == 0
        words = (_POSITIVE if positive else _NEGATIVE)[i // 2 % 5]
        label = (1.0 + (i % 5) * 0.5) * (1 if positive else -1)
        mode = "train" if i % 5 in (0, 1, 2) else ("valid" if i % 5 == 3 else "test")
        clip = f"clip_{i:02d}"
        path = out / "media" / f"{clip}.mp4"
        if i == 13:
            path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 16)
        else:
            write_media(path, seconds, fps=15, size=160, face=i != 7, f0=170.0 if positive else 110.0, seed=i)
        rows.append({"clip_id": clip, "text": words, "label": label, "mode": mode})
    with open(out / "transcripts.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["clip_id", "text", "label", "mode"])
        writer.writeheader()
        writer.writerows(rows)
    return out / "transcripts.csv"


if __name__ == "__main__":  # pragma: no cover - a walk-through helper
    import sys

    # `python -m decalign.testing.media DIR`: the folder of docs/extract.md's walk-through (other
    # sizes: call write_demo_folder). No argparse here: the command line lives in decalign/cli/.
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python -m decalign.testing.media DIR  (writes DIR/media/ and DIR/transcripts.csv)")
    print(write_demo_folder(sys.argv[1]))
