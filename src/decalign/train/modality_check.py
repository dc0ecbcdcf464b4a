r"""``train.modality_check``: leave out a modality that harms on unseen data, on evidence only.

A modality can fit the training labels and mislead on new speakers (features learnt from the very
labels, a speaker-specific acoustic cue). The check evaluates the validated model with each active
modality left out and removes one for good only when the validation samples say, beyond their
noise, that the model is better without it. A wrong removal is costly and was seen: one validation
pass after the first epoch of a barely trained model "showed" that the text harmed (the model
without text was the near-constant audio path, a hair better than the full model), and the run
ended at chance. So a decision needs all of:

1. **A paired difference beyond the noise.** With :math:`\ell_i` the per-sample task loss of the
   model as it is and :math:`\ell_i^{-m}` without modality :math:`m`, the mean difference
   :math:`\bar d_m = \frac1N \sum_i (\ell_i^{-m} - \ell_i)` is resampled over validation samples
   (paired bootstrap, :func:`paired_bootstrap`); :math:`m` is harmful at level :math:`\alpha` when
   the one-sided upper bound :math:`q_{1-\alpha}(\bar d^*_m) < 0`.
2. **A model that has learnt something.** The model kept without :math:`m` must beat the best
   constant prediction by the same test (:math:`q_{1-\alpha}` of its loss minus the constant's
   :math:`< 0`): leaving out a modality may never leave a model that knows nothing, which is what
   an undertrained text path next to an uninformative audio looks like. One exception, for a
   modality that misleads before anything else is learnt: when the full model is *worse* than
   the constant beyond the noise (:math:`q_\alpha > 0`) and the model without :math:`m` removes at
   least half of that shortfall, :math:`m` goes **provisionally**: the decision stands once the
   model left beats the constant; if it stops learning first (:data:`PROVISIONAL_VALIDATIONS`
   validations in a row without beating the constant or improving its loss), the seed starts
   again from its first epoch with :math:`m` protected (the same random numbers, so the
   restarted seed follows the first up to the decision and then keeps :math:`m`). An
   undertrained text path next to a useless audio cannot stand that test: the model without
   text is the audio's near-constant output, which may remove the full model's shortfall but
   then neither beats the constant nor keeps improving.
3. **Agreement over consecutive validations** (``train.modality_check_agree``, default 2): one
   pass can be a fluke of the weights of that epoch.
4. **Never the modality whose absence hurts most, nor the last one.** With two or more modalities
   the one whose removal costs most is the model's best source and stays, whatever the rest say.

At most one modality goes per validation (next to a misleading modality every other one looks
useless too: the misleading one goes first, the others are judged again on the model trained
without it). A decision that later validations contradict is taken back: while :math:`m` is out
the check also evaluates the model with it put back, and when that is better beyond the noise at
the same number of consecutive validations, :math:`m` returns for the rest of training (and is not
left out again). Every validation's evidence goes into ``history.csv`` (``check_*`` columns) and
every decision, with its evidence, into the seed's ``result.json`` and the run's log.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BOOTSTRAP_REPLICATES",
    "PROVISIONAL_PROGRESS",
    "PROVISIONAL_VALIDATIONS",
    "CheckOutcome",
    "CheckState",
    "PairedDifference",
    "check_modalities",
    "constant_metrics",
    "constant_predictions",
    "describe",
    "paired_bootstrap",
    "per_sample_loss",
    "summary",
]

PROVISIONAL_VALIDATIONS = 3
"""Validations in a row after a provisional decision in which the model left neither beats the
best constant prediction nor improves its own validation loss by :data:`PROVISIONAL_PROGRESS`:
then the decision is contradicted. A model that keeps learning is given time: on mosi-dev with
the misleading modality the model without it beat the constant three validations after the
decision, its loss falling 8-15 % at each."""

PROVISIONAL_PROGRESS = 0.02
"""Relative fall of the validation loss (against its lowest since the decision) that counts as
still learning."""

BOOTSTRAP_REPLICATES = 2000
"""Resamples of the validation samples per paired test: the bound's Monte Carlo error is then
well below the differences that matter (a few hundredths of the loss on ~200 samples)."""

MetricFn = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]
Evaluate = Callable[[tuple[str, ...]], tuple[np.ndarray, dict[str, float]]]
"""Evaluate the model with these modalities active: (predictions, validation metrics)."""


@dataclass(frozen=True)
class PairedDifference:
    """A paired bootstrap of the mean of :math:`a_i - b_i`."""

    mean: float
    low: float
    """One-sided lower bound :math:`q_\\alpha` of the resampled means."""
    high: float
    """One-sided upper bound :math:`q_{1-\\alpha}`: below 0, ``a`` is smaller beyond the noise."""
    p: float
    """Share of resampled means at or above 0 (one-sided, with the +1 correction): small when
    ``a`` is clearly smaller."""

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "p": self.p}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, level: float, rng: np.random.Generator,
                     replicates: int = BOOTSTRAP_REPLICATES) -> PairedDifference:
    r"""Paired bootstrap of :math:`\bar d = \frac1N \sum_i (a_i - b_i)` over the ``N`` samples.

    Each replicate draws :math:`N` sample indices with replacement and takes the mean of the same
    samples' differences (the pairing removes what the two models share, most of the per-sample
    noise). Returns the mean, the one-sided bounds :math:`q_\alpha` and :math:`q_{1-\alpha}` of
    the replicate means (``level`` :math:`=\alpha`) and
    :math:`p = (1 + \#\{\bar d^* \ge 0\}) / (B + 1)`. ``a == b`` gives 0 everywhere (p 1).
    """
    d = np.asarray(a, np.float64).reshape(-1) - np.asarray(b, np.float64).reshape(-1)
    n = len(d)
    if n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, 1.0)
    means = d[rng.integers(0, n, size=(replicates, n))].mean(axis=1)
    low, high = np.quantile(means, [level, 1.0 - level])
    p = (1 + int(np.count_nonzero(means >= 0))) / (replicates + 1)
    return PairedDifference(float(d.mean()), float(low), float(high), p)


def per_sample_loss(prediction: np.ndarray, labels: np.ndarray, kind: str) -> np.ndarray:
    r"""The task loss of each sample: :math:`(\hat y_i - y_i)^2` (``mse``), :math:`|\hat y_i - y_i|`
    (``l1``), :math:`-\log \mathrm{softmax}(z_i)_{y_i}` (``ce``); its mean is the validation loss."""
    if kind == "ce":  # log-softmax in float64, shifted by the row maximum
        logits = np.asarray(prediction, np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -log_p[np.arange(len(logits)), np.asarray(labels).astype(np.int64)]
    error = np.asarray(prediction, np.float64).reshape(-1) - np.asarray(labels, np.float64).reshape(-1)
    if kind == "mse":
        return error**2
    if kind == "l1":
        return np.abs(error)
    raise ValueError(f"unknown task loss {kind!r}")


def constant_predictions(labels: np.ndarray, width: int | None, kind: str) -> np.ndarray:
    r"""The best *constant* prediction for ``labels``: what a model that has learnt nothing from
    its inputs can reach at most on this split (fitted on these labels, so an optimistic floor).
    ``mse``: the mean :math:`\bar y` (loss the variance: beating it means :math:`R^2 > 0`);
    ``l1``: the median; ``ce``: the class frequencies :math:`p_c` as logits :math:`\log p_c` (loss
    the entropy). ``width``: the number of classes (``ce``), else ``None``."""
    if kind == "ce":
        counts = np.bincount(labels.astype(np.int64), minlength=width or 0).astype(np.float64)
        logits = np.log(np.maximum(counts / counts.sum(), 1e-12))
        return np.broadcast_to(logits, (len(labels), len(counts))).astype(np.float32)
    centre = np.median(labels) if kind == "l1" else np.mean(labels)
    return np.full(labels.shape, centre, dtype=np.float32)


def constant_metrics(labels: np.ndarray, width: int | None, kind: str, metric_fn: MetricFn) -> dict[str, float]:
    """The metrics of :func:`constant_predictions` (plus ``loss``). A metric a constant leaves
    undefined is what ``metric_fn`` makes of it (the sentiment metrics give Pearson's r 0)."""
    prediction = constant_predictions(labels, width, kind)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # the correlation of a constant is undefined
        metrics = {k: float(v) for k, v in metric_fn(prediction, labels).items()}
    metrics["loss"] = float(per_sample_loss(prediction, labels, kind).mean())
    return metrics


@dataclass
class CheckState:
    """What the check carries from one validation to the next (saved in ``state.pt``)."""

    streaks: dict[str, int] = field(default_factory=dict)
    """Consecutive validations that found each active modality harmful."""
    back_streaks: dict[str, int] = field(default_factory=dict)
    """Consecutive validations that found each left-out modality helpful again."""
    taken_back: list[str] = field(default_factory=list)
    """Modalities returned after a contradicted decision: never left out again."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """Every decision with its evidence, in order."""
    recent: list[dict[str, Any]] = field(default_factory=list)
    """The evidence of the validations of the current streaks (for the decision's record)."""
    pending: dict[str, Any] | None = None
    """A provisional decision waiting for the model left to beat the constant:
    ``{"modality", "epoch", "waited"}``."""
    restart: bool = False
    """A provisional decision was contradicted: the engine starts the seed again, keeping this
    state (its ``taken_back`` protects the modality)."""

    def state_dict(self) -> dict[str, Any]:
        return {"streaks": dict(self.streaks), "back_streaks": dict(self.back_streaks),
                "taken_back": list(self.taken_back), "decisions": list(self.decisions), "recent": list(self.recent),
                "pending": self.pending, "restart": self.restart}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> CheckState:
        state = state or {}
        return cls({str(k): int(v) for k, v in state.get("streaks", {}).items()},
                   {str(k): int(v) for k, v in state.get("back_streaks", {}).items()},
                   [str(m) for m in state.get("taken_back", [])], list(state.get("decisions", [])),
                   list(state.get("recent", [])), state.get("pending"), bool(state.get("restart", False)))


@dataclass(frozen=True)
class CheckOutcome:
    kept: tuple[str, ...]
    """The modalities the model uses from now on."""
    metrics: dict[str, float]
    """Their validation metrics."""
    evidence: dict[str, float]
    """This validation's ``check_*`` columns for ``history.csv``."""
    decision: dict[str, Any] | None
    """The decision taken at this validation, if any (also appended to the state)."""


def check_modalities(evaluate_with: Evaluate, active: tuple[str, ...], built: tuple[str, ...],
                     predictions: np.ndarray, metrics: dict[str, float], labels: np.ndarray, kind: str,
                     width: int | None, state: CheckState, *, level: float, agree: int, epoch: int,
                     rng: np.random.Generator) -> CheckOutcome:
    """One validation's check (see the module's docstring for the rule).

    ``evaluate_with(modalities)`` evaluates the current weights with those modalities active;
    ``predictions`` / ``metrics`` are the validation outputs with ``active``. ``state`` is updated
    in place. Deterministic given ``rng``.
    """
    full = per_sample_loss(predictions, labels, kind)
    floor = per_sample_loss(constant_predictions(labels, width, kind), labels, kind)
    versus_constant = paired_bootstrap(full, floor, level, rng)
    evidence: dict[str, float] = {"check_loss": float(full.mean()), "check_constant_loss": float(floor.mean()),
                                  "check_high_vs_constant": versus_constant.high}
    record: dict[str, Any] = {"epoch": epoch, "active": list(active), "loss": float(full.mean()),
                              "constant_loss": float(floor.mean()), "vs_constant": versus_constant.to_json(),
                              "without": {}, "with": {}}

    # 0. a provisional decision is confirmed once the model left beats the constant, else undone
    if state.pending is not None:
        if versus_constant.high < 0:
            state.decisions[-1]["confirmed_epoch"] = epoch
            state.pending = None
        else:
            lowest = float(state.pending.get("lowest", math.inf))
            if full.mean() < (1.0 - PROVISIONAL_PROGRESS) * lowest:  # still learning: give it time
                state.pending.update(lowest=float(full.mean()), waited=0)
            else:
                state.pending["waited"] += 1
            if state.pending["waited"] >= PROVISIONAL_VALIDATIONS:
                m = state.pending["modality"]
                decision = {"epoch": epoch, "action": "restart", "modality": m, "change": versus_constant.to_json(),
                            "level": level, "agree": state.pending["waited"], "evidence": [record],
                            "reason": f"the model without {m!r} neither beat the best constant prediction nor "
                                      f"improved for {PROVISIONAL_VALIDATIONS} validations after the provisional "
                                      "decision"}
                state.taken_back.append(m)
                state.decisions.append(decision)
                state.pending, state.restart = None, True
                state.streaks, state.back_streaks, state.recent = {}, {}, []
                return CheckOutcome(active, dict(metrics), evidence, decision)

    # 1. each active modality left out in turn
    worse_than_constant = versus_constant.low > 0
    shortfall = float(full.mean() - floor.mean())
    trials: dict[str, tuple[PairedDifference, PairedDifference, dict[str, float]]] = {}
    for m in active if len(active) > 1 else ():
        reduced = tuple(x for x in active if x != m)
        pred, reduced_metrics = evaluate_with(reduced)
        loss = per_sample_loss(pred, labels, kind)
        trials[m] = (paired_bootstrap(loss, full, level, rng), paired_bootstrap(loss, floor, level, rng),
                     reduced_metrics)
        evidence.update({f"check_loss_without_{m}": float(loss.mean()), f"check_high_without_{m}": trials[m][0].high,
                         f"check_high_vs_constant_without_{m}": trials[m][1].high})
        record["without"][m] = {"loss": float(loss.mean()), "vs_full": trials[m][0].to_json(),
                                "vs_constant": trials[m][1].to_json()}
    most_needed = max(trials, key=lambda m: trials[m][0].mean) if trials else None

    def learnt(m: str) -> bool:  # the model without m beats the constant ...
        return trials[m][1].high < 0

    def misleads(m: str) -> bool:  # ... or m makes the model worse than knowing nothing
        return worse_than_constant and -trials[m][0].mean >= 0.5 * shortfall

    for m in active:
        harmful = (m in trials and m != most_needed and m not in state.taken_back and state.pending is None
                   and trials[m][0].high < 0 and (learnt(m) or misleads(m)))
        state.streaks[m] = state.streaks.get(m, 0) + 1 if harmful else 0
        evidence[f"check_streak_{m}"] = float(state.streaks[m])

    # 2. each left-out modality put back
    returns: dict[str, tuple[PairedDifference, dict[str, float]]] = {}
    for m in (x for x in built if x not in active and x not in state.taken_back):
        widened = tuple(x for x in built if x in active or x == m)
        pred, widened_metrics = evaluate_with(widened)
        loss = per_sample_loss(pred, labels, kind)
        returns[m] = (paired_bootstrap(loss, full, level, rng), widened_metrics)
        helpful = returns[m][0].high < 0
        state.back_streaks[m] = state.back_streaks.get(m, 0) + 1 if helpful else 0
        evidence.update({f"check_loss_with_{m}": float(loss.mean()), f"check_high_with_{m}": returns[m][0].high,
                         f"check_back_streak_{m}": float(state.back_streaks[m])})
        record["with"][m] = {"loss": float(loss.mean()), "vs_current": returns[m][0].to_json()}
    state.recent = [*state.recent[-(agree - 1):], record] if agree > 1 else [record]

    decision: dict[str, Any] | None = None
    back = [m for m in returns if state.back_streaks[m] >= agree]
    ready = [m for m in trials if state.streaks.get(m, 0) >= agree]
    if back:  # a contradicted decision is undone first
        m = min(back, key=lambda x: returns[x][0].mean)
        kept = tuple(x for x in built if x in active or x == m)
        decision = {"epoch": epoch, "action": "take_back", "modality": m, "change": returns[m][0].to_json()}
        state.taken_back.append(m)
        state.pending = None
        chosen_metrics = returns[m][1]
    elif ready:
        m = min(ready, key=lambda x: trials[x][0].mean)
        kept = tuple(x for x in active if x != m)
        decision = {"epoch": epoch, "action": "leave_out", "modality": m, "change": trials[m][0].to_json(),
                    "vs_constant": trials[m][1].to_json(), "provisional": not learnt(m)}
        if not learnt(m):
            state.pending = {"modality": m, "epoch": epoch, "waited": 0, "lowest": float(trials[m][2]["loss"])}
        chosen_metrics = trials[m][2]
    else:
        kept, chosen_metrics = active, metrics
    if decision is not None:
        decision.update(level=level, agree=agree, evidence=list(state.recent))
        state.decisions.append(decision)
        state.streaks, state.back_streaks, state.recent = {}, {}, []  # the model changed: judge it anew
    return CheckOutcome(kept, dict(chosen_metrics), evidence, decision)


def describe(decision: Mapping[str, Any]) -> str:
    """One line for the log and the run's summary."""
    change = decision["change"]
    if decision["action"] == "restart":
        return (f"the modality check starts the seed again with {decision['modality']!r} protected after epoch "
                f"{decision['epoch']}: {decision['reason']} (validation loss minus the constant's "
                f"{change['mean']:+.4g}, bounds [{change['low']:+.4g}, {change['high']:+.4g}])")
    verb = {"leave_out": "leaves out", "take_back": "takes back"}[decision["action"]]
    if decision.get("provisional"):
        confirmed = decision.get("confirmed_epoch")
        verb += (f" (provisionally; confirmed after epoch {confirmed}, when the model left beat the best constant)"
                 if confirmed else " (provisionally: the model left has not beaten the best constant yet)")
    return (f"the modality check {verb} {decision['modality']!r} after epoch {decision['epoch']}: validation loss "
            f"{change['mean']:+.4g} (one-sided {100 * (1 - decision['level']):.0f}% bounds "
            f"[{change['low']:+.4g}, {change['high']:+.4g}]) over {decision['agree']} consecutive validation(s)")


def summary(seeds: Mapping[int, Mapping[str, Any]]) -> str | None:
    """The run's summary line of the check from the seeds' results (``None`` without the check):
    how often each modality was left out and the restarts, e.g. ``modality check: audio left out
    in 5/5 seeds (epochs 2-3); restarts: none``."""
    checked = {s: r for s, r in seeds.items() if r.get("modalities_left_out") is not None}
    if not checked:
        return None
    counts: dict[str, list[int]] = {}
    restarts = []
    for seed, result in checked.items():
        for m in result["modalities_left_out"]:
            counts.setdefault(m, []).append(int(result.get("left_out_epochs", {}).get(m, 0)))
        restarts += [f"seed {seed} ({d['modality']!r} protected after epoch {d['epoch']})"
                     for d in result.get("modality_check", []) if d.get("action") == "restart"]
    parts = [f"{m} left out in {len(e)}/{len(checked)} seeds (epoch {min(e)}"
             + (f"-{max(e)})" if max(e) != min(e) else ")") for m, e in sorted(counts.items())]
    kept = f"every modality kept in {len(checked)}/{len(checked)} seeds"
    return ("modality check: " + ("; ".join(parts) if parts else kept)
            + "; restarts: " + (", ".join(restarts) if restarts else "none"))
