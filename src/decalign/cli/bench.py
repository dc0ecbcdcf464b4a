"""``decalign bench``: the base configuration resolved as ``decalign train`` resolves it, then
:func:`decalign.bench.run_bench` (every model and ablation, same data, seeds and protocol)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from decalign.bench import MODELS
from decalign.cli.common import (
    Subparsers,
    add_data_flags,
    add_run_flags,
    add_set_flag,
    add_verbosity_flags,
    load_and_resolve,
    run_overrides,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help=help,
        description="Train DecAlign, the baselines (MulT-style, TFN, late and early fusion) and the paper's "
        "ablations with the same data, seeds and protocol; write OUT/bench.md (table with mean ± std, best in "
        "bold, the paper's numbers on its benchmarks, figures), OUT/bench.csv and one run directory per row in "
        "OUT/runs/. Rerunning the same command resumes where it stopped.",
    )
    add_data_flags(p, data_help="a benchmark pickle or native data file (default: the built-in dataset)",
                   dataset_help="force the dataset kind (default: detected; the built-in synthetic benchmark "
                   "without --data)")
    p.add_argument("--preset", help="hyper-parameter preset (default: the dataset's own)")
    p.add_argument("--models", default=",".join(MODELS), metavar="LIST",
                   help=f"comma list of architectures, 'all' or 'none' (default: {','.join(MODELS)})")
    p.add_argument("--ablations", default="all", metavar="LIST",
                   help="'all', 'none' or a comma list of ablation names (see docs/ablations.md; e.g. "
                   "no_homogeneity,no_mmd,text_only)")
    add_run_flags(p, epochs_help="maximum epochs per run (train.num_epochs)")
    add_set_flag(p, help="settings applied to every run, e.g. --set model.d_model=32 train.lr=1e-4")
    p.add_argument("--out", metavar="DIR", help="bench directory (default: runs/bench-<preset>)")
    p.add_argument("--plots", choices=["summary", "all", "none"], default="summary",
                   help="summary: dot plots + the DecAlign run's figures (default); all: every run's figures too")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events in every run")
    p.add_argument("--cv", type=int, metavar="K", help="each row a K-fold cross-validation by video over the train + "
                   "valid clips (as `decalign train --cv K`; the table shows pooled out-of-fold metrics)")
    p.add_argument("--std", choices=["sample", "population"], default="sample",
                   help="the ± of the report: sample std (ddof=1, default) or population std (ddof=0, as MMSA "
                   "reports); the tables and CSV columns say which")
    add_verbosity_flags(p, quiet_help="only warnings, errors and the final table")
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.bench import parse_models, run_bench

    overrides = run_overrides(args)
    models = parse_models(args.models)  # fail on a typo before loading any data
    dataset, base = load_and_resolve(args, overrides)
    out = Path(args.out or os.path.join("runs", f"bench-{base.preset}"))
    result = run_bench(dataset, base, out, models, args.ablations, quiet=args.quiet, plots=args.plots,
                       tensorboard=args.tensorboard, std=args.std, cv=args.cv)
    print(result.table)
    print(f"report: {result.md_path}\ntable: {result.csv_path}")
    for name, message in result.failures.items():
        print(f"failed: {name}: {message}")
    return 1 if result.failures else 0
