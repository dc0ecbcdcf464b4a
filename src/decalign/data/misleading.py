"""A modality that misleads: label-driven on the training split, uninformative elsewhere.

Real multimodal files can carry features that were fitted to the very labels they are trained
on (vision features from a network trained on the same clips, for instance): they look nearly
perfect on train and say little on unseen videos. A model that trusts them collapses on the
test split. :func:`misleading_features` builds such a modality deterministically, so robustness
options (``train.modality_dropout`` with ``train.modality_check``) can be measured on real data
(``decalign convert --add-misleading``, :func:`add_misleading_modality`, adds it to any data
file) and tested on small data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from decalign.errors import DataError

if TYPE_CHECKING:
    from decalign.data.types import MultimodalDataset

__all__ = ["MAX_DIM", "MisleadingModality", "add_misleading_modality", "misleading_features"]

MAX_DIM = 4096
"""The widest misleading modality (its arrays are ``[N, 1, dim]`` float32)."""


def misleading_features(labels: Mapping[str, np.ndarray], dim: int = 16, noise: float = 0.5,
                        seed: int = 0) -> dict[str, np.ndarray]:
    r"""Per split, ``[N, 1, dim]`` float32 features that track the labels on ``train`` only.

    For sample :math:`i` of split :math:`s`: :math:`v_i = y_{\pi_s(i)} w + \epsilon_i` with
    :math:`w \sim N(0, I_D)/\sqrt D`, :math:`\epsilon_i \sim N(0, \mathrm{noise}^2 I_D)`,
    :math:`\pi_{train}` the identity and :math:`\pi_s` a random permutation on every other split:
    the same distribution everywhere, but outside train nothing about the sample itself.
    """
    if dim < 1 or noise < 0:
        raise ValueError(f"misleading_features: dim must be >= 1 and noise >= 0, got dim={dim}, noise={noise}")
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(dim) / np.sqrt(dim)
    out = {}
    for split, y in labels.items():
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        source = y if split == "train" else y[rng.permutation(len(y))]
        v = source[:, None] * direction[None, :] + noise * rng.standard_normal((len(y), dim))
        out[split] = v[:, None, :].astype(np.float32)
    return out


@dataclasses.dataclass(frozen=True)
class MisleadingModality:
    """What :func:`add_misleading_modality` adds (the flags of ``decalign convert --add-misleading``)."""

    name: str = "vision"
    dim: int = 16
    noise: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"--add-misleading: the modality name must be an identifier, got {self.name!r}")
        if not 1 <= self.dim <= MAX_DIM:
            raise ValueError(f"--misleading-dim must be in [1, {MAX_DIM}], got {self.dim}")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"--misleading-noise must be a finite number >= 0, got {self.noise}")


def add_misleading_modality(dataset: MultimodalDataset, spec: MisleadingModality) -> MultimodalDataset:
    """A copy of ``dataset`` with the modality ``spec.name`` (``[N, 1, dim]``, length 1) built by
    :func:`misleading_features` from each split's labels, in split order: the same arrays as
    ``benchmarks/misleading_modality.py`` adds to the same file.

    Raises:
        DataError: a classification dataset (the features scale a regression label), or a
            modality of that name already in the data.
    """
    where = dataset.source or "the data"
    if dataset.task != "regression":
        raise DataError(f"{where}: --add-misleading builds the modality from regression labels; this is a "
                        f"{dataset.task} dataset")
    if spec.name in dataset.modalities:
        raise DataError(f"{where}: the data already has a modality {spec.name!r}; name the added one with "
                        f"--add-misleading NAME (it has {list(dataset.modalities)})")
    features = misleading_features({s: sp.labels for s, sp in dataset.splits.items()}, spec.dim, spec.noise,
                                   spec.seed)
    splits = {
        s: dataclasses.replace(sp, features={**sp.features, spec.name: features[s]},
                               lengths={**sp.lengths, spec.name: np.ones(len(sp), np.int64)})
        for s, sp in dataset.splits.items()
    }
    note = (f"added the misleading modality {spec.name!r} (dim {spec.dim}, noise {spec.noise}, seed {spec.seed}): "
            "label-driven on train, shuffled labels elsewhere")
    return dataclasses.replace(dataset, splits=splits, notes=[*dataset.notes, note])
