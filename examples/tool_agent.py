"""A tool-using agent over a real MCP server: the broker runs every call, the record replays.

The question: "A call is set for 09:00 in New York. What time is that in Tokyo and in Paris,
and is it inside Tokyo office hours?" A model proposes tool calls; the broker runs them
against PyPI's ``mcp-server-time`` (started over stdio on first use) and one local Python
tool, through its six stages: identity (the run's principal), authorisation (scopes),
resolution and schema validation, budget (one 20 s time budget for the whole conversation),
invocation, audit (a hash-chained SQLite log next to the store).

The model is scripted so the example runs offline with no keys, and it makes one mistake on
purpose: its first call leaves out a required argument. The broker refuses that call before
it reaches the server, with a hint naming the argument; the model reads the hint and fixes
the call. A real model would get the same structured error. Run::

    python examples/tool_agent.py
    orch show <run id>       # steps, tool effects, decisions
    orch replay <run id>     # every tool result served from the record: no server starts

Needs ``mcp-server-time`` (``pip install -e '.[mcp-servers]'``, also in ``[dev]``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import orch
from agents.models import (
    ChatRequest,
    ChatResponse,
    ModelHub,
    ModelInfo,
    ModelRegistry,
    ScriptedClient,
    Usage,
)
from agents.models import ToolCall as ModelToolCall
from agents.tools import (
    McpSource,
    Principal,
    SQLiteAuditLog,
    ToolBroker,
    tool,
    tool_agent,
)
from orch import PipelineBuilder

QUESTION = (
    "A call is set for 09:00 in New York. What time is that in Tokyo and in Paris, and is it "
    "inside Tokyo office hours?"
)
PRINCIPAL = Principal(id="planner", tenant="demo", scopes=frozenset({"time:read", "office:read"}))


@tool(scopes={"office:read"}, timeout_s=2.0, expected_s=0.01)
def office_hours(city: str, hour: int) -> dict[str, Any]:
    """Whether HOUR (0-23, local time) is inside the office hours of CITY's office."""
    hours = {"Tokyo": (9, 18), "Paris": (9, 17), "New York": (8, 17)}
    start, end = hours.get(city, (9, 17))
    return {"city": city, "hour": hour, "open": start <= hour < end, "hours": f"{start}-{end}"}


def time_server_command() -> list[str]:
    return [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]


def _tool_results(request: ChatRequest) -> list[dict[str, Any]]:
    out = []
    for m in request.messages:
        if m.role == "tool":
            try:
                out.append(json.loads(m.content))
            except ValueError:
                out.append({"text": m.content})
    return out


def planner_script(request: ChatRequest, model: ModelInfo) -> ChatResponse:
    """The scripted model: three rounds of tool calls, then the answer (token counts are
    estimated from the text, about four characters a token, so the run has a cost)."""
    reply = _plan(request)
    prompt = sum(len(m.content) for m in request.messages) + len(
        json.dumps([t.model_dump() for t in request.tools])
    )
    written = len(reply.text) + sum(len(c.arguments) for c in reply.tool_calls)
    return reply.model_copy(
        update={"usage": Usage(input_tokens=prompt // 4, output_tokens=max(1, written // 4))}
    )


def _plan(request: ChatRequest) -> ChatResponse:
    offered = {t.name for t in request.tools}
    results = _tool_results(request)
    rounds = sum(1 for m in request.messages if m.role == "assistant")

    def call(i: int, name: str, **arguments: Any) -> ModelToolCall:
        assert name in offered, f"{name} not offered: {sorted(offered)}"
        return ModelToolCall(id=f"call_{rounds}_{i}", name=name, arguments=json.dumps(arguments))

    if rounds == 0:  # forgets target_timezone: the broker refuses with a hint
        return ChatResponse(
            text="I'll convert the time first.",
            tool_calls=[
                call(0, "time__convert_time", source_timezone="America/New_York", time="09:00")
            ],
        )
    if rounds == 1:
        hints = results[-1].get("hints", {})
        assert "target_timezone" in hints, results[-1]
        return ChatResponse(
            text="The broker says target_timezone is required; asking for both cities.",
            tool_calls=[
                call(
                    i,
                    "time__convert_time",
                    source_timezone="America/New_York",
                    time="09:00",
                    target_timezone=zone,
                )
                for i, zone in enumerate(["Asia/Tokyo", "Europe/Paris"])
            ],
        )
    if rounds == 2:
        tokyo = results[-2]["target"]["datetime"]
        hour = int(tokyo[11:13])
        return ChatResponse(
            text=f"Tokyo is at {tokyo[11:16]}; checking the Tokyo office hours.",
            tool_calls=[call(0, "office_hours", city="Tokyo", hour=hour)],
        )
    tokyo_r, paris_r, office = results[-3], results[-2], results[-1]
    tokyo = tokyo_r["target"]["datetime"][11:16]
    paris = paris_r["target"]["datetime"][11:16]
    verdict = "inside" if office["open"] else "outside"
    return ChatResponse(
        text=(
            f"09:00 in New York is {tokyo} in Tokyo and {paris} in Paris; {tokyo} is {verdict} "
            f"Tokyo office hours ({office['hours']})."
        )
    )


REGISTRY = {
    "providers": {"scripted": {"kind": "simulated"}},
    "models": {
        "planner": {
            "provider": "scripted",
            "name": "scripted-planner",
            "input_per_mtok": 0.15,
            "output_per_mtok": 0.6,
        }
    },
}


def broker(audit_path: Path | None = None, command: list[str] | None = None) -> ToolBroker:
    source = McpSource("time", command=command or time_server_command(), scopes={"time:read"})
    return ToolBroker(
        [source, office_hours],
        audit=SQLiteAuditLog(audit_path) if audit_path is not None else None,
    )


def services() -> dict[str, Any]:
    """What ``orch run`` and ``orch replay`` give the pipeline (nothing starts until a call)."""
    hub = ModelHub(
        ModelRegistry.from_dict(REGISTRY), clients={"scripted": ScriptedClient(planner_script)}
    )
    return {"models": hub, "tools": broker(), "principal": PRINCIPAL}


def build() -> orch.Pipeline:
    p = PipelineBuilder("tool-agent")
    answer = p.node(
        "plan",
        tool_agent.with_config(model="planner", budget_s=20.0, max_rounds=6),
        question=p.input("question", str),
    )
    p.output("answer", answer)
    return p.build()


pipeline = build()


def main() -> int:
    from rich.console import Console

    from traces import open_store

    console = Console(soft_wrap=True)
    if importlib.util.find_spec("mcp_server_time") is None:
        console.print(
            "this example needs the MCP time server: pip install mcp-server-time "
            "(or pip install -e '.[mcp-servers]')"
        )
        return 2
    here = Path(__file__).resolve()
    svc = services()
    with open_store() as store:
        audit_path = Path(store.location) / "tools-audit.db"
        svc["tools"] = broker(audit_path)
        result = orch.run(
            pipeline,
            {"question": QUESTION},
            store=store,
            services=svc,
            origin={"pipeline": f"{here}:pipeline"},
        )
    result.raise_for_status()
    answer = result.outputs["answer"]
    for c in answer.calls:
        status = "ok" if c.ok else f"refused: {c.category}"
        console.print(f"round {c.round}: {c.tool} {json.dumps(c.arguments)} -> {status}")
        if not c.ok:
            console.print(f"    {c.content}")
    console.print(f"answer: {answer.text}")
    audit: SQLiteAuditLog = svc["tools"].audit
    entries = audit.entries(PRINCIPAL.tenant)
    console.print(
        f"audit: {len(entries)} entries for tenant {PRINCIPAL.tenant!r} in {audit.path} "
        f"(chain {'intact' if not audit.verify(PRINCIPAL.tenant) else 'BROKEN'}); outcomes "
        + ", ".join(f"{e.tool}={e.outcome}" for e in entries[-len(answer.calls) :])
    )
    audit.close()
    console.print(f"inspect: orch show {result.run_id}")
    console.print(f"replay (no server starts): orch replay {result.run_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
