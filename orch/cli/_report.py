"""``orch report``: write a self-contained HTML report of a run, or of a report file.

``orch report RUN`` renders a recorded run (an id or a unique prefix, in ``--store``) with
:func:`orch.render.render_run_report`. ``orch report FILE.json`` renders a file another
package knows: its ``format`` field (e.g. ``orch.eval-report/1``, an evaluation file) names
the renderer, found in the ``orch.reports`` entry-point group (``format = "pkg.mod:render"``,
``render(path: Path) -> str`` returning the page, raising ``ValueError`` for a file it cannot
render; ``routers`` registers the evaluation
report). An argument that is an existing file (or ends in ``.json``) is a file; anything else
is a run id. The page opens from disk with no network.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import orjson
import typer

from orch._plugins import find_entry_point, load_entry_point
from orch.cli.common import CliError, StoreOpt, open_cli_store, user_errors
from orch.render._run_report import render_run_report

__all__ = ["REPORT_GROUP", "report_command", "report_renderer"]

REPORT_GROUP = "orch.reports"
"""Entry-point group of report renderers, named by the file format they render."""


@user_errors
def report_command(
    target: Annotated[
        str,
        typer.Argument(
            help="A run id (or unique prefix), or a report file such as an evaluation file "
            "(orch.eval-report/1)."
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="The HTML file to write (default: report-RUN_ID.html, or the file's name "
            "with .html, in the working directory).",
        ),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Write an HTML report of a run or an evaluation; it opens from disk, no network."""
    path = Path(target)
    if path.is_file() or path.suffix.lower() == ".json":
        html, default = _render_file(path), f"{path.stem}.html"
    else:
        with open_cli_store(store) as st:  # reading: a typo makes no store
            rid = st.resolve_run(target)
            html = render_run_report(st, rid)
        # The whole id: run ids start with their second, so a prefix would collide.
        default = f"report-{rid}.html"
    out = Path(output) if output else Path.cwd() / default
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot write the report to {out}: {exc.strerror or exc}",
            "pass --output PATH in a directory that exists and is writable",
        ) from None
    sys.stdout.write(f"{out.resolve()}\n")


_USAGE = (
    "orch report takes a run id (see 'orch runs') or a report file such as an evaluation file "
    "(orch.eval-report/1)"
)


def _render_file(path: Path) -> str:
    render = report_renderer(path)
    try:
        return render(path)
    except ValueError as exc:  # the renderer's contract: the file is not what it says
        raise CliError(str(exc), _USAGE) from None


def _file_format(path: Path) -> str:
    usage = _USAGE
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", usage) from None
    except orjson.JSONDecodeError as exc:
        raise CliError(f"{path} is not a JSON report file ({exc})", usage) from None
    fmt = data.get("format") if isinstance(data, dict) else None
    if not isinstance(fmt, str):
        raise CliError(f"{path} has no 'format' field naming what it holds", usage)
    return fmt


def report_renderer(path: Path) -> Callable[[Path], str]:
    """The renderer of the file at ``path``, chosen by its ``format`` field."""
    fmt = _file_format(path)
    ep = find_entry_point(REPORT_GROUP, fmt, what="report renderer")
    if ep is None:
        known = ", ".join(sorted({ep.name for ep in entry_points(group=REPORT_GROUP)}))
        raise CliError(
            f"no installed package renders {path}'s format {fmt!r} (renderers: "
            f"{known or 'none installed'})",
            f"install the package that writes {fmt!r} files, or give a run id",
        )
    render: Callable[[Path], str] = load_entry_point(ep, what="report renderer")
    return render
