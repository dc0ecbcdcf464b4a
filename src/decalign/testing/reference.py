r"""A plain, independent re-implementation of the authors' released DecAlign forward pass.

This is the yardstick for :class:`decalign.model.DecAlign`: it is written from the behaviour
description (``docs/method.md`` §1-§8), not from our model, and deliberately kept slow and simple:
one module per modality with the authors' names (so that ``state_dict()`` has exactly the keys
and shapes of their checkpoints, ``docs/method.md`` §18), sequence-first tensors like
the release, Python loops over modalities and pairs, ``nn.MultiheadAttention`` for attention,
and the kernel-domain multi-marginal Sinkhorn exactly as released (not our log-domain solver).
Every optimisation of our model is checked against it (outputs and gradients).

Only the three benchmark modalities ``l`` (text), ``a`` (audio) and ``v`` (vision) exist here,
all active, with precomputed text features; ablation switches other than cross-modal attention
are not modelled (the tests check those switches against our model's own full run).

Known, intended difference: the released kernel-domain Sinkhorn adds 1e-8 to its denominators
and clamps ``G = exp(-C / eps)`` at 1e-30. That is harmless while the prototype costs stay far
below ``eps`` (the released regime, e.g. at initialisation) but biases the plan once ``G``
approaches 1e-8 (joint costs above about 1 at ``eps = 0.1``). Our model solves the entropic
problem exactly in the log domain (docs/method.md §4.4): they agree only in the first regime; the
tests use weights at the scale of the default initialisation (:func:`randomize_`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decalign.config import ModelConfig

__all__ = [
    "OUR_NAME",
    "PRESET_SHAPES",
    "SUFFIXES",
    "ReferenceDecAlign",
    "random_inputs",
    "randomize_",
    "reference_gmm",
    "reference_sinkhorn_loss",
    "with_layers",
    "without_dropout",
]

SUFFIXES = ("l", "a", "v")
OUR_NAME = {"l": "text", "a": "audio", "v": "vision"}
PAIRS = (("l", "a"), ("l", "v"), ("a", "v"))


# ----------------------------------------------------------------------------- fusion


class ReferenceLayer(nn.Module):
    """One post-norm transformer layer (released key names: ``self_attn``, ``attn_layer_norm``,
    ``fc1``, ``fc2``, ``final_layer_norm``)."""

    def __init__(self, d: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=attn_dropout)
        self.attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.relu_dropout = relu_dropout
        self.res_dropout = res_dropout

    def forward(self, x: Tensor, x_k: Tensor | None, x_v: Tensor | None, causal: bool) -> Tensor:
        """``x`` ``[T, B, d]``; ``x_k``/``x_v`` ``[Tc, B, d]`` or ``None`` for self-attention."""
        mask = None
        if x_k is None:
            x_k = x_v = x
            if causal:  # True above the diagonal = may not attend to the future
                steps = x.shape[0]
                mask = torch.ones(steps, steps, dtype=torch.bool, device=x.device).triu(1)
        residual = x
        x, _ = self.self_attn(x, x_k, x_v, attn_mask=mask, need_weights=False)
        x = F.dropout(x, self.res_dropout, self.training)
        x = self.attn_layer_norm(residual + x)
        residual = x
        x = F.dropout(F.relu(self.fc1(x)), self.relu_dropout, self.training)
        x = F.dropout(self.fc2(x), self.res_dropout, self.training)
        return self.final_layer_norm(residual + x)


class ReferenceTransformer(nn.Module):
    """``trans_X``: input scaling by sqrt(d), embed dropout (independent masks for query, keys,
    values), no positional embedding, ``layers`` sharing one context."""

    def __init__(self, d: int, heads: int, num_layers: int, attn_dropout: float, relu_dropout: float,
                 res_dropout: float, embed_dropout: float, causal: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ReferenceLayer(d, heads, attn_dropout, relu_dropout, res_dropout) for _ in range(num_layers)
        )
        self.scale = math.sqrt(d)
        self.embed_dropout = embed_dropout
        self.causal = causal

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        x = F.dropout(self.scale * x, self.embed_dropout, self.training)
        x_k = x_v = None
        if context is not None:
            x_k = F.dropout(self.scale * context, self.embed_dropout, self.training)
            x_v = F.dropout(self.scale * context, self.embed_dropout, self.training)
        for layer in self.layers:
            x = layer(x, x_k, x_v, self.causal)
        return x


class ReferencePDE(nn.Module):
    """``pde_X``: the distribution encoder, ``net = Linear -> ReLU -> Dropout -> Linear``."""

    def __init__(self, d: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# ----------------------------------------------------------------------------- pure maths


def reference_gmm(u: Tensor, k: int, iters: int, var_floor: float) -> tuple[Tensor, Tensor, Tensor]:
    """Diagonal GMM by EM on ``u`` ``[B, d]``; returns ``(means [K, d], vars [K, d], gamma [B, K])``."""
    batch = u.shape[0]
    if batch >= k:
        idx = torch.linspace(0, batch - 1, k, dtype=torch.float64).round().long()
    else:
        idx = torch.arange(k) % batch
    mu = u[idx]
    var = ((u - u.mean(0)) ** 2).mean(0).clamp_min(var_floor).unsqueeze(0).repeat(k, 1)
    pi = torch.full((k,), 1.0 / k, dtype=u.dtype, device=u.device)

    def posterior(pi: Tensor, mu: Tensor, var: Tensor) -> Tensor:
        diff = u[:, None, :] - mu[None, :, :]  # [B, K, d]
        log_n = -0.5 * (torch.log(2 * math.pi * var)[None] + diff**2 / var[None]).sum(-1)
        return torch.softmax(torch.log(pi)[None] + log_n, dim=1)

    for _ in range(iters):
        gamma = posterior(pi, mu, var)
        n_k = gamma.sum(0).clamp_min(1e-6)
        pi = n_k / batch
        mu = (gamma.T @ u) / n_k[:, None]
        var = ((gamma.T @ u**2) / n_k[:, None] - mu**2).clamp_min(var_floor)
    return mu, var, posterior(pi, mu, var)


def reference_pair_cost(mu_i: Tensor, var_i: Tensor, mu_j: Tensor, var_j: Tensor) -> Tensor:
    """``C_ij[p, q]``: dimension-mean of the squared mean gap plus the diagonal Bures term."""
    k = mu_i.shape[0]
    cost = torch.zeros(k, k, dtype=mu_i.dtype, device=mu_i.device)
    for p in range(k):
        for q in range(k):
            mean_gap = ((mu_i[p] - mu_j[q]) ** 2).mean()
            bures = (var_i[p] + var_j[q] - 2 * torch.sqrt(var_i[p] * var_j[q] + 1e-8)).mean()
            cost[p, q] = mean_gap + bures
    return cost


def reference_sinkhorn_loss(cost: Tensor, nu_l: Tensor, nu_a: Tensor, nu_v: Tensor, eps: float,
                            iters: int) -> tuple[Tensor, Tensor]:
    """Released three-marginal Sinkhorn in the kernel domain; returns ``(L_OT, plan)``."""
    g = torch.exp(-cost / eps).clamp_min(1e-30)
    u = torch.ones_like(nu_l)
    v = torch.ones_like(nu_a)
    w = torch.ones_like(nu_v)
    for _ in range(iters):
        u = nu_l / (torch.einsum("pqr,q,r->p", g, v, w) + 1e-8)
        v = nu_a / (torch.einsum("pqr,p,r->q", g, u, w) + 1e-8)
        w = nu_v / (torch.einsum("pqr,p,q->r", g, u, v) + 1e-8)
    plan = u[:, None, None] * v[None, :, None] * w[None, None, :] * g
    loss = (plan * cost).sum() + eps * (plan * (torch.log(plan.clamp_min(1e-8)) - 1)).sum()
    return loss, plan


def reference_moments(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    batch = z.shape[0]
    mu = z.mean(0)
    zc = z - mu
    cov = zc.T @ zc / max(batch - 1, 1)
    var = (zc**2).mean(0).clamp_min(1e-6)
    skew = (zc**3).mean(0) / var**1.5
    return mu, cov, skew


def reference_mmd(x: Tensor, y: Tensor, bandwidth: float) -> Tensor:
    def kernel(a: Tensor, b: Tensor) -> Tensor:
        sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1).clamp_min(0)
        return torch.exp(-sq / (2 * bandwidth))

    return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()


# ----------------------------------------------------------------------------- model


class ReferenceDecAlign(nn.Module):
    """The released DecAlign for text/audio/vision (keys as in the authors' checkpoints).

    Args:
        config: our :class:`ModelConfig` (e.g. ``get_preset("mosi").model``), read for the
            hyper-parameters only.
        input_dims: ``{"text": D_l, "audio": D_a, "vision": D_v}``.
        num_outputs: 1 (regression) or the number of classes.
    """

    def __init__(self, config: ModelConfig, input_dims: Mapping[str, int], num_outputs: int = 1) -> None:
        super().__init__()
        d = config.d_model
        fusion = config.fusion
        self.d = d
        self.text_dropout = config.text_dropout
        self.output_dropout = config.output_dropout
        self.cross_modal = fusion.cross_modal
        self.het = config.heterogeneity
        self.hom = config.homogeneity
        self.input_dims = {x: int(input_dims[OUR_NAME[x]]) for x in SUFFIXES}
        for x in SUFFIXES:
            kernel = config.conv_kernel.get(OUR_NAME[x], config.conv_kernel["default"])
            setattr(self, f"proj_{x}", nn.Conv1d(self.input_dims[x], d, kernel, bias=False))
        for x in SUFFIXES:
            setattr(self, f"encoder_uni_{x}", nn.Conv1d(d, d, 1, bias=False))
        self.encoder_com = nn.Conv1d(d, d, 1, bias=False)
        for x in SUFFIXES:
            attn = fusion.attn_dropout.get(OUR_NAME[x], fusion.attn_dropout["default"])
            setattr(self, f"trans_{x}", ReferenceTransformer(
                d, fusion.num_heads, fusion.num_layers, attn, fusion.relu_dropout, fusion.res_dropout,
                fusion.embed_dropout, causal=fusion.attn_mask))
        for x in SUFFIXES:
            setattr(self, f"pde_{x}", ReferencePDE(d, self.hom.pde_dim, config.output_dropout))
        self.out_layer = nn.Linear(6 * d, num_outputs)

    def forward(self, text: Tensor, audio: Tensor, vision: Tensor) -> dict[str, Tensor]:
        """Inputs ``[B, T_m, D_m]``; returns ``prediction`` ``[B, num_outputs]`` (as released)
        and the unweighted losses ``decoupling``, ``heterogeneity``, ``homogeneity``."""
        inputs = {"l": F.dropout(text, self.text_dropout, self.training), "a": audio, "v": vision}
        unique: dict[str, Tensor] = {}  # [B, d, T']
        common: dict[str, Tensor] = {}
        for x in SUFFIXES:
            h = inputs[x].transpose(1, 2)  # [B, D, T]
            if self.input_dims[x] != self.d:
                h = getattr(self, f"proj_{x}")(h)
            unique[x] = getattr(self, f"encoder_uni_{x}")(h)
            common[x] = self.encoder_com(h)

        # Decoupling: squared cosine of each sample's flattened unique and common features.
        dec_terms = []
        for x in SUFFIXES:
            s = unique[x].flatten(1)
            c = common[x].flatten(1)
            cos = (s * c).sum(1) / (s.norm(dim=1) * c.norm(dim=1)).clamp_min(1e-8)
            dec_terms.append((cos**2).mean())
        decoupling = sum(dec_terms) / 3

        # Heterogeneity: GMM prototypes per modality, multi-marginal OT, local prototype term.
        pooled = {x: unique[x].mean(2) for x in SUFFIXES}  # [B, d]
        mus, variances, gammas, nus = {}, {}, {}, {}
        for x in SUFFIXES:
            mus[x], variances[x], gammas[x] = reference_gmm(
                pooled[x], self.het.num_prototypes, self.het.em_iters, self.het.var_floor)
            nu = gammas[x].mean(0)
            nus[x] = nu / nu.sum()
        pair_cost = {(i, j): reference_pair_cost(mus[i], variances[i], mus[j], variances[j]) for i, j in PAIRS}
        cost = (pair_cost["l", "a"][:, :, None] + pair_cost["l", "v"][:, None, :]
                + pair_cost["a", "v"][None, :, :])
        ot, _ = reference_sinkhorn_loss(cost, nus["l"], nus["a"], nus["v"], self.het.ot_eps, self.het.ot_iters)
        local_terms = []
        for i in SUFFIXES:
            for j in SUFFIXES:
                if i != j:
                    dist = ((pooled[i][:, None, :] - mus[j][None, :, :]) ** 2).mean(-1)  # [B, K]
                    local_terms.append((gammas[i] * dist).sum(1).mean())
        heterogeneity = ot + sum(local_terms) / len(local_terms)

        # Homogeneity: moments and MMD of the encoded pooled common features.
        z = {x: getattr(self, f"pde_{x}")(common[x].mean(2)) for x in SUFFIXES}
        sem, mmd = [], []
        for i, j in PAIRS:
            (mi, ci, si), (mj, cj, sj) = reference_moments(z[i]), reference_moments(z[j])
            sem.append(F.mse_loss(mi, mj) + F.mse_loss(ci, cj) + F.mse_loss(si, sj))
            mmd.append(reference_mmd(z[i], z[j], self.hom.mmd_bandwidth))
        homogeneity = sum(sem) / 3 + sum(mmd) / 3

        # Fusion: one transformer per modality over its unique sequence, sequence-first.
        seq = {x: unique[x].permute(2, 0, 1) for x in SUFFIXES}  # [T', B, d]
        fused = {}
        for x in SUFFIXES:
            context = None
            if self.cross_modal:
                context = torch.cat([seq[y] for y in SUFFIXES if y != x], dim=0)
            fused[x] = getattr(self, f"trans_{x}")(seq[x], context).mean(0)

        rep = torch.cat([fused["l"], fused["a"], fused["v"],
                         common["l"].mean(2), common["a"].mean(2), common["v"].mean(2)], dim=1)
        prediction = self.out_layer(F.dropout(rep, self.output_dropout, self.training))
        return {"prediction": prediction, "decoupling": decoupling, "heterogeneity": heterogeneity,
                "homogeneity": homogeneity}


# ----------------------------------------------------------------------------- test helpers

# Input widths and head sizes of the benchmark presets (docs/method.md §12).
PRESET_SHAPES: dict[str, tuple[dict[str, int], int]] = {
    "mosi": ({"text": 768, "audio": 5, "vision": 20}, 1),
    "mosei": ({"text": 768, "audio": 74, "vision": 35}, 1),
    "sims": ({"text": 768, "audio": 33, "vision": 709}, 1),
    "iemocap": ({"text": 1024, "audio": 512, "vision": 1024}, 6),
}


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Perturb every parameter in place so that no bias is zero and no norm is the identity,
    while keeping the scale of the default initialisation.

    The scale matters: at initialisation the prototype costs are far below the OT epsilon, the
    regime the released kernel-domain Sinkhorn is accurate in (see the tests of the released
    Sinkhorn's bias). Values are rounded to float32 so that a float32 copy is exact.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            scale = float(p.std()) if p.numel() > 1 else 0.0
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            p.add_((0.2 * scale if scale > 0 else 0.05) * noise)
            p.copy_(p.float().to(p.dtype))
    return module


def random_inputs(dims: Mapping[str, int], lengths: Mapping[str, int], batch: int, seed: int,
                  dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
    """Standard-normal features ``[B, T_m, D_m]`` per modality, requiring gradients."""
    gen = torch.Generator().manual_seed(seed)
    return {
        m: torch.randn(batch, lengths[m], dims[m], generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
        for m in dims
    }


def without_dropout(config: ModelConfig) -> ModelConfig:
    """``config`` with every dropout probability set to 0 (train mode is then deterministic)."""
    fusion = replace(config.fusion, attn_dropout={"default": 0.0}, relu_dropout=0.0, embed_dropout=0.0,
                     res_dropout=0.0)
    return replace(config, text_dropout=0.0, output_dropout=0.0, fusion=fusion)


def with_layers(config: ModelConfig, num_layers: int) -> ModelConfig:
    """``config`` with fewer transformer layers, for tests where the depth is not the point."""
    return replace(config, fusion=replace(config.fusion, num_layers=num_layers))
