"""Every run writes MODEL_CARD.md (Hugging Face model-card convention) holding the run's own
numbers, data fingerprint, settings and the modality check's decisions (issue 27)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import decalign
from decalign.metrics.display import PAPER_NAMES, format_value
from decalign.train.model_card import MODEL_CARD

pytestmark = pytest.mark.slow

TINY = {"model.d_model": 16, "model.fusion.num_heads": 2, "model.fusion.num_layers": 1,
        "model.homogeneity.pde_dim": 8, "train.batch_size": 32, "train.num_epochs": 2, "train.num_threads": 1,
        "data.synthetic.n_train": 48, "data.synthetic.n_valid": 16, "data.synthetic.n_test": 16}


def _run(out: Path, **overrides: object) -> Path:
    data = decalign.load_dataset(None, decalign.DataConfig(dataset="synthetic"))
    config = decalign.resolve_config(data, overrides={**TINY, **overrides})
    data = decalign.load_dataset(None, config.data)
    decalign.train(config, data, out, tensorboard=False, progress=False)
    return out


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_card_holds_the_runs_numbers_data_and_settings(tmp_path: Path) -> None:
    out = _run(tmp_path / "run", **{"train.seeds": [5, 6], "train.lr": 1e-3})
    card = (out / MODEL_CARD).read_text()
    results = json.loads((out / "results.json").read_text())
    dataset = json.loads((out / "dataset.json").read_text())
    front = _front_matter(card)
    assert front["library_name"] == "decalign" and front["datasets"] == ["synthetic"]
    metrics = {m["type"]: m for m in front["model-index"][0]["results"][0]["metrics"]}
    for key in ("mae", "corr", "acc2_non0", "f1_non0", "acc7"):
        mean, std = format_value(key, results["mean"][key]), format_value(key, results["std"][key])
        assert metrics[PAPER_NAMES[key]]["value"] == float(mean) and metrics[PAPER_NAMES[key]]["std"] == float(std)
        assert f"| {PAPER_NAMES[key]} | {mean} | {std} |" in card
    assert dataset["fingerprint"]["sha256"] in card
    assert "train 48, valid 16, test 16" in card
    assert "preset: `synthetic`" in card and "`train.lr=0.001`" in card and "`train.seeds=[5, 6]`" in card
    assert "Test metrics (2 seeds; mean ± sample std" in card
    for section in ("## Data", "## Splits", "## Training", "## Modalities left out", "## Intended use and limits",
                    "## How to load"):
        assert section in card
    assert "Predictor.from_checkpoint(\"seed_5/model.safetensors\")" in card and (out / "seed_5").is_dir()


def test_one_seed_has_no_spread_and_the_modality_checks_decisions_are_listed(tmp_path: Path) -> None:
    out = _run(tmp_path / "run", **{"train.seeds": [3], "train.modality_check": True,
                                    "train.modality_dropout": 0.3})
    card = (out / MODEL_CARD).read_text()
    results = json.loads((out / "results.json").read_text())
    assert "Test metrics (1 seed; mean)" in card and "| metric | mean |" in card and "std |" not in card
    left = results["seeds"]["3"]["modalities_left_out"]
    assert f"- seed 3: {', '.join(left) if left else 'none'}" in card
    assert "std" not in _front_matter(card)["model-index"][0]["results"][0]["metrics"][0]
