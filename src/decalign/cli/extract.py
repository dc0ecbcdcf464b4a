"""``decalign extract``: a folder of media and transcripts to a dataset file
(:func:`decalign.extract.pipeline.extract_folder`).

::

    decalign extract --media clips/ --transcripts transcripts.csv --text MODEL_DIR \\
        --audio egemaps --vision hog --out data/mine.pkl --workers 2

Writes the dataset (MMSA unaligned layout pickle for ``.pkl``, else decalign's native format),
``extract_report.csv`` beside it (one row per clip), and a per-clip cache (``<out>.cache/``) so a
rerun after an interruption or a fix only extracts what is missing. This module imports only the
standard library at module level (``decalign --help`` stays fast).
"""

from __future__ import annotations

import argparse
import sys

from decalign.cli.common import Subparsers, add_verbosity_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help=help,
        description="Extract text (a local HuggingFace encoder), audio (openSMILE or librosa) and vision (face "
        "crops: HOG, a local image model, or OpenFace 2.0 CSVs) features from video/audio files and transcripts, "
        "offline. Writes the dataset, extract_report.csv (one row per clip: status, lengths, time) and a per-clip "
        "cache. Clips that fail stop the run with their list unless --skip-failed. See docs/extract.md.",
    )
    p.add_argument("--media", required=True, metavar="DIR_OR_CSV",
                   help="directory of media files (DIR/<clip_id>.mp4, DIR/<video_id>/<clip_id>.mp4 as MMSA's raw "
                   "data, or DIR/<video_id>.mp4 with start/end in the CSV), or a CSV with clip_id, path[, start, end]")
    p.add_argument("--transcripts", metavar="CSV",
                   help="CSV with clip_id (and video_id), text[, label, mode, start, end] (default: DIR/label.csv)")
    p.add_argument("--labels", metavar="CSV",
                   help="CSV with clip_id (and video_id), label, mode, if not in --transcripts")
    p.add_argument("--text", required=True, metavar="MODEL_DIR",
                   help="local HuggingFace encoder directory (never downloaded), or 'none'")
    p.add_argument("--text-max-len", type=int, default=50, metavar="N", help="tokens per transcript (default 50)")
    p.add_argument("--audio", default="egemaps", choices=["egemaps", "compare", "librosa", "none"],
                   help="openSMILE eGeMAPS (25-d) or ComParE (65-d) descriptors, a librosa set (27-d) "
                   "(default egemaps)")
    p.add_argument("--audio-rate", type=float, default=50.0, metavar="HZ", help="audio steps per second (default 50)")
    p.add_argument("--sample-rate", type=int, default=16000, metavar="HZ", help="audio decoding rate (default 16000)")
    p.add_argument("--vision", default="hog", choices=["hog", "image-model", "openface", "none"],
                   help="HOG of OpenCV face crops (580-d), a local image model on face crops, or OpenFace 2.0 CSVs "
                   "(49-d) (default hog)")
    p.add_argument("--vision-model", metavar="DIR", help="local HuggingFace image model (with --vision image-model)")
    p.add_argument("--openface-dir", metavar="DIR",
                   help="OpenFace FeatureExtraction CSVs named <clip_id>.csv (with --vision openface)")
    p.add_argument("--fps", type=float, default=10.0, metavar="HZ", help="video frames sampled per second (default 10)")
    p.add_argument("--max-clip-seconds", type=float, default=600.0, metavar="SEC",
                   help="longest clip decoded; a longer one gets the status 'too long' (default 600)")
    p.add_argument("--max-audio-len", type=int, metavar="N", help="cut audio sequences to N steps")
    p.add_argument("--max-vision-len", type=int, metavar="N", help="cut vision sequences to N steps")
    p.add_argument("--out", required=True, metavar="DATASET",
                   help="output: .pkl (MMSA unaligned layout), .npz/.safetensors or a directory (native format)")
    p.add_argument("--format", choices=["mmsa", "npz", "safetensors"], help="output format (default: from --out)")
    p.add_argument("--report", metavar="CSV", help="report file (default: extract_report.csv beside --out)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="extraction processes (default 1; capped to the usable cores)")
    p.add_argument("--cache", metavar="DIR", help="per-clip cache directory (default: <out>.cache)")
    p.add_argument("--no-cache", action="store_true", help="extract every clip again and keep no cache")
    p.add_argument("--skip-failed", action="store_true", help="leave failed clips out instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="replace --out (and a --report that is not an earlier "
                   "extract report) if it exists")
    p.add_argument("--split-seed", type=int, default=0, metavar="SEED",
                   help="clips without a 'mode' column are split 70/15/15 by video with this seed (default 0)")
    add_verbosity_flags(p, quiet_help="no progress bar; only warnings and errors")
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.extract.media import MediaLimits
    from decalign.extract.pipeline import ExtractConfig, extract_folder

    config = ExtractConfig(
        text_model=None if args.text == "none" else args.text,
        audio=args.audio, vision=args.vision, vision_model=args.vision_model, openface_dir=args.openface_dir,
        text_max_length=args.text_max_len, audio_rate=args.audio_rate, fps=args.fps, sample_rate=args.sample_rate,
        max_audio_len=args.max_audio_len, max_vision_len=args.max_vision_len,
        limits=MediaLimits(max_seconds=args.max_clip_seconds),
    )
    result = extract_folder(args.media, config, args.out, transcripts=args.transcripts, labels=args.labels,
                            split_seed=args.split_seed, report=args.report, fmt=args.format, workers=args.workers,
                            cache_dir=args.cache or None, cache=not args.no_cache, skip_failed=args.skip_failed,
                            progress=not args.quiet and sys.stderr.isatty(),  # a bar at a terminal, not in logs
                            overwrite=args.overwrite)
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    widths = ", ".join(f"{m} {r.width}-d" for m, r in result.provenance.extractors.items())
    print(f"clips: {len(result.outcomes)} ({summary}); {len(result.included)} in the dataset")
    print(f"features: {widths}")
    print(f"dataset: {result.dataset}")
    print(f"report: {result.report}")
    return 0
