"""``benchmarks/`` measures speed and memory; it is not a second product.

A capability a user may want (a baseline, a comparison, cross-validation) lives in the package,
where it is trained by the engine, written through the run directory and tested. The rule, checked
on every ``benchmarks/*.py`` (imports anywhere in the file, inside functions too):

1. **It times or measures memory**: it imports ``time``, ``resource`` or ``tracemalloc``.
2. **No training protocol of its own**: it does not reach the per-seed protocol or its results
   (``decalign.api.train`` / ``cross_validate`` / ``evaluate_checkpoint`` / ``predict_checkpoint``,
   ``decalign.train.engine.fit_seed`` / ``evaluate``, ``decalign.bench``, ``decalign.sweep``) nor
   score predictions (``decalign.metrics``, ``decalign.runs``). Timing the engine's own steps is a
   measurement and allowed (``train_epoch``, ``make_optimizer``, a forward and backward on random
   inputs); so is making fixture runs through the product (``decalign.testing.runs``).
3. **No run writer**: it does not import what writes a run directory (``decalign.train.rundir``,
   ``decalign.train.history``, ``decalign.train.model_card``, ``save_checkpoint``) or a CSV of
   results (``decalign.safety.cells``); it writes only its own measurement files.
4. **Nothing from the test suite**: no ``tests`` import and no ``tests/`` on ``sys.path`` (the
   references the benchmarks compare against live in :mod:`decalign.testing`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

MEASURES = {"time", "resource", "tracemalloc"}

FORBIDDEN_MODULES = {
    "decalign.bench": "the bench command trains runs",
    "decalign.sweep": "a sweep trains runs",
    "decalign.metrics": "scoring predictions is the product's (decalign report)",
    "decalign.runs": "comparing runs is the product's (decalign report)",
    "decalign.train.rundir": "the run directory's writer",
    "decalign.train.history": "the run directory's history and prediction writers",
    "decalign.train.model_card": "the run directory's model card",
    "decalign.safety.cells": "a results CSV writer",
}
FORBIDDEN_NAMES = {
    ("decalign.api", "train"): "the training protocol",
    ("decalign.api", "cross_validate"): "the training protocol",
    ("decalign.api", "evaluate_checkpoint"): "scoring a model",
    ("decalign.api", "predict_checkpoint"): "a prediction writer",
    ("decalign.train.engine", "fit_seed"): "the per-seed protocol (training, selection, test)",
    ("decalign.train.engine", "evaluate"): "scoring a model",
    ("decalign.train.checkpoint", "save_checkpoint"): "the run directory's checkpoint writer",
}


def violations(source: str) -> list[str]:
    """What breaks the rule (module docstring) in one benchmark's source."""
    tree = ast.parse(source)
    found: list[str] = []
    imported: set[str] = set()

    def module_rule(module: str) -> None:
        imported.add(module.split(".")[0])
        if module == "tests" or module.startswith(("tests.", "conftest")):
            found.append(f"imports {module} (the test suite)")
        for banned, why in FORBIDDEN_MODULES.items():
            if module == banned or module.startswith(banned + "."):
                found.append(f"imports {module}: {why}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module_rule(alias.name)
                for (module, name), why in FORBIDDEN_NAMES.items():
                    if alias.name == f"{module}.{name}":
                        found.append(f"imports {alias.name}: {why}")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            module_rule(node.module)
            for alias in node.names:
                module_rule(f"{node.module}.{alias.name}")
                why = FORBIDDEN_NAMES.get((node.module, alias.name))
                if why:
                    found.append(f"imports {alias.name} from {node.module}: {why}")
        elif isinstance(node, ast.Attribute):
            # `import decalign.api as api; api.train(...)` and `decalign.api.train(...)` alike
            dotted = ast.unparse(node)
            for (module, name), why in FORBIDDEN_NAMES.items():
                if dotted in (f"{module}.{name}", f"{module.rpartition('.')[2]}.{name}"):
                    found.append(f"uses {module}.{name}: {why}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value.rstrip("/").endswith("/tests") or node.value == "tests"):
            found.append(f"names the test suite's folder ({node.value!r})")
    if not imported & MEASURES:
        found.append(f"measures nothing: imports none of {sorted(MEASURES)}")
    return sorted(set(found))


def _scripts() -> list[Path]:
    return sorted(BENCHMARKS.glob("*.py"))


def test_there_are_benchmarks_to_check() -> None:
    assert {p.name for p in _scripts()} >= {"bench_step.py", "bench_finetune.py", "bench_load.py"}


@pytest.mark.parametrize("script", _scripts(), ids=lambda p: p.name)
def test_a_benchmark_measures_and_neither_trains_nor_writes_runs(script: Path) -> None:
    assert violations(script.read_text(encoding="utf-8")) == []


def test_the_rule_catches_a_training_script_and_allows_a_timed_epoch() -> None:
    """What ``benchmarks/text_finetune.py`` and ``video_cv.py`` were, and what ``bench_finetune.py`` is."""
    trains = '''
import json, time
from decalign.metrics import metrics_for
from decalign.safety.cells import csv_writer
from real_table import run_row
def seed(model, data):
    for epoch in range(3):
        model(data).backward()
'''
    found = violations(trains)
    assert any("decalign.metrics" in v for v in found) and any("decalign.safety.cells" in v for v in found)
    writes_runs = '''
import time
import decalign.api as api
from decalign.train.rundir import RunDir
api.train(config, data, "runs/x")
'''
    found = violations(writes_runs)
    assert "uses decalign.api.train: the training protocol" in found
    assert any("decalign.train.rundir" in v for v in found)
    assert violations("import time\nimport decalign.api\ndecalign.api.cross_validate(c, d, 'o')\n") == [
        "uses decalign.api.cross_validate: the training protocol"]
    assert violations("import sys\nsys.path.insert(0, 'tests')\nfrom tests.test_x import ref\n") == [
        "imports tests.test_x (the test suite)", "imports tests.test_x.ref (the test suite)",
        "measures nothing: imports none of ['resource', 'time', 'tracemalloc']",
        "names the test suite's folder ('tests')"]
    timed = '''
import time
from decalign.train.engine import make_optimizer, train_epoch
start = time.perf_counter()
train_epoch(model, split, config, make_optimizer(model, config), None, "cpu", None)
'''
    assert violations(timed) == []
