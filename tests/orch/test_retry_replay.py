"""A step retried because an effect failed replays to the same records: the replayed failure
(:class:`~orch.errors.RecordedEffectError`, naming the recorded type) is retried as the live
one was, by name or as a subclass of a type the policy names."""

from __future__ import annotations

import orjson
import pytest
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, RetryableError, RetryPolicy, agent, arun
from orch._retry import retryable
from orch.errors import RecordedEffectError, StepTimeoutError
from orch.testing import aassert_replays_clean
from traces import MemoryStore


class Num(BaseModel):
    x: int


class Wobble(RetryableError):
    """A transient failure of a type of this module (recorded by its dotted path)."""


def pipeline(error: type[Exception], retry_on: tuple[type[BaseException], ...]) -> Pipeline:
    tries = [0]

    @agent(name="flaky-effect", version="1")
    async def flaky(n: Num, ctx: Context) -> Num:
        tries[0] += 1
        first = tries[0] == 1

        async def call() -> int:
            if first:
                raise error("the model went away")
            return n.x * 2

        return Num(x=await ctx.effect("model", "m", {"x": n.x}, call))

    p = PipelineBuilder("retry-replay")
    retry = RetryPolicy(max_attempts=3, retry_on=retry_on, initial_wait=0, max_wait=0)
    p.node("step", flaky, x=p.input("x", int), retry=retry)
    return p.build()


@pytest.mark.parametrize(
    ("error", "retry_on"),
    [
        (ConnectionError, (ConnectionError,)),  # a builtin, recorded by its bare name
        (ConnectionResetError, (OSError,)),  # a builtin subclass of the type named
        (Wobble, (RetryableError,)),  # a dotted path, a subclass of the type named
        (Wobble, (Wobble,)),
    ],
)
async def test_a_step_retried_after_a_failed_effect_replays_clean(
    error: type[Exception], retry_on: tuple[type[BaseException], ...]
) -> None:
    store = MemoryStore()
    live = pipeline(error, retry_on)
    result = await arun(live, {"x": 4}, store=store, seed=1)
    assert result.ok, result.error
    events = [orjson.loads(line) for line in store.read_events(result.run_id)]
    attempts = [e for e in events if e["type"] == "attempt"]
    assert [(e["data"]["attempt"], e["data"]["retried"]) for e in attempts] == [(1, True)]
    # A fresh pipeline whose agent would fail again live: replay must answer from the record.
    replayed = await aassert_replays_clean(result, store=store, pipeline=pipeline(error, retry_on))
    assert replayed.root_hash == result.root_hash


def test_retryable_matches_a_recorded_failure_by_its_type() -> None:
    assert retryable(RecordedEffectError("ConnectionError", "x"), (ConnectionError,))
    assert retryable(RecordedEffectError("ConnectionResetError", "x"), (OSError,))
    assert retryable(RecordedEffectError("orch.errors.StepTimeoutError", "x"), (TimeoutError,))
    assert retryable(RecordedEffectError(f"{__name__}.Wobble", "x"), (RetryableError,))
    assert retryable(StepTimeoutError("late"), (RetryableError,))
    # Not retried: another type, a type of a module never imported (nothing is imported for
    # a name read from a record), a name that is not a class.
    assert not retryable(RecordedEffectError("ValueError", "x"), (ConnectionError,))
    assert not retryable(RecordedEffectError("no_such_pkg.mod.Error", "x"), (RetryableError,))
    assert not retryable(RecordedEffectError("os.path", "x"), (OSError,))
    assert not retryable(RecordedEffectError("print", "x"), (OSError,))
    assert not retryable(ValueError("bug"), (ConnectionError,))
