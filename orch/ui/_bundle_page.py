"""A run's evidence bundle as a download (``/runs/RUN/evidence.orchpack``): the file
``orch export RUN`` writes, which ``orch verify FILE --trust KEY`` checks on a machine with no
store.

The page never signs: the bundle takes a checkpoint already stored with the ledger that
covers the run's last ledger entry. Without one (a store never checkpointed since the run)
the answer is one line naming the command that signs one; so the app stays read-only.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from orch._version import __version__
from orch.ui._errors import UiError
from orch.ui._state import guarded, resolve_run, state_of
from traces import ArtifactStore, EvidenceError, choose_checkpoint, export_bundle, ledger_of

__all__ = ["bundle_download"]


def _bundle(store: ArtifactStore, run_id: str) -> bytes:
    entries = ledger_of(store).run_entries(run_id) if store.supports_ledger else []
    if not entries:
        raise UiError(
            404,
            f"run {run_id} is not in the store's ledger (it was made before the store kept "
            "one), so it has no evidence bundle; fix: export a run recorded since",
        )
    try:
        note, _ = choose_checkpoint(store, entries[-1][0], ())
    except EvidenceError:
        raise UiError(
            409,
            f"no signed checkpoint of the store's ledger covers run {run_id} yet; fix: sign one "
            f"with 'orch checkpoint --key NAME' (or 'orch export {run_id} --key NAME'), then "
            "download again",
        ) from None
    return export_bundle(store, run_id, checkpoint=note, orch_version=__version__)


@guarded
async def bundle_download(request: Request) -> Response:
    store = state_of(request).store
    run_id = await run_in_threadpool(resolve_run, store, request.path_params["run_id"])
    data = await run_in_threadpool(_bundle, store, run_id)
    # The run id is checked (letters, digits, '.', '_', '-'): safe in the header as it is.
    disposition = f'attachment; filename="{run_id}.orchpack"'
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"content-disposition": disposition},
    )
