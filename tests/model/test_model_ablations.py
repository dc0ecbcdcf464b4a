"""Each ablation switch of :class:`ModelConfig` changes what it should and nothing else.

The model with a switch flipped is given the weights of the full model; the outputs are then
compared term by term (``out.terms``: decoupling, ot, proto_local, moments, mmd).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch

from decalign.config import ModelConfig
from decalign.config.presets import get_preset
from decalign.model import DecAlign
from decalign.testing.reference import random_inputs, randomize_, with_layers

torch.set_num_threads(1)

DIMS = {"text": 12, "audio": 5, "vision": 7}
BASE = with_layers(get_preset("mosi").model, 2)


def switched(config: ModelConfig, path: str, value: Any) -> ModelConfig:
    """``config`` with the dotted field ``path`` (e.g. ``heterogeneity.prototype_ot``) set."""
    head, _, leaf = path.rpartition(".")
    if not head:
        return replace(config, **{leaf: value})
    return replace(config, **{head: replace(getattr(config, head), **{leaf: value})})


# switch -> (terms that become 0, how the loss totals relate to the full model's terms)
SWITCHES = {
    "decoupling_loss": ({"decoupling"}, {"decoupling": (), "heterogeneity": ("ot", "proto_local"),
                                         "homogeneity": ("moments", "mmd")}),
    "heterogeneity.enabled": ({"ot", "proto_local"}, {"decoupling": ("decoupling",), "heterogeneity": (),
                                                      "homogeneity": ("moments", "mmd")}),
    "heterogeneity.prototype_ot": ({"ot"}, {"decoupling": ("decoupling",), "heterogeneity": ("proto_local",),
                                           "homogeneity": ("moments", "mmd")}),
    "heterogeneity.prototype_local": ({"proto_local"}, {"decoupling": ("decoupling",), "heterogeneity": ("ot",),
                                                        "homogeneity": ("moments", "mmd")}),
    "homogeneity.enabled": ({"moments", "mmd"}, {"decoupling": ("decoupling",),
                                                 "heterogeneity": ("ot", "proto_local"), "homogeneity": ()}),
    "homogeneity.moments": ({"moments"}, {"decoupling": ("decoupling",), "heterogeneity": ("ot", "proto_local"),
                                          "homogeneity": ("mmd",)}),
    "homogeneity.mmd": ({"mmd"}, {"decoupling": ("decoupling",), "heterogeneity": ("ot", "proto_local"),
                                  "homogeneity": ("moments",)}),
}


@pytest.fixture(scope="module")
def full_run():
    torch.manual_seed(0)
    model = randomize_(DecAlign(BASE, DIMS), seed=0).eval()
    inputs = random_inputs(DIMS, dict.fromkeys(DIMS, 6), batch=8, seed=1, dtype=torch.float32)
    with torch.no_grad():
        out = model(inputs)
    return model, inputs, out


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_loss_switch_removes_only_its_terms(switch: str, full_run) -> None:
    model, inputs, full = full_run
    ablated = DecAlign(switched(BASE, switch, False), DIMS).eval()
    ablated.load_state_dict(model.state_dict())
    with torch.no_grad():
        out = ablated(inputs)
    zeroed, totals = SWITCHES[switch]
    for term, value in out.terms.items():
        if term in zeroed:
            assert value == 0, term
        else:
            assert full.terms[term] != 0, term
            torch.testing.assert_close(value, full.terms[term], msg=lambda m, t=term: f"{t}: {m}")
    for loss, parts in totals.items():
        expected = sum((full.terms[t] for t in parts), torch.tensor(0.0))
        torch.testing.assert_close(out.losses[loss], expected, msg=lambda m, k=loss: f"{k}: {m}")
    torch.testing.assert_close(out.prediction, full.prediction)


def test_cross_modal_switch_changes_only_the_fusion(full_run) -> None:
    model, inputs, full = full_run
    ablated = DecAlign(switched(BASE, "fusion.cross_modal", False), DIMS).eval()
    ablated.load_state_dict(model.state_dict())
    with torch.no_grad():
        out = ablated(inputs)
    for term, value in out.terms.items():
        torch.testing.assert_close(value, full.terms[term])
    assert (out.prediction - full.prediction).abs().max() > 1e-4
    d = BASE.d_model
    torch.testing.assert_close(out.representation[:, 3 * d :], full.representation[:, 3 * d :])
    assert (out.representation[:, : 3 * d] - full.representation[:, : 3 * d]).abs().max() > 1e-4
