"""Every built-in store backend passes the importable conformance suite."""

from __future__ import annotations

from pathlib import Path

from traces import ArtifactStore, DirectoryStore, MemoryStore, SQLiteStore
from traces.conformance import StoreConformance, check_store


class TestMemoryStore(StoreConformance):
    persistent = False

    def make_store(self, location: Path) -> ArtifactStore:
        return MemoryStore()


class TestDirectoryStore(StoreConformance):
    def make_store(self, location: Path) -> ArtifactStore:
        return DirectoryStore(location / "store")


class TestDirectoryStoreWithFsync(StoreConformance):
    def make_store(self, location: Path) -> ArtifactStore:
        return DirectoryStore(location / "store", fsync=True)


class TestSQLiteStore(StoreConformance):
    def make_store(self, location: Path) -> ArtifactStore:
        return SQLiteStore(location / "store.db")


class _ForgetfulStore(MemoryStore):
    """A broken backend: it drops every other event line."""

    def append_event(self, run_id: str, line: bytes) -> None:
        if len(self.read_events(run_id)) % 2 == 0 or b'"n":0' in line:
            super().append_event(run_id, line)


def test_check_store_reports_a_broken_backend() -> None:
    failures = check_store(lambda _: _ForgetfulStore(), persistent=False)
    assert "test_events_keep_order_and_bytes_per_run" in failures
    assert "test_round_trip_any_bytes" not in failures


class _CarelessLedgerStore(MemoryStore):
    """A broken backend: its compare-and-append ignores ``at`` and always appends."""

    def _ledger_append(self, entry: bytes, at: int | None) -> int | None:
        return super()._ledger_append(entry, None)


def test_check_store_reports_a_broken_ledger() -> None:
    failures = check_store(lambda _: _CarelessLedgerStore(), persistent=False)
    assert "test_ledger_compare_and_append" in failures
    assert "test_ledger_appends_get_dense_indexes_and_read_back" not in failures


def test_check_store_skips_the_ledger_of_a_store_without_one() -> None:
    class Plain(MemoryStore):
        supports_ledger = False

    assert check_store(lambda _: Plain(), persistent=False) == {}


def test_check_store_passes_a_good_backend(tmp_path: Path) -> None:
    assert check_store(lambda loc: SQLiteStore(loc / "s.db")) == {}
