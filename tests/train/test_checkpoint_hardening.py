"""Damaged and forged checkpoints end in a CheckpointError naming the file and the key (issue 11)."""

from __future__ import annotations

import builtins
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from decalign.api import resolve_config
from decalign.cli import main
from decalign.config import SyntheticConfig
from decalign.data import make_synthetic
from decalign.train import checkpoint as ckpt_mod
from decalign.train.checkpoint import (
    CHECKSUM_KEY,
    SKIP_CHECKSUM_ENV,
    CheckpointError,
    ModelInfo,
    build_model,
    load_checkpoint,
    save_checkpoint,
    tensors_checksum,
)

TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = make_synthetic(SyntheticConfig(n_train=16, n_valid=8, n_test=8))
    config = resolve_config(ds, overrides=TINY)
    info = ModelInfo.from_dataset(ds)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    return save_checkpoint(path, build_model(config, info), config, info)


def _copy(saved: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model.safetensors"
    out.write_bytes(saved.read_bytes())
    return out


def _edit_header(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


def _edit_metadata(path: Path, key: str, value: Any) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["__metadata__"][key] = value if isinstance(value, str) else json.dumps(value)

    _edit_header(path, edit)


def _error(path: Path, *words: str, **kw: Any) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **kw)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def _square_weight(path: Path) -> str:
    header = json.loads(path.read_bytes()[8 : 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]])
    return next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 2
                and v["shape"][0] != v["shape"][1] and not k.startswith("preprocess."))


def test_saved_checkpoint_loads_and_carries_its_checksum(saved: Path) -> None:
    loaded = load_checkpoint(saved)
    assert loaded.metadata[CHECKSUM_KEY] == tensors_checksum(
        {k: v for k, v in loaded.model.state_dict().items()})


def test_changed_tensor_shape_in_the_header_is_named(saved: Path, tmp_path: Path) -> None:
    """Issue case: a changed shape in the safetensors header gave a RuntimeError traceback."""
    path = _copy(saved, tmp_path)
    key = _square_weight(path)

    def transpose(header: dict[str, Any]) -> None:
        header[key]["shape"] = header[key]["shape"][::-1]  # same bytes, other shape

    _edit_header(path, transpose)
    _error(path, "checksum")  # caught by the checksum first
    _error(path, f"tensor {key!r}", "shape", verify=False)  # and by the shape check without it


def test_shape_that_does_not_fit_the_bytes_is_corrupt(saved: Path, tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)
    key = _square_weight(path)

    def grow(header: dict[str, Any]) -> None:
        header[key]["shape"] = [header[key]["shape"][0] * 2, header[key]["shape"][1]]

    _edit_header(path, grow)
    _error(path, "corrupt")


@pytest.mark.parametrize(
    ("key", "edit", "words"),
    [
        ("config", None, ("'config'", "NoneType")),
        ("model_info", [1, 2], ("'model_info'", "list")),
        ("config", "{not json", ("'config'", "not JSON")),
        ("model_info", {"kind": "x"}, ("'model_info'",)),
    ],
)
def test_metadata_of_the_wrong_type_is_named(saved: Path, tmp_path: Path, key: str, edit: Any, words: tuple) -> None:
    """Issue case: ``config: null`` or ``model_info`` as a list gave TypeError tracebacks."""
    path = _copy(saved, tmp_path)
    _edit_metadata(path, key, edit if edit is not None else "null")
    _error(path, *words)


def test_metadata_naming_another_architecture(saved: Path, tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)
    config = json.loads(load_checkpoint(saved).metadata["config"])
    config["model"]["architecture"] = "late"
    _edit_metadata(path, "config", config)
    _error(path, "does not fit", "late")


def test_metadata_naming_other_widths(saved: Path, tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)
    info = json.loads(load_checkpoint(saved).metadata["model_info"])
    info["input_dims"]["audio"] += 3
    _edit_metadata(path, "model_info", info)
    _error(path, "shape")


def test_metadata_naming_impossible_widths(saved: Path, tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)
    info = json.loads(load_checkpoint(saved).metadata["model_info"])
    info["input_dims"]["audio"] = 0
    _edit_metadata(path, "model_info", info)
    _error(path, "'model_info'", "width 0")


def _flip_a_weight_bit(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    key = _square_weight(path)
    begin = 8 + n + header[key]["data_offsets"][0]
    raw[begin + 3] ^= 0x40  # the exponent bits of a float32: the value becomes enormous
    path.write_bytes(bytes(raw))


def test_one_flipped_bit_in_the_weights_is_refused(saved: Path, tmp_path: Path) -> None:
    """Issue case: one flipped bit loaded silently (predictions ~1e36)."""
    path = _copy(saved, tmp_path)
    _flip_a_weight_bit(path)
    msg = _error(path, "checksum", SKIP_CHECKSUM_ENV)
    assert "damaged or edited" in msg


def test_a_hand_edited_file_loads_when_asked(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(saved, tmp_path)
    _flip_a_weight_bit(path)
    assert load_checkpoint(path, verify=False).model is not None
    monkeypatch.setenv(SKIP_CHECKSUM_ENV, "1")
    assert load_checkpoint(path).model is not None


def test_cli_eval_reports_a_damaged_checkpoint_in_one_line(saved: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(saved, tmp_path)
    _flip_a_weight_bit(path)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum" in err and "Traceback" not in err


def _deny_opening(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint reader's ``open`` refuses ``path`` as the OS would for a file of mode 000
    (tests may run as root, who can read anything)."""
    real_open = builtins.open

    def deny(file: Any, *args: Any, **kw: Any) -> Any:
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kw)

    monkeypatch.setattr(ckpt_mod, "open", deny, raising=False)


def test_permission_denied_is_reported_as_such(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue case: an unreadable checkpoint was reported as 'corrupt or truncated: No such file'.
    Simulated (tests may run as root, who can read anything): the OS refuses to open it."""
    path = _copy(saved, tmp_path)
    _deny_opening(path, monkeypatch)
    msg = _error(path, "permission denied")
    assert "corrupt" not in msg and "No such file" not in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file of mode 000")
def test_permission_denied_for_real(saved: Path, tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)
    path.chmod(0)
    try:
        _error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_old_checkpoints_without_a_checksum_still_load(saved: Path, tmp_path: Path) -> None:
    path = _copy(saved, tmp_path)

    def drop(header: dict[str, Any]) -> None:
        del header["__metadata__"][CHECKSUM_KEY]

    _edit_header(path, drop)
    assert load_checkpoint(path).model is not None


def test_an_unreadable_checkpoint_exits_1_a_corrupt_one_2(saved: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: an unreadable checkpoint exited 2 where the README and docs/security.md say 1
    (1: the operating system refused; 2: the input is bad)."""
    from decalign.errors import CheckpointAccessError, FileAccessError

    corrupt = _copy(saved, tmp_path)
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    assert main(["eval", "--checkpoint", str(corrupt)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    path = tmp_path / "denied.safetensors"
    path.write_bytes(saved.read_bytes())
    _deny_opening(path, monkeypatch)
    with pytest.raises(CheckpointAccessError) as info:
        load_checkpoint(path)
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, FileAccessError)
    assert main(["eval", "--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "permission denied" in err and str(path) in err
