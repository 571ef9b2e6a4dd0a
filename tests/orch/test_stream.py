"""Live events of a run (``orch.stream``, ``arun(on_event=...)``): exactly the event log, in
its order, plus the agents' custom events; causal under any completion order; nothing hashed
changes; a slow consumer holds steps back; a consumer that leaves cancels the run."""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import orch
from orch import Context, PipelineBuilder, RunEvent, agent
from orch._replay import areplay
from orch.testing import ShuffledCompletion
from traces import MemoryStore


class Question(BaseModel):
    text: str


class Pair(BaseModel):
    a: str
    b: str


@agent(name="ask", version="1")
async def ask(q: Question, ctx: Context) -> Question:
    """One effect (a scripted model call), one custom event, one decision."""

    async def call() -> dict[str, str]:
        return {"text": f"answer to {q.text}"}

    ctx.emit("progress", stage="asking")
    reply = await ctx.effect("model", "scripted", {"q": q.text}, call)
    ctx.decide(candidates=["a", "b"], chosen="a", reason="always a")
    return Question(text=str(reply["text"]))


@agent(name="join", version="1")
async def join(pair: Pair, ctx: Context) -> Question:
    ctx.emit("progress", stage="joining")
    return Question(text=(pair.a + " | " + pair.b)[:80])


def diamond() -> orch.Pipeline:
    p = PipelineBuilder("diamond")
    q = p.input("q")
    left = p.node("left", ask, text=q)
    right = p.node("right", ask, text=q)
    p.node("join", join, a=left.field("text"), b=right.field("text"))
    return p.build()


def chain(n: int) -> orch.Pipeline:
    p = PipelineBuilder("chain")
    q = p.input("q")
    prev: Any = q
    for i in range(n):
        node = p.node(f"s{i}", join, a=q, b=prev)
        prev = node.field("text")
    return p.build()


def logged(store: MemoryStore, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in store.read_events(run_id)]


def check_causal(events: list[RunEvent]) -> None:
    """run_start first, run_end last; every step event between its step's start and end."""
    assert events[0].kind == "run_start" and events[-1].kind == "run_end"
    started: set[str] = set()
    ended: set[str] = set()
    for e in events[1:-1]:
        if e.kind == "step_start":
            assert e.step not in started
            started.add(str(e.step))
        elif e.kind == "step_end":
            assert e.step in started and e.step not in ended
            ended.add(str(e.step))
        else:
            assert e.step in started and e.step not in ended, (e.kind, e.step)
    assert started == ended
    seqs = [e.seq for e in events if e.recorded]
    assert seqs == list(range(len(seqs)))


async def test_the_stream_is_the_event_log_plus_custom_events() -> None:
    store = MemoryStore()
    async with orch.stream(diamond(), {"q": "why"}, store=store) as events:
        seen = [e async for e in events]
    assert events.result is not None and events.result.ok
    check_causal(seen)
    recorded = [e for e in seen if e.recorded]
    assert [(e.kind, e.step, e.hash) for e in recorded] == [
        (e["type"], e.get("step"), e["hash"]) for e in logged(store, events.result.run_id)
    ]
    kinds = {e.kind for e in recorded}
    assert {"run_start", "step_start", "effect", "decision", "step_end", "run_end"} <= kinds
    custom = [e for e in seen if e.kind == "custom"]
    assert sorted((e.step, e.data["stage"]) for e in custom) == [
        ("join", "joining"),
        ("left", "asking"),
        ("right", "asking"),
    ]
    assert all(e.seq is None and e.hash is None for e in custom)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_causal_under_any_completion_order_and_nothing_hashed_changes(seed: int) -> None:
    async def both() -> tuple[str | None, str | None, list[RunEvent]]:
        quiet = await orch.arun(diamond(), {"q": "x"}, store=MemoryStore())
        seen: list[RunEvent] = []
        heard = await orch.arun(
            diamond(),
            {"q": "x"},
            store=MemoryStore(),
            on_event=seen.append,
            perturb=ShuffledCompletion(seed),
        )
        return quiet.root_hash, heard.root_hash, seen

    quiet, heard, seen = anyio.run(both)
    assert quiet == heard is not None
    check_causal(seen)


async def test_a_replay_streams_its_own_events_with_the_same_root_hash() -> None:
    store = MemoryStore()
    original: list[RunEvent] = []
    run = await orch.arun(diamond(), {"q": "why"}, store=store, on_event=original.append)
    again: list[RunEvent] = []
    report = await areplay(diamond(), run.run_id, store, on_event=again.append)
    assert report.clean and report.result.root_hash == run.root_hash
    assert sorted((e.kind, str(e.step)) for e in again) == sorted(
        (e.kind, str(e.step)) for e in original
    )
    check_causal(again)
    assert {e.run_id for e in again} == {report.result.run_id}


async def test_a_slow_consumer_holds_steps_back_and_memory_stays_bounded() -> None:
    store = MemoryStore()
    async with orch.stream(chain(40), {"q": "x"}, store=store, max_buffer=4) as events:
        seen = []
        async for e in events:
            seen.append(e)
            await anyio.lowlevel.checkpoint()  # a consumer slower than the run
            await anyio.lowlevel.checkpoint()
    assert events.result is not None and events.result.ok
    check_causal(seen)
    # Steps wait for room before they start: a chain step adds start, custom, end.
    assert events.high_water <= 4 + 3, events.high_water
    assert len(seen) == len(logged(store, events.result.run_id)) + 40


def fan_out(n: int) -> orch.Pipeline:
    p = PipelineBuilder("fan")
    q = p.input("q")
    for i in range(n):
        p.node(f"s{i}", join, a=q, b=q)
    return p.build()


async def test_many_steps_waiting_for_room_at_once_all_go_on() -> None:
    """A fan-out: every ready step waits for the consumer at the same time (one wake-up must
    reach them all), and the buffer stays within max_buffer plus the running steps' events."""
    store = MemoryStore()
    with anyio.fail_after(60):  # a lost wake-up would hang here
        async with orch.stream(
            fan_out(60), {"q": "x"}, store=store, max_buffer=3, max_concurrency=4
        ) as events:
            seen = []
            async for e in events:
                seen.append(e)
                await anyio.lowlevel.checkpoint()  # a consumer slower than the run
    assert events.result is not None and events.result.ok
    check_causal(seen)
    assert events.high_water <= 3 + 4 * 3, events.high_water


async def test_a_consumer_that_leaves_cancels_the_run_and_says_why() -> None:
    store = MemoryStore()
    async with orch.stream(chain(30), {"q": "x"}, store=store, max_buffer=2) as events:
        async for e in events:
            if e.kind == "step_end":
                break  # the client went away
    result = events.result
    assert result is not None and result.status == "cancelled"
    ends = [e for e in logged(store, result.run_id) if e["type"] == "run_end"]
    assert ends and ends[-1]["data"]["status"] == "cancelled"
    assert result.error is not None
    assert result.error.message == "the caller stopped reading the run's events"
    # The run stopped soon after the consumer left: the other steps are recorded as cancelled.
    ends = [e for e in logged(store, result.run_id) if e["type"] == "step_end"]
    done = [e for e in ends if e["data"]["status"] == "ok"]
    assert len(ends) == 30 and 1 <= len(done) <= 3, len(done)


async def test_an_error_of_the_run_reaches_the_loop() -> None:
    async def read_all() -> None:
        async with orch.stream(diamond(), {}, store=MemoryStore()) as events:
            async for _ in events:
                pass

    with pytest.raises(orch.InputError):
        await read_all()


def test_max_buffer_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_buffer is 0; fix: use 1 or more"):
        orch.RunStream(0)


def test_a_run_without_a_listener_records_the_same() -> None:
    quiet = orch.run(diamond(), {"q": "z"}, store=MemoryStore())
    seen: list[RunEvent] = []
    heard = anyio.run(
        lambda: orch.arun(diamond(), {"q": "z"}, store=MemoryStore(), on_event=seen.append)
    )
    assert quiet.root_hash == heard.root_hash and seen
