"""Tool sources: where the broker finds tools and how it invokes them.

The seam is :class:`ToolSource`: a name (the namespace of its tools), the policy of each tool
from configuration alone, resolution of a tool name to a :class:`ToolInfo` (which may ask
the server), argument validation, invocation and a listing. :class:`LocalSource` holds
Python functions; :class:`agents.tools._mcp_source.McpSource` speaks to MCP servers. A source raises
:class:`ToolCallError` with a structured error for every failure it can name.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from agents.errors import ToolCallError, ToolConfigError, ToolError
from agents.tools._tool import LocalTool, ToolInfo, ToolPolicy, ToolResult

__all__ = ["LocalSource", "ToolSource", "closest"]


@runtime_checkable
class ToolSource(Protocol):
    name: str

    def policy(self, remote_name: str) -> ToolPolicy:
        """The tool's policy, from configuration alone (never asks a server)."""
        ...

    async def resolve(self, remote_name: str, tenant: str, credential: str | None) -> ToolInfo:
        """The tool's info, or ToolCallError(not_found / unavailable)."""
        ...

    def validate(self, info: ToolInfo, arguments: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        """(what :meth:`invoke` takes, {}) when the arguments are valid, else (None, hints
        per argument)."""
        ...

    async def invoke(
        self,
        info: ToolInfo,
        arguments: Any,
        timeout_s: float,
        tenant: str,
        credential: str | None,
    ) -> ToolResult:
        """Call the tool within ``timeout_s`` (the source enforces it); ToolCallError for
        protocol, connection and timeout failures."""
        ...

    async def list(self, tenant: str, credential: str | None) -> list[ToolInfo]: ...

    async def aclose(self) -> None: ...


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name`` (for a not-found error's suggestion)."""
    found = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
    return found[0] if found else None


class LocalSource:
    """Python functions as tools, under their bare names."""

    name = "local"

    def __init__(self, tools: Iterable[LocalTool] = ()) -> None:
        self._tools: dict[str, LocalTool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: LocalTool) -> None:
        if not isinstance(t, LocalTool):
            raise ToolConfigError(
                f"{t!r} is not a tool; fix: decorate the function with @agents.tools.tool"
            )
        if "." in t.name or not t.name:
            raise ToolConfigError(
                f"local tool name {t.name!r} must be non-empty and contain no '.' (the "
                "separator of server.tool names); fix: rename it"
            )
        if t.name in self._tools:
            raise ToolConfigError(f"two local tools are named {t.name!r}; fix: rename one")
        self._tools[t.name] = t

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return sorted(self._tools)

    def _get(self, name: str) -> LocalTool:
        t = self._tools.get(name)
        if t is None:
            raise ToolCallError(
                ToolError.of(
                    "not_found",
                    name,
                    f"no local tool is named {name!r}",
                    alternative=closest(name, self._tools),
                )
            )
        return t

    def policy(self, remote_name: str) -> ToolPolicy:
        return self._get(remote_name).policy

    def info(self, remote_name: str) -> ToolInfo:
        return self._get(remote_name).info

    def secrets(self, remote_name: str) -> frozenset[str]:
        """The tool's secret argument names: its policy's and those its schema marks."""
        return self._get(remote_name).secret_names

    async def resolve(self, remote_name: str, tenant: str, credential: str | None) -> ToolInfo:
        return self._get(remote_name).info

    def validate(self, info: ToolInfo, arguments: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        return self._get(info.remote_name).validate(arguments)

    async def invoke(
        self,
        info: ToolInfo,
        arguments: Mapping[str, Any],
        timeout_s: float,
        tenant: str,
        credential: str | None,
    ) -> ToolResult:
        local = self._get(info.remote_name)
        if not local.is_async:
            # A sync function cannot be interrupted, so a deadline would only cost time.
            return await local.invoke(arguments, credential)
        # asyncio's own timeout: the broker runs on asyncio, and an anyio cancel scope costs
        # several times more to enter on every call.
        async with asyncio.timeout(timeout_s):
            return await local.invoke(arguments, credential)

    async def list(self, tenant: str, credential: str | None) -> list[ToolInfo]:
        return [self._tools[n].info for n in sorted(self._tools)]

    async def aclose(self) -> None:
        return None
