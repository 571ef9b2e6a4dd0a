"""MCP servers as tool sources, through the official ``mcp`` SDK (2.x).

:class:`McpSource` reaches one server: a command started as a subprocess (stdio), a URL
(streamable HTTP), or an in-process ``MCPServer`` (for tests). It connects lazily, on the
first call that needs the server, so building a broker, or replaying a run, starts nothing.
A connection discovers the server's tools (every page of ``tools/list``) and their input
schemas, and is reused by every call; one connection per tenant when the server needs a
tenant's credential (an environment variable of the process, or an HTTP header), else one.
A server that dies is noticed on the next call (``unavailable``, retryable), and the retry
reconnects; a server that cannot be started is reported with the tail of its stderr.

Each connection belongs to one event loop: a task owns the SDK client (whose context must be
entered and left in the same task) and waits until the broker closes, or the loop ends,
when the SDK shuts the server down. ``orch.run`` starts a loop per call, so a broker used
across such calls reconnects in each. The broker must run on asyncio (as orch does).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError

from agents.errors import ToolCallError, ToolConfigError, ToolError
from agents.tools._schema import SchemaValidator
from agents.tools._sources import closest
from agents.tools._tool import ToolInfo, ToolPolicy, ToolResult

__all__ = ["McpSource", "ServerTools", "list_server_tools"]

log = logging.getLogger(__name__)

# JSON-RPC and MCP error codes, and what they mean for a caller.
_CODES: dict[int, tuple[str, bool]] = {
    -32700: ("internal", False),  # parse error: the server could not read our message
    -32600: ("internal", False),  # invalid request
    -32601: ("not_found", False),  # method not found
    -32602: ("invalid_arguments", False),
    -32603: ("internal", False),
    -32000: ("unavailable", True),  # connection closed
    -32001: ("timeout", True),  # request timed out
    -32002: ("not_found", False),  # resource not found
}
_PAGE_CAP = 100


def _in_process_types() -> tuple[type, ...]:
    from mcp.server import Server
    from mcp.server.mcpserver import MCPServer

    return (Server, MCPServer)


class _Connection:
    """One live SDK client, owned by a task of one event loop."""

    def __init__(self, source: McpSource, credential: str | None) -> None:
        self.source = source
        self.credential = credential
        self.loop = asyncio.get_running_loop()
        self.client: Client | None = None
        self.tools: dict[str, Any] = {}
        self.infos: dict[str, ToolInfo] = {}
        self.version = ""
        self.failure: BaseException | None = None
        self.dead = False
        self.protocol_errors = 0
        """Messages the SDK could not read (not JSON, not JSON-RPC) since connecting."""
        self.last_protocol_error = ""
        self._ready = anyio.Event()
        self._close = anyio.Event()
        # The server's stderr, kept for error reports; closed when the connection ends.
        self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._stderr_at_end: str | None = None
        self._task = self.loop.create_task(self._own(), name=f"mcp:{source.name}")

    async def _own(self) -> None:
        try:
            client_cm = self.source._client(self.credential, self._errlog, self._on_message)
            async with client_cm as client:
                self.client = client
                info = client.server_info
                self.version = info.version if info is not None else ""
                await self.refresh()
                self._ready.set()
                await self._close.wait()
        except BaseException as exc:  # reported to the caller, never lost
            if not isinstance(exc, asyncio.CancelledError):
                self.failure = exc
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
        finally:
            self.dead = True
            self.client = None
            self._stderr_at_end = self.stderr_tail()
            self._errlog.close()
            self._ready.set()

    async def _on_message(self, message: Any) -> None:
        # The SDK hands transport-level failures (a line that is not JSON-RPC) to the
        # message handler and drops the line; a call waiting for its answer would only see
        # a timeout, so count them and let the call say what really happened.
        if isinstance(message, Exception):
            self.protocol_errors += 1
            self.last_protocol_error = f"{type(message).__name__}: {str(message)[:200]}"

    async def refresh(self) -> None:
        """Fetch every page of the server's tool listing."""
        assert self.client is not None
        tools: dict[str, Any] = {}
        cursor: str | None = None
        for _ in range(_PAGE_CAP):
            page = await self.client.list_tools(cursor=cursor, cache_mode="refresh")
            for t in page.tools:
                tools[t.name] = t
            cursor = page.next_cursor
            if cursor is None:
                break
        self.tools = tools
        self.infos = {}

    async def ready(self, timeout_s: float) -> None:
        with anyio.move_on_after(timeout_s):
            await self._ready.wait()
        if not self._ready.is_set():
            await self.abort()
            raise ToolCallError(
                ToolError.of(
                    "unavailable",
                    self.source.name,
                    f"MCP server {self.source.name!r} did not finish connecting within "
                    f"{timeout_s:g}s{self.stderr_tail()}",
                )
            )
        if self.dead or self.client is None:
            raise ToolCallError(self.source._connect_error(self.failure, self.stderr_tail()))

    def stderr_tail(self, lines: int = 5) -> str:
        if self._stderr_at_end is not None:
            return self._stderr_at_end
        try:
            self._errlog.flush()
            self._errlog.seek(0)
            tail = [ln.rstrip() for ln in self._errlog.read().splitlines() if ln.strip()][-lines:]
        except (OSError, ValueError):
            return ""
        return ("; server stderr: " + " | ".join(tail)) if tail else ""

    def kill(self) -> None:
        """Mark dead and let the owner task shut the client down."""
        self.dead = True
        self._close.set()

    async def abort(self) -> None:
        """Stop a connection stuck before it was ready: cancel its owner task, whose SDK
        client then shuts the server down (its waits are bounded)."""
        self.dead = True
        self._close.set()
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=15)

    async def close(self) -> None:
        self._close.set()
        if asyncio.get_running_loop() is self.loop and not self._task.done():
            with anyio.move_on_after(10):
                await asyncio.shield(self._task)


class McpSource:
    """One MCP server as a tool source; its tools are ``NAME.tool`` to the broker.

    Give exactly one of ``command`` (argv of a stdio server), ``url`` (streamable HTTP) or
    ``server`` (an in-process ``MCPServer``). ``scopes`` are required for every tool of the
    server, ``tool_scopes`` adds scopes per tool name; ``idempotent`` overrides, per tool, what
    the server says of its tools (a call that reached a tool is retried only when it is
    idempotent); ``tenant`` makes the server private to one tenant; ``credential`` names a
    vault entry every caller's tenant must hold, passed as the environment variable
    ``credential_env`` (stdio) or the header ``credential_header`` (HTTP, formatted by
    ``credential_format``).
    """

    def __init__(
        self,
        name: str,
        *,
        command: Sequence[str] | str | None = None,
        url: str | None = None,
        server: Any = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        scopes: Sequence[str] | frozenset[str] = (),
        tool_scopes: Mapping[str, Sequence[str]] | None = None,
        tenant: str | None = None,
        credential: str | None = None,
        credential_env: str | None = None,
        credential_header: str | None = None,
        credential_format: str = "Bearer {}",
        secrets: Sequence[str] = (),
        alternatives: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        expected_s: float = 0.1,
        tool_timeouts: Mapping[str, float] | None = None,
        idempotent: Mapping[str, bool] | None = None,
        connect_timeout_s: float = 30.0,
    ) -> None:
        if not name or "." in name or not name.replace("-", "_").isidentifier():
            raise ToolConfigError(
                f"MCP source name {name!r} must be an identifier (letters, digits, _ or -, no "
                "'.'); fix: name it like 'time' or 'git'"
            )
        given = [x for x in (command, url, server) if x is not None]
        if len(given) != 1:
            raise ToolConfigError(
                f"MCP source {name!r}: give exactly one of command=, url= or server= (got "
                f"{len(given)})"
            )
        if isinstance(command, str):
            command = shlex.split(command)
        if command is not None and not command:
            raise ToolConfigError(f"MCP source {name!r}: command is empty; fix: give its argv")
        if url is not None and not url.startswith(("http://", "https://")):
            raise ToolConfigError(
                f"MCP source {name!r}: url {url!r} is not http(s); fix: give the server's "
                "streamable HTTP endpoint, e.g. http://127.0.0.1:3001/mcp"
            )
        if server is not None and not isinstance(server, _in_process_types()):
            raise ToolConfigError(
                f"MCP source {name!r}: server= takes an mcp MCPServer or Server, not "
                f"{type(server).__name__}"
            )
        if credential is not None:
            if command is not None and credential_env is None:
                raise ToolConfigError(
                    f"MCP source {name!r} needs credential {credential!r}: say how the stdio "
                    "server gets it; fix: credential_env='ENV_VAR_NAME'"
                )
            if url is not None and credential_header is None:
                raise ToolConfigError(
                    f"MCP source {name!r} needs credential {credential!r}: say how the HTTP "
                    "server gets it; fix: credential_header='Authorization'"
                )
            if server is not None:
                raise ToolConfigError(
                    f"MCP source {name!r}: an in-process server cannot receive a credential"
                )
        self.name = name
        self.command = list(command) if command is not None else None
        self.url = url
        self.server = server
        self.env = dict(env or {})
        self.cwd = cwd
        self.tenant = tenant
        self.credential = credential
        self.credential_env = credential_env
        self.credential_header = credential_header
        self.credential_format = credential_format
        self.connect_timeout_s = connect_timeout_s
        self._scopes = frozenset(scopes)
        self._tool_scopes = {k: frozenset(v) for k, v in (tool_scopes or {}).items()}
        self._alternatives = dict(alternatives or {})
        self._timeouts = dict(tool_timeouts or {})
        self._idempotent = dict(idempotent or {})
        self._secrets = frozenset(secrets)
        self._timeout_s = timeout_s
        self._expected_s = expected_s
        self._policies: dict[str, ToolPolicy] = {}
        self._connections: dict[str | None, _Connection] = {}
        self.connects = 0
        """How many connections this source has opened (a replay opens none)."""
        self.policy("")  # check the numbers now, not at the first call

    @classmethod
    def parse(cls, name: str, target: str, **options: Any) -> McpSource:
        """A source from ``CMD_OR_URL``: an http(s) URL, else a command line."""
        if target.startswith(("http://", "https://")):
            return cls(name, url=target, **options)
        return cls(name, command=shlex.split(target), **options)

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http" if self.url else "in-process"

    def describe(self) -> str:
        if self.command:
            return shlex.join(self.command)
        return self.url or f"in-process {type(self.server).__name__}"

    # -- policy (configuration only) -------------------------------------------------------

    def policy(self, remote_name: str) -> ToolPolicy:
        found = self._policies.get(remote_name)
        if found is None:
            timeout = self._timeouts.get(remote_name, self._timeout_s)
            found = ToolPolicy(
                scopes=self._scopes | self._tool_scopes.get(remote_name, frozenset()),
                tenant=self.tenant,
                credential=self.credential,
                secrets=self._secrets,
                alternative=self._alternatives.get(remote_name),
                timeout_s=timeout,
                expected_s=min(self._expected_s, timeout),
                idempotent=self._idempotent.get(remote_name),
            )
            self._policies[remote_name] = found
        return found

    # -- connections -----------------------------------------------------------------------

    def _client(self, credential: str | None, errlog: Any, on_message: Any = None) -> Client:
        # The SDK's own response cache is off: the broker keeps the listing per connection
        # and refreshes it when a tool is missing.
        if self.server is not None:
            return Client(self.server, cache=None, message_handler=on_message)
        if self.command is not None:
            env = dict(self.env)
            if credential is not None and self.credential_env is not None:
                env[self.credential_env] = credential
            params = StdioServerParameters(
                command=self.command[0], args=self.command[1:], env=env or None, cwd=self.cwd
            )
            return Client(
                stdio_client(params, errlog=errlog), cache=None, message_handler=on_message
            )
        assert self.url is not None
        if credential is not None and self.credential_header is not None:
            import httpx2

            headers = {self.credential_header: self.credential_format.format(credential)}
            http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
            return Client(
                streamable_http_client(self.url, http_client=http),
                cache=None,
                message_handler=on_message,
            )
        return Client(self.url, cache=None, message_handler=on_message)

    def _live(self, tenant: str) -> _Connection | None:
        """The connection for ``tenant`` when it is live, ready and this loop's (the common
        case, found without a coroutine), else None."""
        conn = self._connections.get(tenant if self.credential is not None else None)
        if (
            conn is not None
            and conn.client is not None
            and not conn.dead
            and conn.loop is asyncio.get_running_loop()
        ):
            return conn
        return None

    async def connection(self, tenant: str, credential: str | None) -> _Connection:
        """The live connection for ``tenant`` (one shared when no credential is needed)."""
        live = self._live(tenant)
        if live is not None:
            return live
        key = tenant if self.credential is not None else None
        conn = self._connections.get(key)
        loop = asyncio.get_running_loop()
        if conn is not None and (conn.dead or conn.loop is not loop or conn.loop.is_closed()):
            if conn.loop is loop:
                await conn.close()
            self._connections.pop(key, None)
            conn = None
        if conn is None:
            conn = _Connection(self, credential)
            self._connections[key] = conn
            self.connects += 1
        await conn.ready(self.connect_timeout_s)
        return conn

    def _connect_error(self, exc: BaseException | None, stderr: str) -> ToolError:
        cause = _leaf(exc) if exc is not None else None
        if isinstance(cause, FileNotFoundError | PermissionError):
            return ToolError.of(
                "unavailable",
                self.name,
                f"cannot start MCP server {self.name!r} ({self.describe()}): {cause}; fix: "
                "install it or correct the command",
                retryable=False,
            )
        if isinstance(cause, ValidationError):
            # The server answered, but not in MCP's shape: a retry gets the same answer.
            first = str(cause).splitlines()[0]
            return ToolError.of(
                "internal",
                self.name,
                f"MCP server {self.name!r} sent a malformed answer while connecting: {first}",
            )
        if isinstance(cause, MCPError) and not _closed(cause):
            category, retryable = _CODES.get(cause.code, ("internal", False))
            return ToolError.of(
                category,  # type: ignore[arg-type]
                self.name,
                f"MCP server {self.name!r} refused the connection: {cause.message}",
                retryable=retryable and category != "unavailable",
                code=cause.code,
            )
        what = f"{type(cause).__name__}: {cause}" if cause is not None else "it closed"
        return ToolError.of(
            "unavailable",
            self.name,
            f"cannot connect to MCP server {self.name!r} ({self.describe()}): {what}{stderr}",
        )

    # -- the ToolSource protocol -----------------------------------------------------------

    def _info(self, conn: _Connection, t: Any) -> ToolInfo:
        # Built once per tool and listing: calls reuse it and its compiled validator.
        found = conn.infos.get(t.name)
        if found is None:
            schema = dict(t.input_schema or {"type": "object"})
            policy = self.policy(t.name)
            hints = getattr(t, "annotations", None)
            said = bool(hints and (hints.idempotent_hint or hints.read_only_hint))
            found = conn.infos[t.name] = ToolInfo(
                name=f"{self.name}.{t.name}",
                source=self.name,
                remote_name=t.name,
                description=t.description or "",
                version=conn.version,
                input_schema=schema,
                policy=policy,
                checker=SchemaValidator(schema),
                # MCP's default for idempotentHint is false: only a tool that says so, or a
                # policy that does, is called again after it was reached.
                idempotent=policy.idempotent if policy.idempotent is not None else said,
            )
        return found

    async def _connect_for(self, tool: str, tenant: str, credential: str | None) -> _Connection:
        """The connection, with a failure to connect reported as the named tool's."""
        try:
            return await self.connection(tenant, credential)
        except ToolCallError as exc:
            raise ToolCallError(exc.error.model_copy(update={"tool": tool})) from None

    async def resolve(self, remote_name: str, tenant: str, credential: str | None) -> ToolInfo:
        conn = self._live(tenant) or await self._connect_for(
            f"{self.name}.{remote_name}", tenant, credential
        )
        t = conn.tools.get(remote_name)
        if t is None:
            # The server's tool list may have changed since we connected: look once more.
            try:
                await conn.refresh()
            except Exception as exc:
                raise ToolCallError(self._call_error(remote_name, exc, conn)) from None
            t = conn.tools.get(remote_name)
        if t is None:
            near = closest(remote_name, conn.tools)
            raise ToolCallError(
                ToolError.of(
                    "not_found",
                    f"{self.name}.{remote_name}",
                    f"MCP server {self.name!r} has no tool {remote_name!r} (it has "
                    f"{len(conn.tools)}: {', '.join(sorted(conn.tools)[:12])})",
                    alternative=f"{self.name}.{near}" if near else None,
                )
            )
        return self._info(conn, t)

    def validate(self, info: ToolInfo, arguments: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        validator = info.checker
        if not isinstance(validator, SchemaValidator):
            validator = SchemaValidator(info.input_schema)
        hints = validator.hints(arguments)
        return (None, hints) if hints else (dict(arguments), {})

    async def invoke(
        self,
        info: ToolInfo,
        arguments: Mapping[str, Any],
        timeout_s: float,
        tenant: str,
        credential: str | None,
    ) -> ToolResult:
        conn = self._live(tenant) or await self._connect_for(info.name, tenant, credential)
        client = conn.client
        if client is None:
            error = self._connect_error(conn.failure, conn.stderr_tail())
            raise ToolCallError(error.model_copy(update={"tool": info.name}))
        seen = conn.protocol_errors
        try:
            # The SDK's own request timeout is the one deadline (it cancels the request).
            result = await client.call_tool(
                info.remote_name, dict(arguments), read_timeout_seconds=timeout_s
            )
        except Exception as exc:
            raise ToolCallError(self._call_error(info.remote_name, exc, conn, seen)) from None
        try:
            content = [_dump_block(c) for c in result.content]
        except (AttributeError, TypeError) as exc:
            raise ToolCallError(
                ToolError.of(
                    "internal",
                    info.name,
                    f"malformed tool result from MCP server {self.name!r}: {exc}",
                )
            ) from None
        return ToolResult(
            content=content,
            structured=result.structured_content,
            is_error=bool(result.is_error),
        )

    def _call_error(
        self, remote_name: str, exc: BaseException, conn: _Connection, seen: int = 0
    ) -> ToolError:
        qualified = f"{self.name}.{remote_name}"
        cause = _leaf(exc)
        if isinstance(cause, MCPError):
            category, retryable = _CODES.get(cause.code, ("internal", False))
            if cause.code == -32000 and not _closed(cause):
                # -32000 to -32099 are the server's own errors; only the SDK's "Connection
                # closed" means the connection is gone.
                category, retryable = "internal", False
            if cause.code == -32001 and conn.protocol_errors > seen:
                category, retryable = "internal", False
                cause = MCPError(
                    cause.code,
                    "the server answered with a message that is not valid JSON-RPC "
                    f"({conn.last_protocol_error}), so the call could only time out",
                )
            if category == "unavailable":
                conn.kill()  # the next call reconnects
            detail = cause.message
            if category == "unavailable":
                detail += conn.stderr_tail()
            return ToolError.of(
                category,  # type: ignore[arg-type]
                qualified,
                f"MCP server {self.name!r}: {detail}",
                retryable=retryable,
                code=cause.code,
            )
        if isinstance(cause, ValidationError):
            first = str(cause).splitlines()[0]
            return ToolError.of(
                "internal",
                qualified,
                f"malformed response from MCP server {self.name!r}: {first}",
            )
        if isinstance(cause, TimeoutError):
            if conn.protocol_errors > seen:
                return ToolError.of(
                    "internal",
                    qualified,
                    f"MCP server {self.name!r} answered with a message that is not valid "
                    f"JSON-RPC ({conn.last_protocol_error}), so the call could only time out",
                )
            return ToolError.of("timeout", qualified, f"MCP server {self.name!r} timed out")
        # A broken pipe, a closed stream, a refused HTTP connection: the server is gone.
        conn.kill()
        return ToolError.of(
            "unavailable",
            qualified,
            f"lost the connection to MCP server {self.name!r}: {type(cause).__name__}: "
            f"{cause}{conn.stderr_tail()}",
        )

    async def list(self, tenant: str, credential: str | None) -> list[ToolInfo]:
        conn = await self.connection(tenant, credential)
        return [self._info(conn, conn.tools[n]) for n in sorted(conn.tools)]

    async def aclose(self) -> None:
        conns = list(self._connections.values())
        self._connections.clear()
        for conn in conns:
            await conn.close()


@dataclass(frozen=True)
class ServerTools:
    """The tools an MCP server offers, as :func:`list_server_tools` found them."""

    server: str
    """The server's command line or URL."""
    transport: str
    """How it was reached: ``stdio`` or ``http``."""
    tools: tuple[ToolInfo, ...]
    """Sorted by name; each named ``NAME.tool``, with its input schema."""


async def list_server_tools(server: str, *, name: str = "server") -> ServerTools:
    """Connect to the MCP server ``server``, list its tools, and disconnect.

    ``server`` is ``CMD_OR_URL``: an http(s) URL (streamable HTTP), else a command line
    started as a stdio server; ``name`` is the source's name, so its tools are
    ``NAME.tool``. Nothing is recorded and no principal is checked (a broker's
    :meth:`~agents.tools.ToolBroker.list_tools` is the recorded, authorised listing). A bad
    name, command or URL is a :class:`~agents.errors.ToolConfigError`; a server that cannot
    be started, reached or listed is a :class:`~agents.errors.ToolCallError`.
    """
    source = McpSource.parse(name, server)
    try:
        tools = await source.list("default", None)
    finally:
        await source.aclose()
    return ServerTools(source.describe(), source.transport, tuple(tools))


def _dump_block(block: Any) -> Any:
    """A content block as JSON data: ``model_dump(mode="json", by_alias=True,
    exclude_none=True)``, without the wrapper for a block that does not override it (one
    per block of every call)."""
    cls = type(block)
    if cls.model_dump is BaseModel.model_dump:
        return cls.__pydantic_serializer__.to_python(
            block, mode="json", by_alias=True, exclude_none=True
        )
    return block.model_dump(mode="json", by_alias=True, exclude_none=True)


def _closed(exc: MCPError) -> bool:
    """The SDK's own "the connection is gone" (code -32000, which servers may use too)."""
    return exc.code == -32000 and exc.message == "Connection closed"


def _leaf(exc: BaseException) -> BaseException:
    """The first real cause inside nested exception groups (the SDK's task groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
