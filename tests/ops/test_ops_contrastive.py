"""Supervised contrastive loss: a hand-computed case and its invariants."""

from __future__ import annotations

import math

import pytest
import torch

from decalign.ops.contrastive import sentiment_classes, supervised_contrastive_loss

F64 = torch.float64


def test_hand_computed_three_points():
    # unit vectors e1, e2, -e1 with labels 0, 0, 1 and temperature 1:
    # r0.r1 = 0, r0.r2 = -1, r1.r2 = 0.
    # anchor 0, positive 1: -log(e^0 / (e^0 + e^-1)) = log(1 + e^-1)
    # anchor 1, positive 0: -log(e^0 / (e^0 + e^0)) = log 2
    # anchor 2 has no positive: skipped
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=F64)
    labels = torch.tensor([0, 0, 1])
    expected = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert float(supervised_contrastive_loss(features, labels, 1.0)) == pytest.approx(expected, rel=1e-14)
    # temperature 0.5 doubles the logits
    expected_half = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    assert float(supervised_contrastive_loss(features, labels, 0.5)) == pytest.approx(expected_half, rel=1e-14)


def test_hand_computed_two_positives():
    # anchor with two positives averages their log-probabilities
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=F64)
    labels = torch.tensor([0, 0, 0])
    # anchor 0: logits to 1, 2 = 1, 0 -> log-probs 1 - log(e + 1), 0 - log(e + 1)
    lse = math.log(math.e + 1)
    a0 = -((1 - lse) + (0 - lse)) / 2
    a1 = a0
    a2 = math.log(2)  # logits 0, 0
    expected = (a0 + a1 + a2) / 3
    assert float(supervised_contrastive_loss(features, labels, 1.0)) == pytest.approx(expected, rel=1e-14)


def loop_loss(features, labels, temperature):
    z = features / features.norm(dim=-1, keepdim=True)
    terms = []
    for b in range(len(z)):
        positives = [p for p in range(len(z)) if p != b and labels[p] == labels[b]]
        if not positives:
            continue
        denom = sum(math.exp(float(z[b] @ z[a]) / temperature) for a in range(len(z)) if a != b)
        terms.append(-sum(float(z[b] @ z[p]) / temperature - math.log(denom) for p in positives) / len(positives))
    return sum(terms) / len(terms)


def test_matches_loop_and_skips_anchors_without_positives():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(10, 4, generator=g, dtype=F64)
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 4, 4, 5])  # anchors 0, 6, 9 have no positive
    loss = supervised_contrastive_loss(features, labels, 0.1)
    assert float(loss) == pytest.approx(loop_loss(features, labels, 0.1), rel=1e-12)
    # adding points of new labels changes the denominators but adds no anchor
    keep = torch.tensor([1, 2, 3, 4, 5, 7, 8])
    assert float(supervised_contrastive_loss(features[keep], labels[keep], 0.1)) == pytest.approx(
        loop_loss(features[keep], labels[keep], 0.1), rel=1e-12
    )


def test_no_positives_gives_zero_with_a_gradient_path():
    features = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=F64).requires_grad_(True)
    loss = supervised_contrastive_loss(features, torch.tensor([0, 1, 2, 3]), 0.1)
    assert loss.requires_grad and float(loss.detach()) == 0.0
    (grad,) = torch.autograd.grad(loss, features)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().max()) == 0.0
    # a batch of one sample
    single = features[:1]
    loss = supervised_contrastive_loss(single, torch.tensor([2]), 0.1)
    (grad,) = torch.autograd.grad(loss, features)
    assert float(loss.detach()) == 0.0 and bool(torch.isfinite(grad).all())


def test_gradient_finite_with_skipped_anchors():
    features = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=F64).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 2, 3, 3])
    loss = supervised_contrastive_loss(features, labels, 0.07)
    (grad,) = torch.autograd.grad(loss, features)
    assert bool(torch.isfinite(grad).all())
    assert torch.autograd.gradcheck(lambda f: supervised_contrastive_loss(f, labels, 0.5), (features,))


def test_invariant_to_feature_scaling():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(8, 5, generator=g, dtype=F64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])
    scales = torch.rand(8, 1, generator=g, dtype=F64) * 10 + 0.1  # per-sample positive scales
    base = supervised_contrastive_loss(features, labels, 0.1)
    assert float(supervised_contrastive_loss(features * scales, labels, 0.1)) == pytest.approx(float(base), rel=1e-12)
    assert float(supervised_contrastive_loss(features * 1e3, labels, 0.1)) == pytest.approx(float(base), rel=1e-12)


def test_permutation_invariance():
    g = torch.Generator().manual_seed(4)
    features = torch.randn(9, 3, generator=g, dtype=F64)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 5, 1])
    perm = torch.randperm(9, generator=g)
    assert float(supervised_contrastive_loss(features[perm], labels[perm], 0.2)) == pytest.approx(
        float(supervised_contrastive_loss(features, labels, 0.2)), rel=1e-12
    )


def test_sentiment_classes():
    y = torch.tensor([-3.7, -3.0, -2.5, -0.4, 0.0, 0.5, 1.5, 2.6, 3.2])
    # round half to even (torch.round): -2.5 -> -2, 0.5 -> 0, 1.5 -> 2
    assert sentiment_classes(y).tolist() == [0, 0, 1, 3, 3, 3, 5, 6, 6]
    assert sentiment_classes(y).dtype == torch.long
