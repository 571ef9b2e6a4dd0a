"""A server's warm-up: the one-off reads its first pages would otherwise pay, done at start.

On a big store the first runs page after a batch catches the index up with every new head,
the first text filter reads every run's decisions once, and the first run page reads the
ledger once (:mod:`orch.ui._verify_cache`): seconds each at 100,000 runs, paid by whoever asks
first. :class:`WarmUp` does that work in a thread of its own as the server starts
(:meth:`traces.RunIndex.warm`, then the ledger view), so that a person opening the UI finds
it as fast as later. It changes no result: a page asked for meanwhile does what it would
have done anyway, beside it. A failure is logged as one line, never raised: the pages then
do the work themselves, as without a warm-up.
"""

from __future__ import annotations

import logging
import threading

from orch.ui._verify_cache import VerifyCache
from traces import ArtifactStore

__all__ = ["WarmUp"]

log = logging.getLogger("orch.ui")


class WarmUp:
    """Warms a server's store reads in a daemon thread (see the module docstring)."""

    def __init__(self, store: ArtifactStore, verify: VerifyCache) -> None:
        self.store = store
        self.verify = verify
        self.done = threading.Event()
        """Set once the warm-up ended, done or failed."""
        self.error: str | None = None
        """Why it failed (one line), if it did."""
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin in the background (once; later calls do nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="orch-ui-warm", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            index = self.store.run_index()
            if index is not None:
                index.warm()
            self.verify.ledger()
        except Exception as exc:  # the pages do the work themselves: nothing is lost
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("orch ui: warming up the store's reads failed: %s", self.error)
        finally:
            self.done.set()
