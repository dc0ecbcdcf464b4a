"""The run directory: the one module that knows its layout, reads and writes it, and decides
whether a run in it has the same settings.

::

    config.json          the fully resolved RunConfig (loadable with config_from_dict)
    dataset.json         what was trained on (kind, layout, source, sizes, notes)
    results.json         per seed: best epoch, validation and test metrics; then mean and std
    history.csv          per seed, epoch and split: every loss term and metric
    plots/               figures (decalign.plots.run.plot_run)
    seed_<s>/            model.safetensors (best epoch), state.pt (resume), history.csv,
                         test_predictions.csv, result.json, tensorboard/

:meth:`RunDir.check` (every process) and :meth:`RunDir.create` (the main process) are the one
place where a run is checked and started, inside :meth:`RunDir.opened`, which holds the run's
lock and cleans up a failed start (:mod:`decalign.train.runguard`): whatever must hold for a whole
run (the lock, the data fingerprint, file permissions) belongs there. The API, the command line,
``bench``, ``sweep`` and the plots reach the files through :class:`RunDir`; the engine writes a
seed's files through :class:`SeedFiles`.

A cross-validation (``decalign train --cv K``, :func:`decalign.api.cross_validate`) is a directory
of ordinary runs, one per fold, laid out by :class:`CVDir`::

    config.json          the RunConfig every fold trained with
    dataset.json         the pooled train + valid data (description and fingerprint)
    folds.csv            id, video and fold (1..K) of every pooled clip: the plan, written first
    fold_<k>/            a run directory: test = fold k, valid = fold k+1, train = the rest
    cv.json, cv.csv      written last: per-fold and pooled out-of-fold metrics
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decalign.config import RunConfig

__all__ = ["CVDir", "RunDir", "SeedFiles", "config_diff", "results_payload"]


def config_diff(a: Any, b: Any) -> list[str]:
    """The dotted keys whose values differ between two configs (``RunConfig`` or plain dicts),
    sorted; an entry of a per-modality mapping shows as ``model.conv_kernel.audio``."""
    from decalign.config import config_to_dict

    def plain(c: Any) -> Mapping[str, Any]:
        return c if isinstance(c, Mapping) else config_to_dict(c)

    def walk(x: Mapping[str, Any], y: Mapping[str, Any], prefix: str) -> list[str]:
        keys = []
        for k in sorted(set(x) | set(y)):
            vx, vy = x.get(k), y.get(k)
            if isinstance(vx, Mapping) and isinstance(vy, Mapping):
                keys.extend(walk(vx, vy, f"{prefix}{k}."))
            elif vx != vy:
                keys.append(f"{prefix}{k}")
        return keys

    return walk(plain(a), plain(b), "")


def changed_settings(base: Any, config: Any, skip: tuple[str, ...] = ("data.dataset", "data.path")) -> dict[str, Any]:
    """The settings of ``config`` that differ from ``base`` (each a ``RunConfig`` or plain dict)
    as dotted key -> ``config``'s value, without the ``skip`` keys (by default the data's kind
    and path, which training sets from the data, not as overrides)."""
    from decalign.config import config_to_dict

    values = config if isinstance(config, Mapping) else config_to_dict(config)
    out: dict[str, Any] = {}
    for key in config_diff(base, config):
        if key in skip:
            continue
        node: Any = values
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        out[key] = node
    return out


@dataclass(frozen=True)
class SeedFiles:
    """The files of one seed, ``seed_<s>/``."""

    directory: Path

    @property
    def model(self) -> Path:
        """Best-epoch checkpoint (:func:`decalign.train.checkpoint.save_checkpoint`)."""
        return self.directory / "model.safetensors"

    @property
    def state(self) -> Path:
        """Resumable training state after the last completed epoch."""
        return self.directory / "state.pt"

    @property
    def history(self) -> Path:
        return self.directory / "history.csv"

    @property
    def predictions(self) -> Path:
        """Test predictions of the best epoch."""
        return self.directory / "test_predictions.csv"

    @property
    def result(self) -> Path:
        """Written last: the seed is complete."""
        return self.directory / "result.json"

    @property
    def tensorboard(self) -> Path:
        return self.directory / "tensorboard"


class RunDir:
    """A run directory (layout in the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- layout ---------------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def dataset_file(self) -> Path:
        return self.path / "dataset.json"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    @property
    def history_file(self) -> Path:
        return self.path / "history.csv"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    def seed(self, seed: int) -> SeedFiles:
        return SeedFiles(self.path / f"seed_{seed}")

    def checkpoints(self) -> list[Path]:
        """Every seed's best checkpoint present, sorted by directory name."""
        return sorted(self.path.glob("seed_*/model.safetensors"))

    # -- reading --------------------------------------------------------------------------------

    def holds_run(self) -> bool:
        """Whether a run was started here (its config or results exist)."""
        return self.config_file.exists() or self.results_file.exists()

    def read_config(self) -> RunConfig:
        from decalign.config import RunConfig, config_from_dict
        from decalign.train.runguard import TRAINING_HINT, read_json_file

        return config_from_dict(RunConfig, read_json_file(self.config_file, "configuration", hint=TRAINING_HINT))

    def read_results(self) -> dict[str, Any]:
        return json.loads(self.results_file.read_text())  # type: ignore[no-any-return]

    def completed_seeds(self) -> set[int]:
        """Seeds recorded in ``results.json`` (empty when it is missing or unreadable)."""
        if not self.results_file.exists():
            return set()
        try:
            return {int(s) for s in self.read_results()["seeds"]}
        except (ValueError, KeyError, TypeError):
            return set()

    def read_seed_result(self, seed: int) -> dict[str, Any] | None:
        """A complete seed's result, or ``None`` when the seed did not finish."""
        file = self.seed(seed).result
        return json.loads(file.read_text()) if file.exists() else None

    def read_history(self, seed: int | None = None) -> list[dict[str, Any]]:
        """Rows of the run's (or one seed's) ``history.csv``; empty when it does not exist."""
        from decalign.train.history import read_history

        file = self.history_file if seed is None else self.seed(seed).history
        return read_history(file) if file.exists() else []

    def config_diff(self, config: RunConfig) -> list[str]:
        """Settings in which ``config`` differs from the run saved here."""
        return config_diff(self.read_config(), config)

    # -- opening --------------------------------------------------------------------------------

    @contextmanager
    def opened(self, *, resume: bool, overwrite: bool = False,
               inputs: Mapping[str, str | os.PathLike[str] | None] | None = None) -> Generator[RunDir, None, None]:
        """Hold the run's lock while the body runs (main process): a second run here is refused,
        ``overwrite`` first removes an existing run, and a start that fails before any epoch was
        saved leaves nothing behind (:func:`decalign.train.runguard.opened_run`)."""
        from decalign.train.runguard import opened_run

        with opened_run(self.path, resume=resume, overwrite=overwrite, inputs=inputs):
            yield self

    def check(self, config: RunConfig, resume: bool, fingerprint: Mapping[str, Any] | None = None) -> None:
        """Refuse to start ``config`` here: resuming needs a saved run with the same settings (and,
        given the data's ``fingerprint``, the same data); a fresh start needs a directory without
        a run."""
        from decalign.config import ConfigError

        if resume:
            if not self.config_file.exists():
                raise FileNotFoundError(f"--resume: {str(self.path)!r} holds no run to resume (no config.json)")
            diff = self.config_diff(config)
            if diff:
                raise ConfigError(
                    f"--resume: the configuration differs from the saved run in {str(self.config_file)!r}: {diff}"
                )
            if fingerprint is not None:
                from decalign.train.runguard import check_fingerprint

                check_fingerprint(self.dataset_file, fingerprint)
        elif self.holds_run():
            raise FileExistsError(
                f"{str(self.path)!r} already holds a run; pass --resume to continue it, --overwrite to replace "
                "it, or choose another --out"
            )

    def create(self, config: RunConfig, dataset_description: Mapping[str, Any],
               fingerprint: Mapping[str, Any] | None = None) -> None:
        """Create the directory (main process) and write ``config.json`` and ``dataset.json``
        (with the data's ``fingerprint``, which ``--resume`` compares)."""
        from decalign.config import config_to_dict
        from decalign.train.atomic import write_json

        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_file, config_to_dict(config))
        description = dict(dataset_description)
        if fingerprint is not None:
            description["fingerprint"] = dict(fingerprint)
        write_json(self.dataset_file, description)

    # -- writing --------------------------------------------------------------------------------

    def write_seed_result(self, seed: int, result: Mapping[str, Any]) -> Path:
        from decalign.train.atomic import write_json

        return write_json(self.seed(seed).result, dict(result))

    def write_results(self, payload: Mapping[str, Any]) -> Path:
        from decalign.train.atomic import write_json

        return write_json(self.results_file, dict(payload))

    def write_history(self, rows: list[dict[str, Any]]) -> Path:
        from decalign.train.history import write_history

        return write_history(self.history_file, rows)


def results_payload(config: RunConfig, dataset: Any, seeds: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The content of ``results.json``: every seed, then mean and sample std of the test metrics
    (and of the best-epoch validation metrics)."""
    from decalign.metrics.display import aggregate

    per_seed = [seeds[s]["test"] for s in sorted(seeds)]
    agg = aggregate(per_seed)
    valid = aggregate([seeds[s]["valid"] for s in sorted(seeds)]) if all(seeds[s]["valid"] for s in seeds) else None
    return {
        "preset": config.preset,
        "dataset": {"kind": dataset.kind, "layout": dataset.layout, "source": dataset.source},
        "selection_metric": config.train.selection_metric,
        "seeds": {str(s): seeds[s] for s in sorted(seeds)},
        "mean": agg["mean"],
        "std": agg["std"],
        "std_kind": "sample standard deviation (ddof=1); 0 for a single seed",
        "std_population": aggregate(per_seed, std="population")["std"],
        "valid_mean": valid["mean"] if valid else {},
    }


class CVDir:
    """A cross-validation directory (layout in the module docstring): its own ``config.json`` and
    ``dataset.json`` in the run layout, the plan, one :class:`RunDir` per fold and the summary."""

    FOLDS_FILE = "folds.csv"
    SUMMARY_FILE = "cv.json"
    TABLE_FILE = "cv.csv"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.run = RunDir(path)
        """The directory's own ``config.json`` and ``dataset.json`` (the run layout's)."""

    def __repr__(self) -> str:
        return f"CVDir({str(self.path)!r})"

    @property
    def folds_file(self) -> Path:
        return self.path / self.FOLDS_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / self.SUMMARY_FILE

    @property
    def table_file(self) -> Path:
        return self.path / self.TABLE_FILE

    def fold(self, k: int) -> RunDir:
        """The run of fold ``k`` (numbered from 1)."""
        return RunDir(self.path / f"fold_{k}")

    def holds_cv(self) -> bool:
        """Whether a cross-validation was started here (its plan exists)."""
        return self.folds_file.exists()

    @staticmethod
    def plan_text(rows: list[tuple[str, str, int]]) -> str:
        """``folds.csv`` for ``(id, video, fold)`` rows (cells escaped like every CSV decalign writes)."""
        import io

        from decalign.safety.cells import csv_writer

        buf = io.StringIO()
        writer = csv_writer(buf, lineterminator="\n")
        writer.writerow(["id", "video", "fold"])
        writer.writerows(rows)
        return buf.getvalue()

    @contextmanager
    def opened(self, *, resume: bool, overwrite: bool = False,
               inputs: Mapping[str, str | os.PathLike[str] | None] | None = None) -> Generator[CVDir, None, None]:
        """Hold the directory's lock while the body runs: a second cross-validation here is refused;
        ``overwrite`` first empties a directory that holds a run or a cross-validation; a start that
        fails before any fold saved an epoch leaves nothing behind. The folds' own runs take their
        own locks (:meth:`RunDir.opened`)."""
        import contextlib
        import shutil

        from decalign.errors import RunDirError, file_error
        from decalign.safety.outputs import check_not_input
        from decalign.train.runguard import LOCK_NAME, RunLock

        if resume and overwrite:
            raise RunDirError("--resume and --overwrite contradict each other: choose one")
        check_not_input(self.path, inputs or {}, "--out")
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--out {str(self.path)!r} is a file, not a directory")
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise file_error(err, self.path, "create the cross-validation directory") from None

        def clear(keep: set[str]) -> None:
            for child in list(self.path.iterdir()):
                if child.name == LOCK_NAME or child.name in keep:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

        try:
            with RunLock(self.path):
                if overwrite and (self.holds_cv() or self.run.holds_run()):
                    clear(set())
                before = {p.name for p in self.path.iterdir()}
                try:
                    yield self
                except BaseException:
                    progress = any(self.path.glob("fold_*/seed_*/state.pt")) or any(
                        self.path.glob("fold_*/seed_*/result.json"))
                    if not resume and not progress:
                        clear(set() if created else before)
                    raise
        finally:
            if created and self.path.is_dir() and all(c.name == LOCK_NAME for c in self.path.iterdir()):
                (self.path / LOCK_NAME).unlink(missing_ok=True)  # nothing was written: no trace of the attempt
                with contextlib.suppress(OSError):
                    self.path.rmdir()

    def check(self, config: RunConfig, resume: bool, fingerprint: Mapping[str, Any], plan: str) -> None:
        """Refuse to start: resuming needs a cross-validation here with the same settings, data
        and folds (``plan``: :meth:`plan_text`); a fresh start needs a directory without a run."""
        from decalign.errors import RunDirError

        if not resume:
            if self.holds_cv() or self.run.holds_run():
                what = "a cross-validation" if self.holds_cv() else "a run"
                raise RunDirError(f"{str(self.path)!r} already holds {what}; pass --resume to continue it, "
                                  "--overwrite to replace it, or choose another --out")
            return
        if not self.holds_cv():
            raise RunDirError(f"--resume: {str(self.path)!r} holds no cross-validation to resume (no "
                              f"{self.FOLDS_FILE})")
        self.run.check(config, resume=True, fingerprint=fingerprint)
        if self.folds_file.read_text(encoding="utf-8") != plan:
            raise RunDirError(f"--resume: the folds differ from those in {str(self.folds_file)!r} (another number "
                              "of folds, or other clips); pass the same --cv and --data, or start a new run")

    def create(self, config: RunConfig, dataset_description: Mapping[str, Any], fingerprint: Mapping[str, Any],
               plan: str) -> None:
        """Write ``config.json``, ``dataset.json`` and the plan (``folds.csv``)."""
        from decalign.train.atomic import write_text

        self.run.create(config, dataset_description, fingerprint)
        write_text(self.folds_file, plan)
