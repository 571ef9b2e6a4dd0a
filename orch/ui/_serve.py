"""Serve the app with uvicorn on a socket bound here, so that a port in use is one clear
line before anything is printed, and the printed address is the one that answers.

The token rule is checked before binding (:func:`~orch.ui._settings.require_token`). Never
creates a store: the caller opens it (``create=False``) and closes it, after what the app ran
in the background was stopped (:func:`~orch.ui._app.stop_background`: on SIGINT or SIGTERM,
uvicorn ends the app's lifespan, and this stops it again once the server returned, for a
server that stopped another way).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from orch.ui._app import create_app, stop_background
from orch.ui._settings import UiSettings, require_token

__all__ = ["bind", "serve", "url_of"]


def url_of(host: str, port: int, token: str | None) -> str:
    """The address to open: the token in it when one is needed."""
    name = f"[{host}]" if ":" in host else host
    return f"http://{name}:{port}/" + (f"?token={token}" if token else "")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; OSError (with the reason) when it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(
    settings: UiSettings, host: str, port: int, *, announce: Callable[[str], None] = print
) -> None:
    """Serve until interrupted; ``announce`` gets the address once the socket is bound."""
    require_token(host, settings.token)
    sock = bind(host, port)
    app = create_app(settings)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", server_header=False
    )
    announce(url_of(host, port, settings.token))
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        stop_background(app)
