"""The runtime: scheduling, timeouts, retries, cancellation, branches, children, records."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest
from pydantic import BaseModel

from orch import (
    Context,
    InputError,
    OrchError,
    PipelineBuilder,
    RetryableError,
    RetryPolicy,
    Selection,
    agent,
    arun,
)
from orch.errors import ChildStepError
from traces import Decision, MemoryStore, RunRecord, StepRecord, canonical_bytes, verify_run


class Num(BaseModel):
    x: int


class Many(BaseModel):
    xs: list[int]


class MaybeNum(BaseModel):
    x: int | None = None


class Route(Selection):
    pass


@agent(name="inc", version="1")
async def inc(n: Num, ctx: Context) -> Num:
    return Num(x=n.x + 1)


@agent(name="total", version="1")
async def total(m: Many, ctx: Context) -> Num:
    return Num(x=sum(m.xs))


@agent(name="sleepy", version="1")
async def sleepy(n: Num, ctx: Context) -> Num:
    await anyio.sleep(n.x / 1000)
    return n


@agent(name="boom", version="1")
async def boom(n: Num, ctx: Context) -> Num:
    await anyio.sleep(0.01)  # let siblings start, so there is something to cancel
    raise ValueError(f"cannot handle {n.x}")


def steps(store: MemoryStore, record: RunRecord) -> dict[str, StepRecord]:
    return {sid: StepRecord.model_validate(store.get_value(k)) for sid, k in record.steps}


# -- basics ------------------------------------------------------------------------------------


async def test_diamond_outputs_and_records() -> None:
    p = PipelineBuilder("diamond")
    x = p.input("x", int)
    a = p.node("a", inc, x=x)
    b = p.node("b", inc, x=x)
    c = p.node("c", total, xs=[a.field("x"), b.field("x")])
    p.output("result", c.field("x"))
    store = MemoryStore()
    result = await arun(p.build(), {"x": 1}, store=store, seed=3)
    assert result.ok and result.status == "ok"
    assert result.outputs == {"result": 4}
    recs = steps(store, result.record)
    assert sorted(recs) == ["a", "b", "c"]
    assert recs["c"].logical_time == 1 and recs["a"].logical_time == 0
    assert store.get_value(recs["c"].input or "") == {"xs": [2, 2]}
    assert result.root_hash == result.record.root_hash()
    assert verify_run(store, result.run_id).ok


async def test_step_record_dict_is_the_canonical_step_record() -> None:
    """The runtime writes records as plain dicts for speed; they must be StepRecord bytes."""

    @agent(name="fan", version="1")
    async def fan(n: Num, ctx: Context) -> Num:
        outs = await ctx.map(inc, [Num(x=i) for i in range(3)])
        ctx.decide(candidates=["a", "b"], chosen="a", reason="first")
        return Num(x=sum(o.x for o in outs))

    p = PipelineBuilder("records")
    f = p.node("f", fan, x=p.input("x", int))
    p.node("g", boom, x=f.field("x"), optional=True)
    store = MemoryStore()
    result = await arun(p.build(), {"x": 1}, store=store)
    assert result.ok  # g is optional
    for _, key in result.record.steps:
        raw = store.get(key)
        assert raw == canonical_bytes(StepRecord.model_validate(orjson.loads(raw)))


async def test_bad_inputs_raise_before_anything_is_written() -> None:
    p = PipelineBuilder("inputs")
    p.node("a", inc, x=p.input("x", int))
    store = MemoryStore()
    with pytest.raises(InputError) as info:
        await arun(p.build(), {"x": "seven", "y": 1}, store=store)
    msg = str(info.value)
    assert "unknown input(s) ['y']" in msg and "input 'x'" in msg
    with pytest.raises(InputError, match="missing input 'x'; fix: pass x=VALUE"):
        await arun(p.build(), {}, store=store)
    assert list(store.keys()) == [] and store.run_ids() == []


async def test_max_concurrency_is_respected() -> None:
    running = 0
    peak = 0

    @agent(name="counted", version="1")
    async def counted(n: Num, ctx: Context) -> Num:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.005)
        running -= 1
        return n

    p = PipelineBuilder("limit")
    x = p.input("x", int)
    for i in range(12):
        p.node(f"n{i}", counted, x=x)
    result = await arun(p.build(), {"x": 1}, store=MemoryStore(), max_concurrency=3)
    assert result.ok
    assert peak == 3
    with pytest.raises(OrchError, match="max_concurrency is 0"):
        await arun(p.build(), {"x": 1}, store=MemoryStore(), max_concurrency=0)


async def test_a_node_starts_as_soon_as_its_inputs_are_ready() -> None:
    """No lock-step supersteps: 'fast2' must not wait for the slow sibling of 'fast1'."""
    order: list[str] = []

    @agent(name="tracked", version="1")
    async def tracked(n: Num, ctx: Context) -> Num:
        await anyio.sleep(n.x / 1000)
        order.append(ctx.step_id)
        return Num(x=1)

    p = PipelineBuilder("eager")
    p.node("slow", tracked, x=200)
    fast1 = p.node("fast1", tracked, x=1)
    p.node("fast2", tracked, x=fast1.field("x"))
    await arun(p.build(), {}, store=MemoryStore())
    assert order.index("fast2") < order.index("slow")


# -- failure, timeout, retry -------------------------------------------------------------------


async def test_failure_cancels_siblings_and_records_everything() -> None:
    p = PipelineBuilder("failing")
    x = p.input("x", int)
    p.node("bad", boom, x=x)
    slow = p.node("slow", sleepy, x=5000)
    p.node("after", inc, x=slow.field("x"))
    store = MemoryStore()
    result = await arun(p.build(), {"x": 1}, store=store)
    assert result.status == "failed" and not result.ok
    assert result.error is not None
    assert result.error.message == "node 'bad' failed: cannot handle 1"
    assert result.error.type == "ValueError"
    recs = steps(store, result.record)
    assert recs["bad"].status == "failed"
    assert recs["bad"].error is not None and recs["bad"].error.message == "cannot handle 1"
    assert recs["slow"].status == "cancelled"
    assert recs["slow"].reason == "cancelled: run stopped after node 'bad' failed"
    assert recs["after"].status == "cancelled"
    assert recs["after"].reason == "not started: cancelled: run stopped after node 'bad' failed"
    assert result.record.outputs == {}  # nothing half-written presented as complete
    assert verify_run(store, result.run_id).ok
    with pytest.raises(OrchError):
        result.raise_for_status()


async def test_timeout_fails_the_step_with_a_clear_error() -> None:
    p = PipelineBuilder("timeout")
    p.node("slow", sleepy, x=2000, timeout=0.02)
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    rec = steps(store, result.record)["slow"]
    assert rec.status == "failed" and rec.error is not None
    assert rec.error.type == "orch.errors.StepTimeoutError"
    assert rec.error.message == "step 'slow' (agent 'sleepy') timed out after 0.02s"


async def test_retryable_errors_are_retried_and_others_are_not() -> None:
    calls = {"flaky": 0, "buggy": 0}

    @agent(name="flaky", version="1")
    async def flaky(n: Num, ctx: Context) -> Num:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise RetryableError("try again")
        return n

    @agent(name="buggy", version="1")
    async def buggy(n: Num, ctx: Context) -> Num:
        calls["buggy"] += 1
        raise KeyError("a bug")

    policy = RetryPolicy(max_attempts=4, initial_wait=0.001, max_wait=0.002)
    p = PipelineBuilder("retry")
    p.node("flaky", flaky, x=1, retry=policy)
    p.node("buggy", buggy, x=1, retry=policy, optional=True)
    result = await arun(p.build(), {}, store=MemoryStore())
    assert result.ok
    assert calls == {"flaky": 3, "buggy": 1}


async def test_retries_give_up_after_max_attempts() -> None:
    calls = 0

    @agent(name="never", version="1")
    async def never(n: Num, ctx: Context) -> Num:
        nonlocal calls
        calls += 1
        raise RetryableError(f"attempt {calls}")

    p = PipelineBuilder("giveup")
    p.node("n", never, x=1, retry=RetryPolicy(max_attempts=2, initial_wait=0.001))
    result = await arun(p.build(), {}, store=MemoryStore())
    assert calls == 2
    assert result.error is not None and result.error.message == "node 'n' failed: attempt 2"


# -- branches ----------------------------------------------------------------------------------


@agent(name="router", version="1")
async def router(n: Num, ctx: Context) -> Route:
    label = "even" if n.x % 2 == 0 else "odd"
    return Route(branches=[label], reason=f"{n.x} is {label}")


@agent(name="maybe", version="1")
async def maybe(m: MaybeNum, ctx: Context) -> Num:
    return Num(x=-1 if m.x is None else m.x)


def branching() -> Any:
    p = PipelineBuilder("branches")
    r = p.node("route", router, x=p.input("x", int))
    even = p.node("even", inc, x=1, when=r.selects("even"))
    odd = p.node("odd", inc, x=2, when=r.selects("odd"))
    p.node("after_odd", inc, x=odd.field("x"))
    p.node("merge", total, xs=[even.field("x"), odd.field("x")])
    p.node("opt", maybe, x=odd.field("x"))
    return p.build()


async def test_unselected_branches_are_skipped_with_reasons() -> None:
    store = MemoryStore()
    result = await arun(branching(), {"x": 4}, store=store)
    assert result.ok
    recs = steps(store, result.record)
    assert recs["even"].status == "ok"
    assert recs["odd"].status == "skipped"
    assert recs["odd"].reason == "skipped: router 'route' selected ['even'], not 'odd'"
    assert recs["after_odd"].status == "skipped"
    assert recs["after_odd"].reason == (
        "skipped: field 'x' comes from node 'odd' field 'x', which did not succeed"
    )
    # a list binding keeps the branches that ran; an Optional field gets None
    assert store.get_value(recs["merge"].input or "") == {"xs": [2]}
    assert store.get_value(recs["opt"].output or "") == {"x": -1}
    other = await arun(branching(), {"x": 3}, store=store)
    assert steps(store, other.record)["even"].status == "skipped"


# -- children, decisions, rng, logical time ----------------------------------------------------


async def test_child_steps_have_derived_ids_and_records() -> None:
    @agent(name="parent", version="1")
    async def parent(n: Num, ctx: Context) -> Num:
        first = await ctx.call(inc, Num(x=n.x))
        many = await ctx.parallel([(inc, Num(x=1)), (inc, {"x": 2})])
        mapped = await ctx.map(inc, [Num(x=10), Num(x=20)])
        return Num(x=first.x + sum(m.x for m in many + mapped))

    p = PipelineBuilder("children")
    p.node("p", parent, x=p.input("x", int))
    store = MemoryStore()
    result = await arun(p.build(), {"x": 1}, store=store)
    recs = steps(store, result.record)
    assert sorted(recs) == ["p", "p/0", "p/1", "p/2", "p/3", "p/4"]
    assert recs["p"].children == ["p/0", "p/1", "p/2", "p/3", "p/4"]
    assert all(recs[c].parent == "p" and recs[c].node == "p" for c in recs["p"].children)
    assert recs["p/4"].logical_time == recs["p"].logical_time + 1
    assert store.get_value(recs["p"].output or "") == {"x": 2 + 2 + 3 + 11 + 21}


async def test_child_failure_raises_child_step_error_and_cancels_siblings() -> None:
    seen: list[str] = []

    @agent(name="parent", version="1")
    async def parent(n: Num, ctx: Context) -> Num:
        try:
            await ctx.parallel([(sleepy, Num(x=3000)), (boom, Num(x=7))])
        except ChildStepError as exc:
            seen.append(str(exc))
            raise
        return n

    p = PipelineBuilder("childfail")
    p.node("p", parent, x=1)
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    recs = steps(store, result.record)
    assert recs["p/1"].status == "failed"
    assert recs["p/0"].status == "cancelled"
    assert recs["p"].status == "failed"
    assert "p/1" in seen[0] and "cannot handle 7" in seen[0]


async def test_decide_records_a_decision_artifact() -> None:
    @agent(name="chooser", version="3")
    async def chooser(n: Num, ctx: Context) -> Num:
        ctx.decide(
            candidates=["a", "b", "c"],
            chosen=["a", "c"],
            reason="top two",
            scores={"a": 0.9, "b": 0.1, "c": 0.5},
            parameters={"k": 2},
            evidence={"sigma": 0.5},
        )
        with pytest.raises(OrchError, match=r"chose \['z'\] which are not among the candidates"):
            ctx.decide(candidates=["a"], chosen="z", reason="bad")
        return n

    p = PipelineBuilder("decide")
    p.node("c", chooser, x=1)
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    rec = steps(store, result.record)["c"]
    assert len(rec.decisions) == 1
    d = Decision.model_validate(store.get_value(rec.decisions[0]))
    assert (d.router, d.router_version, d.chosen, d.reason) == (
        "chooser",
        "3",
        ["a", "c"],
        "top two",
    )
    assert d.parameters == {"k": 2} and d.evidence == {"sigma": 0.5}


async def test_rng_is_per_step_and_seeded() -> None:
    @agent(name="draw", version="1")
    async def draw(n: Num, ctx: Context) -> Num:
        return Num(x=ctx.rng.randrange(10**9))

    p = PipelineBuilder("rng")
    p.node("a", draw, x=1)
    p.node("b", draw, x=1)
    pipe = p.build()
    r1 = await arun(pipe, {}, store=MemoryStore(), seed=1)
    r2 = await arun(pipe, {}, store=MemoryStore(), seed=1)
    r3 = await arun(pipe, {}, store=MemoryStore(), seed=2)
    assert r1.outputs == r2.outputs
    assert r1.root_hash == r2.root_hash
    assert r1.outputs["a"] != r1.outputs["b"]  # different step ids, different streams
    assert r1.outputs != r3.outputs and r1.root_hash != r3.root_hash


async def test_logical_time_counts_depth_and_ticks() -> None:
    @agent(name="clock", version="1")
    async def clock(n: Num, ctx: Context) -> Num:
        t1, t2 = ctx.now(), ctx.now()
        assert t2 == (t1[0], t1[1] + 1)
        return Num(x=t1[0])

    p = PipelineBuilder("time")
    a = p.node("a", clock, x=1)
    b = p.node("b", clock, x=a.field("x"))
    p.node("c", clock, x=b.field("x"))
    result = await arun(p.build(), {}, store=MemoryStore())
    assert result.outputs == {"c": Num(x=2)}
