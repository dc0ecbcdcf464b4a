"""Atomic file writes: a file is either its old or its new content, never half written.

Every result, history and checkpoint file is written to a temporary file in the same directory,
flushed and fsynced, then renamed over the target (``os.replace`` is atomic on POSIX and Windows),
so a run killed at any moment leaves readable files behind.

Written by hand because :mod:`tempfile` does not fit: ``mkstemp`` creates files of mode 0600
whatever the umask (co-authors on a shared server could not read results or checkpoints), and its
names are the target's plus 14 characters, so a valid 250-character file name could not be
written. The temporary file here is created with mode 0666 minus the umask, like any ``open`` (and
given that mode again after writing: safetensors replaces it with a 0600 file of its own), and
named from at most 200 characters of the target. A refusal by the operating system (full disk,
permission, name too long) is a one-line :class:`~decalign.errors.FileAccessError` naming the
target; the old file is untouched and no temporary file is left.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from decalign.errors import FileAccessError, file_error

__all__ = ["atomic_write", "temporary_name", "write_json", "write_text"]

_STEM_CHARS = 200  # NAME_MAX is 255 bytes; ".<stem>.<12 hex>.tmp" stays below it


def temporary_name(target: Path) -> Path:
    """A fresh hidden name beside ``target`` (``.<name>.<random>.tmp``, at most 218 characters)."""
    stem = target.name.encode("utf-8")[:_STEM_CHARS].decode("utf-8", "ignore")
    return target.with_name(f".{stem}.{secrets.token_hex(6)}.tmp")


def _create_temporary(target: Path) -> tuple[Path, int]:
    """A new empty file beside ``target`` and the mode the umask gave it (read from the file, so
    the process-wide umask is never changed, not even for a moment)."""
    for _ in range(100):
        tmp = temporary_name(target)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(f"no free temporary name beside {str(target)!r}")  # pragma: no cover


_OS_ERROR_CODE = re.compile(r"\(os error (\d+)\)")


def _is_write_failure(err: BaseException) -> bool:
    """torch.save reports a full disk as ``RuntimeError: ... unexpected pos`` / ``file write failed``."""
    text = str(err)
    return isinstance(err, RuntimeError) and ("unexpected pos" in text or "write failed" in text)


def _rust_os_error(err: BaseException) -> OSError | None:
    """The ``OSError`` inside a ``SafetensorError`` (safetensors, written in Rust, reports a full
    disk as ``Error while serializing: I/O error: No space left on device (os error 28)``)."""
    if type(err).__name__ != "SafetensorError":
        return None
    found = _OS_ERROR_CODE.search(str(err))
    if found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code))


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` to produce the file, then move it to ``path`` atomically."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp, mode = _create_temporary(target)
    except FileAccessError:
        raise
    except OSError as err:
        raise file_error(err, target, "write") from None
    try:
        write(str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
            # safetensors (0.4+) writes a file of its own and renames it over ``tmp``, mode 0600
            # whatever the umask: give the file the mode the umask gave the one created above.
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        os_err = _rust_os_error(err)
        if os_err is not None:
            raise file_error(os_err, target, "write") from None
        if isinstance(err, OSError) and not isinstance(err, FileAccessError):
            raise file_error(err, target, "write") from None
        if _is_write_failure(err):
            raise FileAccessError(
                f"cannot write {str(target)!r}: the write failed part-way (is the disk full?); the previous "
                "version of the file, if any, is untouched"
            ) from None
        raise
    return target


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    def _write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    return atomic_write(path, _write)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n")
