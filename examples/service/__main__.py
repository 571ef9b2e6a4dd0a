"""``python -m examples.service``: serve the example chat service on 127.0.0.1 under uvicorn.

It binds the socket itself (``--port 0``, the default, takes a free port), prints the URL as
its first line of output, and serves until Ctrl-C or SIGTERM, when uvicorn shuts down
gracefully (a run still streaming is cancelled and recorded so). This module must never bind
anything but the address it prints.
"""

from __future__ import annotations

import argparse
import os
import socket

import uvicorn

from traces import default_store_location

from .app import Settings, create_app

__all__ = ["main"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m examples.service",
        description="orch embedded in a chat web service (see examples/service/README.md)",
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port (0: a free one, printed)")
    ap.add_argument(
        "--store",
        default=default_store_location(),
        help="the store every run is recorded in ($ORCH_STORE, else .orch)",
    )
    _from_env(
        ap,
        "--base-url",
        "ORCH_SERVICE_BASE_URL",
        "an OpenAI-compatible server ($ORCH_SERVICE_BASE_URL, else http://127.0.0.1:8080/v1); "
        "its key, if any, from $OPENAI_API_KEY",
    )
    _from_env(
        ap,
        "--model",
        "ORCH_SERVICE_MODEL",
        "the server's model name ($ORCH_SERVICE_MODEL, else 'default')",
    )
    _from_env(
        ap,
        "--models",
        "ORCH_MODELS",
        "a model registry file defining the id 'assistant' ($ORCH_MODELS), instead of --base-url",
    )
    _from_env(
        ap,
        "--notes",
        "ORCH_SERVICE_NOTES",
        "the note book file ($ORCH_SERVICE_NOTES, else service-notes.jsonl)",
    )
    return ap.parse_args(argv)


def _from_env(ap: argparse.ArgumentParser, flag: str, env: str, help_text: str) -> None:
    """Add option ``flag``, whose default is environment variable ``env`` (None when unset):
    the flag wins over the environment, and Settings supplies what neither gives."""
    ap.add_argument(flag, default=os.environ.get(env), help=help_text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(
        store=args.store,
        base_url=args.base_url,
        model=args.model,
        models_file=args.models,
        notes=args.notes,
    )
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    # Listening before the URL is printed: a client that reads it and connects at once must
    # find the port answering, not refused until uvicorn gets round to listen().
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    print(f"serving on http://{host}:{port}  (runs recorded in {settings.store})", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
