"""``train.ema_decay``: the moving average follows its closed form, the averaged weights are what
is validated, saved and tested, the raw ones what is trained, and a stopped run resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from decalign.api import resolve_config, train
from decalign.config import DataConfig, SyntheticConfig
from decalign.data import load_dataset
from decalign.errors import ConfigError
from decalign.train.averaging import WeightAverage
from decalign.train.checkpoint import load_training_state, load_weights


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def test_average_is_the_bias_corrected_exponential_average() -> None:
    model = _linear()
    model.bias.requires_grad_(False)  # frozen: not averaged
    decay = 0.9
    average = WeightAverage(model, decay)
    values = [1.0, -2.0, 0.5, 3.0, 3.0, -1.0, 0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    for t, value in enumerate(values, start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update()
        # The closed form, a weighted sum of every value so far whose weights sum to one:
        weights = [(1 - decay) * decay ** (t - s) for s in range(1, t + 1)]
        expected = sum(w * v for w, v in zip(weights, values[:t])) / (1 - decay**t)
        torch.testing.assert_close(average.averaged()["weight"], torch.full((2, 3), expected))
    assert sorted(average.averaged()) == ["weight"]


def test_the_first_step_starts_the_average_and_the_decay_tends_to_its_setting() -> None:
    average = WeightAverage(_linear(), 0.99)
    assert average.current_decay() == 0.0  # t = 1: the initial weights get no weight
    average.updates = 1
    assert average.current_decay() == pytest.approx(0.99 / 1.99)  # t = 2: the two steps alike
    average.updates = 10_000
    assert average.current_decay() == pytest.approx(0.99)


def test_applied_swaps_in_the_average_and_restores_even_on_error() -> None:
    model = _linear()
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, 0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()  # the first step: the average is the weights after it
    with torch.no_grad():
        model.weight.add_(1.0)  # not averaged yet
    moved = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied():
        torch.testing.assert_close(model.weight, raw["weight"] + 1.0)
    torch.testing.assert_close(model.state_dict(), moved)
    with pytest.raises(RuntimeError, match="inside"), average.applied():
        raise RuntimeError("inside")
    torch.testing.assert_close(model.state_dict(), moved)


def test_state_round_trip_and_mismatch() -> None:
    model = _linear()
    average = WeightAverage(model, 0.7)
    with torch.no_grad():
        model.weight.mul_(3.0)
    average.update()
    again = WeightAverage(_linear(), 0.7)
    again.load_state_dict(average.state_dict())
    assert again.updates == 1
    torch.testing.assert_close(again.averaged(), average.averaged())
    other = nn.Linear(3, 2)
    other.weight.requires_grad_(False)
    with pytest.raises(ValueError, match="other parameters"):
        WeightAverage(other, 0.7).load_state_dict(average.state_dict())
    with pytest.raises(ValueError, match=r"train.ema_decay"):
        WeightAverage(model, 1.0)


TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
        "train.batch_size=16", "train.num_threads=1", "train.seeds=[1]", "train.lr=1e-3",
        "train.early_stop_patience=10", "train.ema_decay=0.9"]


def _tiny_data():
    return load_dataset(None, DataConfig(dataset="synthetic", synthetic=SyntheticConfig(
        n_train=64, n_valid=16, n_test=16, dims={"text": 12, "audio": 5, "vision": 6})))


def test_the_checkpoint_holds_the_average_and_the_state_the_raw_weights(tmp_path: Path) -> None:
    data = _tiny_data()
    config = resolve_config(data, overrides=[*TINY, "train.num_epochs=1"])
    train(config, data, tmp_path / "run", quiet=True, tensorboard=False)
    seed = tmp_path / "run" / "seed_1"
    state = load_training_state(seed / "state.pt")
    saved = load_weights(seed / "model.safetensors")
    shadow = state["weight_average"]["shadow"]
    assert state["weight_average"]["updates"] == 4  # 64 samples in batches of 16
    assert shadow and set(shadow) <= set(saved)
    for name, value in shadow.items():
        torch.testing.assert_close(saved[name], value)
    assert any(not torch.equal(state["model"][name], value) for name, value in shadow.items())


def test_a_stopped_run_resumes_with_its_average(tmp_path: Path) -> None:
    data = _tiny_data()
    config = resolve_config(data, overrides=[*TINY, "train.num_epochs=4"])
    straight = train(config, data, tmp_path / "straight", quiet=True, tensorboard=False)

    def stop_after_two(epoch: int, _valid: dict[str, float]) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, data, tmp_path / "resumed", quiet=True, tensorboard=False, epoch_callback=stop_after_two)
    resumed = train(config, data, tmp_path / "resumed", resume=True, quiet=True, tensorboard=False)
    a = json.loads((tmp_path / "straight" / "results.json").read_text())["seeds"]["1"]
    b = json.loads((tmp_path / "resumed" / "results.json").read_text())["seeds"]["1"]
    assert a["best_epoch"] == b["best_epoch"]
    for key, value in a["test"].items():
        assert b["test"][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    assert straight.mean == pytest.approx(resumed.mean, rel=1e-6, abs=1e-7)


def test_resuming_a_run_without_the_average_is_refused(tmp_path: Path) -> None:
    data = _tiny_data()
    plain = [o for o in TINY if not o.startswith("train.ema_decay")]
    config = resolve_config(data, overrides=[*plain, "train.num_epochs=2"])

    def stop(epoch: int, _valid: dict[str, float]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, data, tmp_path / "run", quiet=True, tensorboard=False, epoch_callback=stop)
    with_average = resolve_config(data, overrides=[*TINY, "train.num_epochs=2"])
    with pytest.raises(ConfigError, match=r"differs from the saved run.*train\.ema_decay"):
        train(with_average, data, tmp_path / "run", resume=True, quiet=True, tensorboard=False)
