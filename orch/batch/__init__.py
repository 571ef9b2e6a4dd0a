"""Batches: many runs of one pipeline, placed by an executor, each claimed under a lease.

A :class:`BatchSpec` names the pipeline, the store and the inputs; an :class:`Executor`
(:class:`LocalExecutor` here, ``orch.batch.dask.DaskExecutor`` with the dask extra) runs
them; a :class:`BatchResult` holds one :class:`ItemResult` per input, in input order. The
implementation is private (``_spec``, ``_item``, ``_result``, ``_executor``); this is the
public face, and :mod:`orch.batch.dask` is the optional Dask executor.
"""

from __future__ import annotations

from orch.batch._assembly import EXECUTORS, make_executor, read_inputs
from orch.batch._executor import (
    Executor,
    LocalExecutor,
    Progress,
    close_services,
    load_batch_pipeline,
    load_batch_services,
    process_label,
    run_items,
    store_reconnects,
)
from orch.batch._item import MAX_ATTEMPTS, attempt_run_id, find_or_run, run_item
from orch.batch._result import BatchResult, ItemResult, apply_in_order, in_input_order
from orch.batch._spec import (
    BatchHeader,
    BatchItem,
    BatchSpec,
    absolute_services_target,
    absolute_store_location,
    absolute_target,
    is_module_target,
    item_seed,
)

__all__ = [
    # describing a batch
    "BatchHeader",
    "BatchItem",
    "BatchSpec",
    "absolute_services_target",
    "absolute_store_location",
    "absolute_target",
    "is_module_target",
    "item_seed",
    "read_inputs",
    # running it: the executor seam
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "Progress",
    "make_executor",
    # what every executor's worker process shares
    "MAX_ATTEMPTS",
    "attempt_run_id",
    "close_services",
    "find_or_run",
    "load_batch_pipeline",
    "load_batch_services",
    "process_label",
    "run_item",
    "run_items",
    "store_reconnects",
    # what comes back
    "BatchResult",
    "ItemResult",
    "apply_in_order",
    "in_input_order",
]
