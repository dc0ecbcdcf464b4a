"""``decalign serve``: the command line of the web app (docs/serve.md). Imports nothing heavy
until it runs; FastAPI and uvicorn are the ``serve`` extra."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from decalign.cli_common import add_verbosity_flags

__all__ = ["add_parser", "run"]

log = logging.getLogger("decalign")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="a local web app over the runs in a folder, and an HTTP API to predict",
                       description="Serve every run directory under --runs: results, curves, classes, "
                       "missing-modality table, samples and transport plans, a try-it page, and a JSON API "
                       "(docs/serve.md). Listens on 127.0.0.1 unless --host says otherwise, which needs --token.")
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


def run(args: argparse.Namespace) -> int:
    from decalign._optional import require
    from decalign.serve.app import ServeConfig, create_app

    config = ServeConfig(
        runs=Path(args.runs),
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get("DECALIGN_SERVE_TOKEN") or None,
        max_json_bytes=int(args.max_json_mb * 2**20),
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        cache_size=args.cache,
        threads=args.threads,
        device=args.device,
    )
    app = create_app(config)
    uvicorn = require("uvicorn", "serve", feature="decalign serve")
    log.info("decalign serve: %d run(s) under %s on http://%s:%d/", len(app.state.decalign.index.names()),
             config.runs, config.host, config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", server_header=False)
    return 0
