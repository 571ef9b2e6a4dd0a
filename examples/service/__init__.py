"""An example web service with orch embedded: a chat app whose every turn is a recorded run.

``pipeline`` is the chat pipeline (TCAR routing, a streamed model, a tool asked for approval),
``app`` the Starlette app that streams runs as server-sent events, ``__main__`` serves it
(``python -m examples.service``). See ``README.md`` here. Importing this package starts
nothing.
"""

from __future__ import annotations

from .app import ChatService, Settings, create_app

__all__ = ["ChatService", "Settings", "create_app"]
