"""Model tokens reach the caller of ``orch.stream`` as the server sends them, through the real
``openai`` and ``anthropic`` SDKs against a local wire server: the adapter streams only when
someone listens (the request, which is hashed, never says so), the record is the one a run
with no listener makes from the same answer, and a replay streams the recorded text again."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from wire_servers import (
    Reply,
    ScriptedServer,
    anthropic_message,
    anthropic_stream,
    openai_completion,
    openai_stream,
)

import orch
from agents.models import ChatMessage, ChatRequest, ModelHub, ModelRegistry, Usage
from agents.models._hub import text_chunks
from agents.models._types import ChatResponse
from orch import Context, PipelineBuilder, RunEvent, agent
from orch._replay import areplay
from traces import MemoryStore, verify_run


class Q(BaseModel):
    question: str
    model: str


class A(BaseModel):
    text: str


@agent(name="asker", version="1")
async def asker(q: Q, ctx: Context) -> A:
    hub: ModelHub = ctx.service("models")
    resp = await hub.chat(
        ctx, ChatRequest(model=q.model, messages=[ChatMessage(role="user", content=q.question)])
    )
    return A(text=resp.text)


def pipeline() -> orch.Pipeline:
    p = PipelineBuilder("hub-stream")
    p.node("ask", asker, question=p.input("question", str), model=p.input("model", str))
    return p.build()


def registry(url: str) -> ModelRegistry:
    return ModelRegistry.from_dict(
        {
            "providers": {
                "oa": {"kind": "openai", "base_url": url + "/v1", "max_retries": 0},
                "an": {"kind": "anthropic", "base_url": url, "max_retries": 0},
            },
            "models": {
                "mini": {
                    "provider": "oa",
                    "name": "gpt-mini",
                    "input_per_mtok": 0.5,
                    "output_per_mtok": 2.0,
                },
                "claude": {
                    "provider": "an",
                    "name": "claude-served",
                    "input_per_mtok": 3.0,
                    "output_per_mtok": 15.0,
                },
            },
        }
    )


PARTS = ["Th", "e answ", "er is 4", "2."]
"""Deltas cut across words, so that a replay's word chunks are visibly not the live ones."""


class Gated(list[Any]):
    """SSE events the server sends one text delta at a time: the event at position
    ``first + k`` (k >= 1) waits until the caller has seen token k - 1 (a stream that held
    tokens back until the end would never release it; ``missed`` says so after a while)."""

    def __init__(self, events: list[Any], first: int, count: int) -> None:
        super().__init__(events)
        self.first = first
        self.seen = [threading.Event() for _ in range(count)]
        self.missed: list[int] = []

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(list.__iter__(self)):
            k = i - self.first
            if 1 <= k < len(self.seen) and not self.seen[k - 1].wait(30):
                self.missed.append(k)
            yield item


def openai_gated() -> Gated:
    return Gated(openai_stream(PARTS), first=0, count=len(PARTS))


def anthropic_gated() -> Gated:
    # message_start and content_block_start come before the first text delta.
    return Gated(anthropic_stream(PARTS), first=2, count=len(PARTS))


PROVIDERS: dict[str, tuple[Callable[[], Gated], dict[str, Any], tuple[int, int]]] = {
    # model -> (streamed reply, the same answer not streamed, its usage)
    "mini": (openai_gated, openai_completion("".join(PARTS), usage=(5, 4)), (5, 4)),
    "claude": (anthropic_gated, anthropic_message("".join(PARTS), usage=(9, 4)), (9, 4)),
}


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


def effect_events(store: MemoryStore, run_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in store.read_events(run_id)]
    return [e["data"] for e in lines if e["type"] == "effect"]


@pytest.mark.parametrize("model", ["mini", "claude"])
async def test_tokens_arrive_as_the_server_sends_them_and_the_record_is_unchanged(
    model: str,
) -> None:
    make_stream, completion, usage = PROVIDERS[model]
    gated = make_stream()
    inputs = {"question": "6*7?", "model": model}

    # A run nobody listens to: the adapter does not stream.
    quiet_store = MemoryStore()
    with ScriptedServer(Reply(body=completion)) as server:
        hub = ModelHub(registry(server.url))
        quiet = await orch.arun(pipeline(), inputs, store=quiet_store, services={"models": hub})
        await hub.aclose()
    assert quiet.ok
    assert "stream" not in server.requests[0]["json"]

    # The same answer, streamed to a listener token by token.
    store = MemoryStore()
    texts: list[str] = []
    seen: list[RunEvent] = []
    with ScriptedServer(Reply(sse=gated)) as server:
        hub = ModelHub(registry(server.url))
        with anyio.fail_after(60):
            async with orch.stream(
                pipeline(), inputs, store=store, services={"models": hub}
            ) as events:
                async for e in events:
                    seen.append(e)
                    if e.kind == "token":
                        texts.append(e.data["text"])
                        gated.seen[len(texts) - 1].set()
        await hub.aclose()
    result = events.result
    assert result is not None and result.ok, result
    assert server.requests[0]["json"]["stream"] is True
    assert texts == PARTS and gated.missed == []
    assert [e.kind for e in seen if e.kind in ("effect_start", "token", "effect")] == (
        ["effect_start"] + ["token"] * len(PARTS) + ["effect"]
    )
    assert all(
        e.data["index"] == 0 and e.data["target"] == model for e in seen if e.kind == "token"
    )
    assert result.outputs["ask"].text == "".join(PARTS)
    assert result.root_hash == quiet.root_hash is not None

    # Both effect events carry the record's usage and cost.
    info = registry("http://unused").model(model)
    cost = info.cost(Usage(input_tokens=usage[0], output_tokens=usage[1]))
    for data in (
        effect_events(store, result.run_id)[0],
        effect_events(quiet_store, quiet.run_id)[0],
    ):
        assert data["usage"] == {"input_tokens": usage[0], "output_tokens": usage[1]}
        assert data["cost_usd"] == cost > 0
    assert verify_run(store, result.run_id).ok

    # A replay streams the recorded text again, in the hub's word chunks.
    again: list[RunEvent] = []
    offline = ModelHub(registry("http://127.0.0.1:9"))  # never called: all is served
    report = await areplay(
        pipeline(), result.run_id, store, services={"models": offline}, on_event=again.append
    )
    assert report.clean and report.result.root_hash == result.root_hash
    replayed = [e.data["text"] for e in again if e.kind == "token"]
    assert replayed == ["The ", "answer ", "is ", "42."]
    served = [e.data for e in again if e.kind == "effect"]
    assert served[0]["usage"] == {"input_tokens": usage[0], "output_tokens": usage[1]}


async def test_a_request_that_asks_to_stream_streams_with_no_listener() -> None:
    """``stream=True`` in the request (hashed, so asked for by the agent) streams as before;
    with nobody listening the deltas go nowhere."""

    @agent(name="streamer", version="1")
    async def streamer(q: Q, ctx: Context) -> A:
        hub: ModelHub = ctx.service("models")
        request = ChatRequest(
            model=q.model, messages=[ChatMessage(role="user", content=q.question)], stream=True
        )
        return A(text=(await hub.chat(ctx, request)).text)

    p = PipelineBuilder("asked")
    p.node("ask", streamer, question=p.input("question", str), model=p.input("model", str))
    with ScriptedServer(Reply(sse=openai_stream(["a", "b"]))) as server:
        hub = ModelHub(registry(server.url))
        run = await orch.arun(
            p.build(),
            {"question": "q", "model": "mini"},
            store=MemoryStore(),
            services={"models": hub},
        )
        await hub.aclose()
    assert run.ok and run.outputs["ask"].text == "ab"
    assert server.requests[0]["json"]["stream"] is True


@given(text=st.text(alphabet=st.sampled_from("ab é🙂\n\t"), max_size=30) | st.text(max_size=30))
def test_text_chunks_join_back_to_the_text_word_by_word(text: str) -> None:
    chunks = text_chunks(ChatResponse(text=text))
    assert "".join(chunks) == text
    assert all(chunk for chunk in chunks)
    assert all(len(chunk.split()) <= 1 for chunk in chunks)
    assert text_chunks(ChatResponse(text=text)) == chunks
