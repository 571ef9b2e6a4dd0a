"""Running one input of a batch: find its run in the shared store, resume it, or make it.

Input ``i`` of batch ``BATCH`` has deterministic run ids: ``BATCH-i`` for the first attempt,
then ``BATCH-i.r2``, ``BATCH-i.r3`` ... one per interrupted attempt. :func:`run_item` looks
at the latest attempt in the store:

* **finished** (ok or failed): its result is returned as it is (``from_store``); nothing runs;
* **unfinished** (its process was killed) or **cancelled** (its process was stopped): it is
  resumed under the next id, with every finished step of its attempts taken from the record
  and their recorded effects served from it, so none is issued again;
* **died before its first event**: skipped, the attempt before it is looked at;
* **none**: the run is made under ``BATCH-i``.

One process at a time does this for an input: it holds the input's lease (see
:mod:`orch._lease`) from the lookup to the end of the run, and others wait for it. The lease
is named ``BATCH-i``, the first attempt's id: the name of the lineage its attempts form (see
:mod:`orch._lineage`), so a resume of one of them by hand waits for the batch too.

Every attempt's ``run_start`` event carries the input's fingerprint (``batch_key``: spec hash,
inputs, seed); a run found under the input's id with another fingerprint is an
:class:`~orch.errors.ExecutorError`, never silently taken for it. :func:`run_item` is thus
safe to call again for the same input, in this process or any other, any number of times.

This module must never compute or change anything hashed (the engine does), and must never
import ``agents`` or ``routers``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from orch._lease import holding
from orch._loader import split_target
from orch._pipeline import Pipeline
from orch._runtime import RunResult, arun
from orch._sources import PipelineSources, find_sources, record_sources
from orch.batch._result import ItemResult
from orch.batch._spec import BatchHeader, BatchItem
from orch.errors import ExecutorError
from traces import ArtifactStore, RunHead, RunRecord, first_event, to_canonical

__all__ = ["MAX_ATTEMPTS", "attempt_run_id", "find_or_run", "run_item"]

MAX_ATTEMPTS = 16
"""Attempts per input before the executor gives up on it (each one a killed process)."""


def attempt_run_id(base: str, attempt: int) -> str:
    """The run id of an input's ``attempt`` (1 = the first; later ones resume the one before)."""
    return base if attempt == 1 else f"{base}.r{attempt}"


@functools.lru_cache(maxsize=16)
def _sources(pipeline: str) -> PipelineSources:
    """The batch pipeline's source files, read once per process (a batch runs one pipeline
    many times; the files do not change under a running batch)."""
    return find_sources(split_target(pipeline)[0])


def _attempts(store: ArtifactStore, item: BatchItem) -> list[RunHead]:
    heads: list[RunHead] = []
    while True:
        raw = store.read_run_head(attempt_run_id(item.run_id, len(heads) + 1))
        if raw is None:
            return heads
        heads.append(RunHead.model_validate_json(raw))


def _check_attempts(item: BatchItem, heads: Sequence[RunHead]) -> None:
    if len(heads) >= MAX_ATTEMPTS:
        raise ExecutorError(
            f"input #{item.index} has been interrupted {len(heads)} times (runs "
            f"{item.run_id} to {heads[-1].run_id}); fix: find out why its runs die "
            f"(orch show {heads[-1].run_id}), then run it under a new batch id"
        )


def _run_start(store: ArtifactStore, run_id: str) -> dict[str, Any] | None:
    # None: killed between writing its head and its first event, or as it wrote it.
    event = first_event(store, run_id)
    return event if event is not None and event.get("type") == "run_start" else None


def _from_run(item: BatchItem, run: RunResult, attempt: int, resumed: str | None) -> ItemResult:
    return ItemResult(
        index=item.index,
        run_id=run.run_id,
        status=run.status,
        root_hash=run.root_hash,
        outputs={k: to_canonical(v) for k, v in sorted(run.outputs.items())},
        attempts=attempt,
        resumed_from=resumed,
        error=None if run.error is None else f"{run.error.type}: {run.error.message}",
    )


def _from_store(
    store: ArtifactStore, item: BatchItem, head: RunHead, attempt: int, origin: Mapping[str, Any]
) -> ItemResult:
    assert head.root_hash is not None
    record = RunRecord.model_validate(store.get_value(head.root_hash))
    return ItemResult(
        index=item.index,
        run_id=head.run_id,
        status=record.status,
        root_hash=head.root_hash,
        outputs={name: store.get_value(key) for name, key in sorted(record.outputs.items())},
        attempts=attempt,
        resumed_from=origin.get("resumed_from"),
        from_store=True,
        error=None if record.error is None else f"{record.error.type}: {record.error.message}",
    )


async def run_item(
    pipeline: Pipeline,
    store: ArtifactStore,
    services: Mapping[str, Any],
    header: BatchHeader,
    item: BatchItem,
    *,
    wait: bool = True,
) -> ItemResult:
    """Return input ``item``'s finished run: found in the store, resumed from an interrupted
    attempt, or made now. Safe to call again for the same item, here or anywhere, at the same
    time too: the input's lease (:mod:`orch._lease`) lets one process at a time work on it,
    and the others wait, then find its run. With ``wait=False``, raise
    :class:`~orch.errors.LeaseHeld` instead of waiting for another process's lease."""
    origin = {
        "pipeline": header.pipeline,
        # The code itself, so that `orch replay` imports only what ran.
        "sources": record_sources(store, _sources(header.pipeline)),
    }
    async with holding(store, item.run_id, header.lease_seconds, wait=wait):
        return await find_or_run(
            pipeline,
            store,
            services,
            header.batch_id,
            item,
            origin=origin,
            max_concurrency=header.max_concurrency,
            lease=False,  # held: the input's lease is its lineage's
        )


async def find_or_run(
    pipeline: Pipeline,
    store: ArtifactStore,
    services: Mapping[str, Any],
    batch_id: str,
    item: BatchItem,
    *,
    origin: Mapping[str, Any] | None = None,
    max_concurrency: int = 64,
    lease: bool = True,
    refused_fix: str = "give the batch a new id, or use another store",
) -> ItemResult:
    """Input ``item`` of batch ``batch_id``: its finished run found in the store, its latest
    interrupted attempt resumed under the next attempt id, or a new run (``origin`` is
    recorded with it, besides the batch's own fields). The one way a batch, or anything that
    names its runs by input (an evaluation), finds, resumes and makes them. With ``lease``,
    each run holds its own lineage's lease (:func:`orch.arun`); :func:`run_item` holds the
    input's instead. A run under the item's id made for another input is refused
    (:class:`~orch.errors.ExecutorError` ending with ``refused_fix``)."""
    heads = _attempts(store, item)
    origin = {
        **(origin or {}),
        "batch": batch_id,
        "batch_item": str(item.index),
        "batch_key": item.key,
    }
    next_id = attempt_run_id(item.run_id, len(heads) + 1)
    options: dict[str, Any] = {
        "store": store,
        "run_id": next_id,
        "services": services,
        "origin": origin,
        "max_concurrency": max_concurrency,
        "lease": lease,
    }
    for attempt in range(len(heads), 0, -1):
        head = heads[attempt - 1]
        start = _run_start(store, head.run_id)
        if start is None:
            continue  # an attempt that died before it began: look at the one before
        recorded = start.get("data", {}).get("origin", {})
        if recorded.get("batch_key") != item.key:
            raise ExecutorError(
                f"run {head.run_id} in store {store.location} was not made for input "
                f"#{item.index} of {batch_id} (other pipeline code, inputs or seed); fix: "
                + refused_fix
            )
        if head.root_hash is not None and head.status != "cancelled":
            return _from_store(store, item, head, attempt, recorded)
        _check_attempts(item, heads)
        run = await arun(pipeline, resume=head.run_id, wait=lease, **options)
        return _from_run(item, run, len(heads) + 1, head.run_id)
    _check_attempts(item, heads)
    run = await arun(pipeline, item.inputs, seed=item.seed, **options)
    return _from_run(item, run, len(heads) + 1, None)
