"""``decalign probe``: the flags of :func:`decalign.probe.run_probes`. The command's description
(its ``--help``) is the library module's docstring, which says what a probe is; both modules
import only the standard library at module level (``decalign --help`` stays fast)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from decalign.cli.common import Subparsers, add_file_kind_flag, add_verbosity_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    from decalign import probe

    p = subparsers.add_parser(name, help=help, description=probe.__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="PATH", help="a data file (regression task; default: the built-in dataset, "
                   "as `decalign train` uses)")
    add_file_kind_flag(p)
    p.add_argument("--sets", nargs="+", metavar="M[,M...]",
                   help="feature sets, each a comma list of modalities (default: each modality, then all)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for the ridge penalty")
    p.add_argument("--json", metavar="FILE", help="also write every set's metrics and penalty to FILE")
    p.add_argument("--overwrite", action="store_true", help="replace --json FILE if it exists")
    add_verbosity_flags(p)
    return p


def _parse_sets(specs: Sequence[str], available: Sequence[str]) -> list[tuple[str, ...]]:
    """``--sets text audio,text``: each a comma list of the data's modalities."""
    sets = []
    for spec in specs:
        names = tuple(n.strip() for n in spec.split(",") if n.strip())
        unknown = [n for n in names if n not in available]
        if not names or unknown:
            raise ValueError(f"--sets {spec!r}: unknown modality {unknown or spec!r}; the data has {list(available)}")
        sets.append(names)
    return sets


def run(args: argparse.Namespace) -> int:
    from decalign.config import DataConfig
    from decalign.data import load_dataset
    from decalign.probe import probe_table, run_probes

    if args.folds < 2:  # before the data is read; the upper bound (the train split's size) after
        from decalign.errors import UsageError

        raise UsageError(f"--folds {args.folds}: the ridge penalty's cross-validation needs at least 2 folds")
    if args.json:
        from decalign.safety.outputs import check_not_input, check_replaceable

        check_not_input(args.json, {"--data": args.data}, "--json")
        check_replaceable(args.json, args.overwrite, "--json")
    kind = "synthetic" if args.data is None else args.dataset  # like train: no --data, the built-in dataset
    dataset = load_dataset(args.data, DataConfig(dataset=kind, path=args.data))
    sets = _parse_sets(args.sets, list(dataset.modalities)) if args.sets else None
    results = run_probes(dataset, sets, folds=args.folds)
    for split in ("valid", "test"):
        if split in dataset.splits:
            print(f"{split}:\n{probe_table(results, split)}\n")
    if args.json:
        from decalign.safety.outputs import guarded_output
        from decalign.train.atomic import write_json

        with guarded_output(args.json, flag="--json", inputs={"--data": args.data}, overwrite=args.overwrite):
            write_json(args.json, {name: r.to_dict() for name, r in results.items()})
        print(f"probes: {args.json}")
    return 0
