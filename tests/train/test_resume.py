"""A run killed mid-training and resumed ends with exactly the results of one that ran straight
through; a damaged resume state is an error that names the file, never a silent fresh start."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from decalign.cli import main
from decalign.testing.crash import kill_when_saved

pytestmark = pytest.mark.slow

ARGS = [
    "--epochs", "4", "--seeds", "3", "--no-tensorboard", "-q",
    "--set", "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1",
    "model.homogeneity.pde_dim=8", "train.batch_size=16", "train.num_threads=1",
    "train.early_stop_patience=10", "model.fusion.embed_dropout=0.2",
    "data.synthetic.n_train=96", "data.synthetic.n_valid=32", "data.synthetic.n_test=32",
]


def _kill_after_epoch(out: Path, epoch: int, timeout: float = 240.0) -> None:
    """Start a training process and SIGKILL it as soon as ``epoch`` is saved (so it dies in the
    next epoch, mid-way, as a real crash would)."""
    kill_when_saved([sys.executable, "-m", "decalign", "train", "--out", str(out), *ARGS], out / "seed_3" / "state.pt",
                    epoch, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}, timeout=timeout)


def test_killed_and_resumed_run_equals_straight_run(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    assert main(["train", "--out", str(straight), *ARGS]) == 0

    resumed = tmp_path / "resumed"
    _kill_after_epoch(resumed, epoch=2)
    results = resumed / "results.json"
    assert not results.exists() or "3" not in json.loads(results.read_text())["seeds"]
    assert main(["train", "--out", str(resumed), "--resume", *ARGS]) == 0

    a = json.loads((straight / "results.json").read_text())["seeds"]["3"]
    b = json.loads((resumed / "results.json").read_text())["seeds"]["3"]
    assert a["best_epoch"] == b["best_epoch"] and a["epochs_run"] == b["epochs_run"] == 4
    for key, value in a["test"].items():
        assert b["test"][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    hist_a = (straight / "seed_3" / "history.csv").read_text().splitlines()
    hist_b = (resumed / "seed_3" / "history.csv").read_text().splitlines()
    assert len(hist_a) == len(hist_b)


def test_truncated_state_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _kill_after_epoch(out, epoch=1)
    state = out / "seed_3" / "state.pt"
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 3])
    assert main(["train", "--out", str(out), "--resume", *ARGS]) == 2
    err = capsys.readouterr().err
    assert str(state) in err and "corrupt or truncated" in err
    assert state.stat().st_size == len(data) // 3  # nothing was overwritten


def test_resume_without_a_run_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "nothing"), "--resume", *ARGS]) == 2
    assert "no run to resume" in capsys.readouterr().err
