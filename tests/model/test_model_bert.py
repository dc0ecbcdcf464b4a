"""The fine-tuned BERT text encoder option (``model.text_encoder.kind='bert'``) with a tiny random
BERT saved to a local directory, and its official checkpoint keys ``text_model.model.*``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from decalign.config import ModelConfig, TextEncoderConfig
from decalign.config.presets import get_preset
from decalign.model import DecAlign
from decalign.model.interop import (
    OfficialStateDictError,
    export_official_state_dict,
    load_official_state_dict,
)
from decalign.testing.reference import with_layers

transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

DIMS = {"text": 768, "audio": 5, "vision": 20}  # the text width is BERT's, whatever is given here
VOCAB = 100


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_bert")
    transformers.BertModel(config).save_pretrained(path)
    return path


def bert_config(path: Path | str) -> ModelConfig:
    base = with_layers(get_preset("mosi").model, 1)
    return replace(base, text_encoder=TextEncoderConfig(kind="bert", path=str(path)))


def tokens(batch: int, steps: int, high: int = VOCAB) -> torch.Tensor:
    """``[B, 3, T]``: ids, attention mask (last steps padded), segment ids."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, high, (batch, steps), generator=gen)
    mask = torch.ones(batch, steps, dtype=torch.long)
    mask[0, -2:] = 0
    ids[0, -2:] = 0
    return torch.stack([ids, mask, torch.zeros_like(ids)], dim=1).float()  # datasets store floats


def test_bert_text_encoder_runs_and_is_fine_tuned(bert_dir: Path) -> None:
    model = DecAlign(bert_config(bert_dir), DIMS)
    assert model.input_dims["text"] == 32
    assert model.projection.convs["text"].in_channels == 32
    batch, steps = 8, 6
    gen = torch.Generator().manual_seed(1)
    out = model({
        "text": tokens(batch, steps),
        "audio": torch.randn(batch, steps, 5, generator=gen),
        "vision": torch.randn(batch, steps, 20, generator=gen),
    })
    assert out.prediction.shape == (batch,)
    (out.prediction.sum() + sum(out.losses.values())).backward()
    bert = model.text_encoder.model
    for param in (bert.embeddings.word_embeddings.weight, bert.encoder.layer[0].attention.self.query.weight,
                  bert.encoder.layer[1].output.dense.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_missing_bert_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_bert"
    with pytest.raises(FileNotFoundError, match=r"no_such_bert.*model\.text_encoder\.path"):
        DecAlign(bert_config(missing), DIMS)


def test_out_of_vocabulary_ids_are_a_clear_error(bert_dir: Path) -> None:
    model = DecAlign(bert_config(bert_dir), DIMS)
    text = tokens(2, 4)
    text[1, 0, 1] = VOCAB + 5
    with pytest.raises(ValueError, match="vocabulary"):
        model({"text": text, "audio": torch.randn(2, 4, 5), "vision": torch.randn(2, 4, 20)})


def test_bert_weights_map_to_the_official_text_model_keys(bert_dir: Path) -> None:
    config = bert_config(bert_dir)
    model = DecAlign(config, DIMS)
    with torch.no_grad():
        model.text_encoder.model.embeddings.word_embeddings.weight.add_(1.0)  # differ from the saved BERT
    exported = export_official_state_dict(model)
    bert_keys = [k for k in exported if k.startswith("text_model.model.")]
    assert len(bert_keys) == len(model.text_encoder.model.state_dict())
    assert exported["proj_l.weight"].shape == (64, 32, 1)
    loaded = load_official_state_dict(exported, config)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # Older transformers saved BERT's position ids; such checkpoints load too.
    legacy = dict(exported)
    legacy["text_model.model.embeddings.position_ids"] = torch.arange(64)[None]
    load_official_state_dict(legacy, config)


def test_bert_checkpoint_into_a_features_model_says_what_to_set(bert_dir: Path) -> None:
    exported = export_official_state_dict(DecAlign(bert_config(bert_dir), DIMS))
    features = with_layers(get_preset("mosi").model, 1)
    with pytest.raises(OfficialStateDictError, match=r"text_encoder\.kind='bert'") as info:
        load_official_state_dict(exported, features, input_dims=DIMS)
    assert info.value.unknown and all(k.startswith("text_model.model.") for k, _ in info.value.unknown)
    assert [k for k, *_ in info.value.mismatched] == ["proj_l.weight"]
    no_bert = {k: v for k, v in exported.items() if not k.startswith("text_model.")}
    with pytest.raises(OfficialStateDictError, match=r"kind='features'") as info:
        load_official_state_dict(no_bert, bert_config(bert_dir))
    assert info.value.missing and not info.value.unknown
