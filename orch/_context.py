"""The context an agent receives: its only door to the world.

Everything that could make a run differ between two executions goes through here and is
recorded: randomness (a per-step RNG seeded from the run seed and the step id), time (logical
time only), child agent calls (whose step ids derive from the parent step id and the call
index, never from completion order), decisions, and artifacts. A context belongs to one
attempt of one step; it must never be shared with another step or kept after the step ends.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
from pydantic import BaseModel

from orch._ask import DEADLINE_PRINCIPAL, Answer, AwaitingAnswer, Question
from orch._events import RunEvent
from orch._gather import LANE, call_ended, gather_calls
from orch._pool import WorkerPool
from orch.errors import ChildStepError, OrchError, StepError
from traces import Decision, Encoded, canonical_bytes

if TYPE_CHECKING:
    from orch._agent import Agent
    from orch._retry import RetryPolicy
    from orch._scheduler import RunState

__all__ = ["Context", "StepLog", "step_seed"]

OutT = TypeVar("OutT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=BaseModel)
_loaded: dict[tuple[str, type[BaseModel]], BaseModel] = {}
R = TypeVar("R")


def step_seed(run_seed: int, step_id: str) -> int:
    """The seed of a step's RNG: a hash of (run seed, step id), stable across processes."""
    h = hashlib.sha256(f"{run_seed}\x00{step_id}".encode()).digest()
    return int.from_bytes(h[:8], "big")


class StepLog:
    """What a step has done so far, kept across its retry attempts.

    A retried attempt continues the numbering (child ids, effect indexes) where the failed
    one stopped, so no two calls of one step ever share an id, and the record lists all.
    """

    __slots__ = ("attempts", "children", "decisions", "effects", "next_call")

    def __init__(self) -> None:
        self.children: list[str] = []
        self.decisions: list[str] = []
        self.effects: list[str] = []
        self.next_call = 0
        self.attempts = 0
        """How many times the agent ran: the event log's business, never the record's."""


class Context:
    """Handed to ``Agent.run``; see the module docstring for what it records."""

    __slots__ = (
        "_asks",
        "_log",
        "_rng",
        "_state",
        "_tick",
        "agent",
        "logical_time",
        "node_id",
        "step_id",
    )

    def __init__(
        self,
        state: RunState,
        step_id: str,
        node_id: str,
        agent: Agent[Any, Any],
        logical_time: int,
        log: StepLog | None = None,
    ) -> None:
        self._state = state
        self.step_id = step_id
        """This step's id: the node id, or ``parent/index`` for a child call."""
        self.node_id = node_id
        self.agent = agent
        self.logical_time = logical_time
        """Causal depth of the step: the only clock an agent may read."""
        self._rng: random.Random | None = None
        self._tick = 0
        self._asks = 0
        self._log = log if log is not None else StepLog()

    # -- identity and determinism ----------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id (metadata: never put it into an output, or runs stop comparing)."""
        return self._state.run_id

    @property
    def seed(self) -> int:
        return self._state.seed

    @property
    def replaying(self) -> bool:
        """True when this run serves every effect from a record (``orch replay``): code that
        waits between attempts (a retry backoff) need not wait for served effects."""
        return self._state.effects.mode == "replay"

    def reserve_effect(self) -> int:
        """Take the next effect index now, for an :meth:`effect` made later with
        ``index=``. A reserved slot that is never used is left out of the record."""
        if LANE.get() is not None:
            self._in_order("an effect")
        self._log.effects.append("")
        return len(self._log.effects) - 1

    def _in_order(self, what: str) -> None:
        """Refuse to number ``what`` in a call of :meth:`gather` that has already waited:
        its place among the step's effects, children or decisions would be its place in
        completion order."""
        lane = LANE.get()
        if lane is not None and lane.opened and lane.log is self._log:
            raise OrchError(
                f"step {self.step_id!r}: {what} was started by a call given to ctx.gather() "
                "after that call first waited, so its place in the step would depend on which "
                "call finished first; fix: give gather one call per awaitable (await calls "
                "that depend on each other outside it), or reserve_effect() first"
            )

    def effect_record(self, index: int) -> str | None:
        """The key of the EffectRecord at ``index`` of this step, once that effect ended
        (None while it runs or when it never ran): where its request and response are."""
        effects = self._log.effects
        return effects[index] or None if 0 <= index < len(effects) else None

    def recorded_request(self, index: int) -> Any:
        """The request recorded at effect ``index`` of this step in the run being replayed
        or resumed, else None. For a caller that must build its request the way the record
        did (the tool broker takes from it which secret arguments were redacted)."""
        return self._state.effects.recorded_request(self.step_id, index)

    @property
    def effect_count(self) -> int:
        """How many effects this step has started: the index the next one will get."""
        return len(self._log.effects)

    @property
    def config(self) -> Any:
        """The running agent's config model."""
        return self.agent.config

    @property
    def rng(self) -> random.Random:
        """This step's private RNG, seeded from (run seed, step id)."""
        if self._rng is None:
            self._rng = random.Random(step_seed(self._state.seed, self.step_id))
        return self._rng

    def now(self) -> tuple[int, int]:
        """Logical time: (causal depth, tick), the tick counting calls within this step."""
        self._tick += 1
        return (self.logical_time, self._tick)

    # -- live events -------------------------------------------------------------------

    def emit(self, name: str, **data: Any) -> None:
        """Tell the run's caller something as it happens (progress, a partial answer): a
        ``custom`` event with ``name`` and ``data`` for ``orch.stream``/``on_event``. Never
        recorded and never hashed, so it may carry anything; with no listener it does nothing.
        A replay emits it again, since the agent runs again."""
        sink = self._state.sink
        if sink is not None:
            data["name"] = name
            state = self._state  # positional: keywords make a NamedTuple slower to build
            sink(RunEvent("custom", state.run_id, self.step_id, data, None, None, state.clock()))

    # -- records -----------------------------------------------------------------------

    def decide(
        self,
        *,
        candidates: Sequence[str],
        chosen: str | Sequence[str],
        reason: str,
        scores: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        state_version: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Record a routing decision with its evidence; return it."""
        if LANE.get() is not None:
            self._in_order("a decision")
        chosen_list = [chosen] if isinstance(chosen, str) else list(chosen)
        unknown = [c for c in chosen_list if c not in candidates]
        if unknown:
            raise OrchError(
                f"step {self.step_id!r}: decide() chose {unknown} which are not among the "
                f"candidates {list(candidates)}; fix: choose from the candidates"
            )
        if state_version is not None and not self._state.store.has(state_version):
            raise OrchError(
                f"step {self.step_id!r}: decide() names state version {state_version!r}, which "
                "is not in the run's store; fix: save the state (routers._state.save_state) "
                "before routing with it"
            )
        decision = Decision(
            router=self.agent.name,
            router_version=self.agent.version,
            candidates=list(candidates),
            scores=dict(scores or {}),
            chosen=chosen_list,
            reason=reason,
            parameters=dict(parameters or {}),
            state_version=state_version,
            evidence=dict(evidence or {}),
        )
        key = self._state.store.put_value(decision)
        self._log.decisions.append(key)
        self._state.events.emit("decision", self.step_id, decision=key, chosen=chosen_list)
        return decision

    async def ask(
        self,
        question: str,
        schema: type[ModelT],
        *,
        principals: Sequence[str] | None = None,
        deadline: float | None = None,
        default: ModelT | Mapping[str, Any] | None = None,
        escalate_to: Sequence[str] = (),
    ) -> ModelT:
        """Ask a person ``question`` and return their answer, a ``schema`` instance.

        With no answer yet, the step suspends here (let the exception through: it is not an
        error) and the run ends ``waiting`` once nothing else can run; an answer given later
        (``orch answer RUN key=value --as NAME``, :func:`orch.answer`) resumes it in any
        process, and this call then returns that answer, recorded as a decision naming who
        gave it. ``principals`` limits who may answer; after ``deadline`` seconds
        ``escalate_to`` may answer too, and ``default`` may be applied (``orch answer
        --default``). Ask before an effect that needs approval, not after: effects made before
        the pause are served from the record when the run resumes, never made twice."""
        if LANE.get() is not None:
            self._in_order("a question")
        index = self._asks
        self._asks += 1
        dumped = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
        q = Question(
            id=f"{self.step_id}#{index}",
            step=self.step_id,
            index=index,
            question=question,
            schema=schema.model_json_schema(),
            principals=None if principals is None else list(principals),
            deadline=deadline,
            default=None if dumped is None else dict(dumped),
            has_default=default is not None,
            escalate_to=list(escalate_to),
        )
        state = self._state
        q_key = state.store.put_value(q.stored())
        answer_key = state.answers.get(q.id)
        if answer_key is None:
            # Also in a replay: the recorded run waited here too, or its root hash says not.
            state.events.emit("ask", self.step_id, question=q_key, id=q.id)
            raise AwaitingAnswer(q, q_key)
        answer = Answer.model_validate(state.store.get_value(answer_key))
        if not q.may_answer(answer.by, overdue=True):
            raise StepError(
                f"step {self.step_id!r}: {answer.by!r} may not answer question {q.id} (it "
                f"accepts {q.principals}); fix: answer as one of them"
            )
        try:
            value = schema.model_validate(answer.value)
        except ValueError as exc:
            raise StepError(
                f"step {self.step_id!r}: the answer to question {q.id} is not a valid "
                f"{schema.__name__} ({str(exc).splitlines()[0]}); fix: answer as it asks"
            ) from None
        applied = "no answer by the deadline: its default applied"
        decision = Decision(
            router=self.agent.name,
            router_version=self.agent.version,
            candidates=list(dict.fromkeys([*(principals or ()), *escalate_to, answer.by])),
            chosen=[answer.by],
            reason=applied if answer.by == DEADLINE_PRINCIPAL else f"answered by {answer.by}",
            parameters={"kind": "answer", "question": q.id},
            evidence={
                "question": q_key,
                "asked": question,
                "answer": value.model_dump(mode="json"),
                "by": answer.by,
            },
        )
        key = state.store.put_value(decision)
        self._log.decisions.append(key)
        state.events.emit("decision", self.step_id, decision=key, chosen=[answer.by])
        return value

    def load(self, key: str, model: type[ModelT]) -> ModelT:
        """Read an artifact of the run's store by its key, validated as ``model``.

        For learned router state: a run names the state version it reads (in its input or
        config), and the version is the artifact's hash, so the read is as reproducible as
        the rest of the run and replay reads the very same bytes.
        """
        store = self._state.store
        if not isinstance(key, str) or not store.has(key):
            raise OrchError(
                f"step {self.step_id!r}: artifact {key!r} is not in the run's store; fix: save "
                "it first (routers._state.save_state for router state) and pass its key"
            )
        cacheable = bool(model.model_config.get("frozen"))
        if cacheable:
            found = _loaded.get((key, model))
            if found is not None:
                return cast(ModelT, found)
        try:
            value = model.model_validate(store.get_value(key))
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise OrchError(
                f"step {self.step_id!r}: artifact {key} is not a valid {model.__name__} "
                f"({first}); fix: pass the key of a {model.__name__}"
            ) from None
        if cacheable:
            # Content addressing makes the cache safe: a key names one byte string forever,
            # and a frozen model cannot be changed by the agent that reads it.
            if len(_loaded) >= 64:
                _loaded.pop(next(iter(_loaded)))
            _loaded[(key, model)] = value
        return value

    def service(self, name: str) -> Any:
        """A service the run was given (``arun(..., services={name: obj})``), such as the
        model hub under ``"models"``. Services reach the world only through ``ctx.effect``."""
        services = self._state.services
        if name not in services:
            have = ", ".join(sorted(services)) or "none"
            raise OrchError(
                f"step {self.step_id!r} asked for service {name!r}, which this run was not "
                f"given (services: {have}); fix: pass services={{{name!r}: ...}} to run/arun "
                "(the CLI passes 'models' from --models or ORCH_MODELS)"
            )
        return services[name]

    async def effect(
        self,
        kind: str,
        target: str,
        request: BaseModel | Mapping[str, Any] | Encoded,
        perform: Callable[[], Awaitable[R]],
        *,
        response_model: type[BaseModel] | None = None,
        meter: Callable[[R], tuple[Mapping[str, int], float | None]] | None = None,
        failure: Callable[[R], Mapping[str, str] | None] | None = None,
        index: int | None = None,
        rechunk: Callable[[R], Sequence[str]] | None = None,
        encode: Callable[[R], bytes] | None = None,
    ) -> R:
        """Make (or, in replay, look up) one call to the outside world; return its response.

        ``request`` must hold everything that determines the response (model, messages,
        parameters; never a key or a timestamp): its canonical hash is what replay compares.
        ``perform`` makes the call; its result (a pydantic model or plain JSON data) is
        recorded. ``response_model`` decodes a recorded response in replay; ``meter`` turns a
        response into (token usage, cost in USD) for the record.

        ``failure`` is for effects whose failures are results worth keeping (a tool's
        structured error): it maps a response to ``{"type": ..., "message": ...}`` when the
        response describes a failure, else None. Such a response is recorded whole with status
        ``failed``, and replay serves it back instead of raising, so the caller sees the very
        same structured failure offline.

        ``index`` is a slot taken earlier with :meth:`reserve_effect`, for a caller that must
        fix the effect's place in the step before it awaits anything (so that the order of
        effects never depends on how long those awaits take).

        ``rechunk`` cuts a response into its text's pieces (deterministically): when the
        effect is served from a record (replay, resume) and the run has a listener, the
        listener gets them as ``token`` events, as it got the live call's deltas
        (``orch.stream_delta``). It is never called otherwise, and must not raise.

        ``encode`` gives a live response's canonical bytes, for a caller that makes them
        faster than :func:`traces.canonical_bytes` for its own response type. They must be
        exactly ``canonical_bytes(response)`` (the response's key is their hash): a caller
        pins that with a test, and falls back to ``canonical_bytes`` for what it cannot
        encode.
        """
        state = self._state
        log = self._log
        req_key = state.store.put(canonical_bytes(request))
        if index is None:
            # The index is taken as the call starts, so effects a step makes concurrently get
            # distinct slots; a slot whose call was cancelled stays empty and is left out.
            index = self.reserve_effect()
        elif not (0 <= index < len(log.effects) and log.effects[index] == ""):
            raise OrchError(
                f"step {self.step_id!r}: effect index {index} was not reserved with "
                "reserve_effect(), or is already used; fix: pass the index reserve_effect() "
                "returned, once"
            )
        path = state.effects
        keeps = failure is not None
        try:
            slot = path.lookup(self.step_id, index, target, req_key, keeps_failures=keeps)
            if slot is not None:
                log.effects[index] = slot[0]  # the same record: same bytes, same key
                served = path.serve(
                    self.step_id,
                    index,
                    slot,
                    keeps_failures=keeps,
                    response_model=response_model,
                    rechunk=rechunk,
                )
                return cast(R, served)

            def done(key: str) -> None:
                log.effects[index] = key

            return await path.make(
                self.step_id,
                index,
                kind,
                target,
                req_key,
                perform,
                meter=meter,
                failure=failure,
                done=done,
                encode=encode,
            )
        finally:
            if LANE.get() is not None:  # served or made, waited or not: as in the record
                call_ended(log)

    def anchor(
        self, source: str, subject: str, seq: int, hash: str, *, defer: bool = False
    ) -> int | None:
        """Anchor the head of another hash chain (``source``: e.g. ``tool-audit``; ``subject``:
        which chain of it, e.g. a tenant) in the store's ledger, so that the chain cannot be
        rolled back or forked behind the ledger's checkpoints. Returns the ledger index, or
        None for a store that keeps no ledger.

        ``defer=True`` writes it later, with the latest deferred anchor of the same chain
        only (which covers the earlier ones through the chain's links): when this or another
        step of the run ends ok, before that step's record is written, else when the run
        ends, before its seal, or once 64 of the chain's anchors wait. Returns None then. An
        element whose anchor was deferred is unanchored until then: a caller defers only what
        the run's own records also show (an effect it recorded)."""
        return self._state.effects.anchor(
            source, subject, seq, hash, self._state.run_id, defer=defer
        )

    def put_artifact(self, value: Any) -> str:
        """Store a value as a content-addressed artifact; return its key."""
        return self._state.store.put_value(value)

    def has_artifact(self, key: str) -> bool:
        """True when the run's store holds ``key`` (so a large value whose key is known
        need not be encoded and hashed again to be stored)."""
        return self._state.store.has(key)

    def get_artifact(self, key: str) -> Any:
        """Read back a stored artifact (verified against its key)."""
        return self._state.store.get_value(key)

    # -- child calls -----------------------------------------------------------------------

    def _child_id(self) -> str:
        if LANE.get() is not None:
            self._in_order("a child call")
        log = self._log
        index = log.next_call
        log.next_call += 1
        step_id = f"{self.step_id}/{index}"
        log.children.append(step_id)
        return step_id

    async def call(
        self,
        agent: Agent[Any, OutT],
        input: BaseModel | Mapping[str, Any],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> OutT:
        """Run ``agent`` as a child step and return its output.

        Raises :class:`~orch.errors.ChildStepError` when the child fails.
        """
        step_id = self._child_id()
        try:
            outcome = await self._state.execute_child(self, step_id, agent, input, timeout, retry)
        finally:
            if LANE.get() is not None:  # a child served from a record may never wait
                call_ended(self._log)
        if outcome.waiting is not None:
            raise outcome.waiting  # the child waits for an answer: so does its parent
        if outcome.status != "ok":
            raise ChildStepError(step_id, outcome.error_type, outcome.error_message)
        return outcome.output  # type: ignore[return-value]

    async def parallel(
        self,
        calls: Sequence[tuple[Agent[Any, Any], BaseModel | Mapping[str, Any]]],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        fail_fast: bool = True,
    ) -> list[Any]:
        """Run several child calls concurrently; outputs come back in call order.

        Step ids are assigned in list order before anything starts, so they never depend on
        which child finishes first. At most ``max_concurrency`` children of one call run at
        once. If one child fails, the others are cancelled and a
        :class:`~orch.errors.ChildStepError` names the failed one; with ``fail_fast=False``
        every child runs to its end and a failed one's place in the list holds its
        :class:`~orch.errors.ChildStepError` instead of an output.
        """
        state = self._state
        ids = [self._child_id() for _ in calls]
        results: list[Any] = [None] * len(calls)
        failure: list[ChildStepError] = []
        waiting: dict[int, AwaitingAnswer] = {}

        async def one(i: int) -> None:
            agent, inp = calls[i]
            outcome = await state.execute_child(self, ids[i], agent, inp, timeout, retry)
            if outcome.status == "ok":
                results[i] = outcome.output
            elif outcome.waiting is not None:
                waiting[i] = outcome.waiting  # the others go on until they need it too
            elif not fail_fast:
                results[i] = ChildStepError(ids[i], outcome.error_type, outcome.error_message)
            elif outcome.status == "failed" and not failure:
                failure.append(ChildStepError(ids[i], outcome.error_type, outcome.error_message))
                for sibling in ids:
                    if sibling != ids[i]:
                        state.cancel_causes[sibling] = f"cancelled: sibling step {ids[i]!r} failed"
                tg.cancel_scope.cancel()

        try:
            async with anyio.create_task_group() as tg:
                pool = WorkerPool(tg, one, state.max_concurrency)
                for i in range(len(calls)):
                    pool.submit(i)
                pool.close()
        finally:
            if LANE.get() is not None:
                call_ended(self._log)
            if failure:
                for sibling in ids:
                    state.cancel_causes.pop(sibling, None)
        if failure:
            raise failure[0]
        if waiting:
            raise waiting[min(waiting)]
        return results

    async def gather(self, *calls: Awaitable[R], limit: int | None = None) -> list[R]:
        """Await ``calls`` concurrently (a step's fan-out of model calls, say); return their
        results in argument order.

        Effects are numbered in argument order whatever the completion order, so the record,
        replay and resume are those of the same calls awaited one after another: each call
        starts once the one before has first waited, which is when ``ctx.effect`` has taken
        its index. So each awaitable makes *one* call, or several before its first wait: an
        effect, child call or decision it starts after it has waited, or after its first
        effect or child call has ended (a served one never waits), raises
        :class:`~orch.errors.OrchError` (its place would follow timing). The step's RNG and
        logical clock are not guarded: draw before gathering.

        At most ``limit`` calls run at once (default: the run's ``max_concurrency``). A
        failure stops no other call: every call given runs to its end, then the failure of
        the earliest call given is raised as it was, never wrapped in an ``ExceptionGroup``
        (the later calls' failures are added to it as notes). A call that waits for an
        answer (:meth:`ask`) counts as one that failed. Calls given to ``gather`` must not
        call ``gather`` of this step again.

        So a failed step's record is that of the calls made one after another, each one's
        failure caught, whichever call ended first, and a replay makes that record again
        (stopping the others at the first failure would keep or drop them by timing). The
        price: the calls beside a failed one are still made, recorded and paid for, and the
        step fails once the slowest has ended.
        """
        bound = self._state.max_concurrency if limit is None else limit
        if len(calls) <= 1 and bound >= 1:  # one call has nothing to be ordered against
            return [await call for call in calls]
        return await gather_calls(self._log, self.step_id, calls, bound)

    async def map(
        self,
        agent: Agent[Any, OutT],
        inputs: Sequence[BaseModel | Mapping[str, Any]],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[OutT]:
        """Run ``agent`` once per input as parallel child steps (mapped fan-out)."""
        return await self.parallel([(agent, i) for i in inputs], timeout=timeout, retry=retry)
