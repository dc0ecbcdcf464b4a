"""The restricted unpickler: refuses code, admits what the benchmark files contain."""

from __future__ import annotations

import builtins
import os
import pickle
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from decalign.data import DataError, UnsafePickleError, load_dataset, load_pickle
from decalign.testing.fixtures import write_iemocap_dialogue_pickle, write_mmsa_pickle, write_pickle


class _Payload:
    """Unpickling this calls ``func(*args)``: the classic pickle exploit."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _global_name(func) -> str:
    return f"{func.__module__}.{func.__name__}"


def _assert_refused(path: Path, global_name: str) -> None:
    with pytest.raises(UnsafePickleError) as info:
        load_pickle(path)
    msg = str(info.value)
    assert str(path) in msg
    assert global_name in msg


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_os_system_payload_is_refused_and_does_not_run(tmp_path: Path, protocol: int) -> None:
    victim = tmp_path / "pwned_system"
    path = write_pickle({"train": _Payload(os.system, f"touch {victim}")}, tmp_path / "evil.pkl", protocol)
    _assert_refused(path, _global_name(os.system))  # posix.system on Linux
    assert not victim.exists()
    # Through the public entry point as well.
    with pytest.raises(UnsafePickleError, match=re.escape(str(path))):
        load_dataset(path)
    assert not victim.exists()


def test_open_payload_does_not_create_a_file(tmp_path: Path) -> None:
    victim = tmp_path / "pwned_open"
    path = write_pickle([1, _Payload(builtins.open, str(victim), "w")], tmp_path / "evil.pkl")
    _assert_refused(path, _global_name(builtins.open))  # io.open
    assert not victim.exists()


def test_subprocess_payload_nested_in_a_split_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "pwned_subprocess"
    payload = _Payload(subprocess.check_call, ["touch", str(victim)])
    data = {"train": {"text": np.zeros((1, 1, 1), np.float32), "audio": payload}, "valid": {}, "test": {}}
    path = write_pickle(data, tmp_path / "aligned_50.pkl")
    _assert_refused(path, "subprocess.check_call")
    assert not victim.exists()


@pytest.mark.parametrize(
    ("func", "args"),
    [
        (eval, ("1 + 1",)),
        (getattr, (1, "real")),
        (np.load, ("whatever.npy",)),
        (np.frombuffer, (b"\0" * 8,)),
    ],
)
def test_other_code_globals_are_refused(tmp_path: Path, func, args) -> None:
    path = write_pickle({"x": _Payload(func, *args)}, tmp_path / "evil.pkl")
    _assert_refused(path, _global_name(func))


@pytest.mark.parametrize(
    "global_name",
    [
        "numpy.lib.format read_array",
        "numpy.lib.npyio load",
        "numpy load",
        "numpy.core.multiarray frombuffer",
        "__builtin__ eval",
        "copy_reg _reconstructor",
        "posix system",
        "builtins getattr",
        "builtins open",
        "subprocess Popen",
    ],
)
def test_hand_written_globals_are_refused(tmp_path: Path, global_name: str) -> None:
    module, name = global_name.split()
    path = tmp_path / "raw.pkl"
    path.write_bytes(b"c" + module.encode() + b"\n" + name.encode() + b"\n.")
    _assert_refused(path, f"{module}.{name}")


def test_codecs_encode_only_for_latin1(tmp_path: Path) -> None:
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(DataError, match="latin-1"):
        load_pickle(path)


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pid.pkl"
    path.write_bytes(b"Pdb_row_1\n.")
    with pytest.raises(UnsafePickleError, match="persistent id"):
        load_pickle(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_arrays_scalars_and_containers_load(tmp_path: Path, protocol: int) -> None:
    obj = {
        "f": np.arange(12, dtype=np.float32).reshape(2, 3, 2),
        "i": np.arange(3, dtype=np.int64),
        "o": np.array(["a", "bé"], dtype=object),
        "u": np.array(["x", "yz"]),
        "scalar": np.float64(1.5),
        "b": b"\x00\xffbytes",
        "set": {1, 2},
        "tuple": (1, 2.5, None, True, "s"),
    }
    back = load_pickle(write_pickle(obj, tmp_path / "ok.pkl", protocol))
    np.testing.assert_array_equal(back["f"], obj["f"])
    assert back["f"].dtype == np.float32
    np.testing.assert_array_equal(back["i"], obj["i"])
    assert back["o"].tolist() == ["a", "bé"]
    assert back["u"].tolist() == ["x", "yz"]
    assert back["scalar"] == 1.5
    assert back["b"] == obj["b"]
    assert back["set"] == {1, 2}
    assert back["tuple"] == obj["tuple"]


def test_python2_pickle_with_numpy_core_paths_loads(tmp_path: Path) -> None:
    path = write_iemocap_dialogue_pickle(tmp_path / "IEMOCAP_features_raw_6way.pkl", vid_sets=True)
    raw = path.read_bytes()
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"__builtin__\nset" in raw
    obj = load_pickle(path)
    assert isinstance(obj, tuple) and len(obj) == 9
    assert isinstance(obj[7], set)
    first = next(iter(obj[3].values()))[0]
    assert isinstance(first, np.ndarray) and first.shape == (100,)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pkl"
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*not found"):
        load_dataset(path)


def test_truncated_pickle_names_the_file(tmp_path: Path) -> None:
    path = write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind="mosi", n=(4, 2, 2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*truncated"):
        load_dataset(path)


def test_garbage_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pkl"
    path.write_bytes(b"this is not a pickle at all")
    with pytest.raises(DataError, match=re.escape(str(path))):
        load_dataset(path)


@pytest.mark.parametrize("top", [[1, 2, 3], 42, "text", (np.zeros(3),)])
def test_top_level_of_the_wrong_type(tmp_path: Path, top) -> None:
    path = write_pickle(top, tmp_path / "odd.pkl")
    with pytest.raises(DataError, match=re.escape(str(path)) + f".*{type(top).__name__}"):
        load_dataset(path)


def _calls(text: str, needle: str):
    """Argument text of every ``needle(...)`` call in ``text`` (balanced parentheses)."""
    start = 0
    while (i := text.find(needle, start)) >= 0:
        depth, j = 0, i + len(needle) - 1
        for j in range(i + len(needle) - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            if depth == 0:
                break
        yield text[i : j + 1]
        start = j


def test_no_bare_unpickling_in_the_package() -> None:
    """Every user file goes through the restricted unpickler; torch.load only with weights_only."""
    root = Path(__file__).resolve().parents[2] / "src" / "decalign"
    offenders = []
    for file in root.rglob("*.py"):
        if file.name == "safe_pickle.py":
            continue
        text = file.read_text()
        for needle in ("pickle.load(", "pickle.loads(", "pickle.Unpickler(", "np.load(", "numpy.load("):
            for call in _calls(text, needle):
                if needle.endswith("load(") and "np" in needle and "allow_pickle=False" in call:
                    continue
                offenders.append(f"{file.relative_to(root)}: {call[:80]}")
        for call in _calls(text, "torch.load("):
            if "weights_only=True" not in call:
                offenders.append(f"{file.relative_to(root)}: {call[:80]}")
    assert not offenders, "unsafe loading calls:\n" + "\n".join(offenders)


def test_plain_pickle_of_fixture_matches_restricted_load(tmp_path: Path) -> None:
    path = write_mmsa_pickle(tmp_path / "unaligned_50.pkl", kind="mosei", aligned=False, n=(3, 2, 2))
    with open(path, "rb") as fh:
        plain = pickle.load(fh)  # our own fixture: trusted
    ours = load_pickle(path)
    for split in ("train", "valid", "test"):
        assert plain[split].keys() == ours[split].keys()
        np.testing.assert_array_equal(plain[split]["audio"], ours[split]["audio"])
