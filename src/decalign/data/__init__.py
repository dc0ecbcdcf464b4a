"""Data layer: safe readers for the benchmark files, our own format, the synthetic benchmark."""

from decalign.data.types import SPLITS, DataError, MultimodalDataset, Split, Task

__all__ = ["SPLITS", "DataError", "MultimodalDataset", "Split", "Task"]
