"""How many CPU threads a run uses (``train.num_threads``, 0: automatic), and why.

torch's default is every physical core of the machine. On a machine shared with other work that
oversubscribes the cores: the README's first command took 15 minutes with two threads on two
busy cores and 2.5 minutes with one. The automatic choice therefore counts the cores this process
may use (its affinity mask, capped by a cgroup CPU quota) and subtracts the load already on them
when the run starts, and the run says so in its first line::

    2 cores, load 3.9: 1 thread; set train.num_threads to choose

The load is the larger of two readings, so that a fresh burst and a long queue both count:
how busy this process's cores were over a short interval (``/proc/stat``, Linux) and the
one-minute load average (:func:`os.getloadavg`) scaled to this process's share of the machine's
cores. Standard library only.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ThreadChoice", "available_cores", "choose_threads", "cpu_threads", "measure_load"]

SAMPLE_SECONDS = 0.25
"""How long :func:`measure_load` watches the cores (once per run)."""


def available_cores() -> int:
    """The CPU cores this process may use: its affinity mask (``taskset``, a batch scheduler's
    allocation), capped by a cgroup v2 CPU quota (``docker --cpus``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity API
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(float(quota) / float(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]] | None:
    """(busy, total) jiffies of each CPU in ``cpus`` from ``/proc/stat``; ``None`` off Linux."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    out: dict[int, tuple[int, int]] = {}
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in rest.split()[:8]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        out[int(name[3:])] = (sum(values) - idle, sum(values))
    return out or None


def measure_load(cores: int, seconds: float = SAMPLE_SECONDS) -> float | None:
    """The load on this process's cores, in cores (0: idle, ``cores``: all busy, more: a queue).

    The larger of the busy fraction of the affinity CPUs over ``seconds`` times ``cores``, and the
    one-minute load average times ``cores`` / the machine's cores. ``None`` where neither can be
    read."""
    readings: list[float] = []
    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = set(range(os.cpu_count() or 1))
    before = _cpu_times(cpus)
    if before is not None and seconds > 0:
        time.sleep(seconds)
        after = _cpu_times(cpus) or {}
        fractions = [(after[c][0] - b[0]) / (after[c][1] - b[1]) for c, b in before.items()
                     if c in after and after[c][1] > b[1]]
        if fractions:
            readings.append(cores * sum(fractions) / len(fractions))
    with contextlib.suppress(AttributeError, OSError):  # no load average on Windows
        readings.append(os.getloadavg()[0] * cores / max(cores, os.cpu_count() or cores))
    return max(readings) if readings else None


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count a run uses and what decided it (``results.json`` ``run_info.threads``)."""

    threads: int
    source: str
    """``train.num_threads``, ``OMP_NUM_THREADS`` or ``automatic``."""
    cores: int
    load: float | None = None
    """The load on those cores at start (automatic only; ``None``: not readable)."""

    def line(self) -> str:
        """The run's first line, e.g. ``2 cores, load 3.9: 1 thread; set train.num_threads to choose``."""
        n = f"{self.threads} thread{'' if self.threads == 1 else 's'}"
        if self.source == "train.num_threads":
            return f"{self.cores} cores: {n} (train.num_threads)"
        if self.source == "OMP_NUM_THREADS":
            return f"{self.cores} cores, OMP_NUM_THREADS={self.threads}: {n}; set train.num_threads to choose"
        load = "" if self.load is None else f", load {self.load:.1f}"
        return f"{self.cores} core{'' if self.cores == 1 else 's'}{load}: {n}; set train.num_threads to choose"

    def to_json(self) -> dict[str, Any]:
        return {"threads": self.threads, "source": self.source, "cores": self.cores,
                "load": None if self.load is None else round(self.load, 2), "line": self.line()}


def choose_threads(requested: int, *, cores: int | None = None, load: float | None = None,
                   measure: Callable[[int], float | None] | None = None) -> ThreadChoice:
    """torch's intra-op thread count for ``train.num_threads`` = ``requested`` (0: automatic).

    Automatic is ``OMP_NUM_THREADS`` when set (torchrun sets it to 1 per process), else the cores
    this process may use less the load on them, rounded, at least 1: 2 cores with load 3.9 -> 1,
    with load 0.3 -> 2. ``cores`` and ``load`` (or ``measure(cores)``) replace the readings
    (tests, and callers that measured already)."""
    cores = cores or available_cores()
    if requested:
        return ThreadChoice(requested, "train.num_threads", cores)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), "OMP_NUM_THREADS", cores)
    if load is None:
        load = (measure or measure_load)(cores)
    free = cores if load is None else math.floor(cores - load + 0.5)
    return ThreadChoice(max(1, min(cores, free)), "automatic", cores, load)


def cpu_threads(requested: int, load: float | None = None) -> tuple[int, str]:
    """``(threads, the sentence saying why)`` of :func:`choose_threads`."""
    choice = choose_threads(requested, load=load)
    return choice.threads, choice.line()
