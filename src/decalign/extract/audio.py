"""Frame-level acoustic descriptors of a mono signal.

Two families, both computed on the signal decoded by :func:`decalign.extract.media.read_audio`:

* openSMILE low-level descriptors (``opensmile`` package, which ships its own binary and
  configurations): eGeMAPS v02 (25 descriptors: loudness, F0, jitter, shimmer, formants, spectral
  slope ...) and ComParE 2016 (65: energy, spectral, MFCC, voicing). openSMILE emits them every
  10 ms; they are averaged into bins of ``1 / rate`` seconds.
* a lighter librosa set (27 per frame): 20 MFCCs, F0 (YIN, Hz), RMS energy, spectral centroid,
  bandwidth, roll-off, flatness and zero-crossing rate, with a hop of ``sample_rate / rate``.

Output ``[T, D]`` float32 with ``T = round(duration * rate)`` (at least 1).
"""

from __future__ import annotations

import numpy as np

from decalign.extract.common import package_version, resample_steps
from decalign.extract.errors import ExtractError, require
from decalign.extract.provenance import ExtractorRecord

__all__ = ["AUDIO_EXTRACTORS", "LibrosaExtractor", "OpenSmileExtractor", "make_audio_extractor"]

_OPENSMILE_SETS = {"egemaps": ("eGeMAPSv02", 25), "compare": ("ComParE_2016", 65)}


class OpenSmileExtractor:
    """openSMILE low-level descriptors of one feature set, averaged to ``rate`` Hz."""

    def __init__(self, feature_set: str, rate: float, sample_rate: int) -> None:
        if feature_set not in _OPENSMILE_SETS:
            raise ExtractError(f"openSMILE feature set {feature_set!r} unknown; choose from {sorted(_OPENSMILE_SETS)}")
        opensmile = require("opensmile")
        set_name, self.width = _OPENSMILE_SETS[feature_set]
        self.name = f"opensmile-{feature_set}"
        self.set_name, self.rate, self.sample_rate = set_name, float(rate), sample_rate
        self._smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, set_name),
            feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
        )

    def record(self) -> ExtractorRecord:
        settings = {"feature_set": self.set_name, "level": "lld", "sample_rate": self.sample_rate}
        return ExtractorRecord(self.name, "opensmile", package_version("opensmile"), settings, self.width, self.rate)

    def __call__(self, signal: np.ndarray) -> np.ndarray:
        duration = len(signal) / self.sample_rate
        frame = self._smile.process_signal(signal, self.sample_rate)
        values = frame.to_numpy(dtype=np.float64)
        starts = frame.index.get_level_values("start").total_seconds().to_numpy()
        ends = frame.index.get_level_values("end").total_seconds().to_numpy()
        return resample_steps(values, (starts + ends) / 2, self.rate, duration)


class LibrosaExtractor:
    """MFCC, F0, energy and spectral shape with librosa, one frame every ``1 / rate`` seconds."""

    name = "librosa"
    width = 27
    n_mfcc = 20
    fmin, fmax = 65.0, 500.0
    n_fft = 1024

    def __init__(self, rate: float, sample_rate: int) -> None:
        self._librosa = require("librosa")
        self.sample_rate = sample_rate
        self.hop = max(1, round(sample_rate / rate))
        self.rate = sample_rate / self.hop  # the rate actually used (an integer hop)

    def record(self) -> ExtractorRecord:
        settings = {"n_mfcc": self.n_mfcc, "hop_length": self.hop, "n_fft": self.n_fft, "f0": "yin",
                    "fmin": self.fmin, "fmax": self.fmax, "sample_rate": self.sample_rate}
        return ExtractorRecord(self.name, "librosa", package_version("librosa"), settings, self.width, self.rate)

    def __call__(self, signal: np.ndarray) -> np.ndarray:
        lr, sr, hop = self._librosa, self.sample_rate, self.hop
        n_out = max(1, round(len(signal) / sr * self.rate))
        y = signal if len(signal) >= self.n_fft else np.pad(signal, (0, self.n_fft - len(signal)))
        power = np.abs(lr.stft(y, n_fft=self.n_fft, hop_length=hop)) ** 2
        magnitude = np.sqrt(power)
        mel = lr.feature.melspectrogram(S=power, sr=sr)
        rows = [
            lr.feature.mfcc(S=lr.power_to_db(mel), n_mfcc=self.n_mfcc),
            lr.yin(y, fmin=self.fmin, fmax=self.fmax, sr=sr, frame_length=self.n_fft, hop_length=hop)[None],
            lr.feature.rms(S=magnitude, frame_length=self.n_fft),
            lr.feature.spectral_centroid(S=magnitude, sr=sr),
            lr.feature.spectral_bandwidth(S=magnitude, sr=sr),
            lr.feature.spectral_rolloff(S=magnitude, sr=sr),
            lr.feature.spectral_flatness(S=magnitude),
            lr.feature.zero_crossing_rate(y, frame_length=self.n_fft, hop_length=hop),
        ]
        n = min(r.shape[1] for r in rows)
        out = np.concatenate([r[:, :n] for r in rows]).T.astype(np.float32)
        return out[:n_out] if len(out) >= n_out else np.pad(out, ((0, n_out - len(out)), (0, 0)), mode="edge")


AUDIO_EXTRACTORS: tuple[str, ...] = ("egemaps", "compare", "librosa")
"""Names accepted by ``--audio`` (plus ``none``)."""


def make_audio_extractor(name: str, rate: float, sample_rate: int) -> OpenSmileExtractor | LibrosaExtractor:
    """The audio extractor called ``name`` (see :data:`AUDIO_EXTRACTORS`)."""
    if rate <= 0:
        raise ExtractError(f"audio rate must be > 0 Hz, found {rate}")
    if name == "librosa":
        return LibrosaExtractor(rate, sample_rate)
    if name in _OPENSMILE_SETS:
        return OpenSmileExtractor(name, rate, sample_rate)
    raise ExtractError(f"unknown audio extractor {name!r}; choose from {[*AUDIO_EXTRACTORS, 'none']}")
