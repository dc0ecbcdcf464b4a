"""One error type for user-caused failures, and how the command line shows it."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from decalign import cli
from decalign.config import ConfigError
from decalign.data import DataError, UnsafePickleError
from decalign.errors import DecalignError, FileAccessError, file_error
from decalign.model.interop import OfficialStateDictError
from decalign.train.checkpoint import CheckpointError


def test_every_user_error_shares_one_base_and_keeps_its_builtin_base() -> None:
    for cls, builtin in [(DataError, ValueError), (ConfigError, ValueError), (CheckpointError, RuntimeError),
                         (UnsafePickleError, ValueError), (OfficialStateDictError, ValueError)]:
        assert issubclass(cls, DecalignError)
        assert issubclass(cls, builtin)
    assert issubclass(UnsafePickleError, DataError)


def test_file_error_names_the_file_and_the_reason_in_words() -> None:
    err = file_error(OSError(errno.ENOSPC, "No space left on device", "/x/.tmp123"), "/x/results.json", "write")
    assert str(err) == "cannot write '/x/results.json': no space left on device"
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC and err.exit_code == 1


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: Exception, *flags: str
) -> tuple[int, str]:
    def boom(args: object) -> int:
        raise exc

    monkeypatch.setattr(cli.COMMANDS["presets"].load(), "run", boom)
    rc = cli.main(["presets", *flags])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (DataError("data.pkl: split 'test' is empty"), 2, "data.pkl: split 'test' is empty"),
        (CheckpointError("m.safetensors: truncated"), 2, "m.safetensors: truncated"),
        (
            PermissionError(errno.EACCES, "Permission denied", "/ro/out"),
            1,
            "cannot access '/ro/out': permission denied",
        ),
        (OSError(errno.ENOSPC, "No space left on device", "/full/x"), 1, "no space left on device"),
        (OSError(errno.ENAMETOOLONG, "File name too long", "/a" * 200), 1, "file name too long"),
    ],
)
def test_cli_prints_a_user_error_as_one_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: Exception, code: int, text: str
) -> None:
    rc, err = _run(monkeypatch, capsys, exc)
    assert rc == code
    assert err.count("\n") == 1 and err.startswith("decalign: error: ") and text in err
    assert "Traceback" not in err


def test_multi_line_messages_are_joined_into_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = _run(monkeypatch, capsys, DataError("first problem\n  second problem\n"))
    assert rc == 2 and err == "decalign: error: first problem; second problem\n"


def test_verbose_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError):
        _run(monkeypatch, capsys, DataError("bad"), "-v")


def test_our_bugs_keep_their_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ZeroDivisionError):
        _run(monkeypatch, capsys, ZeroDivisionError("bug"))
    with pytest.raises(OSError):  # an OS error that is not about a file the user named
        _run(monkeypatch, capsys, OSError(errno.EIO, "I/O error"))


def test_missing_data_file_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pkl"
    assert cli.main(["info", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and err.count("\n") == 1


def test_file_access_error_is_raisable_and_catchable_as_oserror() -> None:
    with pytest.raises(OSError):
        raise FileAccessError("cannot read 'x': permission denied")
