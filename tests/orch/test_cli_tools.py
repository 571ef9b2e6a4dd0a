"""``orch tools list`` and ``orch tools call`` against the real PyPI mcp-server-time (stdio)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.tools import SQLiteAuditLog
from orch.cli import app

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
