"""Replay a run offline from its page, as ``orch replay`` does, with progress and the result.

* ``GET /runs/RUN/replay``: what a replay would import (the pipeline file the run records,
  and whether its recorded source files are on disk as recorded), the form that starts one,
  and the last replay of the run: how many steps it replayed of how many, then whether it was
  clean (the same root hash) or where it diverged, field by field.
* ``POST /runs/RUN/replay``: start one (fields ``record`` and ``accept_changed``, both off by
  default), then back to the page. Refused with 403 unless the server was started with
  ``--allow-replay``; 409 while the run already replays.
* ``GET /runs/RUN/replay.json``: the last replay's state, what the page polls.

By default a replay is not recorded: it runs on an overlay of the store (its writes kept in
memory and dropped), so the store does not change; ``record`` keeps it as a new run, as
``orch replay`` without ``--no-record`` does. The replay itself runs in a process of its own
(:mod:`orch.ui._replay_worker`, see why there).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from orch._replay import check_recorded_pipeline
from orch.errors import OrchError
from orch.ui._errors import UiError
from orch.ui._replay_jobs import ReplayJobs, ReplayRequest
from orch.ui._state import UiState, guarded, render, resolve_run, state_of
from traces import MemoryStore, OverlayStore

__all__ = ["ENABLE", "jobs_of", "replay_json", "replay_page", "replay_post"]

ENABLE = (
    "replay is off: this orch ui was started read-only; fix: start it with "
    "orch ui --allow-replay (a replay imports the run's pipeline file and runs it)"
)
_MAX_FORM = 1024
_YES = ("1", "on", "true", "yes")


def jobs_of(request: Request) -> ReplayJobs:
    """The server's replay jobs (made with the app: :func:`orch.ui._app.create_app`)."""
    jobs: ReplayJobs = request.app.state.replays
    return jobs


def _no_location(state: UiState) -> str | None:
    """Why this server cannot start a replay process over its store (None: it can)."""
    store = state.store
    if isinstance(store, MemoryStore | OverlayStore) or state.settings.store_location is None:
        return (
            "this server's store is not one another process can open (a store in memory, or "
            "an app made without its location); fix: serve the store with orch ui --store "
            "LOCATION --allow-replay, or replay from a shell: orch replay RUN"
        )
    return None


def _plan(state: UiState, run_id: str) -> dict[str, Any]:
    """What a replay of ``run_id`` would import, and how its sources compare with the disk."""
    try:
        found = check_recorded_pipeline(state.store, run_id)
    except OrchError as exc:
        return {"target": None, "problem": str(exc).splitlines()[0], "changes": []}
    if found is None:
        return {
            "target": None,
            "problem": f"run {run_id} does not record which file its pipeline came from (it "
            f"was not started by 'orch run'); replay it from a shell: orch replay {run_id} "
            "--pipeline FILE.py:NAME",
            "changes": [],
        }
    return {
        "target": found.target,
        "problem": None,
        "sources": None if found.sources is None else len(found.sources.files),
        "changes": [c.to_json() for c in found.changes],
    }


@guarded
async def replay_page(request: Request) -> Response:
    state = state_of(request)
    run_id = await run_in_threadpool(resolve_run, state.store, request.path_params["run_id"])
    context: dict[str, Any] = {"run_id": run_id, "enabled": state.settings.allow_replay}
    if state.settings.allow_replay:
        context |= {
            "plan": await run_in_threadpool(_plan, state, run_id),
            "unavailable": _no_location(state),
            "job": jobs_of(request).snapshot(run_id),
        }
    return render(request, "replay.html", context)


@guarded
async def replay_json(request: Request) -> Response:
    state = state_of(request)
    run_id = await run_in_threadpool(resolve_run, state.store, request.path_params["run_id"])
    job = jobs_of(request).snapshot(run_id) if state.settings.allow_replay else None
    return JSONResponse({"allowed": state.settings.allow_replay, "job": job})


@guarded
async def replay_post(request: Request) -> Response:
    state = state_of(request)
    if not state.settings.allow_replay:
        raise UiError(403, ENABLE)
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise UiError(413, "the form is too large; fix: use the replay form of the run's page")
    fields = dict(parse_qsl(body.decode("utf-8", "replace")))
    run_id = await run_in_threadpool(resolve_run, state.store, request.path_params["run_id"])
    why = _no_location(state)
    if why is not None:
        raise UiError(409, why)
    location = state.settings.store_location
    assert location is not None  # _no_location said so
    jobs_of(request).start(
        ReplayRequest(
            store=location,
            run_id=run_id,
            record=fields.get("record", "").lower() in _YES,
            accept_changed=fields.get("accept_changed", "").lower() in _YES,
        )
    )
    return RedirectResponse(f"/runs/{run_id}/replay", status_code=303)
