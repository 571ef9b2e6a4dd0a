"""Batch runs through an executor: one pipeline over many inputs, each input one recorded run.

An :class:`Executor` places the runs of a :class:`BatchSpec` somewhere (this process with
:class:`LocalExecutor`, a Dask cluster with :class:`~orch.executor_dask.DaskExecutor`) and
returns a :class:`BatchResult` in input order. The engine stays the source of truth: every run
is an ordinary :func:`orch.arun` into a shared store under a run id derived from (batch id,
input index), so wherever a run lands, its records and root hash are those of the same run made
here. An executor only places work; it never computes, orders or changes anything hashed.

Idempotence and resume. Before running input ``i``, the executor looks in the store under the
input's run ids: ``BATCH-i``, then ``BATCH-i.r2``, ``BATCH-i.r3`` ... (one per interrupted
attempt). A finished run (ok or failed) is returned as it is: submitting a batch again makes no
new run. An unfinished one (its process was killed) is resumed under the next id: its finished
steps are taken from the record and its recorded effects are served from the record, so none is
issued again. A batch may thus be re-submitted, or a lost task re-run elsewhere, any number of
times, and each input still ends with exactly one finished run. Every attempt's ``run_start``
event carries the input's fingerprint (``batch_key``: spec hash, inputs, seed), and a run found
under an input's id with another fingerprint is an error, never silently reused.

Router state fed back from a batch is folded in input order by :func:`apply_in_order`,
whatever order the runs finished in.

This module must never import ``agents`` or ``routers`` (the dependency direction).
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import orjson

from traces import (
    ArtifactStore,
    RunHead,
    RunRecord,
    TraceError,
    canonical_bytes,
    check_run_id,
    digest,
    to_canonical,
)
from traces.open import default_store_location, open_store

from . import __version__
from .errors import InputError, OrchError, PipelineLoadError
from .loader import _import_file, load_pipeline, load_services, split_target
from .pipeline import Pipeline
from .runtime import RunResult, _adapter, _validate_inputs, arun

__all__ = [
    # describing a batch
    "BatchHeader",
    "BatchInputError",
    "BatchItem",
    "BatchSpec",
    "ExecutorError",
    "absolute_store_location",
    "attempt_run_id",
    "item_seed",
    # running it
    "Executor",
    "LocalExecutor",
    "Progress",
    "run_items",
    # what comes back
    "BatchResult",
    "ItemResult",
    "apply_in_order",
    "in_input_order",
]

S = TypeVar("S")

Progress = Callable[[int, int], None]
"""Called with (runs done, runs in the batch) as runs end (a chunk at a time on Dask)."""

MAX_ATTEMPTS = 16
"""Attempts per input before the executor gives up on it (each one a killed process)."""

_BATCH_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,95}$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ExecutorError(OrchError):
    """A batch cannot be placed or run as asked (the message names the thing and the fix)."""


class BatchInputError(ExecutorError):
    """One input of a batch does not fit the pipeline; ``index`` says which (from 0)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def item_seed(seed: int, index: int) -> int:
    """The run seed of input ``index``: a hash of (batch seed, index), so that seeded steps
    draw afresh for every input yet the same wherever and whenever the run is made."""
    h = hashlib.sha256(f"{seed}\x00{index}".encode()).digest()
    return int.from_bytes(h[:7], "big")


def attempt_run_id(base: str, attempt: int) -> str:
    """The run id of an input's ``attempt`` (1 = the first; later ones resume the one before)."""
    return base if attempt == 1 else f"{base}.r{attempt}"


def absolute_target(target: str) -> str:
    """``FILE.py[:NAME]`` with an absolute path, as every process must import it."""
    path, name = split_target(target)
    return f"{Path(path).expanduser().resolve()}:{name}"


def _services_target(target: str) -> tuple[Path, str]:
    path, sep, name = target.rpartition(":")
    if not sep or not name.isidentifier():
        return Path(target).expanduser().resolve(), "services"
    return Path(path).expanduser().resolve(), name


def absolute_store_location(location: str | None) -> str:
    """``location`` (default ``$ORCH_STORE``, else ``.orch``) with any path made absolute, so
    that processes with other working directories open the same store."""
    loc = default_store_location() if location is None else location
    if loc in ("memory:", "memory://") or not loc.strip():
        return loc
    if loc.startswith("sqlite:"):
        path = loc.removeprefix("sqlite:")
        path = path[2:] if path.startswith("//") else path
        return "sqlite://" + str(Path(path).expanduser().resolve()) if path else loc
    if loc.startswith("file://"):
        return "file://" + str(Path(loc.removeprefix("file://")).expanduser().resolve())
    if _SCHEME_RE.match(loc):
        return loc  # a server (postgresql://...): the same address from everywhere
    return str(Path(loc).expanduser().resolve())


def _where() -> str:
    return f"on {socket.gethostname()} (pid {os.getpid()})"


# -- describing a batch ----------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: what a worker needs to make (or find) its run."""

    index: int
    run_id: str
    """The first attempt's run id, ``BATCH-INDEX``; later attempts add ``.rN``."""
    inputs: dict[str, Any]
    """The pipeline inputs as validated and dumped to JSON (what the run records)."""
    seed: int
    key: str
    """Fingerprint of (spec hash, inputs, seed): a run found under this input's id must carry
    it, or it belongs to another batch that reused the id."""


@dataclass(frozen=True)
class BatchHeader:
    """What every run of a batch shares (sent once with each chunk of items)."""

    batch_id: str
    pipeline: str
    """``/absolute/FILE.py:NAME``: importable at that path in every process that runs it."""
    spec_hash: str
    """The pipeline's spec hash where the batch was made; a worker that loads another refuses."""
    store: str
    services: str | None
    max_concurrency: int
    orch_version: str = __version__


@dataclass(frozen=True)
class BatchSpec:
    """A pipeline over many inputs. Build it with :meth:`create`, which checks everything."""

    batch_id: str
    pipeline: str
    spec_hash: str
    store: str
    items: tuple[BatchItem, ...]
    services: str | None = None
    """``FILE.py[:NAME]`` (NAME defaults to ``services``): a mapping, or a function returning
    one, of the objects agents reach with ``ctx.service``; None means the pipeline file's own
    ``services``, as ``orch run`` uses."""
    seed: int = 0
    max_concurrency: int = 64
    """Steps at once within each run."""

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return [item.inputs for item in self.items]

    @property
    def seeds(self) -> list[int]:
        return [item.seed for item in self.items]

    def header(self) -> BatchHeader:
        return BatchHeader(
            self.batch_id,
            self.pipeline,
            self.spec_hash,
            self.store,
            self.services,
            self.max_concurrency,
        )

    @classmethod
    def create(
        cls,
        pipeline: str,
        inputs: Sequence[Mapping[str, Any]],
        *,
        store: str | None = None,
        services: str | None = None,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
        batch_id: str | None = None,
        max_concurrency: int = 64,
    ) -> BatchSpec:
        """Load ``pipeline`` (``FILE.py[:NAME]``), check every input against it, and fix the
        run ids and seeds. Raises :class:`BatchInputError` naming the first bad input.

        Without ``seeds``, input ``i`` runs with :func:`item_seed` ``(seed, i)``. Without
        ``batch_id``, the id is derived from the spec hash, inputs and seeds, so submitting
        the same batch again finds its runs instead of making new ones (give a new id to run
        it afresh)."""
        target = absolute_target(pipeline)
        pipe = load_pipeline(target)
        if not inputs:
            raise ExecutorError("the batch has no inputs; fix: give at least one set of inputs")
        if seeds is not None and len(seeds) != len(inputs):
            raise ExecutorError(
                f"the batch has {len(inputs)} inputs but {len(seeds)} seeds; fix: give one "
                "seed per input, or none (each then derives from the batch seed)"
            )
        if max_concurrency < 1:
            raise ExecutorError(f"max_concurrency is {max_concurrency}; fix: use 1 or more")
        run_seeds = (
            list(seeds) if seeds is not None else [item_seed(seed, i) for i in range(len(inputs))]
        )
        encoded = [_encode_inputs(pipe, i, values) for i, values in enumerate(inputs)]
        keys = [
            _item_key(pipe.spec_hash, i, enc, s)
            for i, (enc, s) in enumerate(zip(encoded, run_seeds, strict=True))
        ]
        if batch_id is None:
            batch_id = "batch-" + digest(canonical_bytes(keys)).partition(":")[2][:12]
        elif not _BATCH_ID_RE.match(batch_id):
            raise ExecutorError(
                f"batch id {batch_id!r} cannot name runs; fix: use up to 96 letters, digits, "
                "'-' or '_', starting with a letter or digit"
            )
        width = max(5, len(str(len(inputs) - 1)))
        items = tuple(
            BatchItem(i, check_run_id(f"{batch_id}-{i:0{width}d}"), enc, s, k)
            for i, (enc, s, k) in enumerate(zip(encoded, run_seeds, keys, strict=True))
        )
        return cls(
            batch_id=batch_id,
            pipeline=target,
            spec_hash=pipe.spec_hash,
            store=absolute_store_location(store),
            items=items,
            services=None if services is None else ":".join(map(str, _services_target(services))),
            seed=seed,
            max_concurrency=max_concurrency,
        )


def _encode_inputs(pipe: Pipeline, index: int, values: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise BatchInputError(
            index,
            f"input #{index} is a {type(values).__name__}, not a mapping of input name to "
            f"value; fix: give e.g. {{{', '.join(repr(n) + ': ...' for n in pipe.inputs)}}}",
        )
    try:
        checked = _validate_inputs(pipe, values)
        return {
            name: _adapter(pipe.inputs[name]).dump_python(value, mode="json")
            for name, value in sorted(checked.items())
        }
    except InputError as exc:
        raise BatchInputError(index, f"input #{index}: {exc}") from None


def _item_key(spec_hash: str, index: int, inputs: dict[str, Any], seed: int) -> str:
    try:
        return digest(canonical_bytes({"spec_hash": spec_hash, "inputs": inputs, "seed": seed}))
    except TraceError as exc:  # a non-finite float, say: the run could not record it either
        raise BatchInputError(index, f"input #{index} cannot be recorded: {exc}") from None


# -- what comes back -------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one input: its finished run, or why there is none."""

    index: int
    run_id: str
    """The run that holds this input's result (the last attempt's id)."""
    status: str
    """``ok`` or ``failed`` (the run's status), or ``error``: no finished run (see ``error``)."""
    root_hash: str | None
    outputs: dict[str, Any] = field(default_factory=dict)
    """The run's outputs as canonical JSON values (empty unless ok)."""
    attempts: int = 1
    """Runs made for this input: 1, plus one per interrupted attempt resumed."""
    resumed_from: str | None = None
    """The interrupted attempt the finished run resumed, if any."""
    from_store: bool = False
    """The run had already finished when this submission looked (nothing was run)."""
    error: str | None = None

    @property
    def retried(self) -> bool:
        """True when an attempt was interrupted and the run resumed under a new id."""
        return self.attempts > 1

    @classmethod
    def failure(cls, item: BatchItem, message: str) -> ItemResult:
        return cls(item.index, item.run_id, "error", None, attempts=0, error=message)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "run_id": self.run_id,
            "status": self.status,
            "root_hash": self.root_hash,
            "outputs": self.outputs,
            "attempts": self.attempts,
            "retried": self.retried,
            "resumed_from": self.resumed_from,
            "from_store": self.from_store,
            "error": self.error,
        }


@dataclass(frozen=True)
class BatchResult:
    """Every input's result, in input order, and where the runs are."""

    batch_id: str
    pipeline: str
    spec_hash: str
    store: str
    executor: str
    items: tuple[ItemResult, ...]
    seconds: float = 0.0
    """Wall-clock time of the batch (metadata: nothing hashed depends on it)."""

    @classmethod
    def of(
        cls, batch: BatchSpec, executor: str, results: Sequence[ItemResult], seconds: float
    ) -> BatchResult:
        return cls(
            batch.batch_id,
            batch.pipeline,
            batch.spec_hash,
            batch.store,
            executor,
            tuple(in_input_order(results)),
            seconds,
        )

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.items)

    def with_status(self, status: str) -> list[ItemResult]:
        return [r for r in self.items if r.status == status]

    @property
    def retried(self) -> list[ItemResult]:
        return [r for r in self.items if r.retried]

    def summary(self) -> dict[str, Any]:
        counts = {s: len(self.with_status(s)) for s in ("ok", "failed", "error")}
        return {
            "runs": len(self.items),
            **counts,
            "retried": [r.run_id for r in self.retried],
            "from_store": sum(r.from_store for r in self.items),
            "failed_runs": [r.run_id for r in self.items if r.status != "ok"],
            "seconds": round(self.seconds, 3),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "pipeline": self.pipeline,
            "spec_hash": self.spec_hash,
            "store": self.store,
            "executor": self.executor,
            "summary": self.summary(),
            "runs": [r.to_json() for r in self.items],
        }

    def apply_in_order(self, fold: Callable[[S, ItemResult], S], initial: S) -> S:
        """:func:`apply_in_order` over this batch's results."""
        return apply_in_order(self.items, fold, initial)


def in_input_order(results: Iterable[ItemResult]) -> list[ItemResult]:
    """``results`` sorted by input index; every index from 0 must be there exactly once."""
    ordered = sorted(results, key=lambda r: r.index)
    for expected, r in enumerate(ordered):
        if r.index != expected:
            what = "twice" if r.index < expected else f"but input #{expected} is missing"
            raise ExecutorError(
                f"the results hold input #{r.index} {what}; fix: pass each result of the "
                "batch exactly once"
            )
    return ordered


def apply_in_order(
    results: Iterable[ItemResult], fold: Callable[[S, ItemResult], S], initial: S
) -> S:
    """Fold every run's feedback into ``initial`` in input order, whatever order the runs
    finished (or the results arrived) in, so the final router state (and its version hash)
    is the same for every placement of the batch."""
    state = initial
    for result in in_input_order(results):
        state = fold(state, result)
    return state


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
    """The batch's pipeline as this process imports it; refused unless its spec hash is the
    one the batch was made with (other code on this machine would make other records)."""
    pipe = load_pipeline(header.pipeline)
    if pipe.spec_hash != header.spec_hash:
        raise ExecutorError(
            f"pipeline {header.pipeline} loaded {_where()} has spec hash "
            f"{pipe.spec_hash[:19]}..., but the batch was made with {header.spec_hash[:19]}...; "
            "fix: deploy the same pipeline code everywhere the batch runs (restart workers "
            "after changing it: a process imports a pipeline file once)"
        )
    return pipe


def load_batch_services(header: BatchHeader) -> dict[str, Any]:
    """The services of the batch's runs, made fresh in this process."""
    if header.services is None:
        return load_services(header.pipeline)
    path, _, name = header.services.rpartition(":")
    module = _import_file(Path(path))
    obj = getattr(module, name, None)
    if obj is None:
        raise PipelineLoadError(
            f"{path!r} has no object named {name!r}; fix: define {name} (a dict of name -> "
            f"service, or a function returning one) or give --services {path}:NAME"
        )
    if callable(obj):
        obj = obj()
    if not isinstance(obj, Mapping):
        raise PipelineLoadError(
            f"{name!r} in {path!r} is a {type(obj).__name__}; fix: make it a dict of name -> "
            "service, or a function returning one"
        )
    return dict(obj)


async def close_services(services: Mapping[str, Any]) -> None:
    """Close every service that can be closed (model clients hold connections)."""
    for service in services.values():
        close = getattr(service, "aclose", None)
        if close is not None:
            await close()


# -- one input -------------------------------------------------------------------------------


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
    lines = store.read_events(run_id)
    if not lines:
        return None  # killed between writing its head and its first event: nothing done
    try:
        event: dict[str, Any] = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return None  # torn as it was written: nothing after it can exist
    return event if event.get("type") == "run_start" else None


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
) -> ItemResult:
    """Return input ``item``'s finished run: found in the store, resumed from an interrupted
    attempt, or made now. Safe to call again for the same item, here or anywhere."""
    heads = _attempts(store, item)
    origin = {
        "pipeline": header.pipeline,
        "batch": header.batch_id,
        "batch_item": str(item.index),
        "batch_key": item.key,
    }
    next_id = attempt_run_id(item.run_id, len(heads) + 1)
    for attempt in range(len(heads), 0, -1):
        head = heads[attempt - 1]
        start = _run_start(store, head.run_id)
        if start is None:
            continue  # an attempt that died before it began: look at the one before
        recorded = start.get("data", {}).get("origin", {})
        if recorded.get("batch_key") != item.key:
            raise ExecutorError(
                f"run {head.run_id} in store {store.location} was not made for input "
                f"#{item.index} of this batch (other pipeline code, inputs or seed); fix: give "
                "the batch a new id, or use another store"
            )
        if head.root_hash is not None:
            return _from_store(store, item, head, attempt, recorded)
        _check_attempts(item, heads)
        run = await arun(
            pipeline,
            store=store,
            run_id=next_id,
            resume=head.run_id,
            services=services,
            origin=origin,
            max_concurrency=header.max_concurrency,
        )
        return _from_run(item, run, len(heads) + 1, head.run_id)
    _check_attempts(item, heads)
    run = await arun(
        pipeline,
        item.inputs,
        store=store,
        seed=item.seed,
        run_id=next_id,
        services=services,
        origin=origin,
        max_concurrency=header.max_concurrency,
    )
    return _from_run(item, run, len(heads) + 1, None)


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
    ``error`` result, and the others go on. Anything else (a lost connection, a bug) is
    raised once every other item has ended, so that a retry of the whole set finds them done.
    """
    if parallel < 1:
        raise ExecutorError(f"parallel is {parallel}; fix: run 1 or more at once")
    results: list[ItemResult | None] = [None] * len(items)
    unexpected: list[tuple[int, Exception]] = []
    queue = iter(enumerate(items))
    done = 0

    async def worker() -> None:
        nonlocal done
        # Items are taken in input order; when each ends never reaches a record.
        for pos, item in queue:
            try:
                results[pos] = await run_item(pipeline, store, services, header, item)
            except (OrchError, TraceError) as exc:
                results[pos] = ItemResult.failure(item, f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                unexpected.append((item.index, exc))
                continue
            done += 1
            if progress is not None:
                progress(done, total or len(items))

    async with anyio.create_task_group() as tg:
        for _ in range(min(parallel, len(items))):
            tg.start_soon(worker)
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
        try:
            services = (
                dict(self._services) if self._services is not None else load_batch_services(header)
            )
            try:
                results = await run_items(
                    pipeline, store, services, header, batch.items, self.parallel, progress
                )
            finally:
                if self._services is None:
                    await close_services(services)
        finally:
            if self._store is None:
                store.close()
        return BatchResult.of(batch, self.name, results, time.perf_counter() - started)
