"""DecAlign's parts, one module per box of the paper's Figure 1, and the assembled model.

The architectures (DecAlign and the baselines), :class:`ModelInfo` and :func:`build_model` are in
:mod:`decalign.model.factory`; what every architecture's forward returns (:class:`ModelOutput`)
and the loss-term registry (:data:`LOSS_TERMS`) in :mod:`decalign.model.output`. Importing this
package is cheap: each name loads its module on first use, so configuration and the command line
read the architecture registry without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DecAlign": "decalign.model.decalign",
    "LOSS_TERMS": "decalign.model.output",
    "MODEL_LOSSES": "decalign.model.output",
    "MODEL_TERMS": "decalign.model.output",
    "LossTerm": "decalign.model.output",
    "ModelOutput": "decalign.model.output",
    "ARCHITECTURES": "decalign.model.factory",
    "Architecture": "decalign.model.factory",
    "ModelInfo": "decalign.model.factory",
    "build_model": "decalign.model.factory",
}

__all__ = ["ARCHITECTURES", "LOSS_TERMS", "MODEL_LOSSES", "MODEL_TERMS", "Architecture", "DecAlign", "LossTerm",
           "ModelInfo", "ModelOutput", "build_model"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'decalign.model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
