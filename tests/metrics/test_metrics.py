"""Hand-computed cases for every metric key, degenerate inputs, errors and cross-checks."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

try:
    from sklearn.metrics import f1_score
except ImportError:  # the core install: the reference checks skip
    f1_score = None

from decalign.metrics import (
    SENTIMENT_KEYS,
    SIMS_KEYS,
    MetricWarning,
    emotion_metrics,
    metrics_for,
    regression_metrics,
    sentiment_metrics,
    sims_metrics,
)

needs_sklearn = pytest.mark.skipif(
    f1_score is None, reason="scikit-learn is the reference for F1 here: pip install -e '.[test]'"
)


def _pearsonr(a, b) -> tuple[float]:
    """numpy's correlation matrix as the independent reference for Pearson's r."""
    return (float(np.corrcoef(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))[0, 1]),)


def no_warnings(fn, *args, **kwargs):
    """Call fn and fail on any warning at all (ours or sklearn's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# sentiment (MOSI / MOSEI)

# One small split that exercises every key; worked out by hand below.
SENT_P = np.array([1.5, -0.5, 0.0, 2.5, -3.6, 0.4])
SENT_Y = np.array([2.0, 0.0, -1.0, 2.6, -2.9, 0.6])


def test_sentiment_hand_computed() -> None:
    m = no_warnings(sentiment_metrics, SENT_P, SENT_Y)
    assert list(m) == list(SENTIMENT_KEYS)
    assert all(type(v) is float for v in m.values())
    # has0: p >= 0 = [T F T T F T], y >= 0 = [T T F T F T] -> agree at 0, 3, 4, 5 -> 4/6.
    # The prediction exactly 0 (index 2) counts as non-negative here, against a label of -1.
    assert m["acc2_has0"] == pytest.approx(4 / 6)
    # Weighted F1: class True (support 4) TP 3 FP 1 FN 1 -> F1 0.75;
    # class False (support 2) TP 1 FP 1 FN 1 -> F1 0.5; (4 * 0.75 + 2 * 0.5) / 6 = 4/6.
    assert m["f1_has0"] == pytest.approx(4 / 6)
    # non0 drops index 1 (label exactly 0). p > 0 = [T F T F T] (the 0.0 prediction is
    # negative now), y > 0 = [T F T F T] -> all agree.
    assert m["acc2_non0"] == pytest.approx(1.0)
    assert m["f1_non0"] == pytest.approx(1.0)
    # acc7: round(clip(p, -3, 3)) = [2, -0, 0, 2, -3, 0] (2.5 -> 2, half to even),
    # round(y) = [2, 0, -1, 3, -3, 1] -> agree at 0, 1, 4 -> 3/6.
    assert m["acc7"] == pytest.approx(0.5)
    # acc5: round(clip(p, -2, 2)) = [2, -0, 0, 2, -2, 0], round(clip(y, -2, 2)) =
    # [2, 0, -1, 2, -2, 1] -> agree at 0, 1, 3, 4 -> 4/6 (clipping makes 3 and 4 agree).
    assert m["acc5"] == pytest.approx(4 / 6)
    # mae, unclipped: 0.5 + 0.5 + 1 + 0.1 + 0.7 + 0.2 = 3.0 over 6 (clipped it would be 0.4).
    assert m["mae"] == pytest.approx(0.5)
    assert m["corr"] == pytest.approx(_pearsonr(SENT_P, SENT_Y)[0])


def test_corr_hand_computed() -> None:
    # centred p = [-1, 0, 1], y = [-1, 1, 0]: dot 1, norms sqrt(2) * sqrt(2) -> 0.5.
    assert sentiment_metrics([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])["corr"] == pytest.approx(0.5)


def test_acc7_rounds_half_to_even() -> None:
    # numpy round: 2.5 -> 2, -2.5 -> -2, 0.5 -> 0, 1.5 -> 2; half-up would give 3, -3 (or -2), 1, 2.
    m = sentiment_metrics([2.5, -2.5, 0.5, 1.5], [2.0, -2.0, 0.0, 2.0])
    assert m["acc7"] == 1.0
    m = sentiment_metrics([2.5, 0.5], [3.0, 1.0])
    assert m["acc7"] == 0.0


def test_acc5_and_acc7_clip() -> None:
    # acc5: clip(p) = [2, -2], clip(y) = [2, -1.6] -> rounds [2, -2] vs [2, -2]: 1.0.
    # acc7: clip(p, -3, 3) = [3, -3] vs round(y) = [2, -2]: 0.0.
    m = sentiment_metrics([5.0, -4.0], [2.4, -1.6])
    assert m["acc5"] == 1.0
    assert m["acc7"] == 0.0
    assert m["mae"] == pytest.approx((2.6 + 2.4) / 2)  # unclipped


def test_has0_vs_non0_with_zero_prediction_and_labels() -> None:
    # Labels [0, 0, 1, -1], predictions [0, -0.2, 0, -1]:
    # has0: p >= 0 [T F T F] vs y >= 0 [T T T F] -> 3/4.
    # non0 keeps indices 2, 3: p > 0 [F F] vs y > 0 [T F] -> 1/2; the 0.0 prediction for a
    # positive label is wrong in non0 but right in has0.
    m = sentiment_metrics([0.0, -0.2, 0.0, -1.0], [0.0, 0.0, 1.0, -1.0])
    assert m["acc2_has0"] == pytest.approx(0.75)
    assert m["acc2_non0"] == pytest.approx(0.5)
    # non0 F1: class True (support 1) TP 0 -> 0; class False (support 1) TP 1 FP 1 FN 0 -> 2/3;
    # weighted (0 + 2/3) / 2 = 1/3.
    assert m["f1_non0"] == pytest.approx(1 / 3)
    # has0 F1: class True (support 3) TP 2 FP 0 FN 1 -> 0.8; class False (support 1) TP 1 FP 1
    # FN 0 -> 2/3; (3 * 0.8 + 2/3) / 4 = 23/30.
    assert m["f1_has0"] == pytest.approx(23 / 30)


@needs_sklearn
def test_sentiment_matches_sklearn_and_scipy_on_random_data() -> None:
    rng = np.random.default_rng(0)
    y = np.round(rng.uniform(-3, 3, 300) * 3) / 3  # MOSI-like thirds, with exact zeros
    y[:20] = 0.0
    p = y + rng.normal(0, 1.0, 300)
    m = no_warnings(sentiment_metrics, p, y)
    nz = y != 0
    assert m["f1_non0"] == pytest.approx(f1_score(y[nz] > 0, p[nz] > 0, average="weighted"))
    assert m["f1_has0"] == pytest.approx(f1_score(y >= 0, p >= 0, average="weighted"))
    assert m["acc2_non0"] == pytest.approx(np.mean((p[nz] > 0) == (y[nz] > 0)))
    assert m["corr"] == pytest.approx(_pearsonr(p, y)[0])
    assert m["mae"] == pytest.approx(np.mean(np.abs(p - y)))
    expected_acc7 = np.mean([round(min(max(a, -3), 3)) == round(min(max(b, -3), 3)) for a, b in zip(p, y)])
    assert m["acc7"] == pytest.approx(expected_acc7)  # Python's round is also half to even


def test_regression_head_shape_n_by_1_accepted() -> None:
    m1 = sentiment_metrics(SENT_P[:, None], SENT_Y)
    m2 = sentiment_metrics(SENT_P, SENT_Y[:, None])
    assert m1 == m2 == sentiment_metrics(SENT_P, SENT_Y)


# ---------------------------------------------------------------------------------------------
# CH-SIMS

SIMS_P = np.array([-0.1, 0.1, 0.0, 0.7, -0.7, 1.5, -2.0])
SIMS_Y = np.array([-0.5, 0.0, -0.4, 0.9, -0.2, 0.8, -0.8])


def test_sims_hand_computed() -> None:
    m = no_warnings(sims_metrics, SIMS_P, SIMS_Y)
    assert list(m) == list(SIMS_KEYS)
    # clip(p) = [-0.1, 0.1, 0, 0.7, -0.7, 1, -1]
    # 2 classes (v <= 0 -> 0): p [0 1 0 1 0 1 0], y [0 0 0 1 0 1 0] -> 6/7.
    assert m["acc2"] == pytest.approx(6 / 7)
    # 3 classes (v <= -0.1 -> 0, -0.1 < v <= 0.1 -> 1, else 2): -0.1 is negative, 0.1 neutral.
    # p [0 1 1 2 0 2 0], y [0 1 0 2 0 2 0] -> 6/7.
    assert m["acc3"] == pytest.approx(6 / 7)
    # 5 classes (edges -0.7, -0.1, 0.1, 0.7, right-closed): -0.7 -> 0, 0.7 -> 3.
    # p [1 2 2 3 0 4 0], y [1 2 1 4 1 4 0] -> agree at 0, 1, 5, 6 -> 4/7.
    assert m["acc5"] == pytest.approx(4 / 7)
    # F1 of the 2-class buckets: class 1 (support 2) TP 2 FP 1 FN 0 -> 4/5; class 0 (support 5)
    # TP 4 FP 0 FN 1 -> 8/9; weighted (5 * 8/9 + 2 * 4/5) / 7 = 272/315.
    assert m["f1"] == pytest.approx(272 / 315)
    # MAE of clipped values: 0.4 + 0.1 + 0.4 + 0.2 + 0.5 + 0.2 + 0.2 = 2.0 (unclipped: 3.0).
    assert m["mae"] == pytest.approx(2 / 7)
    assert m["corr"] == pytest.approx(_pearsonr(np.clip(SIMS_P, -1, 1), SIMS_Y)[0])


def test_sims_corr_and_mae_use_clipped_values() -> None:
    # Clipped, predictions equal the labels exactly: corr 1, mae 0 (unclipped corr < 1).
    m = sims_metrics([3.0, -1.0, 0.5], [1.0, -1.0, 0.5])
    assert m["corr"] == pytest.approx(1.0)
    assert m["mae"] == 0.0
    assert _pearsonr([3.0, -1.0, 0.5], [1.0, -1.0, 0.5])[0] < 0.95


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sims_edges_in_input_precision(dtype) -> None:
    # 0.1 is the right-closed top of the neutral bucket, in float32 too (float32 0.1 is
    # 0.10000000149 in float64, which would wrongly make it positive).
    # 3 classes: 0.1 -> 1 and 0.0 -> 1; -0.1 -> 0 and -0.5 -> 0; 0.7 -> 2 and 0.4 -> 2.
    # 5 classes: 0.1 -> 2 and 0.0 -> 2; -0.1 -> 1 and -0.5 -> 1; 0.7 -> 3 and 0.4 -> 3.
    p = np.array([0.1, -0.1, 0.7], dtype=dtype)
    y = np.array([0.0, -0.5, 0.4], dtype=dtype)
    for m in (sims_metrics(p, y), sims_metrics(torch.tensor(p), torch.tensor(y))):
        assert (m["acc2"], m["acc3"], m["acc5"]) == (2 / 3, 1.0, 1.0)  # 2 classes: 0.1 -> 1 vs 0.0 -> 0


# ---------------------------------------------------------------------------------------------
# emotion / classification

EMO_PRED = np.array([0, 0, 1, 2, 2, 1])
EMO_Y = np.array([0, 1, 1, 2, 0, 1])
EMO_NAMES = ["happy", "sad", "neutral"]


def _logits(pred: np.ndarray, n_classes: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return 3.0 * np.eye(n_classes)[pred] + rng.uniform(-1, 1, (len(pred), n_classes))


def test_emotion_hand_computed() -> None:
    m = no_warnings(emotion_metrics, _logits(EMO_PRED, 3), EMO_Y, EMO_NAMES)
    assert list(m) == [
        "wacc", "waf1", "acc_happy", "f1_happy", "acc_sad", "f1_sad", "acc_neutral", "f1_neutral"
    ]
    # agree at 0, 2, 3, 5 -> 4/6.
    assert m["wacc"] == pytest.approx(4 / 6)
    # happy: predicted {0, 1}, true {0, 4}: TP 1 FP 1 FN 1 -> F1 2/4; one-vs-rest agree at
    # 0, 2, 3, 5 -> 4/6.
    assert m["f1_happy"] == pytest.approx(0.5)
    assert m["acc_happy"] == pytest.approx(4 / 6)
    # sad: predicted {2, 5}, true {1, 2, 5}: TP 2 FP 0 FN 1 -> 4/5; disagree only at 1 -> 5/6.
    assert m["f1_sad"] == pytest.approx(0.8)
    assert m["acc_sad"] == pytest.approx(5 / 6)
    # neutral: predicted {3, 4}, true {3}: TP 1 FP 1 FN 0 -> 2/3; disagree only at 4 -> 5/6.
    assert m["f1_neutral"] == pytest.approx(2 / 3)
    assert m["acc_neutral"] == pytest.approx(5 / 6)
    # waf1 = (2 * 0.5 + 3 * 0.8 + 1 * 2/3) / 6 = 61/90.
    assert m["waf1"] == pytest.approx(61 / 90)
    # weighted by true support (happy 2, sad 3, neutral 1)
    assert m["waf1"] == pytest.approx((2 * 0.5 + 3 * 0.8 + 1 * 2 / 3) / 6)


def test_emotion_accepts_class_indices_and_float_labels_and_default_names() -> None:
    from_logits = emotion_metrics(_logits(EMO_PRED, 3), EMO_Y.astype(np.float32))
    from_indices = emotion_metrics(EMO_PRED, EMO_Y)
    assert from_logits == from_indices
    assert "f1_class_2" in from_logits
    assert from_logits["f1_class_1"] == pytest.approx(0.8)


def test_emotion_absent_class_warns_and_has_no_weight() -> None:
    # A 4th class that no label and no prediction uses: one-vs-rest accuracy 1, F1 0,
    # no weight in waf1 (still 61/90).
    with pytest.warns(MetricWarning, match="no sample"):
        m = emotion_metrics(_logits(EMO_PRED, 4), EMO_Y, [*EMO_NAMES, "angry"])
    assert m["acc_angry"] == 1.0
    assert m["f1_angry"] == 0.0
    assert m["waf1"] == pytest.approx(61 / 90)


@needs_sklearn
def test_emotion_matches_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 6, 400)
    logits = rng.normal(size=(400, 6)) + 1.5 * np.eye(6)[y]
    m = no_warnings(emotion_metrics, logits, y)
    pred = logits.argmax(1)
    assert m["wacc"] == pytest.approx(np.mean(pred == y))
    assert m["waf1"] == pytest.approx(f1_score(y, pred, average="weighted", labels=range(6)))
    for k in range(6):
        assert m[f"f1_class_{k}"] == pytest.approx(f1_score(y == k, pred == k))
        assert m[f"acc_class_{k}"] == pytest.approx(np.mean((y == k) == (pred == k)))


def test_emotion_errors() -> None:
    with pytest.raises(ValueError, match=r"2 name.*C=3"):
        emotion_metrics(_logits(EMO_PRED, 3), EMO_Y, ["a", "b"])
    with pytest.raises(ValueError, match=r"0\.\.2, found \[0, 5\]"):
        emotion_metrics(_logits(EMO_PRED, 3), np.array([0, 1, 1, 2, 0, 5]))
    with pytest.raises(ValueError, match="integer predicted classes"):
        emotion_metrics(np.array([0.2, 0.5]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\(6, 3\).*\(5,\)"):
        emotion_metrics(_logits(EMO_PRED, 3), EMO_Y[:5])
    with pytest.raises(ValueError, match="whole numbers"):
        emotion_metrics(_logits(EMO_PRED, 3), EMO_Y + 0.5)
    bad = _logits(EMO_PRED, 3)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        emotion_metrics(bad, EMO_Y)
    with pytest.raises(ValueError, match="empty"):
        emotion_metrics(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# generic regression


def test_regression_hand_computed() -> None:
    # errors [1, 0, -2]: mae 3/3 = 1, mse 5/3; centred labels are twice the centred
    # predictions ([-4/3, -1/3, 5/3] vs [-8/3, -2/3, 10/3]) -> corr 1.
    m = no_warnings(regression_metrics, [1.0, 2.0, 4.0], [0.0, 2.0, 6.0])
    assert m == pytest.approx({"mae": 1.0, "mse": 5 / 3, "corr": 1.0})


# ---------------------------------------------------------------------------------------------
# degenerate inputs and errors


@pytest.mark.parametrize("fn", [sentiment_metrics, sims_metrics, regression_metrics])
def test_constant_predictions_give_corr_zero_with_warning(fn) -> None:
    with pytest.warns(MetricWarning, match="predictions are constant"):
        m = fn([0.3, 0.3, 0.3], [0.5, -0.2, 0.1])
    assert m["corr"] == 0.0
    assert not any(np.isnan(v) for v in m.values())
    with pytest.warns(MetricWarning, match="labels are constant"):
        assert fn([0.3, 0.1, 0.2], [0.5, 0.5, 0.5])["corr"] == 0.0


def test_single_sample_is_defined() -> None:
    with pytest.warns(MetricWarning):
        m = sentiment_metrics([1.0], [2.0])
    assert m["acc2_non0"] == 1.0
    assert m["corr"] == 0.0


def test_no_nonzero_labels_gives_zero_with_warning() -> None:
    with pytest.warns(MetricWarning) as record:
        m = sentiment_metrics([0.5, -0.5, 0.1], [0.0, 0.0, 0.0])
    messages = " ".join(str(w.message) for w in record)
    assert "acc2_non0" in messages
    assert m["acc2_non0"] == 0.0
    assert m["f1_non0"] == 0.0
    # has0 is still defined: p >= 0 [T F T] vs y >= 0 [T T T] -> 2/3.
    assert m["acc2_has0"] == pytest.approx(2 / 3)
    assert all(issubclass(w.category, MetricWarning) for w in record)


def test_single_class_split_raises_no_sklearn_warnings() -> None:
    # All labels positive, all predictions negative: sklearn would warn about ill-defined
    # precision; we silence it and return 0.
    m = no_warnings(sentiment_metrics, [-1.0, -2.0], [1.0, 2.0])
    assert m["f1_non0"] == 0.0
    assert m["f1_has0"] == 0.0
    assert m["corr"] == pytest.approx(-1.0)


@pytest.mark.parametrize("fn", [sentiment_metrics, sims_metrics, regression_metrics])
def test_errors(fn) -> None:
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match=r"preds shape \(3,\), labels shape \(4,\)"):
        fn([0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"preds: 2 NaN and 0 infinite value\(s\) among 4"):
        fn([np.nan, 0.2, np.nan, 0.1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"labels: 0 NaN and 1 infinite"):
        fn([0.1, 0.2], [np.inf, 0.2])
    with pytest.raises(ValueError, match=r"\[N\] or \[N, 1\], found \(2, 2\)"):
        fn(np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="expected numbers"):
        fn(["a", "b"], [0.1, 0.2])


# ---------------------------------------------------------------------------------------------
# torch inputs


def test_torch_and_numpy_inputs_agree() -> None:
    p32, y32 = SENT_P.astype(np.float32), SENT_Y.astype(np.float32)
    pt = torch.tensor(p32, requires_grad=True).unsqueeze(1)  # [N, 1] head output with grad
    yt = torch.tensor(y32)
    assert sentiment_metrics(pt, yt) == sentiment_metrics(p32, y32)
    assert sims_metrics(pt, yt) == sims_metrics(p32, y32)
    assert regression_metrics(pt, yt) == regression_metrics(p32, y32)
    logits = _logits(EMO_PRED, 3)
    assert emotion_metrics(torch.tensor(logits), torch.tensor(EMO_Y), EMO_NAMES) == emotion_metrics(
        logits, EMO_Y, EMO_NAMES
    )
    # bfloat16 has no numpy dtype; it is widened rather than rejected.
    m = sentiment_metrics(torch.tensor(SENT_P).to(torch.bfloat16), torch.tensor(SENT_Y))
    assert m["acc2_non0"] == 1.0


# ---------------------------------------------------------------------------------------------
# dispatch


def test_metrics_for_dispatch() -> None:
    for kind in ("mosi", "mosei", "synthetic", "MOSI"):
        assert metrics_for(kind, "regression") is sentiment_metrics
    assert metrics_for("sims", "regression") is sims_metrics
    assert metrics_for("custom", "regression", (-3.0, 3.0)) is sentiment_metrics
    assert metrics_for("custom", "regression", (0.0, 10.0)) is regression_metrics
    assert metrics_for("custom", "regression", None) is regression_metrics

    fn = metrics_for("iemocap", "classification", None, EMO_NAMES)
    assert fn(_logits(EMO_PRED, 3), EMO_Y) == emotion_metrics(_logits(EMO_PRED, 3), EMO_Y, EMO_NAMES)
    fn = metrics_for("custom", "classification")
    assert "f1_class_2" in fn(_logits(EMO_PRED, 3), EMO_Y)


def test_metrics_for_errors() -> None:
    with pytest.raises(ValueError, match="unknown dataset kind 'auto'"):
        metrics_for("auto", "regression")
    with pytest.raises(ValueError, match="task must be"):
        metrics_for("mosi", "ranking")
    with pytest.raises(ValueError, match="classification task"):
        metrics_for("iemocap", "regression")
    with pytest.raises(ValueError, match="label_range"):
        metrics_for("custom", "regression", (3.0, -3.0))


def test_import_is_light() -> None:
    code = (
        "import sys, decalign.metrics, decalign.metrics.display; "
        "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_weighted_f1_closed_form_and_degenerate_cases() -> None:
    from decalign.metrics import _weighted_f1

    # class 0: TP 1 FP 1 FN 1 -> 1/2 (support 2); class 1: TP 2 FP 2 FN 1 -> 4/7 (support 3);
    # class 2: TP 0 FP 0 FN 1 -> 0 (support 1)
    true, pred = np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 1, 0, 1])
    assert _weighted_f1(true, pred) == pytest.approx((2 * 0.5 + 3 * 4 / 7 + 0) / 6)
    assert _weighted_f1(true, true) == 1.0
    # a class only predicted has no weight; labels restricted to absent classes give 0
    assert _weighted_f1(np.array([1, 1]), np.array([1, 0])) == pytest.approx(2 / 3)
    assert _weighted_f1(np.array([1, 1]), np.array([1, 1]), labels=[0, 2]) == 0.0
    assert _weighted_f1(np.array([True, False]), np.array([True, True])) == pytest.approx(0.5 * 2 / 3)
