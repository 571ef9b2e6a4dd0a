"""Every error the ``agents`` package raises, and the structured error of a tool call.

Each exception is an :class:`~orch.errors.OrchError`, so ``orch`` commands report it as one
line, and every message names the thing at fault and the fix::

    OrchError                     (orch.errors) base of every engine error
    └── AgentsError               base of every error of this package
        ├── RegistryError         the model registry is unreadable, or names a model, a
        │                         provider or a provider kind that does not exist
        ├── ApiKeyError           a provider's API key is not in the environment
        ├── ProviderError         a model call failed for good (after any retries)
        ├── ToolConfigError       a broker, tool source or tool is configured wrongly
        │                         (also a ValueError)
        └── ToolCallError         a tool call failed for good; ``.error`` is the ToolError

A provider plugin (``orch.models`` entry point) that fails to load is the engine's
:class:`~orch.errors.PluginError`, as every plugin's is.

Every failure of a call through the tool broker (a denial, arguments that violate the
schema, an unknown tool, a rate limit, a time budget that cannot fit the call, a timeout, a
lost connection, an MCP protocol error, a malformed response, a tool that returned
``isError``) becomes a :class:`ToolError`: a category, whether a retry can help, when to
retry, hints per argument and a suggested alternative tool. It is data (recorded in effect
outcomes, shown to models), not an exception; :class:`ToolCallError` carries it. The broker
retries only the :data:`RETRYABLE` categories. This follows the structured error recovery of
"Bridging Protocol and Production" (arXiv 2603.13417); its full text was not available, so
the categories are the ones its abstract and this project's design notes name, and the
mapping of MCP errors onto them is ours.

A recorded failure names its exception as ``module.qualname`` (``agents.errors.ToolCallError``).
This module must never import another module of ``agents``: every module of the package
imports it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orch.errors import OrchError

__all__ = [
    # the hierarchy
    "AgentsError",
    "ApiKeyError",
    "ProviderError",
    "RegistryError",
    "ToolCallError",
    "ToolConfigError",
    # the structured error of a tool call
    "RETRYABLE",
    "Category",
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


class AgentsError(OrchError):
    """Base of every error of the ``agents`` package."""


# -- models -------------------------------------------------------------------------------


class RegistryError(AgentsError):
    """The registry file is unreadable, or refers to a model, provider or provider kind that
    does not exist."""

    # Where it was defined until 0.1.0: the name records give it (orch.errors.type_path).
    __orch_recorded_name__ = "agents.models.registry.RegistryError"


class ApiKeyError(AgentsError):
    """A provider needs an API key and its environment variable is not set."""


class ProviderError(AgentsError):
    """A model call failed for good; the message names provider, model and the cause."""

    # Where it was defined until 0.1.0: the name records give it (orch.errors.type_path).
    __orch_recorded_name__ = "agents.models.retrying.ProviderError"

    def __init__(
        self,
        provider: str,
        model: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        attempts: int = 1,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        self.retryable = retryable
        self.attempts = attempts
        code = f" (HTTP {status})" if status else ""
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{provider} model {model!r}{code}{tries}: {message}")


# -- tools --------------------------------------------------------------------------------


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


class ToolConfigError(AgentsError, ValueError):
    """A broker, tool source or tool is configured wrongly; the message names it and the fix."""

    # Where it was defined until 0.1.0: the name records give it (orch.errors.type_path).
    __orch_recorded_name__ = "agents.tools.errors.ToolConfigError"


class ToolCallError(AgentsError):
    """A tool call failed for good (after any retries); ``error`` is the :class:`ToolError`."""

    # Where it was defined until 0.1.0: the name records give it (orch.errors.type_path).
    __orch_recorded_name__ = "agents.tools.errors.ToolCallError"

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
