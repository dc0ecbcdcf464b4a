"""``decalign sweep``: distributed hyper-parameter search on Optuna.

Every ``decalign sweep`` command is one *worker* of a study kept in Optuna storage; start several
(on one machine or many) with the same ``--storage`` and ``--study`` and they share the work.
Each trial is an ordinary training run (:func:`decalign.api.train`, or ``decalign train`` under
``torchrun`` with ``--nproc-per-node``) written to ``OUT/trials/trial_<number>/`` and kept; its
value is the validation selection metric (``train.selection_metric``) of the best epoch, averaged
over the trial's seeds, minimised or maximised as :func:`decalign.metrics.metric_mode` says.

Storage (``--storage``):

* default ``sqlite:///OUT/study.db``: an embedded database file, fine for a few workers on one
  machine (SQLite serialises writers; many concurrent workers wait on its lock);
* ``journal:///shared/path/study.log``: Optuna's journal file, for many workers on many machines
  sharing a filesystem (NFS included, where SQLite's locking is unreliable);
* any other URL is an Optuna RDB URL, e.g. ``postgresql://user:pass@host/db`` (install its driver,
  e.g. ``psycopg2``), for many workers anywhere.

Workers started at the same moment on a fresh SQLite file race to create Optuna's schema (one can
fail with "table already exists" or a duplicate version row). Opening the study is therefore
serialised by a lock file next to the database where the OS offers ``flock``, and retried with
jittered back-off on database errors everywhere (also PostgreSQL/MySQL, whose concurrent schema
creation races the same way); SQLite connections also wait up to two minutes for a lock.

The search space is a YAML file (``--space``; default: the one shipped for the preset, see
``decalign/config/spaces/``) mapping settings (the keys of ``--set``) to a distribution::

    train.lr: {type: float, low: 1.0e-5, high: 3.0e-4, log: true}
    model.heterogeneity.num_prototypes: {type: int, low: 4, high: 12}
    train.batch_size: {type: categorical, choices: [16, 32, 64]}

From Python, :func:`run_study` runs trials as one worker (what ``decalign sweep`` does) and
:func:`report_study` summarises a study (``decalign sweep --report``); the command line is
:mod:`decalign.cli.sweep`. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from decalign.config import RunConfig
    from decalign.data import MultimodalDataset

__all__ = [
    "Direction",
    "ParamKind",
    "ParamSpec",
    "StudyResult",
    "SweepReport",
    "SweepSettings",
    "check_space",
    "default_space_path",
    "load_space",
    "open_storage",
    "open_study",
    "pruning_warmup",
    "report_study",
    "run_study",
]

log = logging.getLogger("decalign")

STUDY_DB = "study.db"
SQLITE_TIMEOUT_S = 120
"""How long a SQLite connection waits for another worker's lock before failing."""
OPEN_ATTEMPTS = 20
HEARTBEAT_S = 60
"""A trial whose worker stopped sending heartbeats for two intervals is marked failed."""


# -- search space ---------------------------------------------------------------------------------


ParamKind = Literal["float", "int", "categorical"]
"""The ``type`` of a searched setting in a search space file."""
Direction = Literal["minimize", "maximize"]
"""Which way a study optimises its objective (Optuna's names)."""


@dataclass(frozen=True)
class ParamSpec:
    """One searched setting: ``float``/``int`` in ``[low, high]`` (optionally log-scaled or
    stepped) or ``categorical`` among ``choices``."""

    name: str
    kind: ParamKind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def _range(self) -> tuple[float, float]:
        """``(low, high)`` of a ``float``/``int`` setting (:func:`load_space` requires both)."""
        if self.low is None or self.high is None:
            raise ValueError(f"search space key {self.name!r}: type {self.kind} needs low and high")
        return self.low, self.high

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            low, high = self._range()
            return trial.suggest_float(self.name, low, high, log=self.log, step=self.step)
        if self.kind == "int":
            low, high = self._range()
            return trial.suggest_int(self.name, int(low), int(high), log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.name, list(self.choices))

    def extremes(self) -> list[Any]:
        """Values to check against the configuration before any trial runs."""
        if self.kind == "categorical":
            return list(self.choices)
        cast = int if self.kind == "int" else float
        low, high = self._range()
        return [cast(low), cast(high)]


def default_space_path(preset: str) -> Path:
    """The search space shipped for ``preset`` (``decalign/config/spaces/<preset>.yaml``)."""
    from importlib.resources import files

    path = Path(str(files("decalign") / "config" / "spaces" / f"{preset}.yaml"))
    if not path.is_file():
        shipped = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(
            f"no search space is shipped for preset {preset!r} (shipped: {shipped}); pass --space FILE"
        )
    return path


def _space_error(path: Path, key: str, message: str) -> ValueError:
    return ValueError(f"search space {str(path)!r}, key {key!r}: {message}")


def load_space(path: str | os.PathLike[str]) -> list[ParamSpec]:
    """Read and check a search-space YAML file (mapping setting -> distribution)."""
    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"search space {str(file)!r} does not exist") from None
    except yaml.YAMLError as err:
        raise ValueError(f"search space {str(file)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"search space {str(file)!r} must be a non-empty mapping of setting -> distribution")
    specs = []
    for key, spec in data.items():
        if not isinstance(spec, dict):
            raise _space_error(file, key, f"expected a mapping like {{type: float, low: 0.1, high: 1}}, found {spec!r}")
        if str(key).startswith(("data.", "preset")):
            raise _space_error(file, key, "data settings cannot be searched (every trial trains on the same data)")
        kind = spec.get("type")
        unknown = set(spec) - {"type", "low", "high", "log", "step", "choices"}
        if unknown:
            raise _space_error(file, key, f"unknown fields {sorted(unknown)}")
        if kind in ("float", "int"):
            if "low" not in spec or "high" not in spec:
                raise _space_error(file, key, f"type {kind} needs low and high")
            low, high = spec["low"], spec["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low > high:
                raise _space_error(file, key, f"needs numbers low <= high, found low={low!r} high={high!r}")
            log_scale = bool(spec.get("log", False))
            if log_scale and low <= 0:
                raise _space_error(file, key, f"log: true needs low > 0, found {low!r}")
            if log_scale and spec.get("step") is not None:
                raise _space_error(file, key, "log and step cannot be combined")
            specs.append(ParamSpec(str(key), kind, float(low), float(high), log_scale, spec.get("step")))
        elif kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise _space_error(file, key, "type categorical needs a non-empty list of choices")
            bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
            if bad:
                raise _space_error(file, key, f"choices must be numbers, strings, booleans or null, found {bad}")
            specs.append(ParamSpec(str(key), kind, choices=tuple(choices)))
        else:
            raise _space_error(file, key, f"type must be float, int or categorical, found {kind!r}")
    return specs


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"


def check_space(space: Sequence[ParamSpec], config: RunConfig, path: Path) -> None:
    """Every searched setting exists and accepts both ends of its range (fail before trial 0)."""
    from decalign.config import ConfigError, apply_overrides

    for spec in space:
        for value in spec.extremes():
            try:
                apply_overrides(config, [_override(spec.name, value)])
            except ConfigError as err:
                raise _space_error(path, spec.name, f"value {value!r} is not accepted: {err}") from None


# -- storage --------------------------------------------------------------------------------------


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out / STUDY_DB).resolve()}"


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (None for in-memory or other URLs)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Generator[None, None, None]:
    """An exclusive ``flock`` on ``path`` where the OS has one (serialises schema creation of
    workers on one machine); a no-op elsewhere, where the retries alone handle the race."""
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> Any:
    """An Optuna storage for ``url``: ``journal:PATH`` (``journal:///abs/path.log``) is a journal
    file; anything else an RDB URL (SQLite connections wait for locks instead of failing)."""
    import optuna

    # Optuna's defaults (None) leave heartbeats off.
    interval, grace = (heartbeat_s, 2 * heartbeat_s) if heartbeat_s > 0 else (None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if url.startswith("journal:"):
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            path = url[len("journal:"):]
            path = path[2:] if path.startswith("//") else path
            if not path:
                raise ValueError(f"--storage {url!r}: a journal storage needs a file, e.g. journal:///shared/study.log")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(path))
        from optuna.storages import RDBStorage

        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
            db = _sqlite_file(url)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
        else:
            engine_kwargs["pool_pre_ping"] = True  # a server that dropped idle connections is not an error
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=interval, grace_period=grace)


def _retryable(err: BaseException) -> bool:
    """Errors of the schema-creation race (and of a busy database) that a retry resolves."""
    import optuna

    if isinstance(err, optuna.exceptions.StorageInternalError):
        return True
    try:
        import sqlalchemy.exc
    except ImportError:  # pragma: no cover - optuna depends on sqlalchemy
        return False
    return isinstance(err, sqlalchemy.exc.SQLAlchemyError)


def open_study(url: str, study_name: str, direction: Direction | None, *, sampler: Any = None, pruner: Any = None,
               heartbeat_s: int = HEARTBEAT_S, create: bool = True) -> Any:
    """Create or load ``study_name`` in ``url``, surviving concurrent workers doing the same.

    With ``create=False`` the study must exist (reports). A study created for the other direction
    is an error: its values could not be compared.
    """
    import optuna

    last: BaseException | None = None
    for attempt in range(OPEN_ATTEMPTS):
        try:
            db = _sqlite_file(url)
            with _file_lock(db.with_name(db.name + ".lock") if db is not None else None):
                storage = open_storage(url, heartbeat_s)
                if create:
                    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                                sampler=sampler, pruner=pruner, load_if_exists=True)
                else:
                    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
            break
        except KeyError:
            raise ValueError(f"no study {study_name!r} in {url!r}") from None
        except Exception as err:
            if not _retryable(err):
                raise
            last = err
            # jitter: workers that collided must not retry in step
            delay = min(0.1 * 2**attempt, 5.0) * (0.5 + random.random())
            log.debug("opening study %r failed (%s); retrying in %.2fs", study_name, err, delay)
            time.sleep(delay)
    else:
        raise RuntimeError(f"could not open study {study_name!r} in {url!r} after {OPEN_ATTEMPTS} attempts: {last}")
    if direction is not None and study.direction.name.lower() != direction:
        raise ValueError(
            f"study {study_name!r} in {url!r} was created to {study.direction.name.lower()} its objective, "
            f"but this sweep's selection metric must be {direction}d; use another --study"
        )
    return study


# -- trials ---------------------------------------------------------------------------------------


def _objective_value(run_dir: Path, metric: str) -> float:
    """Best-epoch validation ``metric`` of a finished run, averaged over its seeds."""
    from decalign.train.rundir import RunDir

    results = RunDir(run_dir).read_results()
    if metric in results.get("valid_mean", {}):
        return float(results["valid_mean"][metric])
    values = [float(s["valid"][metric]) for s in results["seeds"].values()]
    return sum(values) / len(values)


def pruning_warmup(num_epochs: int) -> int:
    """Steps before the median pruner may stop a trial: half the first seed's epochs (at least
    2). Early validation scores say little about the selected epoch's (the learning rate is still
    warming up, the modality check has not decided), so pruning on them discards good trials."""
    return max(2, num_epochs // 2)


class _PruningReporter:
    """``epoch_callback`` that reports the validation metric to Optuna and prunes.

    Steps are ``seed_index * num_epochs + epoch`` so that several seeds of one trial report on
    distinct steps and every trial reports the same epoch of the same seed on the same step.
    The value reported is the seed's best so far, which is what the trial's result (the metric at
    the selected epoch) will be compared on. Reporting each epoch's raw value instead gives a
    noisy curve a chance to fall below the median at every step: on real data (mosi-dev, 10
    epochs x 2 seeds) that pruned 23 of the 23 trials after the first five.
    """

    def __init__(self, trial: Any, metric: str, num_epochs: int, minimize: bool = True) -> None:
        self.trial, self.metric, self.num_epochs, self.minimize = trial, metric, num_epochs, minimize
        self.seed_index, self.last_epoch = 0, 0
        self.best: float | None = None

    def __call__(self, epoch: int, valid: dict[str, float]) -> None:
        import optuna

        if epoch <= self.last_epoch:
            self.seed_index += 1
            self.best = None
        self.last_epoch = epoch
        value = float(valid[self.metric])
        if not math.isfinite(value):
            return
        if self.best is None or (value < self.best if self.minimize else value > self.best):
            self.best = value
        self.trial.report(self.best, self.seed_index * self.num_epochs + epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} ({self.metric} = {value:.4g})")


@dataclass(frozen=True)
class SweepSettings:
    """How one worker runs its trials (``decalign sweep``'s flags other than the data, the
    configuration and the space)."""

    trials: int = 10
    """Trials this worker runs (several workers add up)."""
    study: str = "decalign"
    storage: str | None = None
    """Optuna storage URL (see the module docstring); ``None``: ``sqlite:///OUT/study.db``."""
    nproc_per_node: int = 1
    """Above 1, each trial runs as ``torchrun --standalone --nproc_per_node N`` (no pruning then)."""
    pruner: Literal["median", "none"] = "median"
    sampler_seed: int | None = None
    """Seed of the TPE sampler (give each worker a different one, or none)."""
    heartbeat_s: int = HEARTBEAT_S
    """Trial heartbeat of RDB storages (0: off)."""
    tensorboard: bool = True
    """TensorBoard files in the trial directories."""

    def __post_init__(self) -> None:
        from decalign.errors import UsageError

        if self.trials < 1:
            raise UsageError(f"sweep: trials must be at least 1, got {self.trials}")
        if self.nproc_per_node < 1:
            raise UsageError(f"sweep: nproc_per_node must be at least 1, got {self.nproc_per_node}")
        if self.pruner not in ("median", "none"):
            raise UsageError(f"sweep: pruner must be 'median' or 'none', got {self.pruner!r}")


@dataclass(frozen=True)
class StudyResult:
    """What a worker leaves: the study it added to and its best completed trial so far (of every
    worker's trials)."""

    study: str
    storage: str
    metric: str
    """The objective: ``train.selection_metric`` on the validation split."""
    best_trial: int | None = None
    """``None`` while no trial of the study has completed."""
    best_value: float | None = None
    best_run_dir: str | None = None


def _torchrun_command(config_file: Path, run_dir: Path, nproc_per_node: int) -> list[str]:
    """``decalign train`` of one trial as a ``torchrun`` job, its settings read from
    ``config_file`` (the trial's whole configuration, data path included)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc_per_node),
            "-m", "decalign", "train", "--config", str(config_file), "--out", str(run_dir), "-q", "--no-tensorboard"]


def _make_objective(config: RunConfig, dataset: MultimodalDataset, out: Path, space: Sequence[ParamSpec],
                    settings: SweepSettings) -> Callable[[Any], float]:
    """One trial: ``config`` with the trial's values (they win over ``config``'s), trained into
    ``out/trials/trial_<n>/``; its value is the run's best-epoch validation selection metric."""
    from decalign.api import train
    from decalign.config import apply_overrides, write_config_file
    from decalign.metrics import metric_mode

    metric = config.train.selection_metric
    num_epochs = config.train.num_epochs

    def objective(trial: Any) -> float:
        params = {spec.name: spec.suggest(trial) for spec in space}
        run_dir = out / "trials" / f"trial_{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("nproc_per_node", settings.nproc_per_node)
        trial_config = apply_overrides(config, [_override(k, v) for k, v in params.items()])
        log.info("trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in params.items()))
        if settings.nproc_per_node > 1:
            run_dir.mkdir(parents=True, exist_ok=True)
            config_file = write_config_file(trial_config, run_dir / "trial_config.json")
            log_path = run_dir / "torchrun.log"
            with open(log_path, "w") as fh:
                rc = subprocess.run(_torchrun_command(config_file, run_dir, settings.nproc_per_node), stdout=fh,
                                    stderr=subprocess.STDOUT, check=False).returncode
            if rc != 0:
                raise RuntimeError(f"trial {trial.number}: torchrun exited with status {rc}; see {log_path}")
        else:
            reporter = None if settings.pruner == "none" else _PruningReporter(
                trial, metric, num_epochs, minimize=metric_mode(metric) == "min")
            train(trial_config, dataset, run_dir, quiet=True, tensorboard=settings.tensorboard,
                  epoch_callback=reporter)
        value = _objective_value(run_dir, metric)
        log.info("trial %d: %s = %.6g  (%s)", trial.number, metric, value, run_dir)
        return value

    return objective


def run_study(
    config: RunConfig,
    dataset: MultimodalDataset,
    space: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    settings: SweepSettings | None = None,
) -> StudyResult:
    """Run ``settings.trials`` trials of a study as one worker: each trains ``config`` with values
    drawn from ``space`` on ``dataset`` into ``out/trials/trial_<n>/``, minimising or maximising
    the validation ``config.train.selection_metric`` (averaged over ``config.train.seeds``).

    ``space`` is a search-space YAML file (``None``: the one shipped for ``config.preset``);
    every searched setting must accept both ends of its range before trial 0 runs. Several
    workers (processes or machines) with the same ``settings.storage`` and ``settings.study``
    share the study. Trials that diverge or fail (``FloatingPointError``, ``RuntimeError``,
    ``ValueError``) are recorded as failed and the worker goes on. Needs the ``sweep`` extra."""
    from decalign._optional import require
    from decalign.metrics import metric_mode

    optuna = require("optuna", extra="sweep", feature="decalign sweep")
    settings = settings or SweepSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    space_path = Path(space) if space is not None else default_space_path(config.preset)
    params = load_space(space_path)
    check_space(params, config, space_path)
    metric = config.train.selection_metric
    direction = "minimize" if metric_mode(metric) == "min" else "maximize"
    warmup = pruning_warmup(config.train.num_epochs)
    pruner = (optuna.pruners.NopPruner() if settings.pruner == "none"
              else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup))
    sampler = optuna.samplers.TPESampler(seed=settings.sampler_seed)
    storage_url = settings.storage or default_storage(out)
    study = open_study(storage_url, settings.study, direction, sampler=sampler, pruner=pruner,
                       heartbeat_s=settings.heartbeat_s)
    for key, value in (("preset", config.preset), ("selection_metric", metric), ("space", str(space_path))):
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    if settings.nproc_per_node > 1 and settings.pruner != "none":
        log.info("trials run under torchrun: pruning is not available (each trial runs to its end)")
    log.info("worker: %d trial(s) of study %r in %s; %s %s on %s", settings.trials, settings.study, storage_url,
             direction, metric, config.preset)
    objective = _make_objective(config, dataset, out, params, settings)
    study.optimize(objective, n_trials=settings.trials, catch=(FloatingPointError, RuntimeError, ValueError))
    result = StudyResult(settings.study, storage_url, metric)
    try:
        best = study.best_trial
    except ValueError:  # no completed trial
        return result
    return dataclasses.replace(result, best_trial=best.number, best_value=best.value,
                               best_run_dir=best.user_attrs.get("run_dir"))


# -- report ---------------------------------------------------------------------------------------


IMPORTANCE_MIN_TRIALS = 10
"""Completed trials below which ``--report`` refuses to draw parameter importances: fANOVA fits a
random forest to (parameters -> value), and from a handful of trials its ranking is noise."""


def _format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


@dataclass(frozen=True)
class SweepReport:
    """What :func:`report_study` found: the lines ``decalign sweep --report`` prints."""

    lines: list[str] = field(default_factory=list)
    importance: Path | None = None
    """``OUT/importance.png`` when it was drawn."""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def report_study(
    out: str | os.PathLike[str],
    *,
    study: str = "decalign",
    storage: str | None = None,
    top: int = 5,
    importance_min_trials: int = IMPORTANCE_MIN_TRIALS,
) -> SweepReport:
    """The best ``top`` trials of ``study`` (in ``storage``, default ``OUT/study.db``) and
    ``OUT/importance.png``, the fANOVA parameter importances, drawn from at least
    ``importance_min_trials`` completed trials (fewer give noise; needs matplotlib)."""
    from decalign._optional import require

    optuna = require("optuna", extra="sweep", feature="decalign sweep")
    out = Path(out)
    if storage is None and not (out / STUDY_DB).exists():
        raise FileNotFoundError(f"no sweep in {str(out)!r} (no {STUDY_DB}); pass the workers' --storage")
    storage_url = storage or default_storage(out)
    found = open_study(storage_url, study, None, heartbeat_s=0, create=False)
    states = optuna.trial.TrialState
    trials = found.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == states.COMPLETE and t.value is not None]
    reverse = found.direction == optuna.study.StudyDirection.MAXIMIZE
    complete.sort(key=lambda t: t.value, reverse=reverse)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in states}
    metric = found.user_attrs.get("selection_metric", "value")
    lines = [f"study {study!r} ({found.direction.name.lower()} {metric}): "
             + ", ".join(f"{n} {k}" for k, n in counts.items() if n)]
    for rank, t in enumerate(complete[:top], start=1):
        lines.append(f"{rank:>3}. trial {t.number:<4} {metric} = {t.value:.6g}   {t.user_attrs.get('run_dir', '')}")
        lines.append(f"       {_format_params(t.params)}")
    if not complete:
        return SweepReport([*lines, "no completed trial yet"])
    if len(complete) < importance_min_trials:
        return SweepReport([*lines, f"importance: not drawn: {len(complete)} completed trial(s); parameter "
                            f"importances from fewer than {importance_min_trials} are noise "
                            "(--importance-min-trials N to draw them anyway)"])
    if len(complete) < 2:
        return SweepReport([*lines, "importance: not drawn: needs at least 2 completed trials"])
    from decalign._optional import available

    if not available("matplotlib"):
        return SweepReport([*lines, "importance: not drawn: matplotlib is not installed (pip install "
                            "'decalign[plots]')"])
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization.matplotlib import plot_param_importances

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning of optuna's matplotlib backend
        try:
            ax = plot_param_importances(found)
        except (RuntimeError, ValueError) as err:  # e.g. no parameter varied
            return SweepReport([*lines, f"importance: not computed ({err})"])
    ax.set_title("", loc="left")  # optuna's own title, which ours would overlap
    legend = ax.get_legend()
    if legend is not None:  # one series ("Objective Value"): the legend says nothing
        legend.remove()
    ax.set_title(f"Hyper-parameter importance (fANOVA) from {len(complete)} completed trials", fontsize=10)
    from matplotlib.figure import Figure

    fig = ax.figure
    if not isinstance(fig, Figure):  # optuna draws on a figure of its own, never a subfigure
        raise RuntimeError("optuna drew the importance plot on a subfigure, which cannot be saved alone")
    fig.set_size_inches(6.8, max(2.0, 0.35 * len(complete[0].params) + 1.2))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "importance.png"
    fig.savefig(path, dpi=200, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return SweepReport([*lines, f"importance: {path}"], path)
