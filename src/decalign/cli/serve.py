"""``decalign serve``: the web app and HTTP API over the runs in a folder
(:func:`decalign.serve.app.serve`, docs/serve.md). FastAPI and uvicorn are the ``serve`` extra,
imported when the app is built."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from decalign.cli.common import Subparsers, add_verbosity_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help,
                              description="Serve every run directory under --runs: results, curves, classes, "
                              "missing-modality table, samples and transport plans, a try-it page, and a JSON API "
                              "(docs/serve.md). Listens on 127.0.0.1 unless --host says otherwise, which needs "
                              "--token.")
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder of run directories (default: runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                   "only; any other needs --token)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--token", default=None, help="a secret every request must carry (Authorization: Bearer "
                   "TOKEN, or ?token=TOKEN once in a browser); default: $DECALIGN_SERVE_TOKEN")
    p.add_argument("--threads", type=int, default=4, help="worker threads for loading and inference (default: 4)")
    p.add_argument("--cache", type=int, default=4, metavar="N", help="checkpoints kept loaded (default: 4)")
    p.add_argument("--max-upload-mb", type=float, default=64.0, help="largest upload in MiB (default: 64)")
    p.add_argument("--max-json-mb", type=float, default=8.0, help="largest JSON body in MiB (default: 8)")
    p.add_argument("--device", default="cpu", help="where models run: cpu (default), cuda, auto")
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.serve.app import ServeConfig, serve

    serve(ServeConfig(
        runs=Path(args.runs),
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get("DECALIGN_SERVE_TOKEN") or None,
        max_json_bytes=int(args.max_json_mb * 2**20),
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        cache_size=args.cache,
        threads=args.threads,
        device=args.device,
    ))
    return 0
