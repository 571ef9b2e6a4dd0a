"""The runtime: scheduling, timeouts, retries, cancellation, branches, children, records."""

from __future__ import annotations

import contextlib
from pathlib import Path
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
    run,
)
from orch._loader import load_pipeline
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


# -- the diamond fixture -----------------------------------------------------------------------

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "pipelines.py")


async def test_diamond_fixture_outputs_status_and_records() -> None:
    pipe = load_pipeline(f"{FIXTURE}:pipeline")
    store = MemoryStore()
    result = await arun(pipe, {"x": 5}, store=store, seed=0)
    assert result.status == "ok" and result.error is None
    assert list(result.outputs) == ["sum"]
    assert result.outputs["sum"].model_dump() == {"x": 12}
    assert store.get_value(result.record.outputs["sum"]) == {"x": 12}
    assert {n: o.status for n, o in result.steps.items()} == {
        "left": "ok",
        "right": "ok",
        "sum": "ok",
    }
    recs = steps(store, result.record)
    assert [sid for sid, _ in result.record.steps] == ["left", "right", "sum"]
    assert {s: r.status for s, r in recs.items()} == {"left": "ok", "right": "ok", "sum": "ok"}
    assert (recs["left"].logical_time, recs["sum"].logical_time) == (0, 1)
    assert store.get_value(recs["sum"].input or "") == {"a": 6, "b": 6}
    decision = Decision.model_validate(store.get_value(recs["sum"].decisions[0]))
    assert decision.chosen == ["sum"] and decision.router == "add"
    assert recs["sum"].agent.name == "add" and recs["sum"].agent.version == "1"


def test_sync_run_matches_arun() -> None:
    pipe = load_pipeline(f"{FIXTURE}:pipeline")
    a = run(pipe, {"x": 2}, store=MemoryStore(), seed=9)
    b = run(pipe, {"x": 2}, store=MemoryStore(), seed=9)
    assert a.ok and a.root_hash == b.root_hash
    assert a.outputs["sum"].x == 6


# -- timeouts with siblings --------------------------------------------------------------------


async def test_timeout_cancels_siblings_and_never_started_nodes() -> None:
    p = PipelineBuilder("timeout-siblings")
    x = p.input("x", int)
    slow = p.node("slow", sleepy, x=2000, timeout=0.02)
    sib = p.node("sibling", sleepy, x=3000)
    p.node("after_slow", inc, x=slow.field("x"))
    p.node("after_sibling", inc, x=sib.field("x"))
    p.node("quick", inc, x=x)
    store = MemoryStore()
    with anyio.fail_after(2):
        result = await arun(p.build(), {"x": 1}, store=store)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "orch.errors.StepTimeoutError"
    assert result.error.message == (
        "node 'slow' failed: step 'slow' (agent 'sleepy') timed out after 0.02s"
    )
    recs = steps(store, result.record)
    assert sorted(recs) == ["after_sibling", "after_slow", "quick", "sibling", "slow"]
    assert recs["slow"].status == "failed"
    assert recs["slow"].error is not None
    assert recs["slow"].error.type == "orch.errors.StepTimeoutError"
    assert recs["slow"].input is not None and recs["slow"].output is None
    assert recs["quick"].status == "ok"
    assert recs["sibling"].status == "cancelled"
    assert recs["sibling"].reason == "cancelled: run stopped after node 'slow' failed"
    assert recs["sibling"].input is not None  # it had started
    for never in ("after_slow", "after_sibling"):
        assert recs[never].status == "cancelled"
        assert recs[never].reason == "not started: cancelled: run stopped after node 'slow' failed"
        assert recs[never].input is None
    assert verify_run(store, result.run_id).ok


async def test_timeouts_are_retryable() -> None:
    calls = 0

    @agent(name="slow-once", version="1")
    async def slow_once(n: Num, ctx: Context) -> Num:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep(5)
        return n

    p = PipelineBuilder("timeout-retry")
    p.node("s", slow_once, x=4, timeout=0.02, retry=RetryPolicy(max_attempts=2, initial_wait=0))
    result = await arun(p.build(), {}, store=MemoryStore())
    assert result.ok and calls == 2
    assert result.outputs == {"s": Num(x=4)}


async def test_optional_node_failure_does_not_fail_the_run() -> None:
    p = PipelineBuilder("optional")
    bad = p.node("bad", boom, x=1, optional=True)
    p.node("needs_bad", inc, x=bad.field("x"))
    p.node("maybe_bad", maybe, x=bad.field("x"))
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    assert result.ok
    recs = steps(store, result.record)
    assert recs["bad"].status == "failed"
    assert recs["needs_bad"].status == "skipped"
    assert recs["needs_bad"].reason == (
        "skipped: field 'x' comes from node 'bad' field 'x', which did not succeed"
    )
    assert store.get_value(recs["maybe_bad"].input or "") == {"x": None}


# -- retries counted exactly -------------------------------------------------------------------


async def test_retryable_error_uses_exactly_max_attempts() -> None:
    calls = 0

    @agent(name="always", version="1")
    async def always(n: Num, ctx: Context) -> Num:
        nonlocal calls
        calls += 1
        raise RetryableError("busy")

    p = PipelineBuilder("attempts")
    p.node("a", always, x=1, retry=RetryPolicy(max_attempts=5, initial_wait=0, max_wait=0))
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    assert calls == 5
    rec = steps(store, result.record)["a"]
    assert rec.status == "failed"
    assert rec.error is not None
    assert (rec.error.type, rec.error.message) == ("orch.errors.RetryableError", "busy")


async def test_plain_error_is_not_retried_even_with_a_policy() -> None:
    calls = 0

    @agent(name="bug", version="1")
    async def bug(n: Num, ctx: Context) -> Num:
        nonlocal calls
        calls += 1
        raise ValueError("deterministic bug")

    p = PipelineBuilder("no-retry")
    p.node("a", bug, x=1, retry=RetryPolicy(max_attempts=5, initial_wait=0))
    result = await arun(p.build(), {}, store=MemoryStore())
    assert calls == 1
    assert result.error is not None and result.error.type == "ValueError"


async def test_retry_on_names_the_retried_errors() -> None:
    calls = 0

    @agent(name="keyed", version="1")
    async def keyed(n: Num, ctx: Context) -> Num:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise KeyError("transient here")
        return n

    policy = RetryPolicy(max_attempts=3, retry_on=(KeyError,), initial_wait=0)
    p = PipelineBuilder("retry-on")
    p.node("a", keyed, x=1, retry=policy)
    assert (await arun(p.build(), {}, store=MemoryStore())).ok
    assert calls == 3


def test_retry_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts is 0; fix: use 1"):
        RetryPolicy(max_attempts=0)


# -- branches, more ------------------------------------------------------------------------------


async def test_node_conditional_on_a_skipped_router_is_skipped() -> None:
    p = PipelineBuilder("nested-branches")
    outer = p.node("outer", router, x=p.input("x", int))
    inner = p.node("inner", router, x=2, when=outer.selects("odd"))
    p.node("deep", inc, x=1, when=inner.selects("even"))
    store = MemoryStore()
    result = await arun(p.build(), {"x": 2}, store=store)
    assert result.ok
    recs = steps(store, result.record)
    assert recs["inner"].status == "skipped"
    assert recs["inner"].reason == "skipped: router 'outer' selected ['even'], not 'odd'"
    assert recs["deep"].status == "skipped"
    assert recs["deep"].reason == "skipped: router 'inner' did not run (skipped)"
    assert result.outputs == {}  # the only sink was skipped


async def test_list_binding_with_every_producer_skipped() -> None:
    p = PipelineBuilder("all-skipped")
    r = p.node("route", router, x=p.input("x", int))
    odd = p.node("odd", inc, x=1, when=r.selects("odd"))
    p.node("merge", total, xs=[odd.field("x")])
    store = MemoryStore()
    result = await arun(p.build(), {"x": 0}, store=store)
    rec = steps(store, result.record)["merge"]
    assert rec.status == "skipped"
    assert rec.reason == "skipped: none of the producers of field 'xs' succeeded"


# -- children, more ------------------------------------------------------------------------------


async def test_ctx_call_failure_raises_child_step_error() -> None:
    caught: list[ChildStepError] = []

    @agent(name="caller", version="1")
    async def caller(n: Num, ctx: Context) -> Num:
        ok = await ctx.call(inc, Num(x=n.x))
        try:
            await ctx.call(boom, {"x": ok.x})
        except ChildStepError as exc:
            caught.append(exc)
        return ok

    p = PipelineBuilder("call-fail")
    p.node("p", caller, x=1)
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    assert result.ok  # the parent handled the child failure
    (exc,) = caught
    assert exc.step_id == "p/1" and exc.error_type == "ValueError"
    assert str(exc) == "child step 'p/1' failed: ValueError: cannot handle 2"
    recs = steps(store, result.record)
    assert recs["p"].children == ["p/0", "p/1"]
    assert (recs["p/0"].status, recs["p/1"].status) == ("ok", "failed")
    assert recs["p/1"].parent == "p" and recs["p/1"].logical_time == 1


async def test_grandchildren_and_map_ids() -> None:
    @agent(name="mid", version="1")
    async def mid(n: Num, ctx: Context) -> Num:
        outs = await ctx.map(inc, [Num(x=n.x), Num(x=n.x * 10)])
        return Num(x=sum(o.x for o in outs))

    @agent(name="top", version="1")
    async def top(n: Num, ctx: Context) -> Num:
        return await ctx.call(mid, n)

    p = PipelineBuilder("nested")
    p.node("t", top, x=p.input("x", int))
    store = MemoryStore()
    result = await arun(p.build(), {"x": 2}, store=store)
    assert result.outputs == {"t": Num(x=3 + 21)}
    recs = steps(store, result.record)
    assert sorted(recs) == ["t", "t/0", "t/0/0", "t/0/1"]
    assert recs["t/0"].children == ["t/0/0", "t/0/1"]
    assert recs["t/0/1"].parent == "t/0" and recs["t/0/1"].node == "t"
    assert [recs[s].logical_time for s in ("t", "t/0", "t/0/0")] == [0, 1, 2]
    assert store.get_value(recs["t/0/1"].input or "") == {"x": 20}


async def test_child_ids_continue_across_retry_attempts() -> None:
    attempts = 0

    @agent(name="flaky-parent", version="1")
    async def flaky_parent(n: Num, ctx: Context) -> Num:
        nonlocal attempts
        attempts += 1
        out = await ctx.call(inc, n)
        if attempts == 1:
            raise RetryableError("again")
        return out

    p = PipelineBuilder("retry-children")
    p.node("f", flaky_parent, x=1, retry=RetryPolicy(max_attempts=2, initial_wait=0))
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    assert result.ok
    recs = steps(store, result.record)
    assert recs["f"].children == ["f/0", "f/1"]
    assert sorted(recs) == ["f", "f/0", "f/1"]


async def test_parallel_children_respect_max_concurrency() -> None:
    running = 0
    peak = 0

    @agent(name="busy", version="1")
    async def busy(n: Num, ctx: Context) -> Num:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.002)
        running -= 1
        return n

    @agent(name="fanout", version="1")
    async def fanout(n: Num, ctx: Context) -> Num:
        outs = await ctx.parallel([(busy, Num(x=i)) for i in range(10)])
        return Num(x=sum(o.x for o in outs))

    p = PipelineBuilder("child-limit")
    p.node("f", fanout, x=1)
    result = await arun(p.build(), {}, store=MemoryStore(), max_concurrency=2)
    assert result.outputs == {"f": Num(x=45)}
    assert peak == 2


async def test_max_concurrency_one_runs_serially() -> None:
    running = 0
    peak = 0

    @agent(name="one-at-a-time", version="1")
    async def one(n: Num, ctx: Context) -> Num:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.001)
        running -= 1
        return n

    p = PipelineBuilder("serial")
    for i in range(6):
        p.node(f"n{i}", one, x=i)
    result = await arun(p.build(), {}, store=MemoryStore(), max_concurrency=1)
    assert result.ok and peak == 1


# -- rng and logical time, exactly -------------------------------------------------------------


async def test_rng_is_seeded_from_seed_and_step_id() -> None:
    import random

    from orch._context import step_seed

    @agent(name="draw3", version="1")
    async def draw3(n: Num, ctx: Context) -> Many:
        return Many(xs=[ctx.rng.randrange(1000) for _ in range(3)])

    @agent(name="kids", version="1")
    async def kids(n: Num, ctx: Context) -> Many:
        (child,) = await ctx.map(draw3, [n])
        return child

    p = PipelineBuilder("rng-exact")
    p.node("a", draw3, x=1)
    p.node("k", kids, x=1)
    result = await arun(p.build(), {}, store=MemoryStore(), seed=42)

    def expected(seed: int, step_id: str) -> list[int]:
        rng = random.Random(step_seed(seed, step_id))
        return [rng.randrange(1000) for _ in range(3)]

    assert result.outputs["a"].xs == expected(42, "a")
    assert result.outputs["k"].xs == expected(42, "k/0")
    assert expected(42, "a") != expected(43, "a")
    assert step_seed(42, "a") == step_seed(42, "a") != step_seed(42, "b")


async def test_now_is_logical_depth_and_tick() -> None:
    seen: dict[str, list[tuple[int, int]]] = {}

    @agent(name="ticks", version="1")
    async def ticks(n: Num, ctx: Context) -> Num:
        seen[ctx.step_id] = [ctx.now(), ctx.now(), ctx.now()]
        if ctx.step_id == "b":
            await ctx.call(ticks, n)
        return n

    p = PipelineBuilder("ticks")
    a = p.node("a", ticks, x=1)
    p.node("b", ticks, x=a.field("x"))
    await arun(p.build(), {}, store=MemoryStore())
    assert seen == {
        "a": [(0, 1), (0, 2), (0, 3)],
        "b": [(1, 1), (1, 2), (1, 3)],
        "b/0": [(2, 1), (2, 2), (2, 3)],
    }


# -- inputs and records ------------------------------------------------------------------------


async def test_wrongly_typed_input_writes_nothing() -> None:
    p = PipelineBuilder("typed")
    p.node("a", inc, x=p.input("x", int))
    store = MemoryStore()
    with pytest.raises(InputError) as info:
        await arun(p.build(), {"x": [1]}, store=store)
    assert str(info.value) == (
        "pipeline 'typed': input 'x': Input should be a valid integer (got [1])"
    )
    with pytest.raises(InputError, match=r"unknown input\(s\) \['z'\]; this pipeline takes"):
        await arun(p.build(), {"x": 1, "z": 2}, store=store)
    assert list(store.keys()) == [] and store.run_ids() == []


async def test_optional_input_may_be_omitted() -> None:
    p = PipelineBuilder("opt-input")
    p.node("m", maybe, x=p.input("x", int | None))
    result = await arun(p.build(), {}, store=MemoryStore())
    assert result.outputs == {"m": Num(x=-1)}


async def test_every_record_of_a_varied_run_is_canonical_step_record_bytes() -> None:
    """ok, failed, skipped, cancelled and never-started steps, children and decisions."""

    @agent(name="busy-parent", version="1")
    async def busy_parent(n: Num, ctx: Context) -> Num:
        ctx.decide(candidates=["x", "y"], chosen="y", reason="why not", scores={"x": 0.5})
        outs = await ctx.parallel([(inc, n), (inc, {"x": 2})])
        return Num(x=sum(o.x for o in outs))

    p = PipelineBuilder("varied")
    x = p.input("x", int)
    r = p.node("route", router, x=x)
    even = p.node("even", busy_parent, x=x, when=r.selects("even"))
    p.node("odd", inc, x=x, when=r.selects("odd"))
    p.node("bad", boom, x=even.field("x"))
    slow = p.node("slow", sleepy, x=3000)
    p.node("never", inc, x=slow.field("x"))
    p.node("timed", sleepy, x=3000, timeout=0.5)
    store = MemoryStore()
    result = await arun(p.build(), {"x": 4}, store=store)
    statuses = {
        sid: StepRecord.model_validate(store.get_value(k)).status for sid, k in result.record.steps
    }
    assert set(statuses.values()) == {"ok", "failed", "skipped", "cancelled"}
    assert statuses["never"] == "cancelled" and statuses["even/1"] == "ok"
    for _, key in result.record.steps:
        raw = store.get(key)
        assert raw == canonical_bytes(StepRecord.model_validate(orjson.loads(raw)))


async def test_cancelled_child_reason_does_not_claim_the_run_was_cancelled() -> None:
    @agent(name="forgiving", version="1")
    async def forgiving(n: Num, ctx: Context) -> Num:
        with contextlib.suppress(ChildStepError):  # the parent copes; the run goes on
            await ctx.parallel([(sleepy, Num(x=3000)), (boom, Num(x=7))])
        return n

    p = PipelineBuilder("forgive")
    p.node("p", forgiving, x=1)
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    assert result.ok
    rec = steps(store, result.record)["p/0"]
    assert rec.status == "cancelled"
    assert rec.reason == "cancelled: sibling step 'p/1' failed"


async def test_child_of_a_timed_out_parent_names_the_deadline() -> None:
    @agent(name="waits-on-child", version="1")
    async def waits(n: Num, ctx: Context) -> Num:
        await ctx.call(sleepy, Num(x=3000))
        return n

    p = PipelineBuilder("deadline")
    p.node("p", waits, x=1, timeout=0.05)
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    assert not result.ok
    records = steps(store, result.record)
    assert records["p"].status == "failed"
    assert records["p/0"].status == "cancelled"
    assert records["p/0"].reason == "cancelled: parent step 'p' timed out after 0.05s"


class Step(BaseModel):
    by: int = 1


@agent(name="add-by", version="1", config=Step)
async def add_by(n: Num, ctx: Context) -> Num:
    return Num(x=n.x + ctx.config.by)


@agent(name="double-by", version="1", config=Step)
async def double_by(n: Num, ctx: Context) -> Num:
    return Num(x=n.x * 2 * ctx.config.by)


async def test_children_made_with_config_copies_are_recorded_under_their_own_agent() -> None:
    # Regression: agent refs were cached by id(); a with_config() copy dropped after one
    # child could have its id reused by the next copy, recording it under the wrong agent.
    @agent(name="chain-copies", version="1")
    async def chain(n: Num, ctx: Context) -> Num:
        for i in range(20):
            n = await ctx.call(add_by.with_config(by=i), n)
            n = await ctx.call(double_by.with_config(by=1), n)
        return n

    p = PipelineBuilder("copies")
    p.node("c", chain, x=1)
    store = MemoryStore()
    result = await arun(p.build(), {}, store=store)
    assert result.ok
    records = steps(store, result.record)
    for i in range(20):
        assert records[f"c/{2 * i}"].agent.name == "add-by"
        assert records[f"c/{2 * i + 1}"].agent.name == "double-by"
        assert records[f"c/{2 * i}"].agent.config_hash == add_by.with_config(by=i).config_hash
