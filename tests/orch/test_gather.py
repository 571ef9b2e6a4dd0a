"""``Context.gather``: a step's calls made at once, numbered in argument order.

Effects gathered by a step keep their indexes (and so the run's root hash) whatever order
they complete in, which a gate that releases the calls in a hypothesis-chosen order checks,
failing calls included: a failure stops no other call, so a failed step records every call
(as the calls made in turn, each failure caught) and replays to the same record, whichever
call ended first. Failures come back as the exception raised, never an exception group; a
call that numbers something after its first wait (or after its first effect ended, waited or
not) is refused, in replay as live."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from gated_calls import Gate, gated_run
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from stalled_gather import stalled_pipeline

from orch import Context, Pipeline, PipelineBuilder, RetryPolicy, RunResult, agent, arun
from orch._replay import areplay, replay_store
from orch.testing import aassert_replays_clean
from traces import EffectRecord, MemoryStore, StepRecord, canonical_bytes, verify_run
from traces._verify import _Checker


class Fan(BaseModel):
    n: int
    fail: list[int] = []
    """Calls that raise (a ValueError naming the call)."""
    limit: int | None = None
    """How many calls may run at once (None: the run's max_concurrency)."""


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

    if SEQUENTIAL[0]:  # in turn, each failure caught, the earliest raised at the end
        values: list[int] = []
        first: ValueError | None = None
        for i in range(inp.n):
            try:
                values.append(await call(i))
            except ValueError as exc:
                first = first or exc
        if first is not None:
            raise first
    else:
        values = await ctx.gather(*(call(i) for i in range(inp.n)), limit=inp.limit)
    return Out(values=values)


def pipeline(limit: int | None = None) -> Pipeline:
    p = PipelineBuilder("gather")
    bound: dict[str, Any] = {} if limit is None else {"limit": limit}
    p.node("fan", fan, n=p.input("n", int), fail=p.input("fail", list[int]), **bound)
    return p.build()


async def run(
    n: int, gate: Gate | None, fail: Sequence[int] = (), limit: int | None = None
) -> tuple[RunResult, MemoryStore]:
    store = MemoryStore()

    async def go() -> RunResult:
        return await arun(
            pipeline(limit),
            {"n": n, "fail": list(fail)},
            store=store,
            seed=1,
            services={"gate": gate},
        )

    return (await (go() if gate is None else gated_run(gate, go))), store


def effects(store: MemoryStore, result: RunResult) -> list[EffectRecord]:
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)["fan"]))
    return [EffectRecord.model_validate(store.get_value(k)) for k in rec.effects]


async def sequential_root(n: int, fail: Sequence[int] = ()) -> str:
    """The root hash of the same calls made one after another (each failure caught)."""
    SEQUENTIAL[0] = True
    try:
        result, _ = await run(n, None, fail)
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
    fail = sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n), label="failing calls"))

    def chosen(labels: list[str]) -> Sequence[int]:
        return data.draw(st.permutations(range(len(labels))), label="release order")

    async def check() -> None:
        gate = Gate([n], chosen)
        result, store = await run(n, gate, fail)
        recorded = effects(store, result)
        # every call is in the record, ended as it ended, whichever failed or ended first
        assert [(e.index, e.status) for e in recorded] == [
            (i, "failed" if i in fail else "ok") for i in range(n)
        ]
        assert [e.target for e in recorded] == [f"m{i % 2}" for i in range(n)]
        if fail:
            assert result.error is not None and result.error.type == "ValueError"
            assert result.error.message.endswith(f"call {fail[0]} failed")
        else:
            assert result.ok, result.error
            assert result.outputs["fan"].values == [i * i for i in range(n)]
        assert result.root_hash == await sequential_root(n, fail)
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


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_a_failed_step_records_every_call_and_replays_it_whatever_ends_first(
    order: tuple[int, ...],
) -> None:
    """gather(a, b, c) where b fails: c, made concurrently, may end before or after b; the
    record holds all three either way, and the replay (which serves b's failure at once,
    before c ever starts) makes the very same record."""
    gate = Gate([3], lambda labels: order)
    result, store = await run(3, gate, fail=[1])
    assert not result.ok and result.error is not None
    assert result.error.type == "ValueError"  # not an ExceptionGroup
    assert result.error.message.endswith("call 1 failed")
    assert gate.released == [f"call {i}" for i in order]
    assert [(e.index, e.status) for e in effects(store, result)] == [
        (0, "ok"),
        (1, "failed"),
        (2, "ok"),
    ]
    assert result.root_hash == await sequential_root(3, [1])
    assert verify_run(store, result.run_id).ok
    report = await areplay(
        pipeline(), result.run_id, replay_store(store, record=False), services={"gate": None}
    )
    assert report.divergences == []
    assert report.result.root_hash == result.root_hash
    assert report.result.error == result.error
    await aassert_replays_clean(result, store=store, pipeline=pipeline(), services={"gate": None})


async def test_a_failure_before_the_first_wait_stops_no_other_call() -> None:
    result, store = await run(4, None, fail=[1])
    assert not result.ok and result.error is not None
    assert result.error.message.endswith("call 1 failed")
    # call 1 failed as it started (before any wait), and calls 2 and 3 were made all the same
    assert [(e.index, e.status) for e in effects(store, result)] == [
        (0, "ok"),
        (1, "failed"),
        (2, "ok"),
        (3, "ok"),
    ]
    assert result.root_hash == await sequential_root(4, [1])
    await aassert_replays_clean(result, store=store, pipeline=pipeline(), services={"gate": None})


async def test_the_earliest_failed_call_is_raised_whichever_failed_first() -> None:
    gate = Gate([3], reversed_order)  # call 2 fails first, then call 0
    result, store = await run(3, gate, fail=[0, 2])
    assert gate.released == ["call 2", "call 1", "call 0"]
    assert result.error is not None and result.error.message.endswith("call 0 failed")
    assert [(e.index, e.status) for e in effects(store, result)] == [
        (0, "failed"),
        (1, "ok"),
        (2, "failed"),
    ]
    await aassert_replays_clean(result, store=store, pipeline=pipeline(), services={"gate": None})


class Boom(Exception):
    pass


async def test_the_later_failures_are_noted_on_the_one_raised() -> None:
    caught: list[BaseException] = []

    @agent(name="fan-noted", version="1")
    async def noted(inp: Fan, ctx: Context) -> Out:
        async def call(i: int) -> int:
            await anyio.lowlevel.checkpoint()
            if i in inp.fail:
                raise Boom(f"call {i}")
            return i

        try:
            return Out(values=await ctx.gather(*(call(i) for i in range(inp.n))))
        except Boom as exc:
            caught.append(exc)
            raise

    p = PipelineBuilder("noted")
    p.node("fan", noted, n=p.input("n", int), fail=p.input("fail", list[int]))
    result = await arun(p.build(), {"n": 4, "fail": [3, 1]})
    assert result.error is not None and result.error.message.endswith("call 1")
    assert caught[0].__notes__ == ["ctx.gather(): call 3 (from 0) of 4 failed too: Boom: call 3"]


async def test_a_failure_under_a_limit_still_starts_the_calls_after_it() -> None:
    gate = Gate([2, 1, 1], reversed_order)  # call 1 ends first, then call 0 fails
    result, store = await run(4, gate, fail=[0], limit=2)
    assert gate.released == ["call 1", "call 0", "call 2", "call 3"]
    assert result.error is not None and result.error.message.endswith("call 0 failed")
    assert gate.most_waiting == 2
    assert gate.arrivals == [f"call {i}" for i in range(4)]
    assert [(e.index, e.status) for e in effects(store, result)] == [
        (0, "failed"),
        (1, "ok"),
        (2, "ok"),
        (3, "ok"),
    ]
    await aassert_replays_clean(result, store=store, pipeline=pipeline(2), services={"gate": None})


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

        async def at_once() -> int:
            return 1

        async def call(i: int) -> int:
            if shape == "reserved":
                index = ctx.reserve_effect()
                await anyio.lowlevel.checkpoint()
                return await ctx.effect("model", "m", {"i": i}, answer, index=index)
            if shape == "two-in-turn":
                await ctx.effect("model", "m", {"i": i, "part": 1}, answer)
            elif shape == "at-once":  # the first effect answers without waiting
                await ctx.effect("model", "m", {"i": i, "part": 1}, at_once)
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
    [
        ("wait-first", "an effect"),
        ("two-in-turn", "an effect"),
        ("at-once", "an effect"),
        ("decision", "a decision"),
    ],
)
async def test_numbering_after_the_first_wait_is_refused_in_replay_too(
    shape: str, what: str
) -> None:
    """Refused whether or not the call's first effect waited ("at-once"), so that a replay,
    whose served effects never wait, refuses what the live run refused: the same record."""
    store = MemoryStore()
    p = _late_pipeline(shape)
    result = await arun(p, {"n": 2, "fail": []}, store=store)
    assert result.error is not None and result.error.type == "orch.errors.OrchError"
    assert f"{what} was started by a call given to ctx.gather() after" in result.error.message
    assert "fix:" in result.error.message
    await aassert_replays_clean(result, store=store, pipeline=p)


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


@agent(name="gated-child", version="1")
async def gated_child(inp: Fan, ctx: Context) -> Out:
    gate: Gate | None = ctx.service("gate")

    async def perform() -> dict[str, int]:
        if gate is not None:
            await gate.hold(f"child {inp.n}")
        if inp.n in inp.fail:
            raise ValueError(f"child {inp.n} failed")
        return {"value": inp.n * inp.n}

    reply = await ctx.effect("model", "m", {"n": inp.n}, perform)
    return Out(values=[reply["value"]])


@agent(name="gathering-parent", version="1")
async def gathering_parent(inp: Fan, ctx: Context) -> Out:
    calls = (ctx.call(gated_child, Fan(n=i, fail=inp.fail)) for i in range(inp.n))
    return Out(values=[o.values[0] for o in await ctx.gather(*calls)])


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
async def test_failed_children_of_a_gather_are_recorded_and_replayed_whatever_ends_first(
    order: tuple[int, ...],
) -> None:
    p = PipelineBuilder("gathered-children")
    p.node("fan", gathering_parent, n=p.input("n", int), fail=p.input("fail", list[int]))
    pipe = p.build()
    store = MemoryStore()
    gate = Gate([3], lambda labels: order)

    async def go() -> RunResult:
        inputs = {"n": 3, "fail": [1]}
        return await arun(pipe, inputs, store=store, seed=1, services={"gate": gate})

    result = await gated_run(gate, go)
    assert gate.released == [f"child {i}" for i in order]
    assert result.error is not None and result.error.type == "orch.errors.ChildStepError"
    assert "fan/1" in result.error.message
    steps = {sid: StepRecord.model_validate(store.get_value(k)) for sid, k in result.record.steps}
    assert [(sid, steps[sid].status) for sid in sorted(steps)] == [
        ("fan", "failed"),
        ("fan/0", "ok"),
        ("fan/1", "failed"),
        ("fan/2", "ok"),
    ]
    assert steps["fan"].children == ["fan/0", "fan/1", "fan/2"]
    assert verify_run(store, result.run_id).ok
    await aassert_replays_clean(result, store=store, pipeline=pipe, services={"gate": None})
    # the same record whatever the completion order: that of the children released in turn
    in_turn_store = MemoryStore()
    in_turn_gate = Gate([3], lambda labels: range(len(labels)))

    async def in_turn() -> RunResult:
        inputs = {"n": 3, "fail": [1]}
        return await arun(
            pipe, inputs, store=in_turn_store, seed=1, services={"gate": in_turn_gate}
        )

    assert (await gated_run(in_turn_gate, in_turn)).root_hash == result.root_hash


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
    # attempt 1: calls 0 and 2 ok, call 1 failed (it stopped no other); attempt 2 from 3 on
    assert [(e.index, e.status) for e in effects(store, result)] == [
        (0, "ok"),
        (1, "failed"),
        (2, "ok"),
        (3, "ok"),
        (4, "ok"),
        (5, "ok"),
    ]
    await aassert_replays_clean(result, store=store, pipeline=p.build())


# -- a step stopped while its calls run ----------------------------------------------------------


async def test_a_step_timed_out_mid_gather_leaves_a_record_that_verifies() -> None:
    # Calls 1 and 2 answered, call 0 was cut short: its slot stays empty, so the stopped
    # step's effects are #1 and #2, and that record verifies (positions are not indexes).
    store = MemoryStore()
    result = await arun(stalled_pipeline(), {"n": 3}, store=store)
    assert result.error is not None and result.error.type == "orch.errors.StepTimeoutError"
    assert [(e.index, e.status) for e in effects(store, result)] == [(1, "ok"), (2, "ok")]
    assert verify_run(store, result.run_id).ok


async def test_a_stopped_steps_effects_out_of_order_fail_verification() -> None:
    # The same record with its effects listed #2, #1: stored as a step record of its own (a
    # valid artifact), it is refused for its order, not only as a changed root.
    store = MemoryStore()
    result = await arun(stalled_pipeline(), {"n": 3}, store=store)
    step = StepRecord.model_validate(store.get_value(dict(result.record.steps)["fan"]))
    swapped = store.put(canonical_bytes(step.model_copy(update={"effects": step.effects[::-1]})))
    checker = _Checker(store, result.run_id)
    checker.step("fan", swapped)
    assert [p.detail for p in checker.problems] == ["records itself as effect #1 of step 'fan'"]
