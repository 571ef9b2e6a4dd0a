"""What the SQLite and PostgreSQL stores share (:class:`traces._writebehind.WriteBehindStore`):
``aflush`` that costs nothing when nothing is pending and commits what is, the commit of a
store collected without ``close()``, and :class:`~traces._writebehind.Batch`'s bookkeeping.

Each store is real (a SQLite file; a PostgreSQL server from :mod:`pg_server`, skipped without
its binaries unless ``ORCH_REQUIRE_POSTGRES=1``). "Committed" means another store object,
with a connection of its own, reads it. The commit delay is an hour: only ``flush``,
``aflush``, a durable write or the collector commits here.
"""

from __future__ import annotations

import gc
import secrets
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from pg_server import postgres_server

from traces._sqlitestore import SQLiteStore
from traces._writebehind import Batch, WriteBehindStore

HOUR = 3600.0

# A store opener: commit_delay -> a new store object on the test's one place.
Opener = Callable[[float], WriteBehindStore]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    # Weak references: a test may drop its store and have the collector take it.
    opened: list[weakref.ref[WriteBehindStore]] = []
    if request.param == "sqlite":

        def make(delay: float) -> WriteBehindStore:
            store = SQLiteStore(tmp_path / "s.db", commit_delay=delay)
            opened.append(weakref.ref(store))
            return store
    else:
        from traces.pgstore import PostgresStore

        dsn = request.getfixturevalue("pg_dsn")
        schema = f"wb_{secrets.token_hex(6)}"

        def make(delay: float) -> WriteBehindStore:
            store = PostgresStore(dsn, schema=schema, commit_delay=delay)
            opened.append(weakref.ref(store))
            return store

    yield make
    for ref in opened:
        store = ref()
        if store is not None:
            store.close()


def test_aflush_commits_what_is_pending_and_skips_the_flush_when_nothing_is(
    open_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(HOUR)
    reader = open_store(HOUR)
    flushes: list[None] = []
    real_flush = store.flush

    def counted_flush() -> None:
        flushes.append(None)
        real_flush()

    monkeypatch.setattr(store, "flush", counted_flush)
    anyio.run(store.aflush)
    assert flushes == []  # nothing pending: not even a look at the database

    key = store.put(b"pending")
    store.append_event("run-1", b'{"seq":0}')
    assert not reader.has(key)
    anyio.run(store.aflush)
    assert len(flushes) == 1
    assert reader.get(key) == b"pending"
    assert reader.read_events("run-1") == [b'{"seq":0}']

    anyio.run(store.aflush)  # committed already: free again
    assert len(flushes) == 1


def test_a_store_collected_without_close_commits_what_it_held(open_store: Opener) -> None:
    store = open_store(HOUR)
    key = store.put(b"held when collected")
    store.append_event("run-2", b'{"seq":0}')
    gone = weakref.ref(store)
    reader = open_store(HOUR)
    assert not reader.has(key)
    del store
    gc.collect()
    assert gone() is None
    assert reader.get(key) == b"held when collected"
    assert reader.read_events("run-2") == [b'{"seq":0}']


def test_a_batch_groups_its_lines_by_run_in_order_and_counts_its_writes() -> None:
    batch = Batch()
    batch.add_line("a", b"a0")
    batch.add_blob("k1", b"one")
    batch.add_line("b", b"b0")
    batch.add_line("a", b"a1")
    batch.add_blob("k1", b"one")  # the same key again: held once
    assert batch.lines_by_run() == {"a": [b"a0", b"a1"], "b": [b"b0"]}
    assert list(batch.lines_by_run()) == ["a", "b"]  # runs in the order of their first line
    assert batch.count == 4
    assert batch.size == len(b"a0b0a1one")
    later = Batch()
    later.add_line("b", b"b1")
    later.add_blob("k2", b"two")
    batch.extend(later)
    assert batch.lines_by_run() == {"a": [b"a0", b"a1"], "b": [b"b0", b"b1"]}
    assert list(batch.blobs) == ["k1", "k2"]
