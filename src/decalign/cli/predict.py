"""``decalign predict``: one prediction per sample of a data file
(:func:`decalign.api.predict_checkpoint`), or of one new clip through the checkpoint's own
extractors (``--media``: :func:`decalign.extract.predict.predict_media`, docs/extract.md)."""

from __future__ import annotations

import argparse
import json

from decalign.cli.common import Subparsers, add_device_flag, add_drop_flags, add_verbosity_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help)
    p.add_argument("--checkpoint", metavar="FILE", required=True)
    p.add_argument("--data", metavar="PATH", help="data file, labelled or not, any splits, or a flat file of "
                   "named arrays (default: the built-in dataset)")
    p.add_argument("--out", metavar="CSV", help="predictions file (required unless --media)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--split", nargs="+", default=None, metavar="SPLIT",
                   help="splits to predict (default: test of a full dataset, every set of other files)")
    add_device_flag(p, default="auto", help="device to predict on")
    add_drop_flags(p, each=False)
    _add_media_flags(p)
    add_verbosity_flags(p)
    return p


def _add_media_flags(p: argparse.ArgumentParser) -> None:
    """``predict --media``: one new clip through the checkpoint's own extractors (docs/extract.md)."""
    p.add_argument("--media", metavar="FILE", help="a video or audio file to predict (runs the extractors the "
                   "checkpoint's training data was made with)")
    p.add_argument("--transcript", metavar="TEXT", help="what is said in --media")
    p.add_argument("--start", type=float, metavar="SEC", help="clip start in --media (seconds)")
    p.add_argument("--end", type=float, metavar="SEC", help="clip end in --media (seconds)")
    p.add_argument("--json", action="store_true", help="with --media: print the prediction as JSON")
    p.add_argument("--text", metavar="MODEL_DIR", help="with --media: the local text encoder the model was trained "
                   "with (default: the folder its record names, if it holds the recorded files)")
    p.add_argument("--vision-model", metavar="DIR", help="with --media: the local image model (as --text)")
    p.add_argument("--openface-dir", metavar="DIR", help="with --media: OpenFace CSVs (<media name>.csv)")
    p.add_argument("--max-clip-seconds", type=float, default=600.0, metavar="SEC",
                   help="with --media: longest clip decoded (default 600)")


def run(args: argparse.Namespace) -> int:
    from decalign.api import predict_checkpoint
    from decalign.errors import UsageError

    if args.media:
        from decalign.extract.predict import predict_media

        if args.transcript is None:
            raise UsageError("--media needs --transcript TEXT (what is said in the clip)")
        from decalign.extract.media import MediaLimits

        result = predict_media(args.checkpoint, args.media, args.transcript, start=args.start, end=args.end,
                               device=args.device, text_model=args.text, vision_model=args.vision_model,
                               openface_dir=args.openface_dir, limits=MediaLimits(max_seconds=args.max_clip_seconds))
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            from decalign.extract.predict import format_prediction

            print(format_prediction(result))
        return 0
    if args.out is None:
        raise UsageError("predict needs --out CSV (or --media FILE --transcript TEXT for one new clip)")
    path = predict_checkpoint(args.checkpoint, args.data, args.out, splits=args.split, device=args.device,
                              drop=args.drop, overwrite=args.overwrite)
    print(f"predictions: {path}")
    return 0
