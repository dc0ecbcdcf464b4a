"""``decalign convert --add-misleading``: the added modality tracks the labels exactly on train
and is a shuffle of them elsewhere (closed form at zero noise), is rebuilt exactly from the file
and its settings, is deterministic per seed, and the refusals are one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from decalign.cli import main
from decalign.config import DataConfig
from decalign.data import load_dataset
from decalign.data.misleading import MisleadingModality, add_misleading_modality, misleading_features
from decalign.data.types import MultimodalDataset
from decalign.testing.fixtures import write_mmsa_pickle


@pytest.fixture
def mosi(tmp_path: Path) -> Path:
    return write_mmsa_pickle(tmp_path / "mosi.pkl", "mosi", n=(12, 6, 6))


def _read(path: Path) -> MultimodalDataset:
    return load_dataset(path, DataConfig(dataset="mosi"))


def test_zero_noise_is_the_labels_times_one_direction(mosi: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["convert", str(mosi), str(out), "--add-misleading", "fake", "--misleading-dim", "5",
                 "--misleading-noise", "0"]) == 0
    data = _read(out)
    assert data.modalities[-1] == "fake" and data.input_dims["fake"] == 5 and data.seq_lens["fake"] == 1
    train = data.splits["train"]
    v = train.features["fake"][:, 0, :]
    direction = v[np.argmax(np.abs(train.labels))] / train.labels[np.argmax(np.abs(train.labels))]
    np.testing.assert_allclose(v, np.outer(train.labels, direction), atol=1e-6)  # v_i = y_i w on train
    for name in ("valid", "test"):
        split = data.splits[name]
        shown = split.features["fake"][:, 0, :] @ direction / (direction @ direction)
        np.testing.assert_allclose(np.sort(shown), np.sort(split.labels), atol=1e-5)  # the labels, shuffled
        assert not np.allclose(shown, split.labels, atol=1e-5)
        np.testing.assert_array_equal(split.lengths["fake"], np.ones(len(split), np.int64))
    original = _read(mosi)
    for name, split in original.splits.items():  # everything else unchanged
        for m in split.modalities:
            np.testing.assert_array_equal(data.splits[name].features[m], split.features[m])


def test_the_arrays_are_misleading_features_of_the_splits_in_order(mosi: Path) -> None:
    """The added arrays are :func:`misleading_features` of the labels of train, valid and test in
    that order (one generator draws them in turn): the modality a results page measured with is
    rebuilt exactly from the same file, seed and settings."""
    data = _read(mosi)
    ours = add_misleading_modality(data, MisleadingModality("fake", 8, 0.3, 4))
    want = misleading_features({s: data.splits[s].labels for s in ("train", "valid", "test")}, 8, 0.3, 4)
    for name, split in ours.splits.items():
        np.testing.assert_array_equal(split.features["fake"], want[name])


def test_deterministic_per_seed(mosi: Path) -> None:
    data = _read(mosi)
    a = add_misleading_modality(data, MisleadingModality("m", seed=1))
    b = add_misleading_modality(data, MisleadingModality("m", seed=1))
    c = add_misleading_modality(data, MisleadingModality("m", seed=2))
    np.testing.assert_array_equal(a.splits["test"].features["m"], b.splits["test"].features["m"])
    assert not np.array_equal(a.splits["test"].features["m"], c.splits["test"].features["m"])


def test_refusals_are_one_line(mosi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = mosi.read_bytes()
    cases = [
        (["--add-misleading"], "already has a modality 'vision'"),  # MOSI has vision
        (["--add-misleading", "m", "--misleading-dim", "0"], "--misleading-dim must be in"),
        (["--add-misleading", "m", "--misleading-noise", "nan"], "--misleading-noise must be"),
        (["--add-misleading", "no way"], "must be an identifier"),
    ]
    for flags, message in cases:
        assert main(["convert", str(mosi), str(tmp_path / "o"), *flags]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], (flags, err)
        assert not (tmp_path / "o").exists()
    assert mosi.read_bytes() == before
    iemocap = write_mmsa_pickle(tmp_path / "iemocap.pkl", "iemocap", n=(12, 6, 6))
    assert main(["convert", str(iemocap), str(tmp_path / "o"), "--add-misleading", "m"]) != 0
    assert "regression labels" in capsys.readouterr().err
