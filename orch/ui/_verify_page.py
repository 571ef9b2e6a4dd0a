"""Verify a run or the whole store from the page: a form (GET ``/verify``) posting to
``/verify`` with ``run`` (empty: the whole store). Verification only reads; each problem is
shown with the record it names, and its warnings with it. A run verified here refreshes its
page's badge. The page also states the store's ledger: its size and its latest stored
checkpoint (tree size, and who signed it: keys the server trusts, or others).

One run is verified within the request. The whole store is a background job
(:mod:`orch.ui._verify_jobs`): the post starts it (or finds the one running), waits a moment
for it (a small store's report then comes straight away), and goes to the job's page,
``GET /verify/jobs/N``, which shows how far it got while it runs (``static/verify.js`` polls
``/verify/jobs/N.json``) and its report once it ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from orch.ui._errors import UiError
from orch.ui._run_model import version_of
from orch.ui._state import UiState, guarded, render, resolve_run, state_of
from orch.ui._verify_jobs import VerifyJobs
from traces import (
    ArtifactStore,
    TraceError,
    VerifyReport,
    ledger_of,
    load_run_view,
    open_checkpoint,
    verify_run,
)

__all__ = ["jobs_of", "verify_form", "verify_job_json", "verify_job_page", "verify_post"]

_MAX_FORM = 4096  # the form holds one run id


@dataclass(frozen=True)
class LedgerState:
    """What the verify page says of the store's ledger (never trusted for the verdict)."""

    kept: bool
    """False for a store that keeps no ledger."""
    size: int = 0
    checkpoint_size: int | None = None
    """The tree size of the latest stored checkpoint, None without one."""
    trusted: tuple[str, ...] = ()
    """Names of the keys the server trusts that signed it."""
    others: tuple[str, ...] = ()
    """Names on its other signature lines (keys not given as trusted: unchecked)."""
    unreadable: str = ""
    """Why the ledger or its checkpoint could not be read, if so."""


def ledger_state(store: ArtifactStore, trusted: Sequence[Any]) -> LedgerState:
    if not store.supports_ledger:
        return LedgerState(kept=False)
    try:
        size = store.ledger_size()
        latest = ledger_of(store).latest_checkpoint()
        if latest is None:
            return LedgerState(kept=True, size=size)
        checkpoint, opened = open_checkpoint(latest[1], list(trusted))
    except (TraceError, ValueError) as exc:
        return LedgerState(kept=True, unreadable=f"{type(exc).__name__}: {exc}")
    return LedgerState(
        kept=True,
        size=size,
        checkpoint_size=checkpoint.size,
        trusted=tuple(sig.name for sig in opened.verified),
        others=tuple(sig.name for sig in opened.unknown),
    )


async def _page(request: Request, report: VerifyReport | None, run: str) -> Response:
    state = state_of(request)
    ledger = await run_in_threadpool(ledger_state, state.store, state.settings.trusted)
    return render(request, "verify.html", {"report": report, "run": run, "ledger": ledger})


@guarded
async def verify_form(request: Request) -> Response:
    return await _page(request, None, "")


def jobs_of(request: Request) -> VerifyJobs:
    """The server's store verifications (made with the app: :func:`orch.ui._app.create_app`)."""
    jobs: VerifyJobs = request.app.state.verify_jobs
    return jobs


def _verify(state: UiState, run: str) -> VerifyReport:
    try:
        version = version_of(load_run_view(state.store, run))
    except Exception:  # unreadable: verify it all the same, and keep nothing for the badge
        return verify_run(state.store, run)
    return state.verify.report(run, version, fresh=True)


@guarded
async def verify_post(request: Request) -> Response:
    state = state_of(request)
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise UiError(413, "the form is too large; fix: give one run id, or none for the store")
    fields = dict(parse_qsl(body.decode("utf-8", "replace")))
    run = fields.get("run", "").strip()
    if not run:
        jobs = jobs_of(request)
        number, _ = jobs.start(state.store, state.settings.trusted)
        await run_in_threadpool(jobs.wait, number, jobs.quick)
        return RedirectResponse(f"/verify/jobs/{number}", status_code=303)
    run = await run_in_threadpool(resolve_run, state.store, run)
    report = await run_in_threadpool(_verify, state, run)
    return await _page(request, report, run)


def _job_number(request: Request) -> int:
    number: int = request.path_params["number"]
    return number


def _unknown(number: int) -> UiError:
    return UiError(
        404,
        f"no verification #{number} on this server (a server keeps its latest few, and forgets "
        "them when it restarts); fix: verify again from /verify",
    )


@guarded
async def verify_job_page(request: Request) -> Response:
    state = state_of(request)
    number = _job_number(request)
    jobs = jobs_of(request)
    job = jobs.get(number)
    if job is None:
        raise _unknown(number)
    ledger = await run_in_threadpool(ledger_state, state.store, state.settings.trusted)
    context = {"job": job, "report": jobs.report(number), "ledger": ledger, "run": ""}
    return render(request, "verify_job.html", context)


@guarded
async def verify_job_json(request: Request) -> Response:
    number = _job_number(request)
    job = jobs_of(request).get(number)
    if job is None:
        raise _unknown(number)
    return JSONResponse(job)
