"""``decalign report --distribution``: the median, worst and best seed of a setting, and the
modality check's decisions, over seeds pooled from one or more run directories (issue 28)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from decalign.cli import main
from decalign.config import config_to_dict
from decalign.config.presets import get_preset
from decalign.errors import RunDirError, UsageError
from decalign.runs import parse_groups, seed_distribution


def _run(root: Path, name: str, seeds: dict[int, tuple[float, float]], *, check: bool = True,
         restart_seed: int | None = None) -> Path:
    """A finished run directory: per seed (test acc2_non0, test mae); valid = test - 1 point."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config_to_dict(get_preset("synthetic"))))
    (run / "dataset.json").write_text(json.dumps({"kind": "synthetic", "task": "regression",
                                                  "label_range": [-3.0, 3.0]}))
    entries = {}
    for seed, (acc, mae) in seeds.items():
        entry = {"seed": seed, "best_epoch": 3, "epochs_run": 5, "test": {"acc2_non0": acc, "mae": mae},
                 "valid": {"acc2_non0": acc - 0.01, "mae": mae + 0.1}}
        if check:
            entry.update(modalities_left_out=["audio"] if seed % 2 else [], left_out_epochs={},
                         modality_check=[{"action": "restart", "modality": "text", "epoch": 4}]
                         if seed == restart_seed else [])
        entries[str(seed)] = entry
        (run / f"seed_{seed}").mkdir()
    (run / "results.json").write_text(json.dumps({"seeds": entries}))
    return run


def test_median_worst_and_best_closed_form(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", {1: (0.80, 0.9), 2: (0.70, 1.2), 3: (0.85, 0.8)}, restart_seed=2)
    b = _run(tmp_path, "b", {4: (0.82, 0.95)})
    dist = seed_distribution({"both": [a, b]}, metrics=["acc2_non0", "mae"])
    by = {(s.split, s.metric): s for s in dist.spreads}
    acc = by[("test", "acc2_non0")]
    assert (acc.seeds, acc.median, acc.worst, acc.worst_seed, acc.best) == (4, pytest.approx(0.81), 0.70, 2, 0.85)
    mae = by[("test", "mae")]  # lower is better: the worst seed has the largest error
    assert (mae.median, mae.worst, mae.worst_seed, mae.best) == (pytest.approx(0.925), 1.2, 2, 0.8)
    assert by[("valid", "acc2_non0")].worst == pytest.approx(0.69)
    assert dist.checks["both"] == {"seeds": 4, "left_out": {"audio": 2}, "take_back": 0, "restart": 1}
    text = dist.to_markdown()
    assert "| both | test | 4 | 81.00 / 70.00 (2) / 85.00 |" in text and "audio 2/4" in text


def test_groups_and_errors(tmp_path: Path) -> None:
    assert parse_groups(["x=a,b", "c", "w=0.1=d"]) == {"x": [Path("a"), Path("b")], "c": [Path("c")],
                                                       "w=0.1": [Path("d")]}
    with pytest.raises(UsageError, match="given twice"):
        parse_groups(["x=a", "x=b"])
    a = _run(tmp_path, "a", {1: (0.8, 1.0)})
    again = _run(tmp_path, "again", {1: (0.7, 1.0)})
    with pytest.raises(RunDirError, match="seed 1 is in two"):
        seed_distribution({"x": [a, again]})
    plain = _run(tmp_path, "plain", {1: (0.8, 1.0)}, check=False)
    assert seed_distribution({"p": [plain]}).checks == {}  # no check, no check row


def test_the_command_prints_and_writes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _run(tmp_path, "a", {1: (0.80, 0.9), 2: (0.70, 1.2)})
    out = tmp_path / "dist"
    args = ["report", "--distribution", f"mine={a}", "--metrics", "acc2_non0", "--out", str(out)]
    assert main(args) == 0
    assert "| mine | test | 2 | 75.00 / 70.00 (2) / 80.00 |" in capsys.readouterr().out
    assert (out / "distribution.csv").read_text().splitlines()[1].startswith("mine,test,acc2_non0,2,")
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err  # nothing replaced silently


def test_hostile_flags_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _run(tmp_path, "a", {1: (0.80, 0.9)})
    assert main(["report", "--distribution", str(a), "--metrics", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--metrics nosuch" in err and "acc2_non0" in err
    assert main(["report", str(a), "--bootstrap", "1000000000000"]) == 2  # unbounded work refused
    assert "--bootstrap must be in [1, 100000]" in capsys.readouterr().err
