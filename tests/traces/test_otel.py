"""OpenTelemetry export: GenAI span names and attributes, explicit parents under fan-out,
decisions as events, ids derived from the record (a replay exports the same ids)."""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from orch import Context, PipelineBuilder, agent, arun
from orch._replay import areplay
from traces import MemoryStore
from traces import _semconv as sc
from traces.otel import export_run, run_spans


class Q(BaseModel):
    question: str


class A(BaseModel):
    text: str


async def fake_model(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": request["messages"][0]["content"][::-1],
        "usage": {"input_tokens": 7, "output_tokens": 3},
        "finish_reason": "stop",
        "provider_model": "served-7b",
    }


@agent(name="analyst", version="2")
async def analyst(q: Q, ctx: Context) -> A:
    request = {
        "model": "m7",
        "messages": [{"role": "user", "content": q.question}],
        "max_tokens": 64,
    }
    resp = await ctx.effect(
        "model",
        "m7",
        request,
        lambda: fake_model(request),
        meter=lambda r: (r["usage"], 0.001),
    )
    await ctx.effect("tool", "search", {"q": q.question}, lambda: _tool())
    return A(text=resp["text"])


async def _tool() -> dict[str, Any]:
    return {"hits": 2}


@agent(name="panel", version="1")
async def panel(q: Q, ctx: Context) -> A:
    outs = await ctx.map(analyst, [Q(question=f"{q.question} #{i}") for i in range(4)])
    ctx.decide(candidates=["0", "1", "2", "3"], chosen="2", reason="longest", scores={"2": 1.0})
    return outs[2]


def pipeline() -> Any:
    p = PipelineBuilder("otel")
    p.node("panel", panel, question=p.input("question", str))
    return p.build()


async def test_spans_follow_the_record_tree() -> None:
    store = MemoryStore()
    result = await arun(pipeline(), {"question": "why"}, store=store)
    spans = run_spans(store, result.run_id, providers={"m7": "local-vllm"})
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    assert len(spans) == 1 + 5 + 8  # run, panel + 4 analysts, 4 chat + 4 tool calls
    (root,) = by_name["invoke_workflow otel"]
    assert root.parent is None
    assert root.attributes[sc.ROOT_HASH] == result.root_hash
    assert len({s.context.trace_id for s in spans}) == 1

    (panel_span,) = by_name["invoke_agent panel"]
    assert panel_span.parent.span_id == root.context.span_id
    analysts = by_name["invoke_agent analyst"]
    assert {s.parent.span_id for s in analysts} == {panel_span.context.span_id}
    assert sorted(s.attributes[sc.STEP_ID] for s in analysts) == [f"panel/{i}" for i in range(4)]

    chats = by_name["chat m7"]
    step_of = {s.context.span_id: s.attributes[sc.STEP_ID] for s in analysts}
    for c in chats:
        assert step_of[c.parent.span_id] == c.attributes[sc.STEP_ID]  # right parent, always
        assert c.attributes[sc.OPERATION_NAME] == "chat"
        assert c.attributes[sc.PROVIDER_NAME] == "local-vllm"
        assert c.attributes[sc.REQUEST_MODEL] == "m7"
        assert c.attributes[sc.RESPONSE_MODEL] == "served-7b"
        assert c.attributes[sc.USAGE_INPUT_TOKENS] == 7
        assert c.attributes[sc.USAGE_OUTPUT_TOKENS] == 3
        assert c.attributes[sc.RESPONSE_FINISH_REASONS] == ("stop",)
        assert sc.INPUT_MESSAGES not in c.attributes  # contents are opt-in
    tools = by_name["execute_tool search"]
    assert all(t.attributes[sc.TOOL_NAME] == "search" for t in tools)

    (decision,) = panel_span.events
    assert decision.name == sc.DECISION_EVENT
    assert decision.attributes["orch.decision.chosen"] == ("2",)
    assert all(s.end_time >= s.start_time for s in spans)


async def test_replay_exports_the_same_ids_and_content_is_opt_in() -> None:
    store = MemoryStore()
    original = await arun(pipeline(), {"question": "why"}, store=store)
    report = await areplay(pipeline(), original.run_id, store)
    assert report.clean

    def ids(run_id: str) -> dict[str, tuple[int, int]]:
        return {
            f"{s.name}|{s.attributes.get(sc.STEP_ID)}|{s.attributes.get(sc.EFFECT_INDEX)}": (
                s.context.trace_id,
                s.context.span_id,
            )
            for s in run_spans(store, run_id)
        }

    assert ids(original.run_id) == ids(report.result.run_id)
    exporter = InMemorySpanExporter()
    n = export_run(store, original.run_id, exporter, include_content=True)
    exported = exporter.get_finished_spans()
    assert n == len(exported) == 14
    chat = next(s for s in exported if s.name == "chat m7")
    assert '"role":"user"' in chat.attributes[sc.INPUT_MESSAGES]
    # The semconv's message shape (role and typed parts; finish_reason on outputs), which
    # consumers such as Phoenix validate, dropping what does not fit.
    sent = orjson.loads(chat.attributes[sc.INPUT_MESSAGES])
    assert len(sent) == 1 and sent[0]["role"] == "user"
    [part] = sent[0]["parts"]
    assert part["type"] == "text" and part["content"].startswith("why #"), sent
    [out] = orjson.loads(chat.attributes[sc.OUTPUT_MESSAGES])
    assert out["role"] == "assistant" and out["finish_reason"] == "stop"
    assert out["parts"] == [{"type": "text", "content": part["content"][::-1]}]
