"""The Anthropic adapter through the real ``anthropic`` SDK against a local server."""

from __future__ import annotations

import pytest
from wire_servers import Reply, ScriptedServer, anthropic_message, anthropic_stream

from agents.errors import ProviderError
from agents.models._anthropic_client import AnthropicClient
from agents.models._registry import ModelInfo, ProviderConfig
from agents.models._types import ChatMessage, ChatRequest, ToolCall, ToolSpec

MODEL = ModelInfo(id="claude", provider="anth", name="claude-served")


def client(server: ScriptedServer, **cfg: object) -> AnthropicClient:
    config = ProviderConfig(kind="anthropic", base_url=server.url, **cfg)  # type: ignore[arg-type]
    return AnthropicClient("anth", config)


def ask(*messages: ChatMessage, **kw: object) -> ChatRequest:
    msgs = list(messages) or [ChatMessage(role="user", content="hi")]
    return ChatRequest(model="claude", messages=msgs, **kw)  # type: ignore[arg-type]


async def test_message_with_system_prompt() -> None:
    with ScriptedServer(Reply(body=anthropic_message("bonjour"))) as server:
        c = client(server)
        resp = await c.complete(
            ask(
                ChatMessage(role="system", content="be brief"),
                ChatMessage(role="user", content="hello"),
                temperature=0.0,
            ),
            MODEL,
        )
        await c.aclose()
    assert resp.text == "bonjour" and resp.finish_reason == "end_turn"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (13, 5)
    sent = server.requests[0]
    assert sent["path"] == "/v1/messages"
    assert sent["json"]["system"] == "be brief"
    assert sent["json"]["messages"] == [{"role": "user", "content": "hello"}]
    assert sent["json"]["model"] == "claude-served"


async def test_tool_use_round_trip() -> None:
    use = {"id": "toolu_1", "name": "lookup", "input": {"q": "x"}}
    with ScriptedServer(Reply(body=anthropic_message("", tool_use=use, stop="tool_use"))) as server:
        c = client(server)
        resp = await c.complete(
            ask(
                ChatMessage(role="user", content="find x"),
                ChatMessage(
                    role="assistant",
                    tool_calls=[ToolCall(id="t0", name="lookup", arguments='{"q": "y"}')],
                ),
                ChatMessage(role="tool", content="none", tool_call_id="t0"),
                tools=[ToolSpec(name="lookup", parameters={"type": "object"})],
            ),
            MODEL,
        )
        await c.aclose()
    assert resp.tool_calls == [ToolCall(id="toolu_1", name="lookup", arguments='{"q": "x"}')]
    sent = server.requests[0]["json"]
    assert sent["tools"][0]["name"] == "lookup"
    assert sent["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "t0",
        "name": "lookup",
        "input": {"q": "y"},
    }
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"


async def test_structured_output_through_a_forced_tool() -> None:
    use = {"id": "toolu_2", "name": "answer", "input": {"choice": "C"}}
    schema = {"type": "object", "properties": {"choice": {"type": "string"}}}
    with ScriptedServer(Reply(body=anthropic_message("", tool_use=use))) as server:
        c = client(server)
        resp = await c.complete(ask(output_schema=schema), MODEL)
        await c.aclose()
    assert resp.structured == {"choice": "C"} and resp.tool_calls == []
    assert server.requests[0]["json"]["tool_choice"] == {"type": "tool", "name": "answer"}


async def test_streaming_is_assembled() -> None:
    with ScriptedServer(Reply(sse=anthropic_stream(["Bon", "jour"]))) as server:
        c = client(server)
        resp = await c.complete(ask(stream=True), MODEL)
        await c.aclose()
    assert resp.text == "Bonjour"
    assert resp.usage.output_tokens == 2 and resp.finish_reason == "end_turn"
    assert server.requests[0]["json"]["stream"] is True


async def test_429_then_success() -> None:
    err = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
    with ScriptedServer(
        Reply(status=429, body=err, headers={"retry-after": "0"}),
        Reply(body=anthropic_message("ok")),
    ) as server:
        c = client(server)
        resp = await c.complete(ask(), MODEL)
        await c.aclose()
    assert resp.text == "ok" and len(server.requests) == 2


async def test_500_exhausts_retries_and_401_does_not_retry() -> None:
    err = {"type": "error", "error": {"type": "api_error", "message": "boom"}}
    with ScriptedServer(Reply(status=500, body=err)) as server:
        c = client(server, max_retries=1)
        with pytest.raises(ProviderError, match=r"\(HTTP 500\) after 2 attempts: boom"):
            await c.complete(ask(), MODEL)
        await c.aclose()
    assert len(server.requests) == 2
    auth = {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}
    with ScriptedServer(Reply(status=401, body=auth)) as server:
        c = client(server, max_retries=3)
        with pytest.raises(ProviderError, match=r"\(HTTP 401\): bad key"):
            await c.complete(ask(), MODEL)
        await c.aclose()
    assert len(server.requests) == 1


async def test_timeout_and_malformed() -> None:
    with ScriptedServer(Reply(body=anthropic_message(), delay=1.0)) as server:
        c = client(server, timeout=0.2, max_retries=0)
        with pytest.raises(ProviderError, match="APITimeoutError"):
            await c.complete(ask(), MODEL)
        await c.aclose()
    with ScriptedServer(Reply(body=b"<html>gateway</html>")) as server:
        c = client(server)
        with pytest.raises(ProviderError):
            await c.complete(ask(), MODEL)
        await c.aclose()
