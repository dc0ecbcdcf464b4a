"""``benchmarks/valid_halves.py``: the two files split the validation split by video, swap the
halves' roles, keep the train split and never carry a clip of the original test split."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "valid_halves.py"


def _split(videos: dict[str, int], offset: float) -> dict[str, np.ndarray]:
    ids = np.array([f"{v}$_${k}" for v, n in videos.items() for k in range(1, n + 1)])
    n = len(ids)
    return {"id": ids, "text": np.full((n, 4, 3), offset, np.float32),
            "regression_labels": np.arange(n, dtype=np.float32), "text_lengths": np.full(n, 4, np.int64)}


def test_halves_by_video_swap_roles_and_leave_the_test_split_out(tmp_path: Path) -> None:
    data = {"train": _split({"t1": 5, "t2": 3}, 0.0),
            "valid": _split({"a": 7, "b": 5, "c": 4, "d": 3, "e_x": 2}, 1.0),  # "e_x": a video id with "_"
            "test": _split({"z": 6}, 2.0)}
    source = tmp_path / "data.pkl"
    source.write_bytes(pickle.dumps(data, protocol=4))
    subprocess.run([sys.executable, str(SCRIPT), str(source), str(tmp_path / "h")], check=True, capture_output=True)
    a = pickle.loads((tmp_path / "h_a.pkl").read_bytes())
    b = pickle.loads((tmp_path / "h_b.pkl").read_bytes())

    def videos(split: dict[str, np.ndarray]) -> set[str]:
        return {str(i).rsplit("$_$", 1)[0] for i in split["id"]}

    assert videos(a["valid"]) == videos(b["test"]) and videos(a["test"]) == videos(b["valid"])
    assert not videos(a["valid"]) & videos(a["test"])  # no video in both halves
    assert videos(a["valid"]) | videos(a["test"]) == {"a", "b", "c", "d", "e_x"}
    # largest first, each to the smaller half: a (7) | b (5) + c (4) | d (3) to a | e_x (2) to b
    assert videos(a["valid"]) == {"a", "d"} and len(a["valid"]["id"]) == 10 and len(a["test"]["id"]) == 11
    for out in (a, b):
        assert sorted(out) == ["test", "train", "valid"]
        np.testing.assert_array_equal(out["train"]["id"], data["train"]["id"])
        for split in ("valid", "test"):  # every per-clip array cut alike, nothing of the original test
            s = out[split]
            assert len(s["text"]) == len(s["id"]) == len(s["regression_labels"]) == len(s["text_lengths"])
            assert np.all(s["text"] == 1.0)
        order = {i: k for k, i in enumerate(data["valid"]["id"])}
        for split in ("valid", "test"):
            s = out[split]
            np.testing.assert_array_equal(s["regression_labels"], [order[i] for i in s["id"]])


def test_a_missing_or_unsplit_file_is_a_one_line_error(tmp_path: Path) -> None:
    missing = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nope.pkl"), str(tmp_path / "h")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].endswith("nope.pkl: file not found")
    one_video = tmp_path / "one.pkl"
    one_video.write_bytes(pickle.dumps({"train": _split({"t": 2}, 0.0), "valid": _split({"a": 3}, 1.0)}, protocol=4))
    refused = subprocess.run([sys.executable, str(SCRIPT), str(one_video), str(tmp_path / "h")],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "1 video(s); two halves need at least 2" in refused.stderr
    assert not (tmp_path / "h_a.pkl").exists()
