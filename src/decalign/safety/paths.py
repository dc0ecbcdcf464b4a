"""Containment: a name that a data file gives is resolved here, under a root the user passed.

A transcripts CSV, a media list or an extraction record is data, and data must not choose which
files decalign reads: ``../outside/x``, ``/etc/passwd``, ``C:\\x``, a NUL byte or a symbolic link
leading out of the folder would otherwise turn "the clip called X" into "any file on the machine".
Every such name goes through :func:`resolve_under` (a path) or :func:`safe_name` (a single file
or folder name, such as a clip id), which refuse it with a one-line
:class:`~decalign.errors.DataError` naming the file, the row and the value.

The root itself is the user's choice (a flag): it is resolved once, symbolic links included, and
everything a data file names must resolve to a path inside it.

Local model folders get the same care (:func:`model_files`, :func:`check_safe_weights`): a folder
is listed at its top level only and with a bound on its entries, never walked, and its weights are
loaded from ``.safetensors`` files only.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from decalign.errors import DataError

__all__ = [
    "MAX_MODEL_DIR_ENTRIES", "MAX_NAME_CHARS", "check_safe_weights", "is_under", "model_files", "resolve_under",
    "safe_name",
]

MAX_NAME_CHARS = 1024
"""Longest name accepted (file systems stop at 255 bytes per component and 4096 per path)."""


def _refuse(where: str, what: str, value: str, why: str) -> DataError:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return DataError(f"{where}: {what} {shown!r} {why}")


def _check_text(value: str, where: str, what: str) -> None:
    if not value:
        raise _refuse(where, what, value, "is empty")
    if len(value) > MAX_NAME_CHARS:
        raise _refuse(where, what, value, f"is longer than {MAX_NAME_CHARS} characters")
    if "\0" in value or any(ord(c) < 32 for c in value):
        raise _refuse(where, what, value, "contains a NUL or control character")


def safe_name(value: str, where: str, what: str) -> str:
    """``value`` if it is one plain file or folder name (no separator, not ``.``/``..``, no drive,
    no NUL or control character); else a :class:`DataError` ``"<where>: <what> '<value>' ..."``.

    Ids that become parts of a path (``<video_id>/<clip_id>.mp4``) must be names, not paths.
    """
    _check_text(value, where, what)
    if "/" in value or "\\" in value or value in (".", "..") or PureWindowsPath(value).drive:
        raise _refuse(where, what, value, "is not a plain name (no '/', '\\', '..' or drive): a data file "
                      "may only name files inside the folder you passed")
    return value


def is_under(path: Path, root: Path) -> bool:
    """Whether resolved ``path`` is ``root`` or inside it (both already resolved)."""
    return path == root or root in path.parents


def resolve_under(root: str | os.PathLike[str], name: str, where: str, what: str) -> Path:
    """``root / name`` resolved (symbolic links followed), refused unless it stays inside the
    resolved ``root``: absolute names, ``..`` components, drives, NUL bytes and links leading out
    are :class:`DataError` ``"<where>: <what> '<name>' ..."``.

    The result need not exist; when it does, it is inside ``root`` even through links.
    """
    _check_text(name, where, what)
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise _refuse(where, what, name, "is an absolute path: a data file may only name files inside "
                      f"{os.fspath(root)!r}")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise _refuse(where, what, name, f"leads out of {os.fspath(root)!r} ('..')")
    base = Path(root).resolve()
    try:
        target = (base / name).resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop, a name the OS rejects
        raise _refuse(where, what, name, f"cannot be resolved ({err})") from None
    if not is_under(target, base):
        raise _refuse(where, what, name, f"leads out of {os.fspath(root)!r} (through a symbolic link)")
    return target


MAX_MODEL_DIR_ENTRIES = 1000
"""Most entries a local model folder may hold at its top level (a HuggingFace model has about a
dozen; more means the folder named is not a model, e.g. ``/usr``): listing stops there."""

SAFE_WEIGHTS = (".safetensors",)
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack")


def model_files(directory: str | os.PathLike[str], what: str, error: type[DataError] = DataError) -> dict[str, int]:
    """Names and sizes of the regular files at the top level of a local model folder (what
    ``transformers`` reads from it), listed without descending and at most
    :data:`MAX_MODEL_DIR_ENTRIES` entries; a :class:`DataError` naming ``what`` otherwise.
    """
    root = Path(directory)
    if not root.is_dir():
        raise error(f"{what} {os.fspath(directory)!r} is not a directory (a local HuggingFace model folder)")
    files: dict[str, int] = {}
    try:
        with os.scandir(root) as entries:
            for n, entry in enumerate(entries):
                if n >= MAX_MODEL_DIR_ENTRIES:
                    raise error(f"{what} {os.fspath(directory)!r} holds more than {MAX_MODEL_DIR_ENTRIES} "
                                    "entries: not a model folder (config.json and weights)")
                if entry.is_file():
                    files[entry.name] = entry.stat().st_size
    except OSError as err:
        raise error(f"{what} {os.fspath(directory)!r}: cannot list ({err.strerror or err})") from None
    return dict(sorted(files.items()))


def check_safe_weights(
    directory: str | os.PathLike[str], what: str, error: type[DataError] = DataError
) -> dict[str, int]:
    """The :func:`model_files` of a local model folder that has a ``config.json`` and weights in
    safetensors; a folder with only pickle weights (``pytorch_model.bin`` ...) is refused, naming
    the file: loading a pickle can run any code it carries. Load it with ``use_safetensors=True``.
    Errors are ``error`` (a :class:`DataError` subclass the caller names).
    """
    files = model_files(directory, what, error)
    if "config.json" not in files:
        raise error(f"{what} {os.fspath(directory)!r} is not a HuggingFace model folder: no config.json in it")
    if not any(name.endswith(SAFE_WEIGHTS) for name in files):
        pickles = [name for name in files if name.endswith(PICKLE_WEIGHTS)]
        if pickles:
            raise error(
                f"{what} {os.fspath(directory)!r}: refused {pickles[0]!r} (pickle weights can run code when loaded); "
                "decalign loads model weights from .safetensors only: save the model with "
                "save_pretrained(DIR, safe_serialization=True)"
            )
        raise error(f"{what} {os.fspath(directory)!r} has no weights file (model.safetensors)")
    return files
