"""The built-in synthetic benchmark: shapes, determinism, label quantisation, and that its signal
is spread over modalities the way the module docstring says."""

from __future__ import annotations

import numpy as np
import pytest

from decalign.config import SyntheticConfig
from decalign.data import make_synthetic


def _ridge(ds, modalities, alpha: float = 30.0) -> tuple[float, float]:
    def feats(sp):
        return np.concatenate([sp.features[m].mean(axis=1) for m in modalities], axis=1)

    tr, te = ds.splits["train"], ds.splits["test"]
    x, y = feats(tr), tr.labels.astype(np.float64)
    mx, my = x.mean(0), y.mean()  # ridge with an unpenalised intercept, in closed form
    w = np.linalg.solve((x - mx).T @ (x - mx) + alpha * np.eye(x.shape[1]), (x - mx).T @ (y - my))
    pred = (feats(te) - mx) @ w + my
    return float(np.abs(pred - te.labels).mean()), float(np.corrcoef(pred, te.labels)[0, 1])


@pytest.fixture(scope="module")
def default_dataset():
    return make_synthetic(SyntheticConfig())


def test_default_is_mosi_shaped(default_dataset) -> None:
    # Generation time is a speed target and belongs in benchmarks/, not in a timed test.
    ds = default_dataset
    assert ds.kind == "synthetic" and ds.layout == "synthetic" and ds.task == "regression"
    assert ds.label_range == (-3.0, 3.0)
    assert ds.input_dims == {"text": 768, "audio": 5, "vision": 20}
    assert ds.seq_lens == {"text": 50, "audio": 50, "vision": 50}
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [1284, 229, 686]
    assert ds.aligned


def test_labels_are_quantised_like_mosi(default_dataset) -> None:
    ds = default_dataset
    y = np.concatenate([sp.labels for sp in ds.splits.values()])
    assert y.dtype == np.float32
    assert y.min() >= -3 and y.max() <= 3
    np.testing.assert_allclose(3 * y, np.round(3 * y), atol=1e-5)
    assert 0.03 < (y == 0).mean() < 0.2  # exact zeros occur: has-0 and non-0 metrics differ
    assert 1.0 < y.std() < 2.0


def test_all_modalities_beat_any_single_one(default_dataset) -> None:
    ds = default_dataset
    mae_all, corr_all = _ridge(ds, ["text", "audio", "vision"])
    assert corr_all > 0.9
    for m in ("text", "audio", "vision"):
        mae, corr = _ridge(ds, [m])
        assert mae_all < 0.6 * mae, (m, mae_all, mae)
        assert corr_all > corr + 0.15, (m, corr_all, corr)
        assert corr > 0.4, (m, corr)  # each modality does carry signal


def test_deterministic_per_seed() -> None:
    cfg = SyntheticConfig(n_train=20, n_valid=5, n_test=5, seq_len=6, seed=3)
    a, b = make_synthetic(cfg), make_synthetic(cfg)
    c = make_synthetic(SyntheticConfig(n_train=20, n_valid=5, n_test=5, seq_len=6, seed=4))
    for name in ("train", "valid", "test"):
        for m in a.modalities:
            np.testing.assert_array_equal(a.splits[name].features[m], b.splits[name].features[m])
        np.testing.assert_array_equal(a.splits[name].labels, b.splits[name].labels)
        np.testing.assert_array_equal(a.splits[name].ids, b.splits[name].ids)
    assert not np.array_equal(a.splits["train"].features["audio"], c.splits["train"].features["audio"])


def test_unique_weight_zero_makes_every_modality_sufficient() -> None:
    ds = make_synthetic(SyntheticConfig(n_train=600, n_valid=50, n_test=300, seq_len=10, unique_weight=0.0))
    _, corr_all = _ridge(ds, ["text", "audio", "vision"])
    for m in ("audio", "vision"):
        _, corr = _ridge(ds, [m])
        assert corr > corr_all - 0.05


def test_variable_lengths_and_more_modalities() -> None:
    cfg = SyntheticConfig(
        n_train=30, n_valid=6, n_test=6, seq_len=8, dims={"a": 4, "b": 2, "c": 3, "d": 5}, variable_lengths=True
    )
    ds = make_synthetic(cfg)
    assert ds.modalities == ("a", "b", "c", "d") and not ds.aligned
    sp = ds.splits["train"]
    assert (sp.lengths["a"] == 8).all()
    for m in ("b", "c", "d"):
        assert sp.lengths[m].min() >= 4 and sp.lengths[m].max() <= 8
        for i, ln in enumerate(sp.lengths[m]):
            assert (sp.features[m][i, ln:] == 0).all()
            assert (sp.features[m][i, :ln] != 0).any()
