"""OpenTelemetry export of a run that calls tools: one ``execute_tool`` span per attempt,
parented by its step, with the broker's error category as ``error.type``; the listing is its
own span, never mistaken for a chat call."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agents.tools import Principal, ToolBroker, ToolCallError, tool
from orch import Context, PipelineBuilder, agent, arun
from traces import MemoryStore
from traces import _semconv as sc
from traces.otel import run_spans


@tool
def double(x: int) -> int:
    """Twice x."""
    return 2 * x


class Q(BaseModel):
    x: int


class A(BaseModel):
    value: int
    error: str


@agent(name="caller", version="1")
async def caller(q: Q, ctx: Context) -> A:
    broker: ToolBroker = ctx.service("tools")
    await broker.list_tools(ctx)
    ok = await broker.call(ctx, "double", {"x": q.x})
    try:
        await broker.call(ctx, "double", {"x": "not a number"})
    except ToolCallError as exc:
        error = exc.error.category
    return A(value=ok.structured, error=error)


async def test_tool_attempts_become_execute_tool_spans() -> None:
    p = PipelineBuilder("spans")
    p.output("a", p.node("caller", caller, x=p.input("x", int)))
    store = MemoryStore()
    services = {"tools": ToolBroker([double]), "principal": Principal(id="p", tenant="t")}
    result = await arun(p.build(), {"x": 21}, store=store, services=services)
    assert result.ok and result.outputs["a"] == A(value=42, error="invalid_arguments")
    spans = run_spans(store, result.run_id)
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    (step,) = by_name["invoke_agent caller"]
    ok, bad = by_name["execute_tool double"]
    for s in (ok, bad):
        assert s.parent.span_id == step.context.span_id
        assert s.attributes[sc.OPERATION_NAME] == "execute_tool"
        assert s.attributes[sc.TOOL_NAME] == "double"
    assert sc.ERROR_TYPE not in ok.attributes
    assert bad.attributes[sc.ERROR_TYPE] == "invalid_arguments"
    (listing,) = by_name["tool-list tools"]
    assert listing.attributes[sc.OPERATION_NAME] == "tool-list"
    assert not any(name.startswith("chat") for name in by_name)
