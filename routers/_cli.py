"""The commands ``routers`` adds to ``orch`` through the ``orch.cli`` entry-point group:
``orch eval`` (routers over recorded data, :mod:`routers.eval`) and ``orch state`` (a router
state version's history, :mod:`routers._state`).

Registering must stay cheap (every ``orch`` command loads this module): the router modules
and the model SDKs they bring are imported when a command runs. Only reads a store for
``orch state``, opened with ``create=False``: a mistyped ``--store``
is an error, never a new store. Recorded text is printed inert (``orch.render.inert``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from orch.cli.common import CliError, JsonOpt, StoreOpt, emit_json, open_cli_store, out, user_errors
from orch.render import inert
from routers.eval._command import eval_command
from traces import is_key

__all__ = ["register", "state_command"]


def register(app: typer.Typer) -> None:
    """Add ``orch eval`` and ``orch state`` to the ``orch`` application."""
    app.command("eval")(eval_command)
    app.command("state")(state_command)


@user_errors
def state_command(
    version: Annotated[str, typer.Argument(help="A router state version: sha256: + 64 hex.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a router state's history: each version back to the initial one, with a summary
    of what it holds."""
    if not is_key(version):
        raise CliError(
            f"{version!r} is not a state version (sha256: + 64 hex digits)",
            "give the version in full, as a decision's router_state or 'orch show --json' "
            "prints it",
        )
    # Imported here for weight, not for a cycle: the router modules bring the model SDKs, and
    # every `orch` command loads this plugin.
    import routers  # noqa: F401 - registers the built-in router state formats
    from routers._state import load_state, state_history

    with open_cli_store(store) as st:
        try:
            load_state(st, version)
            history = state_history(st, version)
        except (LookupError, ValueError) as exc:
            raise CliError(str(exc)) from None
    if as_json:
        emit_json([_row(h) for h in history])
        return
    table = Table(title=f"router state history ({len(history)} versions, newest first)")
    for col in ("version", "format", "summary"):
        table.add_column(col)
    for h in history:
        table.add_row(
            Text(inert(h.version[:19])),
            Text(inert(str(getattr(h.state, "format", "-")))),
            Text(inert(h.summary)),
        )
    out.print(table)


def _row(h: Any) -> dict[str, Any]:
    return {
        "version": h.version,
        "format": getattr(h.state, "format", None),
        "parent": getattr(h.state, "parent", None),
        "summary": h.summary,
    }
