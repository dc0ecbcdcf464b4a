"""The presets as differences: each builds to a valid configuration for its data, and states only
what it changes from the defaults or from its parent (no repeated blocks, no no-op settings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from decalign.config import RunConfig, apply_overrides, config_from_dict, config_to_dict, flat_keys
from decalign.config.presets import (
    CUSTOM,
    CUSTOM_CLASSIFICATION,
    PRESET_DESCRIPTIONS,
    PRESETS,
    Preset,
    custom_preset,
    finetune_changes,
    get_preset,
    preset_names,
)
from decalign.data.detect import DATASET_KINDS, METRIC_FAMILIES
from decalign.errors import ConfigError

ALL = [*PRESETS.values(), CUSTOM]


def _flat(config: RunConfig) -> dict[str, Any]:
    """Every setting of ``config`` by full dotted key."""
    data = config_to_dict(config)
    out = {}
    for key in flat_keys(RunConfig):
        node: Any = data
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def _base(preset: Preset) -> RunConfig:
    return RunConfig() if preset.parent is None else PRESETS[preset.parent].build()


@pytest.mark.parametrize("preset", ALL, ids=lambda p: p.name)
def test_a_preset_differs_from_its_base_exactly_where_it_says(preset: Preset) -> None:
    """The settings that differ from the parent (or the defaults) are exactly the stated changes:
    a change that restates an inherited value, or a block copied from the parent, fails here."""
    base, built = _flat(_base(preset)), _flat(preset.build())
    differ = {k for k in base if base[k] != built[k]}
    assert differ == set(preset.changes) | ({"preset"} if base["preset"] != preset.name else set())


ENCODER = "/models/minilm"
ENCODER_KEYS = {"model.text_encoder.kind", "model.text_encoder.path"}


@pytest.mark.parametrize("preset", ALL, ids=lambda p: p.name)
def test_fine_tuning_adds_the_encoder_and_exactly_the_preset_schedule(preset: Preset) -> None:
    """``--encoder DIR``: the encoder, then the schedule the preset (or a parent) declares, each
    entry changing something (a restated value fails, as for ``changes``) and valid with it."""
    built = preset.build()
    changes = finetune_changes(preset.name, ENCODER)
    assert set(changes) <= set(flat_keys(RunConfig)) - {"preset"}
    tuned = apply_overrides(built, changes)
    plain = apply_overrides(built, {"model.text_encoder.kind": "bert", "model.text_encoder.path": ENCODER})
    before, after = _flat(plain), _flat(tuned)
    assert {k for k in before if before[k] != after[k]} == set(changes) - ENCODER_KEYS
    assert tuned.model.text_encoder.path == ENCODER and tuned.preset == preset.name


def test_the_schedules_of_the_fine_tuned_recipes() -> None:
    assert finetune_changes("text_finetune", ENCODER) == {
        "model.text_encoder.kind": "bert", "model.text_encoder.path": ENCODER,
        "train.bert_warmup_steps": 20, "train.bert_decay": "linear"}
    assert finetune_changes("mosi_tuned", ENCODER)["train.bert_warmup_steps"] == 33
    assert set(finetune_changes("mosi", ENCODER)) == set(finetune_changes("custom", ENCODER)) == ENCODER_KEYS


def test_encoder_flag_resolves_as_the_settings_it_stands_for_and_set_still_wins(tmp_path: Path) -> None:
    from decalign.cli import main

    dumps = {}
    for name, args in {
        "flag": ["--encoder", ENCODER, "--set", "train.bert_lr=1e-5"],
        "sets": ["--set", "model.text_encoder.kind=bert", f"model.text_encoder.path={ENCODER}",
                 "train.bert_warmup_steps=20", "train.bert_decay=linear", "train.bert_lr=1e-5"],
        "wins": ["--encoder", ENCODER, "--set", "train.bert_warmup_steps=5", "train.bert_lr=1e-5"],
    }.items():
        dumps[name] = tmp_path / f"{name}.json"
        assert main(["train", "--preset", "text_finetune", "-q", *args, "--dump-config", str(dumps[name])]) == 0
    assert dumps["flag"].read_text() == dumps["sets"].read_text()
    wins = config_from_dict(RunConfig, json.loads(dumps["wins"].read_text()))
    assert wins.train.bert_warmup_steps == 5 and wins.train.bert_decay == "linear" and wins.train.bert_lr == 1e-5


@pytest.mark.parametrize("preset", ALL, ids=lambda p: p.name)
def test_changes_are_full_keys_and_parents_exist(preset: Preset) -> None:
    """Full dotted keys only: a suffix (``lr``) would change meaning if a later field made it ambiguous."""
    assert set(preset.changes) <= set(flat_keys(RunConfig)) - {"preset"}
    seen = {preset.name}
    while preset.parent is not None:
        assert preset.parent in PRESETS and preset.parent not in seen, f"{preset.name}: bad parent chain"
        preset = PRESETS[preset.parent]
        seen.add(preset.name)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_builds_names_itself_and_round_trips(name: str) -> None:
    configs = [custom_preset("regression"), custom_preset("classification")] if name == "custom" else [
        get_preset(name)]
    for config in configs:
        assert config.preset == name
        assert config_from_dict(RunConfig, config_to_dict(config)) == config  # what config.json reloads
        assert apply_overrides(RunConfig(), _flat(config)) == config  # what --set of every key gives
        assert name in PRESET_DESCRIPTIONS


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_fits_the_data_it_names(name: str) -> None:
    """Its task loss fits the kind's task, and it selects on the loss or a metric the kind reports."""
    config = get_preset(name)
    kind = DATASET_KINDS[config.data.dataset]
    if name in DATASET_KINDS:
        assert config.data.dataset == name
    assert (config.objective.task_loss == "ce") == (kind.task == "classification")
    assert config.objective.w_bin == 0 or config.objective.task_loss != "ce"
    assert config.train.selection_metric == "loss" or config.train.selection_metric in METRIC_FAMILIES[kind.metrics]
    assert config.model.d_model % config.model.fusion.num_heads == 0


def test_the_benchmark_presets_keep_the_released_values_where_they_depart() -> None:
    """A few values that each preset sets by itself (the docs table of docs/method.md §12 pins all)."""
    assert get_preset("mosei").data.standardize == (0.5, 99.5)
    assert get_preset("sims").model.fusion.attn_dropout == {"default": 0.0, "text": 0.4, "audio": 0.3, "vision": 0.1}
    assert get_preset("iemocap").model.kernel_for("audio") == 1 and get_preset("mosei").model.kernel_for("audio") == 5
    # a derived preset inherits what it does not change
    assert get_preset("synthetic").model == get_preset("mosi").model
    assert get_preset("mosi_tuned").objective == get_preset("mosi").objective
    assert get_preset("text_finetune").model.fusion == RunConfig().model.fusion


def test_custom_is_mosi_with_uniform_dropout_and_settings_for_its_task() -> None:
    regression, classification = custom_preset("regression"), custom_preset("classification")
    assert regression.model.fusion.attn_dropout == {"default": 0.1}
    assert regression.model.conv_kernel == {"default": 1}  # fits any sequence length, T = 1 too
    assert regression.train == get_preset("mosi").train and regression.objective == get_preset("mosi").objective
    assert _flat(apply_overrides(regression, CUSTOM_CLASSIFICATION)) == _flat(classification)
    assert (classification.objective.task_loss, classification.objective.w_ct,
            classification.train.selection_metric) == ("ce", 0.0, "waf1")


def test_an_unknown_preset_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'; choose one of \['mosi'"):
        get_preset("nope")


def test_presets_custom_prints_the_regression_settings_and_says_what_classification_changes(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Reproduced: `decalign presets custom` was "unknown preset 'custom'" although the list names it."""
    import json

    from decalign.cli import main
    from decalign.config import config_to_dict
    from decalign.config.presets import custom_preset

    assert main(["presets", "custom"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == config_to_dict(custom_preset("regression"))
    assert "objective.task_loss=ce" in err and "train.selection_metric=waf1" in err


def test_presets_name_says_what_encoder_adds(capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.cli import main

    assert main(["presets", "text_finetune"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == config_to_dict(get_preset("text_finetune"))
    assert err.strip() == 'text_finetune: with --encoder DIR also train.bert_warmup_steps=20 train.bert_decay="linear"'
    assert main(["presets", "mosi"]) == 0
    assert capsys.readouterr().err == ""
