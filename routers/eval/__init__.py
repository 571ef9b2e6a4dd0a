"""Evaluation on recorded data: the dataset schema, source adapters, measures (and, to
come, the harness that runs routers over recorded tasks through the engine).

See :mod:`routers.eval.dataset` for the schema users bring their own recordings in, and
:mod:`routers.eval.sources` for where the shared recordings are found.
"""

from __future__ import annotations

from .dataset import FORMAT, Dataset, DatasetError, Price, Sample, Split, Task, merge
from .metrics import McNemar, Point, aiq, apgr, cpt, mcnemar, ndch, pgr
from .sources import ADAPTERS, DataUnavailable, adapter, data_root, load_dataset

__all__ = [
    "ADAPTERS",
    "FORMAT",
    "McNemar",
    "Point",
    "DataUnavailable",
    "Dataset",
    "DatasetError",
    "Price",
    "Sample",
    "Split",
    "Task",
    "adapter",
    "aiq",
    "apgr",
    "cpt",
    "data_root",
    "load_dataset",
    "mcnemar",
    "merge",
    "ndch",
    "pgr",
]
