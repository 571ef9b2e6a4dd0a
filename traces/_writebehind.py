"""Write-behind for transactional stores: puts and event lines committed in batches.

A store whose every write is a transaction (SQLite, PostgreSQL) pays a commit per artifact
and per event line, several per step. :class:`WriteBehind` holds the artifacts and event
lines a store object accepted, in order (a :class:`Batch`), and has them committed in one
transaction per batch:

* in the background: one timer thread per process (:class:`_Flusher`) takes each store's
  batch once its oldest write is ``max_delay`` seconds old, or at once when it is full
  (``max_items`` writes or ``max_bytes`` bytes), and commits it through the store's
  ``_commit_batch`` on a connection of the store's own while the store goes on accepting
  writes into the next batch (the database does its work outside the GIL);
* in the foreground: a write that must be durable when it returns (a run head, a claim, a
  ledger entry, a checkpoint), ``flush()`` and ``close()`` first wait for the batch in flight
  (:meth:`WriteBehind.wait_idle`), then commit the pending one with it, in one transaction;
* when the store object is collected without ``close()``, and at interpreter exit.

So a killed process loses at most the writes not yet committed: artifacts and event lines that
no head, claim or ledger entry names (each of those commits everything before it), at most
``max_delay`` seconds of them when the database keeps up. A store's reads see its pending and
in-flight writes; other store objects and processes see them once committed. A background
commit that fails leaves its batch pending, ahead of newer writes, and is tried again; a
durable write then gets the error itself.

A store with a write-behind derives from :class:`WriteBehindStore`, which holds what such
stores share around it (the timer's call, the commit at collection, ``aflush``'s look at
whether anything is pending); how the store awaits a flush is its one hook.

The store's lock guards everything here: every method but :meth:`WriteBehind.on_timer` (the
timer's) is called with it held. This module must never reorder or drop a pending write,
except in a forked child, which drops what it inherited: its parent commits those.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from typing import Protocol

import anyio.lowlevel

from ._notices import current_sink, forwarding, notice
from ._store import ArtifactStore

__all__ = [
    # what a store holds and commits
    "Batch",
    "WriteBehind",
    # the store's side
    "BatchOwner",
    "WriteBehindStore",
    # process-wide
    "flush_all",
    "lost_at_close",
]

log = logging.getLogger("traces.store")

#: After a background commit that failed (the database busy past its timeout, a lost
#: server), the next try waits this long; the batch stays pending meanwhile.
RETRY_DELAY = 0.5
#: A batch is committed at once when it holds this many writes, or this many bytes.
BATCH_ITEMS = 4096
BATCH_BYTES = 8 << 20
# Past this many times the batch limits, a writer waits for the batch in flight and commits
# in the foreground: the database is not keeping up, and memory must not grow without bound.
_BACKLOG = 4


class Batch:
    """Artifacts and event lines accepted together, in order."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        """Key -> bytes, in the order put."""
        self.events: list[tuple[str, bytes]] = []
        """(run id, line), in the order appended."""
        self.count = 0
        """Writes held (artifacts and lines)."""
        self.size = 0
        """Bytes held (artifacts and lines)."""
        self.first_at = 0.0
        """When its first write was accepted (``time.monotonic``)."""
        self.sinks: list[list[str]] = []
        """The notice sinks of the contexts that wrote into it (:mod:`traces._notices`):
        whoever commits it reports its retries to each of them."""
        self.last_sink: list[str] | None = None
        """The sink added last (writes come in runs from one context: a cheap check)."""

    def add_sink(self, sink: list[str]) -> None:
        """Report this batch's notices to ``sink`` too."""
        self.last_sink = sink
        if all(s is not sink for s in self.sinks):
            self.sinks.append(sink)

    def add_blob(self, key: str, data: bytes) -> None:
        if key not in self.blobs:
            self.blobs[key] = data
            self.count += 1
            self.size += len(data)

    def add_line(self, run_id: str, line: bytes) -> None:
        self.events.append((run_id, line))
        self.count += 1
        self.size += len(line)

    def lines_by_run(self) -> dict[str, list[bytes]]:
        """Each run's lines, in order (grouped when asked: appends are the hot path)."""
        by_run: dict[str, list[bytes]] = {}
        for run_id, line in self.events:
            lines = by_run.get(run_id)
            if lines is None:
                lines = by_run[run_id] = []
            lines.append(line)
        return by_run

    def extend(self, later: Batch) -> None:
        """Append ``later``'s writes after this batch's own."""
        for sink in later.sinks:
            self.add_sink(sink)
        for key, data in later.blobs.items():
            self.add_blob(key, data)
        for run_id, line in later.events:
            self.add_line(run_id, line)


class BatchOwner(Protocol):
    """A store with a :class:`WriteBehind`, as the timer thread and the exit hook see it."""

    def _commit_batch(self, batch: Batch) -> None:
        """Commit ``batch`` in one transaction, on a connection only this call uses: one
        call at a time per store, usually from the timer thread without the store's lock
        (with it, from a writer the database does not keep up with)."""

    def _on_timer(self) -> None:
        """Call the store's :meth:`WriteBehind.on_timer` (unless the store is closed)."""

    def flush(self) -> None:
        """Commit every pending write now."""


class WriteBehind:
    """A store object's pending batch and the batch in flight (see the module docstring)."""

    def __init__(
        self,
        owner: BatchOwner,
        lock: threading.Lock,
        *,
        where: str,
        max_delay: float,
        max_items: int = BATCH_ITEMS,
        max_bytes: int = BATCH_BYTES,
    ) -> None:
        self.where = where
        self.max_delay = max_delay
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.pending = Batch()
        self.inflight: Batch | None = None
        """The batch being committed in the background, if any."""
        self._idle = threading.Condition(lock)
        self._scheduled = False
        self._asked_now = False  # a full batch asked the timer once; it need not ask again
        self._owner = weakref.ref(owner)
        _LIVE.add(self)
        _OWNERS.add(owner)

    def __bool__(self) -> bool:
        """True while anything is pending or in flight."""
        return bool(self.pending.count or self.inflight is not None)

    # -- writes (lock held) ---------------------------------------------------------------

    # The two below are every step's path: Batch.add_* inlined.

    def add_blob(self, key: str, data: bytes) -> None:
        batch = self.pending
        blobs = batch.blobs
        if key in blobs:
            return
        if not batch.count:
            self._started(batch)
        sink = current_sink()
        if sink is not None and sink is not batch.last_sink:
            batch.add_sink(sink)
        blobs[key] = data
        batch.count += 1
        batch.size += len(data)
        if batch.count >= self.max_items or batch.size >= self.max_bytes:
            self._full(batch)

    def add_line(self, run_id: str, line: bytes) -> None:
        batch = self.pending
        if not batch.count:
            self._started(batch)
        sink = current_sink()
        if sink is not None and sink is not batch.last_sink:
            batch.add_sink(sink)
        batch.events.append((run_id, line))
        batch.count += 1
        batch.size += len(line)
        if batch.count >= self.max_items or batch.size >= self.max_bytes:
            self._full(batch)

    def take(self) -> Batch:
        """The pending batch, for the caller to commit in the foreground (after
        :meth:`wait_idle`); put it back with :meth:`restore` if that fails."""
        batch, self.pending = self.pending, Batch()
        return batch

    def restore(self, batch: Batch) -> None:
        """Make ``batch`` pending again, ahead of whatever was written since."""
        batch.extend(self.pending)
        self.pending = batch
        if batch.count and not self._scheduled:
            self._schedule(time.monotonic() + RETRY_DELAY)

    def discard(self) -> None:
        """Forget everything pending (a closed store, or a forked child's inheritance)."""
        self.pending = Batch()
        self._scheduled = False

    # -- reads (lock held) ----------------------------------------------------------------

    def blob(self, key: str) -> bytes | None:
        data = self.pending.blobs.get(key)
        if data is None and self.inflight is not None:
            data = self.inflight.blobs.get(key)
        return data

    def keys(self) -> set[str]:
        keys = set(self.pending.blobs)
        if self.inflight is not None:
            keys.update(self.inflight.blobs)
        return keys

    def pending_lines(self, run_id: str) -> list[bytes]:
        """The run's pending lines, in order; call :meth:`wait_idle` first, so that every
        line before them is committed (a read racing a commit would see lines twice)."""
        return [line for rid, line in self.pending.events if rid == run_id]

    def wait_idle(self) -> None:
        """Wait until no batch is in flight (releasing the lock meanwhile)."""
        while self.inflight is not None:
            self._idle.wait()

    # -- the background commit ------------------------------------------------------------

    def _started(self, batch: Batch) -> None:
        batch.first_at = time.monotonic()
        if not self._scheduled:
            self._schedule(batch.first_at + self.max_delay)

    def _full(self, batch: Batch) -> None:
        if self.inflight is None:
            if not self._asked_now:
                self._asked_now = True
                self._schedule(0.0)  # now: the timer takes it
        elif batch.count >= _BACKLOG * self.max_items or batch.size >= _BACKLOG * self.max_bytes:
            owner = self._owner()
            self.wait_idle()
            if owner is not None and self.pending is batch:
                # The database does not keep up: commit in the foreground, holding the writer.
                self._commit_here(owner)

    def _commit_here(self, owner: BatchOwner) -> None:
        batch = self.begin_foreground()
        if batch is None:
            return
        committed = False
        try:
            with forwarding(batch.sinks):
                owner._commit_batch(batch)
            committed = True
        finally:
            self.end_foreground(batch, committed)

    def begin_foreground(self) -> Batch | None:
        """Wait for the batch in flight, then take the pending one as in flight (None when
        nothing is pending): the caller commits it, then calls :meth:`end_foreground`."""
        self.wait_idle()
        if not self.pending.count:
            return None
        batch = self.take()
        self.inflight = batch
        return batch

    def end_foreground(self, batch: Batch, committed: bool) -> None:
        """``batch`` from :meth:`begin_foreground` is committed, or (``committed`` False)
        pending again, ahead of anything newer."""
        self.inflight = None
        if not committed:
            self.restore(batch)
        self._idle.notify_all()

    def _schedule(self, due: float) -> None:
        self._scheduled = True
        _FLUSHER.schedule(self._owner, due)

    def on_timer(self) -> None:
        """The timer's call, made without the lock: commit the pending batch in the
        background when it is due (or full), else ask again when it will be."""
        with self._idle:
            self._scheduled = self._asked_now = False
            batch = self.pending
            if not batch.count:
                return
            if self.inflight is not None:  # a foreground commit: try again after it
                self._schedule(time.monotonic() + self.max_delay)
                return
            due = batch.first_at + self.max_delay
            full = batch.count >= self.max_items or batch.size >= self.max_bytes
            if not full and due > time.monotonic():
                self._schedule(due)
                return
            self.pending = Batch()
            self.inflight = batch
            owner = self._owner()
        if owner is None:
            return
        failed: Exception | None = None
        try:
            # The writers' notices (a retry of a lost connection): they are not here to log.
            with forwarding(batch.sinks):
                owner._commit_batch(batch)
        except Exception as exc:
            failed = exc
        with self._idle:
            self.inflight = None
            if failed is not None:
                self.restore(batch)
            elif self.pending.count:
                nxt = self.pending
                full = nxt.count >= self.max_items or nxt.size >= self.max_bytes
                if not self._scheduled:
                    self._schedule(0.0 if full else nxt.first_at + self.max_delay)
            self._idle.notify_all()
        if failed is not None:
            with forwarding(batch.sinks):
                notice(
                    log,
                    "store %s: committing %d pending writes failed: %s; trying again in %.1f s",
                    self.where,
                    batch.count,
                    failed,
                    RETRY_DELAY,
                )


class WriteBehindStore(ArtifactStore):
    """An artifact store whose puts and event lines a :class:`WriteBehind` holds: what the
    SQLite and PostgreSQL stores share around it (the timer's call, the commit when the object
    is collected unclosed, and :meth:`aflush`'s check that anything is pending).

    A subclass sets ``_behind`` (None when every write commits on its own) and ``_closed`` in
    ``__init__``, and implements ``_commit_batch``, ``flush`` and ``close``. How a flush is
    awaited is the one part that differs: :meth:`_aflush_pending`.
    """

    _behind: WriteBehind | None
    _closed: bool

    @abc.abstractmethod
    def _commit_batch(self, batch: Batch) -> None:
        """See :meth:`BatchOwner._commit_batch`."""

    def _on_timer(self) -> None:
        if self._behind is not None and not self._closed:
            self._behind.on_timer()

    async def aflush(self) -> None:
        if self._behind:  # a racy look, enough to skip the common case of nothing pending
            await self._aflush_pending()

    async def _aflush_pending(self) -> None:
        """:meth:`aflush` once something is pending or in flight. By default one pass of the
        event loop first: concurrent runs whose effects ended meanwhile add their records,
        and one commit makes them all durable (a group commit)."""
        await anyio.lowlevel.checkpoint()
        self.flush()

    def __del__(self) -> None:
        # Collected without close(): commit what is pending rather than lose it. (getattr:
        # an __init__ that failed early leaves the attributes unset.)
        if getattr(self, "_behind", None) and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()


class _Flusher:
    """One daemon thread per process: calls owners whose batches are due."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[tuple[float, int, weakref.ref[BatchOwner]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, owner: weakref.ref[BatchOwner], due: float) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="traces-write-behind", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._queue, (due, next(self._order), owner))
            if self._queue[0][2] is owner:  # earlier than what the thread waits for
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                due, _, ref = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._queue)
            owner = ref()
            if owner is None:
                continue
            # The guard keeps a fork from copying a store lock this thread holds.
            with _FORK_GUARD:
                try:
                    owner._on_timer()
                except Exception as exc:  # on_timer reports commit failures; be safe
                    notice(log, "write-behind: a background commit failed: %s", exc)
            del owner

    def reset_in_child(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue = []
        self._thread = None


_FLUSHER = _Flusher()
_FORK_GUARD = threading.Lock()
_LIVE: weakref.WeakSet[WriteBehind] = weakref.WeakSet()
_OWNERS: weakref.WeakSet[BatchOwner] = weakref.WeakSet()


def lost_at_close(where: str, behind: WriteBehind, exc: Exception) -> None:
    """Say that a store closes with writes it could not commit (they are lost, as a crash
    would lose them: nothing durable names them). ``close()`` reports it this way rather than
    raising, so that it can stand in a ``finally``; ``flush()`` raises the error itself."""
    notice(
        log,
        "store %s: closed with %d writes it could not commit, now lost (%s); fix: call "
        "flush() before close() to get the error, and write again once the store is reachable",
        where,
        behind.pending.count,
        exc,
    )


def flush_all() -> None:
    """Commit every live store object's pending writes (at exit; also for tests)."""
    for owner in list(_OWNERS):
        try:
            owner.flush()
        except Exception as exc:
            notice(log, "write-behind: pending writes could not be committed at exit: %s", exc)


def _after_fork_in_child() -> None:
    _FORK_GUARD.release()
    _FLUSHER.reset_in_child()
    for behind in list(_LIVE):
        behind.discard()
        behind.inflight = None


atexit.register(flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_FORK_GUARD.acquire,
        after_in_parent=_FORK_GUARD.release,
        after_in_child=_after_fork_in_child,
    )
