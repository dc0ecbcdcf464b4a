"""Per-frame visual features: face detection on sampled frames, then one of three extractors.

* ``opencv-hog`` (default, nothing to install beyond the extra): OpenCV's Haar cascade
  (``haarcascade_frontalface_default.xml``, shipped inside the ``opencv-python-headless`` 4.x
  wheel) finds the largest face; the crop, scaled to 64x64 grey, gives a HOG descriptor
  (4x4 blocks of 2x2 cells, 9 orientations: 576 values) plus the face box (centre x, y, width,
  height as fractions of the frame): 580 values per frame.
* ``hf-image``: any HuggingFace image model in a local directory (``AutoImageProcessor`` +
  ``AutoModel``) applied to the face crops; its pooled output (or the mean of its last hidden
  states) is the feature.
* ``openface``: the CSV that OpenFace 2.0's ``FeatureExtraction`` wrote for the clip, imported as
  it is: gaze, head pose and action units (intensities and presences) per video frame, the
  columns the benchmarks' vision features are built from.

Frames are consumed one at a time (:func:`decalign.extract.media.iter_frames`), so a clip's
memory does not grow with its duration. Frames without a face are left out of the sequence (as
OpenFace-based benchmark features do), and counted: the clip's status says in what share of frames
no face was found; a clip with no face at all is kept with its vision marked missing (length 0).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decalign.extract.common import directory_fingerprint, load_local_model, package_version
from decalign.extract.errors import ExtractError, require
from decalign.extract.provenance import ExtractorRecord

__all__ = [
    "OPENFACE_COLUMNS",
    "VISION_EXTRACTORS",
    "FaceDetector",
    "HFImageExtractor",
    "HogExtractor",
    "OpenFaceImporter",
    "VisionOutput",
]

VISION_EXTRACTORS: tuple[str, ...] = ("hog", "image-model", "openface")
"""Names accepted by ``--vision`` (plus ``none``)."""


@dataclass
class VisionOutput:
    """A clip's vision features and how many frames were looked at / had a face."""

    features: np.ndarray
    frames: int
    face_frames: int


class FaceDetector:
    """The largest frontal face of a frame, by OpenCV's shipped Haar cascade (offline, CPU)."""

    cascade = "haarcascade_frontalface_default.xml"

    def __init__(self, min_face: float = 0.1) -> None:
        cv2 = require("cv2", "opencv-python-headless")
        self._cv2 = cv2
        data = getattr(cv2, "data", None)
        file = Path(getattr(data, "haarcascades", "")) / self.cascade
        if not file.is_file():
            raise ExtractError(
                f"OpenCV {cv2.__version__} ships no face detector ({file} missing; OpenCV 5 wheels dropped "
                "the Haar cascades): install opencv-python-headless<5 (pip install \"decalign[extract]\")"
            )
        self._classifier = cv2.CascadeClassifier(str(file))
        self.min_face = min_face
        self.version = cv2.__version__

    def settings(self) -> dict[str, object]:
        return {"detector": f"opencv-haar:{self.cascade}", "min_face": self.min_face}

    def __call__(self, rgb: np.ndarray) -> tuple[int, int, int, int] | None:
        """``(x, y, w, h)`` of the largest face, or ``None``."""
        gray = self._cv2.equalizeHist(self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2GRAY))
        side = max(12, int(self.min_face * min(gray.shape)))
        boxes = self._classifier.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        if len(boxes) == 0:
            return None
        x, y, w, h = max((tuple(int(v) for v in b) for b in boxes), key=lambda b: b[2] * b[3])
        return x, y, w, h

    def crop(self, rgb: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
        """The face box grown by 10% on each side (clipped to the frame), resized to ``size``."""
        x, y, w, h = box
        m = int(0.1 * max(w, h))
        x0, y0 = max(0, x - m), max(0, y - m)
        x1, y1 = min(rgb.shape[1], x + w + m), min(rgb.shape[0], y + h + m)
        return self._cv2.resize(rgb[y0:y1, x0:x1], (size, size), interpolation=self._cv2.INTER_AREA)


class _Counted:
    """Frames passed through, counted (the extractors see each frame once and keep none)."""

    def __init__(self, frames: Iterable[np.ndarray]) -> None:
        self.frames = frames
        self.n = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for rgb in self.frames:
            self.n += 1
            yield rgb


def _faces(
    detector: FaceDetector, frames: Iterable[np.ndarray]
) -> Iterator[tuple[np.ndarray, tuple[int, int, int, int]]]:
    for rgb in frames:
        box = detector(rgb)
        if box is not None:
            yield rgb, box


class HogExtractor:
    """HOG of the grey 64x64 face crop plus the face box: 580 values per frame with a face."""

    name = "opencv-hog"
    width = 580

    def __init__(self, fps: float) -> None:
        self.fps = float(fps)
        self.detector = FaceDetector()
        cv2 = self.detector._cv2
        self._cv2 = cv2
        self._hog = cv2.HOGDescriptor((64, 64), (16, 16), (16, 16), (8, 8), 9)

    def record(self) -> ExtractorRecord:
        settings = {**self.detector.settings(), "crop": 64, "hog": "64x64/16/16/8/9", "box": "cx,cy,w,h"}
        return ExtractorRecord(self.name, "opencv-python-headless", self.detector.version, settings, self.width,
                               self.fps)

    def __call__(self, frames: Iterable[np.ndarray]) -> VisionOutput:
        rows = []
        counted = _Counted(frames)
        for rgb, (x, y, w, h) in _faces(self.detector, counted):
            gray = self._cv2.cvtColor(self.detector.crop(rgb, (x, y, w, h), 64), self._cv2.COLOR_RGB2GRAY)
            hog = self._hog.compute(gray).reshape(-1)
            H, W = rgb.shape[:2]
            box = np.array([(x + w / 2) / W, (y + h / 2) / H, w / W, h / H], np.float32)
            rows.append(np.concatenate([hog.astype(np.float32), box]))
        feats = np.stack(rows) if rows else np.zeros((0, self.width), np.float32)
        return VisionOutput(feats, counted.n, len(rows))


class HFImageExtractor:
    """A local HuggingFace image model on face crops: pooled output per frame with a face."""

    name = "hf-image"

    def __init__(self, model_dir: str | os.PathLike[str], fps: float, batch_size: int = 16) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        transformers = require("transformers")
        transformers.utils.logging.disable_progress_bar()
        self._torch = require("torch")
        self.fps = float(fps)
        from decalign.safety.paths import check_safe_weights

        self.model_dir = Path(model_dir)
        self.files = check_safe_weights(model_dir, "image model", ExtractError)
        self.fingerprint = directory_fingerprint(model_dir, "image model")
        self.detector = FaceDetector()
        self.batch_size = batch_size
        self.processor, self.model = load_local_model(transformers.AutoImageProcessor, model_dir, "image model")
        size = getattr(self.processor, "size", None)
        side = None
        for key in ("height", "shortest_edge"):
            side = side or (size.get(key) if isinstance(size, dict) else getattr(size, key, None))
        self.crop_size = int(side or 224)
        probe = self._embed([np.zeros((self.crop_size, self.crop_size, 3), np.uint8)])
        self.width = int(probe.shape[1])

    def record(self) -> ExtractorRecord:
        settings = {**self.detector.settings(), "model_dir": str(self.model_dir), "fingerprint": self.fingerprint,
                    "files": self.files,
                    "model_type": str(self.model.config.model_type), "crop": self.crop_size}
        version = package_version("transformers")
        return ExtractorRecord(self.name, "transformers", version, settings, self.width, self.fps)

    def _embed(self, crops: list[np.ndarray]) -> np.ndarray:
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(crops), self.batch_size):
                inputs = self.processor(images=crops[i:i + self.batch_size], return_tensors="pt")
                result = self.model(**inputs)
                pooled = getattr(result, "pooler_output", None)
                if pooled is None:
                    hidden = result.last_hidden_state
                    pooled = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.flatten(2).mean(dim=2)
                out.append(pooled.reshape(pooled.shape[0], -1).float().numpy())
        return np.concatenate(out).astype(np.float32)

    def __call__(self, frames: Iterable[np.ndarray]) -> VisionOutput:
        counted = _Counted(frames)
        parts: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        n = 0
        for rgb, box in _faces(self.detector, counted):
            batch.append(self.detector.crop(rgb, box, self.crop_size))
            n += 1
            if len(batch) == self.batch_size:  # embedded batch by batch: crops are never all held
                parts.append(self._embed(batch))
                batch = []
        if batch:
            parts.append(self._embed(batch))
        feats = np.concatenate(parts) if parts else np.zeros((0, self.width), np.float32)
        return VisionOutput(feats, counted.n, n)


OPENFACE_COLUMNS: tuple[str, ...] = (
    "gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y",
    "pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz",
    *(f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)),
    *(f"AU{n:02d}_c" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)),
)
"""Gaze (8), head pose (6), action-unit intensities (17) and presences (18): 49 columns, in the
order OpenFace 2.0's FeatureExtraction writes them."""


class OpenFaceImporter:
    """Rows of OpenFace 2.0 FeatureExtraction CSVs (``<dir>/<clip_id>.csv`` or
    ``<dir>/<video_id>/<clip_id>.csv``), the :data:`OPENFACE_COLUMNS`, as they are."""

    name = "openface"
    width = len(OPENFACE_COLUMNS)
    max_bytes = 512 * 1024 * 1024
    """Largest OpenFace CSV read (10 minutes at 30 fps with every column is about 60 MB)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ExtractError(f"--openface-dir {os.fspath(directory)!r} is not a directory of OpenFace CSV files")
        self.rate: float | None = None

    def record(self) -> ExtractorRecord:
        settings = {"openface_dir": str(self.directory), "columns": "gaze,pose,AU_r,AU_c",
                    "tool": "OpenFace 2.0 FeatureExtraction"}
        return ExtractorRecord(self.name, "OpenFace", "2.0", settings, self.width, self.rate)

    def find(self, clip_id: str, video_id: str | None) -> Path | None:
        names = [f"{clip_id}.csv"]
        if video_id:
            names = [f"{video_id}/{clip_id}.csv", f"{video_id}_{clip_id}.csv", *names, f"{video_id}.csv"]
        from decalign.safety.paths import resolve_under

        for name in names:
            if (self.directory / name).is_file():
                return resolve_under(self.directory, name, f"--openface-dir {self.directory}", "OpenFace CSV")
        return None

    def __call__(self, file: Path, start: float | None = None, end: float | None = None) -> VisionOutput:
        size = file.stat().st_size
        if size > self.max_bytes:
            raise ExtractError(f"{file}: OpenFace CSV of {size} bytes is larger than the limit of {self.max_bytes}")
        try:
            return self._read(file, start, end)
        except UnicodeDecodeError as err:
            raise ExtractError(f"{file}: not a UTF-8 OpenFace CSV ({err.reason} at byte {err.start})") from None
        except csv.Error as err:
            raise ExtractError(f"{file}: not a readable OpenFace CSV ({err})") from None

    def _read(self, file: Path, start: float | None, end: float | None) -> VisionOutput:
        with open(file, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise ExtractError(f"{file}: empty OpenFace CSV") from None
            missing = [c for c in OPENFACE_COLUMNS if c not in header]
            if missing:
                raise ExtractError(f"{file}: not an OpenFace 2.0 FeatureExtraction CSV; missing columns {missing[:6]}"
                                   f"{' ...' if len(missing) > 6 else ''}")
            cols = [header.index(c) for c in OPENFACE_COLUMNS]
            t_col = header.index("timestamp") if "timestamp" in header else None
            ok_col = header.index("success") if "success" in header else None
            rows, total = [], 0
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    t = float(row[t_col]) if t_col is not None else None
                    if t is not None and ((start is not None and t < start) or (end is not None and t >= end)):
                        continue
                    total += 1
                    if ok_col is not None and float(row[ok_col]) < 0.5:
                        continue  # OpenFace found no face in this frame (its values are zeros)
                    rows.append([float(row[c]) for c in cols])
                except (ValueError, IndexError) as err:
                    raise ExtractError(f"{file}, line {line_no}: unreadable OpenFace row ({err})") from None
        feats = np.asarray(rows, np.float32).reshape(-1, self.width)
        return VisionOutput(feats, total, len(rows))
