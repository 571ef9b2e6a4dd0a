"""Token deltas of effects (``orch.stream_delta``, ``orch.wants_deltas``, ``ctx.effect(...,
rechunk=)``): a listener hears ``effect_start``, then the effect's ``token`` events as they
are sent, then its ``effect`` event (with usage and cost); nobody listening costs nothing and
changes nothing; a replay or resume streams the recorded text again, cut by ``rechunk``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import orch
from orch import Context, PipelineBuilder, RunEvent, agent
from orch._replay import areplay
from traces import MemoryStore, verify_run


class Prompt(BaseModel):
    text: str
    parts: list[str] = []


class Answer(BaseModel):
    text: str


def by_three(response: dict[str, Any]) -> list[str]:
    """A custom rechunk: the text in pieces of three characters."""
    text = str(response["text"])
    return [text[i : i + 3] for i in range(0, len(text), 3)]


def meter(response: dict[str, Any]) -> tuple[dict[str, int], float]:
    return {"input_tokens": 3, "output_tokens": len(response["pieces"])}, 0.25


HEARD: list[bool] = []
"""What ``wants_deltas()`` said inside each effect's call (the response must not depend on it)."""


async def speak(
    ctx: Context, target: str, parts: Sequence[str], index: int | None = None
) -> dict[str, Any]:
    """One effect whose call sends ``parts`` as deltas, as a streaming adapter does."""

    async def call() -> dict[str, Any]:
        HEARD.append(orch.wants_deltas())
        for part in parts:
            orch.stream_delta(part)
            await anyio.lowlevel.checkpoint()
        return {"text": "".join(parts), "pieces": list(parts)}

    reply: dict[str, Any] = await ctx.effect(
        "model", target, {"parts": list(parts)}, call, meter=meter, rechunk=by_three, index=index
    )
    return reply


@agent(name="talker", version="1")
async def talker(p: Prompt, ctx: Context) -> Answer:
    """Two effects one after the other; a delta sent outside any effect is dropped."""
    orch.stream_delta("outside any effect")
    first = await speak(ctx, "m1", p.parts or [p.text, " and ", "more"])
    second = await speak(ctx, "m2", ["second", " ", "call"])
    return Answer(text=first["text"] + " / " + second["text"])


def talk() -> orch.Pipeline:
    p = PipelineBuilder("talk")
    p.node("say", talker, text=p.input("text", str), parts=p.input("parts", list[str]))
    return p.build()


def step_events(events: list[RunEvent], step: str) -> list[tuple[str, Any, Any]]:
    """(kind, effect index, text) of a step's effect-related events, in order."""
    return [
        (e.kind, e.data.get("index"), e.data.get("text"))
        for e in events
        if e.step == step and e.kind in ("effect_start", "token", "effect")
    ]


async def test_tokens_arrive_in_order_between_effect_start_and_effect() -> None:
    store = MemoryStore()
    HEARD.clear()
    async with orch.stream(
        talk(), {"text": "hi", "parts": ["Hel", "lo", " world"]}, store=store
    ) as events:
        seen = [e async for e in events]
    assert events.result is not None and events.result.ok
    assert step_events(seen, "say") == [
        ("effect_start", 0, None),
        ("token", 0, "Hel"),
        ("token", 0, "lo"),
        ("token", 0, " world"),
        ("effect", 0, None),
        ("effect_start", 1, None),
        ("token", 1, "second"),
        ("token", 1, " "),
        ("token", 1, "call"),
        ("effect", 1, None),
    ]
    assert HEARD == [True, True]
    tokens = [e for e in seen if e.kind == "token"]
    assert all(not e.recorded and e.hash is None for e in tokens)
    assert [e.data["target"] for e in tokens] == ["m1"] * 3 + ["m2"] * 3
    assert all(e.run_id == events.result.run_id and e.t > 0 for e in tokens)
    starts = [e.data for e in seen if e.kind == "effect_start"]
    assert starts == [
        {"index": 0, "kind": "model", "target": "m1"},
        {"index": 1, "kind": "model", "target": "m2"},
    ]
    # Nothing sent outside an effect, and the log holds no token nor effect_start.
    assert "outside any effect" not in [e.data.get("text") for e in seen]
    logged = [json.loads(line)["type"] for line in store.read_events(events.result.run_id)]
    assert "token" not in logged and "effect_start" not in logged
    assert verify_run(store, events.result.run_id).ok


async def test_effect_events_carry_usage_and_cost() -> None:
    store = MemoryStore()
    run = await orch.arun(talk(), {"text": "hi", "parts": ["a", "b"]}, store=store)
    effects = [
        json.loads(line)["data"]
        for line in store.read_events(run.run_id)
        if json.loads(line)["type"] == "effect"
    ]
    assert [(e["usage"], e["cost_usd"]) for e in effects] == [
        ({"input_tokens": 3, "output_tokens": 2}, 0.25),
        ({"input_tokens": 3, "output_tokens": 3}, 0.25),
    ]
    assert verify_run(store, run.run_id).ok


@agent(name="plain", version="1")
async def plain(p: Prompt, ctx: Context) -> Answer:
    async def call() -> dict[str, str]:
        return {"text": p.text}

    reply = await ctx.effect("tool", "echo", {"q": p.text}, call)
    return Answer(text=reply["text"])


async def test_an_effect_without_a_meter_has_no_usage_in_its_event() -> None:
    p = PipelineBuilder("plain")
    p.node("echo", plain, text=p.input("text", str))
    store = MemoryStore()
    run = await orch.arun(p.build(), {"text": "x"}, store=store)
    (effect,) = [
        json.loads(line)["data"]
        for line in store.read_events(run.run_id)
        if json.loads(line)["type"] == "effect"
    ]
    assert "usage" not in effect and "cost_usd" not in effect


async def test_tokens_reach_the_caller_while_the_call_is_still_running() -> None:
    """Each delta is delivered before the call sends the next: the call waits for the
    consumer to have seen it (a stream that held tokens back would hang, caught below)."""
    got = [anyio.Event() for _ in range(3)]

    @agent(name="waiter", version="1")
    async def waiter(p: Prompt, ctx: Context) -> Answer:
        async def call() -> dict[str, str]:
            for i, part in enumerate(["one ", "two ", "three"]):
                orch.stream_delta(part)
                await got[i].wait()  # the consumer has this token now
            return {"text": "one two three"}

        reply = await ctx.effect("model", "m", {"q": p.text}, call)
        return Answer(text=reply["text"])

    p = PipelineBuilder("wait")
    p.node("w", waiter, text=p.input("text", str))
    texts: list[str] = []
    with anyio.fail_after(30):  # held-back tokens would hang here
        async with orch.stream(p.build(), {"text": "q"}, store=MemoryStore()) as events:
            async for e in events:
                if e.kind == "token":
                    texts.append(e.data["text"])
                    got[len(texts) - 1].set()
    assert events.result is not None and events.result.ok
    assert texts == ["one ", "two ", "three"]


async def test_nobody_listening_means_no_deltas_and_the_same_root_hash() -> None:
    HEARD.clear()
    inputs = {"text": "hi", "parts": ["x", "y"]}
    quiet = await orch.arun(talk(), inputs, store=MemoryStore())
    assert HEARD == [False, False]
    seen: list[RunEvent] = []
    heard = await orch.arun(talk(), inputs, store=MemoryStore(), on_event=seen.append)
    assert HEARD == [False, False, True, True]
    assert quiet.root_hash == heard.root_hash is not None
    assert [e.kind for e in seen].count("token") == 5


def test_outside_a_run_stream_delta_does_nothing() -> None:
    orch.stream_delta("nobody")
    assert orch.wants_deltas() is False


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.text(max_size=6), min_size=1, max_size=6))
def test_listening_never_changes_the_root_hash(parts: list[str]) -> None:
    async def both() -> tuple[str | None, str | None, list[str]]:
        inputs = {"text": "t", "parts": parts}
        quiet = await orch.arun(talk(), inputs, store=MemoryStore())
        seen: list[RunEvent] = []
        heard = await orch.arun(talk(), inputs, store=MemoryStore(), on_event=seen.append)
        texts = [e.data["text"] for e in seen if e.kind == "token" and e.data["index"] == 0]
        return quiet.root_hash, heard.root_hash, texts

    quiet, heard, texts = anyio.run(both)
    assert quiet == heard is not None
    assert texts == [p for p in parts if p]  # empty deltas are not sent


async def test_a_replay_streams_the_recorded_text_again_from_rechunk() -> None:
    store = MemoryStore()
    run = await orch.arun(talk(), {"text": "hi", "parts": ["Hello", " there"]}, store=store)
    replays: list[list[RunEvent]] = []
    for _ in range(2):
        seen: list[RunEvent] = []
        report = await areplay(talk(), run.run_id, store, on_event=seen.append)
        assert report.clean and report.result.root_hash == run.root_hash
        replays.append(seen)
    first = step_events(replays[0], "say")
    # by_three cuts "Hello there" and "second call" into pieces of three.
    assert first == [
        ("effect_start", 0, None),
        ("token", 0, "Hel"),
        ("token", 0, "lo "),
        ("token", 0, "the"),
        ("token", 0, "re"),
        ("effect", 0, None),
        ("effect_start", 1, None),
        ("token", 1, "sec"),
        ("token", 1, "ond"),
        ("token", 1, " ca"),
        ("token", 1, "ll"),
        ("effect", 1, None),
    ]
    assert step_events(replays[1], "say") == first  # deterministic
    served = [e.data for e in replays[0] if e.kind == "effect"]
    assert all(d["served_from"] == run.run_id for d in served)
    assert [(d["usage"], d["cost_usd"]) for d in served] == [
        ({"input_tokens": 3, "output_tokens": 2}, 0.25),
        ({"input_tokens": 3, "output_tokens": 3}, 0.25),
    ]
    # Without a listener a replay never calls rechunk, and keeps the root hash too.
    quiet = await areplay(talk(), run.run_id, store)
    assert quiet.clean and quiet.result.root_hash == run.root_hash


FLAKY = {"fail": 0}


@agent(name="flaky", version="1")
async def flaky(p: Prompt, ctx: Context) -> Answer:
    """Two effects; the second fails while ``FLAKY['fail']`` is set (a provider outage)."""
    first = await speak(ctx, "m1", ["fir", "st"])

    async def call() -> dict[str, Any]:
        orch.stream_delta("sec")
        if FLAKY["fail"]:
            FLAKY["fail"] -= 1
            raise ConnectionError("provider went away")
        orch.stream_delta("ond")
        return {"text": "second", "pieces": ["sec", "ond"]}

    second = await ctx.effect("model", "m2", {"n": 2}, call, meter=meter, rechunk=by_three)
    return Answer(text=first["text"] + second["text"])


async def test_a_resume_serves_finished_effects_as_tokens_and_streams_the_rest_live() -> None:
    p = PipelineBuilder("flaky")
    p.node("f", flaky, text=p.input("text", str))
    pipeline = p.build()
    store = MemoryStore()
    FLAKY["fail"] = 1
    broken_events: list[RunEvent] = []
    broken = await orch.arun(pipeline, {"text": "x"}, store=store, on_event=broken_events.append)
    assert broken.status == "failed"
    # The failed call sent the token it had before it failed; its effect event says failed.
    assert step_events(broken_events, "f")[-3:] == [
        ("effect_start", 1, None),
        ("token", 1, "sec"),
        ("effect", 1, None),
    ]
    seen: list[RunEvent] = []
    resumed = await orch.arun(pipeline, store=store, resume=broken.run_id, on_event=seen.append)
    assert resumed.ok
    assert step_events(seen, "f") == [
        ("effect_start", 0, None),
        ("token", 0, "fir"),  # served: by_three of "first"
        ("token", 0, "st"),
        ("effect", 0, None),
        ("effect_start", 1, None),
        ("token", 1, "sec"),  # made live again: the call's own deltas
        ("token", 1, "ond"),
        ("effect", 1, None),
    ]
    effects = [e.data for e in seen if e.kind == "effect"]
    assert "served_from" in effects[0] and "served_from" not in effects[1]
    reference = await orch.arun(pipeline, {"text": "x"}, store=MemoryStore())
    assert resumed.root_hash == reference.root_hash


async def test_concurrent_effects_of_one_step_keep_their_own_tokens() -> None:
    @agent(name="both", version="1")
    async def both(p: Prompt, ctx: Context) -> Answer:
        replies: dict[int, dict[str, Any]] = {}

        async def one(i: int, index: int, parts: list[str]) -> None:
            replies[i] = await speak(ctx, f"m{i}", parts, index)

        async with anyio.create_task_group() as tg:  # their deltas interleave
            tg.start_soon(one, 0, ctx.reserve_effect(), ["a1", "a2", "a3"])
            tg.start_soon(one, 1, ctx.reserve_effect(), ["b1", "b2", "b3"])
        return Answer(text=replies[0]["text"] + replies[1]["text"])

    p = PipelineBuilder("both")
    p.node("b", both, text=p.input("text", str))
    seen: list[RunEvent] = []
    run = await orch.arun(p.build(), {"text": "x"}, store=MemoryStore(), on_event=seen.append)
    assert run.ok
    tokens = [e for e in seen if e.kind == "token"]
    assert [e.data["target"] for e in tokens] != ["m0"] * 3 + ["m1"] * 3  # interleaved
    by_target: dict[str, list[str]] = {}
    for e in tokens:
        by_target.setdefault(e.data["target"], []).append(e.data["text"])
    assert by_target == {"m0": ["a1", "a2", "a3"], "m1": ["b1", "b2", "b3"]}
    index_of = {e.data["target"]: e.data["index"] for e in seen if e.kind == "effect_start"}
    assert all(e.data["index"] == index_of[e.data["target"]] for e in tokens)


@agent(name="bad-rechunk", version="1")
async def bad_rechunk(p: Prompt, ctx: Context) -> Answer:
    async def call() -> dict[str, str]:
        return {"text": p.text}

    def rechunk(r: dict[str, str]) -> Sequence[str]:
        return [r["text"], 7]  # type: ignore[list-item]

    reply = await ctx.effect("model", "m", {"q": p.text}, call, rechunk=rechunk)
    return Answer(text=reply["text"])


async def test_a_rechunk_that_gives_no_text_is_named() -> None:
    p = PipelineBuilder("bad")
    p.node("b", bad_rechunk, text=p.input("text", str))
    store = MemoryStore()
    run = await orch.arun(p.build(), {"text": "x"}, store=store)
    assert run.ok  # rechunk is never called for a live call, nor without a listener
    seen: list[RunEvent] = []
    report = await areplay(p.build(), run.run_id, store, on_event=seen.append)
    assert report.result.status == "failed"
    assert report.result.error is not None
    assert "the rechunk of effect #0 (m) gave int 7" in report.result.error.message
    # The served record is still named in the log.
    assert [e.kind for e in seen if e.step == "b"].count("effect") == 1


@pytest.mark.parametrize("listening", [False, True])
async def test_a_served_failure_has_effect_start_and_no_tokens(listening: bool) -> None:
    p = PipelineBuilder("flaky2")
    p.node("f", flaky, text=p.input("text", str))
    store = MemoryStore()
    FLAKY["fail"] = 1
    broken = await orch.arun(p.build(), {"text": "x"}, store=store)
    assert broken.status == "failed"
    seen: list[RunEvent] = []
    report = await areplay(
        p.build(), broken.run_id, store, on_event=seen.append if listening else None
    )
    assert report.clean and report.result.root_hash == broken.root_hash
    if listening:
        assert step_events(seen, "f")[-2:] == [("effect_start", 1, None), ("effect", 1, None)]
    else:
        assert seen == []
