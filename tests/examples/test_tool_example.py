"""The tool example: a real MCP server (mcp-server-time over stdio) behind the broker; the run
verifies, its audit chain is intact, and it replays clean with no server able to start."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import anyio
import pytest
from example_modules import load_example

from agents.tools import SQLiteAuditLog
from orch._loader import load_pipeline
from orch._replay import areplay, recorded_origin
from traces._open import open_store
from traces._verify import verify_store


def test_tool_example_runs_audits_and_replays_without_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("mcp_server_time") is None:
        if os.environ.get("ORCH_REQUIRE_MCP") == "1":
            pytest.fail("mcp-server-time is not installed (CI must run this test)")
        pytest.skip("mcp-server-time is not installed")
    module = load_example("tool_agent")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    assert module.main() == 0
    out = capsys.readouterr().out
    assert "refused: invalid_arguments" in out and "target_timezone" in out
    assert "inside Tokyo office hours" in out or "outside Tokyo office hours" in out
    assert "(chain intact)" in out
    audit = SQLiteAuditLog(tmp_path / ".orch" / "tools-audit.db")
    outcomes = [e.outcome for e in audit.entries("demo")]
    assert outcomes == ["invalid_arguments", "ok", "ok", "ok"]
    assert audit.verify("demo") == []
    audit.close()
    with open_store() as store:
        assert verify_store(store).ok
        (run_id,) = store.run_ids()
        origin = recorded_origin(store, run_id)
        assert origin is not None
        services = module.services()
        # A server command that cannot start: replay must not need it.
        services["tools"] = module.broker(command=[str(tmp_path / "no-such-server")])
        report = anyio.run(
            functools.partial(areplay, load_pipeline(origin), run_id, store, services=services)
        )
        assert report.clean, report.first_divergence
        assert services["tools"].source("time").connects == 0
