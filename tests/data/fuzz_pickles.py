"""Pickle fuzzing for ``test_fuzz.py``: random programs of the opcodes the restricted unpickler
accepts (with random arguments) and random mutations of real files.

Run in a subprocess by the tests (``python fuzz_pickles.py N_PROGRAMS N_MUTATIONS``) so that a
crash of the interpreter (the forged-dtype segfault of issue 11) fails the test instead of
killing the test session. Every loaded value is touched (``repr``, array sums, ``tolist``) the way
readers touch it: a forged pointer would crash there.
"""

from __future__ import annotations

import io
import pickle
import resource
import struct
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pickle_forge import const, glob, integer, raw, text

from decalign.data import DataError
from decalign.data.safe_pickle import ALLOWED_GLOBALS, PickleLimits, RestrictedUnpickler

GLOBALS = [*ALLOWED_GLOBALS, ("builtins", "eval"), ("os", "system"), ("numpy", "frombuffer"), ("__builtin__", "set")]
DTYPES = ["f8", "f4", "i8", "u1", "b1", "c16", "U3", "S2", "O8", "V4", "M8", "f16", "<f8", "", "x"]
SIMPLE_OPS = [
    pickle.MARK, pickle.STOP, pickle.POP, pickle.POP_MARK, pickle.DUP, pickle.NONE, pickle.NEWTRUE, pickle.NEWFALSE,
    pickle.EMPTY_LIST, pickle.EMPTY_DICT, pickle.EMPTY_SET, pickle.EMPTY_TUPLE, pickle.LIST, pickle.DICT,
    pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3, pickle.FROZENSET, pickle.APPEND, pickle.APPENDS,
    pickle.SETITEM, pickle.SETITEMS, pickle.ADDITEMS, pickle.REDUCE, pickle.BUILD, pickle.NEWOBJ,
    pickle.NEWOBJ_EX, pickle.OBJ, pickle.STACK_GLOBAL, pickle.MEMOIZE, pickle.NEXT_BUFFER,
    pickle.READONLY_BUFFER, pickle.BINPERSID,
]
SIZED = [pickle.BINBYTES8, pickle.BINUNICODE8, pickle.BYTEARRAY8, pickle.FRAME]


def _u64(n: int) -> bytes:
    return struct.pack("<Q", n)


opcode = st.one_of(
    st.sampled_from(SIMPLE_OPS),
    st.integers(-(2**70), 2**70).map(integer),
    st.floats(allow_nan=True).map(const),
    st.text(max_size=8).map(text),
    st.binary(max_size=24).map(raw),
    st.sampled_from(GLOBALS).map(lambda g: glob(*g)),
    st.sampled_from(DTYPES).map(text),
    st.integers(0, 300).map(lambda i: pickle.BINPUT + bytes([i % 256])),
    st.integers(0, 300).map(lambda i: pickle.BINGET + bytes([i % 256])),
    st.integers(0, 2**32 - 1).map(lambda i: pickle.LONG_BINGET + struct.pack("<I", i)),
    st.tuples(st.sampled_from(SIZED), st.integers(0, 2**64 - 1), st.binary(max_size=16)).map(
        lambda t: t[0] + _u64(t[1]) + t[2]),
    st.tuples(st.integers(0, 10**14), st.integers(0, 4)).map(lambda t: const(tuple([t[0]] * t[1]))),
    st.sampled_from([  # pieces of real array pickles, so the fuzz reaches the numpy paths
        const((3, "<", None, None, None, -1, -1, 0)), const((3, "|", None, None, None, -1, -1, 63)),
        const((3, "|", None, None, None, 8, 1, 0)), const((0,)), const((1, 2)), raw(b"b"),
        glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + const((0,)) + raw(b"b")
        + pickle.TUPLE3 + pickle.REDUCE,
        glob("numpy", "dtype") + text("f8") + pickle.NEWFALSE + pickle.NEWTRUE + pickle.TUPLE3 + pickle.REDUCE,
        glob("numpy", "dtype") + text("O8") + pickle.NEWFALSE + pickle.NEWTRUE + pickle.TUPLE3 + pickle.REDUCE,
    ]),
)
program = st.lists(opcode, max_size=40).map(
    lambda ops: pickle.PROTO + bytes([4]) + b"".join(ops) + pickle.STOP)


def _touch(value: object, depth: int = 0) -> None:
    """Use a loaded value as readers do; a forged object pointer would crash here."""
    if depth > 20:
        return
    repr(value)[:100]
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            for item in value.ravel().tolist()[:50]:
                _touch(item, depth + 1)
        elif value.dtype.kind in "biufc" and value.size < 10**7:
            np.asarray(value).sum()
    elif isinstance(value, dict):
        for k, v in list(value.items())[:50]:
            _touch(k, depth + 1)
            _touch(v, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in list(value)[:50]:
            _touch(item, depth + 1)


def _load(data: bytes) -> None:
    try:
        value = RestrictedUnpickler(io.BytesIO(data), source="fuzz.pkl", limits=PickleLimits()).load()
    except DataError as err:
        assert str(err).startswith("fuzz.pkl"), err
        assert "out of memory" not in str(err), err
        return
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, UnicodeDecodeError, OverflowError) as err:
        # what load_pickle turns into "corrupt or truncated pickle (...)": plain malformed streams
        assert not isinstance(err, MemoryError)
        return
    _touch(value)


def _real_files() -> list[bytes]:
    from collections import OrderedDict

    obj = {
        "train": {"audio": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "id": np.array(["a", "b"], dtype=object),
                  "regression_labels": np.array([0.5, -1.0], dtype=np.float32), "lengths": [3, 2]},
        "meta": OrderedDict(a=(1, 2.5, None)), "s": {1, 2}, "b": b"\x00\xff", "c": 1 + 2j, "n": np.float64(2.0),
    }
    return [pickle.dumps(obj, protocol=p) for p in range(6)]


REAL = _real_files()
mutation = st.tuples(
    st.integers(0, len(REAL) - 1),
    st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), st.integers(0, 10**6),
                       st.integers(0, 255)), min_size=1, max_size=6),
)


def _mutate(case: tuple[int, list[tuple[str, int, int]]]) -> bytes:
    data = bytearray(REAL[case[0]])
    for kind, pos, byte in case[1]:
        if not data:
            break
        i = pos % len(data)
        if kind == "flip":
            data[i] ^= 1 << (byte % 8)
        elif kind == "set":
            data[i] = byte
        elif kind == "insert":
            data[i:i] = bytes([byte])
        elif kind == "delete":
            del data[i]
        else:
            del data[i:]
    return bytes(data)


def run(n_programs: int, n_mutations: int) -> None:
    common = {"derandomize": True, "deadline": None, "database": None,
              "suppress_health_check": list(HealthCheck)}

    @settings(max_examples=n_programs, **common)
    @given(program)
    def programs(data: bytes) -> None:
        _load(data)

    @settings(max_examples=n_mutations, **common)
    @given(mutation)
    def mutations(case: tuple[int, list[tuple[str, int, int]]]) -> None:
        _load(_mutate(case))

    programs()
    mutations()


if __name__ == "__main__":
    limit = 6 * 2**30  # no input may make the loader allocate gigabytes: it fails as MemoryError instead
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    run(int(sys.argv[1]), int(sys.argv[2]))
    print("fuzz ok")
