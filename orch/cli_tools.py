"""``orch tools``: list an MCP server's tools, call one through the broker.

``orch tools list --server CMD_OR_URL`` connects (stdio for a command line, streamable HTTP
for a URL), discovers the tools and prints each with its arguments. ``orch tools call TOOL
--server CMD_OR_URL --arg k=v --principal ID --tenant T --scope S`` makes one call through
every stage of the broker, as a recorded run in the store (``orch show`` / ``orch replay``
work on it, and the replay starts no server), with an audit entry in
``tools-audit.db`` next to a directory store. Part of the CLI, so it may wire ``agents``
into the engine; it imports them only when a command runs.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.table import Table
from rich.text import Text

from .render import inert

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


def _arguments(pairs: list[str], raw: str | None) -> dict[str, Any]:
    from . import cli

    args: dict[str, Any] = {}
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise cli.CliError(f"--args is not JSON ({exc})", "e.g. --args '{\"a\": 1}'") from None
        if not isinstance(parsed, dict):
            raise cli.CliError("--args must be a JSON object", "e.g. --args '{\"a\": 1}'")
        args.update(parsed)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise cli.CliError(f"--arg {pair!r} is not KEY=VALUE", "e.g. --arg timezone=UTC")
        try:  # JSON when it parses (numbers, booleans, objects), else the text
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    return args


@tools_app.command("list")
def list_tools(
    server: ServerOpt,
    name: NameOpt = "server",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Connect to an MCP server and list its tools with their arguments."""
    from . import cli  # the shared console, error handling and JSON output (imported late:
    # orch.cli imports this module)

    @cli.user_errors
    def run() -> None:
        from agents.tools import McpSource, ToolCallError, ToolConfigError

        try:
            source = McpSource.parse(name, server)
        except ToolConfigError as exc:
            raise cli.CliError(str(exc)) from None

        async def discover() -> list[Any]:
            try:
                return await source.list("cli", None)
            finally:
                await source.aclose()

        try:
            infos = anyio.run(discover)
        except ToolCallError as exc:
            raise cli.CliError(exc.error.message, "check the command or URL") from None
        if as_json:
            cli.emit_json([i.summary() for i in infos])
            return
        # What a server says about its tools is untrusted: inert text, never markup.
        table = Table(
            title=Text(inert(f"{len(infos)} tools of {source.describe()} ({source.transport})"))
        )
        for col in ("tool", "arguments (* required)", "description"):
            table.add_column(col, overflow="fold")
        for info in infos:
            props = info.input_schema.get("properties") or {}
            required = set(info.input_schema.get("required") or [])
            shown = ", ".join(
                f"{k}{'*' if k in required else ''}: {(v or {}).get('type', 'any')}"
                for k, v in props.items()
            )
            first = (info.description or "").strip().splitlines()
            table.add_row(
                Text(inert(info.name)),
                Text(inert(shown or "-")),
                Text(inert(first[0] if first else "")),
            )
        cli.out.print(table)

    run()


@tools_app.command("call")
def call_tool(
    tool: Annotated[str, typer.Argument(help="The tool: its name on the server, or NAME.tool.")],
    server: ServerOpt,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", "-a", help="An argument KEY=VALUE (JSON or text). Repeatable."),
    ] = None,
    args_json: Annotated[
        str | None, typer.Option("--args", help="All arguments as one JSON object.")
    ] = None,
    principal: Annotated[str, typer.Option("--principal", help="Who calls.")] = "cli",
    tenant: Annotated[str, typer.Option("--tenant", help="The caller's tenant.")] = "default",
    scope: Annotated[
        list[str] | None, typer.Option("--scope", "-s", help="A scope the caller holds.")
    ] = None,
    requires: Annotated[
        list[str] | None,
        typer.Option("--requires", help="A scope the server's tools require. Repeatable."),
    ] = None,
    name: NameOpt = "server",
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds the call may take.")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Store location (default: $ORCH_STORE or .orch/).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Call one tool through the broker as PRINCIPAL, recorded as a run. Exit 1 on failure."""
    from . import cli  # the shared console, error handling and JSON output (imported late:
    # orch.cli imports this module)

    @cli.user_errors
    def run() -> int:
        from pydantic import ValidationError

        from agents.tools import Principal, SQLiteAuditLog, cli_call

        try:
            who = Principal(id=principal, tenant=tenant, scopes=frozenset(scope or ()))
            request = cli_call.ToolCallRequest(
                server=server,
                name=name,
                tool=tool,
                arguments=_arguments(arg or [], args_json),
                principal=who,
                requires=sorted(requires or ()),
                timeout_s=timeout,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise cli.CliError(f"{where}: {first['msg']}") from None
        from .runtime import arun

        with cli._store(store, create=True, writable=True) as st:
            services: dict[str, Any] = {}
            location = Path(st.location)
            audit = None
            if location.is_dir():
                audit = SQLiteAuditLog(location / "tools-audit.db")
                services["tools_audit"] = audit
            result = anyio.run(
                partial(
                    arun,
                    cli_call.pipeline,
                    {"request": request},
                    store=st,
                    services=services,
                    origin={"pipeline": f"{Path(cli_call.__file__).resolve()}:pipeline"},
                )
            )
            if audit is not None:
                audit.close()
        if not result.ok:
            raise cli.CliError(f"the call's run failed: {result.error}")
        response = result.outputs["response"]
        if as_json:
            cli.emit_json(
                {"run_id": result.run_id, "root_hash": result.root_hash}
                | response.model_dump(mode="json")
            )
        elif response.ok:
            res = response.result
            # The server's answer is untrusted text: shown, never interpreted (nor as markup).
            shown = res.text if res.text else json.dumps(res.structured, indent=2)
            cli.out.print(Text(inert(shown, multiline=True)), highlight=False)
            cli.err.print(f"[dim]recorded as run {result.run_id}[/]")
        else:
            e = response.error
            line = Text(inert(f"✘ {e.category}"), style="red")
            line.append(inert(f" {response.tool}: {e.message}"))
            cli.err.print(line, highlight=False)
            for k, v in sorted(e.hints.items()):
                cli.err.print(Text(inert(f"  {k}: {v}")), highlight=False)
            if e.alternative:
                cli.err.print(Text(inert(f"  try: {e.alternative}")), highlight=False)
            if e.retryable:
                cli.err.print(f"  retryable (gave up after {response.attempts} attempts)")
            cli.err.print(f"[dim]recorded as run {result.run_id}[/]")
        return 0 if response.ok else 1

    code = run()
    if code:
        raise typer.Exit(code)
