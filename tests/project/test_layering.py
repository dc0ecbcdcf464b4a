"""The package's structure: no import cycles, the command line only in ``decalign/cli/``, and
load-time settings take effect in every form the config accepts (the data is built from the same
key lookup as the rest of the config)."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from decalign.config import ConfigError, DataConfig, RunConfig, config_to_dict, flat_keys
from decalign.config.overrides import _resolve_key

SRC = Path(__file__).resolve().parents[2] / "src" / "decalign"


def _module_name(file: Path) -> str:
    parts = file.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(file: Path, modules: set[str]) -> set[str]:
    """Modules of the package ``file`` imports anywhere, inside functions too, except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(file.read_text())
    package = _module_name(file) if file.name == "__init__.py" else _module_name(file).rpartition(".")[0]
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = {t for t in _imported_names(tree, package, typing_only) if t in modules}
    return found - {_module_name(file)}


def _imported_names(tree: ast.AST, package: str, skip: frozenset[int] | set[int] = frozenset()) -> list[str]:
    """Every dotted name an import statement of ``tree`` names, relative imports resolved against
    ``package`` (``from .x import y`` gives ``package.x`` and ``package.x.y``), except in the
    nodes whose ids are in ``skip``."""
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names += [base, *(f"{base}.{a.name}" for a in node.names)]
    return names


def test_no_import_cycles() -> None:
    files = {_module_name(f): f for f in SRC.rglob("*.py")}
    graph = {name: _imports(file, set(files)) for name, file in files.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# ---------------------------------------------------------------------------------------------
# the command line in one package


def _all_imports(file: Path, source: str | None = None) -> set[str]:
    """Every module ``file`` (or ``source`` as if it were ``file``) imports, anywhere (inside
    functions and ``TYPE_CHECKING`` too), with relative imports resolved and each dotted name's
    parents included."""
    tree = ast.parse(file.read_text() if source is None else source)
    package = _module_name(file) if file.name == "__init__.py" else _module_name(file).rpartition(".")[0]
    found: set[str] = set()
    for name in _imported_names(tree, package):
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


def test_argparse_and_the_cli_are_imported_only_under_cli() -> None:
    """A library function takes typed values, so a notebook calls what a command calls; a command
    line's ``Namespace`` never crosses into the library."""
    offenders = []
    for file in sorted(SRC.rglob("*.py")):
        if file.is_relative_to(SRC / "cli") or file == SRC / "__main__.py":
            continue
        bad = _all_imports(file) & {"argparse", "decalign.cli"}
        if bad:
            offenders.append(f"{file.relative_to(SRC.parent)}: {sorted(bad)}")
    assert not offenders, "imports of the command line outside decalign/cli/:\n" + "\n".join(offenders)


def test_the_scan_sees_imports_in_functions_and_relative_ones() -> None:
    """The scan above is only as good as :func:`_all_imports`: an import inside a function and a
    relative import of the package are both found."""
    source = "def f():\n    import argparse\n    from .cli import common\n"
    found = _all_imports(SRC / "probe.py", source)  # relative to the package of decalign/probe.py
    assert {"argparse", "decalign.cli", "decalign.cli.common"} <= found
    assert "decalign.cli" in _all_imports(SRC / "data" / "catalog.py", "from ..cli.common import add_set_flag\n")


def test_both_entry_points_are_the_cli_main() -> None:
    """``decalign`` (the console script) and ``python -m decalign`` run :func:`decalign.cli.main`."""
    import tomllib

    from decalign.cli import main

    scripts = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"decalign": "decalign.cli:main"}
    module, _, name = scripts["decalign"].partition(":")
    assert getattr(importlib.import_module(module), name) is main
    tree = ast.parse((SRC / "__main__.py").read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("decalign.cli", "main") in imported
    calls = {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "sys.exit(main())" in calls


# ---------------------------------------------------------------------------------------------
# load-time settings in dotted and suffix form

LOAD_TIME_VALUES: dict[str, Any] = {
    "data.standardize": [1.0, 99.0],
    "data.iemocap_protocol": "paper_count",
    "data.valid_fraction": 0.25,
    "data.split_seed": 3,
    "data.synthetic.n_train": 100,
    "data.synthetic.n_valid": 20,
    "data.synthetic.n_test": 30,
    "data.synthetic.seq_len": 7,
    "data.synthetic.dims": {"text": 4, "audio": 3},
    "data.synthetic.shared_weight": 0.5,
    "data.synthetic.unique_weight": 0.25,
    "data.synthetic.noise": 0.5,
    "data.synthetic.label_noise": 0.2,
    "data.synthetic.variable_lengths": True,
    "data.synthetic.seed": 5,
}
"""A non-default value of every setting the data is built with (``data.path``/``data.dataset``
come from ``--data``/``--dataset``)."""


def _suffix_form(key: str) -> str:
    """The shortest unique suffix that names ``key`` (``split_seed``, ``synthetic.dims``, ...)."""
    valid = flat_keys(RunConfig)
    parts = key.split(".")
    for start in range(len(parts) - 1, 0, -1):
        suffix = ".".join(parts[start:])
        try:
            if _resolve_key(suffix, valid) == (key, None):
                return suffix
        except ConfigError:
            continue
    raise AssertionError(f"{key} has no unique suffix")


def _value(config: RunConfig, key: str) -> Any:
    node: Any = config_to_dict(config)
    for part in key.split("."):
        node = node[part]
    return node


def test_the_table_covers_every_load_time_setting() -> None:
    data_keys = {k for k in flat_keys(RunConfig) if k.startswith("data.")} - {"data.path", "data.dataset"}
    assert set(LOAD_TIME_VALUES) == data_keys


@pytest.mark.parametrize("form", ["dotted", "suffix"])
@pytest.mark.parametrize("key", sorted(LOAD_TIME_VALUES))
def test_load_time_key_takes_effect(key: str, form: str) -> None:
    from decalign.api import data_config

    name = key if form == "dotted" else _suffix_form(key)
    assert form == "dotted" or not name.startswith("data.")
    value = LOAD_TIME_VALUES[key]
    data: DataConfig = data_config(None, None, [f"{name}={json.dumps(value)}", "train.lr=1e-3"])
    got = _value(RunConfig(data=data), key)
    assert got == value


def test_suffix_keys_build_the_data_that_config_json_records(tmp_path: Path) -> None:
    """``--set n_train=...`` used to be saved in config.json but ignored when the data was built."""
    from decalign.api import load_and_resolve

    overrides = ["n_train=40", "n_valid=12", "n_test=9", "seq_len=4", 'synthetic.dims={"text": 6, "audio": 3}',
                 "synthetic.seed=7"]
    dataset, config = load_and_resolve(overrides=overrides)
    assert [len(dataset.splits[s].labels) for s in ("train", "valid", "test")] == [40, 12, 9]
    assert dict(dataset.input_dims) == {"text": 6, "audio": 3}
    assert config.data.synthetic.n_train == 40 and config.data.synthetic.seed == 7
