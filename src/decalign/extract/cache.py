"""Per-clip cache: an interrupted extraction resumes where it stopped.

Each finished clip is one ``<key>.npz`` (its arrays plus its outcome as JSON), written atomically.
The key hashes everything its features depend on: the media file (resolved path, size,
modification time), the clip's start/end, the transcript, and the full extraction record (every
extractor's name, version, settings). Change any of them and the clip is extracted again; nothing
is ever read back that another setting produced.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from decalign.extract.inputs import Clip
from decalign.extract.report import ClipOutcome

__all__ = ["ClipCache"]

_OUTCOME = "__outcome__"


class ClipCache:
    """A directory of per-clip results keyed by :meth:`key`."""

    def __init__(self, directory: str | os.PathLike[str], provenance_json: str) -> None:
        self.directory = Path(directory)
        self.provenance_json = provenance_json

    def key(self, clip: Clip) -> str:
        media: dict[str, object] = {"path": None}
        if clip.media is not None and clip.media.is_file():
            st = clip.media.stat()
            media = {"path": str(clip.media.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        payload = json.dumps({"media": media, "start": clip.start, "end": clip.end, "text": clip.text,
                              "id": clip.sample_id, "extraction": self.provenance_json}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def _file(self, clip: Clip) -> Path:
        return self.directory / f"{self.key(clip)}.npz"

    def load(self, clip: Clip) -> tuple[dict[str, np.ndarray], ClipOutcome] | None:
        """The cached result of ``clip``, or ``None`` (absent or unreadable: extracted again)."""
        file = self._file(clip)
        if not file.is_file():
            return None
        try:
            with np.load(file, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files if k != _OUTCOME}
                outcome = ClipOutcome.from_json(json.loads(str(npz[_OUTCOME])))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a torn or foreign file: recomputing is always safe
        outcome.cached = True
        return arrays, outcome

    def save(self, clip: Clip, arrays: dict[str, np.ndarray], outcome: ClipOutcome) -> None:
        from decalign.train.atomic import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays, **{_OUTCOME: np.array(json.dumps(outcome.to_json()))})

        atomic_write(self._file(clip), write)
