"""Fixtures for the tool broker tests: real MCP servers, principals, quiet server logs.

See ``tool_servers.py`` for how real servers are found (and why CI fails rather than skips).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# The wire-protocol servers of the model adapter tests live one directory up.
sys.path.insert(0, str(Path(__file__).parent.parent))
from tool_servers import everything_script, free_port

from agents.tools import Principal


@pytest.fixture(autouse=True)
def _quiet_mcp_server_logs() -> Iterator[None]:
    # The in-process MCPServer logs every failed tool call with rich; tests provoke many.
    logger = logging.getLogger("mcp")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture
def everything_stdio() -> list[str]:
    """argv of server-everything over stdio."""
    return ["node", everything_script(), "stdio"]


@pytest.fixture
def everything_http(tmp_path: Path) -> Iterator[str]:
    """server-everything over streamable HTTP on a free port; yields its URL (127.0.0.1)."""
    script = everything_script()
    port = free_port()
    log = tmp_path / "everything-http.log"
    # stderr goes to a file, not a pipe: a pipe nobody reads would fill and stall the server.
    with log.open("w") as errlog:
        proc = subprocess.Popen(
            ["node", script, "streamableHttp"],
            env={**os.environ, "PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=errlog,
        )
    try:
        deadline = time.monotonic() + 30
        while "listening on port" not in log.read_text():
            if proc.poll() is not None:
                pytest.fail(
                    f"server-everything (HTTP) exited with {proc.returncode}: {log.read_text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail("server-everything (HTTP) did not start within 30 s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def alice() -> Principal:
    """A principal of tenant 'acme' holding every scope."""
    return Principal(id="alice", tenant="acme", scopes=frozenset({"*"}))
