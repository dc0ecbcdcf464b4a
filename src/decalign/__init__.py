"""decalign: DecAlign (Qian et al., ICLR 2026) as a tested library and command-line tool.

The package mirrors the method's diagram: :mod:`decalign.data` (readers, datasets, synthetic
benchmark), :mod:`decalign.ops` (pure maths: Sinkhorn, GMM EM, MMD, moments), :mod:`decalign.model`
(encoders, decoupling, alignment, fusion, heads, the assembled model), :mod:`decalign.train`
(engine, checkpoints), :mod:`decalign.metrics` and :mod:`decalign.cli`.

Importing the package is cheap: the names below load their modules on first use.

Example::

    import decalign
    data = decalign.load_dataset("aligned_50.pkl", decalign.DataConfig())   # kind detected: mosi
    config = decalign.resolve_config(data, overrides=["train.seeds=[1111]"])
    result = decalign.train(config, data, "runs/mosi")
    print(result.table())
    model = decalign.load_checkpoint("runs/mosi/seed_1111/model.safetensors").model
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DataConfig": "decalign.config",
    "RunConfig": "decalign.config",
    "ModelConfig": "decalign.config",
    "TrainConfig": "decalign.config",
    "ObjectiveConfig": "decalign.config",
    "apply_overrides": "decalign.config",
    "get_preset": "decalign.config.presets",
    "load_dataset": "decalign.data",
    "make_synthetic": "decalign.data",
    "DecAlign": "decalign.model",
    "resolve_config": "decalign.api",
    "train": "decalign.api",
    "cross_validate": "decalign.api",
    "evaluate_checkpoint": "decalign.api",
    "predict_checkpoint": "decalign.api",
    "load_checkpoint": "decalign.train.checkpoint",
    "Predictor": "decalign.inference",
    "Prediction": "decalign.inference",
    "load_official_state_dict": "decalign.model.interop",
}

__all__ = ["__version__", *_LAZY]


class _Package(types.ModuleType):
    """``decalign.train`` is both the training function and the ``decalign/train/`` subpackage.
    Importing a submodule (``decalign.train.engine``, which training itself does) would set the
    package's ``train`` attribute to the subpackage, and the next ``decalign.train(...)`` would
    fail with "'module' object is not callable". The function wins: submodules stay importable
    with ``from decalign.train.engine import ...``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'decalign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
