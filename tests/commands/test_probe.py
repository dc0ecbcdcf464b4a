"""``decalign probe``: pooled features in closed form, ridge recovering a linear target, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the probe needs scikit-learn: pip install 'decalign[probe]'")

from decalign.cli import main
from decalign.config import DataConfig, SyntheticConfig
from decalign.data import Split, load_dataset
from decalign.probe import pooled_features, probe_table, ridge_probe, run_probes


def test_pooled_features_use_valid_steps_only() -> None:
    x = np.zeros((2, 4, 2), np.float32)
    x[0, :2] = [[1, 2], [3, 6]]  # length 2: mean (2, 4), std (1, 2); padding ignored
    x[1] = [[1, 1], [1, 1], [1, 1], [5, 1]]  # length 4: mean (2, 1), std (sqrt 3, 0)
    split = Split(features={"a": x}, lengths={"a": np.array([2, 4])}, labels=np.zeros(2, np.float32),
                  ids=np.array(["p", "q"]))
    np.testing.assert_allclose(pooled_features(split, ["a"]), [[2, 4, 1, 2], [2, 1, np.sqrt(3), 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="no modality 'b'"):
        pooled_features(split, ["b"])


def _data():
    return load_dataset(None, DataConfig(dataset="synthetic", synthetic=SyntheticConfig(
        n_train=300, n_valid=100, n_test=100, seq_len=6, dims={"text": 10, "audio": 3, "vision": 4})))


def test_ridge_recovers_a_linear_target() -> None:
    data = _data()
    rng = np.random.default_rng(0)
    w = rng.standard_normal(3)
    for sp in data.splits.values():  # labels an exact linear function of the pooled audio mean
        sp.labels = np.clip(sp.features["audio"].mean(1) @ w, -3, 3).astype(np.float32)
    result = ridge_probe(data, ["audio"])
    assert result.metrics["test"]["corr"] > 0.99
    assert result.alpha == min(result.alpha, 1.0)  # a clean target needs little shrinkage
    assert result.predictions["valid"].shape == (100,)


def test_run_probes_default_sets_are_each_modality_then_all() -> None:
    """From Python, as the command: one probe per modality and one on all of them."""
    data = _data()
    results = run_probes(data, folds=3)
    mods = list(data.modalities)
    assert list(results) == [*mods, "+".join(mods)]
    assert results["+".join(mods)].modalities == tuple(mods)
    assert list(run_probes(data, [("audio",)], folds=3)) == ["audio"]
    table = probe_table(results, "test")
    assert all(f"ridge {name}" in table for name in results)
    assert results["audio"].to_dict()["alpha"] == results["audio"].alpha


def test_probe_cli_writes_every_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.testing.fixtures import write_mmsa_pickle

    pkl = write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind="mosi")
    out = tmp_path / "probes.json"
    assert main(["probe", "--data", str(pkl), "--sets", "text", "text,audio", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert list(payload) == ["text", "text+audio"]
    assert set(payload["text"]) >= {"alpha", "train", "valid", "test"} and "acc2_non0" in payload["text"]["test"]
    assert "ridge text+audio" in capsys.readouterr().out
    assert main(["probe", "--data", str(pkl), "--sets", "text,smell"]) == 2
    assert "--sets 'text,smell': unknown modality ['smell']" in capsys.readouterr().err


@pytest.mark.parametrize("folds", ["0", "1", "100000"])
def test_folds_out_of_range_are_one_line_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         folds: str) -> None:
    """Issue case: ``probe --folds 0`` printed scikit-learn's message."""
    from decalign.testing.fixtures import write_mmsa_pickle

    pkl = write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind="mosi")
    assert main(["probe", "--data", str(pkl), "--sets", "text", "--folds", folds]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--folds {folds}" in err and "cross-validation needs" in err


def test_probe_json_is_guarded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.testing.fixtures import write_mmsa_pickle

    pkl = write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind="mosi")
    before = pkl.read_bytes()
    assert main(["probe", "--data", str(pkl), "--sets", "text", "--json", str(pkl), "--overwrite"]) == 2
    assert "same file as the input --data" in capsys.readouterr().err and pkl.read_bytes() == before


def test_probe_without_data_probes_the_built_in_dataset(tmp_path: Path) -> None:
    """Like `decalign train`, `probe` without --data uses the built-in dataset (it needed a file)."""
    out = tmp_path / "probes.json"
    assert main(["probe", "--sets", "audio", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    expected = ridge_probe(load_dataset(None, DataConfig(dataset="synthetic")), ["audio"])
    assert payload["audio"]["alpha"] == expected.alpha
    assert payload["audio"]["test"] == pytest.approx(expected.metrics["test"])
