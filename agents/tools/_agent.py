"""The tool-using agent: a model proposes tool calls, the broker executes them.

Each round, the model sees the question, the conversation so far and the tools the principal
may call (from the broker's recorded listing, so the prompt is the same in replay); it
answers in its provider's tool-call format (OpenAI ``tool_calls``, Anthropic ``tool_use``
blocks, both mapped to :class:`~agents.models.ToolCall` by the model adapters). The agent
runs the proposed calls through the broker one by one, in the order proposed, so effect
indexes never depend on timing, and hands each result back to the model (a structured error
as JSON it can act on: hints per argument, a suggested alternative). It stops when the model
answers without calling a tool, or after ``max_rounds``. Each round that called tools is a
recorded Decision: the tools offered, the ones chosen, the model's own words.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.errors import ToolCallError, ToolError
from agents.models import ChatMessage, ChatRequest, ModelHub, ToolSpec
from agents.tools._broker import ToolBroker
from agents.tools._redact import redact_arguments
from agents.tools._sources import closest
from orch import Context, agent

__all__ = [
    "ToolAgentAnswer",
    "ToolAgentConfig",
    "ToolCallTrace",
    "ToolTask",
    "model_tool_names",
    "tool_agent",
]

DEFAULT_SYSTEM = (
    "You answer the user's question. Call the tools you are given when they help; each tool "
    "result comes back to you. If a tool reports an error, read its hints and fix the call, "
    "or use the alternative it suggests. When you have the answer, reply with it and call no "
    "tool."
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class ToolAgentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str
    """Model id in the hub's registry."""
    system: str = DEFAULT_SYSTEM
    tools: list[str] | None = None
    """Qualified tool names to offer; None offers every tool the principal may call."""
    max_rounds: int = Field(default=4, ge=1, le=32)
    budget_s: float | None = Field(default=None, gt=0)
    """One time budget shared by all the tool calls of a step (adaptive allocation)."""
    max_tokens: int = Field(default=1024, gt=0)
    temperature: float | None = 0.0


class ToolTask(BaseModel):
    question: str


class ToolCallTrace(BaseModel):
    """One call the model proposed and what came of it."""

    round: int
    id: str
    tool: str
    """The qualified tool name ('' when the model named no tool it was offered)."""
    arguments: Any
    ok: bool
    content: str
    """What the model was given back: the result text, or the error as JSON."""
    category: str | None = None


class ToolAgentAnswer(BaseModel):
    text: str
    calls: list[ToolCallTrace] = Field(default_factory=list)
    rounds: int
    finished: bool
    """False when ``max_rounds`` ran out while the model still wanted tools."""


def model_tool_names(qualified: list[str]) -> dict[str, str]:
    """Model-safe function names (``^[A-Za-z0-9_-]{1,64}$``, as OpenAI requires) for
    qualified tool names: ``server.tool`` becomes ``server__tool``. Returns {model name:
    qualified name}; collisions get a numeric suffix, in the order given."""
    out: dict[str, str] = {}
    for name in qualified:
        base = _UNSAFE.sub("_", name.replace(".", "__", 1))[:60] or "tool"
        candidate, n = base, 2
        while candidate in out:
            candidate, n = f"{base}_{n}", n + 1
        out[candidate] = name
    return out


def _shown(arguments: Any) -> Any:
    """The arguments as the trace keeps them: secret-looking values redacted."""
    return redact_arguments(arguments, ())[0] if isinstance(arguments, dict) else arguments


def _result_text(result: Any) -> str:
    if result.text:
        return str(result.text)
    if result.structured is not None:
        return json.dumps(result.structured, sort_keys=True)
    return json.dumps(result.content, sort_keys=True)


@agent(name="tool-agent", version="1", config=ToolAgentConfig)
async def tool_agent(task: ToolTask, ctx: Context) -> ToolAgentAnswer:
    """Answer ``task.question`` with a model that calls tools through the broker."""
    cfg: ToolAgentConfig = ctx.config
    hub: ModelHub = ctx.service("models")
    broker: ToolBroker = ctx.service("tools")
    listing = await broker.list_tools(ctx)
    offered = [t for t in listing.tools if cfg.tools is None or t["name"] in cfg.tools]
    names = model_tool_names([t["name"] for t in offered])
    by_qualified = {q: m for m, q in names.items()}
    specs = [
        ToolSpec(
            name=by_qualified[t["name"]],
            description=str(t.get("description") or "")[:1024],
            parameters=t.get("input_schema") or {"type": "object"},
        )
        for t in offered
    ]
    budget = broker.budget(cfg.budget_s) if cfg.budget_s is not None else None
    messages = [
        ChatMessage(role="system", content=cfg.system),
        ChatMessage(role="user", content=task.question),
    ]
    calls: list[ToolCallTrace] = []
    text = ""
    for round_no in range(1, cfg.max_rounds + 1):
        reply = await hub.chat(
            ctx,
            ChatRequest(
                model=cfg.model,
                messages=messages,
                tools=specs,
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
            ),
        )
        text = reply.text
        if not reply.tool_calls:
            return ToolAgentAnswer(text=text, calls=calls, rounds=round_no, finished=True)
        messages.append(ChatMessage(role="assistant", content=text, tool_calls=reply.tool_calls))
        this_round: list[ToolCallTrace] = []
        for proposal in reply.tool_calls:
            trace = await _run_one(ctx, broker, proposal, names, round_no, budget)
            this_round.append(trace)
            messages.append(
                ChatMessage(role="tool", tool_call_id=proposal.id, content=trace.content)
            )
        calls.extend(this_round)
        chosen = sorted({t.tool for t in this_round if t.tool})
        ctx.decide(
            candidates=[t["name"] for t in offered],
            chosen=chosen,
            reason=(text.strip() or "the model called tools without saying why")[:500],
            parameters={"model": cfg.model, "round": round_no, "max_rounds": cfg.max_rounds},
            evidence={
                "proposals": [
                    {"tool": t.tool, "arguments": t.arguments, "ok": t.ok, "category": t.category}
                    for t in this_round
                ],
                "unavailable": listing.unavailable,
            },
        )
    return ToolAgentAnswer(
        text=text or f"stopped after {cfg.max_rounds} rounds of tool calls",
        calls=calls,
        rounds=cfg.max_rounds,
        finished=False,
    )


async def _run_one(
    ctx: Context,
    broker: ToolBroker,
    proposal: Any,
    names: dict[str, str],
    round_no: int,
    budget: Any,
) -> ToolCallTrace:
    qualified = names.get(proposal.name)
    try:
        arguments = json.loads(proposal.arguments or "{}")
    except ValueError as exc:
        arguments = proposal.arguments
        error: ToolError | None = ToolError.of(
            "invalid_arguments",
            qualified or proposal.name,
            f"the arguments are not JSON ({exc}); send a JSON object",
        )
    else:
        error = None
        if not isinstance(arguments, dict):
            error = ToolError.of(
                "invalid_arguments",
                qualified or proposal.name,
                "the arguments must be a JSON object",
            )
    if error is None and qualified is None:
        error = ToolError.of(
            "not_found",
            proposal.name,
            f"no tool {proposal.name!r} was offered",
            alternative=closest(proposal.name, names),
        )
    if error is None and qualified is not None:
        try:
            result = await broker.call(ctx, qualified, arguments, budget=budget)
        except ToolCallError as exc:
            error = exc.error
        else:
            return ToolCallTrace(
                round=round_no,
                id=proposal.id,
                tool=qualified,
                arguments=_shown(arguments),
                ok=True,
                content=_result_text(result),
            )
    assert error is not None
    if error.alternative is not None:
        # The model knows tools by their model names: point it at the one it can call.
        model_name = {q: m for m, q in names.items()}.get(error.alternative, error.alternative)
        error = error.model_copy(update={"alternative": model_name})
    return ToolCallTrace(
        round=round_no,
        id=proposal.id,
        tool=qualified or "",
        arguments=_shown(arguments),
        ok=False,
        content=json.dumps(error.for_model(), sort_keys=True),
        category=error.category,
    )
