"""The MCP-style tool broker: local Python tools and real MCP servers behind one call path.

Every call goes through identity, authorisation, resolution and argument validation, budget
(rate limit and adaptive time allocation), invocation and audit; every attempt is a recorded
effect that ``orch replay`` serves with no server running. Inspired by "Bridging Protocol
and Production" (arXiv 2603.13417); see ``docs/tools.md``.
"""

from __future__ import annotations

import typing

from agents.errors import RETRYABLE, Category, ToolCallError, ToolConfigError, ToolError
from agents.tools._audit import (
    AuditEntry,
    AuditLog,
    MemoryAuditLog,
    SQLiteAuditLog,
    verify_anchored,
)
from agents.tools._broker import ToolBroker, ToolListing, ToolOutcome
from agents.tools._budget import Allocation, Estimate, LatencyHistory, TimeBudget, allocate
from agents.tools._credentials import CredentialVault
from agents.tools._mcp_source import McpSource, ServerTools, list_server_tools
from agents.tools._principal import Principal
from agents.tools._ratelimit import RateLimit, RateLimiter
from agents.tools._sources import LocalSource, ToolSource
from agents.tools._tool import LocalTool, ToolInfo, ToolPolicy, ToolResult, tool
from agents.tools.cli_call import (
    AUDIT_FILE,
    RecordedToolCall,
    ToolCallRequest,
    ToolCallResponse,
    call_tool_recorded,
)

if typing.TYPE_CHECKING:
    from agents.tools._agent import (
        ToolAgentAnswer,
        ToolAgentConfig,
        ToolCallTrace,
        ToolTask,
        tool_agent,
    )

# The tool-using agent needs the model layer (and the provider SDKs it imports): loaded on
# first use, so that the broker alone imports quickly. (``typing`` is imported whole so that
# no helper name joins the package's public names.)
_LAZY = frozenset({"ToolAgentAnswer", "ToolAgentConfig", "ToolCallTrace", "ToolTask", "tool_agent"})


def __getattr__(name: str) -> typing.Any:
    if name in _LAZY:
        from agents.tools import _agent as agent

        return getattr(agent, name)
    raise AttributeError(f"module 'agents.tools' has no attribute {name!r}")


__all__ = [
    # checking audit entries against the store ledger
    "verify_anchored",
    # the tool-using agent (loaded on first use)
    "ToolAgentAnswer",
    "ToolAgentConfig",
    "ToolCallTrace",
    "ToolTask",
    "tool_agent",
    # the broker
    "ToolBroker",
    "ToolListing",
    "ToolOutcome",
    # one call as a recorded run, and a server's tools (what `orch tools` does)
    "AUDIT_FILE",
    "RecordedToolCall",
    "ServerTools",
    "ToolCallRequest",
    "ToolCallResponse",
    "call_tool_recorded",
    "list_server_tools",
    # identity and authorisation
    "CredentialVault",
    "Principal",
    # tools and sources
    "LocalSource",
    "LocalTool",
    "McpSource",
    "ToolInfo",
    "ToolPolicy",
    "ToolResult",
    "ToolSource",
    "tool",
    # budgets and limits
    "Allocation",
    "Estimate",
    "LatencyHistory",
    "RateLimit",
    "RateLimiter",
    "TimeBudget",
    "allocate",
    # errors (defined in agents.errors)
    "RETRYABLE",
    "Category",
    "ToolCallError",
    "ToolConfigError",
    "ToolError",
    # audit
    "AuditEntry",
    "AuditLog",
    "MemoryAuditLog",
    "SQLiteAuditLog",
]
