"""A stdio MCP server for fault injection, written as raw newline-delimited JSON-RPC.

The broker's fault tests need answers no well-behaved server gives (a result whose
``content`` is not a list, a line that is not JSON), so this server speaks the protocol by
hand, with the standard library only, instead of through the SDK's ``MCPServer``. It does
what the SDK client (``mcp`` 2.x, ``mode="auto"``) needs to connect: ``server/discover``
is answered with method-not-found (-32601), so the client falls back to the legacy
``initialize`` handshake, which is answered at the version the client proposes;
``notifications/initialized`` and every other notification are accepted silently.

Every tool is always listed; what a tool does may depend on the process's *generation*:
how many processes of this server the log had seen start before this one (0 for the first),
so a tool can fail in the first process and work in the one a retry reconnects to.

==================  =============================================================
tool                behaviour
==================  =============================================================
``echo``            returns its ``text`` argument (schema: ``text`` string, required)
``add``             returns ``a + b`` (integers, required), also as structured content
``hang``            never answers
``hang_first``      generation 0 never answers; later ones return ``served by pid N``
``exit_mid_call``   the process exits (status 3) on receiving the call
``exit_first``      generation 0 exits on receiving the call; later ones answer
``debit_first``     as ``exit_first``, but not declared idempotent (every other fault
                    tool declares ``idempotentHint``, so the broker may retry it)
``malformed``       a result whose ``content`` is a string, not a list
``malformed_block`` a result whose one content block is an image without data
``not_json``        a line that is not JSON at all instead of the response
``is_error``        a result flagged ``isError: true``
``bad_params``      the JSON-RPC error -32602 (invalid params)
``server_error``    the JSON-RPC error -32000, a server-defined application error
``pid``             returns this process's pid
==================  =============================================================

``--mode`` (or ``$FAULTY_MODE``) changes the server as a whole: ``normal`` (the default),
``no-handshake`` (never answers ``initialize``), ``bad-listing`` (answers ``tools/list``
with ``tools`` that is not a list), ``exit-on-start`` (writes to stderr and exits with
status 2 before reading anything). ``--start-delay SECONDS`` (or ``$FAULTY_START_DELAY``)
makes it wait that long before answering ``initialize``: a slow server to start.

``$FAULTY_LOG`` names a file this server appends to, one line per event, each starting with
its pid: ``PID start`` when it starts, then ``PID METHOD`` for every request and
notification it reads, ``PID tools/call NAME`` for tool calls. :func:`read_log` parses it.
Requests are handled on threads, so a hanging call never blocks the next request; the
process exits as soon as its stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPT = str(Path(__file__).resolve())

# How long a "hanging" tool sleeps: longer than any test, shorter than forever, so that an
# orphan (which the tests must never leave) still goes away on its own.
_HANG_S = 120.0

_NO_ARGS = {"type": "object", "properties": {}, "additionalProperties": False}
_TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "description": "Return the text.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
    },
    {
        "name": "add",
        "description": "Add two integers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
    # Not declared idempotent (MCP's default): a call that reached it is never made again.
    {"name": "debit_first", "description": "Fault: debit_first.", "inputSchema": _NO_ARGS},
    *(
        {
            "name": name,
            "description": f"Fault: {name}.",
            "inputSchema": _NO_ARGS,
            # Declared idempotent, so that the broker may retry a call that reached them.
            "annotations": {"idempotentHint": True},
        }
        for name in (
            "hang",
            "hang_first",
            "exit_mid_call",
            "exit_first",
            "malformed",
            "malformed_block",
            "not_json",
            "is_error",
            "bad_params",
            "server_error",
            "pid",
        )
    ),
]


# -- the log (also used by the tests, so standard library only) --------------------------


def read_log(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """The log as (pid, event) pairs; [] when no server ever started."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        pid, _, event = line.partition(" ")
        if pid.isdigit() and event:
            out.append((int(pid), event))
    return out


def pids(path: str | os.PathLike[str]) -> list[int]:
    """The pids of every process that started, in order."""
    return [pid for pid, event in read_log(path) if event == "start"]


def tool_calls(path: str | os.PathLike[str], tool: str | None = None) -> list[int]:
    """The pid that received each ``tools/call`` (of ``tool``, or of any tool), in order."""
    want = "tools/call " + tool if tool else "tools/call "
    return [
        pid for pid, event in read_log(path) if (event == want if tool else event.startswith(want))
    ]


def command() -> list[str]:
    """argv of this server, run by the interpreter running the tests."""
    return [sys.executable, SCRIPT]


# -- the server ---------------------------------------------------------------------------


class Server:
    def __init__(self, mode: str, log: str | None, start_delay_s: float = 0.0) -> None:
        self.mode = mode
        self.start_delay_s = start_delay_s
        self.log_path = log
        self.pid = os.getpid()
        self._out = threading.Lock()
        self._log_lock = threading.Lock()
        self.generation = len(pids(log)) if log else 0
        self.log("start")

    def log(self, event: str) -> None:
        if not self.log_path:
            return
        with self._log_lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{self.pid} {event}\n")
            f.flush()

    def write_line(self, line: str) -> None:
        with self._out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.write_line(json.dumps({"jsonrpc": "2.0", **message}))

    def result(self, rid: Any, result: dict[str, Any]) -> None:
        self.send({"id": rid, "result": result})

    def error(self, rid: Any, code: int, message: str) -> None:
        self.send({"id": rid, "error": {"code": code, "message": message}})

    def exit_now(self, status: int, why: str) -> None:
        sys.stderr.write(f"faulty: {why}\n")
        sys.stderr.flush()
        os._exit(status)

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, msg: dict[str, Any]) -> None:
        method = str(msg.get("method", ""))
        rid = msg.get("id")
        params = msg.get("params") or {}
        if method == "tools/call":
            self.log(f"tools/call {params.get('name')}")
        else:
            self.log(method or "(response)")
        if rid is None or not method:
            return  # a notification, or a response to nothing we asked
        if method == "server/discover":
            self.error(rid, -32601, "Method not found: server/discover")
        elif method == "initialize":
            if self.mode == "no-handshake":
                return
            time.sleep(self.start_delay_s)
            self.result(
                rid,
                {
                    "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": "faulty", "version": "0.3.1"},
                },
            )
        elif method == "ping":
            self.result(rid, {})
        elif method == "tools/list":
            self.result(rid, {"tools": "none" if self.mode == "bad-listing" else _TOOLS})
        elif method == "tools/call":
            self.call(rid, str(params.get("name")), params.get("arguments") or {})
        else:
            self.error(rid, -32601, f"Method not found: {method}")

    def text(self, rid: Any, text: str, **extra: Any) -> None:
        self.result(rid, {"content": [{"type": "text", "text": text}], **extra})

    def call(self, rid: Any, name: str, args: dict[str, Any]) -> None:
        first = self.generation == 0
        if name == "echo":
            self.text(rid, str(args.get("text")))
        elif name == "add":
            total = int(args["a"]) + int(args["b"])
            self.text(rid, str(total), structuredContent={"result": total})
        elif name == "hang" or (name == "hang_first" and first):
            time.sleep(_HANG_S)
        elif name == "exit_mid_call" or (name in ("exit_first", "debit_first") and first):
            self.exit_now(3, f"exiting mid-call of {name}")
        elif name in ("hang_first", "exit_first", "debit_first", "pid"):
            self.text(rid, f"served by pid {self.pid}")
        elif name == "malformed":
            self.result(rid, {"content": "this should have been a list"})
        elif name == "malformed_block":
            self.result(rid, {"content": [{"type": "image"}]})
        elif name == "not_json":
            self.write_line("this line is not JSON-RPC {")
        elif name == "is_error":
            self.text(rid, "the warehouse refused the order", isError=True)
        elif name == "bad_params":
            self.error(rid, -32602, "Invalid params: quantity must be positive")
        elif name == "server_error":
            self.error(rid, -32000, "the database is locked")
        else:
            self.error(rid, -32602, f"Unknown tool: {name}")

    def serve(self) -> None:
        if self.mode == "exit-on-start":
            self.exit_now(2, "configured to exit on start")
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                self.log("(unparseable)")
                continue
            if isinstance(msg, dict):
                threading.Thread(target=self.handle, args=(msg,), daemon=True).start()
        os._exit(0)  # stdin closed: the client is done with us (hanging threads included)


def main(argv: list[str]) -> None:
    mode = os.environ.get("FAULTY_MODE", "normal")
    if "--mode" in argv:
        mode = argv[argv.index("--mode") + 1]
    if mode not in ("normal", "no-handshake", "bad-listing", "exit-on-start"):
        sys.exit(f"faulty: unknown mode {mode!r}")
    delay = float(os.environ.get("FAULTY_START_DELAY", "0"))
    if "--start-delay" in argv:
        delay = float(argv[argv.index("--start-delay") + 1])
    Server(mode, os.environ.get("FAULTY_LOG"), delay).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
