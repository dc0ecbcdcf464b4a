"""Per-clip cache: an interrupted extraction resumes where it stopped.

Each finished clip is one ``<key>.npz`` (its arrays plus its outcome as JSON), written atomically.
The key hashes everything its features depend on: the media file (resolved path, size,
modification time), the clip's start/end, the transcript, and the full extraction record (every
extractor's name, version, settings). Change any of them and the clip is extracted again; nothing
is ever read back that another setting produced, and what is read back is verified first (a
poisoned or torn entry is extracted again, and the report says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from decalign.extract.inputs import Clip
from decalign.extract.report import ClipOutcome

__all__ = ["ClipCache"]

_OUTCOME = "__outcome__"


MAX_ENTRY_BYTES = 1 << 30
"""Largest cache entry read (a clip's features are a few MB; anything larger is not ours)."""


class ClipCache:
    """A directory of per-clip results keyed by :meth:`key`.

    Entries are verified when read (:meth:`verify`): arrays of the modalities of the extraction
    record, with its widths, finite, their lengths those of the outcome. An entry that does not
    fit (torn, foreign, edited) is extracted again, and :attr:`rejected` says why (the report's
    ``detail``), instead of failing every rerun.
    """

    def __init__(self, directory: str | os.PathLike[str], provenance_json: str) -> None:
        from decalign.extract.provenance import Provenance

        self.directory = Path(directory)
        self.provenance_json = provenance_json
        prov = Provenance.from_dict(json.loads(provenance_json))
        self.widths = {m: r.width for m, r in prov.extractors.items()}
        text = prov.extractors.get("text")
        self.text_length = int(text.settings.get("max_length", 0)) if text is not None else 0
        self.rejected: dict[str, str] = {}
        """sample id -> why its cache entry was not used."""

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

    def verify(self, arrays: dict[str, np.ndarray], outcome: ClipOutcome) -> str | None:
        """Why ``arrays``/``outcome`` cannot be this extraction's result for a clip (``None``: they fit)."""
        allowed = set(self.widths) | ({"text_bert"} if "text" in self.widths else set())
        if set(arrays) - allowed:
            return f"unexpected arrays {sorted(set(arrays) - allowed)}"
        for m, width in self.widths.items():
            if m not in arrays:
                if outcome.lengths.get(m, 0) != 0 and not outcome.failed:
                    return f"no {m} array though the outcome has {outcome.lengths[m]} steps"
                continue
            x = arrays[m]
            if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != width or x.shape[0] < 1:
                return f"{m} has shape {x.shape} {x.dtype}, expected [T >= 1, {width}] float32"
            if m == "text" and x.shape[0] > self.text_length:
                return f"text has {x.shape[0]} steps, more than the {self.text_length} tokens"
            if outcome.lengths.get(m) != x.shape[0]:
                return f"{m} has {x.shape[0]} steps, the outcome says {outcome.lengths.get(m)}"
            if not np.isfinite(x).all():
                return f"{m} has non-finite values"
        if "text_bert" in arrays:
            b = arrays["text_bert"]
            if b.dtype != np.int64 or b.shape != (3, self.text_length):
                return f"text_bert has shape {b.shape} {b.dtype}, expected (3, {self.text_length}) int64"
        elif "text" in arrays:
            return "text without text_bert"
        return None

    def load(self, clip: Clip) -> tuple[dict[str, np.ndarray], ClipOutcome] | None:
        """The cached result of ``clip``, or ``None`` (absent, unreadable or not fitting: extracted
        again; :attr:`rejected` says why for an entry that was there)."""
        file = self._file(clip)
        if not file.is_file():
            return None
        try:
            if file.stat().st_size > MAX_ENTRY_BYTES:
                raise ValueError(f"larger than {MAX_ENTRY_BYTES} bytes")
            with np.load(file, allow_pickle=False) as npz:
                if sum(info.file_size for info in npz.zip.infolist()) > MAX_ENTRY_BYTES:
                    raise ValueError(f"holds more than {MAX_ENTRY_BYTES} bytes")
                arrays = {k: npz[k] for k in npz.files if k != _OUTCOME}
                outcome = ClipOutcome.from_json(json.loads(str(npz[_OUTCOME])))
            reason = self.verify(arrays, outcome)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            reason = f"unreadable ({type(err).__name__}: {str(err)[:120]})"
        if reason is not None:
            self.rejected[clip.sample_id] = f"cache entry {file.name} did not fit ({reason}); extracted again"
            return None
        outcome.cached = True
        return arrays, outcome

    def save(self, clip: Clip, arrays: dict[str, np.ndarray], outcome: ClipOutcome) -> None:
        from decalign.train.atomic import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                # ty: NumPy's stub lets an unpacked dict of arrays reach its ``allow_pickle: bool``.
                np.savez(fh, **arrays, **{_OUTCOME: np.array(json.dumps(outcome.to_json()))})  # ty: ignore[invalid-argument-type]

        atomic_write(self._file(clip), write)
