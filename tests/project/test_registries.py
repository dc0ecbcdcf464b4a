"""Every list of names comes from its registry: dataset kinds, architectures, ablations, loss
terms, devices and splits. The command line's ``choices``, the config's accepted values and the
bench's rows are compared with the registries, and a source scan fails when a literal list of
registered names appears outside the registry's own module."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from decalign.cli import COMMANDS, build_parser
from decalign.config import DataConfig, ModelConfig, TrainConfig
from decalign.config.ablations import SWITCH_ABLATIONS, SWITCH_TABLE
from decalign.data.detect import (
    BENCHMARKS,
    DATASET_KINDS,
    METRIC_FAMILIES,
    SPLITS,
    file_kind_choices,
    kind_choices,
    report_columns,
)
from decalign.metrics import metric_mode, metrics_for
from decalign.model.factory import ARCHITECTURES
from decalign.model.output import LOG_KEYS, LOSS_TERMS, MODEL_LOSSES, MODEL_TERMS
from decalign.train.devices import DEVICES

SRC = Path(__file__).resolve().parents[2] / "src" / "decalign"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_cli_choice_list_is_a_registry() -> None:
    commands = _subparsers(build_parser())
    assert list(commands) == list(COMMANDS)  # every command comes from the one registry
    seen = set()
    for name, sub in commands.items():
        for action in sub._actions:
            if action.choices is None or isinstance(action, argparse._SubParsersAction):
                continue
            choices = tuple(action.choices)
            if action.dest == "dataset":
                assert choices in (kind_choices(), file_kind_choices()), name
            elif action.dest == "device":
                assert choices == DEVICES, name
            elif action.dest == "split":
                assert choices == SPLITS, name
            else:
                continue
            seen.add((name, action.dest))
    assert {("train", "dataset"), ("bench", "dataset"), ("sweep", "dataset"), ("info", "dataset"),
            ("convert", "dataset"), ("train", "device"), ("eval", "split")} <= seen


def test_the_command_table_is_the_cli_package() -> None:
    """Every module of ``decalign/cli/`` but the shared ones is a command of the table, named after
    it, with the two functions the parser and the dispatcher call."""
    import importlib
    import inspect

    shared = {"__init__", "common"}
    modules = {f.stem for f in (SRC / "cli").glob("*.py")} - shared
    assert {c.module for c in COMMANDS.values()} == {f"decalign.cli.{m}" for m in modules}
    for name, command in COMMANDS.items():
        assert command.module == f"decalign.cli.{name}"
        module = importlib.import_module(command.module)
        assert list(inspect.signature(module.add_parser).parameters) == ["subparsers", "name", "help"], name
        assert list(inspect.signature(module.run).parameters) == ["args"], name


def test_the_extras_of_the_command_table_are_those_of_pyproject_and_the_readme() -> None:
    """A command's extra is one ``pyproject.toml`` declares, and the README's extras table names
    the command in that extra's row (what ``pip install`` line a user is told)."""
    import re

    import tomllib

    root = SRC.parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", (root / "README.md").read_text(), flags=re.M))
    named = {name: c.extra for name, c in COMMANDS.items() if c.extra is not None}
    assert named, "no command names its extra"
    for name, extra in named.items():
        assert extra in extras, f"{name}: no extra {extra!r} in pyproject.toml"
        assert f"decalign {name}" in rows.get(extra, ""), f"README's row of the {extra} extra does not name {name}"


@pytest.mark.parametrize(("command", "blocked", "argv"), [
    ("sweep", "optuna", ["--trials", "1", "--out", "{tmp}/sweep"]),
    ("probe", "sklearn", []),
    ("serve", "fastapi", ["--runs", "{tmp}"]),
])
def test_a_command_without_its_extra_names_it_in_one_line(command: str, blocked: str, argv: list[str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The commands that need their extra for any work (export and extract only for some options)."""
    import sys

    from decalign.cli import main

    for name in [m for m in sys.modules if m.startswith(f"{blocked}.")]:  # imported by an earlier test
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, blocked, None)
    assert main([command, *(a.format(tmp=tmp_path) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert f"pip install 'decalign[{COMMANDS[command].extra}]'" in err and len(err.strip().splitlines()) == 1, err


def test_the_config_accepts_exactly_the_registered_names() -> None:
    def literal(cls: type, field: str) -> tuple[Any, ...]:
        return get_args(get_type_hints(cls)[field])

    assert set(literal(DataConfig, "dataset")) == {*DATASET_KINDS, "auto"}
    assert literal(ModelConfig, "architecture") == tuple(ARCHITECTURES)
    assert literal(TrainConfig, "device") == DEVICES


def test_bench_rows_and_paper_kinds_come_from_the_registries() -> None:
    from decalign.bench import MODEL_LABELS, MODELS, PAPER_KINDS
    from decalign.metrics.display import PAPER_RESULTS

    assert tuple(ARCHITECTURES) == MODELS
    assert {n: a.label for n, a in ARCHITECTURES.items()} == MODEL_LABELS
    assert set(PAPER_KINDS) == set(PAPER_RESULTS)


@pytest.mark.parametrize("kind", list(DATASET_KINDS))
def test_every_kind_has_metrics_and_report_columns(kind: str) -> None:
    spec = DATASET_KINDS[kind]
    task = spec.task or "regression"
    fn = metrics_for(kind, task, spec.label_range, spec.class_names)
    if task == "classification":
        n = len(spec.class_names or ())
        out = fn([[2.0 * (i == j) for j in range(n)] for i in range(n)], list(range(n)))
    else:
        out = fn([0.5, -0.5, 0.2, -0.1], [0.4, -0.6, 0.1, -0.2])
    columns = report_columns(kind, task, out)
    assert columns and set(columns) <= set(out)
    if spec.metrics != "auto":
        assert columns == list(METRIC_FAMILIES[spec.metrics])
    assert (spec.dims is not None) == (kind in BENCHMARKS)


def test_loss_terms_and_ablations_are_one_table_each() -> None:
    assert tuple(t.name for t in LOSS_TERMS) == LOG_KEYS and len(set(LOG_KEYS)) == len(LOG_KEYS)
    assert set(MODEL_LOSSES) <= set(LOG_KEYS) and set(MODEL_TERMS) <= set(LOG_KEYS)
    weights = {f for f in get_type_hints(__import__("decalign.config").config.ObjectiveConfig)}
    assert {t.weight for t in LOSS_TERMS if t.weight} <= weights
    assert list(SWITCH_ABLATIONS) == [a.name for a in SWITCH_TABLE]


def test_one_metric_direction() -> None:
    from decalign.metrics.display import higher_is_better

    for key in ("mae", "mse", "loss", "valid_loss"):
        assert metric_mode(key) == "min" and higher_is_better(key) is False
    for key in ("acc2_non0", "f1", "corr", "wacc", "waf1"):
        assert metric_mode(key) == "max" and higher_is_better(key) is True


# ---------------------------------------------------------------------------------------------
# no name list outside its registry

_REGISTRIES: dict[str, tuple[set[str], str]] = {
    "dataset kinds": (set(DATASET_KINDS), "data/detect.py"),
    "architectures": (set(ARCHITECTURES), "model/factory.py"),
    "loss terms": (set(LOG_KEYS) - {"loss", "task"}, "model/output.py"),
    "ablations": (set(SWITCH_ABLATIONS), "config/ablations.py"),
    "devices": (set(DEVICES) - {"auto"}, "train/devices.py"),
}
_ALLOWED = {
    # presets are their own registry, named after the dataset kinds they serve
    ("config/presets.py", "dataset kinds"),
    # the paper's published numbers, keyed by benchmark (checked against the registry above)
    ("metrics/display.py", "dataset kinds"),
    # test fixtures write files of the published shapes independently of the code under test
    ("testing/fixtures.py", "dataset kinds"),
    # the independent reference implementation (moved from tests/): written from the behaviour
    # description on purpose, not from the registries it is the yardstick for
    ("testing/reference.py", "dataset kinds"),
    ("testing/reference.py", "loss terms"),
}


def _string_lists(tree: ast.AST) -> list[tuple[int, list[str]]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items: list[Any] = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        strings = [e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        if len(strings) >= 3:
            found.append((node.lineno, strings))
    return found


def test_no_name_list_outside_its_registry() -> None:
    problems = []
    for file in sorted(SRC.rglob("*.py")):
        rel = file.relative_to(SRC).as_posix()
        for line, strings in _string_lists(ast.parse(file.read_text())):
            for registry, (names, home) in _REGISTRIES.items():
                hits = [s for s in strings if s in names]
                if len(hits) >= 3 and rel != home and (rel, registry) not in _ALLOWED:
                    problems.append(f"{rel}:{line}: {registry} {hits} (read them from {home})")
    assert not problems, "\n".join(problems)
