"""Which clips to extract: media files joined with transcripts and labels.

Accepted layouts (the CSV columns are matched case-insensitively):

* **MMSA raw data**: ``DIR/<video_id>/<clip_id>.mp4`` and a ``label.csv`` (in ``DIR``, or given
  with ``--transcripts``/``--labels``) with ``video_id, clip_id, text, label, annotation, mode``;
  it serves as both transcripts and labels.
* **one file per clip**: ``DIR/<clip_id>.<ext>`` (or a ``path`` column), transcripts CSV with
  ``clip_id, text``;
* **one file per video**: ``DIR/<video_id>.<ext>`` with ``video_id, clip_id, start, end`` (seconds)
  in the CSV;
* ``--media`` may itself be a CSV with ``clip_id`` (and/or ``video_id``), ``path`` and optional
  ``start``/``end``, joined with the transcripts on the clip.

Labels (``label``) and splits (``mode``: train/valid/test) come from the transcripts CSV or a
separate labels CSV joined on the same ids. Sample ids are ``<video_id>$_$<clip_id>`` as in MMSA
files (just ``clip_id`` without a video id).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decalign.extract.errors import ExtractError
from decalign.extract.media import MEDIA_SUFFIXES

__all__ = ["Clip", "assign_splits", "discover_clips", "read_table"]

_ALIASES = {
    "text": ("text", "transcript", "transcription", "raw_text"),
    "clip_id": ("clip_id", "clip", "id", "segment_id"),
    "video_id": ("video_id", "video"),
    "label": ("label", "score", "sentiment"),
    "mode": ("mode", "split"),
    "path": ("path", "media", "file"),
    "start": ("start", "start_time"),
    "end": ("end", "end_time"),
}


@dataclass(frozen=True)
class Clip:
    """One sample to extract."""

    sample_id: str
    clip_id: str
    video_id: str | None
    media: Path | None
    start: float | None
    end: float | None
    text: str
    label: float | None
    mode: str | None


def read_table(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a CSV with column names normalised to the canonical ones above."""
    file = Path(path)
    if not file.is_file():
        raise ExtractError(f"{os.fspath(path)}: CSV file does not exist")
    with open(file, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise ExtractError(f"{file}: empty CSV (no header row)")
        lower = {name.strip().lower(): name for name in reader.fieldnames}
        mapping: dict[str, str] = {}
        for canon, names in _ALIASES.items():
            for n in names:
                if n in lower:
                    mapping[canon] = lower[n]
                    break
        rows = []
        for row in reader:
            rows.append({canon: (row.get(src) or "").strip() for canon, src in mapping.items()})
    if not rows:
        raise ExtractError(f"{file}: the CSV has a header but no rows")
    if "clip_id" not in rows[0]:
        raise ExtractError(f"{file}: needs a 'clip_id' column (found {list(lower)})")
    return rows


def _key(row: Mapping[str, str]) -> tuple[str, str]:
    return row.get("video_id", ""), row["clip_id"]


def _index(rows: list[dict[str, str]], file: str) -> dict[tuple[str, str], dict[str, str]]:
    out: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        key = _key(row)
        if key in out:
            raise ExtractError(f"{file}: clip {'/'.join(k for k in key if k)!r} appears twice")
        out[key] = row
    return out


def _float(value: str, file: str, column: str, clip: str) -> float | None:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise ExtractError(f"{file}, clip {clip!r}: column {column!r} must be a number, found {value!r}") from None


def _find_media(root: Path, row: Mapping[str, str], per_video: bool) -> Path | None:
    if row.get("path"):
        p = Path(row["path"])
        return p if p.is_absolute() else root / p
    video, clip = row.get("video_id", ""), row["clip_id"]
    stems = []
    if video and not per_video:
        stems.append(root / video / clip)
    if video and per_video:
        stems.append(root / video)
    stems.append(root / clip)
    for stem in stems:
        for suffix in MEDIA_SUFFIXES:
            candidate = stem.parent / (stem.name + suffix)
            if candidate.is_file():
                return candidate
    return None


def discover_clips(
    media: str | os.PathLike[str] | None,
    transcripts: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
) -> list[Clip]:
    """The clips described by ``media`` (a directory or a CSV of paths), ``transcripts`` (CSV with
    ``text``; default ``<media>/label.csv``) and ``labels`` (CSV with ``label``/``mode``, joined
    on ``video_id``/``clip_id``; default: the transcripts' own columns).

    A clip whose media file is not found is kept with ``media=None`` (reported, not dropped).
    """
    root = Path(media) if media is not None else None
    if transcripts is None:
        if root is not None and root.is_dir() and (root / "label.csv").is_file():
            transcripts = root / "label.csv"
        elif labels is not None:
            transcripts = labels
        else:
            raise ExtractError(
                f"no transcripts: pass --transcripts CSV (columns clip_id, text), or put an MMSA "
                f"label.csv into {os.fspath(media)!r}"
            )
    t_file = os.fspath(transcripts)
    rows = read_table(transcripts)
    if "text" not in rows[0]:
        raise ExtractError(f"{t_file}: needs a 'text' column with the transcripts (found {sorted(rows[0])})")
    _index(rows, t_file)
    if labels is not None and os.fspath(labels) != t_file:
        l_file = os.fspath(labels)
        label_rows = _index(read_table(labels), l_file)
        merged = []
        for row in rows:
            extra = label_rows.get(_key(row)) or label_rows.get(("", row["clip_id"]))
            if extra is None:
                raise ExtractError(f"{l_file}: no row for clip {'/'.join(k for k in _key(row) if k)!r} of {t_file}")
            merged.append({**{k: v for k, v in extra.items() if v != ""}, **{k: v for k, v in row.items() if v != ""}})
        rows = merged
    media_rows: dict[tuple[str, str], dict[str, str]] = {}
    base = root
    if root is not None and root.is_file() and root.suffix.lower() == ".csv":
        media_rows = _index(read_table(root), os.fspath(root))
        base = root.parent
    elif root is not None and not root.is_dir():
        raise ExtractError(f"--media {os.fspath(root)!r} is neither a directory nor a CSV of media paths")
    clips = []
    for row in rows:
        if media_rows:
            extra = media_rows.get(_key(row)) or media_rows.get(("", row["clip_id"]))
            if extra is not None:
                row = {**row, **{k: v for k, v in extra.items() if v != ""}}
        name = "/".join(k for k in _key(row) if k)
        start = _float(row.get("start", ""), t_file, "start", name)
        end = _float(row.get("end", ""), t_file, "end", name)
        if start is not None and end is not None and end <= start:
            raise ExtractError(f"{t_file}, clip {name!r}: end {end} is not after start {start}")
        path = _find_media(base, row, per_video=start is not None or end is not None) if base is not None else None
        label = _float(row.get("label", ""), t_file, "label", name)
        mode = row.get("mode", "").lower() or None
        if mode is not None and mode not in ("train", "valid", "test"):
            raise ExtractError(f"{t_file}, clip {name!r}: mode must be train, valid or test, found {mode!r}")
        video = row.get("video_id") or None
        sample_id = f"{video}$_${row['clip_id']}" if video else row["clip_id"]
        clips.append(Clip(sample_id, row["clip_id"], video, path, start, end, row.get("text", ""), label, mode))
    return clips


def assign_splits(
    clips: list[Clip], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0
) -> list[Clip]:
    """Clips without a ``mode`` get one, by video (all clips of a video in one split, so no
    speaker is in two splits), in the proportions ``fractions`` with a fixed shuffle."""
    from dataclasses import replace

    groups = sorted({c.video_id or c.clip_id for c in clips if c.mode is None})
    if not groups:
        return clips
    order = np.random.default_rng(seed).permutation(len(groups))
    n_train = round(fractions[0] * len(groups))
    n_valid = round(fractions[1] * len(groups))
    split = {}
    for rank, i in enumerate(order):
        split[groups[i]] = "train" if rank < n_train else ("valid" if rank < n_train + n_valid else "test")
    return [c if c.mode is not None else replace(c, mode=split[c.video_id or c.clip_id]) for c in clips]
