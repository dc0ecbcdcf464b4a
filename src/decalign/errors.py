"""One error type for everything a user can cause.

Every failure that a user can fix (a bad file, a bad setting, a run directory in the way, a full
disk) is raised as a :class:`DecalignError` whose message names the file, split, key, shape or
setting at fault. The command line prints such an error as one line, without a traceback (``-v``
shows it), and exits with :attr:`DecalignError.exit_code`; anything else is our bug and keeps its
traceback.

The subclasses keep the built-in bases older code and tests catch (``DataError`` and
``ConfigError`` are ``ValueError``, ``CheckpointError`` is a ``RuntimeError``), so adopting the
common base changed no ``except`` clause.

This module imports nothing from decalign, so every layer (data, config, train, cli) can raise
from it without an import cycle.
"""

from __future__ import annotations

import errno
import os

__all__ = [
    "CheckpointAccessError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DecalignError",
    "FileAccessError",
    "RunDirError",
    "UsageError",
    "file_error",
]


class DecalignError(Exception):
    """Base of every error a user can cause and fix; the message is for people.

    Attributes:
        exit_code: what ``decalign`` exits with when this error ends a command (2: the input or
            the invocation is at fault, as argparse does for bad flags).
    """

    exit_code: int = 2


class UsageError(DecalignError, ValueError):
    """A command-line flag or combination of flags that cannot be used."""


class ConfigError(DecalignError, ValueError):
    """A configuration value or override that cannot be used; the message names the key."""


class DataError(DecalignError, ValueError):
    """A data file or array that cannot be used; the message names file, split, key and shapes."""


class CheckpointError(DecalignError, RuntimeError):
    """A checkpoint or training-state file that cannot be used; the message names the file."""


class RunDirError(DecalignError, RuntimeError):
    """A run directory that cannot be used as asked: locked by another run, holding another
    run, written for other data, or not writable."""


class FileAccessError(DecalignError, OSError):
    """The operating system refused to read or write a file (permission, missing directory,
    name too long, disk full); the message names the file and the reason.

    Exit code 1: the input may be fine, the machine is in the way.
    """

    exit_code = 1

    def __str__(self) -> str:  # OSError would prefix "[Errno N]" once errno is set
        return str(self.args[0]) if self.args else ""


class CheckpointAccessError(CheckpointError, FileAccessError):
    """A checkpoint the operating system refuses to read (permission denied, an I/O error): a
    :class:`CheckpointError` for code that catches those, and exit code 1 like every refusal by
    the operating system (a corrupt checkpoint is a plain :class:`CheckpointError`, exit code 2)."""

    exit_code = 1


_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a component of the path is a file, not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
}


def file_error(err: OSError, path: str | os.PathLike[str] | None = None, action: str = "write") -> FileAccessError:
    """A :class:`FileAccessError` for an ``OSError``, naming the file and the reason in words.

    Args:
        err: the error the operating system raised.
        path: the file the user named (default: the one in ``err``), so the message names what
            the user can act on rather than a temporary file beside it.
        action: ``"read"``, ``"write"``, ``"create"``...: what was being done.
    """
    where = path if path is not None else (err.filename or "?")
    reason = _REASONS.get(err.errno or -1) or (err.strerror or type(err).__name__).lower()
    out = FileAccessError(f"cannot {action} {str(where)!r}: {reason}")
    out.errno = err.errno
    out.filename = str(where)
    return out
