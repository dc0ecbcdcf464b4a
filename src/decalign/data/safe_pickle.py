"""Loading pickles from users without letting them run code.

The benchmark feature files (MMSA's ``aligned_50.pkl``, ``unaligned_50.pkl``, CH-SIMS, the IEMOCAP
pickles) are pickles, and a pickle is a program: any global it names is imported and may be
called while loading (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...). Those files only
ever contain plain containers, strings, numbers and numpy arrays, so :class:`RestrictedUnpickler`
resolves exactly the globals needed to rebuild those and refuses every other one with an
:class:`UnsafePickleError` that names the file and the refused ``module.name``.

What the allow-list admits, and why each entry cannot execute code:

* ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` (numpy 1.x and
  2.x spellings), ``numpy.ndarray``, ``numpy.dtype``: how arrays pickle with protocols 0-4; they
  allocate an array and fill it from bytes or a list of already-unpickled (hence vetted) objects.
* ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer``: protocol 5 arrays.
* ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar``: numpy scalars
  (``np.float64`` in lists).
* ``_codecs.encode``: how protocol 0-2 pickles written by Python 3 store ``bytes``; we hand out a
  wrapper that only accepts the latin-1 codec those pickles use.
* ``builtins.set``, ``frozenset``, ``bytearray``, ``complex`` and ``collections.OrderedDict``: plain
  containers and numbers (Python 2 pickles name ``__builtin__``; mapped like :mod:`pickle` does).

Nothing in decalign calls bare ``pickle.load`` / ``torch.load`` on a user's file; everything goes
through :func:`load_pickle`.
"""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from decalign.data.types import DataError

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "UnsafePickleError", "load_pickle"]


class UnsafePickleError(DataError):
    """A pickle names a global outside the allow-list (it could execute code when loaded)."""


def _numpy_attr(name: str, modules: tuple[str, ...]) -> Any:
    """``name`` from the first of ``modules`` that imports (numpy 2 moved ``core`` to ``_core``);
    we resolve both spellings to the installed module without touching the deprecated one."""
    import importlib

    for mod in modules:
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy provides none of {[m + '.' + name for m in modules]}")  # pragma: no cover


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``: Python 3 writes ``bytes`` into protocol 0-2 pickles as
    ``_codecs.encode(text, 'latin1')``; no other codec (some are code paths of their own) is
    needed, so no other is accepted."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in {
        "latin1",
        "latin-1",
        "iso-8859-1",
        "iso8859-1",
    }:
        raise pickle.UnpicklingError(
            f"_codecs.encode is only allowed for latin-1 text (found encoding {encoding!r})"
        )
    return obj.encode("latin-1", errors)


def _build_allow_list() -> dict[tuple[str, str], Any]:
    multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    reconstruct = _numpy_attr("_reconstruct", multiarray)
    scalar = _numpy_attr("scalar", multiarray)
    frombuffer = _numpy_attr("_frombuffer", numeric)
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "complex"): complex,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = reconstruct
        allowed[(mod, "scalar")] = scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = frombuffer
    return allowed


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _build_allow_list()
"""``(module, name)`` -> the object it resolves to; everything else is refused."""

# Python 2 module names as they appear in protocol 0-2 pickles written by Python 2.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that only resolves :data:`ALLOWED_GLOBALS`.

    ``source`` is the file name used in error messages.
    """

    def __init__(self, file: Any, *, source: str, encoding: str = "latin1") -> None:
        # latin-1 lets Python 2 pickles (byte strings, numpy's raw array data) load; Python 3
        # pickles never contain the opcodes it applies to, so it is harmless for them.
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        key = (_PY2_MODULES.get(module, module), name)
        try:
            return ALLOWED_GLOBALS[key]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refused to load global '{module}.{name}': a data file may only "
                "contain dicts, lists, strings, numbers and numpy arrays, and this global could "
                "execute code while unpickling. If you trust the file, re-save its arrays with "
                "numpy (see `decalign convert` / the native .npz format)."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{self._source}: refused persistent id {pid!r}: data files do not use persistent ids"
        )


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; every failure is a :class:`DataError`
    naming the file (missing, unreadable, truncated, corrupt, or refused global)."""
    p = Path(path)
    source = str(p)
    try:
        fh = open(p, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise DataError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a directory, expected a pickle file") from None
    except OSError as err:
        raise DataError(f"{source}: cannot open ({err.strerror or err})") from None
    with fh:
        try:
            return RestrictedUnpickler(fh, source=source).load()
        except DataError:
            raise
        except MemoryError:
            raise
        except EOFError:
            raise DataError(
                f"{source}: truncated pickle (the file ended before the data did; "
                "was the download or copy interrupted?)"
            ) from None
        except Exception as err:
            raise DataError(
                f"{source}: corrupt or truncated pickle ({type(err).__name__}: {err})"
            ) from None
