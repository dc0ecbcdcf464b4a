"""Progress from Python (``decalign.train(..., progress=True)``) and the CPU thread default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import decalign
from decalign.train import progress
from decalign.train import threads as threads_mod

pytestmark = pytest.mark.slow

TINY = {"model.d_model": 16, "model.fusion.num_heads": 2, "model.fusion.num_layers": 1,
        "model.homogeneity.pde_dim": 8, "train.batch_size": 32, "train.num_epochs": 2, "train.seeds": [5],
        "data.synthetic.n_train": 48, "data.synthetic.n_valid": 16, "data.synthetic.n_test": 16}


def _train(tmp_path: Path, **kwargs: object) -> None:
    config = decalign.resolve_config(decalign.load_dataset(None, decalign.DataConfig(dataset="synthetic")),
                                     overrides=TINY)
    data = decalign.load_dataset(None, config.data)
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
    monkeypatch.setattr(progress, "interactive", lambda: True)
    _train(tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "seed 5 epoch 2/2" in err and ("it/s" in err or "s/it" in err)


def test_no_progress_is_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _train(tmp_path, progress=False)
    assert "epoch" not in capsys.readouterr().err


class _Writer:
    """Records ``add_scalar`` calls as TensorBoard's ``SummaryWriter`` receives them."""

    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))


def test_an_epochs_report_writes_every_scalar_and_its_line_unless_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    train, valid = {"loss": 0.5}, {"loss": 0.25, "mae": 0.75, "not_shown": 1.0}
    writer = _Writer()
    progress.report_epoch(writer, 3, 9, train, valid, 1e-3, 2.0, quiet=True, progress=True)
    assert writer.scalars == [("train/loss", 0.5, 3), ("valid/loss", 0.25, 3), ("valid/mae", 0.75, 3),
                              ("valid/not_shown", 1.0, 3), ("lr", 1e-3, 3)]
    assert capsys.readouterr().err == ""  # quiet: scalars only
    progress.report_epoch(None, 3, 9, train, valid, 1e-3, 2.0, quiet=False, progress=True)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("epoch 3/9  train loss 0.5000  |  valid loss 0.2500 mae ") and "not_shown" not in line
    assert line.endswith("lr 1.00e-03  2.0s")


def test_bars_are_drawn_only_for_someone_watching(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "interactive", lambda: True)
    assert progress.show_bars(quiet=False, progress=True) and not progress.show_bars(quiet=True, progress=True)
    assert not progress.show_bars(quiet=False, progress=False)
    monkeypatch.setattr(progress, "interactive", lambda: False)
    assert not progress.show_bars(quiet=False, progress=True)


def test_thread_default_is_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads, why = threads_mod.cpu_threads(0, load=0.0)
    assert threads == threads_mod.available_cores() <= len(os.sched_getaffinity(0))
    assert why.startswith(f"{threads} core") and "load 0.0" in why and "set train.num_threads to choose" in why
    assert threads_mod.cpu_threads(3) == (3, f"{threads_mod.available_cores()} cores: 3 threads (train.num_threads)")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads_mod.cpu_threads(0)[0] == 1


@pytest.mark.parametrize(("cores", "load", "threads"), [
    (2, 3.9, 1), (2, 1.6, 1), (2, 1.4, 1), (2, 0.6, 1), (2, 0.4, 2), (2, 0.0, 2),
    (8, 3.0, 5), (8, 7.6, 1), (1, 0.0, 1), (16, 0.2, 16),
])
def test_threads_are_the_free_cores_at_start(monkeypatch: pytest.MonkeyPatch, cores: int, load: float,
                                             threads: int) -> None:
    """The load reading is injected, so the rule itself is checked exactly: the cores less the
    load on them, rounded, at least 1 and at most the cores."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    choice = threads_mod.choose_threads(0, cores=cores, measure=lambda n: load)
    assert choice.threads == threads and choice.cores == cores and choice.load == load
    assert choice.line() == (f"{cores} core{'' if cores == 1 else 's'}, load {load:.1f}: {threads} "
                             f"thread{'' if threads == 1 else 's'}; set train.num_threads to choose")


def test_an_unreadable_load_keeps_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    choice = threads_mod.choose_threads(0, cores=4, measure=lambda n: None)
    assert choice.threads == 4 and choice.line() == "4 cores: 4 threads; set train.num_threads to choose"


def _busy_children(cpus: list[int], seconds: float = 60.0) -> list[subprocess.Popen[bytes]]:
    """One spinning process pinned to each of ``cpus``, each ending by itself after ``seconds``."""
    code = f"import os, time\nos.sched_setaffinity(0, {{int(os.environ['CPU'])}})\nend = time.time() + {seconds}\n" \
        "while time.time() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "CPU": str(c)}) for c in cpus]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2
                    or not Path("/proc/stat").exists(), reason="needs Linux and two usable cores")
def test_two_busy_processes_on_two_cores_give_one_thread_said_in_the_first_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Reproduced: the automatic choice took both cores of a busy 2-core machine (15 min for the
    README's first command against 2.5 min with one thread). Real load, no injection: two
    spinning processes on the two cores this process is restricted to."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    saved = os.sched_getaffinity(0)
    cpus = sorted(saved)[:2]
    children = _busy_children(cpus)
    try:
        os.sched_setaffinity(0, set(cpus))
        time.sleep(0.5)  # the children are spinning
        choice = threads_mod.choose_threads(0)
        assert choice.cores <= 2 and choice.threads == 1 and choice.load is not None and choice.load >= 1.5, choice
        capsys.readouterr()
        _train(tmp_path)  # the Python API's default: progress on
        first = capsys.readouterr().err.splitlines()[0]
        assert first.startswith(f"{choice.cores} core") and ": 1 thread; set train.num_threads to choose" in first
        info = json.loads((tmp_path / "run" / "results.json").read_text())["run_info"]["threads"]
        assert info["threads"] == 1 and info["source"] == "automatic" and info["line"] == first
    finally:
        os.sched_setaffinity(0, saved)
        for child in children:
            child.kill()
        for child in children:
            child.wait(timeout=10)


def test_the_python_api_shows_progress_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reproduced: the README's first snippet printed nothing for 18 minutes."""
    _train(tmp_path)
    err = capsys.readouterr().err
    assert "set train.num_threads to choose" in err.splitlines()[0] or "(train.num_threads)" in err.splitlines()[0]
    assert [line.split()[1] for line in err.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]


def test_the_python_api_is_silent_with_progress_false(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _train(tmp_path, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_decalign_train_stays_the_function_after_submodule_imports() -> None:
    import decalign.train.checkpoint  # what load_checkpoint and training do

    assert callable(decalign.train) and decalign.train.__module__ == "decalign.api"
