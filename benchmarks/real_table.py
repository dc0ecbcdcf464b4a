"""Markdown table of run directories and probe results on one split (``docs/results-real.md``).

Reads what the runs wrote (``results.json`` of ``decalign train`` run directories, each seed's
``result.json`` for the validation split, and the ``--json`` file of ``decalign probe``) and
prints mean ± sample std over seeds, so the page's numbers are the code's, not copied::

    python benchmarks/real_table.py --split test --probes probes.json \\
        "DecAlign released=runs/released" "DecAlign tuned=runs/tuned"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from decalign.metrics.display import aggregate, format_table

__all__ = ["main", "run_row", "seed_files"]

KEYS = ("mae", "corr", "acc2_non0", "f1_non0", "acc7")


def seed_files(directories: list[Path], name: str, only: set[int] | None = None) -> list[Path]:
    """Each seed's file ``name`` in run directories (``seed_<s>/<name>``); ``only``: just these
    seeds. Also used by ``compare_curves.py``."""
    return sorted(p for d in directories for p in d.glob(f"seed_*/{name}")
                  if only is None or int(p.parent.name.removeprefix("seed_")) in only)


def run_row(directories: list[Path], split: str, keys: tuple[str, ...] = KEYS,
            only: set[int] | None = None) -> dict[str, Any]:
    """Mean and std over the seeds of run directories on ``split`` (``valid`` or ``test``); the
    seeds of one configuration may have been trained as separate runs (each seed's run depends
    only on its own seed). ``only``: just these seeds."""
    seeds = seed_files(directories, "result.json", only)
    if not seeds:
        named = ", ".join(map(str, directories))
        raise FileNotFoundError(f"{named}: no seed_*/result.json (finished run directories?)")
    per_seed = [json.loads(p.read_text())[split] for p in seeds]
    row = aggregate([{k: s[k] for k in keys if k in s} for s in per_seed])
    row["n"] = len(per_seed)
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", metavar="LABEL=DIR[,DIR]", help="a row label and its run directories")
    ap.add_argument("--split", default="test", choices=["valid", "test"])
    ap.add_argument("--probes", type=Path, help="the --json file of `decalign probe`")
    ap.add_argument("--keys", default=",".join(KEYS),
                    help="comma-separated metric columns (add `loss`, the task loss runs select on; runs only)")
    ap.add_argument("--seeds", metavar="SEED,SEED", help="comma-separated: only these seeds of every run")
    args = ap.parse_args(argv)
    keys = tuple(args.keys.split(","))
    only = {int(s) for s in args.seeds.split(",")} if args.seeds else None
    if args.probes and not set(keys) <= set(KEYS):
        ap.error(f"--probes has only {list(KEYS)}")
    rows: dict[str, Any] = {}
    if args.probes:
        for name, probe in json.loads(args.probes.read_text()).items():
            rows[f"ridge {name} (alpha {probe['alpha']:.3g})"] = {k: probe[args.split][k] for k in keys}
    for spec in args.runs:
        label, _, directory = spec.rpartition("=")  # a label may hold "=", a directory not
        try:
            row = run_row([Path(d) for d in directory.split(",")], args.split, keys, only)
        except (OSError, ValueError, KeyError) as err:
            ap.error(str(err))
        rows[f"{label} ({row.pop('n')} seeds)"] = row
    print(format_table(rows, keys=list(keys), style="markdown", bold_best=True))


if __name__ == "__main__":
    main()
