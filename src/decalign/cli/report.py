"""``decalign report RUN [RUN ...]``: finished runs side by side on one split, the paired
difference of every metric against the first run (or ``--baseline``) with a bootstrap confidence
interval over the test samples and the seeds, and a protocol card per run; optionally written as
markdown, CSV and JSON (``--out``) and the runs' curves in one figure (``--curves``).

The command line only: the work is :func:`decalign.runs.report`, :func:`decalign.runs.write_report`
and :func:`decalign.runs.plot_curves`, callable from Python with the same arguments. Standard
library only at module level (``decalign --help`` stays fast).
"""

from __future__ import annotations

import argparse
from typing import Any

from decalign.cli.common import Subparsers, add_split_flag, add_verbosity_flags

__all__ = ["MAX_BOOTSTRAP", "add_parser", "run"]

MAX_BOOTSTRAP = 100_000
"""Bootstrap replicates at most: each holds a resample of every test sample, so time and memory
grow with it; 100,000 already pins a 95 % bound far below a tenth of a point."""


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    # the docstring above is the command's description (its --help)
    p = subparsers.add_parser(name, help=help, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `decalign train` (or "
                   "`decalign train --cv`: out-of-fold predictions); LABEL=DIR[,DIR...] names a run and pools the "
                   "seeds of several directories of one setting")
    add_split_flag(p)
    p.add_argument("--baseline", metavar="NAME", help="the run every other is compared with: its directory name "
                   "or path as given (default: the first)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap replicates (default 1000)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="S", help="seed of the bootstrap draws")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--out", metavar="DIR", help="also write report.md, summary.csv, comparisons.csv, cards.csv "
                   "and report.json into DIR")
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="only these seeds of every run")
    p.add_argument("--probes", metavar="FILE", help="also show the rows of a `decalign probe --json` file (the "
                   "ridge floor on the same data; not compared)")
    p.add_argument("--curves", metavar="FILE.png", help="also draw the runs' validation selection metric and "
                   "training loss per epoch (mean over seeds) in one figure (needs the plots extra)")
    p.add_argument("--curve-metrics", metavar="M,M", help="with --curves: instead a panel per validation metric "
                   "(e.g. loss,corr), a line per seed and a dot at each seed's selected epoch")
    p.add_argument("--distribution", action="store_true", help="instead of the comparison: each RUN "
                   "([LABEL=]DIR[,DIR...], directories pooled) over its seeds: median, worst seed and best of "
                   "--metrics on test and valid, and the modality check's decisions; with --out, writes "
                   "distribution.md and distribution.csv")
    p.add_argument("--metrics", metavar="M,M", help="with --distribution: the metrics (default those of "
                   "acc2_non0,corr,mae the runs have)")
    p.add_argument("--overwrite", action="store_true", help="replace existing report files")
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.errors import UsageError
    from decalign.runs import plot_curves, report, write_report

    if not 1 <= args.bootstrap <= MAX_BOOTSTRAP:
        raise UsageError(f"--bootstrap must be in [1, {MAX_BOOTSTRAP}], got {args.bootstrap}")
    if not 0.0 < args.level < 1.0:
        raise UsageError(f"--level must be in (0, 1), got {args.level}")
    if args.distribution:
        return _distribution(args)
    if args.curve_metrics is not None and not args.curves:
        raise UsageError("--curve-metrics goes with --curves FILE.png")
    runs: Any = args.runs
    if any("=" in spec or "," in spec for spec in runs):
        from decalign.runs import parse_groups

        runs = parse_groups(runs)
    rep = report(runs, split=args.split, baseline=args.baseline, n_boot=args.bootstrap, level=args.level,
                 bootstrap_seed=args.bootstrap_seed, seeds=args.seeds, probes=args.probes)
    print(rep.to_text())
    if args.out:
        written = write_report(rep, args.out, overwrite=args.overwrite)
        print(f"report: {', '.join(str(p) for p in written)}")
    if args.curves:
        metrics = None if args.curve_metrics is None else [m for m in args.curve_metrics.split(",") if m]
        print(f"curves: {plot_curves(runs, args.curves, metrics=metrics, seeds=args.seeds, overwrite=args.overwrite)}")
    return 0


def _distribution(args: argparse.Namespace) -> int:
    from decalign.runs import parse_groups, seed_distribution, write_distribution

    metrics = None if args.metrics is None else [m for m in args.metrics.split(",") if m]
    groups = parse_groups(args.runs)
    dist = seed_distribution(groups, metrics=metrics)
    print(dist.to_markdown(), end="")
    if args.out:
        sources = [d for ds in groups.values() for d in ds]
        for path in write_distribution(dist, args.out, sources=sources, overwrite=args.overwrite):
            print(f"written: {path}")
    return 0
