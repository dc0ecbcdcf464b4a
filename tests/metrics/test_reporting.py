"""Aggregation over seeds, paper-style formatting, tables and the paper's reported numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from decalign.metrics import EMOTION_KEYS, SENTIMENT_KEYS, SIMS_KEYS
from decalign.metrics.display import (
    PAPER_RESULTS,
    aggregate,
    format_mean_std,
    format_table,
    format_value,
    higher_is_better,
    is_percentage,
)

SEEDS = [
    {"acc2_non0": 0.80, "mae": 0.7},
    {"acc2_non0": 0.82, "mae": 0.8},
    {"acc2_non0": 0.84, "mae": 0.6},
]


def test_aggregate_hand_computed_sample_std() -> None:
    agg = aggregate(SEEDS)
    # acc: mean 0.82, deviations -0.02, 0, 0.02 -> sum of squares 0.0008 / (3 - 1) -> std 0.02
    # (the population std would be sqrt(0.0008 / 3) = 0.0163).
    assert agg["mean"]["acc2_non0"] == pytest.approx(0.82)
    assert agg["std"]["acc2_non0"] == pytest.approx(0.02)
    # mae: mean 0.7, deviations 0, 0.1, -0.1 -> 0.02 / 2 -> std 0.1.
    assert agg["mean"]["mae"] == pytest.approx(0.7)
    assert agg["std"]["mae"] == pytest.approx(0.1)
    assert agg["n"] == 3
    assert list(agg["mean"]) == ["acc2_non0", "mae"]
    assert all(type(v) is float for v in [*agg["mean"].values(), *agg["std"].values()])
    assert agg["std"]["mae"] == pytest.approx(np.std([0.7, 0.8, 0.6], ddof=1))


def test_aggregate_single_seed_has_zero_std() -> None:
    agg = aggregate([{"acc7": 0.45}])
    assert agg == {"mean": {"acc7": 0.45}, "std": {"acc7": 0.0}, "n": 1, "std_kind": "sample"}


def test_aggregate_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        aggregate([])
    with pytest.raises(ValueError, match=r"seed #1 .*missing \['mae'\]"):
        aggregate([{"acc7": 0.4, "mae": 0.8}, {"acc7": 0.5}])
    with pytest.raises(ValueError, match="'acc7' has a non-numeric"):
        aggregate([{"acc7": "high"}])


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("acc2_non0", 0.8575, "85.75"),
        ("f1_has0", 0.5, "50.00"),
        ("acc7", 0.45071, "45.07"),
        ("wacc", 0.73351, "73.35"),
        ("waf1", 1.0, "100.00"),
        ("acc_happy", 0.125, "12.50"),
        ("f1_frustrated", 0.0, "0.00"),
        ("acc3", 2 / 3, "66.67"),
        ("mae", 0.7354, "0.735"),
        ("mse", 2.0, "2.000"),
        ("corr", 0.8116, "0.812"),
        ("loss", 1.23456, "1.235"),
        ("task_loss", -0.5, "-0.500"),
        ("test_acc7", 0.45, "45.00"),
        ("valid/f1", 0.8185, "81.85"),
        ("val_mae", 0.4031, "0.403"),
        ("epoch", 12, "12"),
        ("lr", 6e-05, "6e-05"),
        ("mae", float("nan"), "nan"),
    ],
)
def test_format_value(key: str, value: float, text: str) -> None:
    assert format_value(key, value) == text


def test_format_mean_std() -> None:
    assert format_mean_std("acc2_non0", 0.8575, 0.0031) == "85.75 ± 0.31"
    assert format_mean_std("mae", 0.735, 0.0123) == "0.735 ± 0.012"
    assert format_mean_std("mae", 0.735) == "0.735"


def test_direction() -> None:
    assert higher_is_better("acc2_non0") is True
    assert higher_is_better("corr") is True
    assert higher_is_better("waf1") is True
    assert higher_is_better("mae") is False
    assert higher_is_better("mse") is False
    assert higher_is_better("test_loss") is False
    assert higher_is_better("epoch") is None
    assert is_percentage("f1_sad") and not is_percentage("corr")


def test_markdown_table_bold_best_with_direction() -> None:
    rows = {
        "A": {"acc2_non0": 0.86, "mae": 0.75},
        "B": {"acc2_non0": 0.85, "mae": 0.73},
    }
    # Higher accuracy wins (A), lower MAE wins (B).
    assert format_table(rows, style="markdown", bold_best=True, row_header="model") == (
        "| model | acc2_non0 | mae |\n"
        "|---|---:|---:|\n"
        "| A | **86.00** | 0.750 |\n"
        "| B | 85.00 | **0.730** |"
    )
    assert "**" not in format_table(rows, style="markdown")


def test_bold_ties_at_display_precision() -> None:
    # 0.85751 and 0.85749 both print as 85.75: both are best.
    rows = {"A": {"acc7": 0.85751}, "B": {"acc7": 0.85749}, "C": {"acc7": 0.5}}
    table = format_table(rows, style="markdown", bold_best=True)
    assert table.count("**85.75**") == 2
    assert "**50.00**" not in table


def test_text_table_with_aggregates_and_missing_cells() -> None:
    rows = {
        "ours": aggregate(SEEDS),
        "paper": {"acc2_non0": 0.8575},
    }
    table = format_table(rows, keys=["acc2_non0", "mae"], bold_best=True)
    assert table == (
        "mean ± sample std     acc2_non0            mae\n"
        "ours               82.00 ± 2.00  0.700 ± 0.100\n"
        "paper                   85.75 *              –"
    )


def test_table_accepts_a_single_aggregate() -> None:
    table = format_table(aggregate(SEEDS), style="markdown")
    assert table.splitlines()[2] == "| result | 82.00 ± 2.00 | 0.700 ± 0.100 |"


def test_table_rejects_unknown_style() -> None:
    with pytest.raises(ValueError, match="style"):
        format_table({"A": {"mae": 0.1}}, style="html")  # type: ignore[arg-type]


def test_paper_results_keys_units_and_display() -> None:
    allowed = {
        "mosi": set(SENTIMENT_KEYS),
        "mosei": set(SENTIMENT_KEYS),
        "sims": set(SIMS_KEYS),
        "iemocap": set(EMOTION_KEYS),
    }
    assert set(PAPER_RESULTS) == set(allowed)
    for bench, rows in PAPER_RESULTS.items():
        assert "DecAlign" in rows
        for row in rows.values():
            assert set(row) <= allowed[bench]
            for key, value in row.items():
                # Stored as fractions: the printed value reads back to the stored one exactly.
                text = format_value(key, value)
                scale = 100 if is_percentage(key) else 1
                assert math.isclose(float(text) / scale, value, abs_tol=1e-12), (bench, key)
                assert 0 < value < 1
    mosi = PAPER_RESULTS["mosi"]["DecAlign"]
    assert [format_value(k, mosi[k]) for k in ("mae", "corr", "acc2_non0", "acc7", "f1_non0")] == [
        "0.735", "0.811", "85.75", "45.07", "85.82"
    ]
    assert format_value("f1", PAPER_RESULTS["sims"]["DecAlign"]["f1"]) == "81.85"
    assert format_value("waf1", PAPER_RESULTS["iemocap"]["DecAlign"]["waf1"]) == "73.43"
    assert PAPER_RESULTS["mosei"]["w/o prototype OT"] == {"mae": 0.624, "f1_non0": 0.8503}
    assert PAPER_RESULTS["mosi"]["MulT"]["acc7"] == 0.4005


def test_paper_results_are_read_only() -> None:
    with pytest.raises(TypeError):
        PAPER_RESULTS["mosi"]["DecAlign"]["mae"] = 0.1  # type: ignore[index]
    # ...and print like our own rows.
    table = format_table(PAPER_RESULTS["sims"], style="markdown", bold_best=True)
    assert "| DecAlign | **0.403** | **81.85** |" in table
