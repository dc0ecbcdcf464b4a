"""Which parameters each loss trains (docs/method.md §3-§7).

Gradients are mapped to the official per-modality keys (``proj_l``, ``encoder_uni_a``,
``trans_v...``, ``pde_l...``) with :func:`decalign.model.interop.to_official`, so every modality's
slice of a stacked weight is checked separately.
"""

from __future__ import annotations

import pytest
import torch

from decalign.config.presets import get_preset
from decalign.model import DecAlign
from decalign.model.interop import to_official
from decalign.testing.reference import random_inputs, randomize_, with_layers

torch.set_num_threads(1)

DIMS = {"text": 12, "audio": 5, "vision": 7}

GROUPS = {
    "projection": ("proj_",),
    "unique": ("encoder_uni_",),
    "common": ("encoder_com",),
    "fusion": ("trans_",),
    "distribution": ("pde_",),
    "head": ("out_layer",),
}
# L_dec trains the projections and both encoders; L_hete the projections and the unique
# encoders (through the differentiable GMM and Sinkhorn); L_homo the projections, the common
# encoder and the distribution encoders (which feed nothing else); the task loss everything on
# the path to the prediction.
REACHES = {
    "decoupling": {"projection", "unique", "common"},
    "heterogeneity": {"projection", "unique"},
    "homogeneity": {"projection", "common", "distribution"},
    "task": {"projection", "unique", "common", "fusion", "head"},
}


def group_of(key: str) -> str:
    return next(g for g, prefixes in GROUPS.items() if key.startswith(prefixes))


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("loss", list(REACHES))
def test_each_loss_reaches_exactly_its_parameters(loss: str, aligned: bool) -> None:
    torch.manual_seed(0)
    model = randomize_(DecAlign(with_layers(get_preset("mosi").model, 2), DIMS), seed=0).eval()
    lengths = dict.fromkeys(DIMS, 6) if aligned else {"text": 4, "audio": 9, "vision": 13}
    out = model(random_inputs(DIMS, lengths, batch=8, seed=1, dtype=torch.float32))
    value = out.prediction.sum() if loss == "task" else out.losses[loss]
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
    by_key = {k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), grads)}
    official = to_official(by_key, model.modalities)
    reached = {k for k, g in official.items() if g.abs().sum() > 0}
    expected = {k for k in official if group_of(k) in REACHES[loss]}
    assert reached == expected, (
        f"{loss}: reaches unexpectedly {sorted(reached - expected)}; misses {sorted(expected - reached)}"
    )
