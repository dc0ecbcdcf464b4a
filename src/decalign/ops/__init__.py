"""Pure maths of DecAlign: each function states its equation and has a closed-form test.

The main entry points are re-exported here (``decalign.ops.multi_marginal_sinkhorn``); the
submodules hold the rest.
"""

from decalign.ops.gmm import DiagonalGMM, fit_diag_gmm
from decalign.ops.mmd import gaussian_mmd
from decalign.ops.moments import batch_moments, moment_distance
from decalign.ops.sinkhorn import entropic_ot, multi_marginal_sinkhorn

__all__ = [
    "DiagonalGMM",
    "batch_moments",
    "entropic_ot",
    "fit_diag_gmm",
    "gaussian_mmd",
    "moment_distance",
    "multi_marginal_sinkhorn",
]
