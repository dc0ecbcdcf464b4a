"""decalign: DecAlign (Qian et al., ICLR 2026) as a tested library and command-line tool.

The package mirrors the method's diagram: :mod:`decalign.data` (readers, datasets, synthetic
benchmark), :mod:`decalign.ops` (pure maths: Sinkhorn, GMM EM, MMD, moments), :mod:`decalign.model`
(encoders, decoupling, alignment, fusion, heads, the assembled model), :mod:`decalign.train`
(engine, checkpoints), :mod:`decalign.metrics` and :mod:`decalign.cli`.

Importing the package is cheap: heavy modules load on first use.
"""

__version__ = "0.1.0"
