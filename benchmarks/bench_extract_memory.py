"""Benchmark: peak memory of extracting one long clip (issue 25: decoding kept every frame).

A black 640x640 H.264 clip of 120 s (tens of KB) used to cost +1.45 GB while its frames were all
held before face detection. Decoding now streams frames into the vision extractor one at a time
and stops at :class:`decalign.extract.media.MediaLimits`, so memory no longer grows with
duration x resolution. This benchmark generates the clips with PyAV
(:func:`decalign.testing.media.write_blank_video`) and measures, each case in a fresh subprocess,
the peak resident memory above the process baseline (``VmHWM`` after ``Extractors.extract`` minus
``VmRSS`` just before it, with the high-water mark reset in between) for:

* ``clip_120s``: the 120 s clip, default limits (target: under 300 MB above the baseline);
* ``hour_default_limits``: a one-hour clip (1 fps source) under the default limits: refused as
  ``too long`` before decoding;
* ``hour_streamed``: the same hour with ``max_clip_seconds`` raised to let it decode in full
  (3600 frames through face detection): memory is bounded the same way as for 120 s;
* with ``--held``, ``held_120s``: the 120 s clip's frames collected in a list (what the old
  decoding did), for comparison; it needs about 1.5 GB.

Results go to ``benchmarks/results/extract_memory.json``.

    OMP_NUM_THREADS=1 python benchmarks/bench_extract_memory.py
    OMP_NUM_THREADS=1 python benchmarks/bench_extract_memory.py --held
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_MB = 300


def _status(key: str) -> int:
    """``VmRSS``/``VmHWM`` of this process in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _measure(case: str, clip: str, fps: float, max_seconds: float) -> dict[str, object]:
    """Run in the subprocess: build the extractors, then extract (or hold frames) once."""
    import gc

    from decalign.extract.inputs import Clip
    from decalign.extract.media import MediaLimits, read_frames
    from decalign.extract.pipeline import ExtractConfig, Extractors

    config = ExtractConfig(text_model=None, audio="egemaps", vision="hog", fps=fps,
                           limits=MediaLimits(max_seconds=max_seconds))
    extractors = Extractors(config)
    item = Clip("c", "c", None, Path(clip), None, None, "", 0.0, "test")
    gc.collect()
    baseline = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    began = time.perf_counter()
    if case == "held":
        frames, _ = read_frames(clip, fps)
        result: dict[str, object] = {"frames": len(frames), "status": "frames held"}
    else:
        _, outcome = extractors.extract(item)
        result = {"frames": outcome.sampled_frames, "status": outcome.status, "detail": outcome.detail[:200]}
    seconds = time.perf_counter() - began
    peak = _status("VmHWM")
    return {**result, "baseline_rss_bytes": baseline, "peak_rss_bytes": peak,
            "peak_above_baseline_mb": round((peak - baseline) / 2**20, 1), "seconds": round(seconds, 2)}


def _run_case(case: str, clip: Path, fps: float, max_seconds: float) -> dict[str, object]:
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import bench_extract_memory as b; "
            f"print(json.dumps(b._measure({case!r}, {str(clip)!r}, {fps}, {max_seconds})))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the short clip (default 120)")
    parser.add_argument("--hour", type=float, default=3600.0, help="length of the long clip (default 3600)")
    parser.add_argument("--held", action="store_true", help="also measure the frames held in a list (~1.5 GB)")
    parser.add_argument("--out", default=str(HERE / "results" / "extract_memory.json"))
    args = parser.parse_args()

    from decalign.extract.media import MEDIA_LIMITS
    from decalign.testing.media import write_blank_video

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        short = write_blank_video(Path(tmp) / "black_120s.mp4", args.seconds, size=640, fps=25)
        long = write_blank_video(Path(tmp) / "black_hour.mp4", args.hour, size=640, fps=1)
        generate = time.perf_counter() - began
        cases = [("clip_120s", "extract", short, 10.0, MEDIA_LIMITS.max_seconds),
                 ("hour_default_limits", "extract", long, 10.0, MEDIA_LIMITS.max_seconds),
                 ("hour_streamed", "extract", long, 10.0, args.hour + 60)]
        if args.held:
            cases.append(("held_120s", "held", short, 10.0, MEDIA_LIMITS.max_seconds))
        for name, case, clip, fps, max_seconds in cases:
            results[name] = {"clip_bytes": clip.stat().st_size, "fps": fps, "max_clip_seconds": max_seconds,
                             **_run_case(case, clip, fps, max_seconds)}
            print(name, json.dumps(results[name]))
    peak = results["clip_120s"].get("peak_above_baseline_mb")  # type: ignore[union-attr]
    report = {
        "benchmark": "extract memory: one black 640x640 H.264 clip through audio (egemaps) + vision (hog)",
        "target_mb_above_baseline": TARGET_MB,
        "clip_seconds": args.seconds,
        "hour_seconds": args.hour,
        "generate_seconds": round(generate, 1),
        "results": results,
        "meets_target": isinstance(peak, (int, float)) and peak < TARGET_MB,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": len(os.sched_getaffinity(0))},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"120 s clip: +{peak} MB above baseline (target < {TARGET_MB} MB); written {args.out}")
    return 0 if report["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
