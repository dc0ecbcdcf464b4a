"""Benchmark: ``decalign serve`` under load, over real HTTP on this machine.

The server (``python -m decalign serve`` in its own process, ``--threads`` workers for
inference) serves a folder of runs; client threads of this process send requests as fast as the
server answers them:

* ``POST /api/predict`` with one sample's raw features (MOSI-shaped: text 50 x 768, audio
  50 x 5, vision 50 x 20, as JSON), ``--concurrency`` requests in flight;
* ``POST /api/predict/media`` with a generated 5 s clip (video 10 fps 128 x 128 with a face,
  speech-like audio) and its transcript: decoding, text/audio/face features, prediction.

Each answer includes the prediction with every modality and with each one left out (four
forward passes). Reported: requests/s, latency p50/p95/max (ms), failures, the server's worker
threads, the client's concurrency, torch's thread count and the machine (CPU count, load
average before and after).

    python benchmarks/bench_serve.py                       # tiny runs made in a temporary folder
    python benchmarks/bench_serve.py --runs runs --feature-run synthetic --requests 500
    python benchmarks/bench_serve.py --threads 1 2 4 --concurrency 8

Without ``--runs`` it trains a tiny run on the built-in data and one on extracted clips (about a
minute), the runs of the tests. Results go to ``benchmarks/results/serve.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _load(http: Any, n: int, concurrency: int, send: Any) -> dict[str, Any]:
    """``n`` requests from ``concurrency`` client threads: rate and latency."""
    latencies: list[float] = []
    failures: list[str] = []

    def one(_: int) -> None:
        began = time.perf_counter()
        response = send(http)
        latencies.append(time.perf_counter() - began)
        if response.status_code != 200:
            failures.append(f"{response.status_code}: {response.text[:120]}")

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - began
    return {
        "requests": n,
        "concurrency": concurrency,
        "seconds": round(wall, 3),
        "requests_per_s": round(n / wall, 2),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * _percentile(latencies, 95), 1),
        "max_ms": round(1000 * max(latencies), 1),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
    }


@contextlib.contextmanager
def _server(runs: Path, threads: int, port: int) -> Iterator[str]:
    """``python -m decalign serve`` in a child process until the block ends; yields its URL."""
    import httpx

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-m", "decalign", "serve", "--runs", str(runs), "--port", str(port),
                              "--threads", str(threads), "-q"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"decalign serve did not start (exit code {child.poll()})")
            time.sleep(0.2)
        yield base
    finally:
        child.terminate()
        child.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", help="folder of runs (default: tiny runs made in a temporary folder)")
    parser.add_argument("--feature-run", default="synthetic", help="run name for /api/predict")
    parser.add_argument("--media-run", default="clips", help="run name for /api/predict/media ('' to skip)")
    parser.add_argument("--threads", type=int, nargs="+", default=[4], help="server worker threads")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (feature input)")
    parser.add_argument("--requests", type=int, default=300, help="feature requests per thread count")
    parser.add_argument("--media-requests", type=int, default=12, help="media requests per thread count")
    parser.add_argument("--media-concurrency", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    args = parser.parse_args(argv)

    import httpx
    import numpy as np
    import torch

    import decalign
    from decalign.serve.background import free_port

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    if args.runs:
        runs = Path(args.runs)
    else:
        from decalign.testing.runs import media_run, synthetic_run

        runs = work / "runs"
        print("bench_serve: training the tiny runs ...", file=sys.stderr)
        synthetic_run(runs / args.feature_run)
        if args.media_run:
            media_run(runs / args.media_run, work / "media")
    feature_dir = runs / args.feature_run
    ckpt = decalign.load_checkpoint(sorted(feature_dir.glob("seed_*/model.safetensors"))[0])
    split = decalign.load_dataset(ckpt.config.data.path, ckpt.config.data).splits["test"]
    body = {"run": args.feature_run, "features": {m: split.features[m][0].tolist() for m in split.modalities}}
    payload = json.dumps(body).encode()
    clip = None
    if args.media_run:
        from decalign.testing.media import write_media

        clip = write_media(work / "clip_5s.mp4", 5.0, fps=10, size=128, f0=170.0).read_bytes()

    def send_features(http: Any) -> Any:
        return http.post("/api/predict", content=payload, headers={"content-type": "application/json"})

    def send_media(http: Any) -> Any:
        return http.post("/api/predict/media", data={"run": args.media_run, "transcript": "what a wonderful film"},
                         files={"file": ("clip_5s.mp4", clip, "video/mp4")})

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_before": os.getloadavg()},
        "feature_input": {m: list(np.shape(v)) for m, v in body["features"].items()},
        "feature_body_bytes": len(payload),
        "model": {"architecture": ckpt.config.model.architecture, "d_model": ckpt.config.model.d_model,
                  "parameters": sum(p.numel() for p in ckpt.model.parameters())},
        "media_clip": {"seconds": 5.0, "bytes": len(clip) if clip else 0} if clip else None,
        "runs": [],
    }
    for threads in args.threads:
        with _server(runs, threads, free_port()) as base, httpx.Client(base_url=base, timeout=600) as http:
            for _ in range(5):  # load the model, warm the caches
                send_features(http)
            row: dict[str, Any] = {"server_threads": threads,
                                   "predict": _load(http, args.requests, args.concurrency, send_features)}
            if clip is not None:
                send_media(http)  # build the extractors once
                row["predict_media"] = _load(http, args.media_requests, args.media_concurrency, send_media)
                row["media_timings_example"] = send_media(http).json().get("timings")
        print(json.dumps(row), file=sys.stderr)
        results["runs"].append(row)
    results["machine"]["load_after"] = os.getloadavg()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"bench_serve: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
