"""docs/method.md states facts the code must keep: the preset table is compared with
:mod:`decalign.config.presets`, and every setting of the method's configuration is documented there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from decalign.config import ModelConfig, ObjectiveConfig, config_to_dict, flat_keys
from decalign.config.presets import get_preset

METHOD = Path(__file__).resolve().parents[2] / "docs" / "method.md"
BENCHMARK_PRESETS = ("mosi", "mosei", "sims", "iemocap")


def _section(number: int) -> str:
    text = METHOD.read_text(encoding="utf-8")
    match = re.search(rf"^## {number}\. .*?(?=^## \d+\. |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/method.md has no section {number}"
    return match.group(0)


def _cell(value: Any) -> str:
    """A config value as the table writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}".replace("e-0", "e-")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        if (
            len(value) > 2
            and all(isinstance(v, int) for v in value)
            and value == list(range(value[0], value[0] + len(value)))
        ):
            return f"{value[0]}–{value[-1]}"
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _preset_table() -> tuple[list[str], dict[str, list[str]]]:
    rows: dict[str, list[str]] = {}
    header: list[str] = []
    for line in _section(12).splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "key":
            header = [c.strip("`") for c in cells[1:]]
        elif cells and cells[0].startswith("`") and header:
            rows[cells[0].strip("`")] = cells[1:]
    return header, rows


def test_preset_table_matches_the_presets() -> None:
    header, rows = _preset_table()
    assert header == list(BENCHMARK_PRESETS)
    assert len(rows) >= 30
    configs = {name: config_to_dict(get_preset(name)) for name in BENCHMARK_PRESETS}
    wrong = []
    for key, cells in rows.items():
        for name, cell in zip(header, cells, strict=True):
            value: Any = configs[name]
            for part in key.split("."):
                value = value[part]
            if _cell(value) != cell:
                wrong.append(f"{key} [{name}]: docs say {cell!r}, the preset has {_cell(value)!r}")
    assert not wrong, "docs/method.md §12 disagrees with decalign.config.presets:\n" + "\n".join(wrong)


def test_cell_format_reads_back_each_kind_of_value() -> None:
    assert _cell(6e-05) == "6e-5"
    assert _cell([1111, 1112, 1113]) == "1111–1113"
    assert _cell([0.5, 99.5]) == "0.5, 99.5"
    assert _cell({"default": 0.0, "text": 0.1}) == "default 0, text 0.1"
    assert _cell(None) == "–" and _cell(True) == "true"


@pytest.mark.parametrize("cls,prefix", [(ModelConfig, "model."), (ObjectiveConfig, "objective.")])
def test_every_method_setting_is_documented(cls: type, prefix: str) -> None:
    """Each switch and hyper-parameter of the model and the objective is named in docs/method.md."""
    text = METHOD.read_text(encoding="utf-8")
    keys = [prefix + k for k in flat_keys(cls)]
    missing = [k for k in keys if k not in text and f".{k.rsplit('.', 1)[-1]}`" not in text]
    assert not missing, f"settings not explained in docs/method.md: {missing}"
