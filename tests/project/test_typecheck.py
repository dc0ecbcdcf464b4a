"""The package's public surface type-checks: ``ty`` (in the ``test`` extra) over the modules that
``[tool.ty.src] include`` of ``pyproject.toml`` lists, the same check ``ty check`` at the
repository root runs. ty was chosen for CI time: about 3 s on two cores for these modules, where
mypy took 50-100 s (it analyses torch's stubs)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]


def _checked() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ty"]["src"]["include"])


def test_the_checked_modules_exist_and_cover_the_public_surface() -> None:
    """ty skips an ``include`` entry that names nothing, so a moved module would silently leave
    the check: every entry must exist."""
    checked = _checked()
    missing = [p for p in checked if not (ROOT / p).exists()]
    assert not missing, f"[tool.ty.src] include names paths that do not exist: {missing}"
    for required in ("src/decalign/api.py", "src/decalign/inference.py", "src/decalign/data",
                     "src/decalign/model", "src/decalign/losses.py", "src/decalign/metrics", "src/decalign/runs"):
        assert required in checked, f"{required} left the type check"


def test_public_surface_type_checks() -> None:
    if importlib.util.find_spec("ty") is None:
        pytest.skip("the type checker ty is not installed (it is in the test extra: pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "ty", "check", "--project", str(ROOT), "--python", sys.executable,
         "--output-format", "concise", "--no-progress", "--color", "never"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, f"ty found type errors:\n{result.stdout}{result.stderr}"
