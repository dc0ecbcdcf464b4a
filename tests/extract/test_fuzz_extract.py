"""Fuzzing the extraction inputs (issue 25): transcripts CSVs and media container headers.

Every outcome must be a success or a :class:`~decalign.errors.DecalignError`; any other exception
is a bug. The inputs are small and the cases few (seeded, deterministic), so the suite takes
seconds and little memory; decoding runs under tight :class:`MediaLimits`, which is itself part
of what is tested (a damaged header must not make a decoder run away).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("scipy")  # the synthetic voice

from decalign.errors import DecalignError
from decalign.extract.inputs import discover_clips
from decalign.extract.media import MediaLimits, probe, read_audio, read_frames
from decalign.testing.media import write_media

LIMITS = MediaLimits(max_seconds=5.0, max_frames=200)

VALID_CSV = (
    b"video_id,clip_id,text,label,mode,start,end\n"
    b"v0,c0,i loved it,1.5,train,0,0.3\n"
    b'v0,c1,"a ""quoted"", text",-0.5,valid,0.1,0.4\n'
    b"v1,c2,plain,0,test,,\n"
)
"""Per-video layout: ``v0.wav`` and ``v1.wav`` in the media folder."""

SPECIAL = [b",", b'"', b"\n", b"\r", b"\x00", b"\xff", b"\xe8", b"..", b"/", b"nan", b"inf", b"1e309", b"-",
           b"\xef\xbb\xbf", b"path", b"../x", b"/etc/passwd"]


def _mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """One of: flip bytes, insert special tokens, delete a span, truncate, duplicate a span."""
    buf = bytearray(data)
    kind = int(rng.integers(5))
    for _ in range(int(rng.integers(1, 6))):
        if not buf:
            break
        at = int(rng.integers(len(buf)))
        if kind == 0:
            buf[at] = int(rng.integers(256))
        elif kind == 1:
            buf[at:at] = SPECIAL[int(rng.integers(len(SPECIAL)))]
        elif kind == 2:
            del buf[at:at + int(rng.integers(1, 20))]
        elif kind == 3:
            del buf[at:]
        else:
            span = bytes(buf[at:at + int(rng.integers(1, 40))])
            buf[at:at] = span * int(rng.integers(1, 4))
    return bytes(buf)


def _outcome(call: Callable[[], object]) -> str:
    """``"ok"`` or the DecalignError's class name; any other exception fails the test."""
    try:
        call()
    except DecalignError as err:
        assert str(err) and "\n" not in str(err), repr(err)
        return type(err).__name__
    return "ok"


def test_transcripts_csv_fuzz_ends_in_success_or_a_decalign_error(tmp_path: Path) -> None:
    media = tmp_path / "media"
    for video in ("v0", "v1"):
        write_media(media / f"{video}.wav", 0.5)
    rng = np.random.default_rng(25)
    outcomes: dict[str, int] = {}
    csv_file = tmp_path / "t.csv"
    for _ in range(300):
        csv_file.write_bytes(_mutate(rng, VALID_CSV))
        name = _outcome(lambda: discover_clips(media, csv_file))
        outcomes[name] = outcomes.get(name, 0) + 1
    csv_file.write_bytes(VALID_CSV)
    assert len(discover_clips(media, csv_file)) == 3  # the seed is valid: mutations are what fails
    assert outcomes.get("ok", 0) > 0 and sum(outcomes.values()) - outcomes.get("ok", 0) > 50, outcomes
    for _ in range(30):  # random bytes
        csv_file.write_bytes(rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes())
        _outcome(lambda: discover_clips(media, csv_file))


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    pytest.importorskip("cv2")
    pytest.importorskip("matplotlib")
    root = tmp_path_factory.mktemp("fuzz_media")
    return {name: write_media(root / name, 0.5, fps=10, size=32).read_bytes()
            for name in ("c.mp4", "c.wav", "c.mkv")}


def _decode_all(path: Path) -> None:
    probe(path)
    read_audio(path, 8000, limits=LIMITS)
    read_frames(path, 5, max_side=32, limits=LIMITS)


def test_media_header_fuzz_ends_in_success_or_a_decalign_error(containers: dict[str, bytes], tmp_path: Path) -> None:
    rng = np.random.default_rng(2025)
    seen: set[str] = set()
    for name, data in containers.items():
        path = tmp_path / name
        for case in range(25):
            buf = bytearray(data)
            if case % 3 == 0:  # truncated anywhere
                buf = buf[: int(rng.integers(0, len(buf)))]
            else:  # bytes changed in the header region (container and codec parameters live there)
                header = min(len(buf), 512 if case % 3 == 1 else len(buf))
                for _ in range(int(rng.integers(1, 8))):
                    buf[int(rng.integers(header))] = int(rng.integers(256))
            path.write_bytes(bytes(buf))
            seen.add(_outcome(lambda p=path: _decode_all(p)))
        path.write_bytes(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())  # not media at all
        assert _outcome(lambda p=path: _decode_all(p)) == "MediaError"
    assert "MediaError" in seen
