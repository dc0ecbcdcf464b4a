"""What a researcher meets in the first hour (issue 27): settings that explain themselves, tables
that say what they measured, errors that say where things are, and no tracebacks or warnings
for ordinary use."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import decalign
from decalign.cli import COMMANDS, main
from decalign.config import RunConfig, flat_keys
from decalign.config.describe import MEANINGS, _field_docstrings, key_help
from decalign.config.presets import PRESET_DESCRIPTIONS, get_preset, preset_names

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
        "train.batch_size=32", "train.num_threads=1", "data.synthetic.n_train=48", "data.synthetic.n_valid=16",
        "data.synthetic.n_test=16"]


# --------------------------------------------------------------------------------------- presets


def test_every_preset_has_a_one_line_description(capsys) -> None:
    assert set(PRESET_DESCRIPTIONS) == set(preset_names())
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    for line, name in zip(lines, preset_names()):
        assert line.split(None, 1)[1] == PRESET_DESCRIPTIONS[name]


def test_every_key_has_its_type_default_range_and_meaning(capsys) -> None:
    helps = list(key_help())
    assert [h.key for h in helps] == flat_keys()
    for h in helps:
        assert h.type and h.default and h.range and h.meaning, h
        assert "\n" not in h.meaning
    by_key = {h.key: h for h in helps}
    # read from the dataclasses: the real defaults and the bounds pydantic enforces
    assert by_key["train.lr"].default == f"{RunConfig().train.lr:g}" and by_key["train.lr"].range == "> 0"
    assert by_key["train.scheduler_factor"].range == "> 0 and < 1"
    assert by_key["train.device"].range == "auto | cpu | cuda | mps"
    assert by_key["model.conv_kernel"].range.startswith("needs a 'default' entry")
    assert by_key["train.seeds"].default == "[1111, 1112, 1113, 1114, 1115]"
    assert by_key["model.modalities"].type == "list of string or null"
    assert by_key["train.amp"].meaning.startswith("bf16 autocast on CUDA")  # the field's own docstring
    assert main(["presets", "--keys"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["key", "type", "default", "range", "meaning"] and len(out) == len(helps) + 1


def test_the_meanings_table_only_fills_fields_without_a_docstring() -> None:
    docs = _field_docstrings()
    keys = set(flat_keys())
    assert set(MEANINGS) <= keys, set(MEANINGS) - keys  # no stale entry

    def documented(cls: type, prefix: str = "") -> set[str]:
        out = set()
        import typing

        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                out |= documented(hints[f.name], f"{prefix}{f.name}.")
            elif f.name in docs.get(cls.__name__, {}):
                out.add(f"{prefix}{f.name}")
        return out

    assert not set(MEANINGS) & documented(RunConfig)  # a docstring is the one source where there is one


def test_piping_into_head_ends_without_a_traceback() -> None:
    """Reproduced: `decalign presets --keys | head` ended in a BrokenPipeError traceback."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(f"{sys.executable} -m decalign presets --keys | head -2", shell=True, capture_output=True,
                          text=True, env=env, timeout=120, executable="/bin/bash")
    assert proc.stdout.splitlines()[0].startswith("key") and len(proc.stdout.splitlines()) == 2
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(("command", "hint"), [("train", "--resume"), ("bench", "run the same command again"),
                                               ("info", None)])
def test_ctrl_c_says_how_to_continue(monkeypatch: pytest.MonkeyPatch, capsys, command: str, hint: str | None) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(COMMANDS[command].load(), "run", interrupted)
    assert main([command]) == 130
    err = capsys.readouterr().err
    assert err.startswith("decalign: interrupted") and (hint in err if hint else err == "decalign: interrupted\n")


# ----------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def one_seed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "one"
    assert main(["train", "--epochs", "1", "--seeds", "7", "--out", str(out), "--no-tensorboard", "-q",
                 "--set", *TINY]) == 0
    return out


@pytest.mark.slow
def test_a_one_seed_table_has_no_spread_and_names_the_data(one_seed_run: Path, capsys) -> None:
    """Reproduced: "1 seeds", "± 0.00" in every cell, and the row named after the preset only."""
    assert main(["eval", "--run", str(one_seed_run)]) == 0
    out = capsys.readouterr().out
    assert "(1 seed)" in out and "1 seeds" not in out and "±" not in out
    result = decalign.api.RunResult(one_seed_run, get_preset("synthetic"), {7: {}}, {"mae": 0.5, "acc7": 0.25},
                                    {"mae": 0.0, "acc7": 0.0})
    table = result.table().splitlines()
    assert table[0].startswith("test, 1 seed") and "±" not in "\n".join(table)
    assert table[1].startswith("built-in synthetic (preset synthetic)") and table[1].split()[-2:] == ["0.500", "25.00"]
    two = dataclasses.replace(result, seeds={7: {}, 8: {}}, std={"mae": 0.01, "acc7": 0.02})
    assert "0.500 ± 0.010" in two.table() and "mean ± sample std" in two.table()


@pytest.mark.slow
def test_evaluate_checkpoint_in_the_tables_units(one_seed_run: Path) -> None:
    ckpt = one_seed_run / "seed_7" / "model.safetensors"
    fractions = decalign.evaluate_checkpoint(ckpt)
    percent = decalign.evaluate_checkpoint(ckpt, percent=True)
    assert 0.0 <= fractions["acc2_non0"] <= 1.0
    assert percent["acc2_non0"] == pytest.approx(100 * fractions["acc2_non0"])
    assert percent["f1_non0"] == pytest.approx(100 * fractions["f1_non0"])
    assert percent["mae"] == fractions["mae"] and percent["corr"] == fractions["corr"]


@pytest.mark.slow
def test_a_missing_seed_lists_the_seeds_the_run_has(one_seed_run: Path, capsys) -> None:
    """Reproduced: docs/deploy.md's runs/synthetic/seed_1 (the run wrote seed_1111) failed with no hint."""
    for argv in (["eval", "--checkpoint"], ["predict", "--out", "p.csv", "--checkpoint"]):
        assert main([*argv, str(one_seed_run / "seed_1" / "model.safetensors")]) == 2
        err = capsys.readouterr().err
        assert "seed_1" in err and "has seed_7" in err and err.count("\n") == 1


def test_eval_run_on_a_missing_folder_says_the_folder_is_missing(tmp_path: Path, capsys) -> None:
    assert main(["eval", "--run", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere' does not exist" in err and "checkpoint" not in err
    (tmp_path / "file.json").write_text("{}")
    assert main(["eval", "--run", str(tmp_path / "file.json")]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_without_tensorboard_there_is_no_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Reproduced: the core install's first `train` printed a TensorBoard warning."""
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    argv = ["train", "--epochs", "1", "--seeds", "3", "--out", str(tmp_path / "r"), "--set", *TINY]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning" not in err.lower() and "TensorBoard" not in err
    assert main([*argv, "--overwrite", "-v"]) == 0  # said where asked for: -v
    assert "DEBUG TensorBoard event files are not written" in capsys.readouterr().err


@pytest.mark.slow
def test_train_plots_says_where_the_figures_went(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    out = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--seeds", "3", "--out", str(out), "--no-tensorboard", "--plots", "-q",
                 "--set", *TINY]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("figures: "))
    assert str(out / "plots") in line and "curves.png" in line and (out / "plots" / "curves.png").is_file()


# ----------------------------------------------------------------------------------------- docs


def test_docs_use_the_seed_directories_the_quick_start_writes() -> None:
    """Reproduced: docs/deploy.md used runs/synthetic/seed_1/... where `decalign train` writes seed_1111."""
    seeds = {str(s) for s in get_preset("synthetic").train.seeds}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted(SRC.rglob("*.py"))]:
        for seed in re.findall(r"runs/synthetic/seed_(\d+)", doc.read_text(encoding="utf-8")):
            assert seed in seeds, f"{doc.relative_to(ROOT)}: runs/synthetic/seed_{seed}"


def test_the_walk_through_leaves_nothing_to_commit() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "walk/" in ignored and "preds.csv" in ignored


def test_citation_and_changelog() -> None:
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["version"] == decalign.__version__
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("DecAlign: Hierarchical Cross-Modal Alignment") and paper["year"] == 2026
    assert {"type": "other", "value": "arXiv:2503.11892"} in paper["identifiers"]
    readme = (ROOT / "README.md").read_text()
    bibtex = readme.split("```bibtex")[1].split("```")[0]
    assert "@inproceedings{qian2026decalign" in bibtex and "2503.11892" in bibtex and "@software{decalign" in bibtex
    assert f"version = {{{decalign.__version__}}}" in bibtex
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{decalign.__version__}]" in changelog


@pytest.mark.parametrize(("tty", "quiet", "bar"), [(False, False, False), (True, False, True), (True, True, False)])
def test_extract_draws_its_bar_only_at_a_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tty: bool,
                                                  quiet: bool, bar: bool) -> None:
    """Reproduced: `extract` wrote its progress bar into logs (stderr redirected to a file)."""
    import types

    from decalign.extract import inputs, pipeline

    seen: dict[str, object] = {}

    def fake_run(clips: object, config: object, out: object, **kwargs: object) -> object:
        seen.update(kwargs)
        return types.SimpleNamespace(outcomes=[], provenance=types.SimpleNamespace(extractors={}), included=[],
                                     dataset=out, report=None)

    monkeypatch.setattr(pipeline, "run_extraction", fake_run)
    monkeypatch.setattr(inputs, "discover_clips", lambda *a, **k: [])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    argv = ["extract", "--media", str(tmp_path), "--text", "none", "--out", str(tmp_path / "d.pkl")]
    assert main([*argv, *(["-q"] if quiet else [])]) == 0
    assert seen["progress"] is bar
