"""Fuzz suite (issue 11): forged and mutated pickles, truncated and bit-flipped safetensors, random
command lines. Bounded and reproducible: hypothesis with a fixed example budget, derandomized, no
example database. Properties: the process never crashes, a user's mistake is a one-line error and
never a traceback, and nothing outside the run directory is touched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hypothesis", reason="the fuzz suite needs hypothesis (pip install decalign[test])")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decalign.errors import DecalignError

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parents[1] / "src")
BUDGET = {"derandomize": True, "deadline": None, "database": None,
          "suppress_health_check": list(HealthCheck)}


def test_pickle_fuzz_never_crashes_the_interpreter() -> None:
    """Random opcode programs and mutated real pickles, in a child process: a segfault (the
    forged-dtype attack) or an allocation beyond 6 GB fails the test instead of the session."""
    env = {"PYTHONPATH": f"{SRC}{os.pathsep}{HERE}", "OMP_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "")}
    proc = subprocess.run([sys.executable, str(HERE / "fuzz_pickles.py"), "250", "150"], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "fuzz ok" in proc.stdout


# -- safetensors -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import torch

    from decalign.api import resolve_config
    from decalign.config import SyntheticConfig
    from decalign.data import make_synthetic
    from decalign.train.checkpoint import ModelInfo, build_model, save_checkpoint

    ds = make_synthetic(SyntheticConfig(n_train=16, n_valid=8, n_test=8))
    config = resolve_config(ds, overrides=["model.d_model=8", "model.fusion.num_heads=2",
                                           "model.fusion.num_layers=1", "model.homogeneity.pde_dim=4"])
    info = ModelInfo.from_dataset(ds)
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path_factory.mktemp("fz") / "m.safetensors", build_model(config, info), config, info)
    return path.read_bytes()


edits = st.lists(st.tuples(st.sampled_from(["flip", "truncate", "byte", "header"]), st.integers(0, 2**40),
                           st.integers(0, 255)), min_size=1, max_size=4)


def test_damaged_safetensors_are_checkpoint_errors(checkpoint_bytes: bytes, tmp_path: Path) -> None:
    from decalign.train.checkpoint import CheckpointError, load_checkpoint

    header_len = int.from_bytes(checkpoint_bytes[:8], "little") + 8

    @settings(max_examples=80, **BUDGET)
    @given(edits)
    def check(case: list[tuple[str, int, int]]) -> None:
        data = bytearray(checkpoint_bytes)
        for kind, pos, byte in case:
            if not data:
                break
            i = pos % len(data)
            if kind == "flip":
                data[i] ^= 1 << (byte % 8)
            elif kind == "truncate":
                del data[i:]
            elif kind == "byte":
                data[i] = byte
            elif len(data) > 8:  # inside the JSON header, where shapes, offsets and metadata live
                data[8 + pos % max(1, min(header_len, len(data)) - 8)] = byte
        path = tmp_path / "m.safetensors"
        path.write_bytes(bytes(data))
        try:
            load_checkpoint(path)
        except CheckpointError as err:
            assert str(path) in str(err) and "\n" not in str(err)

    check()


# -- the command line -------------------------------------------------------------------------------


class ReachedTraining(Exception):
    """Raised by the patched training loop: the command line got as far as training."""


def _digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, checkpoint_bytes: bytes) -> Path:
    from decalign.testing.fixtures import write_mmsa_pickle

    root = tmp_path_factory.mktemp("inputs")
    write_mmsa_pickle(root / "data.pkl", kind="custom", n=(12, 6, 6))
    (root / "model.safetensors").write_bytes(checkpoint_bytes)
    return root


def _argv(draw: Any, inputs: Path) -> list[str]:
    data, ckpt = str(inputs / "data.pkl"), str(inputs / "model.safetensors")
    missing = str(inputs / "missing.pkl")
    pools: dict[str, list[str]] = {
        "--data": [data, missing, ckpt, "nodir/x.pkl", "file.txt/sub", ""],
        "--dataset": ["auto", "custom", "mosi", "iemocap", "synthetic", "bogus"],
        "--preset": ["synthetic", "mosi", "custom", "bogus"],
        "--out": ["out", "out/sub", "file.txt/sub", "", "o" * 250, "o" * 300, "/proc/decalign_fuzz"],
        "--seeds": ["1", "-5", "x", "2"],
        "--epochs": ["0", "1", "-1", "x", "1000000000000"],
        "--device": ["cpu", "cuda", "mps", "auto", "tpu"],
        "--set": ["train.seeds=[]", "train.lr=-1", "train.num_epochs=0", "model.d_model=abc", "x=y", "=",
                  "train.batch_size=1", "data.synthetic.n_train=0", "data.synthetic.n_train=16", "train.seeds=[3]"],
        "--checkpoint": [ckpt, missing, data],
        "--run": ["out", "missing_run", str(inputs)],
        "--split": ["train", "valid", "test", "bogus"],
        "--json": ["m.json", "file.txt/m.json"],
        "--format": ["npz", "safetensors", "x"],
    }
    own = {
        "train": ["--data", "--dataset", "--preset", "--out", "--seeds", "--epochs", "--device", "--set", "--set",
                  "--resume", "--overwrite", "--no-tensorboard", "-q"],
        "eval": ["--data", "--split", "--json", "--device"],
        "predict": ["--data", "--out", "--split", "--device"],
        "info": ["--dataset", "--json"],
        "convert": ["--format", "--dataset", "--overwrite"],
        "presets": ["--keys"],
    }
    junk = [*pools, "--resume", "--overwrite", "--plots", "--keys", "--bogus", "-x"]
    command = draw(st.sampled_from(["train", "train", "train", "eval", "predict", "info", "convert", "presets",
                                    "bogus", ""]))
    argv = [command] if command else []
    if command in ("info", "convert"):
        argv.append(draw(st.sampled_from([data, missing, ckpt, "out"])))
    if command == "convert":
        argv.append(draw(st.sampled_from(["conv", "conv.npz", "file.txt", "conv.safetensors", data])))
    if command == "eval":
        argv += [draw(st.sampled_from(["--checkpoint", "--run"]))]
        argv.append(draw(st.sampled_from(pools[argv[-1]])))
    if command == "predict":
        argv += ["--checkpoint", draw(st.sampled_from(pools["--checkpoint"]))]
    if command == "train" and draw(st.booleans()):  # mostly the small built-in data, so training is reached
        argv += ["--set", "data.synthetic.n_train=16", "data.synthetic.n_valid=8", "data.synthetic.n_test=8"]
    for _ in range(draw(st.integers(0, 5))):
        flag = draw(st.sampled_from(own.get(command, junk))) if draw(st.integers(0, 4)) else draw(st.sampled_from(junk))
        argv.append(flag)
        if flag in pools:
            argv.append(draw(st.sampled_from(pools[flag])))
    return argv


def test_random_command_lines_end_cleanly(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Every command line ends with an exit code (0, 1, 2) and at most a one-line error, or reaches
    training (stopped there by the patched loop); the input files and their folder are untouched."""
    from decalign import cli
    from decalign.train import engine

    def stop(*args: Any, **kwargs: Any) -> Any:
        raise ReachedTraining

    monkeypatch.setattr(engine, "fit_seed", stop)
    before = _digest(inputs)
    counter = iter(range(10**6))
    outcomes: dict[Any, int] = {}

    @settings(max_examples=60, **BUDGET)
    @given(st.data())
    def check(data: Any) -> None:
        argv = _argv(data.draw, inputs)
        sandbox = tmp_path / f"case{next(counter)}"
        sandbox.mkdir()
        (sandbox / "file.txt").write_text("not a directory\n")
        monkeypatch.chdir(sandbox)
        capsys.readouterr()
        try:
            code: Any = cli.main(argv)
        except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
            code = exc.code
        except ReachedTraining:
            code = "trained"
        except DecalignError as err:  # pragma: no cover - main must convert these
            raise AssertionError(f"{argv}: DecalignError escaped main: {err}") from err
        err = capsys.readouterr().err
        kind = "usage" if code == 2 and "usage:" in err else code
        outcomes[kind] = outcomes.get(kind, 0) + 1
        assert code in (0, 1, 2, "trained"), (argv, code, err[-2000:])
        assert "Traceback" not in err, (argv, err[-2000:])
        if code in (1, 2) and "usage:" not in err:
            lines = [line for line in err.splitlines() if line.startswith("decalign: error:")]
            assert len(lines) == 1, (argv, err[-2000:])
        assert _digest(inputs) == before, argv

    check()
    # the budget reaches every ending: usage errors, our one-line errors, success and training
    assert all(outcomes.get(k, 0) > 0 for k in ("usage", 2, 0, "trained")), outcomes


# -- config files (issue 25) -----------------------------------------------------------------------

_YAML_TOKENS = ["&a ", "*a", "&b ", "*b", "[", "]", "{", "}", ": ", "- ", "\n", "  ", ",", "x", "1", "-2.5",
                "train", "model.fusion", "seeds", "lr", "'", '"', "!!python/object/apply:os.system ", "? ", "1e-4",
                "null", "<<: *a", "\t", "%YAML 1.1\n", "---\n", "...\n", "#", "|", ">", "!!binary ", "9" * 50,
                "\x00", "\u2028", "\ufeff", "2001-13-45", "&c [*c]", "[*a,*a,*a,*a,*a,*a,*a,*a]"]

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["train", "model", "seeds", "lr", "fusion", "num_layers", "x", "preset"]) | st.text(max_size=6),
        children, max_size=4),
    max_leaves=30)


def test_random_config_files_give_settings_or_one_config_error(tmp_path: Path) -> None:
    """Random bytes, YAML token soups (aliases, anchors, tags, nesting) and JSON documents: every
    file is either a mapping of settings or one :class:`ConfigError` naming it, within a bounded
    time (the bounds are checked before any value is built, so no example can expand)."""
    import json
    import time
    import tracemalloc

    from decalign.config import ConfigError, read_config_file

    counter = iter(range(10**6))

    def check(payload: bytes, suffix: str) -> None:
        path = tmp_path / f"c{next(counter)}{suffix}"
        path.write_bytes(payload)
        start = time.perf_counter()
        tracemalloc.start()
        try:
            settings_ = read_config_file(path)
        except ConfigError as err:
            assert str(path) in str(err), str(err)  # (the CLI joins a list of valid keys into one line)
        else:
            assert isinstance(settings_, dict)
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert time.perf_counter() - start < 10, payload[:200]
        assert peak < 64 << 20, (peak, payload[:200])

    @settings(max_examples=150, **BUDGET)
    @given(st.lists(st.sampled_from(_YAML_TOKENS), max_size=120), st.sampled_from([".yaml", ".yml", ".json"]))
    def yaml_soup(tokens: list[str], suffix: str) -> None:
        check("".join(tokens).encode("utf-8", "surrogatepass"), suffix)

    @settings(max_examples=60, **BUDGET)
    @given(st.binary(max_size=512), st.sampled_from([".yaml", ".json"]))
    def raw_bytes(payload: bytes, suffix: str) -> None:
        check(payload, suffix)

    @settings(max_examples=60, **BUDGET)
    @given(_JSON_VALUES, st.sampled_from([".yaml", ".json"]))
    def documents(value: Any, suffix: str) -> None:
        check(json.dumps(value).encode(), suffix)

    yaml_soup()
    raw_bytes()
    documents()
