"""``Context.gather``: a step's calls made at once, numbered in argument order.

Effects gathered by a step keep their indexes (and so the run's root hash) whatever order
they complete in, which a gate that releases the calls in a hypothesis-chosen order checks;
the run verifies and replays clean. Failures come back as the exception raised, never an
exception group; a call that numbers something after its first wait is refused."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from gated_calls import Gate, gated_run
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, RetryPolicy, RunResult, agent, arun
from orch.testing import aassert_replays_clean
from traces import EffectRecord, MemoryStore, StepRecord, verify_run


class Fan(BaseModel):
    n: int
    fail: list[int] = []
    """Calls that raise (a ValueError naming the call)."""


class Out(BaseModel):
    values: list[int]


SEQUENTIAL = [False]
"""Make the calls one after another instead (the record must be the same)."""


@agent(name="fan", version="1")
async def fan(inp: Fan, ctx: Context) -> Out:
    gate: Gate | None = ctx.service("gate")

    async def call(i: int) -> int:
        async def perform() -> dict[str, int]:
            if gate is not None:
                await gate.hold(f"call {i}")
            if i in inp.fail:
                raise ValueError(f"call {i} failed")
            return {"value": i * i}

        reply = await ctx.effect("model", f"m{i % 2}", {"call": i}, perform)
        return int(reply["value"])

    if SEQUENTIAL[0]:
        values = [await call(i) for i in range(inp.n)]
    else:
        values = await ctx.gather(*(call(i) for i in range(inp.n)))
    return Out(values=values)


def pipeline() -> Pipeline:
    p = PipelineBuilder("gather")
    p.node("fan", fan, n=p.input("n", int), fail=p.input("fail", list[int]))
    return p.build()


async def run(n: int, gate: Gate | None, fail: Sequence[int] = ()) -> tuple[RunResult, MemoryStore]:
    store = MemoryStore()

    async def go() -> RunResult:
        return await arun(
            pipeline(), {"n": n, "fail": list(fail)}, store=store, seed=1, services={"gate": gate}
        )

    return (await (go() if gate is None else gated_run(gate, go))), store


def effects(store: MemoryStore, result: RunResult) -> list[EffectRecord]:
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["fan"]))
    return [EffectRecord.model_validate(store.get_value(k)) for k in rec.effects]


async def sequential_root(n: int) -> str:
    SEQUENTIAL[0] = True
    try:
        result, _ = await run(n, None)
    finally:
        SEQUENTIAL[0] = False
    return result.root_hash


def reversed_order(labels: list[str]) -> Sequence[int]:
    return range(len(labels) - 1, -1, -1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=2, max_value=7), data=st.data())
def test_root_hash_is_that_of_the_calls_in_turn_for_every_completion_order(
    n: int, data: st.DataObject
) -> None:
    def chosen(labels: list[str]) -> Sequence[int]:
        return data.draw(st.permutations(range(len(labels))), label="release order")

    async def check() -> None:
        gate = Gate([n], chosen)
        result, store = await run(n, gate)
        assert result.ok, result.error
        assert result.outputs["fan"].values == [i * i for i in range(n)]
        assert [e.index for e in effects(store, result)] == list(range(n))
        assert [e.target for e in effects(store, result)] == [f"m{i % 2}" for i in range(n)]
        assert result.root_hash == await sequential_root(n)
        assert verify_run(store, result.run_id).ok
        await aassert_replays_clean(
            result, store=store, pipeline=pipeline(), services={"gate": None}
        )

    anyio.run(check)


async def test_calls_overlap_and_start_in_argument_order() -> None:
    gate = Gate([4], reversed_order)
    result, _ = await run(4, gate)
    assert result.ok, result.error
    assert gate.most_waiting == 4
    assert gate.arrivals == [f"call {i}" for i in range(4)]
    assert gate.released == [f"call {i}" for i in (3, 2, 1, 0)]


async def test_limit_bounds_the_calls_at_once() -> None:
    @agent(name="fan-limited", version="1")
    async def limited(inp: Fan, ctx: Context) -> Out:
        gate: Gate = ctx.service("gate")

        async def call(i: int) -> int:
            async def perform() -> int:
                await gate.hold(f"call {i}")
                return i

            return await ctx.effect("model", "m", {"call": i}, perform)

        return Out(values=await ctx.gather(*(call(i) for i in range(inp.n)), limit=2))

    p = PipelineBuilder("limited")
    p.node("fan", limited, n=p.input("n", int), fail=p.input("fail", list[int]))
    gate = Gate([2, 1, 1], reversed_order)

    async def go() -> RunResult:
        return await arun(p.build(), {"n": 4, "fail": []}, services={"gate": gate})

    result = await gated_run(gate, go)
    assert result.ok, result.error
    assert result.outputs["fan"].values == [0, 1, 2, 3]
    assert gate.most_waiting == 2
    assert gate.arrivals == [f"call {i}" for i in range(4)]  # started in argument order


@pytest.mark.parametrize(
    ("order", "recorded"),
    [
        ([1, 0, 2], [(1, "failed")]),  # calls 0 and 2 were cancelled: left out of the record
        ([0, 2, 1], [(0, "ok"), (1, "failed"), (2, "ok")]),  # they had ended: kept
    ],
)
async def test_one_failure_is_raised_as_it_is_and_cancels_the_rest(
    order: list[int], recorded: list[tuple[int, str]]
) -> None:
    gate = Gate([3], lambda labels: order)
    result, store = await run(3, gate, fail=[1])
    assert not result.ok and result.error is not None
    assert result.error.type == "ValueError"  # not an ExceptionGroup
    assert result.error.message.endswith("call 1 failed")
    assert [(e.index, e.status) for e in effects(store, result)] == recorded
    assert gate.released[0] == f"call {order[0]}"


async def test_a_failure_before_the_first_wait_stops_the_calls_not_started() -> None:
    result, store = await run(4, None, fail=[1])
    assert not result.ok and result.error is not None
    assert result.error.message.endswith("call 1 failed")
    # as the calls made in turn: call 0 made, call 1 failed, 2 and 3 never started
    assert [(e.index, e.status) for e in effects(store, result)] == [(0, "ok"), (1, "failed")]
    SEQUENTIAL[0] = True
    try:
        in_turn, _ = await run(4, None, fail=[1])
    finally:
        SEQUENTIAL[0] = False
    assert in_turn.root_hash == result.root_hash


class Boom(Exception):
    pass


async def test_the_earliest_failed_call_wins_when_several_fail_at_once() -> None:
    events = [anyio.Event() for _ in range(3)]
    waiting: list[int] = []
    never = [anyio.Event()]

    @agent(name="fan-boom", version="1")
    async def boom(inp: Fan, ctx: Context) -> Out:
        async def call(i: int) -> int:
            waiting.append(i)
            await (events[i] if i < 2 else never[0]).wait()
            raise Boom(f"call {i}")

        return Out(values=await ctx.gather(*(call(i) for i in range(3))))

    p = PipelineBuilder("boom")
    p.node("fan", boom, n=p.input("n", int), fail=p.input("fail", list[int]))

    async def release() -> None:
        while len(waiting) < 3:
            await anyio.lowlevel.checkpoint()
        events[1].set()  # both fail in the same turn of the loop: call 1 first
        events[0].set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(release)
        result = await arun(p.build(), {"n": 3, "fail": []})
    assert result.error is not None
    assert result.error.type.endswith("Boom") and result.error.message.endswith("call 0")


async def test_results_come_back_in_argument_order_for_calls_that_record_nothing() -> None:
    """Calls that make no effect: their values in argument order, whatever ends first."""
    gate = Gate([3], reversed_order)
    seen: list[int] = []

    @agent(name="fan-plain", version="1")
    async def plain(inp: Fan, ctx: Context) -> Out:
        async def call(i: int) -> int:
            await gate.hold(f"call {i}")
            seen.append(i)
            return 10 + i

        return Out(values=await ctx.gather(*(call(i) for i in range(3))))

    p = PipelineBuilder("plain")
    p.node("fan", plain, n=p.input("n", int), fail=p.input("fail", list[int]))

    async def go() -> RunResult:
        return await arun(p.build(), {"n": 3, "fail": []})

    result = await gated_run(gate, go)
    assert result.outputs["fan"].values == [10, 11, 12]
    assert seen == [2, 1, 0]


def _late_pipeline(shape: str) -> Pipeline:
    @agent(name=f"late-{shape}", version="1")
    async def late(inp: Fan, ctx: Context) -> Out:
        async def answer() -> int:
            await anyio.lowlevel.checkpoint()
            return 1

        async def call(i: int) -> int:
            if shape == "reserved":
                index = ctx.reserve_effect()
                await anyio.lowlevel.checkpoint()
                return await ctx.effect("model", "m", {"i": i}, answer, index=index)
            if shape == "two-in-turn":
                await ctx.effect("model", "m", {"i": i, "part": 1}, answer)
            else:
                await anyio.lowlevel.checkpoint()
            if shape == "decision":
                ctx.decide(candidates=["a"], chosen="a", reason="late")
                return 0
            return await ctx.effect("model", "m", {"i": i}, answer)

        return Out(values=await ctx.gather(*(call(i) for i in range(2))))

    p = PipelineBuilder(f"late-{shape}")
    p.node("fan", late, n=p.input("n", int), fail=p.input("fail", list[int]))
    return p.build()


@pytest.mark.parametrize(
    ("shape", "what"),
    [("wait-first", "an effect"), ("two-in-turn", "an effect"), ("decision", "a decision")],
)
async def test_numbering_after_the_first_wait_is_refused(shape: str, what: str) -> None:
    result = await arun(_late_pipeline(shape), {"n": 2, "fail": []})
    assert result.error is not None and result.error.type == "orch.errors.OrchError"
    assert f"{what} was started by a call given to ctx.gather() after" in result.error.message
    assert "fix:" in result.error.message


async def test_an_index_reserved_before_the_first_wait_may_be_used_after_it() -> None:
    store = MemoryStore()
    p = _late_pipeline("reserved")
    result = await arun(p, {"n": 2, "fail": []}, store=store)
    assert result.ok, result.error
    recorded = effects(store, result)
    assert [(e.index, e.request) for e in recorded] == [
        (0, store.put_value({"i": 0})),
        (1, store.put_value({"i": 1})),
    ]
    await aassert_replays_clean(result, store=store, pipeline=p)


async def test_nested_gather_and_a_bad_limit_are_refused() -> None:
    made: list[Any] = []

    @agent(name="nested", version="1")
    async def nested(inp: Fan, ctx: Context) -> Out:
        async def one() -> int:
            return 1

        async def inner() -> int:
            pair = [one(), one()]
            made.extend(pair)
            return sum(await ctx.gather(*pair))

        if inp.n == 0:
            bad = one()
            made.append(bad)
            await ctx.gather(bad, limit=0)
        return Out(values=await ctx.gather(inner(), inner()))

    p = PipelineBuilder("nested")
    p.node("fan", nested, n=p.input("n", int), fail=p.input("fail", list[int]))
    result = await arun(p.build(), {"n": 1, "fail": []})
    assert result.error is not None and "inside a call of another ctx.gather()" in (
        result.error.message
    )
    limited = await arun(p.build(), {"n": 0, "fail": []})
    assert limited.error is not None and "limit is 0; fix: use 1 or more" in limited.error.message
    # the calls that never ran were closed, not left to warn that they were never awaited
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in made)


async def test_children_called_in_a_gather_get_ids_in_argument_order() -> None:
    @agent(name="square", version="1")
    async def square(inp: Fan, ctx: Context) -> Out:
        return Out(values=[inp.n * inp.n])

    @agent(name="parent", version="1")
    async def parent(inp: Fan, ctx: Context) -> Out:
        outs = await ctx.gather(*(ctx.call(square, Fan(n=i)) for i in range(3)))
        return Out(values=[o.values[0] for o in outs])

    p = PipelineBuilder("children")
    p.node("fan", parent, n=p.input("n", int), fail=p.input("fail", list[int]))
    store = MemoryStore()
    result = await arun(p.build(), {"n": 3, "fail": []}, store=store)
    assert result.ok, result.error
    assert result.outputs["fan"].values == [0, 1, 4]
    children = {
        sid: StepRecord.model_validate(store.get_value(k)) for sid, k in result.record.steps
    }
    assert [children[f"fan/{i}"].output for i in range(3)] == [
        store.put_value(Out(values=[i * i])) for i in range(3)
    ]


async def test_a_retried_step_numbers_on_where_the_failed_attempt_stopped() -> None:
    attempts = [0]

    @agent(name="flaky-fan", version="1")
    async def flaky(inp: Fan, ctx: Context) -> Out:
        attempts[0] += 1
        first = attempts[0] == 1

        async def call(i: int) -> int:
            async def perform() -> int:
                if first and i == 1:
                    raise ConnectionError("try again")
                return i

            return await ctx.effect("model", "m", {"i": i}, perform)

        return Out(values=await ctx.gather(*(call(i) for i in range(3))))

    p = PipelineBuilder("retried")
    retry = RetryPolicy(max_attempts=2, retry_on=(ConnectionError,), initial_wait=0, max_wait=0)
    p.node("fan", flaky, n=p.input("n", int), fail=p.input("fail", list[int]), retry=retry)
    store = MemoryStore()
    result = await arun(p.build(), {"n": 3, "fail": []}, store=store)
    assert result.ok, result.error
    # attempt 1: call 0 ok, call 1 failed (call 2 never started); attempt 2 from index 2 on
    assert [(e.index, e.status) for e in effects(store, result)] == [
        (0, "ok"),
        (1, "failed"),
        (2, "ok"),
        (3, "ok"),
        (4, "ok"),
    ]
