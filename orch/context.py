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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from pydantic import BaseModel

from traces import Decision

from .errors import ChildStepError, OrchError
from .pool import WorkerPool

if TYPE_CHECKING:
    from .agent import Agent
    from .retry import RetryPolicy
    from .runtime import RunState

__all__ = ["Context", "step_seed"]

OutT = TypeVar("OutT", bound=BaseModel)


def step_seed(run_seed: int, step_id: str) -> int:
    """The seed of a step's RNG: a hash of (run seed, step id), stable across processes."""
    h = hashlib.sha256(f"{run_seed}\x00{step_id}".encode()).digest()
    return int.from_bytes(h[:8], "big")


class Context:
    """Handed to ``Agent.run``; see the module docstring for what it records."""

    __slots__ = (
        "_children",
        "_decisions",
        "_next_call",
        "_rng",
        "_state",
        "_tick",
        "agent",
        "logical_time",
        "node_id",
        "step_id",
    )

    def __init__(
        self, state: RunState, step_id: str, node_id: str, agent: Agent[Any, Any], logical_time: int
    ) -> None:
        self._state = state
        self.step_id = step_id
        """This step's id: the node id, or ``parent/index`` for a child call."""
        self.node_id = node_id
        self.agent = agent
        self.logical_time = logical_time
        """Causal depth of the step: the only clock an agent may read."""
        self._rng: random.Random | None = None
        self._next_call = 0
        self._tick = 0
        self._children: list[str] = []
        self._decisions: list[str] = []

    # -- identity and determinism ----------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id (metadata: never put it into an output, or runs stop comparing)."""
        return self._state.run_id

    @property
    def seed(self) -> int:
        return self._state.seed

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
        chosen_list = [chosen] if isinstance(chosen, str) else list(chosen)
        unknown = [c for c in chosen_list if c not in candidates]
        if unknown:
            raise OrchError(
                f"step {self.step_id!r}: decide() chose {unknown} which are not among the "
                f"candidates {list(candidates)}; fix: choose from the candidates"
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
        self._decisions.append(key)
        self._state.events.emit("decision", self.step_id, decision=key, chosen=chosen_list)
        return decision

    def put_artifact(self, value: Any) -> str:
        """Store a value as a content-addressed artifact; return its key."""
        return self._state.store.put_value(value)

    def get_artifact(self, key: str) -> Any:
        """Read back a stored artifact (verified against its key)."""
        return self._state.store.get_value(key)

    # -- child calls -----------------------------------------------------------------------

    def _child_id(self) -> str:
        index = self._next_call
        self._next_call += 1
        step_id = f"{self.step_id}/{index}"
        self._children.append(step_id)
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
        outcome = await self._state.execute_child(self, step_id, agent, input, timeout, retry)
        if outcome.status != "ok":
            raise ChildStepError(step_id, outcome.error_type, outcome.error_message)
        return outcome.output  # type: ignore[return-value]

    async def parallel(
        self,
        calls: Sequence[tuple[Agent[Any, Any], BaseModel | Mapping[str, Any]]],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[Any]:
        """Run several child calls concurrently; outputs come back in call order.

        Step ids are assigned in list order before anything starts, so they never depend on
        which child finishes first. At most ``max_concurrency`` children of one call run at
        once. If one child fails, the others are cancelled and a
        :class:`~orch.errors.ChildStepError` names the failed one.
        """
        state = self._state
        ids = [self._child_id() for _ in calls]
        results: list[Any] = [None] * len(calls)
        failure: list[ChildStepError] = []

        async def one(i: int) -> None:
            agent, inp = calls[i]
            outcome = await state.execute_child(self, ids[i], agent, inp, timeout, retry)
            if outcome.status == "ok":
                results[i] = outcome.output
            elif outcome.status == "failed" and not failure:
                failure.append(ChildStepError(ids[i], outcome.error_type, outcome.error_message))
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            pool = WorkerPool(tg, one, state.max_concurrency)
            for i in range(len(calls)):
                pool.submit(i)
            pool.close()
        if failure:
            raise failure[0]
        return results

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
