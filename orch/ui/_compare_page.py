"""Compare two runs: :func:`traces.diff_runs` as a page (``/compare?a=RUN&b=RUN``, or two
``run=`` fields as the runs list's checkboxes send them); ``/compare.json`` as JSON.

Without two runs it is a form asking for them. Run ids are checked as everywhere else.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orch.ui._errors import UiError
from orch.ui._state import guarded, render, resolve_run, state_of
from traces import diff_runs, load_run_head

__all__ = ["compare_page"]


def _pair(request: Request) -> tuple[str, str] | None:
    picked = [v.strip() for v in request.query_params.getlist("run") if v.strip()]
    a = request.query_params.get("a", "").strip() or (picked[0] if picked else "")
    b = request.query_params.get("b", "").strip() or (picked[1] if len(picked) > 1 else "")
    if len(picked) > 2:
        raise UiError(400, f"{len(picked)} runs were picked; fix: pick exactly two to compare")
    if not a and not b:
        return None
    if not a or not b:
        raise UiError(400, "compare needs two runs; fix: give both a= and b= (or tick two runs)")
    return a, b


@guarded
async def compare_page(request: Request) -> Response:
    state = state_of(request)
    pair = _pair(request)
    as_json = request.url.path.endswith(".json")
    if pair is None:
        if as_json:
            raise UiError(400, "compare needs two runs; fix: /compare.json?a=RUN&b=RUN")
        return render(request, "compare.html", {"diff": None, "a": "", "b": "", "heads": None})
    a = await run_in_threadpool(resolve_run, state.store, pair[0])
    b = await run_in_threadpool(resolve_run, state.store, pair[1])
    diff = await run_in_threadpool(diff_runs, state.store, a, b)
    if as_json:
        return JSONResponse(diff.model_dump(mode="json") | {"identical": diff.identical})
    heads = (
        await run_in_threadpool(load_run_head, state.store, a),
        await run_in_threadpool(load_run_head, state.store, b),
    )
    return render(request, "compare.html", {"diff": diff, "a": a, "b": b, "heads": heads})
