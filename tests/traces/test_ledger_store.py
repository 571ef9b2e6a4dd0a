"""The ledger's storage across processes, and the directory store's ledger file.

The conformance suite races threads of one process; here separate processes append to one
store at once (directory, SQLite, PostgreSQL), as the workers of a batch do, and each entry
must be at the index its writer was told. The directory store's file is also tested by hand:
a torn last line, a writer killed mid-append, two store objects in one process, a file
changed behind a store's cache.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from traces import ArtifactStore, DirectoryStore, MemoryStore, SQLiteStore
from traces._open import open_store

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
APPENDS = 150

# A writer: opens the store, waits for the go file, tries to write entry 0 exactly once (a
# compare-and-append at 0), appends its entries, and prints the indexes it was given.
WRITER = """
import json, sys, time
from pathlib import Path
from traces._open import open_store

location, name, n, go = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), Path(sys.argv[4])
store = open_store(location)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
genesis = store.ledger_append(b'{"genesis":"%s"}' % name, at=0)
given = [store.ledger_append(b'{"writer":"%s","i":%d}' % (name, i)) for i in range(n)]
store.close()
print(json.dumps({"genesis": genesis, "given": given}), flush=True)
"""


def race_writers(location: str, go: Path) -> list[dict[str, object]]:
    """Start the writers on ``location``, let them go at once, return what each was told."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, location, f"w{n}", str(APPENDS), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(WRITERS)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"ready", proc.communicate()[1].decode()
    go.touch()
    told = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        told.append(json.loads(out))
    return told


def assert_each_entry_where_its_writer_was_told(
    store: ArtifactStore, told: list[dict[str, object]]
) -> None:
    entries = store.ledger_read()
    assert len(entries) == 1 + WRITERS * APPENDS == store.ledger_size()
    winners = [n for n, t in enumerate(told) if t["genesis"] is not None]
    assert len(winners) == 1, f"entry 0 was written {len(winners)} times"
    assert told[winners[0]]["genesis"] == 0
    assert entries[0] == b'{"genesis":"w%d"}' % winners[0]
    indexes = [0]
    for n, t in enumerate(told):
        given = t["given"]
        assert isinstance(given, list)
        indexes += given
        for i, index in enumerate(given):
            assert entries[index] == b'{"writer":"w%d","i":%d}' % (n, i), "entry misplaced"
        assert given == sorted(given), "one writer's entries out of its order"
    assert sorted(indexes) == list(range(len(entries))), "indexes repeated or missing"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_racing_processes_get_distinct_dense_indexes(kind: str, tmp_path: Path) -> None:
    location = str(tmp_path / "store") if kind == "directory" else f"sqlite:///{tmp_path}/s.db"
    open_store(location).close()  # made before the race, as a batch's client does
    told = race_writers(location, tmp_path / "go")
    with open_store(location) as store:
        assert_each_entry_where_its_writer_was_told(store, told)


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A real PostgreSQL server for this module (see tests/fixtures/pg_server.py)."""
    from pg_server import postgres_server

    with postgres_server() as dsn:
        yield dsn


@pytest.mark.slow
def test_racing_processes_get_distinct_dense_indexes_in_postgres(
    pg_dsn: str, tmp_path: Path
) -> None:
    from pg_server import store_url

    location = store_url(pg_dsn, "ledger")
    open_store(location).close()
    told = race_writers(location, tmp_path / "go")
    with open_store(location) as store:
        assert_each_entry_where_its_writer_was_told(store, told)


# -- a store without a ledger --------------------------------------------------------------------


def test_a_store_without_a_ledger_says_how_to_add_one() -> None:
    class Plain(MemoryStore):
        supports_ledger = False

    store = Plain()
    for call in (
        lambda: store.ledger_append(b"x"),
        store.ledger_size,
        store.ledger_read,
        lambda: store.write_checkpoint(1, b"n"),
        lambda: store.read_checkpoint(1),
        store.checkpoint_sizes,
    ):
        with pytest.raises(NotImplementedError, match="keeps no ledger; fix: implement"):
            call()


# -- the directory store's ledger file ------------------------------------------------------------


def entries_log(root: Path) -> Path:
    return root / "ledger" / "entries.log"


def test_directory_layout_one_entry_per_line(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    assert not (tmp_path / "ledger").exists(), "reading or opening must not make the ledger"
    assert store.ledger_size() == 0 and store.checkpoint_sizes() == []
    store.ledger_append(b'{"a":1}')
    store.ledger_append(b"\x00\r\xff")
    store.write_checkpoint(2, b"origin\n2\nroot\n")
    assert entries_log(tmp_path).read_bytes() == b'{"a":1}\n\x00\r\xff\n'
    assert (tmp_path / "ledger" / "checkpoints" / "2.note").read_bytes() == b"origin\n2\nroot\n"
    (tmp_path / "ledger" / "checkpoints" / "02.note").write_bytes(b"stray")  # not canonical
    (tmp_path / "ledger" / "checkpoints" / "x.note").write_bytes(b"stray")
    assert store.checkpoint_sizes() == [2]
    assert list((tmp_path / "tmp").iterdir()) == [], "a temporary file was left"


@pytest.mark.parametrize("reopen", [False, True])
def test_torn_tail_is_ignored_then_cut_by_the_next_append(tmp_path: Path, reopen: bool) -> None:
    store = DirectoryStore(tmp_path)
    assert store.ledger_append(b"zero") == 0
    assert store.ledger_append(b"one") == 1
    with open(entries_log(tmp_path), "ab") as f:  # a writer that died mid-write
        f.write(b'{"half an en')
    if reopen:
        store = DirectoryStore(tmp_path)  # a cold cache meets the torn tail first
    assert store.ledger_size() == 2
    assert store.ledger_read() == [b"zero", b"one"]
    assert store.ledger_read(1) == [b"one"]
    other = DirectoryStore(tmp_path)  # another writer appends: it cuts the tail first
    assert other.ledger_append(b"two", at=2) == 2
    assert entries_log(tmp_path).read_bytes() == b"zero\none\ntwo\n"
    assert store.ledger_read() == [b"zero", b"one", b"two"]
    assert store.ledger_append(b"three") == 3
    assert other.ledger_read(2) == [b"two", b"three"]


def test_a_torn_tail_alone_is_an_empty_ledger(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.ledger_append(b"zero")
    entries_log(tmp_path).write_bytes(b"never acknowledged")
    store = DirectoryStore(tmp_path)
    assert store.ledger_size() == 0 and store.ledger_read() == []
    assert store.ledger_append(b"first", at=0) == 0
    assert entries_log(tmp_path).read_bytes() == b"first\n"


KILLED_WRITER = """
import sys
from traces import DirectoryStore

store = DirectoryStore(sys.argv[1])
for i in range(1_000_000):
    # Large entries, so that the kill often lands inside a write.
    store.ledger_append(b"%07d:" % i + b"x" * 200_000)
    if i == 0:
        print("appending", flush=True)
"""


@pytest.mark.slow
def test_a_killed_writer_loses_at_most_its_last_entry(tmp_path: Path) -> None:
    DirectoryStore(tmp_path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"appending"
    while entries_log(tmp_path).stat().st_size < 5_000_000:  # some entries in, then kill
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    store = DirectoryStore(tmp_path)
    entries = store.ledger_read()
    assert len(entries) >= 20
    for i, entry in enumerate(entries):  # every entry whole, at the index it was written at
        assert entry == b"%07d:" % i + b"x" * 200_000
    n = len(entries)
    assert store.ledger_append(b"after the kill") == n  # the lock was released, the tail cut
    assert store.ledger_read(n) == [b"after the kill"]
    data = entries_log(tmp_path).read_bytes()
    assert data.endswith(b"x\nafter the kill\n") and data.count(b"\n") == n + 1


def test_two_store_objects_in_one_process_share_the_indexes(tmp_path: Path) -> None:
    first, second = DirectoryStore(tmp_path), DirectoryStore(tmp_path)
    told = []
    for i in range(30):
        writer = first if i % 3 else second
        told.append(writer.ledger_append(b"entry %d" % i))
    assert told == list(range(30))
    expected = [b"entry %d" % i for i in range(30)]
    assert first.ledger_read() == expected == second.ledger_read()
    assert first.ledger_append(b"x", at=29) is None


def test_a_file_changed_behind_the_cache_is_read_as_it_is(tmp_path: Path) -> None:
    reader = DirectoryStore(tmp_path)
    for i in range(10):
        reader.ledger_append(b"entry %d" % i)
    assert reader.ledger_read(5, 6) == [b"entry 5"]  # the cache knows every line
    # Another store object (as another process would) lengthens entry 3: lines 4.. move.
    DirectoryStore(tmp_path)._tamper_ledger(3, b"a much longer forged entry 3")
    assert reader.ledger_size() == 10
    assert reader.ledger_read(5, 6) == [b"entry 5"]
    assert reader.ledger_read(3, 5) == [b"a much longer forged entry 3", b"entry 4"]
    assert reader.ledger_append(b"entry 10") == 10
    assert reader.ledger_read(9) == [b"entry 9", b"entry 10"]


def test_a_restored_older_file_is_read_from_scratch(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    for i in range(5):
        store.ledger_append(b"entry %d" % i)
    older = entries_log(tmp_path).read_bytes()
    store.ledger_append(b"entry 5")
    # Someone else puts back an older copy (a new file in its place): fewer entries.
    copy = tmp_path / "ledger" / "copy"
    copy.write_bytes(older[: older.index(b"entry 3")])
    os.replace(copy, entries_log(tmp_path))
    assert store.ledger_size() == 3
    assert store.ledger_append(b"entry 3 again") == 3
    assert store.ledger_read(2) == [b"entry 2", b"entry 3 again"]


def test_fsync_store_appends_and_reads(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, fsync=True)
    assert [store.ledger_append(b"e%d" % i) for i in range(3)] == [0, 1, 2]
    store.write_checkpoint(3, b"note")
    assert DirectoryStore(tmp_path).ledger_read() == [b"e0", b"e1", b"e2"]


def test_reads_by_index_of_many_entries(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    entries = [b'{"i":%d}' % i for i in range(20_000)]
    for entry in entries:
        store.ledger_append(entry)
    cold = DirectoryStore(tmp_path)
    assert cold.ledger_size() == 20_000
    for i in range(0, 20_000, 997):
        assert cold.ledger_read(i, i + 1) == [entries[i]]
    assert cold.ledger_read(19_990) == entries[19_990:]


def entries_idx(root: Path) -> Path:
    return root / "ledger" / "entries.idx"


def test_a_new_process_finds_entries_through_the_index_file(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    entries = [b'{"i":%d}' % i for i in range(500)]
    for entry in entries:
        store.ledger_append(entry)
    ends = entries_idx(tmp_path).read_bytes()
    assert len(ends) == 8 * 500
    assert int.from_bytes(ends[-8:], "big") == entries_log(tmp_path).stat().st_size
    cold = DirectoryStore(tmp_path)
    assert cold.ledger_size() == 500
    assert cold.ledger_read(250, 252) == entries[250:252]
    assert cold.ledger_append(b"more") == 500
    assert len(entries_idx(tmp_path).read_bytes()) == 8 * 501


@pytest.mark.parametrize(
    "damage",
    ["missing", "behind", "torn record", "garbage", "ahead of the lines", "stale after an edit"],
)
def test_a_damaged_index_file_never_changes_what_is_read(tmp_path: Path, damage: str) -> None:
    store = DirectoryStore(tmp_path)
    entries = [b"entry %03d" % i for i in range(40)]
    for entry in entries:
        store.ledger_append(entry)
    idx = entries_idx(tmp_path)
    ends = idx.read_bytes()
    if damage == "missing":
        idx.unlink()
    elif damage == "behind":
        idx.write_bytes(ends[: 8 * 25])
    elif damage == "torn record":
        idx.write_bytes(ends + b"\x00\x01\x02")
    elif damage == "garbage":
        idx.write_bytes(os.urandom(len(ends)))
    elif damage == "ahead of the lines":
        idx.write_bytes(ends + (10**6).to_bytes(8, "big"))
    else:  # the lines edited behind the API, the index left as it was
        log = entries_log(tmp_path)
        log.write_bytes(log.read_bytes().replace(b"entry 010", b"entry 10 longer"))
        entries[10] = b"entry 10 longer"
        idx.write_bytes(ends)
    cold = DirectoryStore(tmp_path)
    assert cold.ledger_size() == 40
    assert cold.ledger_read() == entries
    assert cold.ledger_read(30, 32) == entries[30:32]
    assert cold.ledger_append(b"next") == 40  # and the index is whole again
    again = DirectoryStore(tmp_path)
    assert again.ledger_read(38) == [*entries[38:], b"next"]
    assert len(idx.read_bytes()) == 8 * 41


# -- SQLite ---------------------------------------------------------------------------------------


def test_sqlite_appends_take_turns_with_other_connections(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    store.ledger_append(b"zero")
    other = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    other.execute("INSERT INTO ledger (idx, entry) VALUES (1, x'6f6e65')")  # "one"
    other.close()
    assert store.ledger_size() == 2
    assert store.ledger_append(b"two") == 2
    assert store.ledger_append(b"again", at=2) is None
    assert store.ledger_read() == [b"zero", b"one", b"two"]


def test_sqlite_store_from_before_the_ledger_gets_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE artifacts (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;"
    )
    db.close()
    store = SQLiteStore(path)
    assert store.ledger_size() == 0
    assert store.ledger_append(b"first") == 0
    tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
    assert {"ledger", "checkpoints"} <= tables


def test_sqlite_read_only_store_from_before_the_ledger_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE artifacts (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;"
    )
    db.close()
    store = SQLiteStore(path, read_only=True)
    assert store.ledger_size() == 0
    assert store.ledger_read() == []
    assert store.checkpoint_sizes() == [] and store.read_checkpoint(1) is None
    with pytest.raises(sqlite3.OperationalError, match=re.compile("readonly|no such table")):
        store.ledger_append(b"x")
