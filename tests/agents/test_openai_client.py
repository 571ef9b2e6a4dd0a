"""The OpenAI adapter through the real ``openai`` SDK against a local wire-protocol server."""

from __future__ import annotations

import anyio
import pytest
from wire_servers import Reply, ScriptedServer, openai_completion, openai_stream

from agents.errors import ProviderError
from agents.models._openai_client import OpenAIClient
from agents.models._registry import ModelInfo, ProviderConfig
from agents.models._types import ChatMessage, ChatRequest, ToolCall, ToolSpec

MODEL = ModelInfo(id="small", provider="local", name="served-model", input_per_mtok=1.0)


def client(server: ScriptedServer, **cfg: object) -> OpenAIClient:
    config = ProviderConfig(kind="openai", base_url=server.url + "/v1", **cfg)  # type: ignore[arg-type]
    return OpenAIClient("local", config)


def ask(text: str = "hi", **kw: object) -> ChatRequest:
    return ChatRequest(model="small", messages=[ChatMessage(role="user", content=text)], **kw)  # type: ignore[arg-type]


async def test_plain_completion() -> None:
    with ScriptedServer(Reply(body=openai_completion("hello there"))) as server:
        c = client(server)
        resp = await c.complete(ask("hi", temperature=0.2, max_tokens=50), MODEL)
        await c.aclose()
    assert resp.text == "hello there"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (11, 7)
    assert resp.finish_reason == "stop" and resp.provider_model == "served-model"
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["json"]["model"] == "served-model"
    assert sent["json"]["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["json"]["temperature"] == 0.2 and sent["json"]["max_tokens"] == 50


async def test_structured_output_and_tools() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
    }
    with ScriptedServer(
        Reply(body=openai_completion('{"answer": "B"}')),
        Reply(body=openai_completion(tool_calls=[call], finish="tool_calls")),
    ) as server:
        c = client(server)
        structured = await c.complete(ask(output_schema=schema, output_name="choice"), MODEL)
        tool_req = ask(
            tools=[ToolSpec(name="lookup", description="find", parameters={"type": "object"})],
        ).model_copy(
            update={
                "messages": [
                    ChatMessage(role="user", content="find x"),
                    ChatMessage(
                        role="assistant",
                        tool_calls=[ToolCall(id="c0", name="lookup", arguments="{}")],
                    ),
                    ChatMessage(role="tool", content="nothing", tool_call_id="c0"),
                ]
            }
        )
        tooled = await c.complete(tool_req, MODEL)
        await c.aclose()
    assert structured.structured == {"answer": "B"}
    fmt = server.requests[0]["json"]["response_format"]
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "choice", "schema": schema, "strict": True},
    }
    assert tooled.tool_calls == [ToolCall(id="call_1", name="lookup", arguments='{"q": "x"}')]
    assert tooled.finish_reason == "tool_calls"
    sent = server.requests[1]["json"]
    assert sent["tools"][0]["function"]["name"] == "lookup"
    assert sent["messages"][1]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": "{}"}
    assert sent["messages"][2] == {"role": "tool", "content": "nothing", "tool_call_id": "c0"}


async def test_streaming_is_assembled() -> None:
    with ScriptedServer(Reply(sse=openai_stream(["Hel", "lo", "!"]))) as server:
        c = client(server)
        resp = await c.complete(ask(stream=True), MODEL)
        await c.aclose()
    assert resp.text == "Hello!"
    assert resp.usage.output_tokens == 3 and resp.finish_reason == "stop"
    assert server.requests[0]["json"]["stream"] is True


async def test_429_is_retried_after_the_servers_delay() -> None:
    with ScriptedServer(
        Reply(
            status=429, body={"error": {"message": "slow down"}}, headers={"retry-after": "0.05"}
        ),
        Reply(body=openai_completion("ok")),
    ) as server:
        c = client(server)
        started = anyio.current_time()
        resp = await c.complete(ask(), MODEL)
        waited = anyio.current_time() - started
        await c.aclose()
    assert resp.text == "ok" and len(server.requests) == 2
    assert waited >= 0.05


async def test_5xx_retried_then_reported_with_attempts() -> None:
    with ScriptedServer(Reply(status=503, body={"error": {"message": "overloaded"}})) as server:
        c = client(server, max_retries=2)
        with pytest.raises(ProviderError) as info:
            await c.complete(ask(), MODEL)
        await c.aclose()
    assert len(server.requests) == 3
    err = info.value
    assert err.status == 503 and err.retryable and err.attempts == 3
    assert str(err) == "local model 'small' (HTTP 503) after 3 attempts: overloaded"


async def test_4xx_is_not_retried() -> None:
    with ScriptedServer(Reply(status=400, body={"error": {"message": "bad max_tokens"}})) as server:
        c = client(server, max_retries=3)
        with pytest.raises(ProviderError, match=r"\(HTTP 400\): bad max_tokens") as info:
            await c.complete(ask(), MODEL)
        await c.aclose()
    assert len(server.requests) == 1 and not info.value.retryable


async def test_timeout_is_retried_then_reported() -> None:
    with ScriptedServer(Reply(body=openai_completion(), delay=1.0)) as server:
        c = client(server, timeout=0.2, max_retries=1)
        with pytest.raises(ProviderError, match="APITimeoutError") as info:
            await c.complete(ask(), MODEL)
        await c.aclose()
    assert len(server.requests) == 2 and info.value.retryable


async def test_malformed_response_is_a_clear_error() -> None:
    with ScriptedServer(Reply(body=b"{not json")) as server:
        c = client(server, max_retries=3)
        with pytest.raises(ProviderError) as info:
            await c.complete(ask(), MODEL)
        await c.aclose()
    assert len(server.requests) == 1
    assert "local model 'small'" in str(info.value)


async def test_structured_output_that_is_not_json() -> None:
    with ScriptedServer(Reply(body=openai_completion("B, surely"))) as server:
        c = client(server)
        with pytest.raises(ProviderError, match="structured output requested but the answer"):
            await c.complete(ask(output_schema={"type": "object"}), MODEL)
        await c.aclose()


async def test_concurrency_is_limited_per_provider() -> None:
    with ScriptedServer(Reply(body=openai_completion(), delay=0.1)) as server:
        c = client(server, max_concurrency=2)
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(c.complete, ask(f"q{i}"), MODEL)
        await c.aclose()
    assert len(server.requests) == 6
    assert server.max_in_flight == 2
