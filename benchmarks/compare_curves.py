"""Draw the validation curves of several run directories side by side (``docs/results-real.md``).

Each ``LABEL=DIR[,DIR]`` is one setting (the seeds of one setting may sit in several run
directories); the figure has a panel per metric, a colour per setting, a thin line per seed and a
dot at each seed's selected epoch::

    python benchmarks/compare_curves.py --out curves.png --metrics loss,corr \\
        "raw weights=runs/ft" "moving average=runs/ft_ema"
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from decalign.plots import plot_validation_curves
from decalign.train.history import read_history
from real_table import seed_files  # the sibling script (benchmarks/ is on the path when run)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="LABEL=DIR[,DIR]", help="a setting's label and its run directories")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    ap.add_argument("--metrics", default="loss,corr", help="comma-separated validation columns")
    ap.add_argument("--seeds", metavar="SEED,SEED", help="comma-separated: only these seeds of every run")
    ap.add_argument("--title")
    args = ap.parse_args(argv)
    only = {int(x) for x in args.seeds.split(",")} if args.seeds else None
    runs: dict[str, list[dict[str, Any]]] = {}
    for spec in args.runs:
        label, _, directories = spec.rpartition("=")  # a label may hold "=", a directory not
        files = seed_files([Path(d) for d in directories.split(",")], "history.csv", only)
        if not files:
            ap.error(f"{directories}: no seed_*/history.csv")
        runs[label] = [row for f in files for row in read_history(f)]
    print(plot_validation_curves(runs, args.out, tuple(args.metrics.split(",")), args.title))


if __name__ == "__main__":
    main()
