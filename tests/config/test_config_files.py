"""Configuration as files and forgiving values: ``train --config``/``--dump-config``, YAML values
in ``--set``, and "did you mean" for mistyped keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from decalign.cli import main
from decalign.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    read_config_file,
    write_config_file,
)
from decalign.config.presets import get_preset

TINY = [
    "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
    "train.batch_size=16", "train.num_threads=1",
    "data.synthetic.n_train=48", "data.synthetic.n_valid=24", "data.synthetic.n_test=24", "data.synthetic.seq_len=8",
]


def _dump(tmp_path: Path, name: str, *argv: str) -> dict:
    out = tmp_path / name
    assert main(["train", *argv, "--dump-config", str(out)]) == 0
    read_config_file(out)  # the dump is itself a valid --config input
    return config_to_dict(config_from_dict(RunConfig, _load(out)))


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[text,audio]", ["text", "audio"]),            # YAML flow list, unquoted (Hydra style)
        ('["text", "audio"]', ["text", "audio"]),       # JSON still works
        ("1e-4", 1e-4),                                  # JSON number (YAML 1.1 would give a string)
        ("{text: 3, default: 1}", {"text": 3, "default": 1}),
        ("yes", True),
        ("null", None),
        ("None", None),
        ("runs/a#b", "runs/a#b"),
    ],
)
def test_set_values_parse_as_yaml_or_json(text: str, expected: object) -> None:
    from decalign.config.overrides import _parse_value

    assert _parse_value(text) == expected


def test_set_yaml_list_reaches_the_config() -> None:
    config = apply_overrides(get_preset("synthetic"), ["model.modalities=[text,audio]", "seeds=[1, 2]"])
    assert config.model.modalities == ("text", "audio")
    assert config.train.seeds == (1, 2)


@pytest.mark.parametrize(
    ("key", "nearest"),
    [("model.fusion.num_layer", "model.fusion.num_layers"), ("lrr", "train.lr"), ("train.sedes", "train.seeds"),
     ("model.homogenity.mmd", "model.homogeneity.mmd")],
)
def test_mistyped_key_suggests_the_nearest(key: str, nearest: str) -> None:
    with pytest.raises(ConfigError, match="did you mean") as err:
        apply_overrides(get_preset("synthetic"), [f"{key}=1"])
    assert nearest in str(err.value) and f"unknown setting {key!r}" in str(err.value)


def test_dump_then_load_is_the_same_config_in_yaml_and_json(tmp_path: Path) -> None:
    first = _dump(tmp_path, "a.yaml", "--set", "model.modalities=[text,vision]", "train.lr=2e-4")
    again = _dump(tmp_path, "b.json", "--config", str(tmp_path / "a.yaml"))
    assert first == again
    assert first["model"]["modalities"] == ["text", "vision"] and first["train"]["lr"] == 2e-4


def test_set_and_flags_apply_on_top_of_the_file(tmp_path: Path) -> None:
    part = tmp_path / "part.yaml"
    part.write_text("train: {lr: 1.0e-4, seeds: [1, 2]}\nmodel.conv_kernel.audio: 3\npreset: mosi\n")
    got = _dump(tmp_path, "out.json", "--config", str(part), "--seeds", "5", "--set", "model.d_model=32")
    assert got["train"]["lr"] == 1e-4 and got["train"]["seeds"] == [5]
    assert got["model"]["conv_kernel"] == {"default": 1, "audio": 3} and got["model"]["d_model"] == 32
    assert got["preset"] == "mosi"  # the file's preset applies to the built-in data too
    assert got["train"]["num_epochs"] == get_preset("mosi").train.num_epochs


def test_config_file_errors_name_the_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  fusoin: {num_layers: 2}\n")
    assert main(["train", "--config", str(bad), "--dump-config", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'model.fusoin'" in err and "did you mean model.fusion" in err
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    assert main(["train", "--config", str(listing)]) == 2
    assert "must hold a mapping" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_a_runs_config_json_reproduces_the_run(tmp_path: Path) -> None:
    """A trained run's config.json, given to --config, resolves to the identical configuration
    and trains to the identical test metrics."""
    first = tmp_path / "first"
    assert main(["train", "-q", "--epochs", "1", "--seeds", "3", "--no-tensorboard", "--out", str(first),
                 "--set", *TINY, "model.modalities=[text,audio]"]) == 0
    second = tmp_path / "second"
    assert main(["train", "-q", "--config", str(first / "config.json"), "--no-tensorboard",
                 "--out", str(second)]) == 0
    assert _load(second / "config.json") == _load(first / "config.json")
    assert _load(second / "results.json")["mean"] == _load(first / "results.json")["mean"]


def test_write_config_file_round_trips(tmp_path: Path) -> None:
    config = apply_overrides(get_preset("iemocap"), ["model.conv_kernel.audio=5", "data.standardize=[1, 99]"])
    for name in ("c.yml", "c.json"):
        path = write_config_file(config, tmp_path / name)
        assert apply_overrides(get_preset("mosi"), read_config_file(path)) == config
