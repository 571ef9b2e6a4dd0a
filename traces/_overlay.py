"""An overlay store: read a store, keep every write in memory, change nothing underneath.

:class:`OverlayStore` wraps a ``base`` store. Reads see the base and what was written through
the overlay; writes (artifacts, event lines, run heads) go to an in-memory layer only. It lets a
replay run against a store it must not change: one opened read-only, or where the user asked
for no record (``orch replay --no-record``). What was written is gone when the overlay is.

Events of a run are the base's lines followed by the layer's, so a run the overlay starts is
read back whole; run heads in the layer shadow the base's. Claims and the audit ledger are not
supported (``supports_claims`` and ``supports_ledger`` stay False): both coordinate processes
through the real store, which an overlay must not pretend to do.

This module must never write to, close or otherwise change the base store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from ._store import ArtifactStore, check_run_id

__all__ = ["OverlayStore"]


class OverlayStore(ArtifactStore):
    """Reads fall through to ``base``; writes stay in this object's memory."""

    supports_claims = False
    ledger_expected = False  # what is written here is gone with the overlay

    def __init__(self, base: ArtifactStore) -> None:
        self.base = base
        """The store read through; never written to, and not closed with the overlay."""
        self.location = f"{base.location} (overlay: writes kept in memory)"
        self._blobs: dict[str, bytes] = {}
        self._events: dict[str, list[bytes]] = {}
        self._heads: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def written(self) -> bool:
        """True once anything was written (to the layer, never to the base)."""
        return bool(self._blobs or self._events or self._heads)

    # -- artifacts -----------------------------------------------------------------------------

    def _read_blob(self, key: str) -> bytes | None:
        data = self._blobs.get(key)
        return data if data is not None else self.base.read_raw(key)

    def _write_blob(self, key: str, data: bytes) -> None:
        with self._lock:
            self._blobs.setdefault(key, bytes(data))

    def _has_blob(self, key: str) -> bool:
        return key in self._blobs or self.base.has(key)

    def _iter_keys(self) -> Iterator[str]:
        return iter(set(self.base.keys()).union(list(self._blobs)))

    # -- runs ----------------------------------------------------------------------------------

    def append_event(self, run_id: str, line: bytes) -> None:
        with self._lock:
            self._events.setdefault(check_run_id(run_id), []).append(bytes(line))

    def read_events(self, run_id: str) -> list[bytes]:
        with self._lock:
            mine = list(self._events.get(check_run_id(run_id), ()))
        return self.base.read_events(run_id) + mine

    def write_run_head(self, run_id: str, data: bytes) -> None:
        with self._lock:
            self._heads[check_run_id(run_id)] = bytes(data)

    def read_run_head(self, run_id: str) -> bytes | None:
        mine = self._heads.get(check_run_id(run_id))
        return mine if mine is not None else self.base.read_run_head(run_id)

    def run_ids(self) -> list[str]:
        return sorted(set(self.base.run_ids()).union(list(self._heads)))

    def close(self) -> None:
        """Forget what was written; the base stays open (its owner closes it)."""
        with self._lock:
            self._blobs.clear()
            self._events.clear()
            self._heads.clear()

    # Test hook (see traces.conformance): corrupt a blob where it lives, layer or base.
    def _tamper(self, key: str, data: bytes) -> None:
        if key in self._blobs:
            self._blobs[key] = data
        else:
            getattr(self.base, "_tamper")(key, data)  # noqa: B009 - a backend's test hook
