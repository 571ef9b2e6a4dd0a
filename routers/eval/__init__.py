"""Evaluation on recorded data: the dataset schema, source adapters, measures, the harness
that runs routers over recorded tasks through the engine, and the evaluation file.

* :mod:`routers.eval.dataset`: the schema users bring their own recordings in
  (``orch.eval-dataset/1``); :mod:`routers.eval.sources`: named datasets, read by adapters
  that plugins register (entry-point group ``orch.datasets``) from the data root;
  :mod:`routers.eval.split`: the deterministic train/val/test split adapters use;
* :mod:`routers.eval.metrics` and :mod:`routers.eval.reference`: hulls, AIQ, APGR, CPT,
  McNemar; single models, the zero router, the oracle; :mod:`routers.eval.setmetrics`:
  TCAR-style set measures;
* :mod:`routers.eval.harness`: :func:`evaluate`, the one entry point: every task a
  recorded run with a fixed id (:mod:`routers.eval.task_runs`), made in this process or
  placed by an executor (a Dask cluster), resumed by finding those runs in the store; the
  models served from the recordings (:mod:`routers.eval.eval_services`);
  :mod:`routers.eval.training`: router state fitted from training tasks;
* :mod:`routers.eval.study`: configurations and sweeps evaluated on one split, gathered
  into the evaluation file ``orch.eval-report/1`` (:mod:`routers.eval.evalfile`), which
  ``orch report`` renders (:mod:`routers.eval.report`); :mod:`routers.eval.curves`: the AIQ
  curve against the zero router and the two-model strong-share curve.
"""

from __future__ import annotations

from ..errors import DatasetError, DatasetPluginError, DataUnavailable
from .curves import StrongShareCurve, aiq_curve, strong_share_curve, zero_router_aiq
from .dataset import FORMAT, Dataset, Price, Sample, Split, Task, merge
from .eval_services import recorded_hub
from .evalfile import EVAL_FORMAT, EvalConfig, EvalFile, config_of
from .harness import EvalReport, TaskResult, evaluate, grade, grade_last_call
from .metrics import McNemar, Point, aiq, apgr, cpt, mcnemar, ndch, pgr
from .sources import (
    ADAPTERS,
    DATASETS_GROUP,
    DatasetAdapter,
    adapter,
    data_root,
    dataset_names,
    load_dataset,
    register_adapter,
)
from .split import TRAIN_FRACTION, split_of, unit_hash
from .study import Configuration, Study, configurations, parse_sweeps

__all__ = [
    "ADAPTERS",
    "DATASETS_GROUP",
    "EVAL_FORMAT",
    "FORMAT",
    "TRAIN_FRACTION",
    "Configuration",
    "DataUnavailable",
    "Dataset",
    "DatasetAdapter",
    "DatasetError",
    "DatasetPluginError",
    "EvalConfig",
    "EvalFile",
    "EvalReport",
    "McNemar",
    "Point",
    "Price",
    "Sample",
    "Split",
    "StrongShareCurve",
    "Study",
    "Task",
    "TaskResult",
    "adapter",
    "aiq",
    "aiq_curve",
    "apgr",
    "config_of",
    "configurations",
    "cpt",
    "data_root",
    "dataset_names",
    "evaluate",
    "grade",
    "grade_last_call",
    "load_dataset",
    "mcnemar",
    "merge",
    "ndch",
    "parse_sweeps",
    "pgr",
    "recorded_hub",
    "register_adapter",
    "split_of",
    "strong_share_curve",
    "unit_hash",
    "zero_router_aiq",
]
