r"""Maximum Mean Discrepancy with Gaussian kernels (homogeneity term, docs/method.md §5.3).

The biased estimate of the squared MMD between samples :math:`x_{1..n}` and :math:`y_{1..m}` is

.. math::
    \widehat{\mathrm{MMD}}^2 = \frac{1}{n^2}\sum_{a,a'} k(x_a, x_{a'}) + \frac{1}{m^2}\sum_{b,b'} k(y_b, y_{b'})
        - \frac{2}{nm}\sum_{a,b} k(x_a, y_b),
    \qquad k(a, b) = \exp\!\Big(-\frac{\lVert a - b\rVert^2}{2h}\Big).

Note the released kernel divides by :math:`2h` with "bandwidth" :math:`h = 1`, not by
:math:`2\sigma^2`. With 64-d features of unit variance, :math:`\lVert a-b\rVert^2 \approx 128`, so
every off-diagonal kernel value is :math:`e^{-64} \approx 10^{-28}`: the estimate saturates at
:math:`2/n` and its gradient vanishes. :func:`median_bandwidth` and :func:`multi_gaussian_mmd` are
the options that keep the kernel informative (Gretton et al., JMLR 2012, median heuristic).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["gaussian_mmd", "median_bandwidth", "multi_gaussian_mmd", "pairwise_sq_dists", "stacked_pairwise_mmd"]


def pairwise_sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances ``[..., n, m]``, clamped at 0 against rounding."""
    x2 = x.square().sum(-1, keepdim=True)
    y2 = y.square().sum(-1, keepdim=True).transpose(-1, -2)
    return (x2 + y2 - 2.0 * x @ y.transpose(-1, -2)).clamp_min(0.0)


def gaussian_mmd(x: Tensor, y: Tensor, bandwidth: float | Tensor = 1.0) -> Tensor:
    """Biased squared MMD between ``x`` ``[n, p]`` and ``y`` ``[m, p]`` with kernel
    ``exp(-||a - b||^2 / (2 * bandwidth))`` (see the module docstring)."""
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must have the same feature width, found {tuple(x.shape)} and {tuple(y.shape)}")
    kxx = torch.exp(-pairwise_sq_dists(x, x) / (2.0 * bandwidth)).mean((-1, -2))
    kyy = torch.exp(-pairwise_sq_dists(y, y) / (2.0 * bandwidth)).mean((-1, -2))
    kxy = torch.exp(-pairwise_sq_dists(x, y) / (2.0 * bandwidth)).mean((-1, -2))
    return kxx + kyy - 2.0 * kxy


def median_bandwidth(sq_dists: Tensor) -> Tensor:
    """Median heuristic ``h = median(||a - b||^2) / 2`` over off-diagonal pairs, detached (a
    bandwidth chosen from the data is a setting, not something to optimise), floored at 1e-6."""
    n = sq_dists.shape[-1]
    if sq_dists.shape != (n, n):
        raise ValueError(f"median_bandwidth needs a square [n, n] distance matrix, found {tuple(sq_dists.shape)}")
    off = ~torch.eye(n, dtype=torch.bool, device=sq_dists.device)
    return (sq_dists.detach()[off].median() / 2.0).clamp_min(1e-6)


def multi_gaussian_mmd(x: Tensor, y: Tensor, scales: Sequence[float], base: float | Tensor | None = None) -> Tensor:
    """Average of :func:`gaussian_mmd` over bandwidths ``scale * base``; ``base`` defaults to the
    median heuristic on the pooled sample."""
    if base is None:
        z = torch.cat([x, y], dim=-2)
        base = median_bandwidth(pairwise_sq_dists(z, z))
    return torch.stack([gaussian_mmd(x, y, s * base) for s in scales]).mean(0)


def stacked_pairwise_mmd(z: Tensor, bandwidths: Sequence[float], relative_to_median: bool = False) -> Tensor:
    """MMD^2 for every pair of modalities at once, from one Gram matrix.

    Args:
        z: ``[M, B, p]``, one sample of B points per modality.
        bandwidths: kernel bandwidths ``h``; the kernel is the average over them (one value for
            the released single kernel).
        relative_to_median: multiply the bandwidths by :func:`median_bandwidth` of all M*B points.

    Returns:
        ``[M, M]`` symmetric matrix of biased MMD^2 estimates (zero diagonal), equal to
        :func:`gaussian_mmd` on each pair.
    """
    n_mod, batch, _ = z.shape
    flat = z.reshape(n_mod * batch, -1)
    d2 = pairwise_sq_dists(flat, flat)
    bw = torch.as_tensor(bandwidths, dtype=z.dtype, device=z.device).reshape(-1, 1, 1)
    if relative_to_median:
        bw = bw * median_bandwidth(d2)
    kernel = torch.exp(-d2.unsqueeze(0) / (2.0 * bw)).mean(0)
    block_means = kernel.view(n_mod, batch, n_mod, batch).mean((1, 3))  # [M, M]
    diag = block_means.diagonal()
    return diag.unsqueeze(0) + diag.unsqueeze(1) - 2.0 * block_means
