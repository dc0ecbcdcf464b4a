"""DecAlign's parts, one module per box of the paper's Figure 1, and the assembled model."""

from decalign.model.decalign import LOSS_KEYS, TERM_KEYS, DecAlign, DecAlignOutput

__all__ = ["LOSS_KEYS", "TERM_KEYS", "DecAlign", "DecAlignOutput"]
