"""The commands ``agents`` adds to ``orch`` through the ``orch.cli`` entry-point group:
``orch tools list|call`` (the MCP tool broker, :mod:`agents.tools`)."""

from __future__ import annotations

import typer

from agents.tools._command import tools_app

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``orch tools`` to the ``orch`` application."""
    app.add_typer(tools_app, name="tools")
