"""Issue 11's hostile pickles, each spelled out opcode by opcode: all must end in a one-line
``UnsafePickleError``/``DataError`` naming the file, before anything large is allocated."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pickle_forge import (
    array,
    build,
    call,
    const,
    dtype,
    finish,
    forged_object_array,
    get,
    glob,
    put,
    raw,
    text,
)

from decalign.data import DataError, UnsafePickleError, load_dataset, load_pickle
from decalign.data.safe_pickle import PickleLimits, RestrictedUnpickler

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _write(tmp_path: Path, data: bytes, name: str = "evil.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(DataError) as info:
        load_pickle(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def _bare_env() -> dict[str, str]:
    """A minimal environment for the child: our sources first, then whatever ``PYTHONPATH``
    already supplies (where dependencies come from it, as on a machine given extra wheels)."""
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = _bare_env()
    return subprocess.run([sys.executable, "-m", "decalign", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


# -- the segfault: an object dtype whose flags the file cleared ------------------------------------


def test_forged_object_dtype_does_not_crash_info(tmp_path: Path) -> None:
    """Issue case: numpy.dtype + BUILD with flags 0, then raw bytes as object pointers (rc 139)."""
    path = _write(tmp_path, forged_object_array(), "aligned_50.pkl")
    proc = _cli("info", str(path))
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr and "Traceback" not in proc.stderr


def test_forged_object_dtype_is_refused_in_process(tmp_path: Path) -> None:
    _refused(_write(tmp_path, forged_object_array(count=4)), "object array", "list")


def test_object_dtype_state_never_reaches_numpy(tmp_path: Path) -> None:
    """Even a well-formed object array gets numpy's own object dtype, whatever flags the file says."""
    forged = dtype("O8", (3, "|", None, None, None, -1, -1, 0))
    items = pickle.MARK + text("a") + text("b") + pickle.LIST
    back = load_pickle(_write(tmp_path, finish(array(forged, (2,), items))))
    assert back.tolist() == ["a", "b"] and back.dtype.hasobject and back.dtype.flags == np.dtype(object).flags


def test_numpy_scalar_of_object_dtype_from_bytes_is_not_a_pointer(tmp_path: Path) -> None:
    forged = dtype("O8", (3, "|", None, None, None, -1, -1, 0))
    body = call(glob("numpy.core.multiarray", "scalar"), forged, raw(struct.pack("<Q", 0x4141414141414141)))
    back = load_pickle(_write(tmp_path, finish(body)))
    assert back == struct.pack("<Q", 0x4141414141414141)  # the bytes themselves, not an object at that address


def test_global_numpy_dtypes_cannot_be_changed(tmp_path: Path) -> None:
    """``dtype('f8', False, False)`` is numpy's shared float64: BUILD on it would change it for everyone."""
    body = call(glob("numpy", "dtype"), text("f8"), pickle.NEWFALSE, pickle.NEWFALSE) + build(
        const((3, ">", None, None, None, -1, -1, 0)))
    back = load_pickle(_write(tmp_path, finish(body)))
    assert back == np.dtype(">f8")
    assert np.dtype("f8").byteorder == "=" and np.dtype("float64").isnative


@pytest.mark.parametrize(
    ("spec", "state", "word"),
    [
        ("V8", (3, "|", None, None, None, 8, 1, 0), "dtype"),
        ("f8", (3, "<", None, ("a",), {"a": 1}, -1, -1, 0), "structured"),
        ("f8", (3, "<", None, None, None, 4, -1, 0), "element size"),
        ("f8", (1, "<"), "state"),
        ("U4", (3, "<", None, None, None, 10**15, 4, 8), "string dtype"),
    ],
)
def test_forged_dtype_states_are_refused(tmp_path: Path, spec: str, state: tuple, word: str) -> None:
    _refused(_write(tmp_path, finish(dtype(spec, state))), word)


def test_a_dtype_is_built_once(tmp_path: Path) -> None:
    body = dtype("f8", (3, "<", None, None, None, -1, -1, 0)) + build(const((3, ">", None, None, None, -1, -1, 0)))
    _refused(_write(tmp_path, finish(body)), "setting the state")


def test_build_on_a_function_is_refused(tmp_path: Path) -> None:
    """Issue case: BUILD new ``__defaults__`` onto an allow-listed function."""
    body = glob("_codecs", "encode") + build(const((None, {"__defaults__": ("rot13", "strict")})))
    _refused(_write(tmp_path, finish(body)), "setting the state", "_codecs.encode")
    import codecs

    assert codecs.encode("a", "rot13") == "n"  # untouched


def test_build_on_an_array_already_in_use_is_refused(tmp_path: Path) -> None:
    f8 = dtype("f8", (3, "<", None, None, None, -1, -1, 0))
    arr = array(f8 + put(1), (1,), raw(b"\0" * 8)) + put(0)
    body = pickle.EMPTY_LIST + arr + pickle.APPEND + get(0) + build(
        pickle.MARK + const(1) + const((2,)) + get(1) + pickle.NEWFALSE + raw(b"\0" * 16) + pickle.TUPLE)
    _refused(_write(tmp_path, finish(body)), "setting the state")


def test_ndarray_cannot_be_called(tmp_path: Path) -> None:
    """``numpy.ndarray((10**13,))`` would allocate 80 TB."""
    body = call(glob("numpy", "ndarray"), const((10**13,)))
    _refused(_write(tmp_path, finish(body)), "numpy.ndarray cannot be called")


# -- claims larger than the file -----------------------------------------------------------------


def test_a_100_gib_bytes_frame_is_refused_before_reading(tmp_path: Path) -> None:
    """Issue case: a 100 GiB bytes frame gave a bare MemoryError traceback."""
    body = pickle.BINBYTES8 + struct.pack("<Q", 100 * 2**30) + b"\0" * 64
    _refused(_write(tmp_path, pickle.PROTO + bytes([4]) + body), "claims 107374182400 bytes")


@pytest.mark.parametrize("opcode", [pickle.BINUNICODE8, pickle.BYTEARRAY8, pickle.FRAME])
def test_other_8_byte_size_claims_are_refused(tmp_path: Path, opcode: bytes) -> None:
    body = opcode + struct.pack("<Q", 10**15) + b"\0" * 64
    _refused(_write(tmp_path, pickle.PROTO + bytes([5]) + body), "claims")


def test_bytearray_of_a_huge_count_is_refused(tmp_path: Path) -> None:
    """Issue case: ``bytearray(10**15)``."""
    _refused(_write(tmp_path, finish(call(glob("builtins", "bytearray"), const(10**15)))), "bytearray")


def test_an_array_claiming_1e13_elements_is_refused(tmp_path: Path) -> None:
    """Issue case: a 10^13-element array."""
    f8 = dtype("f8", (3, "<", None, None, None, -1, -1, 0))
    _refused(_write(tmp_path, finish(array(f8, (10**13,), raw(b"\0" * 8)))), "10000000000000 elements")


def test_array_data_must_match_its_shape(tmp_path: Path) -> None:
    f8 = dtype("f8", (3, "<", None, None, None, -1, -1, 0))
    _refused(_write(tmp_path, finish(array(f8, (3,), raw(b"\0" * 16)))), "needs 24 bytes", "has 16")


def test_reconstruct_of_a_large_array_is_refused(tmp_path: Path) -> None:
    body = call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), const((10**13,)), raw(b"b"))
    _refused(_write(tmp_path, finish(body)), "_reconstruct")


# -- work: references that expand ----------------------------------------------------------------


def _reference_bomb(floats_per_list: int, references: int) -> bytes:
    """A dict whose 'vision' is ``references`` references to one list of floats: a file of about
    ``2 * references`` bytes standing for ``floats_per_list * references`` floats."""
    inner = pickle.EMPTY_LIST + put(1) + pickle.MARK + const(0.5) * floats_per_list + pickle.APPENDS
    outer = pickle.EMPTY_LIST + pickle.MARK + inner
    chunk = pickle.MARK + get(1) * 1000 + pickle.APPENDS
    body = outer + pickle.APPENDS + chunk * (references // 1000)
    split = pickle.EMPTY_DICT + text("vision") + body + pickle.SETITEM
    return finish(pickle.EMPTY_DICT + text("train") + split + pickle.SETITEM)


def test_memo_reference_blow_up_is_refused_quickly(tmp_path: Path) -> None:
    """Issue case: 15 MB of references standing for 3.8e10 floats ran for minutes. Here 2 MB for
    5e9 floats, loaded by the reader in a subprocess that must answer within the timeout."""
    path = _write(tmp_path, _reference_bomb(5000, 1_000_000), "aligned_50.pkl")
    assert path.stat().st_size < 2_200_000
    code = f"from decalign.data import load_dataset\nload_dataset({str(path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=_bare_env(), check=False)
    assert proc.returncode == 1
    assert "UnsafePickleError" in proc.stderr and str(path) in proc.stderr and "elements" in proc.stderr


def test_reference_bomb_is_refused_by_the_unpickler(tmp_path: Path) -> None:
    _refused(_write(tmp_path, _reference_bomb(1000, 200_000)), "stands for", "elements")


def test_expansion_bound_scales_with_the_file() -> None:
    limits = PickleLimits()
    assert limits.max_elements(15 * 2**20) < 10**8 < 3.8e10


def test_repeated_calls_on_a_big_list_are_counted_as_work(tmp_path: Path) -> None:
    """``set(L)`` a million times costs a million times len(L): the work counter stops it."""
    numbers = b"".join(const(i) for i in range(3000))
    big = pickle.EMPTY_LIST + pickle.MARK + numbers + pickle.APPENDS + pickle.TUPLE1 + put(1)
    # frozenset(L) repeated: the global once (memo 2), then BINGET 2, BINGET 1, REDUCE per copy
    fs = glob("builtins", "frozenset") + put(2) + pickle.POP
    rep = (get(2) + get(1) + pickle.REDUCE) * 200_000
    data = finish(fs + big + pickle.POP + pickle.EMPTY_LIST + pickle.MARK + rep + pickle.APPENDS)
    limits = PickleLimits(work_per_byte=16, work_floor=2**20)
    path = _write(tmp_path, data)
    with open(path, "rb") as fh, pytest.raises(UnsafePickleError, match="steps"):
        RestrictedUnpickler(fh, source=str(path), limits=limits).load()


# -- shapes no data file has ---------------------------------------------------------------------


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    body = const(1) + pickle.TUPLE1 * 100_000
    _refused(_write(tmp_path, finish(body)), "nested more than 100")


def test_tuple_dict_keys_are_refused(tmp_path: Path) -> None:
    """Tuple hashes can be forged to collide (quadratic dict inserts); data files key by strings."""
    body = pickle.EMPTY_DICT + const((1, 2)) + const(0) + pickle.SETITEM
    _refused(_write(tmp_path, finish(body)), "tuple used as a dict key")


def test_huge_int_keys_are_refused(tmp_path: Path) -> None:
    body = pickle.EMPTY_DICT + const(2**61 - 1 + 5) + const(0) + pickle.SETITEM
    _refused(_write(tmp_path, finish(body)), "int used as a dict key")


def test_a_list_inside_itself_is_refused(tmp_path: Path) -> None:
    body = pickle.EMPTY_LIST + put(0) + get(0) + pickle.APPEND
    _refused(_write(tmp_path, finish(body)), "inside itself")


def test_growing_a_list_after_it_was_used_is_refused(tmp_path: Path) -> None:
    """How cycles and late growth past the bounds would be built."""
    body = (pickle.EMPTY_LIST + put(0) + pickle.EMPTY_LIST + get(0) + pickle.APPEND + pickle.POP
            + get(0) + const(1) + pickle.APPEND)
    _refused(_write(tmp_path, finish(body)), "after it was placed")


def test_out_of_band_buffers_and_extensions_are_refused(tmp_path: Path) -> None:
    _refused(_write(tmp_path, pickle.PROTO + bytes([5]) + pickle.NEXT_BUFFER + pickle.STOP), "out-of-band")
    _refused(_write(tmp_path, finish(pickle.EXT1 + bytes([1]))), "extension")


def test_containers_are_bounded(tmp_path: Path) -> None:
    limits = PickleLimits(containers_floor=1000, containers_per_byte=0)
    data = finish(pickle.EMPTY_LIST + pickle.MARK + pickle.EMPTY_DICT * 2000 + pickle.APPENDS)
    path = _write(tmp_path, data)
    with open(path, "rb") as fh, pytest.raises(UnsafePickleError, match="containers"):
        RestrictedUnpickler(fh, source=str(path), limits=limits).load()


# -- what real files hold still loads ------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_data_round_trips_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    from collections import OrderedDict

    obj = {
        "f4": np.arange(6, dtype=np.float32).reshape(2, 3),
        "be": np.arange(3, dtype=">f8"),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        "u": np.array(["ab", "c"]),
        "s": np.array([b"xy", b"z"]),
        "o": np.array(["a", 1.5, None], dtype=object),
        "b": np.array([True, False]),
        "c": np.array([1 + 2j], dtype=np.complex64),
        "empty": np.zeros((0, 3), np.float32),
        "scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), 2 + 3j],
        "od": OrderedDict([("x", 1), ("y", [1, 2])]),
        "sets": ({1, "a"}, frozenset({2.5})),
        "bytes": (b"\x00\xff", bytearray(b"ab")),
        7: "int key",
    }
    data = pickle.dumps(obj, protocol=protocol)
    back, trusted = load_pickle(_write(tmp_path, data)), pickle.loads(data)
    assert set(back) == set(obj)
    for key in ("f4", "be", "fortran", "u", "s", "b", "c", "empty"):
        np.testing.assert_array_equal(back[key], obj[key])
        # as plain pickle.load gives it (numpy swaps big-endian data to native order on load)
        assert back[key].dtype == trusted[key].dtype and back[key].shape == obj[key].shape
    assert back["fortran"].flags.f_contiguous
    assert back["o"].tolist() == ["a", 1.5, None]
    assert back["scalars"] == obj["scalars"] and back["od"] == obj["od"] and isinstance(back["od"], OrderedDict)
    assert back["sets"] == obj["sets"] and back["bytes"] == obj["bytes"] and back[7] == "int key"


def test_mmsa_fixture_loads_through_the_reader(tmp_path: Path) -> None:
    from decalign.testing.fixtures import write_mmsa_pickle

    path = write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind="mosi", n=(6, 3, 3))
    assert len(load_dataset(path).splits["train"].ids) == 6
