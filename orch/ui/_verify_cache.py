"""Verification results a server keeps, so that a run's badge is not recomputed per view.

A result is kept per (run id, version) where the version changes whenever the run's head or
its event log does (:func:`orch.ui._run_model.version_of`): a run that moves on is verified
again. What the badge shows is the last verification of that version; the verify page always
verifies afresh (and refreshes the kept result). Bounded: the oldest results go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from traces import ArtifactStore, VerifyReport, verify_run

__all__ = ["VerifyCache"]


class VerifyCache:
    """Thread-safe, bounded map of (run id, version) to :class:`~traces.VerifyReport`."""

    def __init__(self, store: ArtifactStore, size: int = 1024) -> None:
        self.store = store
        self.size = size
        self._kept: OrderedDict[tuple[str, str], VerifyReport] = OrderedDict()
        self._lock = threading.Lock()

    def report(self, run_id: str, version: str, *, fresh: bool = False) -> VerifyReport:
        """The verification of ``run_id`` at ``version`` (``fresh``: verify it now)."""
        key = (run_id, version)
        with self._lock:
            kept = None if fresh else self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                return kept
        report = verify_run(self.store, run_id)  # outside the lock: it reads the store
        with self._lock:
            self._kept[key] = report
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return report

    def __len__(self) -> int:
        return len(self._kept)
