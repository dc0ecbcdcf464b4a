r"""Supervised contrastive loss (the paper's "CT" term; Khosla et al., NeurIPS 2020).

With L2-normalised representations :math:`r_b` and temperature :math:`\tau`,

.. math::
    \mathcal{L}_{ct} = \frac{1}{|A|}\sum_{b \in A} \frac{-1}{|P(b)|} \sum_{p \in P(b)}
        \log \frac{\exp(r_b \cdot r_p / \tau)}{\sum_{a \ne b} \exp(r_b \cdot r_a / \tau)},

where :math:`P(b)` are the other samples with the same label and :math:`A` the anchors that have
at least one positive (anchors without positives are skipped; no anchor gives 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sentiment_classes", "supervised_contrastive_loss"]


def sentiment_classes(y: Tensor) -> Tensor:
    """Regression labels to contrastive classes: ``round(clip(y, -3, 3)) + 3`` (7 classes)."""
    return torch.round(y.clamp(-3.0, 3.0)).long() + 3


def supervised_contrastive_loss(features: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """Loss above for ``features`` ``[B, p]`` (normalised here) and integer ``labels`` ``[B]``."""
    z = F.normalize(features, dim=-1)
    logits = z @ z.T / temperature
    batch = z.shape[0]
    self_mask = torch.eye(batch, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    n_pos = positives.sum(1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        return features.sum() * 0.0
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1)
    return -(pos_log_prob[anchors] / n_pos[anchors]).mean()
