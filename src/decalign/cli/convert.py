"""``decalign convert``: a benchmark pickle to decalign's pickle-free format
(:func:`decalign.data.convert`), optionally with a misleading modality added
(:class:`decalign.data.misleading.MisleadingModality`, docs/data.md)."""

from __future__ import annotations

import argparse

from decalign.cli.common import Subparsers, add_file_kind_flag, add_verbosity_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help)
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT", help="output directory (or .npz file)")
    p.add_argument("--format", choices=["npz", "safetensors"], default="npz")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--add-misleading", nargs="?", const="vision", metavar="NAME",
                   help="add a modality NAME (default vision) that tracks the labels on train and says nothing "
                   "elsewhere, to test the modality check (regression data; docs/data.md)")
    p.add_argument("--misleading-dim", type=int, default=16, metavar="D", help="its width (default 16)")
    p.add_argument("--misleading-noise", type=float, default=0.5, help="its noise std (default 0.5)")
    p.add_argument("--misleading-seed", type=int, default=0, help="its random seed (default 0)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--folds", type=int, metavar="K", help="instead: write OUT/fold_1 .. fold_K, the K "
                       "cross-validation datasets by video of IN's train + valid clips (test fold k, valid fold "
                       "k+1, train the rest; IN's test split left out), as `decalign train --cv K` trains them")
    split.add_argument("--valid-halves", action="store_true", help="instead: write OUT/half_a and half_b, IN's "
                       "valid split cut by video in two, each half the valid split of one file and the test split "
                       "of the other (train kept; IN's test split left out)")
    add_file_kind_flag(p)
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.data import convert

    misleading = None
    if args.add_misleading is not None:
        from decalign.data.misleading import MisleadingModality
        from decalign.errors import UsageError

        try:
            misleading = MisleadingModality(args.add_misleading, args.misleading_dim, args.misleading_noise,
                                            args.misleading_seed)
        except ValueError as err:
            raise UsageError(str(err)) from None
    kind = None if args.dataset == "auto" else args.dataset
    if args.folds is not None or args.valid_halves:
        from decalign.data.folds import write_split_files

        files = write_split_files(args.input, args.output, folds=args.folds, halves=args.valid_halves,
                                  fmt=args.format, kind=kind, overwrite=args.overwrite, misleading=misleading)
        print("written: " + ", ".join(str(f) for f in files))
        return 0
    out = convert(args.input, args.output, args.format, kind=kind, overwrite=args.overwrite, misleading=misleading)
    print(f"written: {out}")
    return 0
