"""Loading pickles from users without letting them run code, crash the process or exhaust it.

The benchmark feature files (MMSA's ``aligned_50.pkl``, ``unaligned_50.pkl``, CH-SIMS, the IEMOCAP
pickles) are pickles, and a pickle is a program: every global it names is imported and may be
called, and every object it builds may have its state set (``BUILD``). Those files only ever hold
plain containers, strings, numbers and numpy arrays, so :class:`RestrictedUnpickler` runs the
program on an interpreter of its own, which:

* resolves only the globals needed to rebuild those values (:data:`ALLOWED_GLOBALS`) and never
  hands the file a real callable: each global is a token that only our own, argument-checking
  constructors interpret (``numpy.ndarray`` cannot be called, ``bytearray(10**15)`` is refused);
* builds numpy dtypes itself from a validated spelling (``'f8'``, ``'U7'``, ``'O8'``...) and byte
  order, and never passes the file's dtype state (its flags) to numpy: a forged state with the
  object flags cleared would let raw bytes from the file act as object pointers (a segfault, and
  attacker-chosen addresses: a code-execution risk);
* allows ``BUILD`` (``__setstate__``) only once, on an array or a dtype it has just created and
  nobody holds yet, with a state whose shape, dtype and data length agree (object arrays from a
  list of already vetted items, never from bytes); ``BUILD`` on anything else (a function's
  ``__defaults__``, a used array) is refused;
* checks every size the file claims before allocating: a bytes frame or a ``bytearray`` may not
  claim more bytes than the file holds, an array's elements must be present in its data;
* counts what the data would expand to (each list, tuple, dict and array weighs its elements,
  and a shared reference weighs as much as what it refers to) and the work done, and refuses a
  file whose data exceed a bound proportional to its size (:class:`PickleLimits`): a 15 MB file
  of references to one list standing for 3.8e10 floats is refused in milliseconds rather than
  expanded;
* accepts as dict keys and set members only strings, bytes and numbers whose hashes cannot be
  made to collide in bulk (no tuples), limits nesting depth, and refuses containers modified
  after they were placed inside another one (how cycles and late growth would be built).

Every refusal is an :class:`UnsafePickleError` (a :class:`DataError`) that names the file. Why by
hand: :mod:`pickle` offers only ``find_class`` as a hook, which cannot see ``BUILD`` or sizes, and
no maintained library restricts numpy pickles (``fickling`` and friends analyse, they do not
load); the interpreter here reuses :class:`pickle._Unpickler` and replaces the opcodes that
create, call, mutate or allocate. ``docs/security.md`` lists what is accepted and refused.

Nothing in decalign calls bare ``pickle.load`` / ``torch.load`` on a user's file; everything goes
through :func:`load_pickle`.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from decalign.errors import DataError

__all__ = [
    "ALLOWED_GLOBALS",
    "PickleLimits",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "load_pickle",
]


class UnsafePickleError(DataError):
    """A pickle does something a data file never does (names a global outside the allow-list,
    sets state on an object, claims more than it holds, expands beyond a sane bound)."""


@dataclass(frozen=True)
class PickleLimits:
    """Bounds on what a pickle of ``size`` bytes may build, all checked before allocating.

    A real benchmark file is mostly array bytes, so its expanded size (elements) and the work to
    build it are at most about its size; the factors leave room for lists of small numbers.
    """

    max_depth: int = 100
    """Containers nested deeper than this are refused (real files nest 3-4 deep)."""
    elements_per_byte: int = 4
    elements_floor: int = 2**20
    """A container or array may stand for at most ``elements_per_byte * size + elements_floor``
    elements (strings and bytes count their length), counting shared references in full."""
    work_per_byte: int = 16
    work_floor: int = 2**24
    """Items iterated, copied or hashed over the whole load: at most ``work_per_byte * size +
    work_floor``."""
    containers_per_byte: float = 1 / 32
    containers_floor: int = 2**20
    """Lists, dicts, sets, tuples and marks created: at most this many (each costs ~100 bytes of
    memory for one byte of pickle)."""
    max_ndim: int = 32

    def max_elements(self, size: int) -> int:
        return self.elements_per_byte * size + self.elements_floor

    def max_work(self, size: int) -> int:
        return self.work_per_byte * size + self.work_floor

    def max_containers(self, size: int) -> int:
        return int(self.containers_per_byte * size) + self.containers_floor


class _Global:
    """What a file gets for an allowed global: a name only our interpreter can act on."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<global {self.name}>"


_NDARRAY = _Global("numpy.ndarray")
_DTYPE = _Global("numpy.dtype")
_RECONSTRUCT = _Global("numpy._core.multiarray._reconstruct")
_SCALAR = _Global("numpy._core.multiarray.scalar")
_FROMBUFFER = _Global("numpy._core.numeric._frombuffer")
_ENCODE = _Global("_codecs.encode")
_BYTES = _Global("builtins.bytes")
_SET = _Global("builtins.set")
_FROZENSET = _Global("builtins.frozenset")
_BYTEARRAY = _Global("builtins.bytearray")
_COMPLEX = _Global("builtins.complex")
_ORDERED_DICT = _Global("collections.OrderedDict")

ALLOWED_GLOBALS: dict[tuple[str, str], _Global] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTYPE,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _ENCODE,
    ("builtins", "bytes"): _BYTES,
    ("builtins", "set"): _SET,
    ("builtins", "frozenset"): _FROZENSET,
    ("builtins", "bytearray"): _BYTEARRAY,
    ("builtins", "complex"): _COMPLEX,
    ("collections", "OrderedDict"): _ORDERED_DICT,
}
"""``(module, name)`` a file may name -> the token our interpreter acts on; all else is refused.
numpy 1.x and 2.x spellings both map (numpy 2 moved ``core`` to ``_core``)."""

# Python 2 module names as they appear in protocol 0-2 pickles written by Python 2.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

# dtype spellings numpy writes for plain data (``np.dtype(x).__reduce__()[1][0]``): bool, ints,
# floats, complex, fixed-width strings and objects. No structured, void or datetime dtypes.
_DTYPE_SPELLING = re.compile(r"^(b1|[iu][1248]|f(2|4|8|12|16)|c(8|16|24|32)|[US]\d{1,9}|O[48]?)$")
_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}
_HASH_MODULUS = (1 << 61) - 1  # CPython's integer hash: ints in (-P, P) hash to distinct values
_MUTABLE = (list, dict, set)


def _describe(obj: Any) -> str:
    return obj.name if isinstance(obj, _Global) else type(obj).__name__


class _BoundedFile:
    """A read-only view of the pickle file that refuses reads past its end before allocating.

    :meth:`read` with a claimed length larger than what is left raises instead of asking the OS
    for that many bytes (``FileIO.read(n)`` allocates ``n`` first: a 100 GiB claim is a
    ``MemoryError``).
    """

    def __init__(self, fh: Any, size: int, refuse: Any) -> None:
        self._fh, self._left, self._refuse = fh, size, refuse

    @property
    def left(self) -> int:
        return self._left

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        if n > self._left:
            raise self._refuse(
                f"truncated or forged pickle: a value claims {n} bytes where only {self._left} "
                "remain in the file"
            )
        data = self._fh.read(n)
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._fh.readline(self._left + 1)
        self._left -= len(line)
        return line

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class RestrictedUnpickler(pickle._Unpickler):
    """A pickle interpreter that builds only plain data and numpy arrays, within bounds.

    Args:
        file: a binary file object positioned at the pickle.
        source: the file name used in error messages.
        encoding: how Python 2 byte strings are decoded; latin-1 lets Python 2 pickles (byte
            strings, numpy's raw array data) load, and Python 3 pickles never use it.
        size: bytes the file holds from its position (default: measured from the file).
        limits: the bounds (:class:`PickleLimits`).
    """

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    # The interpreter's state and helpers, which ``pickle._Unpickler.load`` sets or defines (the
    # type stubs describe that private class only as far as its public twin): declared for the
    # type checker, no value at runtime.
    stack: list[Any]
    append: Callable[[Any], None]
    read: Callable[[int], bytes]
    readline: Callable[[], bytes]
    pop_mark: Callable[[], list[Any]]
    _unframer: Any

    def __init__(
        self,
        file: Any,
        *,
        source: str,
        encoding: str = "latin1",
        size: int | None = None,
        limits: PickleLimits | None = None,
    ) -> None:
        if size is None:
            size = _size_left(file)
            if size is None:  # not a real file: hold it in memory, then we know its size
                data = file.read()
                file, size = io.BytesIO(data), len(data)
        self._source = source
        self._size = size
        self._limits = limits or PickleLimits()
        self._max_elements = self._limits.max_elements(size)
        self._max_work = self._limits.max_work(size)
        self._max_containers = self._limits.max_containers(size)
        self._work = 0
        self._containers = 0
        self._weight: dict[int, tuple[int, int]] = {}  # id -> (elements, depth) of what we built
        self._open: set[int] = set()  # ids still allowed to change (not yet placed anywhere)
        self._unbuilt: set[int] = set()  # arrays and dtypes awaiting their one BUILD
        self._keep: list[Any] = []  # keeps every tracked object alive, so ids stay unique
        self._bounded = _BoundedFile(file, size, self._refusal)
        super().__init__(self._bounded, encoding=encoding)

    # -- errors and bookkeeping -----------------------------------------------------------------

    def _refusal(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self._source}: refused: {what}")

    def _spend(self, amount: int) -> None:
        self._work += amount
        if self._work > self._max_work:
            raise self._refusal(
                f"building the data takes more than {self._max_work} steps, more than a file of "
                f"{self._size} bytes can need (repeated references to large objects?)"
            )

    def _count_container(self) -> None:
        self._containers += 1
        if self._containers > self._max_containers:
            raise self._refusal(
                f"more than {self._max_containers} containers for a file of {self._size} bytes"
            )

    def _measure(self, obj: Any) -> tuple[int, int]:
        """(elements, depth) of ``obj``: tracked objects as recorded, leaves by their length."""
        known = self._weight.get(id(obj))
        if known is not None:
            return known
        if isinstance(obj, (str, bytes, bytearray)):
            return 1 + len(obj), 0
        return 1, 0

    def _track(self, obj: Any, elements: int, depth: int, *, open_: bool = False) -> Any:
        if elements > self._max_elements:
            raise self._refusal(
                f"a {_describe(obj)} stands for {elements} elements, more than a file of "
                f"{self._size} bytes can hold (limit {self._max_elements}; repeated references "
                "to one object count each time)"
            )
        if depth > self._limits.max_depth:
            raise self._refusal(f"containers nested more than {self._limits.max_depth} deep")
        self._weight[id(obj)] = (elements, depth)
        self._keep.append(obj)
        if open_:
            self._open.add(id(obj))
        return obj

    def _place(self, items: Any) -> tuple[int, int]:
        """``items`` are being put inside something: seal them; return (elements, depth)."""
        total, depth = 0, 0
        for item in items:
            ident = id(item)
            self._open.discard(ident)
            self._unbuilt.discard(ident)
            w, d = self._measure(item)
            total += w
            depth = max(depth, d)
        self._spend(len(items) if hasattr(items, "__len__") else 1)
        return total, depth

    def _key(self, key: Any) -> Any:
        """Dict keys and set members: only values whose hashes cannot be forged to collide."""
        if isinstance(key, (str, bytes, bool, float, type(None), np.str_, np.bytes_, np.floating, np.bool_)):
            return key
        if isinstance(key, (int, np.integer)) and -_HASH_MODULUS < int(key) < _HASH_MODULUS:
            return key
        raise self._refusal(
            f"a {_describe(key)} used as a dict key or set member (data files key by strings "
            "and numbers)"
        )

    def _mutable_target(self, kinds: tuple[type, ...], opname: str) -> Any:
        target = self.stack[-1]
        if type(target) not in kinds:
            raise self._refusal(f"{opname} on a {_describe(target)}")
        if id(target) not in self._open:
            raise self._refusal(
                f"{opname} changes a {_describe(target)} after it was placed inside another object"
            )
        return target

    def _grow(self, target: Any, items: list[Any], opname: str) -> None:
        if any(item is target for item in items):
            raise self._refusal(f"{opname} puts a {_describe(target)} inside itself")
        w, d = self._place(items)
        before_w, before_d = self._weight[id(target)]
        self._track(target, before_w + w, max(before_d, d + 1), open_=True)

    # -- reading: sizes checked before allocating -------------------------------------------------

    def _unframer_left(self) -> int:
        frame = self._unframer.current_frame
        return len(frame.getbuffer()) - frame.tell() if frame is not None else 0

    def load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self._bounded.left + self._unframer_left():
            raise self._refusal(
                f"truncated or forged pickle: a bytearray claims {n} bytes in a file of {self._size} bytes"
            )
        self.append(self._track(bytearray(self.read(n)), 1 + n, 0))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_frame(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self._bounded.left:
            raise self._refusal(
                f"truncated or forged pickle: a frame claims {n} bytes where only "
                f"{self._bounded.left} remain in the file"
            )
        self._unframer.load_frame(n)

    dispatch[pickle.FRAME[0]] = load_frame

    def load_next_buffer(self) -> None:
        raise self._refusal("out-of-band buffers (data files carry their bytes in the file)")

    dispatch[pickle.NEXT_BUFFER[0]] = load_next_buffer
    dispatch[pickle.READONLY_BUFFER[0]] = load_next_buffer

    def load_ext(self) -> None:
        raise self._refusal("extension-registry codes (EXT1/2/4; data files name no extensions)")

    for _op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = load_ext
    del _op

    def load_mark(self) -> None:
        self._count_container()
        super().load_mark()  # type: ignore  # defined by the pure-Python interpreter, absent from the stubs

    dispatch[pickle.MARK[0]] = load_mark

    # -- containers ---------------------------------------------------------------------------

    def _new(self, obj: Any, open_: bool) -> None:
        self._count_container()
        self.append(self._track(obj, 1, 1, open_=open_))

    def load_empty_list(self) -> None:
        self._new([], True)

    def load_empty_dictionary(self) -> None:
        self._new({}, True)

    def load_empty_set(self) -> None:
        self._new(set(), True)

    def load_list(self) -> None:
        items = self.pop_mark()
        self._count_container()
        w, d = self._place(items)
        self.append(self._track(items, 1 + w, d + 1, open_=True))

    def load_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise self._refusal("DICT with an odd number of items")
        self._count_container()
        w, d = self._place(items)
        out = {self._key(items[i]): items[i + 1] for i in range(0, len(items), 2)}
        self.append(self._track(out, 1 + w, d + 1, open_=True))

    def _tuple(self, items: list[Any]) -> tuple[Any, ...]:
        self._count_container()
        w, d = self._place(items)
        return self._track(tuple(items), 1 + w, d + 1)

    def load_tuple(self) -> None:
        out = self._tuple(self.pop_mark())  # pop first: pop_mark rebinds self.append
        self.append(out)

    def load_empty_tuple(self) -> None:
        self.append(())

    def load_tuple1(self) -> None:
        self.stack[-1:] = [self._tuple(self.stack[-1:])]

    def load_tuple2(self) -> None:
        self.stack[-2:] = [self._tuple(self.stack[-2:])]

    def load_tuple3(self) -> None:
        self.stack[-3:] = [self._tuple(self.stack[-3:])]

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self._count_container()
        w, d = self._place(items)
        self.append(self._track(frozenset(self._key(i) for i in items), 1 + w, d + 1))

    def load_append(self) -> None:
        value = self.stack.pop()
        target = self._mutable_target((list,), "APPEND")
        self._grow(target, [value], "APPEND")
        target.append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        target = self._mutable_target((list,), "APPENDS")
        self._grow(target, items, "APPENDS")
        target.extend(items)

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        target = self._mutable_target((dict, collections.OrderedDict), "SETITEM")
        self._grow(target, [key, value], "SETITEM")
        target[self._key(key)] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise self._refusal("SETITEMS with an odd number of items")
        target = self._mutable_target((dict, collections.OrderedDict), "SETITEMS")
        self._grow(target, items, "SETITEMS")
        for i in range(0, len(items), 2):
            target[self._key(items[i])] = items[i + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self._mutable_target((set,), "ADDITEMS")
        self._grow(target, items, "ADDITEMS")
        target.update(self._key(i) for i in items)

    for _op, _fn in [
        (pickle.EMPTY_LIST, load_empty_list), (pickle.EMPTY_DICT, load_empty_dictionary),
        (pickle.EMPTY_SET, load_empty_set), (pickle.LIST, load_list), (pickle.DICT, load_dict),
        (pickle.TUPLE, load_tuple), (pickle.EMPTY_TUPLE, load_empty_tuple), (pickle.TUPLE1, load_tuple1),
        (pickle.TUPLE2, load_tuple2), (pickle.TUPLE3, load_tuple3), (pickle.FROZENSET, load_frozenset),
        (pickle.APPEND, load_append), (pickle.APPENDS, load_appends), (pickle.SETITEM, load_setitem),
        (pickle.SETITEMS, load_setitems), (pickle.ADDITEMS, load_additems),
    ]:
        dispatch[_op[0]] = _fn
    del _op, _fn

    # -- globals and calls ----------------------------------------------------------------------

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

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self.stack[-1] = self._call(func, args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._call(cls, args))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if kwargs:
            raise self._refusal(f"keyword arguments to {_describe(cls)}")
        self.append(self._call(cls, args))

    def load_inst(self) -> None:
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        klass = self.find_class(module, name)
        out = self._call(klass, tuple(self.pop_mark()))  # pop first: pop_mark rebinds self.append
        self.append(out)

    def load_obj(self) -> None:
        args = self.pop_mark()
        if not args:
            raise self._refusal("OBJ without a class")
        cls = args.pop(0)
        self.append(self._call(cls, tuple(args)))

    for _op, _fn in [
        (pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj), (pickle.NEWOBJ_EX, load_newobj_ex),
        (pickle.INST, load_inst), (pickle.OBJ, load_obj),
    ]:
        dispatch[_op[0]] = _fn
    del _op, _fn

    def _call(self, func: Any, args: Any) -> Any:
        """What ``func(*args)`` means for each allowed global; everything else is refused."""
        if not isinstance(func, _Global):
            raise self._refusal(f"a call of a {_describe(func)} (only allowed globals can be called)")
        if not isinstance(args, tuple):
            raise self._refusal(f"arguments of {func.name} are a {_describe(args)}, not a tuple")
        self._place(args)
        handler = _CALLS.get(func.name)
        if handler is None:
            raise self._refusal(f"{func.name} cannot be called (it may only name a type)")
        try:
            return handler(self, *args)
        except TypeError as err:  # wrong number of arguments
            raise self._refusal(f"{func.name} with arguments {_kinds(args)} ({err})") from None

    # -- numpy: dtypes and arrays built by us ----------------------------------------------------

    def _dtype(self, spelling: Any, align: Any = False, copy: Any = True) -> np.dtype[Any]:
        if not isinstance(spelling, str) or not _DTYPE_SPELLING.match(spelling):
            raise self._refusal(f"numpy dtype {spelling!r} (plain numbers, strings and objects only)")
        if not isinstance(align, bool) or not isinstance(copy, bool):
            raise self._refusal("numpy dtype flags that are not booleans")
        out = np.dtype(spelling, False, True)  # copy=True: a fresh object, never numpy's singleton
        self._unbuilt.add(id(out))
        return self._track(out, 1, 0)

    def _build_dtype(self, inst: np.dtype[Any], state: Any) -> None:
        """Apply only the byte order and string width of a dtype state; never its flags."""
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)):
            raise self._refusal(f"numpy dtype state {_kinds(state)} (expected numpy's 8- or 9-tuple)")
        byteorder, subarray, names, fields, elsize = state[1:6]
        if subarray is not None or names is not None or fields is not None:
            raise self._refusal("structured or sub-array numpy dtypes")
        if len(state) == 9 and state[8] not in (None, {}):
            raise self._refusal("numpy dtype metadata")
        if byteorder not in ("<", ">", "|", "=") or not isinstance(elsize, int):
            raise self._refusal(f"numpy dtype byte order {byteorder!r} / size {elsize!r}")
        kind = inst.kind
        if kind == "O":
            good = np.dtype(object)
        elif kind in "US":
            unit = 4 if kind == "U" else 1
            if elsize < 0 or elsize % unit or elsize > self._size + 4:
                raise self._refusal(f"numpy string dtype of {elsize} bytes")
            good = np.dtype(f"{'<' if kind == 'U' and byteorder == '|' else byteorder}{kind}{elsize // unit}")
        else:
            if elsize not in (-1, inst.itemsize):
                raise self._refusal(f"numpy dtype {inst} with element size {elsize}")
            good = inst.newbyteorder(byteorder) if byteorder in "<>" else inst
        inst.__setstate__(good.__reduce__()[2])  # type: ignore  # numpy's own state for a plain dtype (unstubbed)
        if inst != good or inst.hasobject != (kind == "O"):  # pragma: no cover - numpy changed
            raise self._refusal(f"numpy dtype state for {inst}")

    def _shape(self, shape: Any) -> tuple[int, ...]:
        if not isinstance(shape, tuple) or len(shape) > self._limits.max_ndim:
            raise self._refusal(f"array shape {_kinds(shape)}")
        for n in shape:
            if type(n) is not int or n < 0:
                raise self._refusal(f"array shape {shape!r}")
        return shape

    def _elements(self, shape: tuple[int, ...]) -> int:
        n = math.prod(shape)
        if n > self._max_elements:
            raise self._refusal(
                f"an array of shape {shape} ({n} elements) in a file of {self._size} bytes"
            )
        return n

    def _own_dtype(self, dtype: Any) -> np.dtype[Any]:
        if not isinstance(dtype, np.dtype) or id(dtype) not in self._weight:
            raise self._refusal(f"an array whose dtype is a {_describe(dtype)}")
        return dtype

    def _reconstruct(self, subtype: Any, shape: Any, typecode: Any) -> np.ndarray[Any, Any]:
        if subtype is not _NDARRAY:
            raise self._refusal(f"_reconstruct of a {_describe(subtype)} (only numpy.ndarray)")
        if math.prod(self._shape(shape)) != 0 or not isinstance(typecode, (bytes, str)):
            raise self._refusal("_reconstruct of a non-empty array (numpy writes an empty one, then BUILD)")
        out = np.empty(0, dtype=np.uint8)
        self._unbuilt.add(id(out))
        return self._track(out, 1, 0)

    def _build_array(self, inst: np.ndarray[Any, Any], state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise self._refusal(f"numpy array state {_kinds(state)}")
        version, rest = (state[0], state[1:]) if len(state) == 5 else (0, state)
        shape, dtype, fortran, data = rest
        if version not in (0, 1) or not isinstance(fortran, bool):
            raise self._refusal(f"numpy array state version {version!r} / order {fortran!r}")
        shape, dtype = self._shape(shape), self._own_dtype(dtype)
        n = self._elements(shape)
        if dtype.hasobject:
            if type(data) is not list or len(data) != n:
                raise self._refusal(
                    f"an object array of {n} elements whose data is a {_describe(data)} "
                    f"{'of length ' + str(len(data)) if type(data) is list else ''}(must be a list of values)"
                )
            elements = 1 + self._measure(data)[0]
        else:
            if isinstance(data, str):  # Python 2 pickles: raw bytes decoded as latin-1
                data = data.encode("latin-1")
            if not isinstance(data, (bytes, bytearray)) or len(data) != n * dtype.itemsize:
                got = len(data) if isinstance(data, (bytes, bytearray)) else _describe(data)
                raise self._refusal(
                    f"an array of shape {shape} and dtype {dtype} needs {n * dtype.itemsize} bytes, "
                    f"its data has {got}"
                )
            elements = 1 + n
        self._spend(n)
        checked = (version, shape, dtype, fortran, data) if len(state) == 5 else (shape, dtype, fortran, data)
        inst.__setstate__(checked)  # type: ignore  # the stub wants numpy.bool and a 5-tuple; numpy takes both forms
        self._track(inst, elements, 1 if dtype.hasobject else 0)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray[Any, Any]:
        dtype, shape = self._own_dtype(dtype), self._shape(shape)
        n = self._elements(shape)
        if dtype.hasobject or order not in ("C", "F"):
            raise self._refusal(f"_frombuffer with dtype {dtype} / order {order!r}")
        if not isinstance(buf, (bytes, bytearray)) or len(buf) != n * dtype.itemsize:
            got = len(buf) if isinstance(buf, (bytes, bytearray)) else _describe(buf)
            raise self._refusal(
                f"an array of shape {shape} and dtype {dtype} needs {n * dtype.itemsize} bytes, its buffer has {got}"
            )
        self._spend(n)
        out = np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)
        return self._track(out, 1 + n, 0)

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        dtype = self._own_dtype(dtype)
        if dtype.hasobject:
            return data  # what numpy's scalar(dtype('O'), obj) returns
        if isinstance(data, str):
            data = data.encode("latin-1")
        if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
            raise self._refusal(f"a numpy {dtype} scalar needs {dtype.itemsize} bytes")
        return np.frombuffer(bytes(data), dtype=dtype)[0]

    # -- the builtins --------------------------------------------------------------------------

    def _iterable(self, name: str, items: Any) -> list[Any]:
        if not isinstance(items, (list, tuple, set, frozenset, dict)):
            raise self._refusal(f"{name} of a {_describe(items)}")
        self._spend(len(items))
        return list(items)

    def _set(self, items: Any = ()) -> set[Any]:
        values = self._iterable("set", items)
        w, d = self._place(values)
        self._count_container()
        return self._track({self._key(v) for v in values}, 1 + w, d + 1, open_=True)

    def _frozenset(self, items: Any = ()) -> frozenset[Any]:
        values = self._iterable("frozenset", items)
        w, d = self._place(values)
        self._count_container()
        return self._track(frozenset(self._key(v) for v in values), 1 + w, d + 1)

    def _ordered_dict(self, items: Any = ()) -> collections.OrderedDict[Any, Any]:
        pairs = list(items.items()) if isinstance(items, dict) else self._iterable("OrderedDict", items)
        out: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._count_container()
        self._track(out, 1, 1, open_=True)
        for pair in pairs:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise self._refusal(f"OrderedDict item {_kinds(pair)} (must be key-value pairs)")
            self._grow(out, list(pair), "OrderedDict")
            out[self._key(pair[0])] = pair[1]
        return out

    def _bytearray(self, source: Any = b"", encoding: Any = None) -> bytearray:
        if encoding is None and isinstance(source, (bytes, bytearray)):
            out = bytearray(source)
        elif isinstance(source, str) and isinstance(encoding, str) and encoding.lower() in _LATIN1:
            out = bytearray(source, "latin-1")
        else:
            raise self._refusal(f"bytearray of {_kinds((source, encoding))} (only bytes or latin-1 text)")
        self._spend(len(out))
        return self._track(out, 1 + len(out), 0)

    def _bytes(self, source: Any = b"") -> bytes:
        """``bytes()``: how protocols 0-2 write an empty ``bytes``; only bytes are copied."""
        if not isinstance(source, (bytes, bytearray)):
            raise self._refusal(f"bytes of a {_describe(source)} (only bytes)")
        self._spend(len(source))
        return bytes(source)

    def _complex(self, real: Any = 0, imag: Any = 0) -> complex:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (real, imag)):
            raise self._refusal(f"complex of {_kinds((real, imag))} (only numbers)")
        return complex(real, imag)

    def _encode(self, obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
        """``_codecs.encode``: Python 3 writes ``bytes`` into protocol 0-2 pickles as
        ``_codecs.encode(text, 'latin1')``; no other codec (some are code paths of their own) is
        needed, so no other is accepted."""
        if not isinstance(obj, str) or not isinstance(encoding, str) or errors != "strict" or (
            encoding.lower().replace("_", "-") not in _LATIN1
        ):
            raise self._refusal(
                f"_codecs.encode is only allowed for latin-1 text (found encoding {encoding!r})"
            )
        self._spend(len(obj))
        return obj.encode("latin-1")

    # -- BUILD ---------------------------------------------------------------------------------

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if id(inst) not in self._unbuilt or not isinstance(inst, (np.ndarray, np.dtype)):
            raise self._refusal(
                f"setting the state of a {_describe(inst)} (BUILD / __setstate__); data files set "
                "state only on the numpy arrays and dtypes they have just created"
            )
        self._unbuilt.discard(id(inst))
        self._place((state,))
        if isinstance(inst, np.dtype):
            self._build_dtype(inst, state)
        else:
            self._build_array(inst, state)

    dispatch[pickle.BUILD[0]] = load_build


_CALLS: dict[str, Any] = {
    _DTYPE.name: RestrictedUnpickler._dtype,
    _RECONSTRUCT.name: RestrictedUnpickler._reconstruct,
    _SCALAR.name: RestrictedUnpickler._scalar,
    _FROMBUFFER.name: RestrictedUnpickler._frombuffer,
    _ENCODE.name: RestrictedUnpickler._encode,
    _BYTES.name: RestrictedUnpickler._bytes,
    _SET.name: RestrictedUnpickler._set,
    _FROZENSET.name: RestrictedUnpickler._frozenset,
    _BYTEARRAY.name: RestrictedUnpickler._bytearray,
    _COMPLEX.name: RestrictedUnpickler._complex,
    _ORDERED_DICT.name: RestrictedUnpickler._ordered_dict,
}


def _kinds(value: Any) -> str:
    """A short description of a value for messages, without printing attacker-sized data."""
    if isinstance(value, tuple):
        return "(" + ", ".join(_describe(v) for v in value[:6]) + (", ..." if len(value) > 6 else "") + ")"
    return _describe(value)


def _size_left(fh: Any) -> int | None:
    try:
        return max(0, os.fstat(fh.fileno()).st_size - fh.tell())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def load_pickle(path: str | os.PathLike[str], limits: PickleLimits | None = None) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; every failure is a :class:`DataError`
    naming the file (missing, unreadable, truncated, corrupt, refused, or beyond the bounds)."""
    p = Path(path)
    source = str(p)
    try:
        fh = open(p, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise DataError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a directory, expected a pickle file") from None
    except PermissionError:
        raise DataError(f"{source}: permission denied (cannot read the file)") from None
    except OSError as err:
        raise DataError(f"{source}: cannot open ({err.strerror or err})") from None
    with fh:
        try:
            return RestrictedUnpickler(fh, source=source, limits=limits).load()
        except DataError:
            raise
        except MemoryError:
            raise DataError(f"{source}: ran out of memory while loading the pickle") from None
        except RecursionError:  # pragma: no cover - the depth limit comes first
            raise DataError(f"{source}: data nested too deeply") from None
        except EOFError:
            raise DataError(
                f"{source}: truncated pickle (the file ended before the data did; "
                "was the download or copy interrupted?)"
            ) from None
        except Exception as err:
            raise DataError(
                f"{source}: corrupt or truncated pickle ({type(err).__name__}: {_short(err)})"
            ) from None


def _short(err: Exception, limit: int = 200) -> str:
    text = str(err).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
