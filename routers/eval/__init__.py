"""Evaluation on recorded data: the dataset schema, source adapters and (later) the harness.

See :mod:`routers.eval.dataset` for the schema users bring their own recordings in, and
:mod:`routers.eval.sources` for where the shared recordings are found.
"""

from __future__ import annotations

from .dataset import FORMAT, Dataset, DatasetError, Price, Sample, Split, Task, merge
from .sources import ADAPTERS, DataUnavailable, adapter, data_root, load_dataset

__all__ = [
    "ADAPTERS",
    "FORMAT",
    "DataUnavailable",
    "Dataset",
    "DatasetError",
    "Price",
    "Sample",
    "Split",
    "Task",
    "adapter",
    "data_root",
    "load_dataset",
    "merge",
]
