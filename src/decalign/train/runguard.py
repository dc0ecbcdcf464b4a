"""What must hold for a whole run directory, checked once where a run is opened.

* **One run at a time.** :class:`RunLock` holds an OS file lock (``filelock``) on ``<out>/.lock``
  for as long as a run writes there; a second ``decalign.train()`` on the same directory, from this
  process or another, is refused at once instead of interleaving its files with the first. The
  OS releases the lock when a process dies, so a killed run never leaves it stuck. The empty
  ``.lock`` file itself stays: deleting it on release would let a third process lock a new file
  of the same name while a second still waits on the old one (two "exclusive" holders).
* **The same data on resume.** :func:`data_fingerprint` hashes what identifies a dataset (kind,
  task, per split the sample count, ids, labels, feature shapes and a fixed sample of feature
  values); it is stored in ``dataset.json`` and ``--resume`` on other data is refused before
  anything is written.
* **Nothing left behind by a failed start.** :func:`opened_run` removes what it created when the
  run fails before its first epoch was saved, so the next attempt is not told "already holds a
  run"; ``overwrite`` replaces an existing run explicitly.

Files respect the umask through :mod:`decalign.train.atomic`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from decalign.errors import RunDirError

__all__ = [
    "LOCK_NAME",
    "RUN_JSON_MAX_BYTES",
    "RunLock",
    "check_device",
    "check_fingerprint",
    "check_run_file",
    "data_fingerprint",
    "opened_run",
    "read_json_file",
]

LOCK_NAME = ".lock"
_SAMPLE_ROWS = 16


class RunLock:
    """An exclusive, non-blocking lock on a run directory (created if needed): the output guard's
    :class:`~decalign.safety.outputs.OutputLock` on ``<out>/.lock``.

    Raises :class:`~decalign.errors.RunDirError` when another run holds it.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.file = self.directory / LOCK_NAME
        self._lock: Any = None

    def _busy(self, lock: Path) -> RunDirError:
        return RunDirError(
            f"{str(self.directory)!r} is in use by another run (lock {str(lock)!r} is held); wait for "
            "it to finish or choose another --out"
        )

    def acquire(self) -> RunLock:
        from decalign.safety.outputs import OutputLock

        self._lock = OutputLock(self.file, self._busy).acquire()
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_device(name: str) -> None:
    """Refuse ``train.device`` when this machine lacks it, before a run directory exists."""
    import torch

    from decalign.errors import ConfigError

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but CUDA is not available on this machine (use auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError("train.device=mps but Apple MPS is not available on this machine (use auto or cpu)")


def _update(digest: Any, *parts: Any) -> None:
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            digest.update(f"{arr.dtype.str}{arr.shape}".encode())
            if arr.dtype.kind in "OU":
                digest.update("\0".join(map(str, arr.ravel().tolist())).encode())
            else:
                digest.update(arr.view(np.uint8).reshape(-1) if arr.size else b"")
        else:
            digest.update(repr(part).encode())
        digest.update(b"\x1f")


def data_fingerprint(dataset: Any) -> dict[str, Any]:
    """A fingerprint of ``dataset``: ``{"sha256": ..., "splits": {name: n}}``.

    Hashes kind, task, modalities, and per split the sample count, all ids and labels, every
    feature array's shape and dtype, and the complete rows of :data:`_SAMPLE_ROWS` samples spread
    evenly over the split: other data with the same shapes (another fold, a re-extraction) differs
    in ids, labels or sampled values. Reading a fixed sample keeps it cheap for 10 GB datasets.
    """
    digest = hashlib.sha256()
    _update(digest, dataset.kind, dataset.task, tuple(dataset.modalities))
    sizes: dict[str, int] = {}
    for name in sorted(dataset.splits):
        sp = dataset.splits[name]
        n = len(sp)
        sizes[name] = n
        rows = np.unique(np.linspace(0, n - 1, num=min(n, _SAMPLE_ROWS)).round().astype(np.int64)) if n else []
        _update(digest, name, n, np.asarray(sp.ids), np.asarray(sp.labels))
        for m in sorted(sp.features):
            x = sp.features[m]
            _update(digest, m, x.shape, str(x.dtype), np.asarray(sp.lengths[m]), x[rows] if n else x[:0])
    return {"sha256": digest.hexdigest(), "splits": sizes}


RUN_JSON_MAX_BYTES = 32 * 2**20
"""The largest JSON file a run directory may hold (``results.json`` of many seeds is ~100 KB)."""


def check_run_file(path: Path, what: str, max_bytes: int, *, shown: str | None = None) -> str:
    """Refuse a run's file ``path`` before reading it: missing, unreadable, not a regular file, or
    over ``max_bytes``; returns how messages name it (``shown``, default its quoted path).

    Raises:
        RunDirError: one line naming the file and ``what``.
    """
    where = repr(str(path)) if shown is None else repr(shown)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RunDirError(f"{where}: the run's {what} is missing") from None
    except OSError as err:
        raise RunDirError(f"{where}: cannot read the run's {what}: {err.strerror or err}") from None
    if not path.is_file():
        raise RunDirError(f"{where}: the run's {what} is not a regular file")
    if size > max_bytes:
        raise RunDirError(f"{where}: the run's {what} has {size} bytes, over the limit of {max_bytes}")
    return where


TRAINING_HINT = "restore it or start a new run (--overwrite)"
"""What training adds when a run it resumes holds a broken file (``report`` and the web app only read)."""


def read_json_file(path: Path, what: str = "file", max_bytes: int = RUN_JSON_MAX_BYTES, *,
                   shown: str | None = None, hint: str | None = None) -> Any:
    """JSON from a run's file ``path``, read only if it is a regular file of at most ``max_bytes``.

    The one reader of a run directory's JSON (training's resume checks, ``decalign report`` and
    the web app's run index all go through it), so each refusal reads the same everywhere.
    ``shown`` is how messages name the file (default: its whole path; the web app passes the
    file's name, since its clients are not told where the server keeps its runs). ``hint``
    ends the message of a file that is not JSON (training: :data:`TRAINING_HINT`).

    Raises:
        RunDirError: one line naming ``path`` and ``what``: missing, unreadable, not a regular
            file, over ``max_bytes``, or not JSON (truncated or edited).
    """
    where = check_run_file(path, what, max_bytes, shown=shown)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise RunDirError(f"{where}: cannot read the run's {what}: permission denied") from None
    except OSError as err:
        raise RunDirError(f"{where}: cannot read the run's {what}: {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise RunDirError(f"{where}: the run's {what} is not valid JSON (truncated or edited? {err})"
                          + (f"; {hint}" if hint else "")) from None


def check_fingerprint(dataset_file: Path, fingerprint: Mapping[str, Any]) -> None:
    """Refuse to resume on data other than the run's (``dataset.json`` of runs from before
    fingerprints existed carries none: accepted)."""
    saved = read_json_file(dataset_file, "dataset description", hint=TRAINING_HINT)
    old = saved.get("fingerprint") if isinstance(saved, dict) else None
    if not isinstance(old, dict) or "sha256" not in old:
        return
    if old["sha256"] != fingerprint["sha256"]:
        sizes = "" if old.get("splits") == fingerprint["splits"] else (
            f" (split sizes {old.get('splits')} then, {fingerprint['splits']} now)")
        raise RunDirError(
            f"--resume: the data differs from the data the run in {str(dataset_file.parent)!r} was trained on"
            f"{sizes}; pass the same --data, or start a new run (another --out, or --overwrite)"
        )


def _has_progress(out: Path) -> bool:
    """Whether a seed of the run saved anything worth keeping (an epoch's state or a result)."""
    return any(out.glob("seed_*/state.pt")) or any(out.glob("seed_*/result.json")) or (out / "results.json").exists()


@contextlib.contextmanager
def opened_run(out: str | Path, *, resume: bool, overwrite: bool = False, lock: bool = True,
               inputs: Mapping[str, str | os.PathLike[str] | None] | None = None) -> Generator[Path, None, None]:
    """Open ``out`` for a run: refuse it when it holds one of ``inputs`` (flag -> path: the data
    file, which ``overwrite`` would delete), lock it, replace an existing run when ``overwrite``,
    and on an error before any epoch was saved remove what this call created.

    Yields the directory (created). The caller checks and writes the run's files inside.
    """
    from decalign.safety.outputs import check_not_input

    out = Path(out)
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite contradict each other: choose one")
    check_not_input(out, inputs or {}, "--out")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {str(out)!r} is a file, not a directory")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        from decalign.errors import file_error

        raise file_error(err, out, "create the run directory") from None
    guard = RunLock(out) if lock else None
    try:
        if guard is not None:
            guard.acquire()
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    before = {p.name for p in out.iterdir()}
    try:
        if overwrite and ((out / "config.json").exists() or (out / "results.json").exists()):
            for child in out.iterdir():
                if child.name == LOCK_NAME:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            before = {LOCK_NAME} & before
        yield out
    except BaseException:
        if not resume and not _has_progress(out):
            _remove_new(out, before, whole=created)
        raise
    finally:
        if guard is not None:
            guard.release()
        if created and all(child.name == LOCK_NAME for child in out.iterdir()):
            (out / LOCK_NAME).unlink(missing_ok=True)  # nothing was written: no trace of the attempt
            with contextlib.suppress(OSError):
                out.rmdir()


def _remove_new(out: Path, before: set[str], whole: bool) -> None:
    """Remove what a failed start created in ``out`` (everything, when it created ``out``)."""
    for child in list(out.iterdir()):
        if child.name == LOCK_NAME or (not whole and child.name in before):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
