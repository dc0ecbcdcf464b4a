"""``decalign datasets``: where the benchmark files come from, what each must hold, and how to
check that a downloaded file is the one a result was measured on.

Nothing is downloaded: the benchmarks are released by others (the MMSA project's processed
feature pickles for CMU-MOSI, CMU-MOSEI and CH-SIMS; the IEMOCAP feature pickle the DecAlign
authors' README links) under their own terms. This module lists, for each benchmark, the known
releases with their file names, shapes and split sizes, and prints a file's fingerprint:

* ``content``: :func:`decalign.train.runguard.data_fingerprint` of the data as decalign reads it
  (kind, task, ids, labels, shapes, a fixed sample of feature values). It is the digest a run
  stores in ``dataset.json``, so a file can be matched to the runs trained on it, and two copies
  that decode to the same data agree even when pickled differently.
* ``sha256``: of the file's bytes, for comparing with a colleague's copy or a published checksum.

The shapes are read from the dataset-kind registry (:data:`decalign.data.detect.DATASET_KINDS`),
so this list cannot disagree with what ``decalign info`` detects.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from decalign.cli.common import Subparsers, add_file_kind_flag, add_verbosity_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    # the docstring above is the command's description (its --help): the work is in decalign.data.catalog
    p = subparsers.add_parser(name, help=help, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="FILE", nargs="?", help="a downloaded file to identify and fingerprint")
    add_file_kind_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.data.catalog import RELEASES, identify_file, releases_text

    if args.path is None:
        print(json.dumps([{**r.__dict__, "name": r.name, "shapes": r.shape()} for r in RELEASES], indent=2,
                         default=list)
              if args.json else releases_text())
        return 0
    found = identify_file(args.path, args.dataset)
    print(json.dumps(found, indent=2) if args.json else _format_file(found))
    return 0


def _format_file(found: dict[str, Any]) -> str:
    """``decalign datasets FILE`` as text: kind, the release it is, split sizes, fingerprints."""
    from decalign.data.detect import SPLITS

    rel = found["release"]
    fp = found["fingerprint"]
    lines = [f"file:     {found['file']}", f"kind:     {found['kind']}    layout: {found['layout']}"]
    if rel is None:
        lines.append("release:  none of the known releases (shapes differ; `decalign datasets` lists them)")
    else:
        lines.append(f"release:  {rel['benchmark']} {rel['variant']} ({', '.join(rel['files'])}), from {rel['source']}")
    lines += [f"  - {d}" for d in found["differences"]]
    sizes = fp["splits"]
    lines += [f"splits:   {' / '.join(f'{s} {sizes[s]}' for s in SPLITS if s in sizes)}",
              f"content fingerprint: {fp['content']}", f"file sha256:         {fp['sha256']}",
              "compare both with a colleague's copy or the release's; a run trained on this file stores the content "
              "fingerprint in its dataset.json"]
    return "\n".join(lines)
