"""One error model for every tool-call failure, machine-readable.

Every failure of a call through the broker (a denial, arguments that violate the schema, an
unknown tool, a rate limit, a time budget that cannot fit the call, a timeout, a lost
connection, an MCP protocol error, a malformed response, a tool that returned ``isError``)
becomes a :class:`ToolError`: a category, whether a retry can help, when to retry, hints per
argument and a suggested alternative tool. The broker retries only the retryable categories.

This follows the structured error recovery of "Bridging Protocol and Production"
(arXiv 2603.13417). Its full text was not available, so the categories are the ones its
abstract and this project's design notes name; the mapping of MCP errors onto them is ours.

::

    ToolCallError(Exception)      raised by the broker; .error is the ToolError
    ToolConfigError(OrchError)    a broker, source or tool is configured wrongly (user mistake)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orch.errors import OrchError

__all__ = [
    "RETRYABLE",
    "Category",
    "ToolCallError",
    "ToolConfigError",
    "ToolError",
]

Category = Literal[
    "invalid_arguments",
    "not_found",
    "permission_denied",
    "rate_limited",
    "timeout",
    "unavailable",
    "internal",
]
RETRYABLE: frozenset[str] = frozenset({"rate_limited", "timeout", "unavailable"})
"""The categories a retry can fix; the others fail the same way every time."""


class ToolError(BaseModel):
    """What went wrong with a tool call, for programs (and models) to act on."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    category: Category
    message: str
    tool: str
    """The tool as it was asked for (qualified name)."""
    retryable: bool = False
    retry_after_s: float | None = Field(default=None, ge=0)
    """When a retry may succeed (a rate limit's refill time, a server's hint)."""
    hints: dict[str, str] = Field(default_factory=dict)
    """Per argument name: what is wrong with it and what is expected."""
    alternative: str | None = None
    """A tool that may do the job instead."""
    code: int | None = None
    """The MCP (JSON-RPC) error code, when the failure came from the protocol."""

    @classmethod
    def of(cls, category: Category, tool: str, message: str, **extra: Any) -> ToolError:
        """A ToolError whose ``retryable`` follows its category unless ``extra`` says."""
        fields: dict[str, Any] = {
            "category": category,
            "tool": tool,
            "message": message,
            "retryable": category in RETRYABLE,
        }
        fields.update(extra)
        return cls.model_validate(fields)

    def for_model(self) -> dict[str, Any]:
        """The error as a tool result a model can read and recover from."""
        out: dict[str, Any] = {"error": self.category, "message": self.message}
        if self.hints:
            out["hints"] = self.hints
        if self.alternative:
            out["alternative"] = self.alternative
        if self.retryable:
            out["retryable"] = True
        return out


class ToolCallError(Exception):
    """A tool call failed for good (after any retries); ``error`` is the :class:`ToolError`."""

    def __init__(self, error: ToolError, attempts: int = 1) -> None:
        self.error = error
        self.attempts = attempts
        hints = "; ".join(f"{k}: {v}" for k, v in sorted(error.hints.items()))
        extra = f" ({hints})" if hints else ""
        alt = f"; try {error.alternative!r} instead" if error.alternative else ""
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(
            f"tool {error.tool!r} failed{tries}: {error.category}: {error.message}{extra}{alt}"
        )


class ToolConfigError(OrchError, ValueError):
    """A broker, tool source or tool is configured wrongly; the message names it and the fix."""
