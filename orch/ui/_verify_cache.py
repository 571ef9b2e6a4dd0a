"""Verification results a server keeps, so that a run's badge is not recomputed per view.

A result is kept per (run id, version) where the version changes whenever the run's head or
its event log does (:func:`orch.ui._run_model.version_of`): a run that moves on is verified
again. What the badge shows is the last verification of that version; the verify page always
verifies afresh (and refreshes the kept result). Bounded: the oldest results go first.

The store's ledger is read once per server and then extended with the entries appended since
(:meth:`traces.LedgerView.extended`), so that a badge costs the run's own records and the
ledger's new entries, not the whole ledger: the badge trusts the entries it has already read
(their last one is checked again each time). A fresh verification (the verify page, a run
whose records cannot be read) reads the whole ledger again, as ``orch verify`` does, and the
server goes on from that reading.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from traces import ArtifactStore, LedgerView, VerifyReport, verify_run

__all__ = ["VerifyCache"]


class VerifyCache:
    """Thread-safe, bounded map of (run id, version) to :class:`~traces.VerifyReport`."""

    def __init__(self, store: ArtifactStore, size: int = 1024) -> None:
        self.store = store
        self.size = size
        self._kept: OrderedDict[tuple[str, str], VerifyReport] = OrderedDict()
        self._lock = threading.Lock()
        self._ledger: LedgerView | None = None
        # One reader of the ledger at a time: two requests arriving together read it once.
        self._ledger_lock = threading.Lock()

    def ledger(self, *, fresh: bool = False) -> LedgerView | None:
        """The store's ledger as it is now (``fresh``: read whole; else the kept view
        extended); None when the store keeps none."""
        with self._ledger_lock:
            view = self._ledger
            if fresh or view is None:
                view = LedgerView.read(self.store)
            else:
                view = view.extended(self.store)
            self._ledger = view
            return view

    def report(self, run_id: str, version: str, *, fresh: bool = False) -> VerifyReport:
        """The verification of ``run_id`` at ``version`` (``fresh``: verify it now, reading
        the whole ledger again)."""
        key = (run_id, version)
        with self._lock:
            kept = None if fresh else self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                return kept
        # Outside the cache's lock: it reads the store. The view is never changed once made
        # (extending makes a new one), so it needs no lock while verification reads it.
        report = verify_run(self.store, run_id, ledger=self.ledger(fresh=fresh))
        with self._lock:
            self._kept[key] = report
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return report

    def __len__(self) -> int:
        return len(self._kept)
