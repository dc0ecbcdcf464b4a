"""Per-dimension percentile clip + standardisation (docs/method.md §11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import decalign.data.preprocess as pre
from decalign.config import DataConfig, SyntheticConfig
from decalign.data import (
    DataError,
    MultimodalDataset,
    Split,
    apply_standardizer,
    fit_standardizer,
    load_dataset,
    make_synthetic,
)
from decalign.testing.fixtures import write_mmsa_pickle


def _reference(x: np.ndarray, percentiles: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """The formula, written the obvious (memory-hungry) way."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    lo, hi = np.percentile(flat, percentiles, axis=0)
    clipped = np.clip(flat, lo, hi)
    return lo, hi, clipped.mean(axis=0), np.maximum(clipped.std(axis=0), 1e-6)


def _split(x: np.ndarray, **more: np.ndarray) -> Split:
    feats = {"audio": x, **more}
    n = x.shape[0]
    return Split(
        features=feats,
        lengths={m: np.full(n, a.shape[1], np.int64) for m, a in feats.items()},
        labels=np.zeros(n, np.float32),
        ids=np.array([str(i) for i in range(n)]),
    )


def test_fit_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((40, 7, 5)) * [1, 10, 0.1, 3, 100] + [0, 5, -2, 1e3, 0]).astype(np.float32)
    x[3, 2, 1] = 1e4  # an outlier the clip removes
    stats = fit_standardizer(_split(x), ["audio"], (0.5, 99.5))
    lo, hi, mean, std = _reference(x, (0.5, 99.5))
    st = stats["audio"]
    assert all(a.dtype == np.float32 and a.shape == (5,) for a in st)
    np.testing.assert_allclose(st.lo, lo, rtol=1e-6)
    np.testing.assert_allclose(st.hi, hi, rtol=1e-6)
    np.testing.assert_allclose(st.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(st.std, std, rtol=1e-4)


def test_chunked_passes_equal_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((33, 6, 9)).astype(np.float32) * 4 + 2
    whole = fit_standardizer(_split(x), ["audio"], (1.0, 99.0))["audio"]
    monkeypatch.setattr(pre, "CHUNK_ELEMENTS", 20)
    monkeypatch.setattr(pre, "_PERCENTILE_BLOCK", 200)
    chunked = fit_standardizer(_split(x), ["audio"], (1.0, 99.0))["audio"]
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_apply_does_not_mutate_and_standardises() -> None:
    dims = {"text": 8, "audio": 4, "vision": 6}
    ds = make_synthetic(SyntheticConfig(n_train=64, n_valid=16, n_test=16, seq_len=6, dims=dims))
    before = {n: {m: x.copy() for m, x in sp.features.items()} for n, sp in ds.splits.items()}
    stats = fit_standardizer(ds.splits["train"], ["audio", "vision"], (0.5, 99.5))
    out = apply_standardizer(ds, stats)
    for n, sp in ds.splits.items():
        for m, x in sp.features.items():
            np.testing.assert_array_equal(x, before[n][m])
    assert out.splits["train"].features["text"] is ds.splits["train"].features["text"]
    for m in ("audio", "vision"):
        z = out.splits["train"].features[m].reshape(-1, ds.input_dims[m]).astype(np.float64)
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)
        lo, hi, mean, std = stats[m]
        x = ds.splits["test"].features[m]
        expected = (np.clip(x, lo, hi) - mean) / std
        np.testing.assert_allclose(out.splits["test"].features[m], expected, rtol=1e-5, atol=1e-5)
    assert any("standardised" in n for n in out.notes) and not any("standardised" in n for n in ds.notes)


def test_constant_dimension_and_non_finite_values() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 4, 3)).astype(np.float32)
    x[..., 1] = 7.0  # constant: std floored at 1e-6, output 0
    x[0, 0, 0] = np.nan
    x[1, 1, 2] = -np.inf
    sp = _split(x)
    stats = fit_standardizer(sp, ["audio"], (0.0, 100.0))
    assert stats["audio"].std[1] == pytest.approx(1e-6)
    assert np.isfinite(np.concatenate(list(stats["audio"]))).all()
    splits = {"train": sp, "valid": sp, "test": sp}
    ds = MultimodalDataset(kind="custom", layout="npz", task="regression", splits=splits)
    out = apply_standardizer(ds, stats).splits["train"].features["audio"]
    assert np.isfinite(out).all()
    assert (out[..., 1] == 0).all()
    # Non-finite inputs count as 0 before clipping (the released nan_to_num), like the readers.
    a = stats["audio"]
    assert out[0, 0, 0] == pytest.approx((np.clip(0.0, a.lo[0], a.hi[0]) - a.mean[0]) / a.std[0], rel=1e-5)


def test_errors() -> None:
    sp = _split(np.zeros((3, 2, 2), np.float32))
    with pytest.raises(DataError, match="percentiles"):
        fit_standardizer(sp, ["audio"], (50.0, 10.0))
    with pytest.raises(DataError, match="'vision'"):
        fit_standardizer(sp, ["vision"], (1.0, 99.0))
    splits = {"train": sp, "valid": sp, "test": sp}
    ds = MultimodalDataset(kind="custom", layout="npz", task="regression", splits=splits)
    stats = fit_standardizer(sp, ["audio"], (1.0, 99.0))
    wrong = {"audio": pre.FeatureStats(*(np.zeros(3, np.float32) for _ in range(4)))}
    with pytest.raises(DataError, match=r"\(2,\)"):
        apply_standardizer(ds, wrong)
    assert apply_standardizer(ds, stats).splits["train"].features["audio"].shape == (3, 2, 2)


def test_loading_keeps_raw_features_and_standardize_applies_the_configured_percentiles(tmp_path: Path) -> None:
    """Loading never standardises (``api.prepare`` does, saving the statistics with the model):
    ``data.standardize`` leaves what ``load_dataset`` returns untouched, and
    :func:`~decalign.data.preprocess.standardize` fits on train and transforms every split."""
    path = write_mmsa_pickle(tmp_path / "mosei.pkl", kind="mosei", aligned=False, n=(8, 3, 3), neg_inf_audio=5)
    with pytest.warns(UserWarning):
        raw = load_dataset(path)
    with pytest.warns(UserWarning):
        loaded = load_dataset(path, DataConfig(standardize=(0.5, 99.5)))
    std, fitted = pre.standardize(loaded, (0.5, 99.5))
    stats = fit_standardizer(raw.splits["train"], ["audio", "vision"], (0.5, 99.5))
    ref = apply_standardizer(raw, stats)
    assert set(fitted) == {"audio", "vision"}
    for name in ("train", "valid", "test"):
        for m in ("text", "audio", "vision"):
            np.testing.assert_array_equal(loaded.splits[name].features[m], raw.splits[name].features[m])
            np.testing.assert_array_equal(std.splits[name].features[m], ref.splits[name].features[m])
    assert not np.array_equal(std.splits["train"].features["audio"], raw.splits["train"].features["audio"])
    np.testing.assert_array_equal(std.splits["train"].features["text"], raw.splits["train"].features["text"])
    assert any("standardised ['audio', 'vision']" in n for n in std.notes)
    assert not any("standardised" in n for n in loaded.notes)
