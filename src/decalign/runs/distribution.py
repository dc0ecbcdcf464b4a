"""How a setting behaves over many seeds: the median, the worst seed and the modality check.

A recipe is judged by its worst seed, not its mean: a setting that collapses to a constant
predictor on one seed in three has a fine-looking mean over two lucky seeds. This module reads
the seeds of one or more run directories (a label may pool several directories, e.g. seeds
1111-1115 and 1116-1120 trained side by side: each seed's run depends only on its seed) and
reports, per split and metric, the median over seeds, the worst seed (lowest accuracy or
correlation, highest error) and the best, from the metrics training wrote to ``results.json``
(test: the selected epoch's test metrics; valid: its validation metrics), and how often the
modality check (``train.modality_check``) left each modality out, took one back or restarted a
seed.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from decalign.errors import RunDirError, UsageError

__all__ = ["DEFAULT_METRICS", "Distribution", "SeedSpread", "parse_groups", "seed_distribution"]

DEFAULT_METRICS = ("acc2_non0", "corr", "mae")
"""The sentiment benchmarks' headline metrics: binary accuracy without neutral labels, Pearson's r
and the mean absolute error."""


@dataclass(frozen=True)
class SeedSpread:
    """One metric of one split over a label's seeds."""

    label: str
    split: str
    metric: str
    seeds: int
    median: float
    worst: float
    worst_seed: int
    best: float


@dataclass(frozen=True)
class Distribution:
    spreads: tuple[SeedSpread, ...]
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """label -> ``{"seeds", "left_out": {modality: count}, "take_back", "restart"}`` (labels whose runs
    used the modality check)."""

    def rows(self) -> list[list[Any]]:
        out: list[list[Any]] = [["label", "split", "metric", "seeds", "median", "worst", "worst_seed", "best"]]
        out += [[s.label, s.split, s.metric, s.seeds, s.median, s.worst, s.worst_seed, s.best] for s in self.spreads]
        return out

    def to_markdown(self) -> str:
        """One table: a row per label and split, ``median / worst (seed) / best`` per metric, then
        the check's decisions."""
        from decalign.metrics.display import format_value

        metrics = list(dict.fromkeys(s.metric for s in self.spreads))
        head = ["run", "split", "seeds", *(f"{m}: median / worst (seed) / best" for m in metrics)]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        keys = list(dict.fromkeys((s.label, s.split) for s in self.spreads))
        for label, split in keys:
            cells = {s.metric: s for s in self.spreads if (s.label, s.split) == (label, split)}
            n = max(s.seeds for s in cells.values())
            shown = [f"{format_value(m, cells[m].median)} / {format_value(m, cells[m].worst)} "
                     f"({cells[m].worst_seed}) / {format_value(m, cells[m].best)}" if m in cells else ""
                     for m in metrics]
            lines.append("| " + " | ".join([label, split, str(n), *shown]) + " |")
        if self.checks:
            lines += ["", "| run | seeds | modality check: left out (seeds) | taken back | restarts |",
                      "|---|---|---|---|---|"]
            for label, c in self.checks.items():
                left = ", ".join(f"{m} {k}/{c['seeds']}" for m, k in sorted(c["left_out"].items())) or "none"
                lines.append(f"| {label} | {c['seeds']} | {left} | {c['take_back']} | {c['restart']} |")
        return "\n".join(lines) + "\n"


def parse_groups(specs: Sequence[str]) -> dict[str, list[Path]]:
    """``[LABEL=]DIR[,DIR...]`` -> label -> directories (label default: the first directory's name).
    The label is what precedes the last ``=`` (a label may hold ``=``)."""
    groups: dict[str, list[Path]] = {}
    for spec in specs:
        label, sep, dirs = spec.rpartition("=")
        paths = [Path(d) for d in dirs.split(",") if d]
        if not paths:
            raise UsageError(f"{spec!r}: name a run directory ([LABEL=]DIR[,DIR...])")
        name = label if sep else paths[0].resolve().name
        if name in groups:
            raise UsageError(f"the label {name!r} is given twice")
        groups[name] = paths
    return groups


def seed_distribution(groups: Mapping[str, Sequence[str | os.PathLike[str]]],
                      metrics: Sequence[str] | None = None,
                      splits: Sequence[str] = ("test", "valid")) -> Distribution:
    """The spread over seeds of ``metrics`` on ``splits`` for each label's pooled run directories
    (default :data:`DEFAULT_METRICS`, those the runs have; a metric named here that no run has
    is an error).

    Raises:
        RunDirError: a directory that is not a finished run, or the same seed in two directories
            of one label.
    """
    from decalign.metrics import metric_mode
    from decalign.runs.reader import read_run

    spreads: list[SeedSpread] = []
    checks: dict[str, dict[str, Any]] = {}
    known: set[str] = set()
    asked = metrics is not None
    metrics = DEFAULT_METRICS if metrics is None else tuple(metrics)
    for label, dirs in groups.items():
        seeds: dict[int, Any] = {}
        decisions: dict[int, list[Mapping[str, Any]]] = {}
        for d in dirs:
            record = read_run(d, "test")
            for s in record.seeds:
                if s.seed in seeds:
                    raise RunDirError(f"{label!r}: seed {s.seed} is in two of its directories ({os.fspath(d)!r})")
                seeds[s.seed] = s
                decisions[s.seed] = list(s.check_decisions)
        known.update(k for s in seeds.values() for split in splits for k in s.metrics.get(split, {}))
        for split in splits:
            for metric in metrics:
                values = {seed: s.metrics.get(split, {}).get(metric) for seed, s in seeds.items()}
                values = {k: v for k, v in values.items() if v is not None}
                if not values:
                    continue
                lower_is_better = metric_mode(metric) == "min"
                worst_seed = (max if lower_is_better else min)(values, key=values.__getitem__)
                spreads.append(SeedSpread(label, split, metric, len(values), float(statistics.median(values.values())),
                                          values[worst_seed], worst_seed,
                                          (min if lower_is_better else max)(values.values())))
        if any(s.modalities_left_out is not None for s in seeds.values()):
            left: dict[str, int] = {}
            for s in seeds.values():
                for m in s.modalities_left_out or ():
                    left[m] = left.get(m, 0) + 1
            actions = [d.get("action") for ds in decisions.values() for d in ds]
            checks[label] = {"seeds": len(seeds), "left_out": left, "take_back": actions.count("take_back"),
                             "restart": actions.count("restart")}
    # a metric some runs lack (no Acc-2 on 1-5 ratings) is a blank cell; one no run has, an error
    unknown = [m for m in metrics if m not in known] if asked else []
    if unknown:
        raise UsageError(f"--metrics {','.join(unknown)}: a metric of none of the runs' seeds; choose from "
                         f"{sorted(known)}")
    return Distribution(tuple(spreads), checks)
