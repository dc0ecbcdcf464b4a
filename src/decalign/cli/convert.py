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
    out = convert(args.input, args.output, args.format, kind=None if args.dataset == "auto" else args.dataset,
                  overwrite=args.overwrite, misleading=misleading)
    print(f"written: {out}")
    return 0
