"""Local HTTP servers speaking the OpenAI and Anthropic wire protocols, for adapter tests.

A :class:`ScriptedServer` listens on 127.0.0.1 (a free port), records every request (path,
headers, JSON body), and answers from a script: JSON bodies with any status and headers,
SSE streams, delays (for timeouts), or raw malformed bytes. When the script runs out it
repeats its last entry. It also tracks how many requests were in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    """A JSON value, or bytes sent as they are (malformed answers)."""
    headers: dict[str, str] = field(default_factory=dict)
    sse: list[Any] | None = None
    """Server-sent events: each item a JSON value (``data: ...``) or an (event, value) pair."""
    delay: float = 0.0


class ScriptedServer:
    def __init__(self, *script: Reply) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "json": json.loads(raw) if raw else None,
                        }
                    )
                    reply = server.script[min(len(server.requests), len(server.script)) - 1]
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if reply.delay:
                        time.sleep(reply.delay)
                    self._answer(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, reply: Reply) -> None:
                if reply.sse is not None:
                    self.send_response(reply.status)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("connection", "close")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    for item in reply.sse:
                        if isinstance(item, tuple):
                            event, value = item
                            chunk = f"event: {event}\ndata: {json.dumps(value)}\n\n"
                        elif item == "[DONE]":
                            chunk = "data: [DONE]\n\n"
                        else:
                            chunk = f"data: {json.dumps(item)}\n\n"
                        self.wfile.write(chunk.encode())
                        self.wfile.flush()
                    self.close_connection = True
                    return
                data = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def openai_completion(
    text: str = "hello",
    *,
    model: str = "served-model",
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str = "stop",
    usage: tuple[int, int] = (11, 7),
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
        message["content"] = None
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        },
    }


def openai_stream(parts: list[str], *, model: str = "served-model") -> list[Any]:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model}
    events: list[Any] = [
        base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": p}}]}
        for p in parts
    ]
    events.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append(
        base
        | {
            "choices": [],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": len(parts),
                "total_tokens": 5 + len(parts),
            },
        }
    )
    events.append("[DONE]")
    return events


def anthropic_message(
    text: str = "hello",
    *,
    model: str = "claude-served",
    tool_use: dict[str, Any] | None = None,
    stop: str = "end_turn",
    usage: tuple[int, int] = (13, 5),
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if tool_use:
        content.append({"type": "tool_use", **tool_use})
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def anthropic_stream(parts: list[str], *, model: str = "claude-served") -> list[Any]:
    msg = anthropic_message("", model=model, usage=(9, 0))
    events: list[Any] = [("message_start", {"type": "message_start", "message": msg})]
    events.append(
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
    )
    for p in parts:
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                },
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(parts)},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
