"""Per-clip outcome and ``extract_report.csv``: every clip accounted for, one row each."""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from decalign.safety.cells import csv_writer

__all__ = ["FAILING", "REPORT_COLUMNS", "TOO_LONG", "VISION_MISSING", "ClipOutcome", "write_report"]

TOO_LONG = "too long"
"""Status of a clip beyond the decoding limits (:class:`~decalign.extract.media.MediaLimits`)."""

VISION_MISSING = "ok, vision missing"
"""Status of a clip in which no face was found: kept with its text and audio, vision length 0."""

FAILING: tuple[str, ...] = ("media not found", "decode error", "no audio", "no video", "empty transcript",
                            TOO_LONG, "no OpenFace CSV")
"""Statuses that leave a clip without one of its modalities: the run stops on them unless
``--skip-failed`` drops those clips. ``no face in N% of frames`` is reported but the clip is kept
(its vision sequence has the frames with a face); with no face at all the clip is kept too, its
vision marked missing (:data:`VISION_MISSING`), as DecAlign handles a missing modality."""

REPORT_COLUMNS: tuple[str, ...] = (
    "sample_id", "mode", "status", "included", "text_tokens", "audio_frames", "vision_frames",
    "sampled_frames", "face_frames", "seconds", "cached", "media", "detail",
)


@dataclass
class ClipOutcome:
    """What happened to one clip. ``statuses`` empty means ``ok``."""

    sample_id: str
    media: str
    mode: str | None
    statuses: list[str] = field(default_factory=list)
    lengths: dict[str, int] = field(default_factory=dict)
    sampled_frames: int | None = None
    face_frames: int | None = None
    seconds: float = 0.0
    detail: str = ""
    cached: bool = False

    @property
    def status(self) -> str:
        return "; ".join(self.statuses) if self.statuses else "ok"

    @property
    def failed(self) -> bool:
        return any(s.startswith(FAILING) for s in self.statuses)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClipOutcome:
        """The outcome saved by :meth:`to_json`; ``TypeError`` for anything else (a cache entry
        that is not ours)."""
        if not isinstance(data, dict):
            raise TypeError("an outcome is a JSON object")
        out = cls(**data)
        if not (isinstance(out.statuses, list) and all(isinstance(x, str) for x in out.statuses)
                and isinstance(out.lengths, dict)
                and all(isinstance(k, str) and type(v) is int for k, v in out.lengths.items())
                and isinstance(out.sample_id, str) and isinstance(out.detail, str) and isinstance(out.media, str)):
            raise TypeError("an outcome's fields have the wrong types")
        return out


def write_report(path: str | os.PathLike[str], outcomes: list[ClipOutcome], included: set[str]) -> Path:
    """Write ``extract_report.csv`` atomically (one row per clip, in input order)."""
    from decalign.train.atomic import write_text

    buf = io.StringIO()
    writer = csv_writer(buf, lineterminator="\n")  # ids, paths, details come from users' files
    writer.writerow(REPORT_COLUMNS)
    for o in outcomes:
        def n(key: str, o: ClipOutcome = o) -> str:
            return str(o.lengths[key]) if key in o.lengths else ""

        writer.writerow([
            o.sample_id, o.mode or "", o.status, "yes" if o.sample_id in included else "no",
            n("text"), n("audio"), n("vision"),
            "" if o.sampled_frames is None else o.sampled_frames, "" if o.face_frames is None else o.face_frames,
            f"{o.seconds:.3f}", "yes" if o.cached else "no", o.media, o.detail,
        ])
    return write_text(path, buf.getvalue())
