"""Files a run writes: the umask is respected, long names work, a full disk is one line and loses
nothing (issue 11)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import torch

from decalign.errors import FileAccessError
from decalign.train.atomic import atomic_write, temporary_name, write_json, write_text
from decalign.train.checkpoint import save_training_state


@pytest.fixture
def umask() -> object:
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path: Path, umask: object, mask: int, mode: int) -> None:
    """Issue case: every file had mode 0600 whatever the umask (mkstemp)."""
    umask(mask)  # type: ignore[operator]
    paths = [write_json(tmp_path / "a.json", {"x": 1}), write_text(tmp_path / "b.txt", "t"),
             save_training_state(tmp_path / "state.pt", {"epoch": 1, "w": torch.zeros(2)})]
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == mode, p


def test_a_250_character_file_name_can_be_written(tmp_path: Path) -> None:
    """Issue case: a valid 250-character name failed (the temporary name was 14 characters longer)."""
    target = tmp_path / ("r" * 245 + ".json")
    assert len(target.name) == 250
    write_json(target, {"ok": True})
    assert target.exists() and len(temporary_name(target).name) <= 255
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path: Path) -> None:
    """Issue case: a full disk gave tracebacks; nothing may be lost and no temporary file left."""
    target = write_text(tmp_path / "results.json", "old")

    def fill(tmp: str) -> None:
        Path(tmp).write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileAccessError, match=r"results\.json.*no space left on device") as info:
        atomic_write(target, fill)
    assert "\n" not in str(info.value)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_torch_save_write_failure_is_reported_as_such(tmp_path: Path) -> None:
    """torch.save reports a full disk as RuntimeError('... unexpected pos ...')."""
    def fail(tmp: str) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed / unexpected pos 7040 vs 6928")

    with pytest.raises(FileAccessError, match=r"state\.pt.*disk full"):
        atomic_write(tmp_path / "state.pt", fail)
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_a_directory_should_be(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileAccessError, match=r"file/sub/a\.json"):
        write_json(tmp_path / "file" / "sub" / "a.json", {})


def test_other_errors_pass_through(tmp_path: Path) -> None:
    def bug(tmp: str) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "x", bug)
    assert list(tmp_path.iterdir()) == []
