"""The runs of one configuration of an evaluation, as a runs list (``/?eval=FILE&config=LABEL``).

An evaluation file names every task's run of every configuration by id, and that is the only
exact way to the runs of one configuration: configurations of a sweep share their pipeline's
name, and a store's index knows nothing of evaluations. So this scope is the runs page's
alone (not a filter of ``traces.list_runs``): it reads the heads of the configuration's runs
by id (no listing of the store), keeps those the other filters pass, newest first like the
list, a page at a time (``after`` is then the number of runs already shown). Runs the file
names that are not in this store are counted, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from orch.ui._errors import UiError
from orch.ui._evalfile import EvalFiles, check_name
from traces import (
    ArtifactStore,
    IndexedRun,
    RunFilter,
    RunHead,
    RunPage,
    TraceError,
    check_run_id,
    indexed_run,
    load_run_head,
)

__all__ = ["EvalScope", "scoped_page"]

_UNREADABLE = (TraceError, ValidationError, ValueError, KeyError)


@dataclass(frozen=True)
class EvalScope:
    """What the runs page says above a configuration's runs."""

    name: str
    config: str
    title: str
    runs: int
    """Runs the file names for the configuration."""
    missing: int
    """Of those, how many this store does not hold (or cannot read)."""
    store: str | None
    """Where the file says its runs are."""


def _entry(store: ArtifactStore, head: RunHead) -> IndexedRun:
    return indexed_run(store, head, decisions=False)


def _with_decisions(store: ArtifactStore, head: RunHead, run: IndexedRun) -> IndexedRun:
    try:
        return indexed_run(store, head)
    except _UNREADABLE:
        return run  # a damaged record: the run's own page and verification say what


def scoped_page(
    store: ArtifactStore,
    files: EvalFiles | None,
    name: str,
    config: str,
    where: RunFilter,
    limit: int,
    after: str | None,
) -> tuple[RunPage, EvalScope]:
    """A page of the runs of configuration ``config`` of evaluation file ``name``."""
    if files is None:
        raise UiError(
            404, "this orch ui lists no evaluations; fix: start it with orch ui --evals DIR"
        )
    doc = files.open(check_name(name))
    chosen = doc.config(config)
    try:
        start = int(after) if after is not None else 0
    except ValueError:
        start = -1
    if start < 0:
        raise UiError(
            400,
            f"after={str(after)[:40]!r} is not a page of this list; fix: follow "
            "the list's own next-page link",
        )
    ids = list(dict.fromkeys(r.run_id for r in chosen.runs))
    found: list[tuple[RunHead, IndexedRun]] = []
    missing = 0
    for run_id in ids:
        try:
            check_run_id(run_id)
            head = load_run_head(store, run_id)
        except _UNREADABLE:
            missing += 1
            continue
        run = _entry(store, head)
        if where.text:  # text in the decisions: read them for every candidate
            run = _with_decisions(store, head, run)
        if where.matches(run):
            found.append((head, run))
    found.sort(key=lambda hr: (hr[1].started_at, hr[1].run_id), reverse=True)
    shown = found[start : start + limit]
    runs = [run if where.text else _with_decisions(store, head, run) for head, run in shown]
    more = start + limit < len(found)
    scope = EvalScope(name, config, doc.title, len(ids), missing, doc.store)
    return RunPage(runs, str(start + limit) if more else None), scope
