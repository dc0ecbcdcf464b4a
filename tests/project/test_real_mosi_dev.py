"""DecAlign on real data: the mosi-dev subset of CMU-MOSI (62 videos, real transcripts and
acoustic descriptors, split by video).

CMU-MOSI is research data, so it is not in the repository: ``.ci/run`` builds the pickle from
the shared mosi-dev folder when it is next to the checkout and points ``DECALIGN_MOSI_DEV`` at it.
Elsewhere these tests are skipped. A short run must clear, by a clear margin, the two floors a
model that learned anything clears: predicting the training mean, and a ridge probe on audio
(which does not transfer across speakers on this data).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the probe needs scikit-learn: pip install 'decalign[probe]'")

from decalign.api import resolve_config, train
from decalign.config import DataConfig
from decalign.data import load_dataset
from decalign.metrics import sentiment_metrics
from decalign.probe import ridge_probe

MOSI_DEV = os.environ.get("DECALIGN_MOSI_DEV")
pytestmark = pytest.mark.skipif(
    not MOSI_DEV or not Path(MOSI_DEV).is_file(),
    reason="DECALIGN_MOSI_DEV is not set to a built mosi-dev pickle (.ci/run builds it when "
    "the shared mosi-dev folder is next to the checkout; CMU-MOSI is research data, not bundled)",
)

SHORT = ["train.lr=1e-3", "train.num_epochs=3", "train.early_stop_patience=3", "model.fusion.num_layers=2",
         "train.seeds=[1111]", "train.num_threads=2"]
"""The MOSI preset, trained briefly: a higher learning rate and fewer layers keep it under a
minute on two cores (the released 18 epochs at 6e-5 take minutes)."""


def _data():
    return load_dataset(MOSI_DEV, DataConfig(dataset="mosi", path=MOSI_DEV))


def test_mosi_dev_is_the_documented_subset() -> None:
    data = _data()
    assert {s: len(sp) for s, sp in data.splits.items()} == {"train": 1053, "valid": 199, "test": 195}
    assert data.input_dims == {"text": 384, "audio": 73}


@pytest.mark.slow
def test_short_decalign_run_beats_the_mean_and_the_audio_probe(tmp_path: Path) -> None:
    data = _data()
    test = data.splits["test"]
    mean_pred = np.full(len(test), float(data.splits["train"].labels.mean()), np.float32)
    floor_mean = sentiment_metrics(mean_pred, test.labels)
    floor_audio = ridge_probe(data, ["audio"]).metrics["test"]
    result = train(resolve_config(data, "mosi", SHORT), data, tmp_path / "run", quiet=True, tensorboard=False)
    got = result.mean
    assert got["mae"] < min(floor_mean["mae"], floor_audio["mae"]) - 0.2, (got, floor_mean, floor_audio)
    assert got["corr"] > 0.45 > floor_audio["corr"] + 0.3, (got, floor_audio)
    assert got["acc2_non0"] > max(floor_mean["acc2_non0"], floor_audio["acc2_non0"]) + 0.10, (got, floor_audio)
