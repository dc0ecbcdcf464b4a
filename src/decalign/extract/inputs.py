"""Which clips to extract: media files joined with transcripts and labels.

Accepted layouts (the CSV columns are matched case-insensitively):

* **MMSA raw data**: ``DIR/<video_id>/<clip_id>.mp4`` and a ``label.csv`` (in ``DIR``, or given
  with ``--transcripts``/``--labels``) with ``video_id, clip_id, text, label, annotation, mode``;
  it serves as both transcripts and labels.
* **one file per clip**: ``DIR/<clip_id>.<ext>``, transcripts CSV with ``clip_id, text``;
* **one file per video**: ``DIR/<video_id>.<ext>`` with ``video_id, clip_id, start, end`` (seconds)
  in the CSV;
* ``--media`` may itself be a CSV with ``clip_id`` (and/or ``video_id``), ``path`` and optional
  ``start``/``end``, joined with the transcripts on the clip. Its paths are relative to its own
  folder and stay inside it.

Containment: only ``--media`` names media. Clip and video ids are plain names (never ``..`` or a
path), a transcripts or labels CSV with a ``path`` column is refused, and every file found is
resolved under its root by :mod:`decalign.safety.paths` (a symbolic link leading out is refused).
Reading is bounded by :class:`CsvLimits`; labels and start/end times are checked for range here,
with the file and line, not later.

Labels (``label``) and splits (``mode``: train/valid/test) come from the transcripts CSV or a
separate labels CSV joined on the same ids. Sample ids are ``<video_id>$_$<clip_id>`` as in MMSA
files (just ``clip_id`` without a video id).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decalign.data.types import sample_id
from decalign.extract.errors import ExtractError
from decalign.extract.media import MEDIA_SUFFIXES

__all__ = ["CSV_LIMITS", "Clip", "CsvLimits", "assign_splits", "check_label", "check_times", "discover_clips",
           "read_table"]

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


@dataclass(frozen=True)
class CsvLimits:
    """Bounds of the transcripts, labels and media-list CSV reader, checked before the rows are
    held: a CSV is read whole (to name the line of a decoding error), so its size bounds memory.

    Attributes:
        max_bytes: largest file (64 MiB: a million short transcripts).
        max_rows: most data rows.
        max_columns: most columns in a row.
        max_field_chars: longest cell (a transcript of a long monologue is a few thousand).
    """

    max_bytes: int = 64 * 1024 * 1024
    max_rows: int = 1_000_000
    max_columns: int = 1000
    max_field_chars: int = 100_000


CSV_LIMITS = CsvLimits()

MAX_SECONDS = 1e6
"""Largest start/end time accepted (seconds; 11.6 days)."""

MAX_ABS_LABEL = 1e6
"""Largest label magnitude accepted: sentiment scores are in [-3, 3], class ids small; beyond
this a float32 label loses its meaning (1e300 becomes inf)."""

LINE = "_line"
"""Key under which :func:`read_table` keeps each row's line number in the file (for messages)."""


def read_table(path: str | os.PathLike[str], limits: CsvLimits = CSV_LIMITS) -> list[dict[str, str]]:
    """Rows of a CSV with column names normalised to the canonical ones above, each with its
    line number under :data:`LINE`. Bounded by ``limits``; a file that is too large, not UTF-8,
    or not CSV is an :class:`ExtractError` naming the file and the line."""
    file = Path(path)
    if not file.is_file():
        raise ExtractError(f"{os.fspath(path)}: CSV file does not exist")
    try:
        size = file.stat().st_size
        if size > limits.max_bytes:
            raise ExtractError(f"{file}: CSV file of {size} bytes is larger than the limit of {limits.max_bytes}")
        with open(file, "rb") as fh:
            raw = fh.read(limits.max_bytes + 1)
    except OSError as err:
        raise ExtractError(f"{file}: cannot read ({err.strerror or err})") from None
    if len(raw) > limits.max_bytes:
        raise ExtractError(f"{file}: CSV file is larger than the limit of {limits.max_bytes} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ExtractError(
            f"{file}, line {line}: not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start}); "
            "save the CSV as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[dict[str, str]] = []
    lower: dict[str, int] = {}
    mapping: dict[str, int] = {}
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ExtractError(f"{file}: empty CSV (no header row)")
        _check_row(header, file, 1, limits)
        lower = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}
        for canon, names in _ALIASES.items():
            for n in names:
                if n in lower:
                    mapping[canon] = lower[n]
                    break
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            _check_row(row, file, line, limits)
            if len(rows) >= limits.max_rows:
                raise ExtractError(f"{file}: more than {limits.max_rows} rows (the limit)")
            rec = {canon: (row[i] if i < len(row) else "").strip() for canon, i in mapping.items()}
            rec[LINE] = str(line)
            rows.append(rec)
    except csv.Error as err:
        line = max(reader.line_num, 1)
        if "field larger than field limit" in str(err):  # the csv module's own bound (131072), beyond ours
            raise ExtractError(f"{file}, line {line}: a field longer than the limit of {limits.max_field_chars} "
                               "characters (a very long cell, or an unclosed quote)") from None
        raise ExtractError(f"{file}, line {line}: not a readable CSV ({err})") from None
    if not rows:
        raise ExtractError(f"{file}: the CSV has a header but no rows")
    if "clip_id" not in mapping:
        raise ExtractError(f"{file}: needs a 'clip_id' column (found {list(lower)[:20]})")
    return rows


def _check_row(row: list[str], file: Path, line: int, limits: CsvLimits) -> None:
    if len(row) > limits.max_columns:
        raise ExtractError(f"{file}, line {line}: {len(row)} columns, more than the limit of {limits.max_columns}")
    for cell in row:
        if len(cell) > limits.max_field_chars:
            raise ExtractError(
                f"{file}, line {line}: a field of {len(cell)} characters, longer than the limit of "
                f"{limits.max_field_chars}"
            )
        if "\0" in cell:
            raise ExtractError(f"{file}, line {line}: a field contains a NUL byte (not a text CSV?)")


def _where(file: str, row: Mapping[str, str]) -> str:
    return f"{file}, line {row[LINE]}" if row.get(LINE) else file


def _key(row: Mapping[str, str]) -> tuple[str, str]:
    return row.get("video_id", ""), row["clip_id"]


def _index(rows: list[dict[str, str]], file: str) -> dict[tuple[str, str], dict[str, str]]:
    out: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        key = _key(row)
        if key in out:
            raise ExtractError(f"{_where(file, row)}: clip {'/'.join(k for k in key if k)!r} appears twice")
        out[key] = row
    return out


def _float(value: str, where: str, column: str, clip: str) -> float | None:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ExtractError(f"{where}, clip {clip!r}: column {column!r} must be a number, found {shown!r}") from None


def check_times(start: float | None, end: float | None, where: str) -> None:
    """``start``/``end`` (seconds) finite, in ``[0, MAX_SECONDS]``, ``end`` after ``start``;
    else an :class:`ExtractError` beginning with ``where`` (a CSV row, or the flags)."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
            raise ExtractError(f"{where}: {name} must be a finite number of seconds in [0, {MAX_SECONDS:g}], "
                               f"found {value}")
    if start is not None and end is not None and end <= start:
        raise ExtractError(f"{where}: end {end} is not after start {start}")


def check_label(label: float | None, where: str) -> None:
    """A label is finite and at most :data:`MAX_ABS_LABEL` in magnitude (refused at extraction,
    with its row, not later by ``info`` or ``train``)."""
    if label is not None and not (math.isfinite(label) and abs(label) <= MAX_ABS_LABEL):
        raise ExtractError(f"{where}: label must be a finite number in [-{MAX_ABS_LABEL:g}, {MAX_ABS_LABEL:g}], "
                           f"found {label}")


def _find_media(root: Path, row: Mapping[str, str], per_video: bool, where: str) -> Path | None:
    """The media file of ``row`` inside ``root``: the media list's ``path`` (contained in the
    list's folder), else ``<video_id>/<clip_id>.<ext>``, ``<video_id>.<ext>`` or
    ``<clip_id>.<ext>`` in the media folder. Ids are names, never paths."""
    from decalign.safety.paths import resolve_under

    if row.get("path"):
        return resolve_under(root, row["path"], where, "media path")
    video, clip = row.get("video_id", ""), row["clip_id"]
    names = []
    if video and not per_video:
        names.append(f"{video}/{clip}")
    if video and per_video:
        names.append(video)
    names.append(clip)
    for name in names:
        for suffix in MEDIA_SUFFIXES:
            candidate = root / (name + suffix)
            if candidate.is_file() or candidate.is_symlink():
                resolved = resolve_under(root, name + suffix, where, "media file")
                if resolved.is_file():
                    return resolved
    return None


def _refuse_paths(rows: list[dict[str, str]], file: str, role: str) -> None:
    """Transcripts and labels CSVs may not name media files: only ``--media`` (a folder or a
    media list CSV the user passes) does."""
    for row in rows:
        if row.get("path"):
            raise ExtractError(
                f"{_where(file, row)}: the {role} CSV names a media file in its path/media/file column "
                f"({row['path'][:80]!r}); only --media (a folder, or a media list CSV with clip_id, path) may "
                "name media: remove that column, or pass this file as --media"
            )


def discover_clips(
    media: str | os.PathLike[str] | None,
    transcripts: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
) -> list[Clip]:
    """The clips described by ``media`` (a directory or a CSV of paths), ``transcripts`` (CSV with
    ``text``; default ``<media>/label.csv``) and ``labels`` (CSV with ``label``/``mode``, joined
    on ``video_id``/``clip_id``; default: the transcripts' own columns).

    Every media file is inside the media folder (or the media list's folder): ids are names, and
    paths are resolved by :func:`decalign.safety.paths.resolve_under`. A clip whose media file is
    not found is kept with ``media=None`` (reported, not dropped).
    """
    from decalign.safety.paths import safe_name

    root = Path(media) if media is not None else None
    if transcripts is None:
        if root is not None and root.is_dir() and (root / "label.csv").is_file():
            transcripts = root / "label.csv"
        elif labels is not None:
            transcripts = labels
        else:
            into = repr(os.fspath(media)) if media is not None else "the --media folder"
            raise ExtractError(
                f"no transcripts: pass --transcripts CSV (columns clip_id, text), or put an MMSA label.csv into {into}"
            )
    t_file = os.fspath(transcripts)
    rows = read_table(transcripts)
    if "text" not in rows[0]:
        raise ExtractError(f"{t_file}: needs a 'text' column with the transcripts (found {sorted(rows[0])})")
    _refuse_paths(rows, t_file, "transcripts")
    _index(rows, t_file)
    if labels is not None and os.fspath(labels) != t_file:
        l_file = os.fspath(labels)
        label_table = read_table(labels)
        _refuse_paths(label_table, l_file, "labels")
        label_rows = _index(label_table, l_file)
        merged = []
        for row in rows:
            extra = label_rows.get(_key(row)) or label_rows.get(("", row["clip_id"]))
            if extra is None:
                raise ExtractError(f"{l_file}: no row for clip {'/'.join(k for k in _key(row) if k)!r} of "
                                   f"{_where(t_file, row)}")
            merged.append({**{k: v for k, v in extra.items() if v != ""}, **{k: v for k, v in row.items() if v != ""}})
        rows = merged
    media_rows: dict[tuple[str, str], dict[str, str]] = {}
    media_list = ""  # the media list CSV that ``media_rows`` come from
    base = root
    if root is not None and root.is_file() and root.suffix.lower() == ".csv":
        media_list = os.fspath(root)
        media_rows = _index(read_table(root), media_list)
        base = root.parent
    elif root is not None and not root.is_dir():
        raise ExtractError(f"--media {os.fspath(root)!r} is neither a directory nor a CSV of media paths")
    clips = []
    for row in rows:
        where = _where(t_file, row)
        if media_rows:
            extra = media_rows.get(_key(row)) or media_rows.get(("", row["clip_id"]))
            if extra is not None:
                where = _where(media_list, extra)
                row = {**row, **{k: v for k, v in extra.items() if v != "" and k != LINE}}
        safe_name(row["clip_id"], where, "clip id")
        if row.get("video_id"):
            safe_name(row["video_id"], where, "video id")
        name = "/".join(k for k in _key(row) if k)[:80]
        start = _float(row.get("start", ""), where, "start", name)
        end = _float(row.get("end", ""), where, "end", name)
        check_times(start, end, f"{where}, clip {name!r}")
        path = _find_media(base, row, start is not None or end is not None, where) if base is not None else None
        label = _float(row.get("label", ""), _where(t_file, row), "label", name)
        check_label(label, f"{_where(t_file, row)}, clip {name!r}")
        mode = row.get("mode", "").lower() or None
        if mode is not None and mode not in ("train", "valid", "test"):
            raise ExtractError(f"{_where(t_file, row)}, clip {name!r}: mode must be train, valid or test, "
                               f"found {mode[:20]!r}")
        video = row.get("video_id") or None
        clip_id = sample_id(video, row["clip_id"]) if video else row["clip_id"]
        clips.append(Clip(clip_id, row["clip_id"], video, path, start, end, row.get("text", ""), label, mode))
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
