"""Verification against the store's ledger: what the engine anchored must still be there.

A run's own hashes (:mod:`traces._verify`) catch any edit inside a run. They cannot catch a
run that vanished whole, a log cut short before its run ended, or a store put back to an
older copy: for that, the ledger (:mod:`traces._ledger`) says what existed. This module reads
the ledger once (:class:`LedgerView`; a server that verifies run after run extends the view
it has with the entries appended since, :meth:`LedgerView.extended`) and checks:

* the ledger itself: every entry readable and canonical, entry 0 the only genesis, each
  run started or adopted once, nothing said of a run before it started;
* every checkpoint stored with it: its root is the root of that many entries now, and its
  signatures by keys the caller trusts verify (others are listed);
* a checkpoint the auditor kept (``since``): the ledger still holds its entries unchanged
  (the store was not rolled back or forked behind it);
* per run (:func:`check_run`): the run's head and log agree with its entries: the start
  entry names the log's first event, a seal names the root hash and the log's exact length
  and last hash, an interruption names a prefix of the log, and the head's status is the
  ledger's latest (a head left behind by a crash between the two writes is a warning);
* every run the ledger names still has a head (:func:`missing_runs`).

Nothing here raises on bad data; findings are :class:`~traces._verify.Problem` values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._ledger import ORIGIN_PREFIX, RANGE_EXTENSION, checkpoint_range
from ._ledger_entries import (
    AdoptEntry,
    AnchorEntry,
    GenesisEntry,
    LedgerEntry,
    SealEntry,
    StartEntry,
    StatusEntry,
    parse_entry,
)
from ._note import Checkpoint, Verifier, open_checkpoint
from ._records import STATUS_RANK, RunHead
from ._store import ArtifactStore
from ._tlog import MerkleTree, leaf_hash
from .errors import NoteError, ProofError

__all__ = ["LedgerView", "check_log_length", "check_run", "ledger_status", "missing_runs"]

Report = Callable[[str, str, str], None]
"""Adds a problem: (kind, subject, detail)."""


@dataclass
class LedgerView:
    """A store's ledger as read once: its entries parsed, grouped by run, and its tree."""

    size: int
    tree: MerkleTree
    entries: list[tuple[int, LedgerEntry | str]]
    by_run: dict[str, list[tuple[int, LedgerEntry]]] = field(default_factory=dict)
    store_id: str | None = None
    complete: bool = True
    """False for a view of some entries only (an evidence bundle's): entries of other runs
    are then absent without anything being wrong."""
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    """Findings about the ledger itself (kind, subject, detail)."""
    started: set[str] = field(default_factory=set)
    """The runs a start or adopt entry names (what a later entry of a run is checked against)."""

    @classmethod
    def read(cls, store: ArtifactStore) -> LedgerView | None:
        """None for a store that keeps no ledger, or has none yet (made before ledgers)."""
        if not store.supports_ledger:
            return None
        raw = store.ledger_read()
        if not raw:
            return None
        view = cls(size=0, tree=MerkleTree(), entries=[])
        view._add(raw)
        return view

    def extended(self, store: ArtifactStore) -> LedgerView | None:
        """This view brought up to ``store``'s ledger as it is now, reading only the entries
        appended since it was read: a new view (this one is left as it is, for whoever still
        uses it), or this one when nothing was appended.

        The entries already read are trusted, not read again, except the last, which must
        still hash the same: a ledger cut short, or rewritten at its end, is read again whole
        (:meth:`read`), and so is one of another store. An entry rewritten further back goes
        unnoticed until the ledger is read afresh, which is what ``orch verify`` does."""
        if not store.supports_ledger:
            return None
        size = store.ledger_size()
        if size < self.size or not self.size or not self.complete or len(self.tree) != self.size:
            return LedgerView.read(store)
        last = store.ledger_read(self.size - 1, self.size)
        if len(last) != 1 or leaf_hash(last[0]) != self.tree.leaf(self.size - 1):
            return LedgerView.read(store)
        if size == self.size:
            return self
        raw = store.ledger_read(self.size)  # maybe more than ``size`` by now: all are read
        view = replace(
            self,
            tree=copy.deepcopy(self.tree),
            entries=list(self.entries),
            by_run=dict(self.by_run),
            problems=list(self.problems),
            started=set(self.started),
        )
        view._add(raw)
        return view

    def _add(self, raw: Sequence[bytes]) -> None:
        """Append the entries ``raw`` (those from index :attr:`size` on) to this view."""
        start = self.size
        self.tree.extend(leaf_hash(data) for data in raw)
        added: list[tuple[int, LedgerEntry | str]] = []
        for index, data in enumerate(raw, start):
            try:
                entry: LedgerEntry | str = parse_entry(data)
            except ValueError as exc:
                entry = _reason(exc)
            added.append((index, entry))
        self.entries.extend(added)
        self.size = start + len(raw)
        self._index(added)

    def _problem(self, subject: str, detail: str) -> None:
        self.problems.append(("ledger", subject, detail))

    def _index(self, added: Sequence[tuple[int, LedgerEntry | str]]) -> None:
        started = self.started
        for index, entry in added:
            subject = f"ledger entry #{index}"
            if isinstance(entry, str):
                self._problem(subject, f"unreadable: {entry}: the ledger was altered")
                continue
            if isinstance(entry, GenesisEntry):
                if index != 0:
                    self._problem(subject, "a second genesis entry: the ledger was altered")
                else:
                    self.store_id = entry.store
                continue
            if index == 0:
                self._problem(subject, f"a {entry.type!r} entry where the genesis entry must be")
            if isinstance(entry, AnchorEntry):
                continue
            run = entry.run
            if isinstance(entry, StartEntry | AdoptEntry):
                if run in started:
                    self._problem(subject, f"run {run} started a second time")
                started.add(run)
            elif run not in started:
                self._problem(
                    subject, f"a {entry.type!r} entry of run {run}, which the ledger never started"
                )
            # A new list, never an append to one an older view shares (see ``extended``).
            self.by_run[run] = [*self.by_run.get(run, ()), (index, entry)]

    @property
    def origin(self) -> str | None:
        return None if self.store_id is None else ORIGIN_PREFIX + self.store_id

    # -- checkpoints -----------------------------------------------------------------------

    def check_checkpoint(
        self,
        note: bytes,
        subject: str,
        trusted: Sequence[Verifier],
        report: Report,
        warn: Callable[[str], None],
        *,
        kept: bool,
    ) -> bool:
        """Check one checkpoint note against the ledger; True when it holds."""
        try:
            checkpoint, opened = open_checkpoint(note, trusted)
        except NoteError as exc:
            report("checkpoint", subject, f"not a valid signed checkpoint: {exc}")
            return False
        if self.origin is not None and checkpoint.origin != self.origin:
            report(
                "checkpoint",
                subject,
                f"is a checkpoint of {checkpoint.origin!r}, and this store's ledger is "
                f"{self.origin!r}: another store's, or this store's ledger was replaced",
            )
            return False
        if not _holds(self, checkpoint, subject, report, kept=kept):
            return False
        if opened.verified:
            return True
        signers = ", ".join(s.key for s in opened.unknown) or "nobody"
        warn(
            f"{subject} is consistent with the ledger, but signed by {signers}, none of them a "
            "key you trust; fix: pass --trust KEY (a verifier key, a .pub file or a key name "
            "in your keyring) to check who signed it"
        )
        return True


def _holds(
    view: LedgerView, checkpoint: Checkpoint, subject: str, report: Report, *, kept: bool
) -> bool:
    if checkpoint.size > view.size:
        how = (
            "the store was rolled back to an older copy, or entries were removed"
            if kept
            else "entries were removed after it was signed"
        )
        report(
            "checkpoint",
            subject,
            f"covers {checkpoint.size} ledger entries, but the ledger holds {view.size}: {how}",
        )
        return False
    root = view.tree.root(checkpoint.size)
    if root != checkpoint.root:
        report(
            "checkpoint",
            subject,
            f"its root {checkpoint.root.hex()} is not the root of the ledger's first "
            f"{checkpoint.size} entries ({root.hex()}): entries it covers were changed, "
            "removed or reordered (the store was rewritten or forked)",
        )
        return False
    try:
        edge = checkpoint_range(checkpoint)
    except ProofError as exc:
        report("checkpoint", subject, f"its {RANGE_EXTENSION} line is unreadable: {exc}")
        return False
    if edge is not None and edge.hashes != view.tree.compact_range(checkpoint.size).hashes:
        report(
            "checkpoint",
            subject,
            f"its {RANGE_EXTENSION} line is not the compact range of the ledger's first "
            f"{checkpoint.size} entries: it was signed wrong",
        )
        return False
    return True


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first: dict[str, Any] = errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        return f"not a ledger entry: {where}: {first['msg']}"
    return str(exc)


def ledger_status(entries: Sequence[tuple[int, LedgerEntry]]) -> tuple[str, int] | None:
    """The run's latest status by its entries, and the index of the entry that set it."""
    found: tuple[str, int] | None = None
    for index, entry in entries:
        if isinstance(entry, StartEntry):
            found = ("running", index)
        elif isinstance(entry, AdoptEntry | SealEntry | StatusEntry):
            found = (entry.status, index)
    return found


def missing_runs(
    view: LedgerView, run_ids: set[str], has_events: Callable[[str], bool], report: Report
) -> None:
    """Every run the ledger started or adopted must still have a head."""
    for run, entries in sorted(view.by_run.items()):
        if run in run_ids:
            continue
        first = entries[0][0]
        what = "its head is missing" if has_events(run) else "its head and its events are missing"
        report(
            "run",
            f"run {run}",
            f"the ledger records it (entry #{first}: {entries[0][1].type}) but {what}: the run "
            "was deleted",
        )


def check_run(
    view: LedgerView,
    head: RunHead,
    lines: int,
    events: Sequence[dict[str, Any]],
    chain_intact: bool,
    report: Report,
    warn: Callable[[str], None],
) -> SealEntry | None:
    """Check one run's head and log against its ledger entries; return its seal, if any.

    ``lines`` is how many lines its log holds, ``events`` its intact chain from the first,
    ``chain_intact`` whether every line is in that chain."""
    run = head.run_id
    entries = view.by_run.get(run, [])
    if not entries:
        if head.lineage is None:
            warn(f"run {run} predates the store's ledger and is not anchored in it")
        elif head.root_hash is not None:
            report(
                "run",
                f"run {run}",
                "it ended, but the store's ledger does not record it: it was added behind "
                "the engine's back, or its ledger entries were removed",
            )
        else:
            warn(
                f"run {run} is not in the store's ledger yet: it is starting, or its process "
                "died before anchoring it"
            )
        return None
    seal: SealEntry | None = None
    for index, entry in entries:
        subject = f"ledger entry #{index}"
        if isinstance(entry, StartEntry):
            _check_start(entry, head, lines, events, subject, report)
        elif isinstance(entry, SealEntry):
            seal = entry
            check_log_length(
                entry.events,
                entry.event_head,
                lines,
                events,
                chain_intact,
                report,
                f"the ledger sealed its log at {entry.events} events ({subject})",
                exact=True,
            )
            if head.root_hash is not None and head.root_hash != entry.root_hash:
                report(
                    "head",
                    f"run head of {run}",
                    f"names root hash {head.root_hash}, the ledger's seal ({subject}) "
                    f"{entry.root_hash}: the head was rewritten",
                )
        if isinstance(entry, StatusEntry):
            _check_by(view, entry, head, subject, report, warn)
        if isinstance(entry, StatusEntry | AdoptEntry) and entry.events is not None:
            exact = isinstance(entry, StatusEntry) and seal is None
            what = "taken over" if isinstance(entry, StatusEntry) else "adopted by the ledger"
            check_log_length(
                entry.events,
                entry.event_head,
                lines,
                events,
                chain_intact,
                report,
                f"the ledger anchored its log at {entry.events} events when it was "
                f"{what} ({subject})",
                exact=exact,
            )
    if (
        head.root_hash is not None
        and seal is None
        and not any(isinstance(e, AdoptEntry) and e.root_hash for _, e in entries)
    ):
        report(
            "ledger",
            f"ledger entries of run {run}",
            f"the run has a record (root hash {head.root_hash}), but the ledger holds no seal "
            "of it: its seal entry was removed, or the record was added behind the engine",
        )
    if head.lineage is not None and not any(
        isinstance(e, StartEntry | AdoptEntry) for _, e in entries
    ):
        report(
            "ledger",
            f"ledger entries of run {run}",
            "the ledger holds entries of the run but not its start: the start entry was removed",
        )
    latest = ledger_status(entries)
    if latest is not None and latest[0] != head.status:
        status, index = latest
        if STATUS_RANK.get(status, 0) > STATUS_RANK.get(head.status, 0):
            warn(
                f"run {run}: its head says {head.status!r}, the ledger {status!r} (entry "
                f"#{index}): the head was not updated after it (a process died between the "
                "two writes); the ledger is the authority"
            )
        else:
            report(
                "head",
                f"run head of {run}",
                f"says {head.status!r}, but the ledger's latest entry for the run (#{index}) "
                f"says {status!r}: the head was rewritten",
            )
    return seal


def _check_by(
    view: LedgerView,
    entry: StatusEntry,
    head: RunHead,
    subject: str,
    report: Report,
    warn: Callable[[str], None],
) -> None:
    """The run a status entry says made the change: for ``superseded``, the one the head
    names; for ``interrupted``, a run the ledger started in the same lineage (or none: a
    resume killed after it took over, before it began)."""
    if entry.status == "superseded":
        if head.status == "superseded" and head.superseded_by != entry.by:
            report(
                "head",
                f"run head of {head.run_id}",
                f"says it was superseded by {head.superseded_by!r}, but the ledger's entry "
                f"({subject}) names run {entry.by}: the head or the ledger was rewritten",
            )
        return
    mine = _lineage(view, head.run_id)
    theirs = _lineage(view, entry.by)
    if mine is None or (theirs is None and not view.complete):
        # Adopted (made before the ledger: its lineage was never stated), or a bundle's view,
        # which holds this run's entries only.
        return
    if theirs is None:
        # The resume appends these entries before its own start: killed in between, it
        # never began. What it anchored still holds; the run waits for another resume.
        warn(
            f"{subject} says run {entry.by} took run {head.run_id} over, but run "
            f"{entry.by} never began (its process died first)"
        )
        return
    if theirs != mine:
        report(
            "ledger",
            subject,
            f"says run {entry.by} took run {head.run_id} over, but the ledger started it in "
            f"lineage {theirs!r}, not {mine!r}: the ledger was rewritten",
        )


def _lineage(view: LedgerView, run: str) -> str | None:
    """The lineage the ledger's start entry of ``run`` states (None: no start entry)."""
    for _, entry in view.by_run.get(run, []):
        if isinstance(entry, StartEntry):
            return entry.lineage
    return None


def _check_start(
    entry: StartEntry,
    head: RunHead,
    lines: int,
    events: Sequence[dict[str, Any]],
    subject: str,
    report: Report,
) -> None:
    for name, mine, theirs in (
        ("pipeline", head.pipeline, entry.pipeline),
        ("spec hash", head.spec_hash, entry.spec),
        ("seed", head.seed, entry.seed),
        ("lineage", head.lineage, entry.lineage),
        ("resumed_from", head.resumed_from, entry.resumed_from),
    ):
        if mine != theirs:
            report(
                "head",
                f"run head of {head.run_id}",
                f"its {name} is {mine!r}, the ledger's start entry ({subject}) says "
                f"{theirs!r}: the head was rewritten",
            )
            return
    if not events and lines == 0:
        report(
            "event",
            "event log",
            f"is empty, but the ledger's start entry ({subject}) names its first event "
            f"{entry.start_event}: the run's events were removed",
        )
    elif events and events[0].get("hash") != entry.start_event:
        report(
            "event",
            "event #0",
            f"hashes to {events[0].get('hash')}, but the ledger's start entry ({subject}) names "
            f"{entry.start_event}: the run's log was replaced",
        )


def check_log_length(
    count: int,
    last: str | None,
    lines: int,
    events: Sequence[dict[str, Any]],
    chain_intact: bool,
    report: Report,
    anchor: str,
    *,
    exact: bool,
) -> None:
    """The log must still hold the ``count`` events anchored, ending in ``last`` (and, when
    ``exact``, no intact event after them: a torn last line is what a crash leaves, and the
    run's own checks judge it)."""
    subject = "event log"
    if len(events) >= count:
        if count and events[count - 1].get("hash") != last:
            report(
                "event",
                subject,
                f"{anchor}, ending in {last}, but its event #{count - 1} hashes to "
                f"{events[count - 1].get('hash')}: the log was rewritten",
            )
        elif exact and len(events) > count:
            report(
                "event",
                subject,
                f"holds {len(events)} events, but {anchor}: events were appended afterwards",
            )
        return
    if not chain_intact:
        return  # the broken link is the problem (reported by the run's own checks)
    report(
        "event",
        subject,
        f"holds {lines} events, but {anchor}: the last {count - lines} were removed",
    )
