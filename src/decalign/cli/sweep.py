"""``decalign sweep``: one worker of an Optuna study (:func:`decalign.sweep.run_study`), or the
study's best trials and parameter importances (``--report``: :func:`decalign.sweep.report_study`).

The flags resolve as ``decalign train``'s do, except that a trial trains on the preset's first
seed unless ``--seeds`` says otherwise (the objective is the mean over a trial's seeds)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from decalign.cli.common import (
    Subparsers,
    add_data_flags,
    add_run_flags,
    add_set_flag,
    add_verbosity_flags,
    load_and_resolve,
)
from decalign.sweep import HEARTBEAT_S, IMPORTANCE_MIN_TRIALS

__all__ = ["add_parser", "run"]

log = logging.getLogger("decalign")


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help=help,
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
    return p


def _fixed_overrides(args: argparse.Namespace, preset_seeds: Sequence[int]) -> list[str]:
    """``--set`` plus ``--seeds`` (default: the preset's first seed), ``--epochs``, ``--device``."""
    fixed = list(args.overrides)
    seeds = args.seeds or [preset_seeds[0]]
    fixed.append(f"train.seeds={json.dumps(list(seeds))}")
    if args.epochs:
        fixed.append(f"train.num_epochs={args.epochs}")
    if args.device:
        fixed.append(f"train.device={args.device}")
    return fixed


def run(args: argparse.Namespace) -> int:
    from decalign._optional import require

    optuna = require("optuna", extra="sweep", feature="decalign sweep")

    optuna.logging.set_verbosity(optuna.logging.DEBUG if args.verbose else optuna.logging.WARNING)
    if args.report:
        from decalign.sweep import report_study

        print(report_study(args.out, study=args.study, storage=args.storage, top=args.top,
                           importance_min_trials=args.importance_min_trials).text)
        return 0
    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    if args.nproc_per_node < 1:
        raise ValueError(f"--nproc-per-node must be at least 1, got {args.nproc_per_node}")
    from decalign.api import resolve_config
    from decalign.sweep import SweepSettings, check_space, default_space_path, load_space, run_study

    Path(args.out).mkdir(parents=True, exist_ok=True)
    dataset, base = load_and_resolve(args, args.overrides)
    config = resolve_config(dataset, args.preset, _fixed_overrides(args, base.train.seeds), path=args.data)
    space = Path(args.space) if args.space else default_space_path(config.preset)
    # read here as well as by run_study: a bad --space fails first, and a --set the space searches is named
    searched = load_space(space)
    check_space(searched, config, space)
    clash = sorted({spec.name for spec in searched} & {o.split("=", 1)[0] for o in args.overrides})
    if clash:
        log.warning("--set %s is searched by the space; the trial's values win", ", ".join(clash))
    settings = SweepSettings(trials=args.trials, study=args.study, storage=args.storage,
                             nproc_per_node=args.nproc_per_node, pruner=args.pruner, sampler_seed=args.sampler_seed,
                             heartbeat_s=args.heartbeat, tensorboard=not args.no_tensorboard)
    result = run_study(config, dataset, space, args.out, settings)
    if result.best_trial is None:
        print("no trial of the study has completed yet")
    else:
        print(f"best so far: trial {result.best_trial}, {result.metric} = {result.best_value:.6g}, "
              f"run {result.best_run_dir}")
    return 0
