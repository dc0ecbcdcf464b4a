"""The output guard: what every command that writes a file or a directory goes through.

A command's output must never destroy what the user has. :func:`guarded_output` opens an output
for writing and enforces, in this order:

1. **Never over an input.** The output may not be one of the command's inputs, nor a folder that
   holds one, nor lie inside an input folder (paths are compared resolved, symbolic links
   followed, and with :func:`os.path.samefile` for hard links): ``export --checkpoint C --out C``
   or ``extract --report transcripts.csv`` would otherwise replace the input they read.
2. **One writer at a time.** An OS file lock (``filelock``) on ``.<name>.lock`` beside the output
   is held while the command writes; a second command on the same output is refused at once
   instead of both reporting success with the last writer winning. The OS drops the lock when a
   process dies. The empty lock file stays (deleting it on release would let two processes hold
   "the" lock on two different files; see :mod:`decalign.train.runguard`).
3. **No silent replace.** An existing output is refused unless ``overwrite`` (the command's
   ``--overwrite``); checked after the lock is held, so a writer that just finished is seen.
4. **Atomic, with the umask's modes.** Files are written through
   :func:`decalign.train.atomic.atomic_write` (temporary file + ``os.replace``, mode 0666 minus
   the umask, a full disk is one line and leaves the old file); directories through
   :func:`atomic_directory` (filled under a temporary name, then swapped in).

Run directories of ``train`` keep their own rules (resume, a run's files) in
:func:`decalign.train.runguard.opened_run`, which locks with the same :class:`OutputLock`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

from decalign.errors import FileAccessError, UsageError, file_error
from decalign.train.atomic import atomic_write

__all__ = [
    "OutputLock",
    "atomic_directory",
    "atomic_write",
    "check_not_input",
    "check_replaceable",
    "guarded_output",
    "lock_file_for",
]

PathLike = str | os.PathLike[str]


def lock_file_for(output: Path) -> Path:
    """The lock file of an output file or directory: ``.<name>.lock`` beside it (a name too long
    for that keeps 200 bytes of it and a hash of the whole, so a valid 255-byte name works)."""
    name = output.name
    if len(name.encode("utf-8")) > 200:
        import hashlib

        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        name = name.encode("utf-8")[:200].decode("utf-8", "ignore") + "." + digest
    return output.with_name(f".{name}.lock")


class OutputLock:
    """An exclusive, non-blocking OS lock on ``lock_file`` (created with its folder if needed).

    ``busy`` builds the error raised when another process holds the lock, so each caller says
    what is in use in its own words (a run directory, an output file).
    """

    def __init__(self, lock_file: PathLike, busy: Callable[[Path], Exception]) -> None:
        self.file = Path(lock_file)
        self._busy = busy
        self._lock: Any = None

    def acquire(self) -> OutputLock:
        from filelock import FileLock, Timeout

        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise file_error(err, self.file.parent, "create") from None
        lock = FileLock(str(self.file), is_singleton=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise self._busy(self.file) from None
        except OSError as err:
            raise file_error(err, self.file, "lock") from None
        self._lock = lock
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and parent in child.parents


def check_not_input(output: PathLike, inputs: Mapping[str, PathLike | None], flag: str = "--out") -> None:
    """Refuse an ``output`` that is, holds or lies inside one of ``inputs`` (flag -> path).

    Raises:
        UsageError: naming both flags and paths.
    """
    out = Path(output)
    out_real = Path(os.path.realpath(out))
    for name, given in inputs.items():
        if given is None:
            continue
        src = Path(given)
        src_real = Path(os.path.realpath(src))
        if out_real == src_real or _same_file(out, src):
            why = "is the same file as"
        elif _inside(src_real, out_real):
            why = "holds"
        elif _inside(out_real, src_real) and src_real.is_dir():
            why = "lies inside"
        else:
            continue
        raise UsageError(f"{flag} {os.fspath(out)!r} {why} the input {name} {os.fspath(src)!r}; writing it would "
                         f"destroy the input: choose another {flag}")


def check_replaceable(output: PathLike, overwrite: bool, flag: str = "--out") -> None:
    """Refuse an existing ``output`` (a file, a folder or a dangling link) unless ``overwrite``."""
    if os.path.lexists(output) and not overwrite:
        raise UsageError(f"{flag} {os.fspath(output)!r} already exists; pass --overwrite to replace it")


def _busy(flag: str, output: Path) -> Callable[[Path], Exception]:
    def error(lock: Path) -> Exception:
        return UsageError(f"{flag} {os.fspath(output)!r} is being written by another decalign command (lock "
                          f"{os.fspath(lock)!r} is held); wait for it to finish or choose another {flag}")

    return error


@contextlib.contextmanager
def guarded_output(
    output: PathLike,
    *,
    flag: str = "--out",
    inputs: Mapping[str, PathLike | None] | None = None,
    overwrite: bool = False,
) -> Generator[Path, None, None]:
    """Open ``output`` for writing: refuse it when it is one of ``inputs``, lock it, refuse it
    when it exists unless ``overwrite``. Yields the path; write it with :func:`atomic_write` or
    :func:`atomic_directory` inside the ``with`` block.

    Args:
        output: the file or directory the command writes.
        flag: how the user named it (``--out``, ``--report``, ``OUT``), for messages.
        inputs: the command's inputs, flag -> path (``None`` entries are ignored).
        overwrite: the command's ``--overwrite``.
    """
    out = Path(output)
    check_not_input(out, inputs or {}, flag)
    check_replaceable(out, overwrite, flag)  # before the lock: a refused output leaves no lock file
    with OutputLock(lock_file_for(out), _busy(flag, out)):
        check_replaceable(out, overwrite, flag)  # again: another writer may have finished meanwhile
        yield out


def atomic_directory(output: PathLike, fill: Callable[[Path], Any]) -> Path:
    """Write a directory: ``fill(tmp_dir)`` writes its content into a fresh directory beside
    ``output`` (mode 0777 minus the umask), which then takes ``output``'s place. A failure leaves
    ``output`` as it was and no temporary directory behind. An existing ``output`` is replaced
    (the caller decided that with :func:`guarded_output`)."""
    target = Path(output)
    stem = target.name.encode("utf-8")[:200].decode("utf-8", "ignore")
    tmp = target.with_name(f".{stem}.{secrets.token_hex(6)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(tmp, 0o777)  # the umask applies (tempfile.mkdtemp would give 0700)
    except OSError as err:
        raise file_error(err, target, "write") from None
    old: Path | None = None
    try:
        fill(tmp)
        if os.path.lexists(target):
            old = target.with_name(f".{stem}.{secrets.token_hex(6)}.old")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException as err:
        if old is not None and not os.path.lexists(target):
            os.replace(old, target)  # put the previous version back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and not isinstance(err, FileAccessError):
            raise file_error(err, target, "write") from None
        raise
    finally:
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    return target
