"""Evaluation on recorded data: the dataset schema, source adapters, measures, the harness
that runs routers over recorded tasks through the engine, and the evaluation file.

* :mod:`routers.eval._dataset`: the schema users bring their own recordings in
  (``orch.eval-dataset/1``); :mod:`routers.eval._sources`: named datasets, read by adapters
  that plugins register (entry-point group ``orch.datasets``) from the data root;
  :mod:`routers.eval._split`: the deterministic train/val/test split adapters use;
* :mod:`routers.eval._metrics` and :mod:`routers.eval._reference`: hulls, AIQ, APGR, CPT,
  McNemar; single models, the zero router, the oracle; :mod:`routers.eval._setmetrics`:
  TCAR-style set measures;
* :mod:`routers.eval._harness`: :func:`evaluate`, the one entry point: every task a
  recorded run with a fixed id (:mod:`routers.eval._task_runs`), made in this process or
  placed by an executor (a Dask cluster), resumed by finding those runs in the store; the
  models served from the recordings (:mod:`routers.eval.eval_services`);
  :mod:`routers.eval._training`: router state fitted from training tasks;
  :mod:`routers.eval._offline`: settings scored on a validation split without runs;
  :mod:`routers.eval._audit`: a seeded sample of an evaluation's runs verified and replayed;
* :mod:`routers.eval._study`: configurations and sweeps evaluated on one split, gathered
  into the evaluation file ``orch.eval-report/1`` (:mod:`routers.eval._evalfile`), which
  ``orch report`` renders (:mod:`routers.eval._report`); :mod:`routers.eval._curves`: the AIQ
  curve against the zero router and the two-model strong-share curve.
"""

from __future__ import annotations

from routers.errors import DatasetError, DatasetPluginError, DataUnavailable
from routers.eval._audit import Audit, audit_runs
from routers.eval._curves import StrongShareCurve, aiq_curve, strong_share_curve, zero_router_aiq
from routers.eval._dataset import FORMAT, Dataset, Price, Sample, Split, Task, merge
from routers.eval._evalfile import (
    EVAL_FORMAT,
    CurveRecord,
    EvalConfig,
    EvalFile,
    PointRecord,
    References,
    TableRecord,
    config_of,
    save,
)
from routers.eval._harness import (
    EvalReport,
    TaskResult,
    evaluate,
    grade,
    grade_last_call,
    router_pipeline,
)
from routers.eval._metrics import McNemar, Point, aiq, apgr, cpt, mcnemar, ndch, pgr
from routers.eval._offline import (
    Outcomes,
    aiq_gain,
    choice_points,
    hull_settings,
    outcome_arrays,
    ranked_apgr,
)
from routers.eval._reference import single_models
from routers.eval._report import cost_quality_png, render_eval_report, render_eval_report_file
from routers.eval._setmetrics import OOS, RoutedOutcome, RoutingSummary, summarize
from routers.eval._sources import (
    ADAPTERS,
    DATASETS_GROUP,
    DatasetAdapter,
    adapter,
    data_root,
    dataset_names,
    load_dataset,
    register_adapter,
)
from routers.eval._split import TRAIN_FRACTION, split_of, unit_hash
from routers.eval._study import Configuration, Study, configurations, parse_sweeps
from routers.eval._training import (
    ability_priors,
    ema_observations,
    holdout,
    intent_examples,
    knn_examples,
)
from routers.eval.eval_services import recorded_hub

__all__ = [
    # the evaluation report (orch report FILE.json)
    "cost_quality_png",
    "render_eval_report",
    "render_eval_report_file",
    # what other packages, the reproductions and the examples use
    "CurveRecord",
    "OOS",
    "PointRecord",
    "References",
    "RoutedOutcome",
    "RoutingSummary",
    "TableRecord",
    "ability_priors",
    "ema_observations",
    "holdout",
    "intent_examples",
    "knn_examples",
    "router_pipeline",
    "save",
    "single_models",
    "summarize",
    # tuning on a labelled split without runs, and checking an evaluation's runs
    "Audit",
    "Outcomes",
    "aiq_gain",
    "audit_runs",
    "choice_points",
    "hull_settings",
    "outcome_arrays",
    "ranked_apgr",
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
