"""Data layer: safe readers for the benchmark files, our own format, the synthetic benchmark.

Entry points: :func:`load_dataset` (any supported file, directory or the synthetic benchmark),
:func:`describe_dataset`, :func:`save_native` / :func:`convert` (our pickle-free format),
:func:`make_synthetic`, and the preprocessing functions :func:`fit_standardizer` /
:func:`apply_standardizer`. The dataset kinds are :data:`DATASET_KINDS` (the registry in
:mod:`decalign.data.detect`). Importing this package is cheap: each name loads its module on
first use, so the command line reads the registry without importing numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "NonFiniteWarning": "decalign.data.arrays",
    "BENCHMARKS": "decalign.data.detect",
    "DATASET_KINDS": "decalign.data.detect",
    "DatasetKind": "decalign.data.detect",
    "detect_kind": "decalign.data.detect",
    "convert": "decalign.data.loading",
    "describe_dataset": "decalign.data.loading",
    "load_dataset": "decalign.data.loading",
    "load_native": "decalign.data.native",
    "save_native": "decalign.data.native",
    "FeatureStats": "decalign.data.preprocess",
    "apply_standardizer": "decalign.data.preprocess",
    "fit_standardizer": "decalign.data.preprocess",
    "standardized_modalities": "decalign.data.preprocess",
    "UnsafePickleError": "decalign.data.safe_pickle",
    "load_pickle": "decalign.data.safe_pickle",
    "make_synthetic": "decalign.data.synthetic",
    "SPLITS": "decalign.data.detect",
    "DataError": "decalign.data.types",
    "MultimodalDataset": "decalign.data.types",
    "Split": "decalign.data.types",
    "Task": "decalign.data.types",
}

__all__ = [
    "BENCHMARKS",
    "DATASET_KINDS",
    "SPLITS",
    "DataError",
    "DatasetKind",
    "FeatureStats",
    "MultimodalDataset",
    "NonFiniteWarning",
    "Split",
    "Task",
    "UnsafePickleError",
    "apply_standardizer",
    "convert",
    "describe_dataset",
    "detect_kind",
    "fit_standardizer",
    "load_dataset",
    "load_native",
    "load_pickle",
    "make_synthetic",
    "save_native",
    "standardized_modalities",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'decalign.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
