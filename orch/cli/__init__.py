"""The ``orch`` command line.

:data:`app` is the Typer application and :func:`main` the console script; both come from
:mod:`orch.cli._app`, which adds the commands plugins register (entry-point group
``orch.cli``) when it is imported, so it is imported only when one of them is asked for:
a plugin's command module imports the shared helpers of :mod:`orch.cli.common` without
loading every other plugin first. Command authors: see :mod:`orch.cli.common`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orch.cli._app import app, main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from orch.cli import _app

        return getattr(_app, name)
    raise AttributeError(f"module 'orch.cli' has no attribute {name!r}")
