"""The MCP server of ``tool_broker_overhead.py``: one trivial tool, ``add(a, b)``.

The benchmark imports ``server`` to reach it in-process and runs this file with
``sys.executable`` to reach the very same definition over stdio.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench")


@server.tool()
def add(a: int, b: int) -> int:
    """The sum of two integers."""
    return a + b


if __name__ == "__main__":
    server.run("stdio")
