"""``orch tools``: list an MCP server's tools, call one through the broker.

``orch tools list --server CMD_OR_URL`` connects (stdio for a command line, streamable HTTP
for a URL), discovers the tools and prints each with its arguments. ``orch tools call TOOL
--server CMD_OR_URL --arg k=v --principal ID --tenant T --scope S`` makes one call through
every stage of the broker, as a recorded run in the store (``orch show`` / ``orch replay``
work on it, and the replay starts no server), with an audit entry in ``tools-audit.db``
next to a directory store.

The commands parse options, call the library (:func:`~agents.tools.list_server_tools`,
:func:`~agents.tools.call_tool_recorded`) and render what it returns; they must never
compute anything a program could not get from the library too. What a server says is
untrusted: it is printed as inert text, never as markup.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any

import anyio
import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from agents.errors import ToolCallError
from agents.tools._mcp_source import ServerTools, list_server_tools
from agents.tools._tool import ToolInfo
from agents.tools.cli_call import RecordedToolCall, ToolCallRequest, call_tool_recorded
from orch.cli.common import (
    CliError,
    JsonOpt,
    StoreOpt,
    emit_json,
    err,
    open_cli_store,
    out,
    user_errors,
)
from orch.render import inert

__all__ = ["tools_app"]

tools_app = typer.Typer(
    name="tools",
    help="MCP tools: list a server's tools, call one through the broker (recorded).",
    no_args_is_help=True,
)

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        help="The MCP server: an http(s) URL (streamable HTTP) or a command line (stdio), "
        "e.g. 'python -m mcp_server_time'.",
    ),
]
NameOpt = Annotated[
    str, typer.Option("--name", help="The server's name in the broker: tools are NAME.tool.")
]
ArgOpt = Annotated[
    list[str] | None,
    typer.Option("--arg", "-a", help="An argument KEY=VALUE (JSON or text). Repeatable."),
]
ArgsOpt = Annotated[str | None, typer.Option("--args", help="All arguments as one JSON object.")]
ScopeOpt = Annotated[
    list[str] | None, typer.Option("--scope", "-s", help="A scope the caller holds.")
]
RequiresOpt = Annotated[
    list[str] | None,
    typer.Option("--requires", help="A scope the server's tools require. Repeatable."),
]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="Seconds the call may take.")]


# -- parsing options ------------------------------------------------------------------------


def _arguments(pairs: list[str], raw: str | None) -> dict[str, Any]:
    """``--args JSON`` and the ``--arg KEY=VALUE`` pairs (which win) as one object."""
    args: dict[str, Any] = {}
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise CliError(f"--args is not JSON ({exc})", "e.g. --args '{\"a\": 1}'") from None
        if not isinstance(parsed, dict):
            raise CliError("--args must be a JSON object", "e.g. --args '{\"a\": 1}'")
        args.update(parsed)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--arg {pair!r} is not KEY=VALUE", "e.g. --arg timezone=UTC")
        try:  # JSON when it parses (numbers, booleans, objects), else the text
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    return args


def _request(fields: dict[str, Any]) -> ToolCallRequest:
    """The request the options describe, or one line naming the first bad option."""
    try:
        return ToolCallRequest.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"{where}: {first['msg']}") from None


# -- rendering ------------------------------------------------------------------------------


def _signature(info: ToolInfo) -> str:
    """``name*: type, ...`` of a tool's arguments (``*``: required)."""
    props = info.input_schema.get("properties") or {}
    required = set(info.input_schema.get("required") or [])
    return ", ".join(
        f"{k}{'*' if k in required else ''}: {(v or {}).get('type', 'any')}"
        for k, v in props.items()
    )


def _tools_table(listing: ServerTools) -> Table:
    title = f"{len(listing.tools)} tools of {listing.server} ({listing.transport})"
    table = Table(title=Text(inert(title)))
    for col in ("tool", "arguments (* required)", "description"):
        table.add_column(col, overflow="fold")
    for info in listing.tools:
        first = (info.description or "").strip().splitlines()
        table.add_row(
            Text(inert(info.name)),
            Text(inert(_signature(info) or "-")),
            Text(inert(first[0] if first else "")),
        )
    return table


def _print_response(call: RecordedToolCall) -> None:
    """The result on stdout, or the structured error on stderr; then the run id."""
    response = call.response
    if response.ok and response.result is not None:
        res = response.result
        shown = res.text if res.text else json.dumps(res.structured, indent=2)
        out.print(Text(inert(shown, multiline=True)), highlight=False)
    elif response.error is not None:
        e = response.error
        line = Text(inert(f"✘ {e.category}"), style="red")
        line.append(inert(f" {response.tool}: {e.message}"))
        err.print(line, highlight=False)
        for k, v in sorted(e.hints.items()):
            err.print(Text(inert(f"  {k}: {v}")), highlight=False)
        if e.alternative:
            err.print(Text(inert(f"  try: {e.alternative}")), highlight=False)
        if e.retryable:
            err.print(f"  retryable (gave up after {response.attempts} attempts)")
    err.print(f"[dim]recorded as run {call.run_id}[/]")


# -- commands -------------------------------------------------------------------------------


@tools_app.command("list")
@user_errors
def list_tools(
    server: ServerOpt,
    name: NameOpt = "server",
    as_json: Annotated[bool, typer.Option("--json", help="Print the tools as JSON.")] = False,
) -> None:
    """Connect to an MCP server and list its tools with their arguments."""
    try:
        listing = anyio.run(partial(list_server_tools, server, name=name))
    except ToolCallError as exc:
        raise CliError(exc.error.message, "check the command or URL") from None
    if as_json:
        emit_json([info.summary() for info in listing.tools])
    else:
        out.print(_tools_table(listing))


@tools_app.command("call")
@user_errors
def call_tool(
    tool: Annotated[str, typer.Argument(help="The tool: its name on the server, or NAME.tool.")],
    server: ServerOpt,
    arg: ArgOpt = None,
    args_json: ArgsOpt = None,
    principal: Annotated[str, typer.Option("--principal", help="Who calls.")] = "cli",
    tenant: Annotated[str, typer.Option("--tenant", help="The caller's tenant.")] = "default",
    scope: ScopeOpt = None,
    requires: RequiresOpt = None,
    name: NameOpt = "server",
    timeout: TimeoutOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Call one tool through the broker as PRINCIPAL, recorded as a run. Exit 1 on failure."""
    request = _request(
        {
            "server": server,
            "name": name,
            "tool": tool,
            "arguments": _arguments(arg or [], args_json),
            "principal": {"id": principal, "tenant": tenant, "scopes": scope or []},
            "requires": sorted(requires or ()),
            "timeout_s": timeout,
        }
    )
    with open_cli_store(store, create=True, writable=True) as st:
        call = anyio.run(partial(call_tool_recorded, request, st))
    if as_json:
        emit_json(call.to_json())
    else:
        _print_response(call)
    if not call.response.ok:
        raise typer.Exit(1)
