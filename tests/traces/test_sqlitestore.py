"""The SQLite store's write-behind: artifacts and event lines committed in batches, with the
guarantees of a store that commits each write (see :mod:`traces._sqlitestore`).

Everything here uses real SQLite files, other connections and other processes: a write is
"committed" when another connection or process can read it. Processes are killed with
SIGKILL, so no exit hook runs. No assertion is on time; waits for the background commit
poll with a generous deadline.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from traces import SQLiteStore, StoreError, digest, verify_store
from traces._writebehind import flush_all

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0  # a commit delay no test waits for: only flush() and durable writes commit


def committed_keys(path: Path) -> set[str]:
    """The artifact keys another connection sees."""
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        return {r[0] for r in db.execute("SELECT key FROM artifacts")}


def committed_lines(path: Path, run_id: str) -> list[bytes]:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT line FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
        return [bytes(r[0]) for r in rows]


def test_pending_writes_are_read_back_by_their_store_and_committed_by_flush(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, commit_delay=HOUR)
    try:
        key = store.put(b"held")
        store.append_event("r", b'{"n":0}')
        store.append_event("r", b'{"n":1}')
        # This object sees its own writes at once ...
        assert store.get(key) == b"held" and store.has(key)
        assert list(store.keys()) == [key]
        assert store.read_events("r") == [b'{"n":0}', b'{"n":1}']
        # ... no other connection does before the commit ...
        assert committed_keys(path) == set()
        assert committed_lines(path, "r") == []
        other = SQLiteStore(path)
        assert not other.has(key) and other.read_events("r") == []
        store.flush()
        # ... and every one does after it.
        assert committed_keys(path) == {key}
        assert committed_lines(path, "r") == [b'{"n":0}', b'{"n":1}']
        assert other.get(key) == b"held"
        store.append_event("r", b'{"n":2}')  # the log goes on after what was committed
        store.flush()
        assert other.read_events("r") == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
        other.close()
    finally:
        store.close()


@pytest.mark.parametrize(
    "durable_write",
    ["write_run_head", "swap_claim", "ledger_append", "ledger_append_at", "write_checkpoint"],
)
def test_a_durable_write_commits_every_write_before_it(tmp_path: Path, durable_write: str) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, commit_delay=HOUR)
    try:
        key = store.put(b"named by the head")
        store.append_event("r", b'{"n":0}')
        assert committed_keys(path) == set()
        writes: dict[str, Callable[[], object]] = {
            "write_run_head": lambda: store.write_run_head(
                "r", b'{"names":"' + key.encode() + b'"}'
            ),
            "swap_claim": lambda: store.swap_claim("c", None, b"mine"),
            "ledger_append": lambda: store.ledger_append(b"entry"),
            "ledger_append_at": lambda: store.ledger_append(b"entry", at=0),
            "write_checkpoint": lambda: store.write_checkpoint(1, b"note"),
        }
        writes[durable_write]()
        # When the call returns, what came before it is committed with it.
        assert committed_keys(path) == {key}
        assert committed_lines(path, "r") == [b'{"n":0}']
    finally:
        store.close()


def test_two_writers_of_one_run_number_its_lines_without_gaps_or_repeats(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    a = SQLiteStore(path, commit_delay=HOUR)
    b = SQLiteStore(path, commit_delay=HOUR)
    try:
        for i in range(3):
            # Each commit outdates the other object's count of the run's lines: the primary
            # key refuses the stale number and the batch is written again, numbered afresh.
            a.append_event("r", b'{"a":%d}' % i)
            a.flush()
            b.append_event("r", b'{"b":%d}' % i)
            b.append_event("r", b'{"b":%d,"second":1}' % i)
            b.flush()
        expected = [
            line
            for i in range(3)
            for line in (b'{"a":%d}' % i, b'{"b":%d}' % i, b'{"b":%d,"second":1}' % i)
        ]
        assert committed_lines(path, "r") == expected
        assert a.read_events("r") == expected == b.read_events("r")
    finally:
        a.close()
        b.close()


def test_the_timer_commits_without_any_further_call(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, commit_delay=0.005)
    try:
        key = store.put(b"left alone")
        store.append_event("r", b'{"n":0}')
        deadline = time.monotonic() + 30
        while key not in committed_keys(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert committed_keys(path) == {key}, "the background commit never came"
        assert committed_lines(path, "r") == [b'{"n":0}']
    finally:
        store.close()


def test_full_batches_are_committed_without_waiting_for_the_delay(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, commit_delay=HOUR)  # only a full batch is committed early
    try:
        keys = [store.put(b"artifact %d" % i) for i in range(20_000)]  # several batches' worth
        deadline = time.monotonic() + 60
        while not committed_keys(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert committed_keys(path), "a full batch waited for the delay"
        store.flush()
        assert committed_keys(path) == set(keys)
    finally:
        store.close()


def test_commit_delay_zero_commits_each_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path, commit_delay=0) as store:
        key = store.put(b"at once")
        store.append_event("r", b'{"n":0}')
        assert committed_keys(path) == {key}
        assert committed_lines(path, "r") == [b'{"n":0}']
    with pytest.raises(ValueError, match="commit_delay"):
        SQLiteStore(path, commit_delay=-1)


def test_a_failed_commit_keeps_the_batch_pending_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import traces._sqlitestore as module

    path = tmp_path / "s.db"
    store = SQLiteStore(path, commit_delay=HOUR)
    try:
        store.append_event("r", b'{"n":0}')
        key = store.put(b"first batch")
        real = module.commit_batch_with
        calls = []

        def failing(*args: object) -> object:
            calls.append(1)
            raise sqlite3.OperationalError("disk I/O error (simulated)")

        monkeypatch.setattr(module, "commit_batch_with", failing)
        with pytest.raises(sqlite3.OperationalError, match="simulated"):
            store.write_run_head("r", b"{}")  # never committed before what it follows
        assert calls and store.read_run_head("r") is None
        store.append_event("r", b'{"n":1}')  # written after the failure: after the batch
        assert store.read_events("r") == [b'{"n":0}', b'{"n":1}']
        assert store.get(key) == b"first batch"
        assert committed_keys(path) == set()
        monkeypatch.setattr(module, "commit_batch_with", real)
        store.write_run_head("r", b"{}")
        assert committed_keys(path) == {key}
        assert committed_lines(path, "r") == [b'{"n":0}', b'{"n":1}']
    finally:
        store.close()


def test_close_warns_about_writes_it_could_not_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import traces._sqlitestore as module

    path = tmp_path / "s.db"
    store = SQLiteStore(path, commit_delay=HOUR)
    store.put(b"lost with the disk")

    def failing(*args: object) -> object:
        raise sqlite3.OperationalError("database or disk is full (simulated)")

    monkeypatch.setattr(module, "commit_batch_with", failing)
    with caplog.at_level(logging.WARNING, logger="traces.store"):
        store.close()  # in a finally, say: it warns, it does not raise
    lost = [r.getMessage() for r in caplog.records if r.name == "traces.store"]
    assert len(lost) == 1 and "closed with 1 writes it could not commit" in lost[0], lost
    assert "disk is full" in lost[0] and "fix: call flush() before close()" in lost[0]
    assert committed_keys(path) == set()


def test_a_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", commit_delay=HOUR)
    key = store.put(b"committed by close")
    store.close()
    store.close()  # a second close does nothing
    for write in (lambda: store.put(b"late"), lambda: store.append_event("r", b"{}")):
        with pytest.raises(StoreError, match="is closed; fix: open the store again"):
            write()
    with SQLiteStore(tmp_path / "s.db") as again:
        assert again.get(key) == b"committed by close"


def test_a_store_collected_without_close_commits_what_it_held(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, commit_delay=HOUR)
    key = store.put(b"not lost")
    store.append_event("r", b'{"n":0}')
    del store
    gc.collect()
    assert committed_keys(path) == {key}
    assert committed_lines(path, "r") == [b'{"n":0}']


def test_flush_all_commits_every_open_store(tmp_path: Path) -> None:
    stores = [SQLiteStore(tmp_path / f"{i}.db", commit_delay=HOUR) for i in range(3)]
    try:
        keys = [s.put(b"store %d" % i) for i, s in enumerate(stores)]
        flush_all()  # what runs at interpreter exit
        for i, key in enumerate(keys):
            assert committed_keys(tmp_path / f"{i}.db") == {key}
    finally:
        for s in stores:
            s.close()


def artifacts_table_sql(path: Path) -> str:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        row = db.execute("SELECT sql FROM sqlite_master WHERE name = 'artifacts'").fetchone()
    return str(row[0])


def test_new_files_keep_artifacts_in_a_rowid_table_and_older_files_still_work(
    tmp_path: Path,
) -> None:
    new = tmp_path / "new.db"
    SQLiteStore(new).close()
    assert "WITHOUT ROWID" not in artifacts_table_sql(new).upper()

    old = tmp_path / "old.db"  # the layout of files made before: no rowids anywhere
    with sqlite3.connect(old) as db:
        db.executescript(
            "CREATE TABLE artifacts (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;"
            "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, line BLOB NOT NULL,"
            " PRIMARY KEY (run_id, seq)) WITHOUT ROWID;"
            "CREATE TABLE run_heads (run_id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;"
        )
    large = bytes(range(256)) * 1024  # past the size a put looks up before holding
    with SQLiteStore(old, commit_delay=HOUR) as store:
        keys = [store.put(b"small"), store.put(large), store.put(b"small")]
        store.append_event("r", b'{"n":0}')
        store.write_run_head("r", b'{"head":0}')  # commits the batch with it
        assert store.put(large) == keys[1]  # found committed, not held again
    assert "WITHOUT ROWID" in artifacts_table_sql(old).upper()  # not migrated
    assert committed_keys(old) == {digest(b"small"), digest(large)}
    with SQLiteStore(old) as again:
        assert again.get(keys[0]) == b"small" and again.get(keys[1]) == large
        assert again.read_events("r") == [b'{"n":0}']
        assert again.read_run_head("r") == b'{"head":0}'


# -- other processes ------------------------------------------------------------------------------

CHILD = """
import os, signal, sys
from traces import SQLiteStore
path, mode = sys.argv[1], sys.argv[2]
store = SQLiteStore(path, commit_delay=3600)  # nothing commits but what the test asks for
keys = [store.put(b"before the head %d" % i) for i in range(50)]
for i in range(50):
    store.append_event("run", b'{"n":%d}' % i)
store.write_run_head("run", b'{"names":"' + keys[-1].encode() + b'"}')
store.put(b"after the head")
store.append_event("run", b'{"n":50}')
if mode == "flush":
    store.flush()
if mode == "exit":
    sys.exit(0)  # no close(): the exit hook commits
print("ready", flush=True)
signal.pause()
"""


def _run_child(path: Path, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if mode == "exit":
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        return
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready", proc.stderr.read() if proc.stderr else b""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("mode", ["kill", "flush", "exit"])
def test_a_killed_process_loses_only_what_nothing_durable_names(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "s.db"
    _run_child(path, mode)
    with SQLiteStore(path) as store:
        # Everything the head's commit followed is there, in order.
        lines = store.read_events("run")
        assert lines[:50] == [b'{"n":%d}' % i for i in range(50)]
        for i in range(50):
            assert store.get(digest(b"before the head %d" % i)) == b"before the head %d" % i
        assert store.read_run_head("run") is not None
        after = store.has(digest(b"after the head"))
        if mode == "kill":  # the tail nothing durable named: lost with the process
            assert not after and len(lines) == 50
        else:  # flushed, or committed at exit
            assert after and lines[50:] == [b'{"n":50}']
        assert verify_store(store).checked["artifacts"] == 50 + after


WRITER = """
import sys, time
from pathlib import Path
from traces import SQLiteStore
path, n, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
store = SQLiteStore(path, commit_delay=0.002)
for i in range(300):
    store.put(b"writer %d artifact %d" % (n, i))
    store.put(b"shared artifact %d" % i)
    store.append_event("shared", b'{"w":%d,"i":%d}' % (n, i))
    store.append_event(f"own-{n}", b'{"i":%d}' % i)
store.write_run_head(f"own-{n}", b"{}")
store.close()
"""


def test_writer_processes_share_a_store_and_a_run(tmp_path: Path) -> None:
    path, go = tmp_path / "s.db", tmp_path / "go"
    SQLiteStore(path).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(n), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(3)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    go.touch()  # all three write at once
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    with SQLiteStore(path) as store:
        assert len(list(store.keys())) == 300 + 3 * 300
        shared = store.read_events("shared")
        assert sorted(shared) == sorted(
            b'{"w":%d,"i":%d}' % (n, i) for n in range(3) for i in range(300)
        ), "a line of the shared run was lost or doubled"
        for n in range(3):
            mine = [line for line in shared if line.startswith(b'{"w":%d,' % n)]
            assert mine == [b'{"w":%d,"i":%d}' % (n, i) for i in range(300)], "order per writer"
            assert store.read_events(f"own-{n}") == [b'{"i":%d}' % i for i in range(300)]
    with sqlite3.connect(path) as db:
        seqs = [
            r[0] for r in db.execute("SELECT seq FROM events WHERE run_id = 'shared' ORDER BY seq")
        ]
    assert seqs == list(range(900)), "sequence numbers have gaps or repeats"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_leaves_its_parents_pending_writes_to_the_parent(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, commit_delay=HOUR)
    try:
        key = store.put(b"the parent's")
        pid = os.fork()
        if pid == 0:  # the child: it inherited the batch, and must not commit it too
            behind = store._behind  # (and never touches the parent's SQLite connection)
            os._exit(0 if behind is not None and not behind and behind.blob(key) is None else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child kept its parent's batch"
        store.flush()
        assert committed_keys(path) == {key}
    finally:
        store.close()
