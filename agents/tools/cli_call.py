"""One tool call as a recorded run: the one-step pipeline behind ``orch tools call``, and
:func:`call_tool_recorded`, which runs it for the command line and for any program.

The whole request (server, tool, arguments, principal, required scopes) is the pipeline's
input, and the step builds its broker from it, so ``orch replay RUN`` needs nothing but the
record: the broker is rebuilt, connects to nothing, and every attempt is served. An audit log
may be given as the ``tools_audit`` service; replays write none.

Every run this pipeline made records this file's path as its origin, and ``orch replay``
loads it by that path, outside its package: so the file keeps its name, its imports are
absolute, and the request and response models must not change (their names and JSON schemas
are in the pipeline's spec hash, which is in every such run's root hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.errors import ToolCallError, ToolError
from agents.tools._audit import AuditLog, SQLiteAuditLog
from agents.tools._broker import ToolBroker
from agents.tools._mcp_source import McpSource
from agents.tools._principal import Principal
from agents.tools._tool import ToolResult
from orch import Context, Pipeline, PipelineBuilder, agent, arun
from orch.errors import OrchError
from traces import ArtifactStore

__all__ = [
    "AUDIT_FILE",
    "RecordedToolCall",
    "ToolCallRequest",
    "ToolCallResponse",
    "call_one",
    "call_tool_recorded",
    "pipeline",
]

AUDIT_FILE = "tools-audit.db"
"""The SQLite audit log :func:`call_tool_recorded` keeps in a directory store's folder."""


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


# This file, not the package: replay loads the pipeline by path (see the module docstring).
_ORIGIN = f"{Path(__file__).resolve()}:pipeline"


def _audit_log(store: ArtifactStore, audit: AuditLog | bool) -> tuple[AuditLog | None, Path | None]:
    """The audit log ``audit`` asks for, and its file when it is the one beside the store."""
    if audit is True:
        folder = Path(store.location)
        if not folder.is_dir():
            return None, None
        return SQLiteAuditLog(folder / AUDIT_FILE), folder / AUDIT_FILE
    if audit is False:
        return None, None
    return audit, None


@dataclass(frozen=True)
class RecordedToolCall:
    """One tool call made by :func:`call_tool_recorded`: its run and the broker's answer."""

    run_id: str
    root_hash: str
    response: ToolCallResponse
    """The result, or the structured error and how many attempts were made."""
    audit_path: Path | None = None
    """The audit log that holds the call's entries, when one was kept."""

    def to_json(self) -> dict[str, Any]:
        """The response as JSON, with the run id and root hash (``orch tools call --json``)."""
        return {"run_id": self.run_id, "root_hash": self.root_hash} | self.response.model_dump(
            mode="json"
        )


async def call_tool_recorded(
    request: ToolCallRequest, store: ArtifactStore, *, audit: AuditLog | bool = True
) -> RecordedToolCall:
    """Make the call ``request`` describes through every stage of a broker, as a recorded run
    of :data:`pipeline` in ``store`` (``orch show`` and ``orch replay`` work on it, and its
    replay starts no server).

    ``audit``: True keeps the audit entries in :data:`AUDIT_FILE` in a directory store's
    folder (a store of another kind keeps none); False keeps none; an :class:`AuditLog` gets
    them. A refused or failed call is a response with ``ok`` False, not an exception; a run
    that fails otherwise (a source that cannot be configured, say) raises
    :class:`~orch.errors.OrchError` naming the error.
    """
    log, audit_path = _audit_log(store, audit)
    services: dict[str, Any] = {} if log is None else {"tools_audit": log}
    try:
        result = await arun(
            pipeline,
            {"request": request},
            store=store,
            services=services,
            origin={"pipeline": _ORIGIN},
        )
    finally:
        if audit is True and isinstance(log, SQLiteAuditLog):
            log.close()
    result.raise_for_status()
    return RecordedToolCall(result.run_id, result.root_hash, result.outputs["response"], audit_path)
