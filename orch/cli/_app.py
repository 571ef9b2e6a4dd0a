"""The ``orch`` application: the built-in commands, and those plugins contribute.

Thin: each command parses options, calls the library and renders. User mistakes (a bad path,
an unknown run, an invalid pipeline) print one clear line naming the thing and the fix, exit
code 2, before anything is created or written; a run that fails exits 1; verification that
finds tampering exits 1. Tracebacks are for bugs only. Commands that only read open the store
with ``create=False``, so a mistyped ``--store`` is an error, never a new empty store.

The engine's own commands are registered here; every other package (``agents`` for
``orch tools``, ``routers`` for ``orch eval`` and ``orch state``, or a third party's) adds its
commands through the ``orch.cli`` entry-point group: the entry's name is the command's name,
its target ``register(app: typer.Typer) -> None`` adds that command (``app.command`` or
``app.add_typer``). A plugin is imported only when its command runs (or for ``orch --help``),
as click's lazily loaded subcommands are: ``orch run`` never imports ``routers``, and this
module imports no package above the engine. A plugin that fails to load costs its own
commands only: they exit 2 with one line naming the package, and ``orch plugins`` shows it
broken.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from orch._plugins import find_entry_point
from orch.cli._answer import answer_command
from orch.cli._audit import export_command, prove_command
from orch.cli._batch import batch_command
from orch.cli._inspect import runs_command, show_command
from orch.cli._keys import checkpoint_command, keys_app
from orch.cli._plugins_command import plugins_command
from orch.cli._replay import diff_command, replay_command
from orch.cli._report import report_command
from orch.cli._run import run_command
from orch.cli._thread import thread_app
from orch.cli._ui import ui_command
from orch.cli._verify import verify_command
from orch.cli.common import print_error
from orch.errors import PluginError

__all__ = ["CLI_GROUP", "app", "main"]

CLI_GROUP = "orch.cli"
"""Entry-point group of command plugins: ``register(app: typer.Typer) -> None``."""


def _plugin_names() -> set[str]:
    return {ep.name for ep in entry_points(group=CLI_GROUP)}


class PluginCommands(TyperGroup):
    """The ``orch`` group: the built-in commands, then each plugin command by its entry
    point's name, loaded only when it is asked for."""

    # ctx and the commands are typer's own click types (typer vendors click): Any here.
    def list_commands(self, ctx: Any) -> list[str]:
        builtin = super().list_commands(ctx)
        return builtin + sorted(_plugin_names() - set(builtin))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        try:  # the lookup every plugin group uses: a name two packages offer is refused
            ep = find_entry_point(CLI_GROUP, cmd_name, what="command")
        except PluginError as exc:
            return _broken(cmd_name, "(several packages)", str(exc))
        return None if ep is None else _plugin_command(ep)


def _plugin_command(ep: EntryPoint) -> Any:
    package = ep.dist.name if ep.dist is not None else "(unknown package)"
    try:
        plugin = typer.Typer()
        ep.load()(plugin)
        command = typer.main.get_group(plugin).commands.get(ep.name)
    except Exception as exc:  # a broken plugin must not take the other commands down
        return _broken(ep.name, package, f"{type(exc).__name__}: {exc}")
    if command is None:
        return _broken(ep.name, package, f"its register function adds no command {ep.name!r}")
    return command


def _broken(name: str, package: str, why: str) -> TyperCommand:
    def fail(*_args: Any, **_kwargs: Any) -> NoReturn:
        print_error(
            f"command {name!r} of plugin package {package} failed to load: {why}",
            f"reinstall or upgrade {package}, or uninstall it (see 'orch plugins')",
        )
        raise typer.Exit(2)

    return TyperCommand(
        name,
        callback=fail,
        help=f"(broken plugin from {package}: see 'orch plugins')",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


app = typer.Typer(
    name="orch",
    help="Auditable multi-model LLM ensembles: run pipelines, inspect and verify their records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=PluginCommands,
)

for _name, _command in (
    ("run", run_command),
    ("answer", answer_command),
    ("runs", runs_command),
    ("show", show_command),
    ("verify", verify_command),
    ("replay", replay_command),
    ("diff", diff_command),
    ("plugins", plugins_command),
    ("checkpoint", checkpoint_command),
    ("report", report_command),
    ("batch", batch_command),
    ("export", export_command),
    ("prove", prove_command),
    ("ui", ui_command),
):
    app.command(_name)(_command)
app.add_typer(keys_app, name="keys")
app.add_typer(thread_app, name="thread")


def main() -> None:
    """Console-script entry point."""
    app()
