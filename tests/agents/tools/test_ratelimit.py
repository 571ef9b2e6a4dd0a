"""Rate limits: the token bucket on a fake clock, one bucket per (tenant, principal, tool), and
through the broker, where a limited call is a recorded ``rate_limited`` attempt that is
retried after ``retry_after_s`` and replays without waiting."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from tool_servers import FakeClock

from agents.tools import (
    Principal,
    RateLimit,
    RateLimiter,
    ToolBroker,
    ToolCallError,
    ToolConfigError,
    ToolOutcome,
    tool,
)
from orch import Context, Pipeline, PipelineBuilder, agent, arun
from orch._replay import areplay
from traces import EffectRecord, MemoryStore, StepRecord

KEY = ("acme", "alice", "search")

# -- the token bucket ---------------------------------------------------------------------------


@pytest.mark.parametrize("per_second", [0.0, -1.0, math.inf, math.nan])
def test_a_rate_must_be_positive_and_finite(per_second: float) -> None:
    with pytest.raises(ToolConfigError, match="per_second must be > 0"):
        RateLimit(per_second)


def test_a_burst_must_be_at_least_one() -> None:
    with pytest.raises(ToolConfigError, match="burst must be >= 1"):
        RateLimit(1.0, burst=0)


def test_a_full_bucket_allows_a_burst_then_refuses_with_the_time_to_the_next_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = RateLimit(per_second=2.0, burst=3)
    assert [limiter.acquire(KEY, limit) for _ in range(3)] == [None, None, None]
    assert limiter.acquire(KEY, limit) == pytest.approx(0.5)  # one token per 0.5 s
    assert limiter.acquire(KEY, limit) == pytest.approx(0.5)  # a refusal takes nothing


def test_tokens_refill_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = RateLimit(per_second=4.0, burst=1)
    assert limiter.acquire(KEY, limit) is None
    clock.advance(0.125)  # half a token
    assert limiter.acquire(KEY, limit) == pytest.approx(0.125)
    clock.advance(0.125)
    assert limiter.acquire(KEY, limit) is None
    assert limiter.acquire(KEY, limit) == pytest.approx(0.25)


def test_waiting_the_retry_after_time_is_enough() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = RateLimit(per_second=2.0, burst=1)
    assert limiter.acquire(KEY, limit) is None
    wait = limiter.acquire(KEY, limit)
    assert wait == 0.5
    clock.advance(wait)
    assert limiter.acquire(KEY, limit) is None


def test_waiting_the_retry_after_time_is_enough_whatever_the_rounding() -> None:
    clock = FakeClock(1000.0)
    limiter = RateLimiter(clock)
    limit = RateLimit(per_second=7.0, burst=1)
    assert limiter.acquire(KEY, limit) is None
    clock.advance(0.1)
    wait = limiter.acquire(KEY, limit)
    assert wait is not None
    clock.advance(wait)
    assert limiter.acquire(KEY, limit) is None


def test_an_idle_bucket_holds_no_more_than_its_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = RateLimit(per_second=10.0, burst=2)
    assert limiter.acquire(KEY, limit) is None
    clock.advance(3600.0)
    assert [limiter.acquire(KEY, limit) for _ in range(3)] == [None, None, pytest.approx(0.1)]


def test_each_tenant_principal_and_tool_has_its_own_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = RateLimit(per_second=1.0, burst=1)
    assert limiter.acquire(("acme", "alice", "search"), limit) is None
    assert limiter.acquire(("acme", "alice", "search"), limit) is not None
    for other in [
        ("globex", "alice", "search"),  # another tenant's alice
        ("acme", "bob", "search"),  # another principal
        ("acme", "alice", "fetch"),  # another tool
    ]:
        assert limiter.acquire(other, limit) is None, other
        assert limiter.acquire(other, limit) is not None, other


def test_the_limiter_reads_only_the_clock_it_was_given() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.acquire(KEY, RateLimit(1.0))
    limiter.acquire(KEY, RateLimit(1.0))
    assert clock.reads == 2


# -- through the broker -------------------------------------------------------------------------


class Task(BaseModel):
    name: str = "task"


class Done(BaseModel):
    value: Any = None


Script = Callable[[Context], Awaitable[Any]]


@agent(name="rl-script", version="1")
async def scripted(task: Task, ctx: Context) -> Done:
    script: Script = ctx.service("script")
    return Done(value=await script(ctx))


def one_step() -> Pipeline:
    p = PipelineBuilder("ratelimit")
    p.node("s", scripted, name=p.input("name", str))
    return p.build()


ALICE = Principal(id="alice", tenant="acme", scopes={"*"})
BOB = Principal(id="bob", tenant="acme", scopes={"*"})


class Sleeps:
    """``anyio.sleep`` replaced: records the delays and moves the fake clock instead."""

    def __init__(self, clock: FakeClock, real: Callable[[float], Awaitable[None]]) -> None:
        self.clock = clock
        self.real = real
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)
        await self.real(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    fake = Sleeps(clock, anyio.sleep)
    monkeypatch.setattr(anyio, "sleep", fake)
    return fake


def counting_ping() -> tuple[Any, list[int]]:
    seen: list[int] = []

    @tool
    def ping(n: int) -> str:
        seen.append(n)
        return f"pong {n}"

    return ping, seen


def step_effects(store: MemoryStore, root: Any, step: str = "s") -> list[EffectRecord]:
    rec = StepRecord.model_validate(store.get_value(dict(root.record.steps)[step]))
    return [EffectRecord.model_validate(store.get_value(k)) for k in rec.effects]


def outcome(store: MemoryStore, eff: EffectRecord) -> ToolOutcome:
    assert eff.response is not None
    return ToolOutcome.model_validate(store.get_value(eff.response))


async def test_a_limited_call_is_recorded_retried_after_its_wait_and_replays_clean(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    ping, seen = counting_ping()
    broker = ToolBroker(
        [ping], rate_limits={"ping": RateLimit(per_second=2.0, burst=1)}, clock=clock
    )

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        first = await tools.call(ctx, "ping", {"n": 1})
        second = await tools.call(ctx, "ping", {"n": 2})  # the bucket is empty: wait 0.5 s
        return [first.text, second.text]

    services = {"tools": broker, "principal": ALICE, "script": script}
    store = MemoryStore()
    result = await arun(one_step(), {"name": "rl"}, store=store, services=services)
    assert result.ok, result.error
    assert result.outputs["s"].value == ["pong 1", "pong 2"]
    assert seen == [1, 2]
    assert sleeps.delays == [0.5]  # the retry waited retry_after_s, on the fake clock

    effects = step_effects(store, result)
    assert [(e.kind, e.target, e.status) for e in effects] == [
        ("tool", "ping", "ok"),
        ("tool", "ping", "failed"),
        ("tool", "ping", "ok"),
    ]
    assert [store.get_value(e.request)["attempt"] for e in effects] == [1, 1, 2]
    limited = outcome(store, effects[1])
    assert limited.error is not None
    assert limited.error.category == "rate_limited"
    assert limited.error.retryable
    assert limited.error.retry_after_s == 0.5
    assert not limited.invoked
    assert effects[1].error is not None
    assert effects[1].error.message.startswith("rate_limited: ")

    audit = broker.audit.entries("acme")
    assert [(a.effect, a.attempt, a.outcome, a.invoked) for a in audit] == [
        (0, 1, "ok", True),
        (1, 1, "rate_limited", False),
        (2, 2, "ok", True),
    ]
    assert audit[1].retryable

    # Replay: served from the record, with a limiter that would refuse everything, no waiting.
    sleeps.delays.clear()
    frozen = ToolBroker(
        [counting_ping()[0]],
        rate_limits={"ping": RateLimit(per_second=1e-6, burst=1)},
        clock=FakeClock(),
    )
    report = await areplay(one_step(), result.run_id, store, services={**services, "tools": frozen})
    assert report.clean, [d.describe() for d in report.divergences]
    assert report.result.root_hash == result.root_hash
    assert report.result.outputs["s"].value == ["pong 1", "pong 2"]
    assert sleeps.delays == []
    assert frozen.audit.entries("acme") == []


async def test_a_limit_that_outlasts_the_attempts_fails_with_retry_after(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    ping, seen = counting_ping()
    broker = ToolBroker(
        [ping],
        rate_limits={"ping": RateLimit(per_second=2.0, burst=1)},
        clock=clock,
        max_backoff_s=0.1,  # each wait is capped below the 0.5 s the bucket needs
    )

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        await tools.call(ctx, "ping", {"n": 1})
        try:
            await tools.call(ctx, "ping", {"n": 2})
        except ToolCallError as exc:
            return {"attempts": exc.attempts, "error": exc.error.model_dump(mode="json")}
        raise AssertionError("the second call was not limited")

    services = {"tools": broker, "principal": ALICE, "script": script}
    store = MemoryStore()
    result = await arun(one_step(), {"name": "rl"}, store=store, services=services)
    assert result.ok, result.error
    value = result.outputs["s"].value
    assert value["attempts"] == 3
    assert value["error"]["category"] == "rate_limited"
    assert value["error"]["retry_after_s"] == pytest.approx(0.3)  # 0.6 token short at 2/s
    assert sleeps.delays == [0.1, 0.1]
    assert seen == [1]
    effects = step_effects(store, result)
    assert [e.status for e in effects] == ["ok", "failed", "failed", "failed"]
    assert [a.outcome for a in broker.audit.entries("acme")] == ["ok"] + ["rate_limited"] * 3

    sleeps.delays.clear()
    report = await areplay(
        one_step(), result.run_id, store, services={**services, "tools": ToolBroker([ping])}
    )
    assert report.clean, [d.describe() for d in report.divergences]
    assert report.result.outputs["s"].value == value
    assert sleeps.delays == []
    assert seen == [1]


async def test_principals_do_not_share_a_bucket_through_the_broker(clock: FakeClock) -> None:
    ping, seen = counting_ping()
    broker = ToolBroker(
        [ping],
        default_rate_limit=RateLimit(per_second=1.0, burst=1),
        clock=clock,
        max_attempts=1,
    )

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        out = [(await tools.call(ctx, "ping", {"n": 1})).text]
        out.append((await tools.call(ctx, "ping", {"n": 2}, principal=BOB)).text)
        try:
            await tools.call(ctx, "ping", {"n": 3})
        except ToolCallError as exc:
            out.append(exc.error.category)
        return out

    services = {"tools": broker, "principal": ALICE, "script": script}
    result = await arun(one_step(), {"name": "rl"}, store=MemoryStore(), services=services)
    assert result.ok, result.error
    assert result.outputs["s"].value == ["pong 1", "pong 2", "rate_limited"]
    assert seen == [1, 2]
    assert [(a.principal, a.outcome) for a in broker.audit.entries("acme")] == [
        ("alice", "ok"),
        ("bob", "ok"),
        ("alice", "rate_limited"),
    ]
