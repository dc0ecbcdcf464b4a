"""A modality that misleads: label-driven on the training split, uninformative elsewhere.

Real multimodal files can carry features that were fitted to the very labels they are trained
on (vision features from a network trained on the same clips, for instance): they look nearly
perfect on train and say little on unseen videos. A model that trusts them collapses on the
test split. :func:`misleading_features` builds such a modality deterministically, so robustness
options (``train.modality_dropout`` with ``train.modality_check``) can be measured on real data
(``benchmarks/misleading_modality.py`` adds it to an MMSA pickle) and tested on small data.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["misleading_features"]


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
