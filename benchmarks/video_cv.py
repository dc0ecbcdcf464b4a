"""Cross-validation by video on the train and valid splits: a less noisy comparison than 9 videos.

A held-out split of a small corpus has few videos (mosi-dev: 9 in valid, 9 in test), and two
configurations a point apart on one split can swap places on the other. This script pools an
MMSA-layout pickle's **train and valid** splits (its test split is left out, so nothing here
reads it), cuts the pooled clips into ``K`` folds **by video**, and writes ``K`` files: in file
``k`` fold ``k`` is the test split, fold ``k+1`` (mod ``K``) the validation split that a run
selects its epoch on, and the other ``K-2`` folds the training split. Every video is tested
once, by a model that neither trained nor selected on it::

    python benchmarks/video_cv.py split mosi_dev.pkl cv/fold --folds 5     # cv/fold_1.pkl .. _5
    decalign probe --data cv/fold_1.pkl --sets text --json cv/probe_1.json  # and so on per fold
    decalign train --data cv/fold_1.pkl --dataset mosi --out cv/recipe_1 ...
    python benchmarks/video_cv.py table --folds 5 --probes "cv/probe_{k}.json" \\
        "recipe=cv/recipe_{k}" "frozen=cv/frozen_{k}"

``table`` prints, per configuration, the mean over folds of each fold's seed mean (± the std
over folds), and the **paired** difference to the text probe fold by fold: the folds share
their videos, so the difference is much less noisy than either number, and ``ahead`` counts the
folds where the configuration beats the probe. Folds are balanced greedily (videos largest
first, each to the fold with the fewest clips so far), so they differ by at most one video.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from real_table import run_row  # the sibling script (benchmarks/ is on the path when run)

__all__ = ["fold_of_clips", "main", "pool", "video_of"]

KEYS = ("mae", "corr", "acc2_non0", "f1_non0", "acc7")


def video_of(clip_id: str) -> str:
    """The video a clip id belongs to: the id up to its last ``$_$`` (CMU-MOSI, MOSEI) or ``_``."""
    for sep in ("$_$", "_"):
        if sep in clip_id:
            return clip_id.rsplit(sep, 1)[0]
    return clip_id


def fold_of_clips(ids: np.ndarray, k: int) -> np.ndarray:
    """``[N]`` fold index (0..k-1) of each clip: whole videos, largest first, each to the fold
    with the fewest clips so far (ties to the lower index)."""
    videos = np.array([video_of(str(i)) for i in ids])
    names, counts = np.unique(videos, return_counts=True)
    if len(names) < k:
        raise ValueError(f"{len(names)} videos cannot fill {k} folds")
    sizes = [0] * k
    fold_of_video: dict[str, int] = {}
    for j in sorted(range(len(names)), key=lambda j: (-counts[j], names[j])):
        f = min(range(k), key=lambda f: (sizes[f], f))
        fold_of_video[str(names[j])] = f
        sizes[f] += int(counts[j])
    return np.array([fold_of_video[v] for v in videos])


def _per_clip(split: dict[str, Any]) -> dict[str, np.ndarray]:
    n = len(split["id"])
    return {k: v for k, v in split.items() if isinstance(v, np.ndarray) and v.shape[:1] == (n,)}


def pool(data: dict[str, Any], names: tuple[str, ...] = ("train", "valid")) -> dict[str, np.ndarray]:
    """The splits ``names`` of an MMSA-layout dict as one: every per-clip array concatenated.
    Only keys that every split has, with the same trailing shape, are kept; others are an error
    that names the key, since a fold file without them would train differently."""
    parts = []
    for name in names:
        if name not in data or "id" not in data[name]:
            raise ValueError(f"no {name!r} split with clip ids ({name!r} -> 'id')")
        parts.append(_per_clip(data[name]))
    keys = set(parts[0])
    for name, part in zip(names, parts):
        if set(part) != keys:
            raise ValueError(f"split {name!r} has per-clip keys {sorted(part)}, {names[0]!r} has {sorted(keys)}")
    out = {}
    for key in sorted(keys):
        shapes = {p[key].shape[1:] for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"key {key!r} has per-clip shapes {sorted(shapes)} in {list(names)}; pad them alike first")
        out[key] = np.concatenate([p[key] for p in parts])
    return out


def write_folds(data: dict[str, Any], stem: Path, k: int) -> list[Path]:
    """Write ``stem_1.pkl`` .. ``stem_k.pkl`` (see the module docstring); return their paths."""
    if k < 3:
        raise ValueError(f"--folds {k}: need at least 3 (a test, a validation and a training fold)")
    pooled = pool(data)
    fold = fold_of_clips(pooled["id"], k)
    paths = []
    for f in range(k):
        role = {"test": fold == f, "valid": fold == (f + 1) % k}
        role["train"] = ~(role["test"] | role["valid"])
        out = stem.parent / f"{stem.name}_{f + 1}.pkl"
        with open(out, "wb") as fh:
            pickle.dump({s: {key: v[role[s]] for key, v in pooled.items()} for s in ("train", "valid", "test")},
                        fh, protocol=4)
        n_videos = {s: len({video_of(str(i)) for i in pooled["id"][m]}) for s, m in role.items()}
        print(f"wrote {out}: " + ", ".join(f"{s} {int(role[s].sum())} clips of {n_videos[s]} videos"
                                           for s in ("train", "valid", "test")))
        paths.append(out)
    return paths


def _cell(key: str, values: list[float]) -> str:
    from decalign.metrics.display import format_mean_std

    return format_mean_std(key, statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None)


def table(rows: dict[str, list[dict[str, float]]], baseline: str | None, keys: tuple[str, ...]) -> str:
    """Markdown: per row the mean ± std over folds; with ``baseline``, the paired difference
    to it (mean ± std over folds) and the folds where the row is better than it. Accuracies and
    F1 in points (x 100), the rest with three decimals, as ``decalign`` prints them."""
    from decalign.metrics.display import higher_is_better

    lines = ["| mean over folds ± std | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for label, folds in rows.items():
        lines.append(f"| {label} | " + " | ".join(_cell(k, [f[k] for f in folds]) for k in keys) + " |")
    if baseline is not None and len(rows) > 1:
        lines += ["", f"| paired difference to {baseline} (ahead in folds) | " + " | ".join(keys) + " |",
                  "|---|" + "---:|" * len(keys)]
        base = rows[baseline]
        for label, folds in rows.items():
            if label == baseline:
                continue
            cells = []
            for key in keys:
                diff = [f[key] - b[key] for f, b in zip(folds, base)]
                sign = -1 if higher_is_better(key) is False else 1
                ahead = sum(sign * d > 0 for d in diff)
                cells.append(f"{_cell(key, diff)} ({ahead}/{len(diff)})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("split", help="write the fold files")
    sp.add_argument("input", type=Path, help="an MMSA-layout pickle (e.g. mosi_dev.pkl)")
    sp.add_argument("stem", type=Path, help="output path without suffix: writes STEM_1.pkl .. STEM_K.pkl")
    sp.add_argument("--folds", type=int, default=5)
    tp = sub.add_parser("table", help="compare run directories and probes fold by fold")
    tp.add_argument("runs", nargs="*", metavar="LABEL=DIR", help="a row label and its run directory, "
                    "with {k} for the fold number (1..K)")
    tp.add_argument("--folds", type=int, default=5)
    tp.add_argument("--probes", metavar="FILE", help="`decalign probe --json` files, with {k} for the fold")
    tp.add_argument("--probe-set", default="text", help="which probe of the files is the baseline (default: text)")
    tp.add_argument("--keys", default=",".join(KEYS), help="comma-separated metric columns")
    args = ap.parse_args(argv)
    from decalign.data.safe_pickle import load_pickle
    from decalign.errors import DecalignError

    if args.command == "split":
        try:
            data = load_pickle(args.input)
            if args.stem.parent.resolve() == args.input.resolve().parent and \
                    any(args.input.name == f"{args.stem.name}_{f + 1}.pkl" for f in range(args.folds)):
                raise ValueError("an output would overwrite the input")
            write_folds(data, args.stem, args.folds)
        except (DecalignError, OSError, ValueError) as err:
            ap.error(f"{args.input}: {err}")
        return
    keys = tuple(args.keys.split(","))
    rows: dict[str, list[dict[str, float]]] = {}
    baseline = None
    try:
        if args.probes:
            baseline = f"ridge {args.probe_set}"
            rows[baseline] = []
            for f in range(1, args.folds + 1):
                path = Path(args.probes.format(k=f))
                probes = json.loads(path.read_text())
                if args.probe_set not in probes:
                    raise ValueError(f"{path}: no probe {args.probe_set!r} (has {sorted(probes)})")
                rows[baseline].append({key: probes[args.probe_set]["test"][key] for key in keys})
        for spec in args.runs:
            label, _, pattern = spec.rpartition("=")  # a label may hold "=", a directory not
            if "{k}" not in pattern:
                raise ValueError(f"{spec!r}: the directory needs {{k}} for the fold number")
            rows[label] = [run_row([Path(pattern.format(k=f))], "test", keys)["mean"]
                           for f in range(1, args.folds + 1)]
    except (OSError, ValueError, KeyError) as err:
        ap.error(str(err))
    print(table(rows, baseline, keys))


if __name__ == "__main__":
    main()
