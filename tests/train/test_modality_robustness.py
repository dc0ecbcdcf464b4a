"""Modality dropout and the validation modality check (``train.modality_dropout``,
``train.modality_check``), and the misleading modality they are meant to survive."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from decalign.api import evaluate_checkpoint, resolve_config, train
from decalign.config import ConfigError, DataConfig, SyntheticConfig
from decalign.data import load_dataset
from decalign.data.misleading import misleading_features
from decalign.train.modalities import apply_decision, check_validation, drop_modality, unwrap, with_modalities
from decalign.train.modality_check import CheckOutcome, CheckState

TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
        "train.batch_size=16", "train.num_threads=1", "train.seeds=[1]", "train.lr=1e-3"]


def _features() -> dict[str, torch.Tensor]:
    return {m: torch.zeros(2, 3, 4) for m in ("text", "audio", "vision")}


def test_drop_modality_off_keeps_every_modality_and_draws_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert list(drop_modality(_features(), None, 0.0, g)) == ["text", "audio", "vision"]
    # p = 0 draws once (the coin) but never drops; a single modality is never dropped or drawn for.
    one = {"text": torch.zeros(1, 1, 1)}
    g2 = torch.Generator().manual_seed(0)
    assert drop_modality(one, None, 1.0, g2) == one and torch.equal(g2.get_state(), state)


def test_drop_modality_always_drops_exactly_one_uniformly() -> None:
    g = torch.Generator().manual_seed(0)
    counts = dict.fromkeys(("text", "audio", "vision"), 0)
    for _ in range(3000):
        kept = drop_modality(_features(), None, 1.0, g)
        assert len(kept) == 2
        (gone,) = set(counts) - set(kept)
        counts[gone] += 1
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts.values()), counts


def test_drop_modality_only_among_active_and_at_rate_p() -> None:
    g = torch.Generator().manual_seed(1)
    dropped = 0
    for _ in range(2000):
        kept = drop_modality(_features(), ("text", "audio"), 0.25, g)
        assert "vision" in kept  # inactive modalities are not the model's to lose
        dropped += len(kept) == 2
    assert abs(dropped / 2000 - 0.25) < 0.03


class _Active(torch.nn.Module):
    """A model reduced to what the engine's side of the check touches: its ``active`` modalities."""

    def __init__(self) -> None:
        super().__init__()
        self.active: tuple[str, ...] = ("text", "audio", "vision")


def test_the_check_evaluates_other_modality_sets_on_the_inner_model_and_puts_them_back() -> None:
    inner = _Active()
    wrapped = torch.nn.Module()
    wrapped.module = inner  # as DDP holds it
    assert unwrap(wrapped) is inner and unwrap(inner) is inner
    seen: list[tuple[str, ...]] = []
    y = np.linspace(-1.0, 1.0, 40)

    def evaluation() -> tuple[np.ndarray, dict[str, float]]:
        seen.append(inner.active)
        if inner.active == ("audio", "vision"):
            raise RuntimeError("evaluation failed")
        return y.copy(), {"loss": 0.0}

    config = resolve_config(_data(misleading=False), overrides=[*TINY, "train.modality_check=true"])
    with pytest.raises(RuntimeError, match="evaluation failed"):
        check_validation(wrapped, evaluation, y.copy(), {"loss": 0.0}, y, config, inner.active, CheckState(), 1, 1)
    assert ("audio", "vision") in seen and inner.active == ("text", "audio", "vision")  # put back after the error


def test_a_decision_of_the_check_changes_the_model_and_the_left_out_epochs() -> None:
    model, left_out = _Active(), {"vision": 2}
    apply_decision(CheckOutcome(("text",), {}, {}, None), model, left_out, 3, "seed 1")
    assert model.active == ("text", "audio", "vision") and left_out == {"vision": 2}  # no decision, no change
    leave = {"action": "leave_out", "modality": "audio", "reason": "r", "epoch": 4,
             "change": {"mean": 0.1, "low": 0.05, "high": 0.2, "p": 0.01}, "level": 0.05, "agree": 2}
    apply_decision(CheckOutcome(("text", "vision"), {}, {}, leave), model, left_out, 4, "seed 1")
    assert model.active == ("text", "vision") and left_out == {"vision": 2, "audio": 4}
    back = {**leave, "action": "take_back", "modality": "vision"}
    apply_decision(CheckOutcome(("text", "audio", "vision"), {}, {}, back), model, left_out, 5, "seed 1")
    assert model.active == ("text", "audio", "vision") and left_out == {"audio": 4}


def test_a_checkpoint_saves_the_modalities_the_check_kept() -> None:
    config = resolve_config(_data(misleading=False), overrides=TINY)
    built = ("text", "audio", "vision")
    assert with_modalities(config, built, built) is config  # nothing left out: the run's own config
    kept = with_modalities(config, ("text", "vision"), built)
    assert kept.model.modalities == ("text", "vision") and kept.train == config.train


def test_modality_dropout_is_validated() -> None:
    data = _data(misleading=False)
    with pytest.raises(ConfigError, match="modality_dropout"):
        resolve_config(data, overrides=["train.modality_dropout=1.5"])


def test_misleading_features_track_labels_on_train_only() -> None:
    rng = np.random.default_rng(0)
    labels = {s: rng.uniform(-3, 3, 400).astype(np.float32) for s in ("train", "valid", "test")}
    feats = misleading_features(labels, dim=8, noise=0.5, seed=3)
    again = misleading_features(labels, dim=8, noise=0.5, seed=3)
    for s in labels:
        assert feats[s].shape == (400, 1, 8) and feats[s].dtype == np.float32
        np.testing.assert_array_equal(feats[s], again[s])  # deterministic
    # the best linear read-out fitted on train: near perfect there, nothing elsewhere
    x = feats["train"][:, 0]
    w, *_ = np.linalg.lstsq(x, labels["train"], rcond=None)
    assert np.corrcoef(x @ w, labels["train"])[0, 1] > 0.9
    for s in ("valid", "test"):
        assert abs(np.corrcoef(feats[s][:, 0] @ w, labels[s])[0, 1]) < 0.15


def _data(misleading: bool):
    data = load_dataset(None, DataConfig(dataset="synthetic", synthetic=SyntheticConfig(
        n_train=192, n_valid=192, n_test=64, seq_len=4, dims={"text": 12, "audio": 5, "vision": 6})))
    if misleading:
        feats = misleading_features({s: sp.labels for s, sp in data.splits.items()}, dim=6, noise=0.3, seed=0)
        for s, sp in data.splits.items():
            sp.features["vision"] = np.repeat(feats[s], 4, axis=1)
    return data


def _run_check(predict: Any, labels: np.ndarray, active: tuple[str, ...], state: Any, epoch: int,
               built: tuple[str, ...] = ("text", "audio", "vision"), agree: int = 2, seed: int = 0) -> Any:
    """One validation's check as the engine runs it, with ``predict(active) -> predictions``."""
    from decalign.metrics import sentiment_metrics
    from decalign.train.modality_check import check_modalities

    def evaluate_with(modalities: tuple[str, ...]) -> tuple[np.ndarray, dict[str, float]]:
        pred = predict(modalities)
        return pred, {**sentiment_metrics(pred, labels), "loss": float(np.mean((pred - labels) ** 2))}

    pred, metrics = evaluate_with(active)
    return check_modalities(evaluate_with, active, built, pred, metrics, labels, "mse", None, state, level=0.05,
                            agree=agree, epoch=epoch, rng=np.random.default_rng([seed, epoch]))


def test_paired_bootstrap_closed_forms_and_determinism() -> None:
    from decalign.train.modality_check import paired_bootstrap

    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    same = paired_bootstrap(a, a, 0.05, np.random.default_rng(1))
    assert (same.mean, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0)
    # a constant shift has no sampling noise: every resample's mean is the shift itself
    shifted = paired_bootstrap(a - 0.3, a, 0.05, np.random.default_rng(1))
    assert shifted.mean == pytest.approx(-0.3) and shifted.low == pytest.approx(-0.3)
    assert shifted.high == pytest.approx(-0.3) and shifted.p == pytest.approx(1 / 2001)
    again = paired_bootstrap(a - 0.3, a, 0.05, np.random.default_rng(1))
    assert again == shifted
    # the one-sided 95% upper bound of noisy differences covers their true mean about 95% of the time
    covered = 0
    for k in range(200):
        g = np.random.default_rng(100 + k)
        d = g.normal(0.1, 1.0, size=150)
        covered += paired_bootstrap(d, np.zeros(150), 0.05, g, replicates=500).high >= 0.1
    assert 0.88 <= covered / 200 <= 0.99


def test_per_sample_loss_averages_to_the_task_loss() -> None:
    from decalign.losses import task_loss
    from decalign.train.modality_check import per_sample_loss

    g = np.random.default_rng(0)
    y, p = g.normal(size=50).astype(np.float32), g.normal(size=50).astype(np.float32)
    for kind in ("mse", "l1"):
        expected = float(task_loss(torch.from_numpy(p), torch.from_numpy(y), kind))
        assert per_sample_loss(p, y, kind).mean() == pytest.approx(expected, rel=1e-5)
    logits, classes = g.normal(size=(50, 4)).astype(np.float32), g.integers(0, 4, 50)
    expected = float(task_loss(torch.from_numpy(logits), torch.from_numpy(classes), "ce"))
    assert per_sample_loss(logits, classes, "ce").mean() == pytest.approx(expected, rel=1e-5)


def test_constant_metrics_are_the_best_constant_predictions_closed_form() -> None:
    from decalign.metrics import sentiment_metrics
    from decalign.train.modality_check import constant_metrics

    y = np.array([-2.0, -1.0, 0.5, 1.5, 3.0], np.float32)
    assert constant_metrics(y, None, "mse", sentiment_metrics)["loss"] == pytest.approx(np.var(y))  # R^2 = 0
    assert constant_metrics(y, None, "l1", sentiment_metrics)["loss"] == pytest.approx(np.mean(np.abs(y - 0.5)))
    assert constant_metrics(y, None, "mse", sentiment_metrics)["corr"] == 0.0  # the metrics' value for a constant

    def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        return {"acc": float(np.mean(logits.argmax(1) == labels))}

    c = np.array([0, 0, 0, 2], np.int64)  # class 1 never occurs: its logit is tiny, not -inf
    out = constant_metrics(c, 3, "ce", accuracy)
    assert out["acc"] == 0.75 and out["loss"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))


def _simulated_seed(seed: int, epochs: int = 10, n: int = 199) -> Any:
    """A seed of a two-modality model on generated validation data: text informative but
    undertrained at first (worse than a constant at epoch 1, noisy for three epochs), audio pure
    noise whose weight in the full model grows as the model fits the training speakers. Returns
    the labels and ``predict(active, epoch)``."""
    g = np.random.default_rng(seed)
    y = g.uniform(-3, 3, n)
    text_noise = [g.normal(size=n) for _ in range(epochs + 1)]
    audio = g.normal(size=n)  # nothing about the labels

    def predict(active: tuple[str, ...], epoch: int) -> np.ndarray:
        quality = min(1.0, 0.15 * epoch)  # how much of the label the text path has learnt
        spread = 2.5 if epoch <= 3 else 0.8  # noisy early validations
        text = quality * y + spread * text_noise[epoch] if "text" in active else np.zeros(n)
        harm = 0.25 * epoch * audio if "audio" in active else 0.0
        return text + harm

    return y, predict


def test_modality_check_never_leaves_out_the_informative_modality_and_drops_the_noise() -> None:
    """The failure of issue 28 (a barely trained text path next to a useless audio, one noisy
    validation, text dropped for good), over many seeds, with the engine's restarts emulated:
    text is never left out for good (a provisional decision against it is undone by a restart
    of the seed); the noise goes once the evidence is clear; the decisions are recorded."""
    from decalign.train.modality_check import CheckState

    dropped_at, restarts = [], 0
    for seed in range(60):
        y, predict = _simulated_seed(seed)
        state, active, epoch = CheckState(), ("text", "audio"), 1
        assert np.mean((predict(active, 1) - y) ** 2) > np.var(y)  # the first validation: worse than a constant
        while epoch <= 10:
            outcome = _run_check(lambda a, e=epoch, f=predict: f(a, e), y, active, state, epoch,
                                 built=("text", "audio"), seed=seed)
            active = outcome.kept
            if "text" not in active:  # only ever provisionally, and never past a restart
                assert state.restart or (state.pending or {}).get("modality") == "text", (seed, epoch)
            if state.restart:  # what the engine does: the seed from its first epoch, text protected
                assert state.decisions[-1]["action"] == "restart" and state.taken_back == ["text"]
                state.restart, active, epoch, restarts = False, ("text", "audio"), 1, restarts + 1
                continue
            epoch += 1
        assert active == ("text",), (seed, state.decisions)
        final = state.decisions[-1]
        assert final["action"] == "leave_out" and final["modality"] == "audio" and not final["provisional"]
        assert final["change"]["high"] < 0 and final["vs_constant"]["high"] < 0
        assert len(final["evidence"]) == 2 and final["evidence"][-1]["epoch"] == final["epoch"]
        dropped_at.append(final["epoch"])
    assert min(dropped_at) >= 2  # two validations must agree
    assert max(dropped_at) <= 8  # and the noise goes once its harm is clear
    assert restarts <= 60  # at most one restart per seed (text protected after it)


def test_modality_check_needs_consecutive_agreement() -> None:
    from decalign.train.modality_check import CheckState

    y = np.linspace(-3, 3, 120)
    wobble = np.sin(np.arange(120) * 12.9898)
    harmful_at = {1, 3, 5}  # audio harms at every other validation only: never two in a row

    def predict(active: tuple[str, ...], epoch: int) -> np.ndarray:
        return 0.9 * y + (wobble if "audio" in active and epoch in harmful_at else 0.0)

    state, active = CheckState(), ("text", "audio")
    for epoch in range(1, 7):
        outcome = _run_check(lambda a, e=epoch: predict(a, e), y, active, state, epoch, built=("text", "audio"))
        assert outcome.kept == active and outcome.decision is None
        assert outcome.evidence["check_streak_audio"] == (1.0 if epoch in harmful_at else 0.0)
    assert state.decisions == []
    # with agree=1 the first harmful validation decides
    outcome = _run_check(lambda a: predict(a, 1), y, ("text", "audio"), CheckState(), 1, built=("text", "audio"),
                         agree=1)
    assert outcome.kept == ("text",)


def test_modality_check_keeps_the_most_needed_and_the_last_modality() -> None:
    from decalign.train.modality_check import CheckState

    y = np.linspace(-3, 3, 150)
    noise = np.cos(np.arange(150) * 7.1)

    # A model worse with both: without text it is 0.6 y, without audio 0.9 y; with both a mess.
    # Both absences help, but the one that helps least (text: its absence still costs most) stays.
    def both(active: tuple[str, ...]) -> np.ndarray:
        if active == ("text", "audio"):
            return -y + 2 * noise
        return 0.9 * y if active == ("text",) else 0.6 * y

    state = CheckState()
    for epoch in (1, 2):
        outcome = _run_check(both, y, ("text", "audio"), state, epoch, built=("text", "audio"))
    assert outcome.kept == ("text",) and state.decisions[0]["modality"] == "audio"
    # a single modality is never left out, however bad
    outcome = _run_check(lambda a: -3 * y, y, ("text",), CheckState(), 1, built=("text", "audio"), agree=1)
    assert outcome.kept == ("text",) and outcome.decision is None


def test_modality_check_takes_back_a_contradicted_decision() -> None:
    from decalign.train.modality_check import CheckState

    y = np.linspace(-3, 3, 150)
    noise = np.cos(np.arange(150) * 7.1)

    def predict(active: tuple[str, ...], epoch: int) -> np.ndarray:
        if epoch <= 2:  # audio harms at first ...
            return 0.9 * y + (noise if "audio" in active else 0.0)
        return 0.5 * y + (0.45 * y if "audio" in active else 0.0)  # ... then carries half the signal

    state, active = CheckState(), ("text", "audio")
    actions = []
    for epoch in range(1, 8):
        outcome = _run_check(lambda a, e=epoch: predict(a, e), y, active, state, epoch, built=("text", "audio"))
        active = outcome.kept
        if outcome.decision:
            actions.append((outcome.decision["action"], outcome.decision["epoch"]))
    assert actions == [("leave_out", 2), ("take_back", 4)]
    assert active == ("text", "audio") and state.taken_back == ["audio"]
    assert state.decisions[1]["change"]["high"] < 0  # the model with audio back is better beyond the noise
    # restored from state.pt, the check continues where it was
    again = CheckState.from_state(state.state_dict())
    assert again == state


@pytest.mark.slow
def test_modality_check_leaves_a_misleading_modality_out_end_to_end(tmp_path: Path) -> None:
    """The engine with the check, on a file with a misleading vision: vision goes, the decision
    and its evidence are in result.json, history.csv and state.pt, and the saved model is the
    checked one."""
    data = _data(misleading=True)
    config = resolve_config(data, overrides=[*TINY, "train.num_epochs=8", "train.modality_dropout=0.5",
                                             "train.modality_check=true"])
    result = train(config, data, tmp_path / "run", quiet=True, tensorboard=False)
    seed = json.loads((tmp_path / "run" / "seed_1" / "result.json").read_text())
    assert seed["modalities_left_out"] == ["vision"], seed.get("modality_check")
    (decision,) = seed["modality_check"]
    assert decision["action"] == "leave_out" and decision["modality"] == "vision"
    assert decision["epoch"] == seed["left_out_epochs"]["vision"] and decision["change"]["high"] < 0
    with open(tmp_path / "run" / "seed_1" / "history.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "valid"]
    assert all(r["check_loss_without_text"] != "" for r in rows[: decision["epoch"]])
    assert float(rows[decision["epoch"] - 1]["check_streak_vision"]) == 2.0
    state = torch.load(tmp_path / "run" / "seed_1" / "state.pt", weights_only=False)
    assert state["modality_check"]["decisions"][0]["modality"] == "vision"
    again = evaluate_checkpoint(tmp_path / "run" / "seed_1" / "model.safetensors", dataset=_data(misleading=True))
    if seed["best_epoch"] >= decision["epoch"]:
        assert again["mae"] == pytest.approx(result.mean["mae"], rel=1e-5)
    # the released training (neither option) trusts the misleading modality on test
    plain = resolve_config(data, overrides=[*TINY, "train.num_epochs=8"])
    trusting = train(plain, _data(misleading=True), tmp_path / "plain", quiet=True, tensorboard=False)
    assert result.mean["mae"] < trusting.mean["mae"] - 0.05, (result.mean["mae"], trusting.mean["mae"])


def test_a_modality_misleading_before_anything_is_learnt_goes_provisionally_and_is_confirmed() -> None:
    """A misleading vision makes the full model far worse than a constant while the text path
    is still learning: it goes provisionally (the model left does not beat the constant yet),
    and the decision is confirmed once the model without it does."""
    from decalign.train.modality_check import CheckState

    y = np.linspace(-3, 3, 199)
    shuffled = np.random.default_rng(0).permutation(y)  # label-like on train, nothing here

    def predict(active: tuple[str, ...], epoch: int) -> np.ndarray:
        text = ((0.5 if epoch > 2 else 0.0) * y if "text" in active else 0.0) + 0.3 * np.cos(np.arange(199) * 3.3)
        return text + (1.5 * shuffled if "vision" in active else 0.0)

    state, active = CheckState(), ("text", "audio", "vision")
    for epoch in range(1, 7):
        outcome = _run_check(lambda a, e=epoch: predict(a, e), y, active, state, epoch)
        active = outcome.kept
    (decision,) = state.decisions
    assert decision["modality"] == "vision" and decision["provisional"] and decision["epoch"] == 2
    assert decision["confirmed_epoch"] > decision["epoch"] and state.pending is None
    assert active == ("text", "audio") and not state.restart


def test_a_provisional_decision_never_confirmed_restarts_the_seed_with_the_modality_protected() -> None:
    """The collapse of issue 28 under the provisional rule: a barely trained, very noisy text
    path makes the full model worse than a constant, and the model without text (a useless,
    near-constant audio) removes that shortfall. Text goes provisionally, the audio-only model
    never beats the constant, and the check asks for the seed to start again with text
    protected; the restarted seed never leaves text out."""
    from decalign.train.modality_check import PROVISIONAL_VALIDATIONS, CheckState

    y = np.linspace(-3, 3, 199)
    noise = np.cos(np.arange(199) * 3.3)

    def first_attempt(active: tuple[str, ...]) -> np.ndarray:
        text = 0.05 * y + 3.0 * noise if "text" in active else 0.0
        return text + (0.02 * noise if "audio" in active else 0.0)

    state, active = CheckState(), ("text", "audio")
    decisions = []
    for epoch in range(1, 10):
        outcome = _run_check(first_attempt, y, active, state, epoch, built=("text", "audio"))
        active = outcome.kept
        if outcome.decision:
            decisions.append((outcome.decision["action"], outcome.decision["modality"], epoch))
        if state.restart:
            break
    assert decisions == [("leave_out", "text", 2), ("restart", "text", 2 + PROVISIONAL_VALIDATIONS)]
    assert state.taken_back == ["text"] and "neither beat" in state.decisions[-1]["reason"]
    state.restart = False  # what the engine does when it starts the seed again
    active = ("text", "audio")
    for epoch in range(1, 10):
        outcome = _run_check(first_attempt, y, active, state, epoch, built=("text", "audio"))
        assert "text" in outcome.kept
        active = outcome.kept


def test_the_engine_restarts_a_seed_when_the_check_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart runs the seed again from its first epoch with the same random numbers: the
    restarted run equals a run that never left anything out, the history holds one attempt,
    and result.json records the decisions."""
    import importlib

    from decalign.train.modality_check import CheckOutcome

    modalities = importlib.import_module("decalign.train.modalities")  # ``decalign.train`` is also the function

    real = modalities.check_modalities
    calls = {"n": 0}

    def scripted(evaluate_with, active, built, predictions, metrics, labels, kind, width, state, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the second validation of the first attempt: ask for a restart
            decision = {"epoch": kw["epoch"], "action": "restart", "modality": "audio", "reason": "scripted",
                        "change": {"mean": 0.0, "low": 0.0, "high": 0.0, "p": 1.0}, "level": 0.05, "agree": 1}
            state.decisions.append(decision)
            state.taken_back.append("audio")
            state.restart = True
            return CheckOutcome(active, dict(metrics), {}, decision)
        return CheckOutcome(active, dict(metrics), {}, None)

    data = _data(misleading=False)
    overrides = [*TINY, "train.num_epochs=3", "train.modality_check=true"]
    monkeypatch.setattr(modalities, "check_modalities", scripted)
    restarted = train(resolve_config(data, overrides=overrides), data, tmp_path / "a", quiet=True, tensorboard=False)
    monkeypatch.setattr(modalities, "check_modalities", real)

    def never(evaluate_with, active, built, predictions, metrics, labels, kind, width, state, **kw):
        return CheckOutcome(active, dict(metrics), {}, None)

    monkeypatch.setattr(modalities, "check_modalities", never)
    plain = train(resolve_config(data, overrides=overrides), _data(misleading=False), tmp_path / "b", quiet=True,
                  tensorboard=False)
    assert calls["n"] == 2 + 3  # two validations, then the three of the restarted seed
    assert restarted.mean["mae"] == pytest.approx(plain.mean["mae"], rel=1e-6)
    seed = json.loads((tmp_path / "a" / "seed_1" / "result.json").read_text())
    assert [d["action"] for d in seed["modality_check"]] == ["restart"] and seed["modalities_left_out"] == []
    with open(tmp_path / "a" / "seed_1" / "history.csv", newline="") as fh:
        epochs = [int(r["epoch"]) for r in csv.DictReader(fh) if r["split"] == "valid"]
    assert epochs == [1, 2, 3]


def test_the_runs_summary_line_counts_left_out_modalities_and_restarts() -> None:
    from decalign.train.modality_check import summary

    assert summary({1: {"test": {}}}) is None  # no check
    seeds = {
        1: {"modalities_left_out": ["audio"], "left_out_epochs": {"audio": 2}, "modality_check": []},
        2: {"modalities_left_out": ["audio"], "left_out_epochs": {"audio": 4},
            "modality_check": [{"action": "restart", "modality": "text", "epoch": 5}]},
        3: {"modalities_left_out": [], "left_out_epochs": {}, "modality_check": []},
    }
    assert summary(seeds) == ("modality check: audio left out in 2/3 seeds (epoch 2-4); "
                              "restarts: seed 2 ('text' protected after epoch 5)")
    assert summary({3: seeds[3]}) == "modality check: every modality kept in 1/1 seeds; restarts: none"


def test_a_provisional_decision_gives_a_model_that_keeps_learning_time() -> None:
    """The model left after a provisional decision needs more validations than
    PROVISIONAL_VALIDATIONS to beat the constant, but improves at each: no restart, confirmed."""
    from decalign.train.modality_check import PROVISIONAL_VALIDATIONS, CheckState

    y = np.linspace(-3, 3, 199)
    shuffled = np.random.default_rng(0).permutation(y)

    def predict(active: tuple[str, ...], epoch: int) -> np.ndarray:
        # text learns slowly once vision is gone: worse than a constant until epoch 8 (loss
        # (1 - a)^2 var(y)), better at every validation
        text = (-0.6 + 0.1 * max(epoch - 2, 0)) * y if "text" in active else np.zeros_like(y)
        return text + (1.5 * shuffled if "vision" in active else 0.0)

    state, active = CheckState(), ("text", "audio", "vision")
    for epoch in range(1, 12):
        outcome = _run_check(lambda a, e=epoch: predict(a, e), y, active, state, epoch)
        active = outcome.kept
        assert not state.restart, (epoch, state.decisions)
    (decision,) = state.decisions
    assert decision["provisional"] and decision["confirmed_epoch"] - decision["epoch"] > PROVISIONAL_VALIDATIONS


@pytest.mark.slow
def test_a_resumed_run_continues_the_checks_state_exactly(tmp_path: Path) -> None:
    """Killed after epoch 5 (one validation into a streak) and resumed, a run with the check makes
    the same decisions and ends with the same metrics as one run straight through: the streak is
    in state.pt, the resamples are drawn from (seed, epoch)."""
    data = _data(misleading=True)
    overrides = [*TINY, "train.num_epochs=6", "train.modality_dropout=0.5", "train.modality_check=true"]
    config = resolve_config(data, overrides=overrides)
    straight = train(config, data, tmp_path / "straight", quiet=True, tensorboard=False)

    def stop_after_five(epoch: int, _valid: dict[str, float]) -> None:
        if epoch == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, _data(misleading=True), tmp_path / "resumed", quiet=True, tensorboard=False,
              epoch_callback=stop_after_five)
    resumed = train(config, _data(misleading=True), tmp_path / "resumed", resume=True, quiet=True,
                    tensorboard=False)
    assert resumed.mean["mae"] == pytest.approx(straight.mean["mae"], rel=1e-6)
    a = json.loads((tmp_path / "straight" / "seed_1" / "result.json").read_text())
    b = json.loads((tmp_path / "resumed" / "seed_1" / "result.json").read_text())
    assert a["modality_check"] == b["modality_check"] and a["modalities_left_out"] == b["modalities_left_out"]
    # the decision came at epoch 6, the second validation of a streak begun before the stop
    assert [(d["modality"], d["epoch"]) for d in b["modality_check"]] == [("vision", 6)]
