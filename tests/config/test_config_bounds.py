"""``--config`` files are bounded before any value is built (issue 25): size, nesting, elements
with aliases counted at full size, recursive aliases, UTF-8; one line naming the file (and the
key or line); values reach the config as parsed, never through text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from decalign.cli import main
from decalign.config import CONFIG_FILE_LIMITS, ConfigError, ConfigFileLimits, apply_overrides, read_config_file
from decalign.config.presets import get_preset


def _bomb(levels: int = 9) -> str:
    """Aliases nested ``levels`` deep inside a valid key: 9 copies per level, 9^levels elements
    (4e8 for 9 levels) in a few hundred bytes."""
    lines = ["model:", "  modalities:", '    - &a ["x","x","x","x","x","x","x","x","x"]']
    prev = "a"
    for i in range(levels - 1):
        name = chr(98 + i)
        lines.append(f"    - &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: 344 bytes of aliases in a valid key expanded to 4e8 elements (MemoryError after
    87 s). Refused while still a graph of a few dozen nodes, naming the file and the key."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert path.stat().st_size < 400
    start = time.perf_counter()
    assert main(["train", "--config", str(path), "--dump-config", str(tmp_path / "x.json")]) == 2
    assert time.perf_counter() - start < 30  # generous: milliseconds in practice (the old path took 87 s)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "'model.modalities" in err
    assert "expands to more than 100000 elements" in err and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(("text", "words"), [
    ("a: &a [*a]\n", "recursive alias"),
    ("train:\n  seeds: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 32 levels"),
    ('{"train": {"seeds": ' + "[" * 5000 + "]" * 5000 + "}}", "nested deeper than 32 levels"),
    ("train:\n  lr: " + "9" * 100_000 + "\n", "holds a value that cannot be read"),
    ("a: \x00\n", "is not valid YAML"),
])
def test_hostile_documents_are_one_line_naming_the_file(tmp_path: Path, text: str, words: str) -> None:
    """Issue cases: a recursive alias, a 5000-deep list (YAML and JSON): tracebacks or hangs."""
    path = tmp_path / ("c.json" if text.startswith("{") else "c.yaml")
    path.write_text(text)
    with pytest.raises(ConfigError, match=words) as info:
        read_config_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    """Issue case: a 50 MB file was read and parsed."""
    path = tmp_path / "big.yaml"
    with open(path, "wb") as fh:
        fh.write(b"a: ")
        fh.truncate(50 << 20)
    with pytest.raises(ConfigError, match=r"larger than 1048576 bytes"):
        read_config_file(path)


def test_binary_bytes_name_the_file_line_and_byte(tmp_path: Path) -> None:
    """Issue case: binary config files gave a decode error naming neither file nor position."""
    path = tmp_path / "c.yaml"
    path.write_bytes(b"train:\n  lr: 1\n\x89PNG\xff\xfe")
    with pytest.raises(ConfigError, match=r"c\.yaml', line 3 \(byte 15\): not UTF-8") as info:
        read_config_file(path)
    assert "\n" not in str(info.value)


def test_the_bounds_are_declared_once_and_can_be_tightened(tmp_path: Path) -> None:
    assert ConfigFileLimits() == CONFIG_FILE_LIMITS and CONFIG_FILE_LIMITS.max_depth == 32
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  seeds: [1, 2, 3, 4]\n")
    assert read_config_file(path) == {"train.seeds": [1, 2, 3, 4]}
    with pytest.raises(ConfigError, match="more than 5 elements"):
        read_config_file(path, ConfigFileLimits(max_elements=5))
    with pytest.raises(ConfigError, match="larger than 10 bytes"):
        read_config_file(path, ConfigFileLimits(max_bytes=10))


def test_values_are_passed_as_parsed_not_through_text(tmp_path: Path) -> None:
    """Issue case: values went through json.dumps into ``key=value`` texts parsed again. A YAML
    string that reads as JSON stays a string; a pair override is applied as it is."""
    from decalign.cli.common import config_file_overrides

    path = tmp_path / "c.yaml"
    path.write_text("preset: mosi\ntrain:\n  selection_metric: '1e-4'\n  seeds: [7]\n")

    class Args:
        config, data, dataset, preset = str(path), None, None, None

    overrides = config_file_overrides(Args())  # type: ignore[arg-type]
    assert overrides == [("train.selection_metric", "1e-4"), ("train.seeds", [7])]
    config = apply_overrides(get_preset("mosi"), overrides)
    assert config.train.selection_metric == "1e-4" and config.train.seeds == (7,)
