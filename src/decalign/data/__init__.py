"""Data layer: safe readers for the benchmark files, our own format, the synthetic benchmark.

Entry points: :func:`load_dataset` (any supported file, directory or the synthetic benchmark),
:func:`describe_dataset`, :func:`save_native` / :func:`convert` (our pickle-free format),
:func:`make_synthetic`, and the preprocessing functions :func:`fit_standardizer` /
:func:`apply_standardizer`. Importing this package loads numpy (and pydantic for the config), not
torch.
"""

from decalign.data.arrays import NonFiniteWarning
from decalign.data.detect import BENCHMARKS, detect_kind
from decalign.data.loading import convert, describe_dataset, load_dataset
from decalign.data.native import load_native, save_native
from decalign.data.preprocess import (
    FeatureStats,
    apply_standardizer,
    fit_standardizer,
    standardized_modalities,
)
from decalign.data.safe_pickle import UnsafePickleError, load_pickle
from decalign.data.synthetic import make_synthetic
from decalign.data.types import SPLITS, DataError, MultimodalDataset, Split, Task

__all__ = [
    "BENCHMARKS",
    "SPLITS",
    "DataError",
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
