"""The tool-using agent through the real OpenAI and Anthropic SDKs on local wire servers.

The model's tool calls arrive in each provider's own format (OpenAI ``tool_calls``,
Anthropic ``tool_use`` blocks); the broker runs them (a local tool and an in-process MCP
server's tool), and the results go back in the provider's format (a ``tool`` message, a
``tool_result`` block), a refused call as a structured error the model can fix. The run
replays clean with the wire server gone.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from wire_servers import Reply, ScriptedServer, anthropic_message, openai_completion

from agents.models import ModelHub, ModelRegistry
from agents.tools import McpSource, Principal, ToolBroker, tool, tool_agent
from orch import PipelineBuilder, arun
from orch._replay import areplay
from traces import MemoryStore


def make_broker() -> tuple[ToolBroker, list[str]]:
    greeted: list[str] = []
    server = MCPServer("demo")

    @server.tool()
    def greet(name: str) -> str:
        """Greet someone by name."""
        greeted.append(name)
        return f"Hello, {name}!"

    @tool(scopes={"calc:use"})
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return ToolBroker([McpSource("demo", server=server), add]), greeted


def pipeline(model: str) -> Any:
    p = PipelineBuilder("tool-agent-wire")
    p.output(
        "answer",
        p.node("agent", tool_agent.with_config(model=model), question=p.input("question", str)),
    )
    return p.build()


def hub(kind: str, url: str) -> ModelHub:
    base = url + "/v1" if kind == "openai" else url
    return ModelHub(
        ModelRegistry.from_dict(
            {
                "providers": {"p": {"kind": kind, "base_url": base, "max_retries": 0}},
                "models": {"m": {"provider": "p", "name": "served-model"}},
            }
        )
    )


PRINCIPAL = Principal(id="ada", tenant="t1", scopes=frozenset({"calc:use"}))


async def run_and_replay(kind: str, replies: list[Reply]) -> tuple[Any, list[Any], list[str]]:
    broker, greeted = make_broker()
    store = MemoryStore()
    with ScriptedServer(*replies) as server:
        models = hub(kind, server.url)
        services = {"models": models, "tools": broker, "principal": PRINCIPAL}
        result = await arun(
            pipeline("m"), {"question": "greet Ada, add 2 and 3"}, store=store, services=services
        )
        await models.aclose()
    assert result.ok, result.error
    # Replay: the wire server is gone and the broker is new; nothing is called.
    replay_broker, replay_greeted = make_broker()
    report = await areplay(
        pipeline("m"),
        result.run_id,
        store,
        services={
            "models": hub(kind, "http://127.0.0.1:9"),
            "tools": replay_broker,
            "principal": PRINCIPAL,
        },
    )
    assert report.clean, report.first_divergence
    assert replay_greeted == []
    return result, server.requests, greeted


async def test_openai_tool_calls_run_through_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")

    def fn(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }

    result, requests, greeted = await run_and_replay(
        "openai",
        [
            Reply(
                body=openai_completion(
                    tool_calls=[
                        fn("c1", "demo__greet", {"name": "Ada"}),
                        fn("c2", "add", {"a": 2}),
                    ],
                    finish="tool_calls",
                )
            ),
            Reply(
                body=openai_completion(
                    tool_calls=[fn("c3", "add", {"a": 2, "b": 3})], finish="tool_calls"
                )
            ),
            Reply(body=openai_completion("Hello, Ada! 2 + 3 = 5.")),
        ],
    )
    answer = result.outputs["answer"]
    assert answer.finished and answer.text == "Hello, Ada! 2 + 3 = 5."
    assert [(c.tool, c.ok, c.category) for c in answer.calls] == [
        ("demo.greet", True, None),
        ("add", False, "invalid_arguments"),
        ("add", True, None),
    ]
    assert greeted == ["Ada"]
    first, second, third = (r["json"] for r in requests)
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["add", "demo__greet"]
    add_spec = next(t for t in first["tools"] if t["function"]["name"] == "add")
    assert add_spec["function"]["parameters"]["required"] == ["a", "b"]
    tool_msgs = [m for m in second["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["c1", "c2"]
    assert tool_msgs[0]["content"] == "Hello, Ada!"
    refused = json.loads(tool_msgs[1]["content"])
    assert refused["error"] == "invalid_arguments" and "b" in refused["hints"]
    assert second["messages"][2]["tool_calls"][1]["function"]["name"] == "add"
    assert [m for m in third["messages"] if m["role"] == "tool"][-1]["content"] == "5"


async def test_anthropic_tool_use_runs_through_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-local-test")
    result, requests, greeted = await run_and_replay(
        "anthropic",
        [
            Reply(
                body=anthropic_message(
                    "Greeting first.",
                    stop="tool_use",
                    tool_use={"id": "tu1", "name": "demo__greet", "input": {"name": "Ada"}},
                )
            ),
            Reply(
                body=anthropic_message(
                    "",
                    stop="tool_use",
                    tool_use={"id": "tu2", "name": "ad", "input": {"a": 2, "b": 3}},
                )
            ),
            Reply(body=anthropic_message("Hello, Ada!")),
        ],
    )
    answer = result.outputs["answer"]
    assert answer.text == "Hello, Ada!" and answer.rounds == 3
    assert [(c.tool, c.ok, c.category) for c in answer.calls] == [
        ("demo.greet", True, None),
        ("", False, "not_found"),
    ]
    assert greeted == ["Ada"]
    first, second, third = (r["json"] for r in requests)
    assert sorted(t["name"] for t in first["tools"]) == ["add", "demo__greet"]
    assert first["system"].startswith("You answer the user's question")
    result_block = second["messages"][-1]["content"][0]
    assert result_block == {"type": "tool_result", "tool_use_id": "tu1", "content": "Hello, Ada!"}
    not_found = json.loads(third["messages"][-1]["content"][0]["content"])
    # The model is pointed at the tool it can call, by its model-facing name.
    assert not_found["error"] == "not_found" and not_found["alternative"] == "add"
