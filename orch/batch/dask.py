"""The Dask executor: a batch's runs placed on the workers of a Dask distributed cluster.

Dask only places work. The unit it places is a *chunk*: a contiguous slice of the batch's
inputs, submitted as one task (``pure=False``, with ``retries``). The worker runs the task in
one of its ``nthreads`` threads, on an event loop of the chunk's own
(:func:`run_chunk_in_thread`), where :func:`orch.batch._executor.run_items` keeps ``parallel`` runs
of the chunk in flight at once: async agents overlap on a worker, no thread is blocked per
run, and the worker's own event loop (heartbeats, transfers) is never held up by the runs'
synchronous store calls. (A running task takes one of the worker's slots, which is why a task
is a chunk and not a single run.) Each chunk gathers the notices logged while it ran
(:mod:`traces._notices`) and returns them with its results.

Each worker process opens the shared store once and imports the pipeline once (cached by
target and spec hash), and refuses to run a batch whose spec hash differs from the client's.
A task lost with a killed worker is rescheduled by the scheduler on another worker; there each
input finds its state in the shared store (finished: returned as is; interrupted: resumed from
its finished steps), so nothing is run twice and nothing is lost. Results are gathered by
chunk and returned in input order, whatever order the chunks finished in.

Before a batch, each worker is also guarded (:func:`guard_worker`): on CPython 3.11 before
3.11.9 a sampling profiler can freeze a process for good (a garbage collection inside
``sys._current_frames()`` deadlocks holding the GIL: CPython issue 106883), and Dask's worker
profiler samples 100 times a second. A frozen worker holds its runs' leases and any open
database transaction until the scheduler gives up on it minutes later; so on such an
interpreter the worker's profiler is stopped, and the batch's notices say so.

``distributed`` is an optional dependency (the ``dask`` extra), imported only when a batch
runs. This module must never import ``agents`` or ``routers``.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from orch._pipeline import Pipeline
from orch._version import __version__
from orch.batch._executor import (
    Executor,
    Progress,
    close_services,
    load_batch_pipeline,
    load_batch_services,
    process_label,
    run_items,
    store_reconnects,
)
from orch.batch._result import BatchResult, ItemResult
from orch.batch._spec import BatchHeader, BatchItem, BatchSpec
from orch.errors import ExecutorError, OrchError
from traces import ArtifactStore, TraceError, collecting, open_store

__all__ = [
    "ChunkResult",
    "DaskExecutor",
    "default_chunk_size",
    "guard_worker",
    "probe_worker",
    "profiler_can_deadlock",
    "run_chunk",
    "run_chunk_in_thread",
    "worker_store_reconnects",
]

log = logging.getLogger("orch.batch")
_ADDRESS_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s/]+:\d+$")
_INSTALL = "pip install 'orch[dask]' (or: pip install 'dask[distributed]')"

# Per worker process: one open store per location, one pipeline per (target, spec hash),
# shared by the chunks that run at once in the worker's threads (the stores serialise their
# own calls); the lock makes each be opened or imported once.
_STORES: dict[str, ArtifactStore] = {}
_PIPELINES: dict[tuple[str, str], Pipeline] = {}
_CACHE_LOCK = threading.Lock()


def _distributed() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise ExecutorError(
            f"the dask executor needs the 'distributed' package, which is not installed; "
            f"fix: {_INSTALL}"
        ) from None


def _worker_pipeline(header: BatchHeader) -> Pipeline:
    key = (header.pipeline, header.spec_hash)
    with _CACHE_LOCK:
        pipeline = _PIPELINES.get(key)
        if pipeline is None:
            pipeline = _PIPELINES[key] = load_batch_pipeline(header)
        return pipeline


def _worker_store(location: str) -> ArtifactStore:
    with _CACHE_LOCK:
        store = _STORES.get(location)
        if store is None:
            store = _STORES[location] = open_store(location)
        return store


async def probe_worker(header: BatchHeader) -> str | None:
    """Run on every worker before a batch: None when it can run the batch, else why not."""
    if header.orch_version != __version__:
        return (
            f"orch {__version__} is installed {process_label()}, the client has "
            f"{header.orch_version}; fix: install the same orch version on the client and every "
            "worker"
        )
    try:
        _worker_pipeline(header)
        _worker_store(header.store)
    except (OrchError, TraceError) as exc:
        return str(exc)
    try:
        # Made and closed once, so that missing code or data on a worker is reported before
        # the batch rather than failing its tasks one by one.
        await close_services(load_batch_services(header))
    except Exception as exc:
        return f"its services cannot be made: {type(exc).__name__}: {exc}"
    return None


def profiler_can_deadlock(
    version: tuple[int, ...] | None = None, implementation: str | None = None
) -> bool:
    """Whether a sampling profiler can freeze this interpreter for good: CPython 3.11 before
    3.11.9, where a garbage collection that frees a ``threading.local`` inside
    ``sys._current_frames()`` deadlocks holding the GIL (CPython issue 106883; fixed in 3.11.9,
    and 3.12 collects only between bytecodes). Defaults: the running interpreter."""
    version = tuple(sys.version_info[:3]) if version is None else tuple(version[:3])
    implementation = sys.implementation.name if implementation is None else implementation
    return implementation == "cpython" and version[:2] == (3, 11) and version < (3, 11, 9)


def guard_worker(dask_worker: Any) -> str | None:
    """Run on every worker before a batch (on its event loop; Dask passes the worker): on an
    interpreter where its statistical profiler can freeze it (:func:`profiler_can_deadlock`),
    stop the profiler and return a notice saying so; else None. Work that runs on it, ours
    included (a store's retry wrappers, an SDK's), leaves garbage that makes a freeze likely:
    a frozen worker keeps its runs' leases and any open database transaction, holding up the
    other workers, until the scheduler drops it (by default after 5 to 10 minutes)."""
    if not profiler_can_deadlock():
        return None
    callbacks = getattr(dask_worker, "periodic_callbacks", None) or {}
    stopped = False
    for name in ("profile", "profile-cycle"):
        callback = callbacks.get(name)
        if callback is not None and callback.is_running():
            callback.stop()
            stopped = True
    if not stopped:
        return None
    version = ".".join(str(v) for v in sys.version_info[:3])
    message = (
        f"Dask's statistical profiler was stopped {process_label()}: Python {version} can "
        "deadlock under it and freeze the worker for good (CPython issue 106883, fixed in "
        "3.11.9); fix: run the workers on Python 3.11.9 or newer, or start them with the "
        "setting distributed.worker.profile.enabled: false"
    )
    log.warning("%s", message)
    return message


@dataclass(frozen=True)
class ChunkResult:
    """What a chunk task returns: its items' results, and the notices logged while it ran
    (each naming this worker process), for the client's summary."""

    items: list[ItemResult]
    notices: list[str]


async def run_chunk(header: BatchHeader, items: Sequence[BatchItem], parallel: int) -> ChunkResult:
    """The task a worker runs: ``items`` of one batch, ``parallel`` at a time on its loop."""
    with collecting() as notices:
        try:
            pipeline = _worker_pipeline(header)
            store = _worker_store(header.store)
            services = load_batch_services(header)
        except (OrchError, TraceError) as exc:
            # Wrong code or an unusable store is the same on a retry: reported for each item
            # rather than raised (Dask would retry a raised error on every worker in turn).
            why = f"{type(exc).__name__}: {exc}"
            return ChunkResult([ItemResult.failure(item, why) for item in items], [])
        try:
            results = await run_items(pipeline, store, services, header, items, parallel)
        finally:
            await close_services(services)
    where = process_label()
    return ChunkResult(results, [f"{where}: {n}" for n in notices])


def run_chunk_in_thread(
    header: BatchHeader, items: Sequence[BatchItem], parallel: int
) -> ChunkResult:
    """:func:`run_chunk` on an event loop of its own, in the worker thread Dask runs the task
    in: the chunk's runs overlap on that loop, while the worker's own loop (heartbeats, data
    transfers) is never held up by the runs' synchronous store calls (a PostgreSQL store
    retrying for seconds, say) or by their CPU work beyond the GIL's share."""
    return anyio.run(run_chunk, header, items, parallel)


def worker_store_reconnects(location: str) -> int | None:
    """Run on every worker: how often its open store at ``location`` has reconnected (None
    when it has not opened one, or the store does not count reconnects)."""
    store = _STORES.get(location)
    return None if store is None else store_reconnects(store)


def default_chunk_size(runs: int, threads: int, parallel: int) -> int:
    """Inputs per task. A worker slot runs one task at a time, and a task keeps at most
    ``parallel`` runs in flight, so a chunk should hold at least ``parallel`` inputs; and as
    the in-flight count sags at each chunk's ragged end, a slot should get few chunks. Two
    per slot (when the batch is big enough) still even out work between workers."""
    slots = max(1, threads)
    per_slot = max(1, min(2, runs // (slots * parallel)))
    return max(1, min(16 * parallel, math.ceil(runs / (per_slot * slots))))


class DaskExecutor(Executor):
    """Runs a batch on the Dask cluster whose scheduler is at ``scheduler``.

    ``parallel`` runs are kept in flight per task, and a worker runs ``nthreads`` tasks at
    once. ``chunk_size`` (default :func:`default_chunk_size`) sets the inputs per task;
    ``retries`` is how often a task that raised is tried again (a task lost with a worker
    is rescheduled by the scheduler, up to its ``allowed-failures`` setting).
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str,
        *,
        parallel: int = 16,
        chunk_size: int | None = None,
        retries: int = 2,
        connect_timeout: float = 10.0,
        worker_timeout: float = 60.0,
    ) -> None:
        if not _ADDRESS_RE.match(scheduler):
            raise ExecutorError(
                f"scheduler address {scheduler!r} is not of the form tcp://HOST:PORT; fix: "
                "give the address 'dask scheduler' prints (e.g. tcp://10.0.0.5:8786)"
            )
        if parallel < 1 or (chunk_size is not None and chunk_size < 1) or retries < 0:
            raise ExecutorError(
                f"parallel {parallel}, chunk size {chunk_size}, retries {retries}; fix: use "
                "parallel and chunk size of 1 or more, retries of 0 or more"
            )
        self.scheduler = scheduler
        self.parallel = parallel
        self.chunk_size = chunk_size
        self.retries = retries
        self.connect_timeout = connect_timeout
        self.worker_timeout = worker_timeout

    def check(self, batch: BatchSpec) -> None:
        _distributed()
        if batch.store in ("memory:", "memory://"):
            raise ExecutorError(
                "store 'memory:' lives inside one process, and Dask workers are other "
                "processes; fix: give --store a directory or SQLite file on a disk every worker "
                "sees at the same path, or a database URL (postgresql://...)"
            )

    async def run_batch(self, batch: BatchSpec, *, progress: Progress | None = None) -> BatchResult:
        self.check(batch)
        dd = _distributed()
        started = time.perf_counter()
        try:
            client = await dd.Client(
                self.scheduler, asynchronous=True, timeout=self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {self.scheduler}: {exc}; fix: start one "
                "('dask scheduler') or correct --scheduler"
            ) from None
        try:
            results, reconnects, notices = await self._run(dd, client, batch, progress)
        finally:
            await client.close()
        seconds = time.perf_counter() - started
        return BatchResult.of(batch, self.name, results, seconds, reconnects, notices)

    async def _store_reconnects(self, client: Any, location: str) -> dict[str, int] | None:
        """Each worker's reconnect count, or None when they cannot be asked: a number for the
        summary, never worth failing or holding up a batch whose runs are done."""
        with anyio.move_on_after(self.connect_timeout):
            try:
                answers = await client.run(worker_store_reconnects, location, on_error="return")
            except Exception:
                return None
            return {a: n for a, n in answers.items() if isinstance(n, int)}
        return None

    async def _check_workers(self, client: Any, header: BatchHeader) -> tuple[int, list[str]]:
        """The worker slots (threads) of the cluster, and the notices of guarding its workers
        (:func:`guard_worker`); raises when a worker cannot run the batch."""
        try:
            await client.wait_for_workers(1, timeout=self.worker_timeout)
        except TimeoutError:
            raise ExecutorError(
                f"no Dask worker joined the scheduler at {self.scheduler} within "
                f"{self.worker_timeout:g}s; fix: start workers with 'dask worker "
                f"{self.scheduler}' (with the pipeline's files and orch installed)"
            ) from None
        answers = await client.run(probe_worker, header, on_error="return")
        problems = []
        for address, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                problems.append(
                    f"{address}: {type(answer).__name__}: {answer} (fix: install orch, the "
                    "same version, on every worker)"
                )
            elif answer:
                problems.append(f"{address}: {answer}")
        if problems:
            raise ExecutorError(
                f"{len(problems)} of {len(answers)} Dask workers cannot run this batch: "
                + "; ".join(problems)
            )
        guarded = await client.run(guard_worker, on_error="return")
        guards = [n for _, n in sorted(guarded.items()) if isinstance(n, str)]
        threads: dict[str, int] = await client.nthreads()
        return sum(threads.values()), guards

    async def _run(
        self, dd: Any, client: Any, batch: BatchSpec, progress: Progress | None
    ) -> tuple[list[ItemResult], int | None, list[str]]:
        header = batch.header()
        threads, guards = await self._check_workers(client, header)
        before = await self._store_reconnects(client, header.store)
        items = batch.items
        size = self.chunk_size or default_chunk_size(len(items), threads, self.parallel)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        futures = [
            client.submit(
                run_chunk_in_thread,
                header,
                list(chunk),
                self.parallel,
                pure=False,
                retries=self.retries,
            )
            for chunk in chunks
        ]
        chunk_of = {future.key: chunk for future, chunk in zip(futures, chunks, strict=True)}
        results: list[ItemResult] = []
        notices: list[tuple[int, list[str]]] = []
        done = 0
        async for future in dd.as_completed(futures):
            chunk = chunk_of[future.key]
            try:
                answer: ChunkResult = await future
                got = answer.items
                notices.append((chunk[0].index, answer.notices))
            except Exception as exc:
                # Raised on every try, or its workers kept dying: these inputs have no run
                # (the rest of the batch still reports).
                why = f"its task failed on the Dask workers: {type(exc).__name__}: {exc}"
                got = [ItemResult.failure(item, why) for item in chunk]
            if [r.index for r in got] != [item.index for item in chunk]:
                raise ExecutorError(
                    f"a Dask worker returned results for other inputs than it was given "
                    f"(#{chunk[0].index} to #{chunk[-1].index}); fix: report this as a bug"
                )
            results.extend(got)
            done += len(chunk)
            if progress is not None:
                progress(done, len(items))
        # Counted by the workers alive now: a worker lost mid-batch took its count with it
        # (and one restarted at the same address counts from 0 again).
        after = await self._store_reconnects(client, header.store)
        # In input order of the chunks (they finish in any order).
        ordered = guards + [n for _, chunk_notices in sorted(notices) for n in chunk_notices]
        if before is None or not after:
            return results, None, ordered
        return results, sum(max(0, n - before.get(a, 0)) for a, n in after.items()), ordered
