r"""Entropic multi-marginal optimal transport, solved by Sinkhorn scaling in the log domain.

For M probability vectors :math:`\nu_1 \in \Delta^{K_1}, \dots, \nu_M \in \Delta^{K_M}` and a cost
tensor :math:`C \in \mathbb{R}^{K_1 \times \dots \times K_M}`, the entropic multi-marginal problem of
DecAlign (paper Eq. for :math:`\mathcal{L}_{OT}`, ``docs/method.md`` §4.4) is

.. math::
    \mathrm{OT}_\varepsilon(C; \nu) = \min_{P \in \Pi(\nu_1, \dots, \nu_M)}
        \langle P, C \rangle + \varepsilon \sum_{i} P_i (\log P_i - 1),

where :math:`\Pi` holds the non-negative tensors whose m-th marginal is :math:`\nu_m`. The optimum
has the Gibbs form :math:`P = \exp\big((\sum_m f_m - C) / \varepsilon\big)` with dual potentials
:math:`f_m`, and the dual value is
:math:`\sum_m \langle f_m, \nu_m \rangle - \varepsilon \sum_i P_i`.

Sinkhorn scaling updates one potential at a time so that its marginal is matched exactly
(Gauss-Seidel order 1, 2, ..., M, each update using the newest other potentials), which is what the
authors' release does with kernel-domain scalings :math:`u = \nu / (G \times v \times w)`,
:math:`G = e^{-C/\varepsilon}`. We iterate the log-scalings :math:`a_m = f_m / \varepsilon` instead,
so that :math:`\varepsilon = 10^{-3}` neither underflows :math:`G` nor overflows the scalings; for
the released defaults (costs far below :math:`\varepsilon`) both give the same numbers.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "entropic_ot",
    "multi_marginal_sinkhorn",
    "released_entropic_ot",
    "sinkhorn_log_scalings",
]

Gradient = Literal["unrolled", "envelope"]
Method = Literal["log", "released"]

# The released loss evaluates log(max(P, 1e-8)); we keep the floor so values match exactly, and it
# only matters for plan entries below 1e-8 (never the case for the released defaults).
_LOG_PLAN_FLOOR = -18.420680743952367  # log(1e-8)


def _check(
    cost: Tensor, marginals: tuple[Tensor, ...] | list[Tensor], eps: float, n_iters: int, gradient: str
) -> None:
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if n_iters < 0:
        raise ValueError(f"n_iters must be >= 0, got {n_iters}")
    if gradient not in ("unrolled", "envelope"):
        raise ValueError(f"gradient must be 'unrolled' or 'envelope', got {gradient!r}")
    if cost.dim() < 2:
        raise ValueError(f"cost must have at least 2 dimensions (one per marginal), found {tuple(cost.shape)}")
    if len(marginals) != cost.dim():
        raise ValueError(f"got {len(marginals)} marginals for a cost of {cost.dim()} dimensions {tuple(cost.shape)}")
    for m, nu in enumerate(marginals):
        if nu.shape != (cost.shape[m],):
            raise ValueError(
                f"marginal {m} has shape {tuple(nu.shape)}, expected ({cost.shape[m]},) "
                f"to match cost {tuple(cost.shape)}"
            )


def _broadcast(vec: Tensor, axis: int, ndim: int) -> Tensor:
    """View a vector along ``axis`` of an ``ndim``-dimensional tensor."""
    shape = [1] * ndim
    shape[axis] = vec.shape[0]
    return vec.view(shape)


def _sinkhorn_round(
    log_kernel: Tensor,
    log_marginals: list[Tensor] | tuple[Tensor, ...],
    scalings: list[Tensor],
    acc: Tensor,
    keep_softmax: bool,
) -> list[Tensor]:
    """One Gauss-Seidel round over all marginals, in place on ``scalings``; ``acc`` is a
    preallocated ``[K_1, ..., K_M]`` buffer so that the loop allocates nothing.

    With ``keep_softmax`` it returns, per update m, the softmax over the other axes that the
    log-sum-exp took (the local Jacobian that the reverse pass needs).
    """
    ndim = log_kernel.dim()
    kept: list[Tensor] = []
    for m in range(ndim):
        acc.copy_(log_kernel)
        for j in range(ndim):
            if j != m:
                acc.add_(_broadcast(scalings[j], j, ndim))
        lse = torch.logsumexp(acc, dim=[a for a in range(ndim) if a != m])
        torch.sub(log_marginals[m], lse, out=scalings[m])
        if keep_softmax:
            kept.append(torch.exp(acc - _broadcast(lse, m, ndim)))
    return kept


def _flat_scalings(log_marginals: list[Tensor] | tuple[Tensor, ...]) -> tuple[Tensor, list[Tensor]]:
    """Zero scalings as views into one flat buffer, so a round's change is one comparison."""
    flat = torch.zeros(sum(lm.shape[0] for lm in log_marginals), dtype=log_marginals[0].dtype,
                       device=log_marginals[0].device)
    return flat, list(torch.split(flat, [lm.shape[0] for lm in log_marginals]))


def _stationary(new: Tensor, old: Tensor) -> bool:
    """True when ``new`` differs from ``old`` by no more than a few float ulps of its scale.

    A zero entry of a marginal has log-scaling -inf. It counts as unchanged when it was -inf
    before too (-inf - -inf = nan -> 0), and is left out of the scale: otherwise the tolerance is
    inf and the very first round passes as stationary, stopping Sinkhorn after one round. (A NaN
    from bad inputs also reads as unchanged; it would stay NaN in every later round anyway.)
    """
    diff = (new - old).nan_to_num_(nan=0.0)
    scale = float(new.abs().nan_to_num_(nan=0.0, posinf=0.0).max())
    tol = 4 * torch.finfo(new.dtype).eps * max(1.0, scale)
    return float(diff.abs().max()) <= tol


def _negligible(increment: Tensor, total: Tensor) -> bool:
    """True when ``increment`` is rounding noise next to ``total``."""
    return float(increment.abs().max()) <= 1e-6 * float(total.abs().max())


class _UnrolledSinkhorn(torch.autograd.Function):
    """Log-domain Sinkhorn with the exact reverse pass of its unrolled iterations.

    Autograd through 50 rounds of tiny (7x7x7) tensor ops is dominated by per-op overhead, so the
    forward pass runs without a graph and this backward replays the rounds in reverse by hand.
    Update m sets ``a_m = log nu_m - LSE_{not m}(log G + sum_{j != m} a_j)``; with ``S`` the softmax
    of that log-sum-exp and ``g`` the adjoint of the new ``a_m``, the reverse step is
    ``lognu_bar_m += g``, ``logG_bar -= g S``, ``a_j_bar -= sum_{not j}(g S)`` for j != m, and the
    adjoint of the overwritten ``a_m`` restarts at 0.

    Shortcuts that change no number beyond float rounding: once a round leaves the scalings
    unchanged to a few ulps, the remaining rounds are copies of it and are not recomputed; in the
    reverse pass, once the adjoints through those copies are stationary and a copy's increment to
    the gradients is rounding noise, the remaining copies are skipped. At an exact fixed point
    every copy adds exactly zero: the adjoints do not decay (the plan is invariant along the gauge
    directions ``a_m + c_m, sum_m c_m = 0``, an eigenvalue 1 of the round's Jacobian) but the
    increments of the M updates of a round cancel. Summing them in float32 would only add noise.
    """

    @staticmethod
    def forward(ctx, log_kernel: Tensor, n_iters: int, *log_marginals: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        flat, scalings = _flat_scalings(log_marginals)
        acc = torch.empty_like(log_kernel)
        rounds: list[list[Tensor]] = []
        for _ in range(n_iters):
            before = flat.clone()
            rounds.append(_sinkhorn_round(log_kernel, log_marginals, scalings, acc, keep_softmax=True))
            if _stationary(flat, before):
                break
        ctx.rounds = rounds
        ctx.n_iters = n_iters
        return tuple(a.clone() for a in scalings)

    @staticmethod
    def backward(ctx, *grad_scalings: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        rounds: list[list[Tensor]] = ctx.rounds
        last = len(rounds) - 1  # rounds t >= last are copies of round `last`
        ndim = len(grad_scalings)
        sizes = [g.shape[0] for g in grad_scalings]
        adj_flat = torch.cat([torch.zeros_like(g) if g is None else g for g in grad_scalings])
        adj = list(torch.split(adj_flat, sizes))
        grad_log_kernel = torch.zeros_like(rounds[0][0])
        grad_marg_flat = torch.zeros_like(adj_flat)
        grad_log_marginals = list(torch.split(grad_marg_flat, sizes))
        t = ctx.n_iters - 1
        while t >= 0:
            replaying = t > last
            if replaying:
                adj_before = adj_flat.clone()
                kernel_before = grad_log_kernel.clone()
                marg_before = grad_marg_flat.clone()
            softmaxes = rounds[min(t, last)]
            for m in reversed(range(ndim)):
                g = adj[m].clone()
                grad_log_marginals[m].add_(g)
                w = softmaxes[m] * _broadcast(-g, m, ndim)
                grad_log_kernel.add_(w)
                for j in range(ndim):
                    if j != m:
                        adj[j].add_(w.sum(dim=[a for a in range(ndim) if a != j]))
                adj[m].zero_()
            if (
                replaying
                and _stationary(adj_flat, adj_before)
                and _negligible(grad_log_kernel - kernel_before, grad_log_kernel)
                and _negligible(grad_marg_flat - marg_before, grad_marg_flat)
            ):
                t = last  # the copies t-1 .. last would each add this same ~0 increment
            t -= 1
        return (grad_log_kernel, None, *grad_log_marginals)


def sinkhorn_log_scalings(
    log_kernel: Tensor, log_marginals: list[Tensor], n_iters: int
) -> list[Tensor]:
    r"""Run ``n_iters`` rounds of log-domain multi-marginal Sinkhorn.

    Each round sets, for m = 1..M in turn,
    :math:`a_m \leftarrow \log \nu_m - \operatorname{LSE}_{\neg m}\big(\log G + \sum_{j \ne m} a_j\big)`,
    the log of the released update :math:`u_m = \nu_m / (G \times_{j \ne m} u_j)`; the scalings
    start at :math:`a_m = 0` (:math:`u_m = 1`). Differentiable (unrolled) when an input needs a
    gradient.

    Args:
        log_kernel: :math:`\log G = -C / \varepsilon`, shape ``[K_1, ..., K_M]``.
        log_marginals: ``log(nu_m)``, shapes ``[K_m]``.
        n_iters: number of full rounds.

    Returns:
        The log-scalings :math:`a_m` (so that :math:`P = \exp(\log G + \sum_m a_m)`).
    """
    if torch.is_grad_enabled() and (log_kernel.requires_grad or any(lm.requires_grad for lm in log_marginals)):
        return list(_UnrolledSinkhorn.apply(log_kernel, n_iters, *log_marginals))
    flat, scalings = _flat_scalings(log_marginals)
    acc = torch.empty_like(log_kernel)
    for _ in range(n_iters):
        before = flat.clone()
        _sinkhorn_round(log_kernel, log_marginals, scalings, acc, keep_softmax=False)
        if _stationary(flat, before):  # later rounds would repeat this one
            break
    return scalings


def _log_marginal(nu: Tensor) -> Tensor:
    """``log(nu)``, -inf at zero entries, with a zero gradient there instead of NaN.

    ``torch.log`` backpropagates ``grad / nu``, i.e. 0 / 0 = NaN at a zero entry (whose plan slice
    and hence adjoint are 0), and a NaN in one entry reaches every entry of the marginal through
    its normalisation, so one prototype with no mass would poison the encoders' gradients. Zero
    is also what the envelope gradient gives there.
    """
    positive = nu > 0
    log_nu = torch.where(positive, nu, torch.ones_like(nu)).log()
    return torch.where(positive, log_nu, torch.full_like(nu, float("-inf")))


def _log_plan(log_kernel: Tensor, scalings: list[Tensor]) -> Tensor:
    ndim = log_kernel.dim()
    out = log_kernel
    for m, a in enumerate(scalings):
        out = out + _broadcast(a, m, ndim)
    return out


def _solve(
    cost: Tensor, marginals: tuple[Tensor, ...] | list[Tensor], eps: float, n_iters: int, gradient: Gradient
) -> tuple[list[Tensor], Tensor]:
    """Checked arguments -> (log-scalings, log-plan). With ``envelope`` the iterations run without
    autograd and only the final Gibbs form ``log G + sum a_m`` depends on the cost."""
    _check(cost, marginals, eps, n_iters, gradient)
    log_kernel = -cost / eps
    log_marginals = [_log_marginal(nu) for nu in marginals]
    if gradient == "envelope":
        with torch.no_grad():
            scalings = sinkhorn_log_scalings(log_kernel.detach(), [lm.detach() for lm in log_marginals], n_iters)
    else:
        scalings = sinkhorn_log_scalings(log_kernel, log_marginals, n_iters)
    return scalings, _log_plan(log_kernel, scalings)


def multi_marginal_sinkhorn(
    cost: Tensor,
    marginals: tuple[Tensor, ...] | list[Tensor],
    eps: float,
    n_iters: int,
    *,
    gradient: Gradient = "unrolled",
) -> Tensor:
    r"""Entropic transport plan between M >= 2 discrete marginals.

    Solves the problem in the module docstring by ``n_iters`` rounds of log-domain Sinkhorn and
    returns :math:`P = \exp(\log G + \sum_m a_m)` with :math:`\log G = -C / \varepsilon`.

    Args:
        cost: cost tensor ``[K_1, ..., K_M]``.
        marginals: M non-negative vectors ``[K_m]``, each summing to 1.
        eps: entropic regularisation :math:`\varepsilon > 0`.
        n_iters: Sinkhorn rounds (each round updates every marginal once).
        gradient: ``"unrolled"`` differentiates through every iteration; ``"envelope"`` runs the
            iterations without autograd and differentiates only the final Gibbs form (gradients
            exact at convergence, about half the cost).

    Returns:
        The plan ``[K_1, ..., K_M]``; its last marginal is exact, the others up to convergence.

    References:
        Benamou et al., "Iterative Bregman projections for regularized transportation problems",
        SIAM J. Sci. Comput. 2015 (multi-marginal Sinkhorn).
    """
    _, log_plan = _solve(cost, marginals, eps, n_iters, gradient)
    return torch.exp(log_plan)


def entropic_ot(
    cost: Tensor,
    marginals: tuple[Tensor, ...] | list[Tensor],
    eps: float,
    n_iters: int,
    *,
    method: Method = "log",
    gradient: Gradient = "unrolled",
) -> tuple[Tensor, Tensor]:
    r"""The entropic OT loss :math:`\mathcal{L}_{OT}` and its plan.

    ``method`` chooses the solver, as POT's ``method=`` does: ``log`` (default) the log-domain
    iterations below; ``released`` the authors' kernel-domain iterations
    (:func:`released_entropic_ot`, differentiated by autograd whatever ``gradient`` says).

    ``unrolled`` (released behaviour): the primal value
    :math:`\langle P, C\rangle + \varepsilon \sum P (\log \max(P, 10^{-8}) - 1)` of the plan after
    ``n_iters`` rounds, differentiated through all iterations.

    ``envelope``: the dual value :math:`\sum_m \langle f_m, \nu_m\rangle - \varepsilon \sum P` at
    potentials found without autograd. By the envelope theorem its gradients,
    :math:`\partial/\partial C = P` and :math:`\partial/\partial \nu_m = f_m`, are the exact
    gradients of the optimal value at convergence, and its value equals the primal value there.

    Returns:
        ``(loss, plan)``: a scalar and the ``[K_1, ..., K_M]`` plan.
    """
    if method == "released":
        return released_entropic_ot(cost, marginals, eps, n_iters)
    if method != "log":
        raise ValueError(f"method must be 'log' or 'released', got {method!r}")
    scalings, log_plan = _solve(cost, marginals, eps, n_iters, gradient)
    plan = torch.exp(log_plan)
    if gradient == "envelope":
        dual = sum(
            (eps * torch.where(nu > 0, a, torch.zeros_like(a)) * nu).sum()
            for a, nu in zip(scalings, marginals)
        )
        return dual - eps * plan.sum(), plan
    loss = (plan * cost).sum() + eps * (plan * (log_plan.clamp_min(_LOG_PLAN_FLOOR) - 1.0)).sum()
    return loss, plan


def released_entropic_ot(
    cost: Tensor, marginals: tuple[Tensor, ...] | list[Tensor], eps: float, n_iters: int
) -> tuple[Tensor, Tensor]:
    r"""The authors' kernel-domain solver, kept for bit-level parity with their checkpoints.

    :math:`G = \max(e^{-C/\varepsilon}, 10^{-30})`, scalings start at 1, and each round updates
    :math:`u_m = \nu_m / (G \times_{j \ne m} u_j + 10^{-8})` in order; the loss is the primal value
    of :func:`entropic_ot`. While the costs stay well below :math:`\varepsilon` this equals
    :func:`entropic_ot` to about 1e-8; once joint costs pass about 1 (at :math:`\varepsilon = 0.1`)
    the clamp and the 1e-8 bite, and the plan no longer matches its marginals (off by half the
    loss for costs of 4-9). Differentiated by plain autograd: meant for parity checks, not speed.
    """
    _check(cost, marginals, eps, n_iters, "unrolled")
    ndim = cost.dim()
    kernel = torch.exp(-cost / eps).clamp_min(1e-30)
    scalings = [torch.ones_like(nu) for nu in marginals]
    for _ in range(n_iters):
        for m in range(ndim):
            acc = kernel
            for j in range(ndim):
                if j != m:
                    acc = acc * _broadcast(scalings[j], j, ndim)
            scalings[m] = marginals[m] / (acc.sum(dim=[a for a in range(ndim) if a != m]) + 1e-8)
    plan = kernel
    for m, u in enumerate(scalings):
        plan = plan * _broadcast(u, m, ndim)
    loss = (plan * cost).sum() + eps * (plan * (torch.log(plan.clamp_min(1e-8)) - 1.0)).sum()
    return loss, plan
