"""Verify a run or the whole store from the page: a form (GET ``/verify``) posting to
``/verify`` with ``run`` (empty: the whole store). Verification only reads; each problem is
shown with the record it names. A run verified here refreshes its page's badge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from orch.ui._errors import UiError
from orch.ui._run_model import version_of
from orch.ui._state import UiState, guarded, render, resolve_run, state_of
from traces import VerifyReport, load_run_view, verify_run, verify_store

__all__ = ["verify_form", "verify_post"]

_MAX_FORM = 4096  # the form holds one run id


@guarded
async def verify_form(request: Request) -> Response:
    return render(request, "verify.html", {"report": None, "run": ""})


def _verify(state: UiState, run: str, trusted: Sequence[Any]) -> VerifyReport:
    if not run:
        return verify_store(state.store, trusted=trusted)
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
    if run:
        run = await run_in_threadpool(resolve_run, state.store, run)
    report = await run_in_threadpool(_verify, state, run, state.settings.trusted)
    return render(request, "verify.html", {"report": report, "run": run})
