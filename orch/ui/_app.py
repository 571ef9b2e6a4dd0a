"""The ``orch ui`` ASGI application: its pages, static assets, guard and error pages.

:func:`create_app` builds it for one open store. Pages only read, unless the settings allow
replay. Every asset is served from the package (no CDN: it works offline), and
every response passes :class:`~orch.ui._security.SecurityMiddleware`.

Replay (``/runs/RUN/replay``, :mod:`orch.ui._replay_page`) and the evaluations
(``/evals``, :mod:`orch.ui._evals_page`) are pages of their own modules, registered here.

Background work (replays, each a child process; verifications of the whole store, each a
thread) ends with the app: its lifespan's exit, and :func:`orch.ui._serve.serve` after the
server stopped, call :func:`stop_background`, so that no replay process outlives the server.

Extension: ``extra_routes`` and ``extra_nav`` add pages (replay, evaluations) beside these,
under the same guard, templates and error handling (wrap handlers in
:func:`orch.ui._state.guarded`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from orch.render import DAG_CSS
from orch.ui._bundle_page import bundle_download
from orch.ui._compare_page import compare_page
from orch.ui._errors import UiError, handle_error
from orch.ui._evalfile import EvalFiles
from orch.ui._evals_page import eval_page, evals_json, evals_page
from orch.ui._replay_jobs import ReplayJobs
from orch.ui._replay_page import replay_json, replay_page, replay_post
from orch.ui._run_page import live_json, run_page
from orch.ui._runs_page import runs_json, runs_page
from orch.ui._security import SecurityMiddleware
from orch.ui._settings import UiSettings
from orch.ui._state import NavLink, UiState
from orch.ui._templating import STATIC_DIR
from orch.ui._verify_cache import VerifyCache
from orch.ui._verify_jobs import VerifyJobs
from orch.ui._verify_page import verify_form, verify_job_json, verify_job_page, verify_post
from orch.ui._warm import WarmUp
from traces import TraceError

__all__ = ["NAV", "create_app", "routes", "stop_background"]

NAV = (
    NavLink("Runs", "/"),
    NavLink("Compare", "/compare"),
    NavLink("Verify", "/verify"),
    NavLink("Evaluations", "/evals"),
)


async def dag_css(request: Request) -> Response:
    """The rules of the DAG's SVG, as the run report inlines them."""
    return Response(DAG_CSS, media_type="text/css")


def routes() -> list[BaseRoute]:
    """The built-in pages."""
    return [
        Route("/", runs_page, methods=["GET"], name="runs"),
        Route("/runs", runs_page, methods=["GET"]),
        Route("/runs.json", runs_json, methods=["GET"], name="runs_json"),
        Route("/runs/{run_id}/live.json", live_json, methods=["GET"], name="live"),
        Route("/runs/{run_id}/evidence.orchpack", bundle_download, methods=["GET"], name="bundle"),
        Route("/runs/{run_id}/replay.json", replay_json, methods=["GET"], name="replay_json"),
        Route("/runs/{run_id}/replay", replay_page, methods=["GET"], name="replay"),
        Route("/runs/{run_id}/replay", replay_post, methods=["POST"]),
        Route("/runs/{run_id}", run_page, methods=["GET"], name="run"),
        Route("/compare", compare_page, methods=["GET"], name="compare"),
        Route("/compare.json", compare_page, methods=["GET"]),
        Route("/verify", verify_form, methods=["GET"], name="verify"),
        Route("/verify", verify_post, methods=["POST"]),
        Route("/verify/jobs/{number:int}.json", verify_job_json, methods=["GET"]),
        Route("/verify/jobs/{number:int}", verify_job_page, methods=["GET"], name="verify_job"),
        Route("/evals", evals_page, methods=["GET"], name="evals"),
        Route("/evals.json", evals_json, methods=["GET"]),
        Route("/evals/{name}", eval_page, methods=["GET"], name="eval"),
        # The DAG's style is the report's own (orch.render), not a copy that could drift.
        Route("/dag.css", dag_css, methods=["GET"], name="dag_css"),
        Mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static"),
    ]


def create_app(
    settings: UiSettings,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    extra_nav: Sequence[NavLink] = (),
) -> Starlette:
    """The app serving ``settings.store`` (see the module docstring)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.warm.start()  # the first pages' one-off reads, done now (orch.ui._warm)
        try:
            yield
        finally:
            await run_in_threadpool(stop_background, app)

    app = Starlette(
        routes=[*routes(), *extra_routes],
        lifespan=lifespan,
        middleware=[
            Middleware(
                SecurityMiddleware, token=settings.token, allowed_hosts=settings.allowed_hosts
            )
        ],
        exception_handlers={
            HTTPException: handle_error,
            UiError: handle_error,
            TraceError: handle_error,
            ValidationError: handle_error,
            Exception: handle_error,
        },
    )
    verify = VerifyCache(settings.store)
    app.state.ui = UiState(settings, verify, [*NAV, *extra_nav])
    app.state.warm = WarmUp(settings.store, verify)
    app.state.replays = ReplayJobs(timeout=settings.replay_timeout)
    app.state.verify_jobs = VerifyJobs()
    app.state.evals = None if settings.evals_dir is None else EvalFiles(settings.evals_dir)
    return app


def stop_background(app: Starlette) -> None:
    """Stop what the app runs in the background: kill every replay process (its whole
    process group) and wait for it to end, stop the store's verification at its next step.
    Idempotent; nothing new starts after it."""
    verify_jobs: VerifyJobs | None = getattr(app.state, "verify_jobs", None)
    if verify_jobs is not None:
        verify_jobs.close()
    replays: ReplayJobs | None = getattr(app.state, "replays", None)
    if replays is not None:
        replays.close()
