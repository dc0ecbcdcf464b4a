"""``decalign report RUN [RUN ...]``: finished runs side by side on one split, the paired
difference of every metric against the first run (or ``--baseline``) with a bootstrap confidence
interval over the test samples and the seeds, and a protocol card per run; optionally written as
markdown, CSV and JSON (``--out``) and the runs' curves in one figure (``--curves``). With
``--page TEMPLATE --page-out PAGE``: a results page, every ``<!-- decalign report ... -->``
directive of the template followed by its table (:mod:`decalign.runs.page`).

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
    p.add_argument("runs", nargs="*", metavar="RUN", help="run directories written by `decalign train` (or "
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
    p.add_argument("--page", metavar="TEMPLATE.md", help="instead: fill a results-page template, each line "
                   "'<!-- decalign report ARGS -->' followed by the table those arguments print (runs named "
                   "relative to --runs-root), and write it to --page-out")
    p.add_argument("--page-out", metavar="PAGE.md", help="with --page: the page to write")
    p.add_argument("--runs-root", metavar="DIR", default=".", help="with --page: the folder the directives' run "
                   "directories and probe files are named in (default: the current folder); nothing outside it "
                   "is read")
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
    if args.page is not None or args.page_out is not None:
        return _page(args)
    if not args.runs:
        raise UsageError("report: name at least one run directory (or --page TEMPLATE.md --page-out PAGE.md)")
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


class _DirectiveParser(argparse.ArgumentParser):
    """The report command's own parser for a page's directives: a bad directive is a one-line error
    naming the template's line instead of argparse's usage text and exit."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        from decalign.errors import UsageError

        raise UsageError(message)


class _OneParser:
    """Stands in for the subparsers of :func:`add_parser`, to build the report parser alone."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.pop("help", None)
        return _DirectiveParser(prog=f"decalign {name}", add_help=False, **kwargs)


_PAGE_ONLY = ("out", "curves", "page", "page_out", "overwrite")
"""Flags a directive may not carry: a directive prints one table and writes nothing."""


def _page(args: argparse.Namespace) -> int:
    """``--page TEMPLATE --page-out PAGE``: every directive of the template run through the report's
    parser, its runs resolved under ``--runs-root``, its table in markdown after it."""
    import os
    from pathlib import Path

    from decalign.errors import DecalignError, UsageError
    from decalign.runs import parse_groups, report, seed_distribution
    from decalign.runs.page import END_MARKER, MAX_TEMPLATE_CHARS, Directive, fill
    from decalign.safety.outputs import guarded_output
    from decalign.safety.paths import resolve_under
    from decalign.train.atomic import write_text

    if args.page is None or args.page_out is None:
        raise UsageError("--page TEMPLATE.md and --page-out PAGE.md go together")
    if args.runs:
        raise UsageError("--page names its runs in the template's directives, not on the command line")
    template_path, root = Path(args.page), Path(args.runs_root)
    if not template_path.is_file():
        raise UsageError(f"--page {args.page}: {'not a file' if template_path.exists() else 'no such file'}")
    if not root.is_dir():
        raise UsageError(f"--runs-root {args.runs_root}: no such folder")
    if template_path.stat().st_size > MAX_TEMPLATE_CHARS * 4:  # before reading: at most 4 bytes a character
        raise UsageError(f"--page {args.page}: larger than a page template may be ({MAX_TEMPLATE_CHARS} characters)")
    template = template_path.read_text(encoding="utf-8")
    parser = add_parser(_OneParser(), "report", "")

    def render(directive: Directive) -> str:
        where = f"{args.page}:{directive.line}"
        try:
            ns = parser.parse_args(list(directive.args))
            used = [f"--{flag.replace('_', '-')}" for flag in _PAGE_ONLY if getattr(ns, flag) not in (None, False)]
            if used:
                raise UsageError(f"a directive prints one table and writes nothing: drop {', '.join(used)}")
            if not ns.runs:
                raise UsageError("the directive names no run")
            groups = {label: [resolve_under(root, str(d), where, "run directory") for d in dirs]
                      for label, dirs in parse_groups(ns.runs).items()}
            if ns.distribution:
                metrics = None if ns.metrics is None else [m for m in ns.metrics.split(",") if m]
                return seed_distribution(groups, metrics=metrics).to_markdown()
            if not 1 <= ns.bootstrap <= MAX_BOOTSTRAP or not 0.0 < ns.level < 1.0:
                raise UsageError(f"--bootstrap in [1, {MAX_BOOTSTRAP}] and --level in (0, 1)")
            probes = None if ns.probes is None else resolve_under(root, ns.probes, where, "probe file")
            rep = report(groups, split=ns.split, baseline=ns.baseline, n_boot=ns.bootstrap, level=ns.level,
                         bootstrap_seed=ns.bootstrap_seed, seeds=ns.seeds, probes=probes)
            return rep.to_markdown()
        except DecalignError as err:  # one line naming the template's line (once: path errors already do)
            message = str(err)
            raise UsageError(message if message.startswith(f"{where}:") else f"{where}: {message}") from None

    def placed(directive: Directive) -> str:
        """The table as the page shows it: its headings below the page's sections (two levels
        down), its run paths relative to --runs-root (the page is read elsewhere)."""
        import re

        text = re.sub(r"^(#+) ", lambda m: "#" * (len(m[1]) + 2) + " ", render(directive), flags=re.M)
        return text.replace(f"{root.resolve()}{os.sep}", "")

    page = fill(template, placed, where=args.page)  # every table made before the page is opened
    with guarded_output(args.page_out, flag="--page-out", inputs={"--page": args.page},
                        overwrite=args.overwrite) as out:
        write_text(out, page)
    print(f"page: {args.page_out} ({page.count(END_MARKER)} tables from {args.page})")
    return 0
