"""The Evaluations pages: the evaluation files of ``orch ui --evals DIR``, and one of them.

* ``/evals``: every ``.json`` file of the folder, with the title, dataset, split, tasks and
  configurations of each evaluation file (a file that is not one says why); ``/evals.json``
  the same as JSON.
* ``/evals/FILE``: what ``orch report FILE`` shows (what was evaluated and how to regenerate
  it, the configurations' summary, the reference points, the curves, the file's own tables,
  the first runs of each configuration) with the cost-quality plot drawn by the server as an
  inline SVG (:mod:`orch.ui._eval_plot`): hovering a point shows its configuration and point,
  clicking a configuration opens its runs (the runs list scoped to them,
  :mod:`orch.ui._eval_runs`).

Only the given folder is read (:mod:`orch.ui._evalfile`); every string of a file is untrusted.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orch.ui._eval_plot import plot_of
from orch.ui._evalfile import EvalFiles
from orch.ui._state import guarded, render

__all__ = ["RUNS_SHOWN", "eval_page", "evals_json", "evals_page", "files_of"]

RUNS_SHOWN = 10
"""Runs listed per configuration on an evaluation's page (the runs list has them all)."""


def files_of(request: Request) -> EvalFiles | None:
    """The server's evaluation files (None: started without ``--evals``), made with the app
    (:func:`orch.ui._app.create_app`)."""
    files: EvalFiles | None = request.app.state.evals
    return files


def runs_url(name: str, label: str) -> str:
    return "/?" + urlencode({"eval": name, "config": label})


@guarded
async def evals_page(request: Request) -> Response:
    files = files_of(request)
    entries = None if files is None else await run_in_threadpool(files.entries)
    return render(request, "evals.html", {"entries": entries})


@guarded
async def evals_json(request: Request) -> Response:
    files = files_of(request)
    entries = [] if files is None else await run_in_threadpool(files.entries)
    return JSONResponse(
        {
            "folder": files is not None,
            "evaluations": [
                {
                    "name": e.name,
                    "url": f"/evals/{e.name}",
                    "problem": e.problem,
                    "title": e.doc.title if e.doc else None,
                    "dataset": e.doc.dataset if e.doc else None,
                    "configs": [c.label for c in e.doc.configs] if e.doc else [],
                }
                for e in entries
            ],
        }
    )


@guarded
async def eval_page(request: Request) -> Response:
    files = files_of(request)
    name = request.path_params["name"]
    if files is None:
        return render(request, "evals.html", {"entries": None})
    doc = await run_in_threadpool(files.open, name)
    return render(
        request,
        "eval.html",
        {
            "name": name,
            "ev": doc,
            "plot": plot_of(doc, name),
            "runs_url": runs_url,
            "runs_shown": RUNS_SHOWN,
        },
    )
