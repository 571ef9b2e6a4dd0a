"""A run's page: summary with its verification badge, the DAG, steps, effects, decisions,
attempts and event log, resume links; ``/runs/RUN.json`` is the same as JSON, and
``/runs/RUN/live.json`` what a running run's page polls to know when to refresh.

A run whose records cannot be read (tampered, torn) still gets a page: the reason in one
line and what verification found, never a traceback.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from orch.ui._errors import UiError
from orch.ui._run_model import LIVE_STATUSES, RunModel, run_model
from orch.ui._state import UiState, guarded, render, resolve_run, state_of
from traces import RunHead, TraceError, VerifyReport, load_run_head, load_run_view

__all__ = ["live_json", "run_page"]


def _split(raw: str) -> tuple[str, bool]:
    """(run id, as JSON) from the path: ``RUN.json`` is JSON unless a run is named so."""
    if raw.endswith(".json"):
        return raw.removesuffix(".json"), True
    return raw, False


def _load(state: UiState, run_id: str) -> tuple[RunModel | None, str | None, VerifyReport]:
    """(the page's model or None, why it could not be read, verification)."""
    store = state.store
    try:
        model = run_model(load_run_view(store, run_id))
    except (TraceError, ValidationError, ValueError, KeyError, TypeError) as exc:
        # The records do not read as a run: say so, and let verification name the record.
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        report = state.verify.report(run_id, "unreadable", fresh=True)
        return None, why, report
    return model, None, state.verify.report(run_id, model.version)


def _as_json(model: RunModel, report: VerifyReport) -> dict[str, Any]:
    head = model.view.head
    return {
        "head": head.model_dump(mode="json"),
        "verified": report.ok,
        "problems": [p.model_dump(mode="json") for p in report.problems],
        "version": model.version,
        "live": model.live,
        "steps": [s.__dict__ for s in model.steps],
        "effects": [e.__dict__ for e in model.effects],
        "decisions": [d.__dict__ for d in model.decisions],
        "attempts": [a.__dict__ for a in model.attempts],
    }


@guarded
async def run_page(request: Request) -> Response:
    state = state_of(request)
    raw, as_json = _split(request.path_params["run_id"])
    run_id = await run_in_threadpool(resolve_run, state.store, raw)
    if run_id != raw:  # a prefix: send the browser to the run's own address
        return RedirectResponse(f"/runs/{run_id}{'.json' if as_json else ''}", status_code=307)
    model, why, report = await run_in_threadpool(_load, state, run_id)
    if as_json:
        if model is None:
            raise UiError(422, f"run {run_id} cannot be read: {why}; fix: orch verify {run_id}")
        return JSONResponse(_as_json(model, report))
    return render(
        request,
        "run.html",
        {"run_id": run_id, "m": model, "why": why, "report": report},
    )


def _live(state: UiState, run_id: str) -> dict[str, Any]:
    # Cheap on purpose (a page asks every second or two): the head and the log's length.
    head: RunHead = load_run_head(state.store, run_id)
    events = len(state.store.read_events(run_id))
    return {
        "version": f"{head.hash or '-'}:{events}",
        "status": head.status,
        "live": head.status in LIVE_STATUSES,
    }


@guarded
async def live_json(request: Request) -> Response:
    state = state_of(request)
    run_id = await run_in_threadpool(resolve_run, state.store, request.path_params["run_id"])
    return JSONResponse(await run_in_threadpool(_live, state, run_id))
