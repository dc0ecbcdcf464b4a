"""``benchmarks/video_cv.py``: folds by whole video over train + valid, each video tested once,
the original test split never read; the table's paired differences to the probe."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "video_cv.py"


def _split(videos: dict[str, int], offset: float) -> dict[str, np.ndarray]:
    ids = np.array([f"{v}$_${k}" for v, n in videos.items() for k in range(1, n + 1)])
    n = len(ids)
    return {"id": ids, "text": np.full((n, 4, 3), offset, np.float32),
            "regression_labels": np.arange(n, dtype=np.float32) + 100 * offset,
            "text_lengths": np.full(n, 4, np.int64)}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def _videos(split: dict[str, np.ndarray]) -> set[str]:
    return {str(i).rsplit("$_$", 1)[0] for i in split["id"]}


def test_folds_rotate_whole_videos_and_never_read_the_test_split(tmp_path: Path) -> None:
    data = {"train": _split({"a": 9, "b": 6, "c": 5, "d": 2}, 0.0),
            "valid": _split({"e": 4, "f_x": 3}, 1.0),  # "f_x": a video id with "_"
            "test": _split({"z": 6}, 2.0)}
    source = tmp_path / "data.pkl"
    source.write_bytes(pickle.dumps(data, protocol=4))
    done = _run("split", str(source), str(tmp_path / "f"), "--folds", "3")
    assert done.returncode == 0, done.stderr
    folds = [pickle.loads((tmp_path / f"f_{k}.pkl").read_bytes()) for k in (1, 2, 3)]
    tested = [_videos(f["test"]) for f in folds]
    # largest first, each to the fold with the fewest clips (ties to the lower index):
    # a(9), b(6), c(5) -> 9, 6, 5; e(4) -> fold 3 (9); f_x(3) -> fold 2 (9); d(2) -> fold 1 (11)
    assert tested == [{"a", "d"}, {"b", "f_x"}, {"c", "e"}]
    for k, fold in enumerate(folds):
        assert _videos(fold["valid"]) == tested[(k + 1) % 3]  # the next fold selects
        assert _videos(fold["train"]) == set().union(*tested) - tested[k] - tested[(k + 1) % 3]
        for split in fold.values():
            n = len(split["id"])
            assert len(split["text"]) == len(split["regression_labels"]) == len(split["text_lengths"]) == n
            assert not np.any(split["text"] == 2.0)  # nothing of the original test split
        # every per-clip array cut alike: a clip keeps its own label
        labels = {str(i): float(y) for s in ("train", "valid")
                  for i, y in zip(data[s]["id"], data[s]["regression_labels"])}
        for split in fold.values():
            assert [labels[str(i)] for i in split["id"]] == split["regression_labels"].tolist()


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    missing = _run("split", str(tmp_path / "nope.pkl"), str(tmp_path / "f"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "nope.pkl" in missing.stderr
    few = tmp_path / "few.pkl"
    few.write_bytes(pickle.dumps({"train": _split({"a": 2}, 0.0), "valid": _split({"b": 2}, 1.0)}, protocol=4))
    too_few = _run("split", str(few), str(tmp_path / "f"), "--folds", "3")
    assert too_few.returncode == 2 and "2 videos cannot fill 3 folds" in too_few.stderr
    odd = {"train": _split({"a": 2, "b": 2, "c": 2}, 0.0), "valid": _split({"d": 2}, 1.0)}
    odd["valid"]["text"] = np.zeros((2, 5, 3), np.float32)
    (tmp_path / "odd.pkl").write_bytes(pickle.dumps(odd, protocol=4))
    shapes = _run("split", str(tmp_path / "odd.pkl"), str(tmp_path / "f"), "--folds", "3")
    assert shapes.returncode == 2 and "key 'text' has per-clip shapes" in shapes.stderr
    no_k = _run("table", "x=" + str(tmp_path / "run"))
    assert no_k.returncode == 2 and "needs {k}" in no_k.stderr
    unfinished = _run("table", "--folds", "3", "x=" + str(tmp_path / "run_{k}"))
    assert unfinished.returncode == 2 and "no seed_*/result.json" in unfinished.stderr
    assert f"error: {tmp_path / 'run_1'}: no seed_" in unfinished.stderr  # the path itself, no repr
    table = subprocess.run([sys.executable, str(SCRIPT.with_name("real_table.py")), "x=" + str(tmp_path / "run")],
                           capture_output=True, text=True)
    assert table.returncode == 2 and "Traceback" not in table.stderr
    assert f"error: {tmp_path / 'run'}: no seed_*/result.json" in table.stderr


def test_table_pairs_each_fold_with_its_probe(tmp_path: Path) -> None:
    probe_corr = [0.5, 0.7, 0.6]
    model_corr = [[0.55, 0.65], [0.70, 0.72], [0.50, 0.60]]  # fold means 0.60, 0.71, 0.55
    for k in range(3):
        (tmp_path / f"probe_{k + 1}.json").write_text(json.dumps(
            {"text": {"alpha": 1.0, "test": {"corr": probe_corr[k], "mae": 1.0}}}))
        for s, corr in enumerate(model_corr[k]):
            seed = tmp_path / f"run_{k + 1}" / f"seed_{s}"
            seed.mkdir(parents=True)
            (seed / "result.json").write_text(json.dumps({"test": {"corr": corr, "mae": 0.9 + 0.2 * s}}))
    done = _run("table", "--folds", "3", "--keys", "corr,mae", "--probes", str(tmp_path / "probe_{k}.json"),
                "w_bin=0.1=" + str(tmp_path / "run_{k}"))  # a label may hold "="
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    diffs = np.array([0.60 - 0.5, 0.71 - 0.7, 0.55 - 0.6])
    means = np.array([0.60, 0.71, 0.55])
    assert f"| w_bin=0.1 | {means.mean():.3f} ± {means.std(ddof=1):.3f} | 1.000 ± 0.000 |" in lines
    # corr ahead in 2 of 3 folds; mae 1.0 against the probe's 1.0: a tie is not ahead
    assert f"| w_bin=0.1 | {diffs.mean():.3f} ± {diffs.std(ddof=1):.3f} (2/3) | 0.000 ± 0.000 (0/3) |" in lines


def test_fewer_than_three_folds_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "data.pkl"
    data = {"train": _split({"a": 2, "b": 2}, 0.0), "valid": _split({"c": 2}, 1.0)}
    source.write_bytes(pickle.dumps(data, protocol=4))
    done = _run("split", str(source), str(tmp_path / "f"), "--folds", "2")
    assert done.returncode == 2 and "need at least 3" in done.stderr
