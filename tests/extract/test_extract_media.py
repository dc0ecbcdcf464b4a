"""Decoding (PyAV) and the frame-rate arithmetic of the extractors, on media made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("matplotlib")  # the face image of the test clips
pytest.importorskip("scipy")  # the synthetic voice

from decalign.extract.common import resample_steps
from decalign.extract.errors import MediaError
from decalign.extract.media import probe, read_audio, read_frames
from decalign.testing.media import write_media


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    return {
        "wav": write_media(root / "a.wav", 1.0),
        "flac": write_media(root / "a.flac", 1.0),
        "mp3": write_media(root / "a.mp3", 1.0),
        "mp4": write_media(root / "v.mp4", 2.0, fps=10, size=64),
        "mkv": write_media(root / "v.mkv", 1.0, fps=10, size=64, face=False),
        "silent": write_media(root / "silent.mp4", 1.0, fps=10, size=64, audio=False),
    }


def test_audio_lossless_containers_decode_to_the_exact_samples(media: dict[str, Path]) -> None:
    wav = read_audio(media["wav"], 16000)
    flac = read_audio(media["flac"], 16000)
    assert wav is not None and flac is not None
    assert wav.dtype == np.float32 and wav.shape == (16000,)
    np.testing.assert_allclose(wav, flac, atol=1 / 32767 + 1e-6)  # same 16-bit samples
    mp3 = read_audio(media["mp3"], 16000)
    assert mp3 is not None and 16000 <= len(mp3) <= 16000 + 2 * 1152  # + the encoder's frame padding


def test_audio_is_resampled_and_cut_to_start_end(media: dict[str, Path]) -> None:
    half = read_audio(media["wav"], 8000)
    assert half is not None and abs(len(half) - 8000) <= 64
    cut = read_audio(media["wav"], 16000, start=0.25, end=0.75)
    full = read_audio(media["wav"], 16000)
    assert cut is not None and full is not None and len(cut) == 8000
    np.testing.assert_array_equal(cut, full[4000:12000])


def test_video_without_audio_stream_gives_none(media: dict[str, Path]) -> None:
    info = probe(media["silent"])
    assert info.has_video and not info.has_audio
    assert read_audio(media["silent"], 16000) is None
    assert probe(media["wav"]).has_video is False


def test_frames_are_sampled_at_the_requested_rate(media: dict[str, Path]) -> None:
    frames, times = read_frames(media["mp4"], fps=5)
    assert len(frames) == 10 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    np.testing.assert_allclose(times, np.arange(10) * 0.2, atol=1e-6)
    # Faster than the source (10 fps): every source frame once, never a duplicate.
    _, times = read_frames(media["mp4"], fps=25)
    np.testing.assert_allclose(times, np.arange(20) * 0.1, atol=1e-6)
    _, times = read_frames(media["mp4"], fps=10, start=0.5, end=1.5)
    np.testing.assert_allclose(times, 0.5 + np.arange(10) * 0.1, atol=1e-6)


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path, media: dict[str, Path]) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(MediaError, match=r"broken\.mp4"):
        probe(bad)
    with pytest.raises(MediaError, match="does not exist"):
        read_audio(tmp_path / "nope.wav", 16000)
    with pytest.raises(MediaError, match="no video stream"):
        read_frames(media["wav"], 5)


def test_resample_steps_averages_bins_and_fills_gaps() -> None:
    values = np.arange(8, dtype=np.float64)[:, None] * np.array([[1.0, 10.0]])
    times = (np.arange(8) + 0.5) / 100  # openSMILE's 100 Hz frame centres
    out = resample_steps(values, times, rate=50, duration=0.08)
    np.testing.assert_allclose(out[:, 0], [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(out[:, 1], [5, 25, 45, 65])
    sparse = resample_steps(values[:1], times[:1], rate=100, duration=0.03)  # one frame, three bins
    np.testing.assert_allclose(sparse[:, 0], [0, 0, 0])
    assert sparse.dtype == np.float32


def test_a_missing_extract_package_names_the_extra() -> None:
    from decalign.extract.errors import MissingExtraError, require

    with pytest.raises(MissingExtraError, match=r"no-such-package.*pip install 'decalign\[extract\]'"):
        require("decalign_no_such_module", "no-such-package")
