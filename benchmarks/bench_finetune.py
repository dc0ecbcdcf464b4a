"""Benchmark: a training epoch of DecAlign with the fine-tuned BERT text encoder on real data.

For each variant (below) and thread count it runs, in a fresh subprocess, ``--epochs`` training
epochs of the engine's own :func:`decalign.train.loop.train_epoch` on the train split of an
MMSA pickle that carries ``text_bert`` (e.g. mosi-dev, built by its ``build.py``), with the MOSI
preset (batch 32, Adam, gradient clipping), and records:

* wall and CPU seconds of each epoch (the first epoch of a cached variant also fills the cache of
  the frozen layers, so it is reported apart from the steady epochs);
* peak resident memory (``ru_maxrss``) of the subprocess, and its growth over the size after the
  data and model were loaded;
* the thread count, the load average before and after (a shared machine shows here), the number
  of trainable parameters and the cache size.

Variants: ``features`` (precomputed text features, no encoder: the floor), ``full`` (every BERT
parameter fine-tuned, the released option), ``topK`` (the top K layers fine-tuned with the frozen
layers cached) and ``topK-nocache`` (the same without the cache).

    python benchmarks/bench_finetune.py --data /tmp/mosi_dev.pkl --bert $(python build.py --model-dir)
    python benchmarks/bench_finetune.py --data D --bert B --variants full top2 --threads 2 --epochs 2

Results go to ``benchmarks/results/finetune.json`` (``--merge`` adds to it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _variant_overrides(variant: str, bert: str) -> list[str]:
    if variant == "features":
        return []
    base = ["model.text_encoder.kind=bert", f"model.text_encoder.path={bert}"]
    if variant == "full":
        return base
    if variant.startswith("top"):
        k, _, suffix = variant[3:].partition("-")
        cache = suffix != "nocache"
        return [*base, f"model.text_encoder.train_layers={int(k)}", f"model.text_encoder.cache_frozen={cache}"]
    raise SystemExit(f"unknown variant {variant!r}: features, full, topK or topK-nocache")


def _rss_mb() -> float:
    """Peak resident set of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(args: argparse.Namespace) -> None:
    """One variant at one thread count, in this (fresh) process; prints a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from decalign.api import prepare, resolve_config
    from decalign.config import DataConfig
    from decalign.data import load_dataset
    from decalign.train.checkpoint import build_model
    from decalign.train.distributed import Context
    from decalign.train.loop import train_epoch
    from decalign.train.optim import make_optimizer
    from decalign.train.seeding import seed_everything

    dataset = load_dataset(args.data, DataConfig(dataset="mosi"))
    config = resolve_config(dataset, "mosi", _variant_overrides(args.variant, args.bert))
    prepared = prepare(config, dataset)
    seed_everything(0)
    model = build_model(config, prepared.info)
    optimizer = make_optimizer(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    encoder = getattr(model, "text_encoder", None)
    rss_loaded = _rss_mb()
    generator = torch.Generator().manual_seed(0)
    device = torch.device("cpu")
    epochs = []
    for _ in range(args.epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        train_epoch(model, prepared.splits["train"], config, optimizer, generator, device, Context.single(),
                    prepared.metric_fn, progress=False)
        epochs.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
    cache = getattr(encoder, "cache", None)
    print(json.dumps({
        "variant": args.variant, "threads": args.threads, "epochs": epochs,
        "train_samples": len(prepared.splits["train"]), "batch_size": config.train.batch_size,
        "trainable_parameters": trainable, "cached_samples": len(cache) if cache is not None else None,
        "peak_rss_mb": _rss_mb(), "rss_after_load_mb": rss_loaded,
    }))


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="MMSA pickle with text_bert (e.g. mosi-dev)")
    parser.add_argument("--bert", required=True, help="local HuggingFace model folder of the text encoder")
    parser.add_argument("--variants", nargs="+", default=["features", "full", "top2", "top1", "top2-nocache"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per variant (>= 2: the first fills caches)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "finetune.json")
    parser.add_argument("--merge", action="store_true", help="add to the results already in --output")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.variant, args.threads = args.child, args.threads[0]
        _child(args)
        return
    results: list[dict[str, Any]] = []
    commands: list[str] = []
    if args.merge and args.output.exists():
        previous = json.loads(args.output.read_text())
        results, commands = previous["results"], previous["meta"].get("commands", [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for threads in args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        for variant in args.variants:
            load_before = os.getloadavg()
            out = subprocess.run(
                [sys.executable, __file__, "--data", args.data, "--bert", args.bert, "--threads", str(threads),
                 "--epochs", str(args.epochs), "--child", variant],
                capture_output=True, text=True, env=env, check=False,
            )
            if out.returncode != 0:
                raise SystemExit(f"variant {variant} ({threads} threads) failed:\n{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["loadavg_before"], row["loadavg_after"] = list(load_before), list(os.getloadavg())
            steady = row["epochs"][1:] or row["epochs"]
            row["steady_epoch_wall_s"] = min(e["wall_s"] for e in steady)
            row["steady_epoch_cpu_s"] = min(e["cpu_s"] for e in steady)
            results = [r for r in results if (r["variant"], r["threads"]) != (variant, threads)] + [row]
            print(f"{variant:>14} {threads} thread(s): first epoch {row['epochs'][0]['wall_s']:.1f}s, steady "
                  f"{row['steady_epoch_wall_s']:.1f}s wall / {row['steady_epoch_cpu_s']:.1f}s cpu, "
                  f"peak RSS {row['peak_rss_mb']:.0f} MiB, load {row['loadavg_before'][0]:.1f}", flush=True)
    import torch

    commands.append("python benchmarks/bench_finetune.py " + " ".join(
        a if not a.startswith("/") else Path(a).name for a in sys.argv[1:]))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
            "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(), "git_commit": _git_commit(), "commands": commands}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"results: {args.output}")


if __name__ == "__main__":
    main()
