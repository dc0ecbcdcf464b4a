"""``decalign info``: what a data file holds (:func:`decalign.data.catalog.describe_file`), as
text or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from decalign.cli.common import Subparsers, add_file_kind_flag, add_verbosity_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help,
                              description="Describe a data file as decalign reads it: the detected benchmark and "
                              "layout, every split's sample count, feature shapes, sequence lengths and labels, "
                              "what the reader fixed, and the file's fingerprint (compare it with a colleague's copy "
                              "or the release's; `decalign datasets` lists the releases). Without PATH: the built-in "
                              "dataset.")
    p.add_argument("path", metavar="PATH", nargs="?",
                   help="a benchmark pickle, a native .npz/.safetensors file or directory, or a file of samples to "
                   "predict on (default: the built-in dataset, as `decalign train` uses)")
    add_file_kind_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.data.catalog import describe_file

    info = describe_file(args.path, args.dataset)
    print(json.dumps(info, indent=2, default=str) if args.json else _format_info(info))
    return 0


def _format_info(info: dict[str, Any]) -> str:
    """``decalign info`` as text: header, one row per split, then the notes."""
    mods = info.get("modalities", {})
    task = info.get("task", "?")
    if task == "classification":
        names = f" ({', '.join(info['class_names'])})" if info.get("class_names") else ""
        task += f", {info.get('num_classes')} classes" + names
    elif info.get("label_range"):
        lo, hi = info["label_range"]
        task += f", labels in [{lo:g}, {hi:g}]"
    lines = [
        f"file:       {info.get('source')}",
        f"kind:       {info.get('kind')}    layout: {info.get('layout')}    task: {task}",
        "modalities: " + ", ".join(f"{m} {v['dim']}-d x {v['seq_len']} steps" for m, v in mods.items())
        + ("" if info.get("aligned", True) else "  (unaligned)"),
        "",
    ]
    header = ["split", "n", *[f"{m} lengths" for m in mods], "labels"]
    rows = [header]
    for name, sp in info.get("splits", {}).items():
        cells = [name, str(sp["n"])]
        for m in mods:
            lengths = sp["modalities"].get(m, {}).get("lengths")
            cells.append(f"{lengths[0]}-{lengths[1]}" if lengths else "-")
        lab = sp.get("labels", {})
        if "class_counts" in lab:
            cells.append(" ".join(f"{k} {v}" for k, v in lab["class_counts"].items()))
        elif lab:
            cells.append(f"{lab['min']:.2f} .. {lab['max']:.2f} (mean {lab['mean']:.2f}, {lab.get('zeros', 0)} zero)")
        else:
            cells.append("-")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if info.get("extraction"):
        lines += ["", "extracted with:", *[f"  {m}: {what}" for m, what in info["extraction"].items()]]
    notes = info.get("notes") or []
    lines += ["", "notes:" if notes else "notes: none", *[f"  - {n}" for n in notes]]
    fp = info.get("fingerprint") or {}
    if fp.get("content"):
        lines += ["", f"content fingerprint: {fp['content']}  (the digest a run on this data stores in dataset.json)"]
    if fp.get("sha256"):
        lines += ([] if fp.get("content") else [""]) + [f"file sha256:         {fp['sha256']}"]
    if fp:
        lines.append("compare with a colleague's copy or the release's (`decalign datasets` lists the releases)")
    return "\n".join(lines)
