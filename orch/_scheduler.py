"""Running the steps of one run: the step executor and the scheduler, recording as they go.

A node starts as soon as every node it waits for has finished (no lock-step supersteps),
within a per-run concurrency limit. Every step, whatever its fate, ends in a StepRecord in the
store and a ``step_end`` event; a failure cancels the rest of the run and each cancelled or
never-started step is recorded as such, so the record is complete even for a failed run.
Each failed attempt of a retried step is an ``attempt`` event with its error.

What must never enter a hashed record: the run id, wall-clock time, completion order. The
run itself (its head, ledger entries, lease and final record) is :mod:`orch._runtime`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel, ValidationError

from orch._agent import Agent
from orch._ask import AwaitingAnswer, Question
from orch._context import Context, StepLog
from orch._effect_path import EffectPath, error_info
from orch._effects import EffectSource, RunMode
from orch._events import EventSink, log_tap
from orch._pipeline import Const, ListBinding, Pipeline
from orch._pool import WorkerPool
from orch._refs import InputRef, Ref
from orch._retry import RetryPolicy, call_with_retry, retryable
from orch._typecheck import is_optional
from orch.errors import OrchError, StepError, StepTimeoutError
from traces import (
    ArtifactStore,
    ErrorInfo,
    EventLog,
    StepStatus,
    canonical_bytes,
    step_record_bytes,
)

__all__ = [
    "Perturbation",
    "ReusedStep",
    "RunState",
    "Scheduler",
    "StepOutcome",
    "StepPlace",
    "coerce",
]

Perturbation = Callable[[str], Awaitable[None]]
"""Awaited with the step id just before a step records its result (tests use it to shuffle
completion order)."""

_NO_RETRY = RetryPolicy()

_KNOWN_BYTES = 512
"""Values this small that a run stored are remembered by their bytes (RunState.put_step_value)."""
_KNOWN_ENTRIES = 4096
"""At most this many are remembered (then forgotten all at once): memory stays bounded."""


@dataclass
class StepOutcome:
    status: str
    output: BaseModel | None = None
    record_key: str = ""
    error_type: str = ""
    error_message: str = ""
    waiting: AwaitingAnswer | None = None
    """What the step waits for (status ``waiting``): raised again by a parent's ctx.call."""


@dataclass(frozen=True)
class ReusedStep:
    """A node finished by an earlier run: its record key, output, and every record below it."""

    record_key: str
    output_key: str
    subtree: tuple[tuple[str, str, str], ...]
    """(step id, record key, status) of the node's step and all its descendants."""


@dataclass(slots=True)  # never changed once made; not frozen: a frozen __init__ costs 4x
class StepPlace:
    """Where a step stands in its run: what its record says whatever the step's fate."""

    step_id: str
    node: str
    """The top-level node the step belongs to (its own id for a node's step)."""
    parent: str | None
    agent: Agent[Any, Any]
    logical_time: int
    """Causal depth: the node's depth in the pipeline, plus one per child call."""

    @classmethod
    def of_node(cls, pipeline: Pipeline, node_id: str) -> StepPlace:
        """The place of a top-level node's step."""
        return cls(node_id, node_id, None, pipeline.agents[node_id], pipeline.depth[node_id])


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
        mode: RunMode = "record",
        source: EffectSource | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.run_id = run_id
        self.seed = seed
        self.max_concurrency = max_concurrency
        self.perturb = perturb
        self.clock = clock
        self.events = EventLog(store, run_id, clock)
        self.effects = EffectPath(store, self.events, mode, source)
        """How each effect is answered: made live, or served from a record."""
        self.records: dict[str, tuple[str, str]] = {}
        """Step id -> (record key, status)."""
        self.node_outcomes: dict[str, StepOutcome] = {}
        self.failure: ErrorInfo | None = None
        self.services: dict[str, Any] = {}
        self.reuse: dict[str, ReusedStep] = {}
        """Top-level nodes finished by the runs being resumed: taken, not run."""
        self.cancelled: str | None = None
        """Why the whole run was cancelled (an interrupt, a caller), once it was."""
        self.failed_node: str | None = None
        self.sink: EventSink | None = None
        """Who hears the run's events as they happen (``arun(on_event=...)``); never recorded."""
        self.room: Callable[[], Awaitable[None]] | None = None
        """Awaited before each step starts: the event consumer's backpressure."""
        # Why a step is being cancelled when the cause is local (a failed sibling, a parent's
        # deadline), keyed by the step whose scope was cancelled; read by _cancel_reason.
        self.cancel_causes: dict[str, str] = {}
        self.deadlines: dict[str, tuple[anyio.CancelScope, float]] = {}
        self.answers: dict[str, str] = {}
        """Question id -> answer artifact key: the answers this run was given or resumed with
        (:mod:`orch._ask`)."""
        self.questions: dict[str, Question] = {}
        """The questions steps asked and wait on, by id."""
        self.blocked: dict[str, str] = {}
        """Top-level nodes that cannot start until an answer comes -> why."""
        self._agent_refs: dict[int, tuple[Agent[Any, Any], dict[str, str]]] = {}
        self._known: dict[bytes, str] = {}
        """Bytes of small values this run stored -> their keys (see put_step_value)."""

    # -- recording ---------------------------------------------------------------------------

    def put_step_value(self, value: BaseModel) -> str:
        """Store a step's input or output; return its key. Small values recur within a run (a
        chain hands each value on as the next step's input, a fan-out gives its steps one
        input): one this run stored already is found by its bytes, not hashed and stored
        again. Equal bytes have the same key, so nothing recorded changes."""
        data = canonical_bytes(value)
        key = self._known.get(data)
        if key is None:
            key = self.store.put(data)
            if len(data) <= _KNOWN_BYTES:
                if len(self._known) >= _KNOWN_ENTRIES:
                    self._known.clear()
                # A copy of the bytes' own size: orjson's output is kept in a larger block.
                self._known[bytes(memoryview(data))] = key
        return key

    def listen(self, sink: EventSink | None) -> None:
        """Give every event the log appends from now on, and the agents' custom events, to
        ``sink``; an object with an async ``wait_for_room()`` also holds steps back."""
        self.sink = sink
        self.effects.listen(sink, self.run_id, self.clock)  # effect_start and token events
        if sink is None:
            self.events.tap, self.room = None, None
            return
        self.events.tap = log_tap(sink)
        self.room = getattr(sink, "wait_for_room", None)

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
        place: StepPlace,
        status: StepStatus,
        *,
        log: StepLog | None = None,
        input_key: str | None = None,
        output_key: str | None = None,
        error: ErrorInfo | None = None,
        reason: str | None = None,
    ) -> str:
        """Write the step's record and its ``step_end`` event; return the record's key.
        ``log`` is what the step did (None for a step that never ran)."""
        record = step_record_bytes(
            step_id=place.step_id,
            node=place.node,
            parent=place.parent,
            agent=self._agent_ref(place.agent),
            input=input_key,
            output=output_key,
            effects=[] if log is None else [e for e in log.effects if e],
            decisions=[] if log is None else log.decisions,
            children=[] if log is None else log.children,
            status=status,
            error=error,
            reason=reason,
            logical_time=place.logical_time,
        )
        key = self.store.put(record)
        self.records[place.step_id] = (key, status)
        if log is None:
            self.events.emit("step_end", place.step_id, status=status, record=key)
        else:
            # How many times the agent ran (retries included): the event log's business, not
            # the record's, so a retried step still has the record of an unretried one.
            self.events.emit(
                "step_end", place.step_id, status=status, record=key, attempts=log.attempts
            )
        return key

    def record_unrun(self, node_id: str, status: StepStatus, reason: str) -> None:
        """Record a top-level node that never ran: skipped by a router, or never started
        because the run stopped (a reader must tell "did not run" from "lost")."""
        self.events.emit("step_start", node_id)
        self.record_step(StepPlace.of_node(self.pipeline, node_id), status, reason=reason)

    # -- executing one step -----------------------------------------------------------------

    async def execute(
        self,
        place: StepPlace,
        input_value: BaseModel | Mapping[str, Any],
        *,
        timeout: float | None,
        retry: RetryPolicy,
    ) -> StepOutcome:
        """Run one step to a record. Never raises, except cancellation (after recording)."""
        step_id, agent = place.step_id, place.agent
        if self.room is not None:
            await self.room()
        self.events.emit("step_start", step_id)
        log = StepLog()
        input_key: str | None = None
        try:
            inp = coerce(agent.input_model, input_value, "input", agent.name)
            input_key = self.put_step_value(inp)
            if timeout is None and retry.max_attempts == 1:
                # The common case, inline (_attempt's, without timeout or retry): every layer
                # of calls here is paid once per step.
                log.attempts = 1
                ctx = Context(self, step_id, place.node, agent, place.logical_time, log)
                out = await agent.run(inp, ctx)
                output = coerce(agent.output_model, out, "output", agent.name)
            else:
                output = await self._output(place, inp, log, timeout, retry)
            self.effects.check_all_made(step_id, len(log.effects))
            if self.perturb is not None:
                await self.perturb(step_id)
            output_key = self.put_step_value(output)
        except anyio.get_cancelled_exc_class():
            reason = self._cancel_reason(step_id)
            self.record_step(place, "cancelled", log=log, input_key=input_key, reason=reason)
            raise
        except AwaitingAnswer as waiting:
            self.questions.setdefault(waiting.question.id, waiting.question)
            reason = str(waiting)
            key = self.record_step(place, "waiting", log=log, input_key=input_key, reason=reason)
            return StepOutcome("waiting", None, key, "Waiting", reason, waiting)
        except Exception as exc:
            info = error_info(exc)
            key = self.record_step(place, "failed", log=log, input_key=input_key, error=info)
            return StepOutcome("failed", None, key, info.type, info.message)
        key = self.record_step(place, "ok", log=log, input_key=input_key, output_key=output_key)
        return StepOutcome("ok", output, key)

    async def _output(
        self,
        place: StepPlace,
        inp: BaseModel,
        log: StepLog,
        timeout: float | None,
        retry: RetryPolicy,
    ) -> BaseModel:
        """The step's output, from as many attempts as its retry policy allows."""

        async def attempt(n: int) -> BaseModel:
            try:
                return await self._attempt(place, inp, log, timeout)
            except Exception as exc:
                # Every failed attempt is kept, with its error, in the event log: a retried
                # step's record stays the record of an unretried one, and the log says what
                # it went through.
                info = error_info(exc)
                self.events.emit(
                    "attempt",
                    place.step_id,
                    attempt=n,
                    error={"type": info.type, "message": info.message},
                    retried=n < retry.max_attempts and retryable(exc, retry.retry_on),
                )
                raise

        output, _ = await call_with_retry(retry, attempt)
        return output

    async def _attempt(
        self, place: StepPlace, inp: BaseModel, log: StepLog, timeout: float | None
    ) -> BaseModel:
        """Run the agent once (within ``timeout``, if any); return its output, checked."""
        step_id, agent = place.step_id, place.agent
        log.attempts += 1
        ctx = Context(self, step_id, place.node, agent, place.logical_time, log)
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
        return coerce(agent.output_model, out, "output", agent.name)

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
        return f"cancelled: {self.cancelled or 'the run was cancelled'}"

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
        place = StepPlace(step_id, parent.node_id, parent.step_id, agent, parent.logical_time + 1)
        return await self.execute(place, input_value, timeout=timeout, retry=retry or _NO_RETRY)


_plain_validate: dict[type[BaseModel], bool] = {}
"""Model class -> whether it validates with BaseModel's own ``model_validate``."""
_MODEL_VALIDATE = BaseModel.model_validate.__func__  # type: ignore[attr-defined]


def coerce(model: type[BaseModel], value: Any, what: str, agent: str | None = None) -> BaseModel:
    """``value`` as a ``model`` instance, or a StepError naming ``what`` it is (the ``input``
    or ``output`` of the agent named ``agent``, when given) and the first problem."""
    if type(value) is model:
        return value
    try:
        plain = _plain_validate.get(model)
        if plain is None:
            validate = model.model_validate
            plain = _plain_validate[model] = getattr(validate, "__func__", None) is _MODEL_VALIDATE
        if plain:
            # What model_validate calls, with the same (default) arguments, without its
            # Python wrapper: one step validates its input, and often its output.
            return model.__pydantic_validator__.validate_python(value)  # type: ignore[no-any-return]
        return model.model_validate(value)
    except ValidationError as exc:
        if agent is not None:  # named here, not by each caller: most values need no message
            what = f"{what} of agent {agent!r}"
        raise StepError(
            f"{what} is not a valid {model.__name__}: {exc.error_count()} error(s), first: "
            f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}; fix: return/bind a "
            f"{model.__name__}"
        ) from exc


class Scheduler:
    """Starts each node when its producers are done; resolves bindings; handles skips."""

    def __init__(self, state: RunState, inputs: Mapping[str, Any]) -> None:
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

    def _block_after(self, node_id: str) -> None:
        """Node ``node_id`` waits for an answer: every node downstream of it can never start
        in this run. They are counted as finished here (the run ends once nothing else can
        run) and recorded ``waiting`` by the run's end."""
        state = self.state
        why = f"not started: waits for node {node_id!r}, which waits for an answer"
        newly = 0
        todo = list(self.p.consumers[node_id])
        while todo:
            later = todo.pop()
            if later not in state.blocked:
                state.blocked[later] = why
                newly += 1
                todo.extend(self.p.consumers[later])
        self.unfinished -= 1 + newly
        if self.unfinished == 0:
            assert self.pool is not None
            self.pool.close()

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
            output = coerce(
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
            state.record_unrun(node_id, "skipped", skip_reason or "skipped")
            self.status[node_id] = "skipped"
        else:
            outcome = await state.execute(
                StepPlace.of_node(p, node_id), data, timeout=node.timeout, retry=node.retry
            )
            self.status[node_id] = outcome.status
            state.node_outcomes[node_id] = outcome
            if outcome.status == "waiting":
                self._block_after(node_id)
                return None
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
