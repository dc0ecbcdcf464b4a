"""The runs a server shows: found under one root folder, named by their path relative to it.

A request names a run (``GET /api/runs/{name}``, ``"run"`` in a predict body). The name is
checked as text first (no ``..``, no absolute path, no backslash or control character, a bounded
length and depth) and then as a path: the resolved directory (symlinks followed) must still be
under the resolved root. A symlink inside the root that points outside it is refused like
``..``: the server shows only what the user put under ``--runs``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decalign.errors import DecalignError, RunDirError
from decalign.train.runguard import read_json_file

__all__ = ["MAX_DEPTH", "RunIndex", "RunNotFound", "RunSummary", "UnsafeName"]

MAX_DEPTH = 4
"""How deep under the root runs are looked for (``runs/<group>/<run>`` and a little more)."""
MAX_RUNS = 500
"""At most this many runs are listed (a root with more is probably not a folder of runs)."""
_NAME = re.compile(r"^[A-Za-z0-9_.+=@-]+(/[A-Za-z0-9_.+=@-]+)*$")
MAX_JSON_FILE = 16 * 2**20
"""A run's JSON files (results, drop-each tables) larger than this are not read."""


class UnsafeName(DecalignError):
    """A run name or path from a request that could leave the root (``..``, absolute, a symlink out)."""


class RunNotFound(DecalignError):
    """No run of that name under the root."""


@dataclass(frozen=True)
class RunSummary:
    """What the runs list shows of one run."""

    name: str
    path: Path
    dataset: str
    preset: str
    seeds: list[int]
    metrics: dict[str, float]
    std: dict[str, float]
    task: str
    has_media: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.dataset, "preset": self.preset, "seeds": self.seeds,
                "metrics": self.metrics, "std": self.std, "task": self.task, "media": self.has_media}


def read_json(path: Path) -> Any:
    """A run's JSON file through :func:`decalign.train.runguard.read_json_file`, bounded by
    ``MAX_JSON_FILE`` and named by its file name only; a missing, oversized or broken file is a
    RunNotFound (the run is incomplete, not the request wrong)."""
    try:
        return read_json_file(path, "file", MAX_JSON_FILE, shown=path.name)
    except RunDirError as err:
        raise RunNotFound(str(err)) from None


def _metrics(values: Any) -> dict[str, float]:
    """The metrics of a results.json mean/std (the loss terms it also averages left out)."""
    from decalign.model.output import LOG_KEYS

    if not isinstance(values, dict):
        return {}
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and k not in LOG_KEYS}


class RunIndex:
    """The run directories under ``root`` (a folder with ``config.json`` and ``results.json``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root)
        if not path.is_dir():
            raise DecalignError(f"--runs {os.fspath(root)}: not a directory")
        self.root = path.resolve()

    def check_name(self, name: str) -> str:
        """``name`` as a clean relative run name, or :class:`UnsafeName`."""
        if not isinstance(name, str) or not name or len(name) > 300:
            raise UnsafeName("run name: empty or longer than 300 characters")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise UnsafeName(f"run name {name[:80]!r}: an absolute path; give the name relative to --runs")
        parts = name.split("/")
        if ".." in parts or "." in parts or "\\" in name:
            raise UnsafeName(f"run name {name[:80]!r}: '..', '.' or a backslash; give the name relative to --runs")
        if not _NAME.match(name):
            raise UnsafeName(f"run name {name[:80]!r}: only letters, digits, '_.+=@-' and '/' between parts")
        if len(parts) > MAX_DEPTH:
            raise UnsafeName(f"run name {name[:80]!r}: deeper than {MAX_DEPTH} folders")
        return name

    def path_of(self, name: str) -> Path:
        """The directory of run ``name``, resolved and checked to be a run under the root."""
        name = self.check_name(name)
        candidate = self.root / name
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.root):
            raise UnsafeName(f"run {name!r}: leads outside --runs (a symbolic link out)")
        if not (resolved / "config.json").is_file() or not (resolved / "results.json").is_file():
            raise RunNotFound(f"no run {name!r} under --runs (a run has config.json and results.json)")
        return resolved

    def inside(self, run_path: Path, relative: str) -> Path:
        """A file of a run (``seed_1/model.safetensors``), checked to stay under the root."""
        target = (run_path / relative).resolve()
        if not target.is_relative_to(self.root):
            raise UnsafeName(f"{relative!r}: leads outside --runs (a symbolic link out)")
        return target

    def names(self) -> list[str]:
        """Every run under the root, sorted; symbolic links that leave the root are skipped."""
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            here = Path(dirpath)
            depth = len(here.relative_to(self.root).parts)
            if "config.json" in filenames and "results.json" in filenames and depth > 0:
                name = here.relative_to(self.root).as_posix()
                try:
                    self.path_of(name)
                except DecalignError:
                    pass
                else:
                    found.append(name)
                dirnames[:] = []  # a run's own folders (seed_1, plots) hold no runs
                continue
            if depth >= MAX_DEPTH or len(found) >= MAX_RUNS:
                dirnames[:] = []
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        return sorted(found)[:MAX_RUNS]

    def summary(self, name: str) -> RunSummary:
        path = self.path_of(name)
        results = read_json(path / "results.json")
        config = read_json(path / "config.json")
        seeds = sorted(int(s) for s in results.get("seeds", {}))
        dataset = results.get("dataset", {}) or {}
        described: dict[str, Any] = {}
        if (path / "dataset.json").is_file():
            try:
                loaded = read_json(path / "dataset.json")
                described = loaded if isinstance(loaded, dict) else {}
            except RunNotFound:
                described = {}
        has_media = bool(described.get("extraction"))
        task = str(described.get("task") or "regression")
        return RunSummary(
            name=name,
            path=path,
            dataset=str(dataset.get("kind", config.get("data", {}).get("dataset", "?"))),
            preset=str(results.get("preset", config.get("preset", "?"))),
            seeds=seeds,
            metrics=_metrics(results.get("mean", {})),
            std=_metrics(results.get("std", {})),
            task=task,
            has_media=has_media,
        )

    def summaries(self) -> list[RunSummary]:
        out = []
        for name in self.names():
            try:
                out.append(self.summary(name))
            except DecalignError:
                continue
        return out
