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

Nothing heavy is imported at module level: ``decalign --help`` must stay fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decalign.cli_common import add_data_flags, add_run_flags, add_set_flag, add_verbosity_flags

__all__ = [
    "ParamSpec",
    "add_parser",
    "default_space_path",
    "load_space",
    "open_storage",
    "open_study",
    "pruning_warmup",
    "run",
]

log = logging.getLogger("decalign")

STUDY_DB = "study.db"
SQLITE_TIMEOUT_S = 120
"""How long a SQLite connection waits for another worker's lock before failing."""
OPEN_ATTEMPTS = 20
HEARTBEAT_S = 60
"""A trial whose worker stopped sending heartbeats for two intervals is marked failed."""


# -- search space ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One searched setting: ``float``/``int`` in ``[low, high]`` (optionally log-scaled or
    stepped) or ``categorical`` among ``choices``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log,  # type: ignore[arg-type]
                                     step=int(self.step or 1))
        return trial.suggest_categorical(self.name, list(self.choices))

    def extremes(self) -> list[Any]:
        """Values to check against the configuration before any trial runs."""
        if self.kind == "categorical":
            return list(self.choices)
        cast = int if self.kind == "int" else float
        return [cast(self.low), cast(self.high)]


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


def check_space(space: Sequence[ParamSpec], config: Any, path: Path) -> None:
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
def _file_lock(path: Path | None) -> Iterator[None]:
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

    heartbeat = {"heartbeat_interval": heartbeat_s, "grace_period": 2 * heartbeat_s} if heartbeat_s > 0 else {}
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
        return RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)


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


def open_study(url: str, study_name: str, direction: str | None, *, sampler: Any = None, pruner: Any = None,
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


def _torchrun_command(args: argparse.Namespace, run_dir: Path, overrides: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(args.nproc_per_node), "-m", "decalign", "train", "--out", str(run_dir), "-q", "--no-tensorboard"]
    if args.data:
        cmd += ["--data", str(args.data)]
    if args.dataset:
        cmd += ["--dataset", args.dataset]
    if args.preset:
        cmd += ["--preset", args.preset]
    return [*cmd, "--set", *overrides]


def _make_objective(args: argparse.Namespace, out: Path, dataset: Any, fixed: list[str],
                    space: list[ParamSpec], metric: str, num_epochs: int) -> Callable[[Any], float]:
    from decalign.api import resolve_config, train
    from decalign.metrics import metric_mode

    def objective(trial: Any) -> float:
        params = {spec.name: spec.suggest(trial) for spec in space}
        run_dir = out / "trials" / f"trial_{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("nproc_per_node", args.nproc_per_node)
        overrides = [*fixed, *(_override(k, v) for k, v in params.items())]  # the trial's values win
        log.info("trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in params.items()))
        if args.nproc_per_node > 1:
            run_dir.mkdir(parents=True, exist_ok=True)
            log_path = run_dir / "torchrun.log"
            with open(log_path, "w") as fh:
                rc = subprocess.run(_torchrun_command(args, run_dir, overrides), stdout=fh,
                                    stderr=subprocess.STDOUT, check=False).returncode
            if rc != 0:
                raise RuntimeError(f"trial {trial.number}: torchrun exited with status {rc}; see {log_path}")
        else:
            config = resolve_config(dataset, args.preset, overrides, path=args.data)
            reporter = None if args.pruner == "none" else _PruningReporter(
                trial, metric, num_epochs, minimize=metric_mode(metric) == "min")
            train(config, dataset, run_dir, quiet=True, tensorboard=not args.no_tensorboard, epoch_callback=reporter)
        value = _objective_value(run_dir, metric)
        log.info("trial %d: %s = %.6g  (%s)", trial.number, metric, value, run_dir)
        return value

    return objective


def _fixed_overrides(args: argparse.Namespace, preset_seeds: Sequence[int]) -> list[str]:
    fixed = list(args.overrides)
    seeds = args.seeds or [preset_seeds[0]]
    fixed.append(f"train.seeds={json.dumps(list(seeds))}")
    if args.epochs:
        fixed.append(f"train.num_epochs={args.epochs}")
    if args.device:
        fixed.append(f"train.device={args.device}")
    return fixed


def run_worker(args: argparse.Namespace) -> int:
    """Run ``args.trials`` trials of the study as one worker."""
    import optuna

    from decalign.api import resolve_config
    from decalign.cli_common import load_and_resolve
    from decalign.metrics import metric_mode

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset, base = load_and_resolve(args, args.overrides)
    fixed = _fixed_overrides(args, base.train.seeds)
    config = resolve_config(dataset, args.preset, fixed, path=args.data)
    space_path = Path(args.space) if args.space else default_space_path(config.preset)
    space = load_space(space_path)
    check_space(space, config, space_path)
    clash = sorted({spec.name for spec in space} & {o.split("=", 1)[0] for o in args.overrides})
    if clash:
        log.warning("--set %s is searched by the space; the trial's values win", ", ".join(clash))
    metric = config.train.selection_metric
    direction = "minimize" if metric_mode(metric) == "min" else "maximize"
    warmup = pruning_warmup(config.train.num_epochs)
    pruner = (optuna.pruners.NopPruner() if args.pruner == "none"
              else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup))
    sampler = optuna.samplers.TPESampler(seed=args.sampler_seed)
    storage_url = args.storage or default_storage(out)
    study = open_study(storage_url, args.study, direction, sampler=sampler, pruner=pruner,
                       heartbeat_s=args.heartbeat)
    for key, value in (("preset", config.preset), ("selection_metric", metric), ("space", str(space_path))):
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    if args.nproc_per_node > 1 and args.pruner != "none":
        log.info("trials run under torchrun: pruning is not available (each trial runs to its end)")
    log.info("worker: %d trial(s) of study %r in %s; %s %s on %s", args.trials, args.study, storage_url,
             direction, metric, config.preset)
    objective = _make_objective(args, out, dataset, fixed, space, metric, config.train.num_epochs)
    study.optimize(objective, n_trials=args.trials, catch=(FloatingPointError, RuntimeError, ValueError))
    try:
        best = study.best_trial
        print(f"best so far: trial {best.number}, {metric} = {best.value:.6g}, run {best.user_attrs.get('run_dir')}")
    except ValueError:
        print("no trial of the study has completed yet")
    return 0


# -- report ---------------------------------------------------------------------------------------


IMPORTANCE_MIN_TRIALS = 10
"""Completed trials below which ``--report`` refuses to draw parameter importances: fANOVA fits a
random forest to (parameters -> value), and from a handful of trials its ranking is noise."""


def _format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def report(args: argparse.Namespace) -> int:
    """Print the best trials and write ``importance.png`` (fANOVA parameter importances)."""
    import optuna

    out = Path(args.out)
    if args.storage is None and not (out / STUDY_DB).exists():
        raise FileNotFoundError(f"no sweep in {str(out)!r} (no {STUDY_DB}); pass the workers' --storage")
    storage_url = args.storage or default_storage(out)
    study = open_study(storage_url, args.study, None, heartbeat_s=0, create=False)
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == states.COMPLETE and t.value is not None]
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete.sort(key=lambda t: t.value, reverse=reverse)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in states}
    metric = study.user_attrs.get("selection_metric", "value")
    print(f"study {args.study!r} ({study.direction.name.lower()} {metric}): "
          + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    for rank, t in enumerate(complete[: args.top], start=1):
        print(f"{rank:>3}. trial {t.number:<4} {metric} = {t.value:.6g}   {t.user_attrs.get('run_dir', '')}")
        print(f"       {_format_params(t.params)}")
    if not complete:
        print("no completed trial yet")
        return 0
    if len(complete) < args.importance_min_trials:
        print(f"importance: not drawn: {len(complete)} completed trial(s); parameter importances from fewer than "
              f"{args.importance_min_trials} are noise (--importance-min-trials N to draw them anyway)")
        return 0
    if len(complete) < 2:
        print("importance: not drawn: needs at least 2 completed trials")
        return 0
    from decalign._optional import available

    if not available("matplotlib"):
        print("importance: not drawn: matplotlib is not installed (pip install 'decalign[plots]')")
        return 0
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization.matplotlib import plot_param_importances

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning of optuna's matplotlib backend
        try:
            ax = plot_param_importances(study)
        except (RuntimeError, ValueError) as err:  # e.g. no parameter varied
            print(f"importance: not computed ({err})")
            return 0
    ax.set_title("", loc="left")  # optuna's own title, which ours would overlap
    if ax.get_legend() is not None:  # one series ("Objective Value"): the legend says nothing
        ax.get_legend().remove()
    ax.set_title(f"Hyper-parameter importance (fANOVA) from {len(complete)} completed trials", fontsize=10)
    ax.figure.set_size_inches(6.8, max(2.0, 0.35 * len(complete[0].params) + 1.2))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "importance.png"
    ax.figure.savefig(path, dpi=200, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
    print(f"importance: {path}")
    return 0


# -- command line ---------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep", help="hyper-parameter search on Optuna (start several workers to share one study)",
        description="Run trials of an Optuna study: each trial trains with the preset plus the trial's values "
        "into OUT/trials/trial_<n>/ and returns the best-epoch validation selection metric. Several "
        "`decalign sweep` commands with the same --storage and --study are workers of one study. "
        "With --report, print the best trials and write OUT/importance.png.",
    )
    add_data_flags(p, data_help="data file (default: the built-in synthetic dataset)",
                   dataset_help="force the dataset kind (default: detected)")
    p.add_argument("--preset", help="preset the trials start from (default: the dataset's own)")
    p.add_argument("--space", metavar="YAML", help="search space (default: the one shipped for the preset)")
    p.add_argument("--trials", type=int, default=10, metavar="N",
                   help="trials THIS worker runs (several workers add up; default 10)")
    add_run_flags(p, seeds_help="seeds of every trial; the value is their mean (default: the preset's first seed)",
                  epochs_help="maximum epochs per trial (train.num_epochs)")
    add_set_flag(p, help="fixed settings for every trial (a searched key takes the trial's value)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage: sqlite:///FILE (default OUT/study.db), "
                   "journal:///PATH.log, or an RDB URL such as postgresql://user:pass@host/db")
    p.add_argument("--study", default="decalign", metavar="NAME", help="study name (default: decalign)")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="sweep directory: trials/trial_<n>/, study.db, importance.png"
    )
    p.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                   help="run each trial as `torchrun --standalone --nproc_per_node N` (no pruning then)")
    p.add_argument("--pruner", choices=["median", "none"], default="median",
                   help="prune trials whose validation metric falls below the median of earlier trials "
                   "at the same epoch (after 5 trials and 2 epochs)")
    p.add_argument("--sampler-seed", type=int, default=None, metavar="S",
                   help="seed of the TPE sampler (give each worker a different one, or none)")
    p.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, metavar="SECONDS",
                   help="trial heartbeat of RDB storages: a trial of a dead worker is marked failed after twice "
                   "this (0: off; the journal storage has none)")
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard files in the trial directories")
    p.add_argument("--report", action="store_true", help="print the best trials and write OUT/importance.png")
    p.add_argument("--top", type=int, default=5, metavar="K", help="trials --report lists (default 5)")
    p.add_argument("--importance-min-trials", type=int, default=IMPORTANCE_MIN_TRIALS, metavar="N",
                   help="--report draws importance.png only from at least N completed trials "
                   f"(default {IMPORTANCE_MIN_TRIALS}: fewer give noise)")
    add_verbosity_flags(p)


def run(args: argparse.Namespace) -> int:
    from decalign._optional import require

    optuna = require("optuna", extra="sweep", feature="decalign sweep")

    optuna.logging.set_verbosity(optuna.logging.DEBUG if args.verbose else optuna.logging.WARNING)
    if args.report:
        return report(args)
    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    if args.nproc_per_node < 1:
        raise ValueError(f"--nproc-per-node must be at least 1, got {args.nproc_per_node}")
    return run_worker(args)
