"""Engine behaviour that the CLI tests do not reach: a diverging loss stops the run with an error
that names the terms (instead of training on NaN), and early stopping / selection state."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from decalign.api import resolve_config, train
from decalign.config import DataConfig, SyntheticConfig
from decalign.data import load_dataset
from decalign.errors import DataError
from decalign.train.loop import EarlyStopping

TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
        "train.batch_size=16", "train.num_threads=1", "train.seeds=[1]", "train.num_epochs=2"]


def _tiny_data():
    return load_dataset(None, DataConfig(dataset="synthetic", synthetic=SyntheticConfig(
        n_train=48, n_valid=16, n_test=16, dims={"text": 12, "audio": 5, "vision": 6})))


def test_overflowing_features_stop_training_with_the_terms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _tiny_data()
    data.splits["train"].features["audio"][:] = 3e38  # finite float32, but the projection overflows
    config = resolve_config(data, overrides=TINY)
    with pytest.raises(DataError, match="beyond"):  # refused before training by the data checks
        train(config, data, tmp_path / "run", quiet=True, tensorboard=False)
    # The engine's own guard, for overflow the checks cannot foresee:
    monkeypatch.setattr("decalign.data.checks.check_values", lambda *args, **kwargs: None)
    with pytest.raises(FloatingPointError, match=r"non-finite training loss.*task="):
        train(config, data, tmp_path / "run", quiet=True, tensorboard=False)
    assert not (tmp_path / "run" / "seed_1" / "model.safetensors").exists()


def test_early_stopping_selects_and_stops() -> None:
    stop = EarlyStopping(mode="min", patience=2)
    assert stop.update(1.0, 1) and stop.best_epoch == 1
    assert not stop.update(1.5, 2) and not stop.should_stop
    assert stop.update(0.5, 3) and stop.bad_epochs == 0
    assert not stop.update(0.5, 4)  # equal is not better
    assert not stop.update(0.7, 5) and stop.should_stop and stop.best_epoch == 3
    up = EarlyStopping(mode="max", patience=1)
    assert up.update(0.1, 1) and not up.update(0.05, 2) and up.should_stop
    fresh = EarlyStopping(mode="max", patience=1)
    fresh.load_state_dict(up.state_dict())
    assert fresh.best == 0.1 and fresh.best_epoch == 1 and fresh.should_stop
    assert math.isnan(EarlyStopping(mode="min", patience=1).best)
