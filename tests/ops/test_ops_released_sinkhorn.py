"""The ``released`` solver option reproduces the authors' kernel-domain Sinkhorn exactly, also
where large prototype costs make it differ from the exact log-domain solver."""

from __future__ import annotations

import pytest
import torch

from decalign.ops.sinkhorn import entropic_ot, released_entropic_ot
from decalign.testing.reference import reference_sinkhorn_loss


def _problem(scale: float, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(7, 7, 7, generator=g, dtype=torch.float64) * scale
    nus = [torch.softmax(torch.randn(7, generator=g, dtype=torch.float64), 0) for _ in range(3)]
    return cost, nus


@pytest.mark.parametrize("scale", [0.01, 1.0, 6.0])
def test_released_solver_equals_reference(scale: float) -> None:
    cost, nus = _problem(scale)
    ours, _ = released_entropic_ot(cost, nus, 0.1, 50)
    theirs = reference_sinkhorn_loss(cost, *nus, 0.1, 50)
    theirs = theirs[0] if isinstance(theirs, tuple) else theirs
    assert float(ours) == pytest.approx(float(theirs), rel=1e-12, abs=1e-12)


def test_solvers_agree_at_small_costs_and_differ_at_large_ones() -> None:
    small, nus = _problem(0.01)
    assert float(released_entropic_ot(small, nus, 0.1, 50)[0]) == pytest.approx(
        float(entropic_ot(small, nus, 0.1, 50)[0]), abs=1e-7)
    large, nus = _problem(6.0)
    exact_loss, exact_plan = entropic_ot(large, nus, 0.1, 50)
    released_loss, released_plan = released_entropic_ot(large, nus, 0.1, 50)
    assert abs(float(exact_loss) - float(released_loss)) > 1e-3
    # the exact solver matches its marginals; the released one no longer does
    assert float((exact_plan.sum((1, 2)) - nus[0]).abs().max()) < 1e-6
    assert float((released_plan.sum((1, 2)) - nus[0]).abs().max()) > 1e-4


def test_released_solver_is_selectable_in_the_model() -> None:
    from decalign.config import HeterogeneityConfig
    from decalign.model.heterogeneity import PrototypeTransport

    u = torch.randn(3, 16, 8, dtype=torch.float64) * 3
    log = PrototypeTransport(HeterogeneityConfig())(u)
    rel = PrototypeTransport(HeterogeneityConfig(ot_solver="released"))(u)
    assert torch.allclose(log.local, rel.local)
    assert torch.isfinite(rel.ot)


def test_method_argument_chooses_the_solver() -> None:
    g = torch.Generator().manual_seed(3)
    cost = 6.0 * torch.rand(3, 4, 2, generator=g, dtype=torch.float64)
    nus = [torch.softmax(torch.randn(k, generator=g, dtype=torch.float64), 0) for k in cost.shape]
    released, exact = released_entropic_ot(cost, nus, 0.1, 50), entropic_ot(cost, nus, 0.1, 50)
    for (value, plan), (want_value, want_plan) in (
        (entropic_ot(cost, nus, 0.1, 50, method="released"), released),
        (entropic_ot(cost, nus, 0.1, 50, method="log"), exact),
    ):
        assert torch.equal(value, want_value) and torch.equal(plan, want_plan)
    assert not torch.allclose(released[0], exact[0])  # the costs are large enough to tell them apart
    with pytest.raises(ValueError, match="method"):
        entropic_ot(cost, nus, 0.1, 50, method="sinkhorn")  # type: ignore[arg-type]
