"""Running a pipeline: one run from its lease to its seal.

:func:`arun` takes the lease of the run's lineage (:mod:`orch._lineage`: one process at a
time works on a run and the resumes that continue it), writes the run head and the
``run_start`` event, appends the run's ``start`` entry to the store's ledger, lets the
scheduler (:mod:`orch._scheduler`) run the steps, then records every node that never ran,
the run record (whose key is the root hash), the ``run_end`` event, the ledger's ``seal``
entry and the final head, in that order: the ledger before the head, because the ledger is
the authority and a head is a copy that a crash may leave behind.

A run cancelled from outside (a signal through :class:`RunControl`, or its caller's cancel
scope) still ends this way, with status ``cancelled``: its unfinished steps are recorded as
cancelled, and a resume continues it.

What must never enter a hashed record: the run id, wall-clock time, completion order. The
root hash is computed over step records sorted by step id.
"""

from __future__ import annotations

import functools
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import TypeAdapter, ValidationError

from orch._ask import Answer, Question
from orch._effects import Divergence, EffectSource, RunMode
from orch._events import EventSink
from orch._lease import Lease, holding
from orch._lineage import lineage_name, mark_superseded, mark_taken_over, settle
from orch._pipeline import Pipeline
from orch._scheduler import Perturbation, ReusedStep, RunState, Scheduler, StepOutcome
from orch._thread import ThreadLink, check_thread_options, next_turn, resumed_turn
from orch._typecheck import is_optional
from orch._version import __version__
from orch.errors import AnswerError, InputError, LeaseHeld, OrchError, RunBusyError
from traces import (
    ArtifactStore,
    ErrorInfo,
    Ledger,
    RunHead,
    RunRecord,
    SealEntry,
    StartEntry,
    canonical_bytes,
    check_run_id,
    digest,
    ledger_of,
    load_run_head,
    steps_root,
)

__all__ = [
    "RunControl",
    "RunOptions",
    "RunResult",
    "arun",
    "new_run_id",
    "recorded_inputs",
    "run",
    "type_adapter",
    "validate_inputs",
]

_HOST = socket.gethostname()  # metadata only (run head), looked up once


@dataclass
class RunResult:
    """What a run produced. ``outputs`` holds live values; the record holds their keys."""

    run_id: str
    status: str
    root_hash: str
    record: RunRecord
    outputs: dict[str, Any]
    steps: dict[str, StepOutcome] = field(repr=False)
    error: ErrorInfo | None = None
    divergences: list[Divergence] = field(default_factory=list)
    """Where a replay or resume stopped matching its record (empty for a normal run)."""
    questions: list[Question] = field(default_factory=list)
    """What a ``waiting`` run waits on: the questions its steps asked (``ctx.ask``), by id."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def waiting(self) -> bool:
        """Whether the run stopped to wait for an answer (``orch answer`` resumes it)."""
        return self.status == "waiting"

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    def raise_for_status(self) -> RunResult:
        """Return self, or raise :class:`OrchError` describing why the run failed."""
        if not self.ok:
            detail = f"{self.error.type}: {self.error.message}" if self.error else "unknown"
            raise OrchError(f"run {self.run_id} failed: {detail}")
        return self


def new_run_id() -> str:
    """A sortable, unique run id (metadata only: it never enters a hashed record)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


class RunControl:
    """A handle to stop a run cleanly from outside its task: a signal handler, a UI's stop
    button. :meth:`cancel` cancels the run's steps; each unfinished one is recorded as
    cancelled with the reason, and the run ends with status ``cancelled`` and a root hash,
    returned by :func:`arun` like any result (a resume continues it). Calling it before the
    run starts cancels it as soon as it does; calling it again changes nothing."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._scope: anyio.CancelScope | None = None
        self._state: RunState | None = None

    def cancel(self, reason: str = "cancelled by its caller") -> None:
        if self.reason is None:
            self.reason = reason
        if self._state is not None and self._state.cancelled is None:
            self._state.cancelled = self.reason
        if self._scope is not None:
            self._scope.cancel()

    def _attach(self, scope: anyio.CancelScope, state: RunState) -> None:
        self._scope, self._state = scope, state
        if self.reason is not None:
            self.cancel(self.reason)

    def _detach(self) -> None:
        self._scope = self._state = None


@functools.lru_cache(maxsize=256)
def _cached_adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def type_adapter(tp: Any) -> TypeAdapter[Any]:
    """The pydantic adapter that validates and dumps values of the type ``tp`` (a pipeline
    input's declared type), cached per type: building one compiles a schema, and input types
    repeat across runs of a pipeline."""
    try:
        return _cached_adapter(tp)
    except TypeError:  # an unhashable type expression (Annotated metadata, say)
        return TypeAdapter(tp)


def recorded_inputs(
    pipeline: Pipeline, store: ArtifactStore, input_keys: Mapping[str, str]
) -> dict[str, Any]:
    """Decode a recorded run's input artifacts into values of the pipeline's input types,
    checked as a run's inputs are (:func:`validate_inputs`)."""
    for name in input_keys:
        if name not in pipeline.inputs:
            raise OrchError(
                f"the recorded run has input {name!r}, which pipeline {pipeline.name!r} no "
                "longer declares; fix: run the pipeline version that made the record"
            )
    return validate_inputs(pipeline, {n: store.get_value(k) for n, k in input_keys.items()})


def validate_inputs(pipeline: Pipeline, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """``inputs`` checked against ``pipeline``'s declared inputs and converted to their types
    (an optional input left out is None). Raises :class:`~orch.errors.InputError` listing
    every unknown, missing or invalid input, as :func:`arun` does before it writes anything."""
    problems = []
    unknown = sorted(set(inputs) - set(pipeline.inputs))
    if unknown:
        problems.append(
            f"unknown input(s) {unknown}; this pipeline takes "
            f"{sorted(pipeline.inputs) or 'no inputs'}"
        )
    values: dict[str, Any] = {}
    for name, tp in pipeline.inputs.items():
        if name not in inputs:
            if is_optional(tp):
                values[name] = None
                continue
            problems.append(f"missing input {name!r}; fix: pass {name}=VALUE")
            continue
        try:
            values[name] = type_adapter(tp).validate_python(inputs[name])
        except ValidationError as exc:
            problems.append(f"input {name!r}: {exc.errors()[0]['msg']} (got {inputs[name]!r})")
    if problems:
        raise InputError(f"pipeline {pipeline.name!r}: " + "; ".join(problems))
    return values


@asynccontextmanager
async def _lineage_lease(
    store: ArtifactStore, lineage: str, run_id: str, resumed: str | None, *, take: bool, wait: bool
) -> AsyncIterator[Lease | None]:
    """Hold the lease of ``lineage`` while the body runs (see :mod:`orch._lineage`)."""
    if not take:
        yield None
        return
    entered = False
    try:
        async with holding(store, lineage, work=f"run {run_id}", wait=wait) as lease:
            entered = True
            yield lease
    except LeaseHeld as exc:
        if entered:
            raise
        what = f"run {resumed}" if resumed else f"run {run_id}"
        raise RunBusyError(
            f"{what} is being worked on by {exc.holder or 'another process'} (lineage "
            f"{lineage}, store {store.location}); fix: wait until it ends, or resume with "
            "wait=True (orch run --resume ... --wait): a holder that died on another machine "
            "is taken over once it has not renewed its lease for its lease time"
        ) from None


def _refuse_existing(store: ArtifactStore, run_id: str) -> None:
    if store.read_run_head(run_id) is not None:
        raise OrchError(
            f"run id {run_id!r} is already in store {store.location}; fix: leave run_id out "
            "to get a new one (a run is continued with resume=, never rewritten)"
        )


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out, as its caller asked: passed unchanged to the scheduler
    whether the run is new, a resume or a replay. None of it enters a hashed record."""

    max_concurrency: int = 64
    """Steps of the run at once."""
    perturb: Perturbation | None = None
    clock: Callable[[], float] = time.time
    """Wall-clock time, for the run head and the event log (metadata only)."""
    services: Mapping[str, Any] | None = None
    control: RunControl | None = None
    on_event: EventSink | None = None
    """Hears the run's events as they happen (:mod:`orch._events`)."""

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise OrchError(f"max_concurrency is {self.max_concurrency}; fix: use 1 or more")


async def arun(
    pipeline: Pipeline,
    inputs: Mapping[str, Any] | None = None,
    *,
    store: ArtifactStore | None = None,
    seed: int = 0,
    max_concurrency: int = 64,
    run_id: str | None = None,
    perturb: Perturbation | None = None,
    clock: Callable[[], float] = time.time,
    resume: str | None = None,
    origin: Mapping[str, Any] | None = None,
    services: Mapping[str, Any] | None = None,
    control: RunControl | None = None,
    wait: bool = False,
    lease: bool = True,
    on_event: EventSink | None = None,
    answers: Mapping[str, Answer] | None = None,
    thread: str | None = None,
) -> RunResult:
    """Run ``pipeline`` on ``inputs`` and record it in ``store``; return the result.

    ``on_event`` hears each event as it happens, in the order the event log holds them (see
    :mod:`orch._events`; :func:`orch.stream` is the async-iterator form). It changes nothing
    that is recorded.

    A failed node does not raise: the result has status ``failed`` and the error. Bad inputs
    raise :class:`~orch.errors.InputError` before anything is written. A run cancelled by
    ``control`` returns with status ``cancelled``; one cancelled by its caller's cancel scope
    is recorded as cancelled too, then the cancellation goes on.

    ``resume`` names an earlier run of the same pipeline that crashed, was killed, cancelled
    or failed: its inputs and seed are used (``inputs`` and ``seed`` must not be given), every
    node that any run of its lineage finished is taken from the record without running
    again, every effect any of them finished is served from the record, and the rest runs.
    The new run's root hash is the one an uninterrupted run would have had. When another
    process works on the lineage, :class:`~orch.errors.RunBusyError` names it, unless
    ``wait`` (then this waits for it, and takes over a holder whose lease went stale).
    ``lease=False`` is for a caller that already holds the lineage's lease (a batch holds its
    input's).

    ``origin`` is metadata for the event log (the CLI records the file the pipeline came
    from and its sources, so that ``orch replay`` can check and load them). ``services`` are
    objects agents reach with ``ctx.service(name)`` (the model hub is ``"models"``); they are
    not part of the record, only the effects they make are.

    ``answers`` (question id -> :class:`~orch.Answer`) answer questions steps ask with
    ``ctx.ask``: with ``resume``, those a waiting run asked (check them first with
    :func:`orch.check_answer`, or use :func:`orch.answer`); on a new run, questions known in
    advance. A run whose step asks a question it was not given an answer for ends with status
    ``waiting`` and its ``questions``.

    ``thread`` makes the run the next turn of that conversation thread (see
    :mod:`orch._thread`): it waits for (``wait``) or refuses another turn running, refuses
    when the thread's last turn did not end ok, and gives a pipeline input ``state`` the last
    turn's output ``state``. A resume keeps the thread and turn of the run it resumes.
    """
    from orch._loader import refuse_run_at_import  # `orch run FILE` imports FILE: no run in there

    refuse_run_at_import()
    store = _writable_store(store)
    options = RunOptions(max_concurrency, perturb, clock, services, control, on_event)
    thread = check_thread_options(thread, resume)
    given = _answer_keys(store, answers)
    if resume is not None:
        return await _resume_run(
            pipeline,
            store,
            resume,
            inputs,
            seed,
            run_id,
            origin,
            options,
            given,
            wait=wait,
            lease=lease,
        )
    run_id = check_run_id(run_id or new_run_id())
    async with next_turn(store, pipeline, thread, inputs, run_id, wait=wait) as turn:
        values = validate_inputs(pipeline, turn.inputs)
        async with _lineage_lease(store, run_id, run_id, None, take=lease, wait=wait) as held:
            _refuse_existing(store, run_id)
            turn.reserve(run_id)
            return await _run(
                pipeline,
                values,
                store,
                seed,
                run_id,
                options,
                origin,
                lease=held,
                answers=given,
                thread=turn.link,
            )


def _answer_keys(store: ArtifactStore, answers: Mapping[str, Answer] | None) -> dict[str, str]:
    """Store each answer as an artifact; return question id -> its key (what run_start
    lists). Checked first, so that a wrong one writes nothing."""
    if not answers:
        return {}
    for qid, answer in answers.items():
        if not isinstance(answer, Answer) or answer.question != qid:
            raise AnswerError(
                f"answers[{qid!r}] is {answer!r}, not an Answer to question {qid!r}; fix: pass "
                "what orch.check_answer returns, or Answer(question=ID, value={...}, by=NAME)"
            )
    return {qid: store.put_value(answers[qid].model_dump(mode="json")) for qid in sorted(answers)}


def _writable_store(store: ArtifactStore | None) -> ArtifactStore:
    """``store``, or the default one (:func:`traces._open.open_store`), once it is known to
    take writes: a read-only one raises StoreReadOnlyError naming why, before any write."""
    if store is None:
        from traces import open_store

        store = open_store()
    if store.read_only:
        from traces import require_writable

        require_writable(store)
    return store


async def _resume_run(
    pipeline: Pipeline,
    store: ArtifactStore,
    resume: str,
    inputs: Mapping[str, Any] | None,
    seed: int,
    run_id: str | None,
    origin: Mapping[str, Any] | None,
    options: RunOptions,
    given: Mapping[str, str],
    *,
    wait: bool,
    lease: bool,
) -> RunResult:
    """Continue run ``resume`` and its lineage as a new run, under the lineage's lease, with
    every answer its lineage was given and the ``given`` ones."""
    from orch._resume import prepare_resume  # keeps the common path free of resume's imports

    resumed = store.resolve_run(resume)
    head = load_run_head(store, resumed)
    lineage = lineage_name(store, head)
    run_id = check_run_id(run_id or new_run_id())
    async with (
        resumed_turn(store, head, run_id, wait=wait) as link,  # a turn of a thread stays one
        _lineage_lease(store, lineage, run_id, resumed, take=lease, wait=wait) as held,
    ):
        settle(store, resumed)  # what a killed member of the lineage left half done
        plan = prepare_resume(pipeline, store, resumed, inputs, seed)
        values = recorded_inputs(pipeline, store, plan.input_keys)
        again = sorted(set(given) & set(plan.answers))
        if again:
            raise AnswerError(
                f"question {again[0]} of run {resumed} was already answered in its lineage; "
                "fix: answer only the questions it waits on now (orch runs --waiting)"
            )
        _refuse_existing(store, run_id)
        members = mark_taken_over(store, plan.members, resumed, run_id, plan.logs)

        def sealed(status: str) -> None:
            # Before this run's final head: once that head says ok, the lineage is settled;
            # a kill before it leaves a run that looks unfinished, and the next resume
            # settles what is left (lineage.settle).
            if status == "ok":
                mark_superseded(store, members, run_id)

        return await _run(
            pipeline,
            values,
            store,
            plan.seed,
            run_id,
            options,
            {**(origin or {}), "resumed_from": resumed},
            mode="resume",
            source=plan.effects,
            reuse=plan.reuse,
            lineage=lineage,
            resumed_from=resumed,
            lease=held,
            sealed=sealed,
            answers={**plan.answers, **given},
            thread=link,
        )


async def _run(
    pipeline: Pipeline,
    values: Mapping[str, Any],
    store: ArtifactStore,
    seed: int,
    run_id: str | None,
    options: RunOptions,
    origin: Mapping[str, Any] | None,
    *,
    mode: RunMode = "record",
    source: EffectSource | None = None,
    reuse: Mapping[str, ReusedStep] | None = None,
    lineage: str | None = None,
    resumed_from: str | None = None,
    lease: Lease | None = None,
    sealed: Callable[[str], None] | None = None,
    answers: Mapping[str, str] | None = None,
    thread: ThreadLink | None = None,
) -> RunResult:
    """Make and record one run of ``pipeline``, from its head to its seal. ``values`` were
    checked by validate_inputs (arun) or recorded_inputs (resume, replay)."""
    run_id = run_id or new_run_id()
    state = RunState(
        pipeline,
        store,
        run_id,
        seed,
        options.max_concurrency,
        options.perturb,
        options.clock,
        mode,
        source,
    )
    state.listen(options.on_event)
    state.reuse = dict(reuse or {})
    state.answers = dict(answers or {})
    state.services = dict(options.services or {})
    ledger = _ready_ledger(store)
    head, input_keys = _start(
        state, values, origin, ledger, lineage or run_id, resumed_from, thread
    )
    scheduler = Scheduler(state, values)
    control = options.control
    try:
        with anyio.CancelScope() as scope:
            if control is not None:
                control._attach(scope, state)
            await scheduler.run()
    except anyio.get_cancelled_exc_class():
        # Cancelled by the caller's scope (or orch.run's Ctrl-C): the run still ends as
        # cancelled, unless its lease was taken over (its lineage is another process's now,
        # which anchored its log as it found it).
        if lease is None or not lease.lost:
            if state.cancelled is None:
                state.cancelled = "the run was cancelled by its caller"
            _finish(state, scheduler, head, input_keys, ledger, sealed)
        raise
    finally:
        if control is not None:
            control._detach()
    return _finish(state, scheduler, head, input_keys, ledger, sealed)


def _ready_ledger(store: ArtifactStore) -> Ledger | None:
    """The store's ledger, ready for entries, or None for a store that keeps none."""
    ledger = ledger_of(store)
    if not ledger.supported:
        return None
    ledger.ensure()
    return ledger


def _start(
    state: RunState,
    values: Mapping[str, Any],
    origin: Mapping[str, Any] | None,
    ledger: Ledger | None,
    lineage: str,
    resumed_from: str | None,
    thread: ThreadLink | None = None,
) -> tuple[RunHead, dict[str, str]]:
    """Store the spec and the inputs, write the run head and the ``run_start`` event, and
    append the run's ``start`` entry to the ledger; return the head and the input keys."""
    pipeline, store, run_id, seed = state.pipeline, state.store, state.run_id, state.seed
    spec_key = pipeline.spec_hash
    if not store.has(spec_key):  # the spec of a large pipeline is large: hash it once
        store.put(pipeline.spec_bytes)
    input_keys = {
        name: store.put(
            canonical_bytes(type_adapter(pipeline.inputs[name]).dump_python(value, mode="json"))
        )
        for name, value in sorted(values.items())
    }
    head = RunHead(
        run_id=run_id,
        pipeline=pipeline.name,
        spec_hash=spec_key,
        seed=seed,
        status="running",
        started_at=state.clock(),
        host=_HOST,
        orch_version=__version__,
        lineage=lineage,
        resumed_from=resumed_from,
        thread=None if thread is None else thread.thread,
        turn=None if thread is None else thread.turn,
    )
    store.write_run_head(run_id, head.to_bytes())
    start: dict[str, Any] = {
        "pipeline": pipeline.name,
        "spec": spec_key,
        "seed": seed,
        "inputs": input_keys,
        "mode": state.effects.mode,
    }
    if origin:
        start["origin"] = dict(sorted(origin.items()))
    if thread is not None:  # metadata: the turn's place in its thread (orch._thread)
        start["thread"] = thread.event_data()
    if state.answers:  # the ledger's start entry commits to them (orch._ask)
        start["answers"] = dict(sorted(state.answers.items()))
    start_event = state.events.emit("run_start", **start)
    if ledger is not None:
        ledger.append(
            StartEntry(
                run=run_id,
                pipeline=pipeline.name,
                spec=spec_key,
                seed=seed,
                start_event=start_event,
                lineage=lineage,
                resumed_from=resumed_from,
            )
        )
    return head, input_keys


def _finish(
    state: RunState,
    scheduler: Scheduler,
    head: RunHead,
    input_keys: dict[str, str],
    ledger: Ledger | None,
    sealed: Callable[[str], None] | None = None,
) -> RunResult:
    """Record what never ran, the outputs and the run record, then seal the run
    (:func:`_seal`). Synchronous on purpose: nothing here awaits, so a cancellation cannot
    cut it short."""
    # Anchors a failed or cancelled step deferred (an ok step wrote its own) go in before
    # the seal, so a sealed run leaves none of its tool audit entries unanchored.
    state.effects.flush_anchors()
    pipeline, store = state.pipeline, state.store
    for node_id in pipeline.order:
        if node_id in state.records:
            continue
        blocked = state.blocked.get(node_id)
        if blocked is not None:
            state.record_unrun(node_id, "waiting", blocked)
        else:
            state.record_unrun(node_id, "cancelled", "not started: " + state._cancel_reason())
    status, error = _ending(state)
    outputs = _outputs(pipeline, scheduler) if status == "ok" else {}
    output_keys = {name: store.put(canonical_bytes(value)) for name, value in outputs.items()}
    steps = sorted((sid, key) for sid, (key, _) in state.records.items())
    record = RunRecord(
        pipeline=pipeline.name,
        spec_hash=head.spec_hash,
        inputs=input_keys,
        seed=head.seed,
        steps=steps,
        steps_root=steps_root(steps),
        outputs=output_keys,
        status=status,
        error=error,
        plugins=dict(pipeline.plugins),
    )
    record_bytes = canonical_bytes(record)
    root_hash = store.put(record_bytes)
    assert root_hash == digest(record_bytes)
    _seal(state, head, record, root_hash, ledger, sealed)
    return RunResult(
        run_id=head.run_id,
        status=status,
        root_hash=root_hash,
        record=record,
        outputs=outputs,
        steps=dict(state.node_outcomes),
        error=error,
        divergences=list(state.effects.divergences),
        questions=[state.questions[q] for q in sorted(state.questions)] * (status == "waiting"),
    )


def _ending(state: RunState) -> tuple[str, ErrorInfo | None]:
    """How the run ended (``failed``, ``cancelled`` or ``ok``) and its error."""
    if state.failure is not None:
        return "failed", state.failure
    # A cancel that came after the last step ended cancelled nothing: the run is what it did.
    if state.cancelled is not None and any(
        status == "cancelled" for _, status in state.records.values()
    ):
        return "cancelled", ErrorInfo(type="Cancelled", message=state.cancelled)
    if state.questions and any(status == "waiting" for _, status in state.records.values()):
        asked = ", ".join(sorted(state.questions))
        return "waiting", ErrorInfo(type="Waiting", message=f"waiting for answers to: {asked}")
    return "ok", None


def _outputs(pipeline: Pipeline, scheduler: Scheduler) -> dict[str, Any]:
    """The pipeline's outputs whose producers succeeded, by name in sorted order."""
    outputs: dict[str, Any] = {}
    for name, ref in sorted(pipeline.outputs.items()):
        ok, value = scheduler._value(ref)
        if ok:
            outputs[name] = value
    return outputs


def _seal(
    state: RunState,
    head: RunHead,
    record: RunRecord,
    root_hash: str,
    ledger: Ledger | None,
    sealed: Callable[[str], None] | None,
) -> None:
    """Write the ``run_end`` event, the ledger's ``seal`` entry, what ``sealed`` adds (a
    resume marks the runs it supersedes), then the final head, in that order: the ledger
    is the authority, and a head is a copy that a crash may leave behind."""
    status = record.status
    state.events.emit("run_end", status=status, root_hash=root_hash)
    if ledger is not None:
        ledger.append(
            SealEntry(
                run=head.run_id,
                status=status,
                root_hash=root_hash,
                steps_root=record.steps_root,
                steps=len(record.steps),
                events=state.events.count,
                event_head=state.events.head or "",
            )
        )
    if sealed is not None:
        sealed(status)
    final = head.model_copy(
        update={
            "status": status,
            "root_hash": root_hash,
            "finished_at": state.clock(),
            "event_count": state.events.count,
            "event_head": state.events.head,
        }
    )
    state.store.write_run_head(head.run_id, final.to_bytes())


def run(pipeline: Pipeline, inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> RunResult:
    """Synchronous :func:`arun` (starts an event loop; do not call from async code)."""

    async def main() -> RunResult:
        return await arun(pipeline, inputs, **kwargs)

    return anyio.run(main)
