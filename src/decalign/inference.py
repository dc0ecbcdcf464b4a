"""Using a trained model on new samples: :class:`Predictor`.

A checkpoint's model expects what training fed it: features standardised with the statistics
fitted on the run's train split (MOSEI and CH-SIMS presets), every modality padded to the length
the model was built for, and logits that mean the run's classes. A :class:`Predictor` owns all of
that, so new samples go in exactly as a dataset file carries them::

    predictor = decalign.Predictor.from_checkpoint("runs/synthetic/seed_1111/model.safetensors")
    out = predictor.predict({"text": text, "audio": audio, "vision": vision})   # [T, D] or [N, T, D]
    out.values, out.class_names, out.probabilities

Modalities may be left out (or named in ``drop``): the model then treats them as inactive, the
same rule as its modality ablations (their slots of the fused representation are zeros and the
other modalities do not attend to them).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

import numpy as np
import numpy.typing as npt

from decalign.data.types import DataError

if TYPE_CHECKING:  # annotations only: importing this module stays free of torch
    from decalign.config import RunConfig
    from decalign.data.samples import Samples
    from decalign.model.base import MultimodalModel
    from decalign.model.factory import ModelInfo
    from decalign.train.batches import SplitTensors
    from decalign.train.checkpoint import LoadedCheckpoint

__all__ = ["Prediction", "Predictor"]

ArrayLike = npt.ArrayLike
"""A numpy array, a torch tensor (it converts through ``__array__``), nested lists, or a list
of per-sample ``[T, D]`` arrays."""


class SampleArrays(Protocol):
    """What :meth:`Predictor.predict_split` reads: a dataset's :class:`~decalign.data.Split` or
    a :class:`~decalign.data.samples.SampleSet` of a file of samples."""

    @property
    def features(self) -> Mapping[str, np.ndarray]: ...
    @property
    def lengths(self) -> Mapping[str, np.ndarray]: ...
    @property
    def text_bert(self) -> np.ndarray | None: ...


class _Checked(NamedTuple):
    """One modality's input after checking: the model-ready batch, each sample's true length,
    whether one sample (no batch axis) was given, and the time steps a length may reach (where
    time is depends on the input: ``[N, T, D]`` features, ``[N, 3, T]`` BERT tokens)."""

    batch: np.ndarray
    lengths: np.ndarray
    single: bool
    steps: int


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Predictor.predict` returns for N samples.

    Attributes:
        task: ``regression`` or ``classification``.
        values: ``[N]`` float predictions (regression) or int64 predicted class indices.
        probabilities: ``[N, C]`` softmax of the logits (classification), else ``None``.
        logits: ``[N, C]`` raw class scores (classification), else ``None``.
        class_names: the C class names in index order (classification), else ``None``.
    """

    task: str
    values: np.ndarray
    probabilities: np.ndarray | None = None
    logits: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def labels(self) -> list[str] | None:
        """The predicted class name of every sample (classification), else ``None``."""
        if self.class_names is None:
            return None
        return [self.class_names[int(c)] for c in self.values]


def _class_names(info: ModelInfo) -> tuple[str, ...] | None:
    if info.task != "classification":
        return None
    return tuple(info.class_names) if info.class_names else tuple(f"class_{c}" for c in range(info.num_outputs))


class Predictor:
    """A trained model with everything needed to use it on raw features.

    Args:
        model: the model (any architecture of :func:`decalign.train.checkpoint.build_model`).
        config: the run's :class:`~decalign.config.RunConfig` (batch size, text encoder).
        info: the :class:`~decalign.train.checkpoint.ModelInfo` it was built for (modalities,
            widths, padded lengths, task, class names).
        preprocess: per-modality standardisation statistics saved with the checkpoint (``lo``,
            ``hi``, ``mean``, ``std``), empty when the run did not standardise.
        device: where the model runs (``cpu``, ``cuda``, ... ; ``auto`` picks as training does).
    """

    def __init__(self, model: MultimodalModel, config: RunConfig, info: ModelInfo,
                 preprocess: Mapping[str, Mapping[str, np.ndarray]] | None = None, device: str = "cpu") -> None:
        from decalign.data.preprocess import FeatureStats
        from decalign.train.devices import resolve_device

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.info = info
        self.stats = {
            m: FeatureStats(**{k: np.asarray(v) for k, v in s.items()}) for m, s in (preprocess or {}).items()
        }
        self.class_names = _class_names(info)
        self._bert_text = getattr(model, "text_encoder", None) is not None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str = "cpu") -> Predictor:
        """The predictor of a ``model.safetensors`` written by training."""
        from decalign.train.checkpoint import load_checkpoint

        return cls.from_loaded(load_checkpoint(path), device)

    @classmethod
    def from_loaded(cls, ckpt: LoadedCheckpoint, device: str = "cpu") -> Predictor:
        """The predictor of a checkpoint already loaded: the one way from a checkpoint to a
        predictor (:meth:`from_checkpoint`, ``predict --media`` and ``serve`` go through it)."""
        return cls(ckpt.model, ckpt.config, ckpt.info, ckpt.preprocess, device)

    @property
    def task(self) -> str:
        return str(self.info.task)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the model uses (those switched off at training are not accepted)."""
        return tuple(getattr(self.model, "active", self.info.modalities))

    @property
    def input_dims(self) -> dict[str, int]:
        return {m: int(self.info.input_dims[m]) for m in self.modalities}

    @property
    def seq_lens(self) -> dict[str, int]:
        """The padded length of each modality: shorter inputs are zero-padded at the end to it."""
        return {m: int(self.info.seq_lens[m]) for m in self.modalities}

    # -- input checking ------------------------------------------------------------------------

    def _one(self, name: str, value: ArrayLike) -> _Checked:
        """One modality as a padded float32 ``[N, T, D]`` batch, its unpadded lengths, whether
        the input was a single sample, and its time steps ``T``."""
        dim, steps = self.info.input_dims[name], self.info.seq_lens[name]
        if isinstance(value, (list, tuple)):
            samples = [_as_numpy(v, name) for v in value]
            bad = [i for i, s in enumerate(samples) if s.ndim != 2]
            if bad:
                raise DataError(f"modality {name!r}: a list of samples must hold [T, D] arrays; "
                                f"sample {bad[0]} has shape {samples[bad[0]].shape}")
            single = False
        else:
            x = _as_numpy(value, name)
            if x.ndim == 2:
                samples, single = [x], True
            elif x.ndim == 3:
                samples, single = list(x), False
            else:
                raise DataError(f"modality {name!r}: expected [T, D] (one sample) or [N, T, D] (a batch), "
                                f"found shape {x.shape}")
        if not samples:
            raise DataError(f"modality {name!r}: no samples")
        for s in samples:
            if s.shape[-1] != dim:
                raise DataError(f"modality {name!r}: feature width {s.shape[-1]} (shape {s.shape}), the model "
                                f"expects {dim}")
            if s.shape[0] > steps:
                raise DataError(f"modality {name!r}: {s.shape[0]} time steps, the model was built for sequences "
                                f"padded to {steps}; cut the input to at most {steps} steps")
            if s.shape[0] < 1:
                raise DataError(f"modality {name!r}: a sample has 0 time steps")
        batch = np.zeros((len(samples), steps, dim), dtype=np.float32)
        for i, s in enumerate(samples):
            batch[i, : s.shape[0]] = s
        lengths = np.array([s.shape[0] for s in samples], dtype=np.int64)
        bad = ~np.isfinite(batch)
        if bad.any():  # refused, not replaced: a caller passing NaN or inf has a bug to know about
            sample, step, _ = np.argwhere(bad)[0]
            raise DataError(f"modality {name!r}: {int(bad.sum())} non-finite feature value(s) (NaN or inf; the first "
                            f"in sample {int(sample)}, step {int(step)}); the model needs finite features")
        return _Checked(batch, lengths, single, steps)

    def _text_tokens(self, value: ArrayLike) -> _Checked:
        """BERT text input: ``[3, T]`` or ``[N, 3, T]`` token ids, mask and segments (time is
        the last axis); lengths from the mask."""
        x = _as_numpy(value, "text", integer=True)
        single = x.ndim == 2
        x = x[None] if single else x
        if x.ndim != 3 or x.shape[1] != 3:
            raise DataError(f"modality 'text': the BERT text encoder takes [3, T] or [N, 3, T] token ids "
                            f"(the data file's text_bert), found shape {x.shape}")
        lengths = np.clip(x[:, 1].sum(axis=1), 1, None).astype(np.int64)
        return _Checked(x.astype(np.int64), lengths, single, x.shape[-1])

    def prepare(self, features: Mapping[str, ArrayLike], lengths: Mapping[str, ArrayLike] | None = None,
                drop: Iterable[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], bool]:
        """Check, pad and standardise raw inputs: the model-ready ``[N, T, D]`` arrays, their
        lengths, and whether a single sample was given. See :meth:`predict`."""
        drop = tuple(drop)
        unknown = [m for m in (*features, *drop) if m not in self.info.modalities]
        if unknown:
            raise DataError(f"unknown modality {unknown[0]!r}: the model was trained on {list(self.info.modalities)}")
        off = [m for m in features if m not in self.modalities and m not in drop]
        if off:
            raise DataError(f"modality {off[0]!r} was switched off when the model was trained "
                            f"(model.modalities={list(self.modalities)}); leave it out")
        names = [m for m in self.modalities if m in features and m not in drop]
        if not names:
            raise DataError(f"no modality left to predict from: the model uses {list(self.modalities)}, "
                            f"the input has {list(features)}" + (f" and drops {list(drop)}" if drop else ""))
        arrays: dict[str, np.ndarray] = {}
        lens: dict[str, np.ndarray] = {}
        singles: dict[str, bool] = {}
        steps: dict[str, int] = {}
        for m in names:
            checked = self._text_tokens(features[m]) if m == "text" and self._bert_text else self._one(m, features[m])
            arrays[m], lens[m], singles[m], steps[m] = checked
        sizes = {m: a.shape[0] for m, a in arrays.items()}
        if len(set(sizes.values())) > 1 or len(set(singles.values())) > 1:
            raise DataError(f"modalities disagree on the number of samples: {sizes}"
                            + (" (some given as one [T, D] sample)" if len(set(singles.values())) > 1 else ""))
        for m, value in (lengths or {}).items():
            if m not in self.info.modalities:
                raise DataError(f"lengths of {m!r}: not a modality of the model; it has {list(self.info.modalities)}")
            if m not in arrays:
                continue
            raw = np.atleast_1d(_as_numpy(value, f"{m} lengths", integer=True))
            whole = np.isfinite(raw) & (raw == np.round(raw)) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
            if not whole.all():
                raise DataError(f"lengths of {m!r}: expected whole numbers of steps, found "
                                f"{raw[~whole].tolist()[:8]}")
            given = raw.astype(np.int64)
            if given.shape != lens[m].shape or (given < 1).any() or (given > steps[m]).any():
                raise DataError(f"lengths of {m!r}: expected {lens[m].shape[0]} value(s) in [1, "
                                f"{steps[m]}], found {given.tolist()[:8]}")
            lens[m] = given
        for m, st in self.stats.items():
            if m in arrays:
                from decalign.data.preprocess import standardize_array

                arrays[m] = standardize_array(arrays[m], st)
        return arrays, lens, next(iter(singles.values()))

    # -- prediction ----------------------------------------------------------------------------

    def predict(self, features: Mapping[str, ArrayLike], lengths: Mapping[str, ArrayLike] | None = None, *,
                drop: Iterable[str] = (), batch_size: int | None = None) -> Prediction:
        """Predict from raw features.

        Args:
            features: modality name -> features exactly as a dataset file carries them, before
                any standardisation: ``[T, D]`` for one sample, ``[N, T, D]`` for a batch, or a
                list of ``[T_i, D]`` samples; numpy or torch. Shorter sequences are zero-padded
                at the end to the model's length (the datasets' padding); longer ones are an
                error. Modalities left out are inactive (the model's ablation rule).
            lengths: optional modality name -> ``[N]`` true lengths (default: the unpadded
                length of each input); only the masked-pooling option reads them.
            drop: modalities to leave out although present (missing-modality tests).
            batch_size: samples per forward pass (default: the run's evaluation batch size).

        Returns:
            A :class:`Prediction` with N values (N = 1 for a single sample).

        Raises:
            DataError: an unknown or switched-off modality, a wrong feature width, too many time
                steps, modalities with different sample counts.
        """
        import torch

        arrays, lens, _ = self.prepare(features, lengths, drop)
        n = next(iter(arrays.values())).shape[0]
        tc = self.config.train
        step = batch_size or tc.eval_batch_size or tc.batch_size
        outs = []
        with torch.no_grad():
            for start in range(0, n, step):
                sl = slice(start, start + step)
                batch = {m: torch.from_numpy(a[sl]).to(self.device) for m, a in arrays.items()}
                blens = {m: torch.from_numpy(v[sl]).to(self.device) for m, v in lens.items()}
                outs.append(self.model.predict(batch, blens).float().cpu())
        raw = torch.cat(outs).numpy()
        _check_finite_outputs(raw, features, arrays)
        return self._wrap(raw)

    def _wrap(self, raw: np.ndarray) -> Prediction:
        if self.task != "classification":
            return Prediction("regression", raw.reshape(-1).astype(np.float64))
        z = raw - raw.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return Prediction("classification", raw.argmax(axis=1).astype(np.int64), probs, raw, self.class_names)

    def predict_split(self, split: SampleArrays, drop: Sequence[str] = (), batch_size: int | None = None) -> Prediction:
        """Predictions for a whole split of a dataset read without standardisation (what
        :func:`decalign.load_dataset` returns), or a set of a file of samples."""
        features = dict(split.features)
        if self._bert_text:
            if split.text_bert is None:
                raise DataError("the model's BERT text encoder needs the data file's 'text_bert' token ids, "
                                "which this file does not have")
            features["text"] = split.text_bert
        lengths = {m: v for m, v in split.lengths.items() if m in features}
        return self.predict({m: features[m] for m in self.modalities if m in features}, lengths,
                            drop=drop, batch_size=batch_size)


def _check_finite_outputs(raw: np.ndarray, features: Mapping[str, ArrayLike], arrays: Mapping[str, np.ndarray]) -> None:
    """Refuse a non-finite prediction (finite inputs too large for float32 arithmetic, such as
    features of 1e30, overflow inside the model): name the sample and the modality whose raw
    features are largest there, the likely cause, instead of returning NaN silently."""
    bad = ~np.isfinite(raw.reshape(raw.shape[0], -1)).all(axis=1)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    peaks = {m: float(np.abs(a[i]).max()) for m, a in arrays.items() if a.dtype.kind == "f"}
    culprit = max(peaks, key=lambda m: peaks[m]) if peaks else next(iter(arrays))
    given = features.get(culprit)
    parts = given if isinstance(given, (list, tuple)) else [given] if given is not None else []
    largest = max((float(np.abs(_as_numpy(p, culprit)).max()) for p in parts), default=float("nan"))
    raise DataError(f"modality {culprit!r}: the prediction of sample {i} is not finite ({int(bad.sum())} of "
                    f"{raw.shape[0]} sample(s)); its features reach {largest:.3g} in absolute value, beyond what "
                    "the model computes with in float32: check their scale")


def _as_numpy(value: ArrayLike, name: str, integer: bool = False) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, perhaps on a GPU or requiring gradients
        value = cast(Any, value).detach().to("cpu").numpy()
    try:
        x = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"modality {name!r}: not an array ({err})") from None
    if integer:
        if x.dtype.kind not in "biuf":
            raise DataError(f"{name}: expected integers, found dtype {x.dtype}")
        return x
    if x.dtype.kind not in "biuf":
        raise DataError(f"modality {name!r}: expected float features, found dtype {x.dtype}")
    return x.astype(np.float32, copy=False)


def load_samples(data: str | os.PathLike[str] | None, config: RunConfig) -> Samples:
    """The sample sets of ``data`` for prediction: a full dataset (read as training reads it,
    IEMOCAP protocol included), else any splits or a flat file, labels optional
    (:mod:`decalign.data.samples`). ``None``: the built-in dataset of ``config``."""
    import dataclasses

    from decalign.data.loading import load_dataset
    from decalign.data.samples import samples_from_dataset, samples_instead

    if data is None:
        if config.data.dataset != "synthetic":
            raise DataError("--data is required: the checkpoint was not trained on the built-in dataset")
        return samples_from_dataset(load_dataset(None, config.data))
    try:
        return samples_from_dataset(load_dataset(data, dataclasses.replace(config.data, dataset="auto")))
    except DataError as full_error:
        return samples_instead(data, full_error)


def predict_to_csv(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str] | None,
    out_csv: str | os.PathLike[str],
    splits: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    device: str = "auto",
    *,
    overwrite: bool = False,
) -> Path:
    """Write one row per sample of ``data``: ``split, id, [label,] prediction`` (regression) or
    ``split, id, [label,] predicted, p_<class>...`` (classification). ``splits`` default: ``test``
    of a full dataset, every set of a file of samples. Returns the written path.

    ``out_csv`` goes through the output guard (:mod:`decalign.safety.outputs`): refused when it
    exists (unless ``overwrite``) or is the checkpoint or the data, locked while written."""
    from decalign.safety.outputs import guarded_output

    with guarded_output(out_csv, flag="--out", inputs={"--checkpoint": checkpoint, "--data": data},
                        overwrite=overwrite) as out:
        return _predict_to_csv(checkpoint, data, out, splits, drop, device)


def _predict_to_csv(checkpoint: str | os.PathLike[str], data: str | os.PathLike[str] | None, out_csv: os.PathLike[str],
                    splits: Sequence[str] | None, drop: Sequence[str], device: str) -> Path:
    from decalign.train.history import write_predictions

    predictor = Predictor.from_checkpoint(checkpoint, device)
    samples = load_samples(data, predictor.config)
    if samples.provenance and getattr(predictor.info, "provenance", None):
        from decalign.extract.provenance import check

        check(predictor.info.provenance, samples.provenance, samples.source)
    if splits is None:
        splits = ["test"] if set(SPLITS_FULL) <= set(samples.sets) else list(samples.sets)
    unknown = [s for s in splits if s not in samples.sets]
    if unknown:
        raise DataError(f"{samples.source}: no split {unknown[0]!r}; it has {list(samples.sets)}")
    labelled = all(samples.sets[s].labels is not None for s in splits)
    ids, labels, outputs, where = [], [], [], []
    for split in splits:
        sset = samples.sets[split]
        where_split = f"{samples.source}, split {split!r}"
        absent = [m for m in predictor.modalities if m not in sset.features and m not in drop]
        if absent:
            warnings.warn(f"{where_split} has no {absent} features: predicted without them, the model's rule "
                          "for a missing modality", stacklevel=2)
        try:
            out = predictor.predict_split(sset, drop=drop)
        except DataError as err:
            raise DataError(f"{where_split}: {err}") from None
        ids.append(np.asarray([str(i) for i in sset.ids], dtype=object))
        labels.append(np.asarray(sset.labels) if labelled else np.zeros(0))
        outputs.append(out.values if out.logits is None else out.logits)
        where += [split] * len(sset)
    return write_predictions(out_csv, np.concatenate(ids), np.concatenate(labels) if labelled else None,
                             np.concatenate(outputs), predictor.class_names, splits=where)


SPLITS_FULL = ("train", "valid", "test")


def check_drop(drop: Iterable[str], modalities: Sequence[str], active: Sequence[str] | None = None) -> tuple[str, ...]:
    """``drop`` validated against the model's ``modalities``: known names, and at least one of the
    ``active`` ones (default: all) left."""
    drop = tuple(dict.fromkeys(drop))
    unknown = [m for m in drop if m not in modalities]
    if unknown:
        raise DataError(f"--drop {unknown[0]!r}: not a modality of the model; it has {list(modalities)}")
    active = modalities if active is None else active
    if not [m for m in active if m not in drop]:
        raise DataError(f"--drop {list(drop)} leaves none of the model's modalities {list(active)} to predict from")
    return drop


def drop_modalities(split: SplitTensors, drop: Sequence[str], model: MultimodalModel) -> SplitTensors:
    """A split's tensors without the modalities in ``drop`` (the model treats absent ones as
    inactive, the rule of its ablations); the arrays are shared, not copied."""
    import dataclasses

    if not drop:
        return split
    drop = check_drop(drop, model.modalities, getattr(model, "active", None))
    keep = {m: v for m, v in split.features.items() if m not in drop}
    return dataclasses.replace(split, features=keep, lengths={m: split.lengths[m] for m in keep})


def unlabelled_error(data: str | os.PathLike[str] | None, err: Exception) -> Exception:
    """The error for ``eval`` on a file that is not a full labelled dataset: say so when the file
    holds samples without labels or without all three splits, else ``err`` itself."""
    from decalign.data.samples import read_samples

    if data is None:
        return err
    try:
        samples = read_samples(data)
    except Exception:
        return err
    if samples.is_full_dataset:
        return err
    if not samples.labelled:
        bare = [s for s, v in samples.sets.items() if v.labels is None]
        return DataError(f"{data}: {'set' if len(bare) == 1 else 'sets'} {bare} have no labels, and eval needs "
                         f"labelled train, valid and test splits; score unlabelled samples with "
                         f"`decalign predict --checkpoint FILE --data {data} --out preds.csv`")
    return DataError(f"{err}. (eval needs labelled train, valid and test splits; `decalign predict` "
                     f"scores the sets {list(samples.sets)} of this file and writes their labels beside)")


def class_report(predictions: np.ndarray, labels: np.ndarray, info: ModelInfo) -> dict[str, Any]:
    """Confusion matrix and per-class precision/recall/F1 for a classification model's outputs
    (:func:`decalign.metrics.classification_report` with the model's class names)."""
    from decalign.metrics import classification_report

    return classification_report(predictions, labels, _class_names(info))


def format_class_report(report: Mapping[str, Any]) -> str:
    """The confusion matrix (counts, and the share of each true class) and the per-class scores
    as plain-text tables."""
    names = list(report["class_names"])
    counts, share = report["confusion"], report["confusion_normalized"]
    width = max(8, *(len(n) + 1 for n in names))
    head = "true \\ predicted".ljust(width + 2) + "".join(n.rjust(width) for n in names)
    lines = ["confusion matrix (counts; share of the true class in brackets)", head]
    for i, name in enumerate(names):
        cells = "".join(f"{counts[i][j]} ({share[i][j]:.2f})".rjust(width + 7) for j in range(len(names)))
        lines.append(name.ljust(width + 2) + cells)
    lines += ["", "class".ljust(width) + "precision".rjust(11) + "recall".rjust(9) + "f1".rjust(9) + "support".rjust(9)]
    for name, r in report["per_class"].items():
        lines.append(name.ljust(width) + f"{100 * r['precision']:11.2f}{100 * r['recall']:9.2f}{100 * r['f1']:9.2f}"
                     f"{r['support']:9d}")
    return "\n".join(lines)
