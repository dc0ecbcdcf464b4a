"""Benchmark: loading a MOSEI-sized pickle with ``load_dataset`` vs a plain ``pickle.load``.

Writes a file in the CMU-MOSEI unaligned layout (``unaligned_50.pkl``: text 50x768, audio 500x74,
vision 500x35 float32 per sample, float ``text_bert``, length lists, object-array ids and
transcripts, a few ``-inf`` in audio) of about ``--size-gb`` GB of arrays into a temporary
directory, then measures in fresh subprocesses, ``--repeats`` times each (interleaved):

(a) ``pickle.load`` (the unsafe baseline: what MMSA does),
(b) ``decalign.data.load_pickle`` (the restricted unpickler alone),
(c) ``decalign.data.load_dataset`` (restricted unpickling + validation + non-finite repair),

reporting wall time (median) and peak resident memory (``ru_maxrss``, max over repeats), their
ratios to (a) and to the file's array bytes. Targets: (c) <= ~2x the time of (a), and peak memory
<= ~1.5x the array bytes. Results go to ``benchmarks/results/load.json``.

    OMP_NUM_THREADS=1 python benchmarks/bench_load.py            # ~2 GB
    OMP_NUM_THREADS=1 python benchmarks/bench_load.py --size-gb 0.2 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Per-sample layout of CMU-MOSEI unaligned (docs/data.md) and its split proportions.
T_TEXT, T_AUDIO, T_VISION = 50, 500, 500
D_TEXT, D_AUDIO, D_VISION = 768, 74, 35
MOSEI_SPLITS = {"train": 16326, "valid": 1871, "test": 4659}


def _sample_bytes() -> int:
    floats = T_TEXT * D_TEXT + T_AUDIO * D_AUDIO + T_VISION * D_VISION
    return floats * 4 + 3 * T_TEXT * 8 + 4 + 4  # features, float64 text_bert, labels


def generate(path: Path, size_gb: float, seed: int, protocol: int) -> dict[str, int]:
    """Write the benchmark file; return split sizes and the array bytes written."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)
    total = max(3, round(size_gb * 1e9 / _sample_bytes()))
    weight = sum(MOSEI_SPLITS.values())
    sizes = {k: max(1, round(total * v / weight)) for k, v in MOSEI_SPLITS.items()}
    data: dict[str, dict[str, object]] = {}
    array_bytes = 0
    for name, n in sizes.items():
        sp: dict[str, object] = {}

        def feats(t: int, d: int, n: int = n) -> np.ndarray:
            x = rng.random((n, t, d), dtype=np.float32)
            x -= 0.5
            return x

        sp["text"] = feats(T_TEXT, D_TEXT)
        for m, t, d in (("audio", T_AUDIO, D_AUDIO), ("vision", T_VISION, D_VISION)):
            x = feats(t, d)
            lengths = rng.integers(1, t + 1, size=n)
            for i0 in range(0, n, 256):  # zero padding, in blocks to keep the mask small
                x[i0 : i0 + 256][np.arange(t)[None, :] >= lengths[i0 : i0 + 256, None]] = 0.0
            sp[m] = x
            sp[f"{m}_lengths"] = [int(v) for v in lengths]
        flat = sp["audio"].reshape(-1)  # type: ignore[union-attr]
        flat[rng.choice(flat.size, size=max(1, flat.size // 100_000), replace=False)] = -np.inf
        mask = (np.arange(T_TEXT)[None, :] < rng.integers(5, T_TEXT + 1, size=n)[:, None]).astype(np.float64)
        sp["text_bert"] = np.stack([rng.integers(1000, 30000, size=(n, T_TEXT)) * mask, mask, np.zeros_like(mask)], 1)
        sp["regression_labels"] = (np.round(rng.uniform(-3, 3, size=n) * 3) / 3).astype(np.float32)
        sp["classification_labels"] = np.sign(sp["regression_labels"]).astype(np.float32) + 1  # type: ignore[arg-type]
        ids = np.empty(n, dtype=object)
        ids[:] = [f"vid{i // 4:05d}$_${i % 4}" for i in range(n)]
        text = np.empty(n, dtype=object)
        text[:] = [f"transcript of segment {i} in split {name}" for i in range(n)]
        sp["id"], sp["raw_text"] = ids, text
        array_bytes += sum(v.nbytes for v in sp.values() if isinstance(v, np.ndarray) and v.dtype != object)
        data[name] = sp
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=protocol)
    return {"array_bytes": array_bytes, **{f"n_{k}": v for k, v in sizes.items()}}


CHILD = r"""
import json, resource, sys, time, warnings
mode, path = sys.argv[1], sys.argv[2]
import numpy as np
if mode != "plain":
    import decalign.data as dd
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
if mode == "plain":
    import pickle
    with open(path, "rb") as fh:
        obj = pickle.load(fh)
elif mode == "restricted":
    obj = dd.load_pickle(path)
else:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = dd.load_dataset(path)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
notes = list(obj.notes) if mode == "load_dataset" else []
print(json.dumps({"seconds": seconds, "peak_rss": peak, "baseline_rss": base, "notes": notes}))
"""


def run_child(mode: str, path: Path) -> dict[str, object]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path)], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gb", type=float, default=2.0, help="array bytes of the file, in GB (default 2)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--protocol", type=int, default=4, help="pickle protocol of the file (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmpdir", default=None, help="where to write the file (default: system temp)")
    ap.add_argument("--out", default=str(HERE / "results" / "load.json"))
    ap.add_argument("--generate-only", default=None, metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.generate_only:
        print(json.dumps(generate(Path(args.generate_only), args.size_gb, args.seed, args.protocol)))
        return 0

    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "unaligned_50.pkl"
        t0 = time.perf_counter()
        # Generate in a subprocess: a child's ru_maxrss starts at its parent's high-water mark
        # (Linux carries it over fork/exec), so this process must never hold the data itself.
        gen = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--generate-only", str(path),
             "--size-gb", str(args.size_gb), "--seed", str(args.seed), "--protocol", str(args.protocol)],
            check=True, capture_output=True, text=True,
        )
        info = json.loads(gen.stdout.strip().splitlines()[-1])
        gen_s = time.perf_counter() - t0
        file_bytes = path.stat().st_size
        print(f"wrote {path.name}: {file_bytes / 1e9:.2f} GB file, {info['array_bytes'] / 1e9:.2f} GB arrays "
              f"(train/valid/test {info['n_train']}/{info['n_valid']}/{info['n_test']}) in {gen_s:.1f} s")
        modes = ("plain", "restricted", "load_dataset")
        all_runs: dict[str, list[dict[str, object]]] = {m: [] for m in modes}
        for _ in range(args.repeats):  # interleaved, so drifting machine load hits all alike
            for mode in modes:
                all_runs[mode].append(run_child(mode, path))
        results: dict[str, dict[str, object]] = {}
        for mode, runs in all_runs.items():
            results[mode] = {
                "seconds_median": statistics.median(float(r["seconds"]) for r in runs),  # type: ignore[arg-type]
                "seconds_all": [r["seconds"] for r in runs],
                "peak_rss_bytes": max(int(r["peak_rss"]) for r in runs),  # type: ignore[call-overload]
                "baseline_rss_bytes": max(int(r["baseline_rss"]) for r in runs),  # type: ignore[call-overload]
                "notes": runs[-1]["notes"],
            }
    arr = info["array_bytes"]
    plain_s = float(results["plain"]["seconds_median"])  # type: ignore[arg-type]
    rows = []
    for mode, r in results.items():
        s, peak = float(r["seconds_median"]), int(r["peak_rss_bytes"])  # type: ignore[arg-type,call-overload]
        r["time_vs_plain"] = s / plain_s
        r["peak_vs_array_bytes"] = peak / arr
        rows.append((mode, s, s / plain_s, peak / 1e9, peak / arr))
    print(f"\n{'loader':<14} {'time s':>8} {'x plain':>8} {'peak GB':>8} {'x arrays':>9}")
    for mode, s, ratio, peak_gb, mem_ratio in rows:
        print(f"{mode:<14} {s:8.2f} {ratio:8.2f} {peak_gb:8.2f} {mem_ratio:9.2f}")
    ours = results["load_dataset"]
    ok = float(ours["time_vs_plain"]) <= 2.0 and float(ours["peak_vs_array_bytes"]) <= 1.5  # type: ignore[arg-type]
    print(f"\ntargets (load_dataset <= 2x plain time, peak <= 1.5x array bytes): {'met' if ok else 'NOT met'}")
    report = {
        "benchmark": "load MOSEI-unaligned-layout pickle",
        "size_gb_requested": args.size_gb,
        "file_bytes": file_bytes,
        "generate_seconds": gen_s,
        "pickle_protocol": args.protocol,
        "repeats": args.repeats,
        **info,
        "results": results,
        "targets_met": ok,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
