"""Evaluation on recorded data: the dataset schema, source adapters, measures, the harness
that runs routers over recorded tasks through the engine, and the evaluation file.

* :mod:`routers.eval.dataset`: the schema users bring their own recordings in
  (``orch.eval-dataset/1``); :mod:`routers.eval.sources`: where the shared recordings are
  found, and the adapters that read them;
* :mod:`routers.eval.metrics` and :mod:`routers.eval.reference`: hulls, AIQ, APGR, CPT,
  McNemar; single models, the zero router, the oracle; :mod:`routers.eval.setmetrics`:
  TCAR-style set measures;
* :mod:`routers.eval.harness`: :func:`evaluate`, every task a recorded run, resumable with
  a journal (:mod:`routers.eval.journal`); :mod:`routers.eval.batch_eval`:
  :func:`evaluate_batch`, the same through an executor (a Dask cluster), with the workers'
  services from :mod:`routers.eval.eval_services`; :mod:`routers.eval.training`: router
  state fitted from training tasks;
* :mod:`routers.eval.evalfile`: the evaluation file ``orch.eval-report/1``, which
  ``orch report`` renders (:mod:`routers.eval.report`).
"""

from __future__ import annotations

from .batch_eval import evaluate_batch
from .dataset import FORMAT, Dataset, DatasetError, Price, Sample, Split, Task, merge
from .evalfile import EVAL_FORMAT, EvalConfig, EvalFile, config_of
from .harness import EvalReport, TaskResult, evaluate, grade, grade_last_call, recorded_hub
from .metrics import McNemar, Point, aiq, apgr, cpt, mcnemar, ndch, pgr
from .sources import ADAPTERS, DataUnavailable, adapter, data_root, load_dataset

__all__ = [
    "ADAPTERS",
    "EVAL_FORMAT",
    "FORMAT",
    "DataUnavailable",
    "Dataset",
    "DatasetError",
    "EvalConfig",
    "EvalFile",
    "EvalReport",
    "McNemar",
    "Point",
    "Price",
    "Sample",
    "Split",
    "Task",
    "TaskResult",
    "adapter",
    "aiq",
    "apgr",
    "config_of",
    "cpt",
    "data_root",
    "evaluate",
    "evaluate_batch",
    "grade",
    "grade_last_call",
    "load_dataset",
    "mcnemar",
    "merge",
    "ndch",
    "pgr",
    "recorded_hub",
]
