"""``orch report``: write a self-contained HTML report of a run or of an evaluation file.

``orch report RUN`` renders a recorded run (an id or a unique prefix, in ``--store``) with
:mod:`orch.report_run`; ``orch report EVAL.json`` renders an evaluation file
(``orch.eval-report/1``) with :mod:`routers.eval.report`. An argument that is an existing file
(or ends in ``.json``) is an evaluation file; anything else is a run id. The page opens from
disk with no network. Part of the CLI, so it may wire ``routers`` in; it imports them only
when it renders an evaluation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from traces.open import open_store

__all__ = ["report_command"]


def report_command(
    target: Annotated[
        str,
        typer.Argument(
            help="A run id (or unique prefix), or an evaluation file (orch.eval-report/1)."
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="The HTML file to write (default: report-RUN_ID.html, or the evaluation "
            "file's name with .html, in the working directory).",
        ),
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Store location (default: $ORCH_STORE or .orch/).")
    ] = None,
) -> None:
    """Write an HTML report of a run or an evaluation; it opens from disk, no network."""
    from . import cli  # shared console and error handling (imported late)

    @cli.user_errors
    def run() -> None:
        path = Path(target)
        if path.is_file() or path.suffix.lower() == ".json":
            html, default = _evaluation(path)
        else:
            from .report_run import render_run_report

            with open_store(store, create=False) as st:  # reading: a typo makes no store
                rid = st.resolve_run(target)
                html = render_run_report(st, rid)
            # The whole id: run ids start with their second, so a prefix would collide.
            default = f"report-{rid}.html"
        out = Path(output) if output else Path.cwd() / default
        try:
            out.write_text(html, encoding="utf-8")
        except OSError as exc:
            raise cli.CliError(
                f"cannot write the report to {out}: {exc.strerror or exc}",
                "pass --output PATH in a directory that exists and is writable",
            ) from None
        sys.stdout.write(f"{out.resolve()}\n")

    run()


def _evaluation(path: Path) -> tuple[str, str]:
    from routers.eval import DatasetError
    from routers.eval.evalfile import load
    from routers.eval.report import render_eval_report

    from .cli import CliError

    try:
        ev = load(path)
    except DatasetError as exc:
        raise CliError(
            str(exc),
            "orch report takes a run id (see 'orch runs') or an evaluation file "
            "(orch.eval-report/1)",
        ) from None
    return render_eval_report(ev), f"{path.stem}.html"
