"""A tiny pickle assembler for tests: write the opcode streams a hostile file would contain.

``pickle.dumps`` only writes what real objects reduce to; the attacks of issue 11 (a dtype whose
state is forged, a 100 GiB bytes frame, ten million references to one list) need opcodes in an
order no pickler emits, so tests spell them out with these helpers.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

PROTO4 = pickle.PROTO + bytes([4])


def glob(module: str, name: str) -> bytes:
    """``GLOBAL module name``."""
    return pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n"


def text(s: str) -> bytes:
    data = s.encode("utf-8")
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def raw(b: bytes) -> bytes:
    return pickle.BINBYTES + struct.pack("<I", len(b)) + b


def integer(i: int) -> bytes:
    if 0 <= i < 256:
        return pickle.BININT1 + bytes([i])
    if -(2**31) <= i < 2**31:
        return pickle.BININT + struct.pack("<i", i)
    data = pickle.encode_long(i)
    return pickle.LONG1 + bytes([len(data)]) + data


def const(value: Any) -> bytes:
    """A literal: None, bool, int, float, str or bytes, or a tuple or dict of them."""
    if value is None:
        return pickle.NONE
    if value is True:
        return pickle.NEWTRUE
    if value is False:
        return pickle.NEWFALSE
    if isinstance(value, int):
        return integer(value)
    if isinstance(value, float):
        return pickle.BINFLOAT + struct.pack(">d", value)
    if isinstance(value, str):
        return text(value)
    if isinstance(value, bytes):
        return raw(value)
    if isinstance(value, tuple):
        return pickle.MARK + b"".join(const(v) for v in value) + pickle.TUPLE
    if isinstance(value, dict):
        pairs = b"".join(const(k) + const(v) for k, v in value.items())
        return pickle.EMPTY_DICT + pickle.MARK + pairs + pickle.SETITEMS
    raise TypeError(value)


def call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)`` where each piece is already assembled."""
    return func + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def build(state: bytes) -> bytes:
    return state + pickle.BUILD


def put(i: int) -> bytes:
    return pickle.BINPUT + bytes([i])


def get(i: int) -> bytes:
    return pickle.BINGET + bytes([i])


def finish(body: bytes) -> bytes:
    return PROTO4 + body + pickle.STOP


def dtype(spec: str, state: tuple[Any, ...]) -> bytes:
    """``numpy.dtype(spec, False, True)`` followed by ``BUILD state`` (the dtype's __setstate__)."""
    return call(glob("numpy", "dtype"), text(spec), pickle.NEWFALSE, pickle.NEWTRUE) + build(const(state))


def array(dtype_code: bytes, shape: tuple[int, ...], data: bytes, version: int = 1) -> bytes:
    """``_reconstruct(ndarray, (0,), b'b')`` then ``BUILD (version, shape, dtype, False, data)``."""
    head = call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), const((0,)), raw(b"b"))
    state = pickle.MARK + integer(version) + const(shape) + dtype_code + pickle.NEWFALSE + data + pickle.TUPLE
    return head + build(state)


def forged_object_array(pointer: int = 0x4141414141414141, count: int = 1) -> bytes:
    """An object array whose element pointers are bytes from the file (the issue's segfault):
    an object dtype rebuilt with its flags cleared, so numpy takes raw bytes as its buffer."""
    obj_dtype = dtype("O8", (3, "|", None, None, None, -1, -1, 0))
    return finish(array(obj_dtype, (count,), raw(struct.pack("<Q", pointer) * count)))
