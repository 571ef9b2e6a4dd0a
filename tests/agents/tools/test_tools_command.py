"""``orch tools list`` and ``orch tools call`` against the real PyPI mcp-server-time (stdio),
and the library functions behind them (``list_server_tools``, ``call_tool_recorded``).

The commands come from ``agents`` through the ``orch.cli`` entry-point group.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from agents.tools import (
    AUDIT_FILE,
    MemoryAuditLog,
    Principal,
    SQLiteAuditLog,
    ToolCallRequest,
    call_tool_recorded,
    list_server_tools,
)
from agents.tools.cli_call import pipeline
from orch._replay import areplay
from orch.cli import app
from orch.errors import OrchError
from traces import DirectoryStore, MemoryStore

SERVER = f"{sys.executable} -m mcp_server_time --local-timezone UTC"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    if importlib.util.find_spec("mcp_server_time") is None:
        if os.environ.get("ORCH_REQUIRE_MCP") == "1":
            pytest.fail("mcp-server-time is not installed (CI must run these tests)")
        pytest.skip("mcp-server-time is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    return CliRunner()


def test_list_shows_each_tool_with_its_arguments(cli: CliRunner) -> None:
    result = cli.invoke(app, ["tools", "list", "--server", SERVER, "--name", "time"])
    assert result.exit_code == 0, result.output
    assert "time.convert_time" in result.stdout and "time.get_current_time" in result.stdout
    assert "timezone*: string" in result.stdout
    data = json.loads(cli.invoke(app, ["tools", "list", "--server", SERVER, "--json"]).stdout)
    names = sorted(t["name"] for t in data)
    assert names == ["server.convert_time", "server.get_current_time"]
    schema = next(t for t in data if t["name"] == "server.convert_time")["input_schema"]
    assert set(schema["required"]) == {"source_timezone", "time", "target_timezone"}


def test_call_is_recorded_audited_and_replays(cli: CliRunner, tmp_path: Path) -> None:
    args = ["tools", "call", "convert_time", "--server", SERVER, "--name", "time"]
    args += ["-a", "source_timezone=UTC", "-a", "time=12:00", "-a", "target_timezone=Asia/Tokyo"]
    result = cli.invoke(app, [*args, "--principal", "bob", "--tenant", "acme", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] and data["tool"] == "time.convert_time"
    assert data["result"]["structured"]["target"]["datetime"][11:16] == "21:00"
    audit = SQLiteAuditLog(tmp_path / ".orch" / "tools-audit.db")
    (entry,) = audit.entries("acme")
    assert (entry.principal, entry.tool, entry.outcome, entry.invoked) == (
        "bob",
        "time.convert_time",
        "ok",
        True,
    )
    audit.close()
    assert cli.invoke(app, ["verify", data["run_id"]]).exit_code == 0
    replay = cli.invoke(app, ["replay", data["run_id"]])
    assert replay.exit_code == 0, replay.output
    assert "clean replay" in replay.stdout


def test_a_denied_call_exits_1_names_the_scope_and_is_audited(
    cli: CliRunner, tmp_path: Path
) -> None:
    argv = ["tools", "call", "get_current_time", "--server", SERVER, "-a", "timezone=UTC"]
    argv += ["--requires", "time:read", "--scope", "files:read", "--tenant", "acme"]
    result = cli.invoke(app, argv)
    assert result.exit_code == 1
    assert "permission_denied" in result.stderr and "lacks scope time:read" in result.stderr
    audit = SQLiteAuditLog(tmp_path / ".orch" / "tools-audit.db")
    (entry,) = audit.entries("acme")
    assert entry.outcome == "permission_denied" and not entry.invoked
    audit.close()


def test_invalid_arguments_print_a_hint_per_argument(cli: CliRunner) -> None:
    result = cli.invoke(
        app, ["tools", "call", "get_current_time", "--server", SERVER, "--args", '{"tz": "UTC"}']
    )
    assert result.exit_code == 1
    assert "invalid_arguments" in result.stderr
    assert "timezone: required argument is missing" in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tools", "call", "x", "--server", SERVER, "-a", "novalue"], "is not KEY=VALUE"),
        (["tools", "call", "x", "--server", SERVER, "--args", "[1]"], "must be a JSON object"),
        (["tools", "list", "--server", "/no/such/server --flag"], "cannot start MCP server"),
        (["tools", "list", "--server", SERVER, "--name", "a.b"], "must be an identifier"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(cli: CliRunner, argv: list[str], message: str) -> None:
    result = cli.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


# -- the library behind the commands ------------------------------------------------------

# The spec hash of the one-step pipeline every `orch tools call` run records (as made before
# the command moved into agents): if it changed, none of those runs would replay clean.
TOOLS_CALL_SPEC = "sha256:b18042af4b433c2f75828a4dfd44201c9a072c71289a29dcbf33f4caa2da58d0"


def test_the_recorded_call_pipeline_keeps_its_spec_hash() -> None:
    assert pipeline.spec_hash == TOOLS_CALL_SPEC


def test_list_server_tools_returns_what_the_command_prints(cli: CliRunner) -> None:
    listing = anyio.run(functools.partial(list_server_tools, SERVER, name="time"))
    assert listing.transport == "stdio" and listing.server == SERVER
    assert [t.name for t in listing.tools] == ["time.convert_time", "time.get_current_time"]
    shown = json.loads(
        cli.invoke(app, ["tools", "list", "--server", SERVER, "--name", "time", "--json"]).stdout
    )
    assert shown == [t.summary() for t in listing.tools]


def request(**fields: object) -> ToolCallRequest:
    return ToolCallRequest.model_validate(
        {
            "server": SERVER,
            "name": "time",
            "tool": "get_current_time",
            "arguments": {"timezone": "UTC"},
            "principal": {"id": "bob", "tenant": "acme"},
            **fields,
        }
    )


async def test_call_tool_recorded_audits_where_asked_and_replays(tmp_path: Path) -> None:
    memory = MemoryStore()
    log = MemoryAuditLog()
    call = await call_tool_recorded(request(), memory, audit=log)
    assert call.response.ok and call.response.tool == "time.get_current_time"
    assert call.audit_path is None
    assert [(e.principal, e.outcome) for e in log.entries("acme")] == [("bob", "ok")]
    assert call.to_json()["run_id"] == call.run_id and call.to_json()["ok"] is True
    report = await areplay(pipeline, call.run_id, memory)
    assert report.clean and report.result.root_hash == call.root_hash

    # A directory store keeps the audit log beside it (another store keeps none: below).
    folder = DirectoryStore(tmp_path / "store")
    beside = await call_tool_recorded(request(), folder)
    assert beside.audit_path == tmp_path / "store" / AUDIT_FILE
    audit = SQLiteAuditLog(tmp_path / "store" / AUDIT_FILE)
    assert [e.run_id for e in audit.entries("acme")] == [beside.run_id]
    audit.close()


async def test_a_refused_call_is_a_response_and_a_bad_source_an_error() -> None:
    denied = await call_tool_recorded(
        request(requires=["time:read"], principal=Principal(id="eve", tenant="acme")),
        MemoryStore(),
    )
    assert not denied.response.ok and denied.response.error is not None
    assert denied.response.error.category == "permission_denied"
    assert denied.audit_path is None  # a memory store has no folder to keep one in
    with pytest.raises(
        # the name records give it (pinned where it was defined until 0.1.0)
        OrchError,
        match=r"agents\.tools\.errors\.ToolConfigError: .*MCP source name 'a\.b' must be",
    ):
        await call_tool_recorded(request(name="a.b"), MemoryStore())
