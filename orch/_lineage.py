"""Run lineages: a run, the resumes that continue it, and the one status each run has.

A run that is killed or fails is continued by a resume under a new id; that resume may be
killed and resumed in turn, from it or from the original. The runs that continue one another
form a *lineage*, named by its first run. Heads link them both ways (``resumed_from``,
``resumed_by``) and name the lineage, so its members are found without scanning the store.

One process at a time works on a lineage: it holds the lease named after the lineage
(:mod:`orch._lease`), taken before anything of the lineage is read. So two resumes of one run
cannot run at once, and a resume cannot start while the original still runs.

The status changes that another run's process makes are written here, each to the member's
head and to the store's ledger: when a resume takes over, every member still marked
``running`` (its process is gone: the lease says so) becomes ``interrupted``, with its log
anchored as it was found; when a resume finishes ok, every member that had not becomes
``superseded`` by it.

This module must never run a step or make an effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from orch.errors import OrchError
from traces import (
    STATUS_RANK,
    AdoptEntry,
    ArtifactStore,
    RunHead,
    SealEntry,
    StatusEntry,
    intact_events,
    ledger_of,
    run_origin,
)

__all__ = [
    "lineage_members",
    "read_head",
    "settle",
    "lineage_name",
    "mark_superseded",
    "mark_taken_over",
    "process_gone",
]


def read_head(
    store: ArtifactStore, run_id: str, *, unreadable: Callable[[], Exception] | None = None
) -> RunHead | None:
    """Run ``run_id``'s head, None when it has none. An unreadable head is None too, as if
    absent, unless the caller names the error to raise instead (``unreadable`` makes it)."""
    raw = store.read_run_head(run_id)
    if raw is None:
        return None
    try:
        return RunHead.model_validate_json(raw)
    except ValidationError:
        if unreadable is None:
            return None
        raise unreadable() from None


def lineage_name(store: ArtifactStore, head: RunHead) -> str:
    """The first run of ``head``'s lineage (for heads written before lineages existed, found
    by following ``resumed_from`` back)."""
    if head.lineage is not None:
        return head.lineage
    current, seen = head.run_id, {head.run_id}
    while True:
        found = run_origin(store, current).get("resumed_from")
        before = found if isinstance(found, str) else None
        if before is None or before in seen or store.read_run_head(before) is None:
            return current
        seen.add(before)
        current = before


def lineage_members(store: ArtifactStore, run_id: str) -> list[RunHead]:
    """Every run of ``run_id``'s lineage, the first one first, then each resume after the run
    it resumed (in the order they started): the order in which their records are trusted."""
    start = read_head(store, run_id)
    if start is None:
        raise OrchError(f"no run {run_id!r} in store {store.location}")
    root = read_head(store, lineage_name(store, start)) or start
    members: list[RunHead] = []
    seen: set[str] = set()
    queue = [root]
    while queue:
        head = queue.pop(0)
        if head.run_id in seen:
            continue
        seen.add(head.run_id)
        members.append(head)
        for later in head.resumed_by:
            found = read_head(store, later)
            if found is not None:
                queue.append(found)
    if start.run_id not in seen:  # a legacy resume whose original never named it
        members.append(start)
    return members


def process_gone(store: ArtifactStore, head: RunHead) -> bool:
    """For a run still marked ``running``: True when no process works on its lineage any
    more (the lease is free, or held by a process of this machine that is gone), so that
    the run was interrupted and waits for a resume. False when it may be running (or the
    store keeps no claims: nobody can tell). Reads only."""
    if head.status != "running" or not store.supports_claims:
        return False
    from orch._lease import holder_is_gone  # the lease module is heavier; only readers need it

    document = store.read_claim(lineage_name(store, head))
    return document is None or holder_is_gone(document)


def _write(store: ArtifactStore, head: RunHead) -> None:
    store.write_run_head(head.run_id, head.to_bytes())


def mark_taken_over(
    store: ArtifactStore,
    members: Sequence[RunHead],
    resumed: str,
    by: str,
    logs: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[RunHead]:
    """Run ``by`` now works on the lineage, resuming ``resumed``: name it in ``resumed``'s
    ``resumed_by``, and mark every member still ``running`` as ``interrupted``, anchoring its
    log as found (``logs``: run id -> its chained events, as the caller read them under the
    same lease, so that a long log is not read and checked twice). Call it holding the
    lineage's lease. Returns the members as now stored."""
    ledger = ledger_of(store)
    out: list[RunHead] = []
    for head in members:
        update: dict[str, object] = {}
        if head.run_id == resumed and by not in head.resumed_by:
            update["resumed_by"] = [*head.resumed_by, by]
        if head.status == "running":
            found = None if logs is None else logs.get(head.run_id)
            if found is None:
                count, last = intact_events(store.read_events(head.run_id))
            else:
                count, last = len(found), (str(found[-1]["hash"]) if found else None)
            update |= {"status": "interrupted", "event_count": count, "event_head": last}
            if ledger.supported:
                ledger.append(
                    StatusEntry(
                        run=head.run_id, status="interrupted", by=by, events=count, event_head=last
                    )
                )
        if update:
            head = head.model_copy(update=update)
            _write(store, head)
        out.append(head)
    return out


def settle(store: ArtifactStore, run_id: str) -> list[RunHead]:
    """Finish what a process of ``run_id``'s lineage was killed before finishing, and return
    the members as now stored. A member the ledger never saw begin (killed between its head
    and its start entry) is adopted as it stands; a head behind its ledger entries (a process
    that died between appending an entry and writing its head) is brought up to them; when a
    member ended ok,
    every other one is marked superseded by it (the resume that finished may have died before
    marking them). Call it holding the lineage's lease."""
    members = lineage_members(store, run_id)
    ledger = ledger_of(store)
    if ledger.supported:
        entries = ledger.entries_of({m.run_id for m in members})
        for head in members:
            mine = entries.get(head.run_id, [])
            if not mine:
                # Killed between its head and its start entry: the ledger never saw it begin.
                # Adopted as it stands, so that what happens to it next has a run to name.
                count, last = intact_events(store.read_events(head.run_id))
                ledger.append(
                    AdoptEntry(
                        run=head.run_id,
                        status=head.status,
                        root_hash=head.root_hash,
                        events=count,
                        event_head=last,
                    )
                )
            update = _behind(head, mine)
            if update:
                _write(store, head.model_copy(update=update))
        members = lineage_members(store, run_id)
    done = next((m for m in members if m.status == "ok"), None)
    if done is not None:
        mark_superseded(store, members, done.run_id)
        members = lineage_members(store, run_id)
    return members


def _behind(head: RunHead, entries: Sequence[tuple[int, object]]) -> dict[str, object]:
    """The head fields the run's ledger entries say it should have, when it fell behind."""
    update: dict[str, object] = {}
    rank = STATUS_RANK.get(head.status, 0)
    for _, entry in entries:
        if isinstance(entry, SealEntry) and STATUS_RANK[entry.status] > rank:
            update = {
                "status": entry.status,
                "root_hash": entry.root_hash,
                "event_count": entry.events,
                "event_head": entry.event_head,
            }
            rank = STATUS_RANK[entry.status]
        elif isinstance(entry, StatusEntry) and STATUS_RANK[entry.status] > rank:
            if entry.status == "superseded":
                update |= {"status": "superseded", "superseded_by": entry.by}
            else:
                update |= {
                    "status": "interrupted",
                    "event_count": entry.events,
                    "event_head": entry.event_head,
                }
            rank = STATUS_RANK[entry.status]
    return update


def mark_superseded(store: ArtifactStore, members: Sequence[RunHead], by: str) -> None:
    """Run ``by`` finished ok: every member that did not is ``superseded`` by it."""
    ledger = ledger_of(store)
    for head in members:
        current = read_head(store, head.run_id) or head
        if current.status in ("ok", "superseded") or current.run_id == by:
            continue
        # The ledger first: it is the authority, the head a copy a crash may leave behind.
        if ledger.supported:
            ledger.append(
                StatusEntry(
                    run=current.run_id, status="superseded", by=by, events=None, event_head=None
                )
            )
        _write(store, current.model_copy(update={"status": "superseded", "superseded_by": by}))
