"""``decalign sweep``: search spaces, opening a study under the schema-creation race, and two
workers started at the same moment on a fresh SQLite database sharing one study."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("optuna", reason="sweeps need the sweep extra: pip install -e '.[sweep]'")

from decalign.cli import main
from decalign.config.presets import PRESETS, custom_preset, get_preset
from decalign.sweep import (
    SweepSettings,
    check_space,
    default_space_path,
    load_space,
    open_study,
    report_study,
    run_study,
)

TINY = [
    "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
    "train.batch_size=16", "train.num_threads=1", "data.synthetic.n_train=48", "data.synthetic.n_valid=24",
    "data.synthetic.n_test=24",
]
SPACE = """\
train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
objective.alpha: {type: float, low: 0.005, high: 0.5, log: true}
model.heterogeneity.num_prototypes: {type: int, low: 3, high: 6}
"""


@pytest.mark.parametrize("preset", [*PRESETS, "custom"])
def test_every_preset_ships_a_valid_space(preset: str) -> None:
    path = default_space_path(preset)
    space = load_space(path)
    assert space
    configs = ([custom_preset("regression"), custom_preset("classification")] if preset == "custom"
               else [get_preset(preset)])
    for config in configs:
        check_space(space, config, path)  # every key exists and accepts both ends of its range


@pytest.mark.parametrize(("text", "message"), [
    ("train.lr: {type: float, low: 0.0, high: 1.0, log: true}", "log: true needs low > 0"),
    ("train.lr: {type: gaussian}", "type must be float, int or categorical"),
    ("data.split_seed: {type: int, low: 0, high: 3}", "data settings cannot be searched"),
    ("train.batch_size: {type: categorical, choices: []}", "non-empty list of choices"),
])
def test_bad_space_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=message) as err:
        load_space(path)
    assert str(path) in str(err.value)


def test_space_value_rejected_by_the_config_is_named(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("model.fusion.relu_dropout: {type: float, low: 0.0, high: 1.5}\n")
    with pytest.raises(ValueError, match=r"model\.fusion\.relu_dropout") as err:
        check_space(load_space(path), get_preset("mosi"), path)
    assert "1.5" in str(err.value)


def test_open_study_retries_after_a_schema_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a worker that loses the race sees (sqlite "table already exists") is retried."""
    import sqlalchemy.exc

    import decalign.sweep as sweep

    real = sweep.open_storage
    calls = {"n": 0}

    def racing(url: str, heartbeat_s: int = 0) -> object:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, Exception("table studies already exists"))
        return real(url, heartbeat_s)

    monkeypatch.setattr(sweep, "open_storage", racing)
    monkeypatch.setattr(sweep.time, "sleep", lambda s: None)
    study = open_study(f"sqlite:///{tmp_path / 'study.db'}", "s", "minimize", heartbeat_s=0)
    assert calls["n"] == 3 and study.study_name == "s"


def test_concurrent_openers_without_the_lock_all_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the lock file (as on a filesystem without flock) the retries alone survive the race."""
    import contextlib

    import decalign.sweep as sweep

    monkeypatch.setattr(sweep, "_file_lock", lambda path: contextlib.nullcontext())
    url = f"sqlite:///{tmp_path / 'study.db'}"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def opener() -> None:
        try:
            start.wait()
            open_study(url, "s", "maximize", heartbeat_s=0)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert open_study(url, "s", None, heartbeat_s=0, create=False).direction.name == "MAXIMIZE"


def test_journal_storage_and_direction_mismatch(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path / 'shared' / 'study.log'}"
    open_study(url, "s", "minimize", heartbeat_s=0)
    assert (tmp_path / "shared" / "study.log").exists()
    with pytest.raises(ValueError, match="minimize"):
        open_study(url, "s", "maximize", heartbeat_s=0)


def test_a_trial_config_is_the_resolved_config_with_the_trial_values() -> None:
    """``run_study`` applies a trial's values to the resolved configuration; the command line once
    resolved the preset with ``--set`` and the values in one list. Both give the same settings,
    a per-modality mapping set to one value included."""
    from decalign.api import load_and_resolve, resolve_config
    from decalign.config import apply_overrides
    from decalign.sweep import _override

    fixed = [*TINY, "train.seeds=[1]", "train.num_epochs=2", "model.conv_kernel=5"]
    dataset, config = load_and_resolve(overrides=fixed)
    space = load_space(default_space_path(config.preset))
    for end in (0, -1):
        trial = [_override(spec.name, spec.extremes()[end]) for spec in space]
        assert apply_overrides(config, trial) == resolve_config(dataset, None, [*fixed, *trial])


def test_sweep_settings_are_checked() -> None:
    for bad in ({"trials": 0}, {"nproc_per_node": 0}, {"pruner": "hyperband"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SweepSettings(**bad)  # type: ignore[arg-type]


def test_a_study_from_python(tmp_path: Path) -> None:
    """What a notebook does: a resolved configuration, the data and a space file to run_study,
    then report_study; no command line involved."""
    from decalign.api import load_and_resolve

    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    dataset, config = load_and_resolve(overrides=[*TINY, "train.seeds=[3]", "train.num_epochs=1"])
    out = tmp_path / "sweep"
    result = run_study(config, dataset, space, out, SweepSettings(trials=1, pruner="none", tensorboard=False))
    assert result.best_trial == 0 and result.metric == config.train.selection_metric
    assert result.best_run_dir == str(out / "trials" / "trial_0")
    assert (out / "trials" / "trial_0" / "results.json").exists()
    summary = report_study(out)
    assert "1 complete" in summary.text and summary.importance is None
    assert "importance: not drawn: 1 completed trial(s)" in summary.lines[-1]


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two workers started at the same moment on a fresh SQLite file: 2 + 1 trials of one study,
    the second worker running its trial as a 2-process torchrun job.

    The median pruner needs 5 finished trials before it prunes anything, so with 3 trials every
    trial completes (the in-process ones report their epochs on the way).
    """
    import optuna

    from decalign.train.checkpoint import load_checkpoint

    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "sweep"
    common = ["--space", str(space), "--epochs", "2", "--out", str(out), "--study", "tiny", "--no-tensorboard",
              "-q", "--set", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "decalign", "sweep", *extra, *common], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for extra in (["--trials", "2"], ["--trials", "1", "--nproc-per-node", "2", "--device", "cpu"])]
    for w in workers:
        stdout, stderr = w.communicate(timeout=300)
        assert w.returncode == 0, stderr[-4000:]
        assert "best so far" in stdout

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials), [t.state for t in study.trials]
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    launchers = sorted(t.user_attrs["nproc_per_node"] for t in study.trials)
    assert launchers == [1, 1, 2]
    for t in study.trials:  # in-process trials report every epoch (for pruning); torchrun trials cannot
        assert len(t.intermediate_values) == (2 if t.user_attrs["nproc_per_node"] == 1 else 0)
    best = Path(study.best_trial.user_attrs["run_dir"])
    assert best == out / "trials" / f"trial_{study.best_trial.number}"
    for t in study.trials:  # every trial's run directory is kept
        assert (out / "trials" / f"trial_{t.number}" / "results.json").exists()
    ckpt = load_checkpoint(best / "seed_1111" / "model.safetensors")
    assert ckpt.config.train.lr == pytest.approx(study.best_trial.params["train.lr"])

    capsys.readouterr()
    assert main(["sweep", "--report", "--out", str(out), "--study", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "3 complete" in printed and f"trial {study.best_trial.number}" in printed and str(best) in printed
    assert "importance: not drawn: 3 completed trial(s)" in printed  # 3 < 10: refused, not drawn from noise
    assert not (out / "importance.png").exists()
    assert main(["sweep", "--report", "--out", str(out), "--study", "tiny", "--importance-min-trials", "3"]) == 0
    assert (out / "importance.png").stat().st_size > 0


class _RecordingTrial:
    """The two methods of an Optuna trial that the pruning reporter calls."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.reports: list[tuple[int, float]] = []
        self.prune_at = prune_at

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune_at is not None and self.reports[-1][0] >= self.prune_at


@pytest.mark.parametrize("minimize", [True, False])
def test_pruning_reporter_reports_each_seeds_best_so_far_on_distinct_steps(minimize: bool) -> None:
    """A noisy curve is reported as its running best (what the trial's result is compared on),
    restarted for each seed, on steps ``seed_index * num_epochs + epoch``."""
    from decalign.sweep import _PruningReporter

    sign = 1.0 if minimize else -1.0
    trial = _RecordingTrial()
    reporter = _PruningReporter(trial, "loss", num_epochs=10, minimize=minimize)
    for epoch, value in enumerate([3.0, 1.0, 2.0, float("nan"), 0.5], start=1):
        reporter(epoch, {"loss": sign * value})
    for epoch, value in enumerate([4.0, 2.0, 5.0], start=1):
        reporter(epoch, {"loss": sign * value})
    want = [(1, 3.0), (2, 1.0), (3, 1.0), (5, 0.5), (11, 4.0), (12, 2.0), (13, 2.0)]
    assert trial.reports == [(step, sign * v) for step, v in want]


def test_pruning_reporter_raises_trial_pruned_and_warmup_is_half_the_epochs() -> None:
    import optuna

    from decalign.sweep import _PruningReporter, pruning_warmup

    reporter = _PruningReporter(_RecordingTrial(prune_at=2), "loss", num_epochs=4)
    reporter(1, {"loss": 1.0})
    with pytest.raises(optuna.TrialPruned, match="after epoch 2"):
        reporter(2, {"loss": 0.9})
    assert [pruning_warmup(n) for n in (1, 3, 10, 18)] == [2, 2, 5, 9]
