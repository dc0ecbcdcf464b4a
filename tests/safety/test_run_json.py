"""One reader for a run directory's JSON files (:func:`decalign.train.runguard.read_json_file`):
its refusals (missing, a folder, over the size bound, not JSON) are one line naming the file and
come before anything is parsed; ``decalign report``, training's resume and the web app's run
index all refuse through it, the web app naming the file without the server's folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from decalign.errors import RunDirError
from decalign.runs.reader import ReadLimits, read_run
from decalign.serve.runs import RunNotFound, read_json
from decalign.train.rundir import RunDir
from decalign.train.runguard import read_json_file


def _refusal(path: Path, max_bytes: int = 1000) -> str:
    with pytest.raises(RunDirError) as err:
        read_json_file(path, "results", max_bytes)
    message = str(err.value)
    assert "\n" not in message and repr(str(path)) in message
    return message


def test_each_refusal_is_one_line_naming_the_file(tmp_path: Path) -> None:
    assert "is missing" in _refusal(tmp_path / "results.json")
    (tmp_path / "folder.json").mkdir()
    assert "not a regular file" in _refusal(tmp_path / "folder.json")
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"x": "y" * 2000}))
    assert f"has {big.stat().st_size} bytes, over the limit of 1000" in _refusal(big)
    broken = tmp_path / "broken.json"
    broken.write_text('{"seeds": {"1": ')
    assert "not valid JSON (truncated or edited?" in _refusal(broken)
    bad_utf8 = tmp_path / "latin.json"
    bad_utf8.write_bytes(b'{"a": "\xe9"}')
    assert "not valid JSON" in _refusal(bad_utf8)
    fine = tmp_path / "fine.json"
    fine.write_text('{"a": [1, 2]}')
    assert read_json_file(fine, "results", 1000) == {"a": [1, 2]}


def test_the_size_is_checked_before_the_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 5000 + "1]")

    def no_reading(*args: object, **kwargs: object) -> str:
        raise AssertionError("read before the size check")

    monkeypatch.setattr(Path, "read_text", no_reading)
    with pytest.raises(RunDirError, match="over the limit of 100"):
        read_json_file(big, "results", 100)


def test_report_training_and_the_web_app_refuse_through_the_one_reader(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"preset": "synthetic", "pad": "x" * 5000}))
    (run / "dataset.json").write_text("{}")
    (run / "results.json").write_text("{}")

    with pytest.raises(RunDirError, match=r"configuration \(config\.json\) has \d+ bytes, over the limit of 4096"):
        read_run(run, limits=ReadLimits(max_json_bytes=4096))

    (run / "config.json").write_text('{"preset": ')  # truncated
    with pytest.raises(RunDirError, match="the run's configuration is not valid JSON") as err:
        RunDir(run).read_config()
    assert str(run / "config.json") in str(err.value)
    assert str(err.value).endswith("; restore it or start a new run (--overwrite)")  # training's own hint
    with pytest.raises(RunDirError) as reported:
        read_run(run)
    assert "not valid JSON" in str(reported.value) and "--overwrite" not in str(reported.value)  # report only reads

    with pytest.raises(RunNotFound) as served:
        read_json(run / "config.json")
    assert "'config.json': the run's file is not valid JSON" in str(served.value)
    assert str(tmp_path) not in str(served.value)  # the server's folders are not told to clients
    assert read_json(run / "results.json") == {}
