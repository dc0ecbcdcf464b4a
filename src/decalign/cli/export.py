"""``decalign export``: a checkpoint's prediction graph written as ONNX, TorchScript or a
torch.export program (:func:`decalign.export.export`), then what its inputs and outputs are."""

from __future__ import annotations

import argparse

from decalign.cli.common import Subparsers, add_verbosity_flags
from decalign.export import FORMATS  # a light module: torch is imported when a graph is written

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help=help,
        description="Write the prediction graph of a checkpoint (raw features in, the run's standardisation "
        "inside, prediction or class probabilities out; no training losses) in a format that runs without "
        "decalign: ONNX (onnxruntime), TorchScript or torch.export. docs/deploy.md describes inputs and outputs.",
    )
    p.add_argument("--checkpoint", metavar="FILE", required=True, help="a model.safetensors file")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="output format (default: onnx)")
    p.add_argument("--out", metavar="FILE", required=True, help="the file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Write the file, then print what its inputs and outputs are."""
    from decalign.export import export

    graph = export(args.checkpoint, args.format, args.out, overwrite=args.overwrite)
    print(f"written: {graph.path} ({graph.format})")
    for kind in ("inputs", "outputs"):
        shown = ", ".join(f"{t['name']} {t['dtype']}[{', '.join(map(str, t['shape']))}]"
                          for t in graph.description[kind])
        print(f"{kind}: {shown}")
    return 0
