"""``decalign eval``: the metrics of a run's seeds or of one checkpoint
(:func:`decalign.evaluation.evaluate_report`), or the missing-modality robustness table
(:func:`decalign.evaluation.drop_each_report`)."""

from __future__ import annotations

import argparse

from decalign.cli.common import (
    Subparsers,
    add_device_flag,
    add_drop_flags,
    add_split_flag,
    add_std_flag,
    add_verbosity_flags,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="DIR", help="a run directory: every seed's checkpoint, then mean ± std")
    src.add_argument("--checkpoint", metavar="FILE", help="a model.safetensors file")
    p.add_argument("--data", metavar="PATH", help="data file (default: the built-in dataset, for models trained on it)")
    add_split_flag(p)
    p.add_argument("--json", metavar="FILE", help="also write the metrics to FILE")
    p.add_argument("--figure", metavar="PNG", help="also draw the confusion matrix (classification) or predictions "
                   "against labels with the residuals (regression); needs the plots extra")
    add_device_flag(p, default="auto", help="device to evaluate on")
    add_drop_flags(p, each=True)
    add_std_flag(p)
    p.add_argument("--format", choices=["text", "markdown", "latex", "mmsa"], default="text",
                   help="table format: text, markdown, latex (booktabs tabular), or mmsa (MMSA's result CSV: "
                   "its metric names, (mean, std) cells x 100, population std unless --std says otherwise)")
    p.add_argument("--names", choices=["ours", "mmsa"], default="ours",
                   help="column names: ours (acc2_non0) or MMSA's (Non0_acc_2)")
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.evaluation import drop_each_report, evaluate_report

    if args.drop_each:
        print(drop_each_report(args.run, args.checkpoint, args.data, args.split, args.device, args.json))
        return 0
    std_kind = args.std or ("population" if args.format == "mmsa" else "sample")
    print(evaluate_report(args.run, args.checkpoint, args.data, args.split, args.device, args.drop, args.json,
                          args.figure, std=std_kind, style=args.format, names=args.names))
    return 0
