"""Helpers for the tool broker tests: locating real MCP servers, free ports, child processes,
a fake clock.

Real servers: PyPI ``mcp-server-time`` and ``mcp-server-git`` (installed by the ``dev`` extra)
run over stdio with this interpreter; npm ``@modelcontextprotocol/server-everything`` runs
with node over stdio and over streamable HTTP on 127.0.0.1. Its entry script is found through
``$ORCH_MCP_EVERYTHING`` (``.ci/run`` installs it and sets that). A test whose server is
missing is skipped, unless ``ORCH_REQUIRE_MCP=1`` (set by CI), when it fails instead: CI must
never pass by skipping the integration tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def require(what: str, available: bool) -> None:
    """Skip (or, under ORCH_REQUIRE_MCP=1, fail) when a real server is not installed."""
    if available:
        return
    message = f"{what} is not installed"
    if os.environ.get("ORCH_REQUIRE_MCP") == "1":
        pytest.fail(message + " (ORCH_REQUIRE_MCP=1: CI must run every real-server test)")
    pytest.skip(message)


def everything_script() -> str:
    """Path of server-everything's dist/index.js (skips or fails when absent)."""
    path = os.environ.get("ORCH_MCP_EVERYTHING", "")
    found = bool(path) and Path(path).is_file() and shutil.which("node") is not None
    require("npm @modelcontextprotocol/server-everything ($ORCH_MCP_EVERYTHING) with node", found)
    return path


def python_server(module: str) -> list[str]:
    """argv of a PyPI MCP server run by this interpreter (skips or fails when absent)."""
    require(f"PyPI {module.replace('_', '-')}", importlib.util.find_spec(module) is not None)
    return [sys.executable, "-m", module]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_pids(needle: str) -> list[int]:
    """Live child processes of this test process whose command line contains ``needle``."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            state, ppid = fields[0], int(fields[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me and needle in cmdline and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


class FakeClock:
    """A clock that moves only when told to (and counts its reads)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
