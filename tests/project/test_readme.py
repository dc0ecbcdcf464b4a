"""The README's commands stay true: CI runs its test command verbatim, and every command its CLI
table names exists."""

from __future__ import annotations

import re
from pathlib import Path

from decalign.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    blocks = _code_blocks(README)
    test_commands = [b for b in blocks if "pytest" in b]
    assert len(test_commands) == 1, test_commands
    assert test_commands[0] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_quick_start_installs_and_trains() -> None:
    first = _code_blocks(README)[0]
    assert first.startswith("pip install") and first.endswith("decalign train")


def test_every_cli_table_command_exists() -> None:
    table_commands = set(re.findall(r"^\| `decalign (\w+)", README, flags=re.M))
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert table_commands and table_commands <= set(sub.choices)  # type: ignore[arg-type]
