"""The one-step pipeline behind ``orch tools call``: one tool call, recorded like any run.

The whole request (server, tool, arguments, principal, required scopes) is the pipeline's
input, and the step builds its broker from it, so ``orch replay RUN`` needs nothing but the
record: the broker is rebuilt, connects to nothing, and every attempt is served. An audit log
may be given as the ``tools_audit`` service; replays write none. Imports are absolute:
``orch replay`` loads this file by its path, outside its package.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.tools.audit import AuditLog
from agents.tools.broker import ToolBroker
from agents.tools.errors import ToolCallError, ToolError
from agents.tools.mcp_source import McpSource
from agents.tools.principal import Principal
from agents.tools.tool import ToolResult
from orch import Context, Pipeline, PipelineBuilder, agent
from orch.errors import OrchError

__all__ = ["ToolCallRequest", "ToolCallResponse", "call_one", "pipeline"]


class ToolCallRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    server: str
    """CMD_OR_URL: an http(s) URL (streamable HTTP) or a command line (stdio)."""
    name: str = "server"
    """The source's name: tools are ``NAME.tool``."""
    tool: str
    """The tool's name on the server (or ``NAME.tool``)."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    principal: Principal
    requires: list[str] = Field(default_factory=list)
    """Scopes the server's tools require (to try authorisation from the command line)."""
    timeout_s: float | None = Field(default=None, gt=0)


class ToolCallResponse(BaseModel):
    tool: str
    ok: bool
    result: ToolResult | None = None
    error: ToolError | None = None
    attempts: int = 1


@agent(name="orch-tools-call", version="1")
async def call_one(request: ToolCallRequest, ctx: Context) -> ToolCallResponse:
    """Call one tool through a broker built from the request."""
    audit: AuditLog | None
    try:
        audit = ctx.service("tools_audit")
    except OrchError:
        audit = None
    source = McpSource.parse(request.name, request.server, scopes=request.requires)
    broker = ToolBroker([source], audit=audit, principal=request.principal)
    qualified = (
        request.tool
        if request.tool.startswith(f"{request.name}.")
        else f"{request.name}.{request.tool}"
    )
    try:
        result = await broker.call(ctx, qualified, request.arguments, timeout_s=request.timeout_s)
    except ToolCallError as exc:
        return ToolCallResponse(tool=qualified, ok=False, error=exc.error, attempts=exc.attempts)
    finally:
        await broker.aclose()
    return ToolCallResponse(tool=qualified, ok=True, result=result)


def build() -> Pipeline:
    p = PipelineBuilder("orch-tools-call")
    p.output("response", p.node("call", call_one, p.input("request", ToolCallRequest)))
    return p.build()


pipeline = build()
