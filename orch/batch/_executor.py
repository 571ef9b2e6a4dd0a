"""Batch runs through an executor: one pipeline over many inputs, each input one recorded run.

An :class:`Executor` places the runs of a :class:`~orch.batch._spec.BatchSpec` somewhere (this
process with :class:`LocalExecutor`, a Dask cluster with
:class:`~orch.batch.dask.DaskExecutor`) and returns a :class:`~orch.batch._result.BatchResult`
in input order. The engine stays the source of truth: every run is an ordinary
:func:`orch.arun` into a shared store under a run id derived from (batch id, input index), so
wherever a run lands, its records and root hash are those of the same run made here. An
executor only places work; it never computes, orders or changes anything hashed.

The modules of a batch, each with one job:

* :mod:`orch.batch._spec`: the spec (pipeline, store, and per input its run id, seed and
  fingerprint);
* :mod:`orch.batch._item`: one input's run (found, resumed or made; idempotent, see there);
* :mod:`orch.batch._result`: the results in input order, and :func:`apply_in_order`;
* this module: the executor seam, what every executor's worker process shares (loading the
  batch's pipeline and services, :func:`run_items`), and the local executor.

The names of those modules that callers used from here are re-exported. This module must
never import ``agents`` or ``routers`` (the dependency direction).
"""

from __future__ import annotations

import abc
import importlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from orch._loader import import_file, load_pipeline, load_services, services_mapping
from orch._pipeline import Pipeline
from orch.batch._item import run_item
from orch.batch._result import BatchResult, ItemResult
from orch.batch._spec import (
    BatchHeader,
    BatchItem,
    BatchSpec,
    is_module_target,
)
from orch.errors import ExecutorError, LeaseHeld, OrchError, PipelineLoadError
from traces import ArtifactStore, StoreLocationError, TraceError, collecting, open_store

__all__ = [
    # the executor seam
    "Executor",
    "LocalExecutor",
    "Progress",
    # what every executor's worker process shares
    "close_services",
    "load_batch_pipeline",
    "load_batch_services",
    "process_label",
    "run_items",
    "store_reconnects",
]

Progress = Callable[[int, int], None]
"""Called with (runs done, runs in the batch) as runs end (a chunk at a time on Dask)."""


def process_label() -> str:
    """``on HOST (pid N)``: names this process in an error message, since a batch's errors
    may come from any machine of a cluster."""
    return f"on {socket.gethostname()} (pid {os.getpid()})"


# -- the executor seam -----------------------------------------------------------------------


class Executor(abc.ABC):
    """Places the runs of a batch; implementations differ only in where runs execute."""

    name: str = "?"

    def check(self, batch: BatchSpec) -> None:  # noqa: B027 - optional hook
        """Raise :class:`ExecutorError` when this executor cannot run ``batch`` at all (before
        anything is submitted: a store other processes cannot reach, a missing package)."""

    @abc.abstractmethod
    async def run_batch(self, batch: BatchSpec, *, progress: Progress | None = None) -> BatchResult:
        """Run (or find) every input's run and return the results in input order."""


def load_batch_pipeline(header: BatchHeader) -> Pipeline:
    """The batch's pipeline as this process imports it (its function called with the batch's
    ``params``); refused unless its spec hash is the one the batch was made with (other code
    on this machine would make other records)."""
    pipe = load_pipeline(header.pipeline, header.params)
    if pipe.spec_hash != header.spec_hash:
        raise ExecutorError(
            f"pipeline {header.pipeline} loaded {process_label()} has spec hash "
            f"{pipe.spec_hash[:19]}..., but the batch was made with {header.spec_hash[:19]}...; "
            "fix: deploy the same pipeline code everywhere the batch runs (restart workers "
            "after changing it: a process imports a pipeline file once)"
        )
    return pipe


def _services_object(target: str) -> tuple[str, Any]:
    """(where, the object) named by a services target, a module's or a file's."""
    where, _, name = target.rpartition(":")
    if is_module_target(target):
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise PipelineLoadError(
                f"cannot import services module {where!r} {process_label()}: {exc}; fix: "
                "install the package that provides it in every process of the batch"
            ) from None
    else:
        module = import_file(Path(where))
    obj = getattr(module, name, None)
    if obj is None:
        raise PipelineLoadError(
            f"{where!r} has no object named {name!r}; fix: define {name} (a dict of name -> "
            f"service, or a function returning one) or give --services {where}:NAME"
        )
    return where, obj


def load_batch_services(header: BatchHeader) -> dict[str, Any]:
    """The services of the batch's runs, made fresh in this process (the services function
    called with the batch's ``services_params``)."""
    if header.services is None:
        return load_services(header.pipeline)
    where, obj = _services_object(header.services)
    name = header.services.rpartition(":")[2]
    if header.services_params is not None:
        if not callable(obj):
            raise PipelineLoadError(
                f"{name!r} in {where!r} is not a function, so it cannot take the services "
                f"parameters {', '.join(header.services_params)}; fix: make it a function "
                "taking them as keyword arguments"
            )
        try:
            obj = obj(**header.services_params)
        except TypeError as exc:
            raise PipelineLoadError(
                f"calling services {header.services} with "
                f"{', '.join(f'{k}={v!r}' for k, v in header.services_params.items())} failed: "
                f"{exc}; fix: give the parameters the function takes"
            ) from None
    elif callable(obj):
        obj = obj()
    return services_mapping(obj, name, where)


async def close_services(services: Mapping[str, Any]) -> None:
    """Close every service that can be closed (model clients hold connections)."""
    for service in services.values():
        close = getattr(service, "aclose", None)
        if close is not None:
            await close()


# -- running items in this process ---------------------------------------------------------


def store_reconnects(store: ArtifactStore) -> int | None:
    """How often ``store`` has opened its connection again after losing it, for a store that
    counts it (the PostgreSQL store's ``reconnects``), else None."""
    count = getattr(store, "reconnects", None)
    return count if isinstance(count, int) else None


def _item_error(exc: Exception) -> Exception | None:
    """The engine or store error that ``exc`` is, or holds as the only kind of error in a
    task group's exception group (a store lost mid-run fails inside the run's task group);
    None for anything else."""
    if isinstance(exc, OrchError | TraceError):
        return exc
    if isinstance(exc, ExceptionGroup):
        matched, rest = exc.split((OrchError, TraceError))
        if matched is not None and rest is None:
            first: Exception = matched
            while isinstance(first, ExceptionGroup):
                first = first.exceptions[0]
            return first
    return None


async def run_items(
    pipeline: Pipeline,
    store: ArtifactStore,
    services: Mapping[str, Any],
    header: BatchHeader,
    items: Sequence[BatchItem],
    parallel: int,
    progress: Progress | None = None,
    total: int | None = None,
) -> list[ItemResult]:
    """Run ``items`` ``parallel`` at a time in this event loop; results in the items' order.

    A problem of one input (an engine or store error naming it) becomes that input's
    ``error`` result, and the others go on. A store that cannot be reached even after its
    own retries (:class:`~traces.StoreLocationError`) fails the runs in flight, and no further
    run is started: each is reported as ``error``, naming the store error, rather than
    waiting out the store's retries one run after another. Anything else (a bug, say) is
    raised once every other item has ended, so that a retry of the whole set finds them done.
    """
    if parallel < 1:
        raise ExecutorError(f"parallel is {parallel}; fix: run 1 or more at once")
    results: list[ItemResult | None] = [None] * len(items)
    unexpected: list[tuple[int, Exception]] = []
    done = 0
    store_down: str | None = None
    held: list[tuple[int, BatchItem]] = []

    async def worker(queue: Iterator[tuple[int, BatchItem]], wait: bool) -> None:
        nonlocal done, store_down
        # Items are taken in input order; when each ends never reaches a record.
        for pos, item in queue:
            if store_down is not None:
                results[pos] = ItemResult.failure(item, store_down)
            else:
                try:
                    results[pos] = await run_item(
                        pipeline, store, services, header, item, wait=wait
                    )
                except LeaseHeld:
                    held.append((pos, item))  # another process has it: come back at the end
                    continue
                except Exception as exc:
                    error = _item_error(exc)
                    if error is None:
                        unexpected.append((item.index, exc))
                        continue
                    message = f"{type(error).__name__}: {error}"
                    results[pos] = ItemResult.failure(item, message)
                    if isinstance(error, StoreLocationError) and store_down is None:
                        store_down = (
                            f"not started: the store failed for input #{item.index} ({message}); "
                            "fix: run the batch again once the store is reachable (finished runs "
                            "are found in it, interrupted ones resumed)"
                        )
            done += 1
            if progress is not None:
                progress(done, total or len(items))

    # First every input nobody else holds; then those another process held (the same batch
    # submitted twice, a worker presumed dead), waiting for each: finished there, or taken
    # over once its holder's lease goes stale.
    for queue, wait in ((iter(enumerate(items)), False), (iter(held), True)):
        async with anyio.create_task_group() as tg:
            for _ in range(min(parallel, len(items))):
                tg.start_soon(worker, queue, wait)
    if unexpected:
        raise min(unexpected, key=lambda t: t[0])[1]
    return [r for r in results if r is not None]


class LocalExecutor(Executor):
    """Runs a batch in this process, ``parallel`` runs at once (the default executor).

    ``store`` and ``services`` replace what the batch names (an open store, say a
    :class:`~traces.MemoryStore` in a test); they are not closed here.
    """

    name = "local"

    def __init__(
        self,
        parallel: int = 16,
        *,
        store: ArtifactStore | None = None,
        services: Mapping[str, Any] | None = None,
    ) -> None:
        if parallel < 1:
            raise ExecutorError(f"parallel is {parallel}; fix: run 1 or more at once")
        self.parallel = parallel
        self._store = store
        self._services = services

    async def run_batch(self, batch: BatchSpec, *, progress: Progress | None = None) -> BatchResult:
        started = time.perf_counter()
        header = batch.header()
        pipeline = load_batch_pipeline(header)
        store = self._store if self._store is not None else open_store(header.store)
        reconnects_before = store_reconnects(store)
        try:
            services = (
                dict(self._services) if self._services is not None else load_batch_services(header)
            )
            try:
                with collecting() as notices:
                    results = await run_items(
                        pipeline, store, services, header, batch.items, self.parallel, progress
                    )
            finally:
                if self._services is None:
                    await close_services(services)
            reconnects = store_reconnects(store)
        finally:
            if self._store is None:
                store.close()
        if reconnects is not None and reconnects_before is not None:
            reconnects -= reconnects_before
        seconds = time.perf_counter() - started
        return BatchResult.of(batch, self.name, results, seconds, reconnects, notices)
