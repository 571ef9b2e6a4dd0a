"""Running a pipeline: the scheduler and the step executor, recording as they go.

A node starts as soon as every node it waits for has finished (no lock-step supersteps),
within a per-run concurrency limit. Every step, whatever its fate, ends in a StepRecord in the
store and a ``step_end`` event; a failure cancels the rest of the run and each cancelled or
never-started step is recorded as such, so the record is complete even for a failed run.

What must never enter a hashed record: the run id, wall-clock time, completion order. The
root hash is computed over step records sorted by step id.
"""

from __future__ import annotations

import functools
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup
from pydantic import BaseModel, TypeAdapter, ValidationError

from traces import (
    ArtifactStore,
    ErrorInfo,
    EventLog,
    RunHead,
    RunRecord,
    canonical_bytes,
    digest,
    steps_root,
)
from traces.records import STEP_FORMAT

from . import __version__
from .agent import Agent
from .context import Context, StepLog
from .effects import (
    Divergence,
    EffectSource,
    RecordedEffectError,
    ReplayDivergenceError,
    RunMode,
)
from .errors import InputError, OrchError, StepError, StepTimeoutError
from .pipeline import Const, ListBinding, Pipeline
from .pool import WorkerPool
from .refs import InputRef, Ref
from .retry import RetryPolicy, call_with_retry
from .typecheck import is_optional

__all__ = [
    "Perturbation",
    "ReusedStep",
    "RunResult",
    "RunState",
    "StepOutcome",
    "arun",
    "run",
    "type_adapter",
    "validate_inputs",
]

Perturbation = Callable[[str], Awaitable[None]]
"""Awaited with the step id just before a step records its result (tests use it to shuffle
completion order)."""

_OPTS = orjson.OPT_SORT_KEYS
_HOST = socket.gethostname()  # metadata only (run head), looked up once
_NO_RETRY = RetryPolicy()


@dataclass
class StepOutcome:
    status: str
    output: BaseModel | None = None
    record_key: str = ""
    error_type: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class ReusedStep:
    """A node finished by an earlier run: its record key, output, and every record below it."""

    record_key: str
    output_key: str
    subtree: tuple[tuple[str, str, str], ...]
    """(step id, record key, status) of the node's step and all its descendants."""


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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def raise_for_status(self) -> RunResult:
        """Return self, or raise :class:`OrchError` describing why the run failed."""
        if not self.ok:
            detail = f"{self.error.type}: {self.error.message}" if self.error else "unknown"
            raise OrchError(f"run {self.run_id} failed: {detail}")
        return self


def new_run_id() -> str:
    """A sortable, unique run id (metadata only: it never enters a hashed record)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


def _error_info(exc: BaseException) -> ErrorInfo:
    if isinstance(exc, RecordedEffectError):  # replayed failure: record it as it was
        return ErrorInfo(type=exc.original_type, message=exc.original_message)
    t = type(exc)
    name = t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
    return ErrorInfo(type=name, message=str(exc))


class RunState:
    """Everything one run shares between its steps."""

    def __init__(
        self,
        pipeline: Pipeline,
        store: ArtifactStore,
        run_id: str,
        seed: int,
        max_concurrency: int,
        perturb: Perturbation | None,
        clock: Callable[[], float],
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.run_id = run_id
        self.seed = seed
        self.max_concurrency = max_concurrency
        self.perturb = perturb
        self.events = EventLog(store, run_id, clock)
        self.records: dict[str, tuple[str, str]] = {}
        """Step id -> (record key, status)."""
        self.node_outcomes: dict[str, StepOutcome] = {}
        self.failure: ErrorInfo | None = None
        self.mode: RunMode = "record"
        self.services: dict[str, Any] = {}
        self.reuse: dict[str, ReusedStep] = {}
        """Top-level nodes finished by the run being resumed: taken, not run."""
        self.divergences: list[Divergence] = []
        self.effect_source: EffectSource | None = None
        """Recorded effects served instead of live calls (replay and resume)."""
        self.failed_node: str | None = None
        # Why a step is being cancelled when the cause is local (a failed sibling, a parent's
        # deadline), keyed by the step whose scope was cancelled; read by _cancel_reason.
        self.cancel_causes: dict[str, str] = {}
        self.deadlines: dict[str, tuple[anyio.CancelScope, float]] = {}
        self._agent_refs: dict[int, tuple[Agent[Any, Any], dict[str, str]]] = {}

    def _check_all_effects_made(self, step_id: str, made: int) -> None:
        assert self.effect_source is not None
        slot = self.effect_source.get(step_id, made)
        if slot is not None:  # the record has more effects than the step made now
            rec = slot[1]
            raise self.diverge(
                Divergence(step_id, made, "missing-effect", rec.target, rec.request, None)
            )

    def diverge(self, divergence: Divergence) -> ReplayDivergenceError:
        """Note where a replay stopped matching (even if an agent swallows the error)."""
        self.divergences.append(divergence)
        return ReplayDivergenceError(divergence)

    # -- recording ---------------------------------------------------------------------------

    def _agent_ref(self, agent: Agent[Any, Any]) -> dict[str, str]:
        # Keyed by id() for speed; the entry holds the agent itself so that its id cannot be
        # reused by another object (a with_config() copy made and dropped inside a step) while
        # this run lasts, which would record one agent under another's name.
        entry = self._agent_refs.get(id(agent))
        if entry is None or entry[0] is not agent:
            ref = {"name": agent.name, "version": agent.version, "config_hash": agent.config_hash}
            entry = (agent, ref)
            self._agent_refs[id(agent)] = entry
        return entry[1]

    def record_step(
        self,
        *,
        step_id: str,
        node: str,
        parent: str | None,
        agent: Agent[Any, Any],
        input_key: str | None,
        output_key: str | None,
        decisions: list[str],
        effects: list[str] | None = None,
        children: list[str],
        status: str,
        error: ErrorInfo | None,
        reason: str | None,
        logical_time: int,
        attempts: int | None = None,
    ) -> str:
        # Built as a plain dict (the StepRecord schema, every field present) because this runs
        # once per step; tests pin it to StepRecord's canonical form.
        record = {
            "format": STEP_FORMAT,
            "step_id": step_id,
            "node": node,
            "parent": parent,
            "agent": self._agent_ref(agent),
            "input": input_key,
            "output": output_key,
            "effects": effects or [],
            "decisions": decisions,
            "children": children,
            "status": status,
            "error": None if error is None else {"type": error.type, "message": error.message},
            "reason": reason,
            "logical_time": logical_time,
        }
        key = self.store.put(orjson.dumps(record, option=_OPTS))
        self.records[step_id] = (key, status)
        if attempts is None:
            self.events.emit("step_end", step_id, status=status, record=key)
        else:
            # How many times the agent ran (retries included): the event log's business, not
            # the record's, so a retried step still has the record of an unretried one.
            self.events.emit("step_end", step_id, status=status, record=key, attempts=attempts)
        return key

    # -- executing one step -----------------------------------------------------------------

    async def execute(
        self,
        *,
        step_id: str,
        node: str,
        parent: str | None,
        agent: Agent[Any, Any],
        input_value: BaseModel | Mapping[str, Any],
        logical_time: int,
        timeout: float | None,
        retry: RetryPolicy,
    ) -> StepOutcome:
        """Run one step to a record. Never raises, except cancellation (after recording)."""
        self.events.emit("step_start", step_id)
        log = StepLog()
        input_key: str | None = None
        tries = 0
        try:
            inp = _coerce(agent.input_model, input_value, f"input of agent {agent.name!r}")
            input_key = self.store.put(canonical_bytes(inp))

            async def attempt(_n: int) -> BaseModel:
                nonlocal tries
                tries += 1
                ctx = Context(self, step_id, node, agent, logical_time, log)
                if timeout is None:
                    out = await agent.run(inp, ctx)
                else:
                    try:
                        with anyio.fail_after(timeout) as scope:
                            self.deadlines[step_id] = (scope, timeout)
                            try:
                                out = await agent.run(inp, ctx)
                            finally:
                                del self.deadlines[step_id]
                    except TimeoutError as exc:
                        raise StepTimeoutError(
                            f"step {step_id!r} (agent {agent.name!r}) timed out after {timeout}s"
                        ) from exc
                return _coerce(agent.output_model, out, f"output of agent {agent.name!r}")

            if timeout is None and retry.max_attempts == 1:
                # The common case, without the retry and timeout machinery (per-step cost).
                tries = 1
                out = await agent.run(inp, Context(self, step_id, node, agent, logical_time, log))
                output = _coerce(agent.output_model, out, f"output of agent {agent.name!r}")
            else:
                output, _attempts = await call_with_retry(retry, attempt)
            if self.effect_source is not None and self.mode == "replay":
                self._check_all_effects_made(step_id, len(log.effects))
            if self.perturb is not None:
                await self.perturb(step_id)
            output_key = self.store.put(canonical_bytes(output))
        except anyio.get_cancelled_exc_class():
            self.record_step(
                step_id=step_id,
                node=node,
                parent=parent,
                agent=agent,
                input_key=input_key,
                output_key=None,
                effects=[e for e in log.effects if e],
                decisions=log.decisions,
                children=log.children,
                status="cancelled",
                error=None,
                reason=self._cancel_reason(step_id),
                logical_time=logical_time,
                attempts=tries,
            )
            raise
        except Exception as exc:
            info = _error_info(exc)
            key = self.record_step(
                step_id=step_id,
                node=node,
                parent=parent,
                agent=agent,
                input_key=input_key,
                output_key=None,
                effects=[e for e in log.effects if e],
                decisions=log.decisions,
                children=log.children,
                status="failed",
                error=info,
                reason=None,
                logical_time=logical_time,
                attempts=tries,
            )
            return StepOutcome("failed", None, key, info.type, info.message)
        key = self.record_step(
            step_id=step_id,
            node=node,
            parent=parent,
            agent=agent,
            input_key=input_key,
            output_key=output_key,
            effects=[e for e in log.effects if e],
            decisions=log.decisions,
            children=log.children,
            status="ok",
            error=None,
            reason=None,
            logical_time=logical_time,
            attempts=tries,
        )
        return StepOutcome("ok", output, key)

    def _cancel_reason(self, step_id: str | None = None) -> str:
        # A local cause (on this step or an ancestor) explains more than the run-level one.
        ancestor = step_id
        while ancestor:
            cause = self.cancel_causes.get(ancestor)
            if cause is not None:
                return cause
            deadline = self.deadlines.get(ancestor)
            if deadline is not None and deadline[0].cancel_called:
                what = "step" if ancestor == step_id else "parent step"
                return f"cancelled: {what} {ancestor!r} timed out after {deadline[1]}s"
            ancestor = ancestor.rpartition("/")[0]
        if self.failed_node is not None:
            return f"cancelled: run stopped after node {self.failed_node!r} failed"
        return "cancelled: the run was cancelled"

    async def execute_child(
        self,
        parent: Context,
        step_id: str,
        agent: Agent[Any, Any],
        input_value: BaseModel | Mapping[str, Any],
        timeout: float | None,
        retry: RetryPolicy | None,
    ) -> StepOutcome:
        if not isinstance(agent, Agent):
            raise OrchError(
                f"step {parent.step_id!r}: ctx.call() got {agent!r}, not an agent; fix: pass "
                "an Agent instance or a function decorated with @agent"
            )
        return await self.execute(
            step_id=step_id,
            node=parent.node_id,
            parent=parent.step_id,
            agent=agent,
            input_value=input_value,
            logical_time=parent.logical_time + 1,
            timeout=timeout,
            retry=retry or _NO_RETRY,
        )


def _coerce(model: type[BaseModel], value: Any, what: str) -> BaseModel:
    if type(value) is model:
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise StepError(
            f"{what} is not a valid {model.__name__}: {exc.error_count()} error(s), first: "
            f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}; fix: return/bind a "
            f"{model.__name__}"
        ) from exc


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


class _Scheduler:
    """Starts each node when its producers are done; resolves bindings; handles skips."""

    def __init__(self, state: RunState, inputs: dict[str, Any]) -> None:
        self.state = state
        self.p = state.pipeline
        self.inputs = inputs
        self.remaining = {n: len(self.p.producers[n]) for n in self.p.order}
        self.outputs: dict[str, BaseModel] = {}
        self.status: dict[str, str] = {}
        self.unfinished = len(self.p.order)
        self.tg: TaskGroup | None = None
        self.pool: WorkerPool[str] | None = None

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            self.pool = WorkerPool(tg, self.run_node, self.state.max_concurrency)
            for node_id in self.p.order:
                if self.remaining[node_id] == 0:
                    self.pool.submit(node_id)

    def _value(self, ref: Ref) -> tuple[bool, Any]:
        """(available, value) of a reference; unavailable when its producer did not succeed."""
        if isinstance(ref, InputRef):
            return True, self.inputs[ref.name]
        if self.status.get(ref.node) != "ok":
            return False, None
        value: Any = self.outputs[ref.node]
        for name in ref.path:
            value = getattr(value, name)
        return True, value

    def _gather(self, node_id: str) -> tuple[Any, str | None]:
        """The node's input data, or (None, reason to skip)."""
        node = self.p.nodes[node_id]
        for cond in node.when:
            gate_status = self.status.get(cond.node)
            if gate_status != "ok":
                return None, f"skipped: router {cond.node!r} did not run ({gate_status})"
            selected = _selection(self.outputs[cond.node])
            if cond.label not in selected:
                return None, (
                    f"skipped: router {cond.node!r} selected {sorted(selected)}, not {cond.label!r}"
                )
        data: dict[str, Any] = {}
        if node.whole is not None:
            ok, value = self._value(node.whole)
            if not ok:
                return None, f"skipped: its input comes from {node.whole}, which did not succeed"
            if not node.bindings:
                return value, None  # the producer's model itself; coerced once if needed
            data.update(value.__dict__ if isinstance(value, BaseModel) else value)
        for name, binding in node.bindings.items():
            if isinstance(binding, Const):
                data[name] = binding.value
            elif isinstance(binding, ListBinding):
                items = [v for ok, v in map(self._value, binding.items) if ok]
                if not items:
                    return None, (f"skipped: none of the producers of field {name!r} succeeded")
                data[name] = items
            else:
                ok, value = self._value(binding)
                if not ok:
                    fields = self.p.agents[node_id].input_model.model_fields
                    if is_optional(fields[name].annotation):
                        value = None
                    else:
                        return None, (
                            f"skipped: field {name!r} comes from {binding}, which did not succeed"
                        )
                data[name] = value
        return data, None

    async def run_node(self, node_id: str) -> list[str] | None:
        """Run one node; return the consumers it made ready (the pool runs them next)."""
        state, p = self.state, self.p
        node = p.nodes[node_id]
        agent = p.agents[node_id]
        reused = state.reuse.get(node_id)
        data, skip_reason = (None, None) if reused else self._gather(node_id)
        if reused is not None:
            output = _coerce(
                agent.output_model,
                state.store.get_value(reused.output_key),
                f"recorded output of node {node_id!r}",
            )
            for step_id, key, status in reused.subtree:
                state.records[step_id] = (key, status)
                state.events.emit("step_end", step_id, status=status, record=key, reused=True)
            self.status[node_id] = "ok"
            self.outputs[node_id] = output
            state.node_outcomes[node_id] = StepOutcome("ok", output, reused.record_key)
        elif data is None:
            state.events.emit("step_start", node_id)
            state.record_step(
                step_id=node_id,
                node=node_id,
                parent=None,
                agent=agent,
                input_key=None,
                output_key=None,
                decisions=[],
                children=[],
                status="skipped",
                error=None,
                reason=skip_reason,
                logical_time=p.depth[node_id],
            )
            self.status[node_id] = "skipped"
        else:
            outcome = await state.execute(
                step_id=node_id,
                node=node_id,
                parent=None,
                agent=agent,
                input_value=data,
                logical_time=p.depth[node_id],
                timeout=node.timeout,
                retry=node.retry,
            )
            self.status[node_id] = outcome.status
            state.node_outcomes[node_id] = outcome
            if outcome.status == "ok":
                assert outcome.output is not None
                self.outputs[node_id] = outcome.output
            elif not node.optional and state.failure is None:
                state.failed_node = node_id
                state.failure = ErrorInfo(
                    type=outcome.error_type,
                    message=f"node {node_id!r} failed: {outcome.error_message}",
                )
                assert self.tg is not None
                self.tg.cancel_scope.cancel()
                return None
        assert self.pool is not None
        ready = []
        for consumer in p.consumers[node_id]:
            self.remaining[consumer] -= 1
            if self.remaining[consumer] == 0:
                ready.append(consumer)
        self.unfinished -= 1
        if self.unfinished == 0:
            self.pool.close()
        return ready


def _selection(output: BaseModel) -> set[str]:
    branches = getattr(output, "branches", None)
    if branches is None:
        branch = getattr(output, "branch", None)
        return {branch} if isinstance(branch, str) else set()
    if isinstance(branches, str):
        return {branches}
    return {b for b in branches if isinstance(b, str)}


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
    origin: Mapping[str, str] | None = None,
    services: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run ``pipeline`` on ``inputs`` and record it in ``store``; return the result.

    A failed node does not raise: the result has status ``failed`` and the error. Bad inputs
    raise :class:`~orch.errors.InputError` before anything is written.

    ``resume`` names an earlier run of the same pipeline that crashed, was killed or failed:
    its inputs and seed are used (``inputs`` and ``seed`` must not be given), every node it
    finished is taken from its record without running again, its finished effects are served
    from the record, and the rest runs. The new run's root hash is the one an uninterrupted
    run would have had. ``origin`` is metadata for the event log (the CLI records the file
    the pipeline came from, so that ``orch replay`` can load it again). ``services`` are
    objects agents reach with ``ctx.service(name)`` (the model hub is ``"models"``); they are
    not part of the record, only the effects they make are.
    """
    if store is None:
        from traces.open import open_store

        store = open_store()
    if resume is None:
        return await _run(
            pipeline,
            inputs,
            store,
            seed,
            max_concurrency,
            run_id,
            perturb,
            clock,
            origin,
            services=services,
        )
    from .resume import prepare_resume  # keeps the common path free of resume's imports

    plan = prepare_resume(pipeline, store, resume, inputs, seed)
    return await _run(
        pipeline,
        plan.inputs,
        store,
        plan.seed,
        max_concurrency,
        run_id,
        perturb,
        clock,
        {**(origin or {}), "resumed_from": resume},
        mode="resume",
        source=plan.effects,
        reuse=plan.reuse,
        services=services,
    )


async def _run(
    pipeline: Pipeline,
    inputs: Mapping[str, Any] | None,
    store: ArtifactStore,
    seed: int,
    max_concurrency: int,
    run_id: str | None,
    perturb: Perturbation | None,
    clock: Callable[[], float],
    origin: Mapping[str, str] | None,
    *,
    mode: RunMode = "record",
    source: EffectSource | None = None,
    reuse: Mapping[str, ReusedStep] | None = None,
    services: Mapping[str, Any] | None = None,
) -> RunResult:
    if max_concurrency < 1:
        raise OrchError(f"max_concurrency is {max_concurrency}; fix: use 1 or more")
    values = validate_inputs(pipeline, inputs or {})
    run_id = run_id or new_run_id()
    state = RunState(pipeline, store, run_id, seed, max_concurrency, perturb, clock)
    state.mode = mode
    state.effect_source = source
    state.reuse = dict(reuse or {})
    state.services = dict(services or {})

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
        started_at=clock(),
        host=_HOST,
        orch_version=__version__,
    )
    store.write_run_head(run_id, orjson.dumps(head.sealed().model_dump(mode="json"), option=_OPTS))
    start: dict[str, Any] = {
        "pipeline": pipeline.name,
        "spec": spec_key,
        "seed": seed,
        "inputs": input_keys,
        "mode": mode,
    }
    if origin:
        start["origin"] = dict(sorted(origin.items()))
    state.events.emit("run_start", **start)

    scheduler = _Scheduler(state, values)
    await scheduler.run()

    # Nodes that never started because the run stopped still get a record: a reader must
    # be able to tell "did not run" from "lost".
    for node_id in pipeline.order:
        if node_id not in state.records:
            state.events.emit("step_start", node_id)
            state.record_step(
                step_id=node_id,
                node=node_id,
                parent=None,
                agent=pipeline.agents[node_id],
                input_key=None,
                output_key=None,
                decisions=[],
                children=[],
                status="cancelled",
                error=None,
                reason="not started: " + state._cancel_reason(),
                logical_time=pipeline.depth[node_id],
            )

    outputs: dict[str, Any] = {}
    output_keys: dict[str, str] = {}
    if state.failure is None:
        for name, ref in sorted(pipeline.outputs.items()):
            ok, value = scheduler._value(ref)
            if ok:
                outputs[name] = value
                output_keys[name] = store.put(canonical_bytes(value))

    steps = sorted((sid, key) for sid, (key, _) in state.records.items())
    status = "failed" if state.failure is not None else "ok"
    record = RunRecord(
        pipeline=pipeline.name,
        spec_hash=spec_key,
        inputs=input_keys,
        seed=seed,
        steps=steps,
        steps_root=steps_root(steps),
        outputs=output_keys,
        status=status,
        error=state.failure,
        plugins=dict(pipeline.plugins),
    )
    record_bytes = canonical_bytes(record)
    root_hash = store.put(record_bytes)
    assert root_hash == digest(record_bytes)
    state.events.emit("run_end", status=status, root_hash=root_hash)
    final = head.model_copy(
        update={
            "status": status,
            "root_hash": root_hash,
            "finished_at": clock(),
            "event_count": state.events.count,
            "event_head": state.events.head,
        }
    )
    store.write_run_head(run_id, orjson.dumps(final.sealed().model_dump(mode="json"), option=_OPTS))
    return RunResult(
        run_id=run_id,
        status=status,
        root_hash=root_hash,
        record=record,
        outputs=outputs,
        steps=dict(state.node_outcomes),
        error=state.failure,
        divergences=list(state.divergences),
    )


def run(pipeline: Pipeline, inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> RunResult:
    """Synchronous :func:`arun` (starts an event loop; do not call from async code)."""

    async def main() -> RunResult:
        return await arun(pipeline, inputs, **kwargs)

    return anyio.run(main)
