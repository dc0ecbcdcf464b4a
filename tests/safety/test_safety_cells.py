"""CSV cells decalign writes back cannot become spreadsheet formulas (issue 25): one escape,
:func:`decalign.safety.cells.escape_cell`, used by every CSV writer; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from decalign.safety.cells import csv_writer, escape_cell

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_starts_get_a_leading_quote(text: str) -> None:
    assert escape_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-0.5, "-0.5", "+3", "-inf", "1e-4", 0, 2.5, None, "plain", "a=b", "", "'=x"])
def test_numbers_and_ordinary_text_are_unchanged(value: object) -> None:
    assert escape_cell(value) == value


def test_the_writer_escapes_every_cell_and_keeps_numbers_readable() -> None:
    buf = io.StringIO()
    csv_writer(buf, lineterminator="\n").writerow(["=1+1", -0.5, "-0.5", "id,with,commas"])
    row = next(csv.reader(io.StringIO(buf.getvalue())))
    assert row == ["'=1+1", "-0.5", "-0.5", "id,with,commas"] and float(row[1]) == -0.5


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_prediction_files_escape_hostile_ids_and_class_names(tmp_path: Path) -> None:
    """Issue case: predictions were written with the data's ids raw."""
    from decalign.train.history import write_predictions

    path = write_predictions(tmp_path / "p.csv", np.array(["=cmd|'/C calc'!A0", "ok"]), np.array([-1.5, 2.0]),
                             np.array([-0.25, 1.0]), None)
    rows = _rows(path)
    assert rows[0]["id"] == "'=cmd|'/C calc'!A0" and rows[1]["id"] == "ok"
    assert [float(r["prediction"]) for r in rows] == [-0.25, 1.0] and float(rows[0]["label"]) == -1.5
    path = write_predictions(tmp_path / "c.csv", np.array(["a"]), np.array([0]), np.array([[2.0, -1.0]]),
                             ["@neg", "pos"])
    row = _rows(path)[0]
    assert row["label"] == row["predicted"] == "'@neg" and "p_'@neg" not in row  # headers are ours


def test_extract_reports_escape_clip_ids_paths_and_details(tmp_path: Path) -> None:
    """Issue case: the extract report wrote clip ids and media paths from the transcripts raw."""
    from decalign.extract.report import ClipOutcome, write_report

    outcome = ClipOutcome("=1+2", "-x.mp4", "train", detail="@note")
    path = write_report(tmp_path / "extract_report.csv", [outcome], set())
    row = _rows(path)[0]
    assert row["sample_id"] == "'=1+2" and row["media"] == "'-x.mp4" and row["detail"] == "'@note"
