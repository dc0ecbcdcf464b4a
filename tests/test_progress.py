"""Progress from Python (``decalign.train(..., progress=True)``) and the CPU thread default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import decalign
from decalign.train import engine

pytestmark = pytest.mark.slow

TINY = {"model.d_model": 16, "model.fusion.num_heads": 2, "model.fusion.num_layers": 1,
        "model.homogeneity.pde_dim": 8, "train.batch_size": 32, "train.num_epochs": 2, "train.seeds": [5],
        "data.synthetic.n_train": 48, "data.synthetic.n_valid": 16, "data.synthetic.n_test": 16}


def _train(tmp_path: Path, **kwargs: object) -> None:
    config = decalign.resolve_config(decalign.load_data(None, decalign.DataConfig(dataset="synthetic")),
                                     overrides=TINY)
    data = decalign.load_data(None, config.data)
    decalign.train(config, data, tmp_path / "run", tensorboard=False, **kwargs)  # type: ignore[arg-type]


def test_progress_gives_one_line_per_epoch_outside_a_terminal(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _train(tmp_path, progress=True)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert "\r" not in err  # no bar written into a log


def test_progress_draws_a_bar_when_someone_watches(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "interactive", lambda: True)
    _train(tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "seed 5 epoch 2/2" in err and ("it/s" in err or "s/it" in err)


def test_no_progress_is_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _train(tmp_path, progress=False)
    assert "epoch" not in capsys.readouterr().err


def test_thread_default_is_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads, why = engine.cpu_threads(0)
    assert threads == engine.available_cores() <= len(os.sched_getaffinity(0))
    assert "cores this process may use" in why
    assert engine.cpu_threads(3) == (3, "train.num_threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert engine.cpu_threads(0)[0] == 1


def test_decalign_train_stays_the_function_after_submodule_imports() -> None:
    import decalign.train.checkpoint  # what load_checkpoint and training do

    assert callable(decalign.train) and decalign.train.__module__ == "decalign.api"
