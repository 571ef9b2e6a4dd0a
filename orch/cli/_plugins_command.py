"""``orch plugins``: the installed plugins of every entry-point group, and whether they load."""

from __future__ import annotations

from dataclasses import asdict

from rich.table import Table
from rich.text import Text

from orch._plugins import list_plugins
from orch.cli.common import (
    JsonOpt,
    emit_json,
    out,
    user_errors,
)
from orch.render._terminal import (
    inert,
)

__all__ = ["plugins_command"]


@user_errors
def plugins_command(as_json: JsonOpt = False) -> None:
    """List installed plugin agents and routers (entry points orch.agents, orch.routers)."""

    infos = list_plugins()
    if as_json:
        emit_json([asdict(i) for i in infos])
        return
    if not infos:
        out.print("no plugins installed (entry-point groups orch.agents, orch.routers)")
        return
    table = Table(title="plugins")
    for col in ("name", "group", "package", "agent", "status"):
        table.add_column(col)
    for i in infos:  # names and errors come from installed packages: text, never markup
        status = Text("ok", style="green") if i.ok else Text("broken", style="red")
        if not i.ok:
            status.append(f": {inert(str(i.error))}")
        table.add_row(
            Text(inert(i.name)),
            Text(inert(i.group)),
            Text(inert(f"{i.package} {i.version}")),
            Text(inert(i.agent or i.target)),
            status,
        )
    out.print(table)
