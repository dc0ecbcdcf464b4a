"""Finished runs as data: read run directories (:mod:`~decalign.runs.reader`), compare two runs
on the same samples with a paired bootstrap over samples and seeds (:mod:`~decalign.runs.compare`),
describe each run's protocol (:mod:`~decalign.runs.card`), and report several runs side by side
as text, markdown, CSV and JSON, with their curves in one figure (:mod:`~decalign.runs.overview`).
A cross-validation directory reads as one run of out-of-fold predictions; its per-fold and pooled
summary is :mod:`~decalign.runs.crossval`.
``decalign report`` (:mod:`decalign.cli.report`) is the command line over :func:`report` and
:func:`seed_distribution`.

The names below are imported on first use (PEP 562), so that importing the command's module for
``decalign --help`` does not import numpy; matplotlib is imported by :func:`plot_curves` only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decalign.runs.card import ProtocolCard, protocol_card
    from decalign.runs.compare import MetricDifference, paired_bootstrap
    from decalign.runs.crossval import CrossValidation, FoldSummary, read_cross_validation, write_cv_summary
    from decalign.runs.distribution import Distribution, SeedSpread, parse_groups, seed_distribution
    from decalign.runs.overview import (
        REPORT_FILES,
        Report,
        RunSummary,
        plot_curves,
        report,
        write_distribution,
        write_report,
    )
    from decalign.runs.reader import Predictions, ReadLimits, RunRecord, SeedRecord, read_run

_WHERE = {
    "ProtocolCard": "card", "protocol_card": "card",
    "MetricDifference": "compare", "paired_bootstrap": "compare",
    "CrossValidation": "crossval", "FoldSummary": "crossval", "read_cross_validation": "crossval",
    "write_cv_summary": "crossval",
    "Distribution": "distribution", "SeedSpread": "distribution", "parse_groups": "distribution",
    "seed_distribution": "distribution",
    "Predictions": "reader", "ReadLimits": "reader", "RunRecord": "reader", "SeedRecord": "reader",
    "read_run": "reader",
    "REPORT_FILES": "overview", "Report": "overview", "RunSummary": "overview",
    "plot_curves": "overview", "report": "overview", "write_distribution": "overview", "write_report": "overview",
}

__all__ = [
    "REPORT_FILES",
    "CrossValidation",
    "Distribution",
    "FoldSummary",
    "MetricDifference",
    "Predictions",
    "ProtocolCard",
    "ReadLimits",
    "Report",
    "RunRecord",
    "RunSummary",
    "SeedRecord",
    "SeedSpread",
    "paired_bootstrap",
    "parse_groups",
    "plot_curves",
    "protocol_card",
    "read_cross_validation",
    "read_run",
    "report",
    "seed_distribution",
    "write_cv_summary",
    "write_distribution",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'decalign.runs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"decalign.runs.{module}"), name)
