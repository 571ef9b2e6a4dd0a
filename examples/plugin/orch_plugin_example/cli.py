"""``orch run-stats``: how many runs a store holds, by status.

Registered through the ``orch.cli`` entry-point group (``register(app)``). Built only from
the public helpers of :mod:`orch.cli.common` (and :func:`orch.render.inert`), as orch's own
commands are: ``--store`` and ``--json`` options, one-line user errors (exit 2), a store
opened for reading only (a mistyped ``--store`` is an error, never a new empty store). It must
never write to the store.
"""

from __future__ import annotations

from collections import Counter

import typer
from rich.table import Table
from rich.text import Text

from orch.cli.common import JsonOpt, StoreOpt, emit_json, open_cli_store, out, user_errors
from orch.render import inert
from traces import RunHead

__all__ = ["register", "run_stats_command"]


def register(app: typer.Typer) -> None:
    """Add ``orch run-stats`` to the ``orch`` application."""
    app.command("run-stats")(run_stats_command)


@user_errors
def run_stats_command(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Count the store's runs by status (ok, failed, cancelled, running...)."""
    with open_cli_store(store) as st:
        location = st.location
        statuses = Counter(
            RunHead.model_validate_json(raw).status
            for raw in (st.read_run_head(rid) for rid in st.run_ids())
            if raw is not None
        )
    counts = dict(sorted(statuses.items()))
    if as_json:
        emit_json(counts)
        return
    if not counts:  # a location is the user's text: printed inert, never as markup
        out.print(Text(f"no runs in {inert(location)}"))
        return
    table = Table(title="runs by status")
    table.add_column("status")
    table.add_column("runs", justify="right")
    for status, n in counts.items():  # a head's status is one of the engine's own words
        table.add_row(status, str(n))
    table.add_row("all", str(sum(counts.values())), style="bold")
    out.print(table)
