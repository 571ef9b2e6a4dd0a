"""The runs list: a page of the store's runs, newest first, filtered by the query string.

Filters (all optional): ``pipeline``, ``status``, ``seed``, ``from`` and ``to`` (dates or
ISO times, UTC; ``to`` as a date includes that day), ``q`` (text in the decisions' routers,
chosen values and reasons), ``eval`` and ``config`` (exactly the runs of one configuration
of an evaluation file, :mod:`orch.ui._eval_runs`), ``limit`` (page size) and ``after`` (the
cursor of the next page).
It asks :func:`traces.list_runs`, which answers from the store's index when it keeps one.
A filter that is not one is a 400 page naming it. ``/runs.json`` is the same as JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, get_args
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orch.ui._errors import UiError
from orch.ui._eval_runs import EvalScope, scoped_page
from orch.ui._evalfile import EvalFiles
from orch.ui._state import guarded, render, state_of
from orch.ui._values import wall
from traces import ArtifactStore, IndexedRun, RunFilter, RunHead, RunPage, list_runs

__all__ = ["STATUSES", "parse_filter", "pipelines", "runs_json", "runs_page"]

STATUSES: tuple[str, ...] = get_args(RunHead.model_fields["status"].annotation)
"""Every status a run can have, for the filter's select."""
SEED_MAX = 2**63 - 1
"""The largest recorded seed (as ``orch run --seed`` allows)."""
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_FIELDS = ("pipeline", "status", "seed", "from", "to", "q", "limit", "eval", "config")


def _time(name: str, text: str, *, end: bool) -> float:
    try:
        if len(text) == 10:  # a date: from its first second, to the end of that day
            day = dt.date.fromisoformat(text)
            when = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=int(end))
        else:
            when = dt.datetime.fromisoformat(text)
            when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    except ValueError:
        raise UiError(
            400, f"{name}={text[:40]!r} is not a date; fix: give YYYY-MM-DD or an ISO time (UTC)"
        ) from None
    return when.timestamp()


def _int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise UiError(400, f"{name}={text[:40]!r} is not an integer from {low} to {high}")
    return value


def parse_filter(query: Mapping[str, str]) -> tuple[RunFilter, int, str | None]:
    """``(filter, limit, cursor)`` from a query string; UiError(400) for a bad field."""
    given = {k: query[k].strip() for k in (*_FIELDS, "after") if query.get(k, "").strip()}
    status = given.get("status")
    if status is not None and status not in STATUSES:
        raise UiError(400, f"status={status[:40]!r} is not a run status; fix: one of {STATUSES}")
    where = RunFilter(
        pipeline=given.get("pipeline"),
        status=status,
        seed=_int("seed", given["seed"], 0, SEED_MAX) if "seed" in given else None,
        started_from=_time("from", given["from"], end=False) if "from" in given else None,
        started_before=_time("to", given["to"], end=True) if "to" in given else None,
        text=given.get("q"),
    )
    limit = _int("limit", given["limit"], 1, MAX_LIMIT) if "limit" in given else DEFAULT_LIMIT
    return where, limit, given.get("after")


def pipelines(store: ArtifactStore) -> list[str]:
    """The pipeline names of the store's runs, from its index when it keeps one."""
    index = store.run_index()
    if index is not None:
        return index.pipelines()
    names = set()
    for run_id in store.run_ids():  # no index: a small store (memory, overlay)
        raw = store.read_run_head(run_id)
        if raw is not None:
            try:
                names.add(RunHead.model_validate_json(raw).pipeline)
            except ValueError:
                continue  # an unreadable head: verification names it
    return sorted(names)


def _page(
    store: ArtifactStore, query: Mapping[str, str], evals: EvalFiles | None = None
) -> tuple[RunFilter, int, RunPage, EvalScope | None]:
    where, limit, after = parse_filter(query)
    if query.get("eval") or query.get("config"):  # one configuration of an evaluation
        name, label = query.get("eval", ""), query.get("config", "")
        page, scope = scoped_page(store, evals, name, label, where, limit, after)
        return where, limit, page, scope
    try:
        return where, limit, list_runs(store, where, limit=limit, after=after), None
    except ValueError as exc:  # a cursor that is not one
        raise UiError(400, str(exc)) from None


def _run_json(run: IndexedRun) -> dict[str, Any]:
    return asdict(run) | {"url": f"/runs/{run.run_id}"}


@guarded
async def runs_json(request: Request) -> Response:
    store = state_of(request).store
    evals = request.app.state.evals
    _, _, page, _ = await run_in_threadpool(_page, store, request.query_params, evals)
    return JSONResponse({"runs": [_run_json(r) for r in page.runs], "next": page.next})


@guarded
async def runs_page(request: Request) -> Response:
    store = state_of(request).store
    query = request.query_params
    evals = request.app.state.evals
    where, limit, page, scope = await run_in_threadpool(_page, store, query, evals)
    names = await run_in_threadpool(pipelines, store)
    kept = [(k, query[k]) for k in _FIELDS if query.get(k, "").strip()]
    return render(
        request,
        "runs.html",
        {
            "runs": page.runs,
            "next_url": f"/?{urlencode([*kept, ('after', page.next)])}" if page.next else None,
            "first_url": f"/?{urlencode(kept)}" if query.get("after") else None,
            "form": {k: query.get(k, "") for k in _FIELDS},
            "filtered": any(v is not None for v in asdict(where).values()) or scope is not None,
            "scope": scope,
            "limit": limit,
            "pipelines": names,
            "statuses": STATUSES,
            "wall": wall,
        },
    )
