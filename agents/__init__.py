"""agents: the things that do work in an orch pipeline.

* :mod:`agents.models`: the chat schema, the model registry and hub, provider clients
  (pluggable through the ``orch.models`` entry-point group) and offline clients;
* :mod:`agents.tools`: the MCP-style tool broker, the tool-using agent, and one tool call as a
  recorded run;
* :mod:`agents.refiner`: TCAR's refining agent.

Every error the package raises is here (defined in :mod:`agents.errors`, whose docstring
draws the hierarchy). This face imports no subpackage, so that ``import agents.errors`` stays
light: import the subpackage you use.
"""

from __future__ import annotations

from agents.errors import (
    RETRYABLE,
    AgentsError,
    ApiKeyError,
    Category,
    ProviderError,
    RegistryError,
    ToolCallError,
    ToolConfigError,
    ToolError,
)

__all__ = [
    # errors
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
