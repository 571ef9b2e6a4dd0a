"""The PostgreSQL store against a real server: conformance, racing writer processes, lost
connections, unreachable servers, ``open_store`` and a real pipeline recorded, verified and
replayed.

The server is started once per session by :mod:`pg_server` (``tests/fixtures``, Debian's
``postgresql`` binaries). Without them these tests skip, unless ``ORCH_REQUIRE_POSTGRES=1``
(CI), when they fail. Each conformance test gets its own schema, derived from its temporary
location.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from claim_racer import assert_one_winner_each, race
from pg_server import REQUIRE_ENV, postgres_server, terminate_backends
from pydantic import BaseModel

from orch import Context, PipelineBuilder, agent, run
from orch._replay import areplay
from traces import (
    ArtifactStore,
    StoreError,
    StoreLocationError,
    digest,
    open_store,
    verify_run,
    verify_store,
)
from traces._notices import collecting
from traces.conformance import StoreConformance

try:
    import psycopg

    from traces.pgstore import PostgresStore, mask_dsn
except ImportError:
    if os.environ.get(REQUIRE_ENV) == "1":
        raise
    pytest.skip("psycopg is not installed (pip install 'orch[postgres]')", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0  # a commit delay the test never waits for
# Schemas of one session never collide, even if a temporary directory name comes back.
_SESSION = secrets.token_hex(4)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """The DSN of a real PostgreSQL server started for this test session."""
    with postgres_server() as dsn:
        yield dsn


def fresh_schema(tag: str = "t") -> str:
    return f"{tag}_{_SESSION}_{secrets.token_hex(6)}"


def password_of(dsn: str) -> str:
    return dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def with_params(dsn: str, **params: str) -> str:
    return dsn + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def admin(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


# -- conformance ------------------------------------------------------------------------------


class TestPostgresStore(StoreConformance):
    @pytest.fixture(autouse=True)
    def _server(self, pg_dsn: str) -> None:
        self.dsn = pg_dsn

    def make_store(self, location: Path) -> ArtifactStore:
        # The same location reopens the same schema; another location gets an empty one.
        tag = hashlib.sha256(f"{_SESSION}:{location}".encode()).hexdigest()[:16]
        return PostgresStore(self.dsn, schema=f"conf_{tag}")


# -- written behind: batches, and what commits them --------------------------------------------


@pytest.mark.parametrize(
    "durable_write", ["write_run_head", "swap_claim", "ledger_append", "write_checkpoint", "flush"]
)
def test_pending_writes_commit_before_a_durable_write(pg_dsn: str, durable_write: str) -> None:
    schema = fresh_schema()
    store = PostgresStore(pg_dsn, schema=schema, commit_delay=3600)  # no timer commit
    other = PostgresStore(pg_dsn, schema=schema)
    try:
        key = store.put(b"held")
        store.append_event("r", b'{"n":0}')
        store.append_event("r", b'{"n":1}')
        # Its own store object reads them at once; no other one does before the commit.
        assert store.get(key) == b"held" and list(store.keys()) == [key]
        assert store.read_events("r") == [b'{"n":0}', b'{"n":1}']
        assert not other.has(key) and other.read_events("r") == []
        writes: dict[str, Callable[[], object]] = {
            "write_run_head": lambda: store.write_run_head("r", b"{}"),
            "swap_claim": lambda: store.swap_claim("c", None, b"mine"),
            "ledger_append": lambda: store.ledger_append(b"entry"),
            "write_checkpoint": lambda: store.write_checkpoint(1, b"note"),
            "flush": store.flush,
        }
        writes[durable_write]()
        assert other.get(key) == b"held"
        assert other.read_events("r") == [b'{"n":0}', b'{"n":1}']
        store.append_event("r", b'{"n":2}')  # numbered after the committed lines
        store.flush()
        assert other.read_events("r") == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    finally:
        store.close()
        other.close()


def test_the_timer_commits_a_batch_without_any_further_call(pg_dsn: str) -> None:
    schema = fresh_schema()
    store = PostgresStore(pg_dsn, schema=schema, commit_delay=0.005)
    other = PostgresStore(pg_dsn, schema=schema)
    try:
        key = store.put(b"left alone")
        deadline = time.monotonic() + 30
        while not other.has(key) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert other.has(key), "the background commit never came"
    finally:
        store.close()
        other.close()


KILLED = """
import signal, sys
from traces.pgstore import PostgresStore
store = PostgresStore(sys.argv[1], schema=sys.argv[2], commit_delay=3600)
for i in range(50):
    store.put(b"before the head %d" % i)
    store.append_event("run", b'{"n":%d}' % i)
store.write_run_head("run", b"{}")
store.put(b"after the head")
store.append_event("run", b'{"n":50}')
print("ready", flush=True)
signal.pause()
"""


def test_a_killed_writer_loses_only_what_nothing_durable_names(pg_dsn: str) -> None:
    schema = fresh_schema("killed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, pg_dsn, schema],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready", proc.stderr.read() if proc.stderr else b""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    store = PostgresStore(pg_dsn, schema=schema)
    try:
        assert store.read_events("run") == [b'{"n":%d}' % i for i in range(50)]
        for i in range(50):
            assert store.get(digest(b"before the head %d" % i)) == b"before the head %d" % i
        assert store.read_run_head("run") == b"{}"
        assert not store.has(digest(b"after the head"))  # the tail: lost with the process
        store.append_event("run", b'{"n":50}')  # the log goes on from its committed end
        assert store.read_events("run")[-1] == b'{"n":50}'
    finally:
        store.close()


# -- racing writers in separate processes ------------------------------------------------------

PAYLOAD = """
def payload(i):
    # Every 50th artifact is over 64 KiB, so both put paths (check first or not) race.
    return (b"artifact %05d " % i) * (8000 if i % 50 == 0 else 4)
"""

WORKER = (
    PAYLOAD
    + """
import sys, time
from pathlib import Path
from traces.pgstore import PostgresStore

dsn, schema, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
store = PostgresStore(dsn, schema=schema)  # opening races too: the schema is new
for i in range(500):
    store.put(payload(i))
    if i < 200:
        store.append_event("shared-run", b'{"w":%d,"i":%d}' % (n, i))
        store.append_event(f"own-{n}", b'{"i":%d}' % i)
store.write_run_head("shared-run", b'{"w":%d}' % n)
store.close()
"""
)
namespace: dict[str, Any] = {}
exec(PAYLOAD, namespace)
payload: Callable[[int], bytes] = namespace["payload"]


@pytest.mark.slow
def test_racing_writer_processes(pg_dsn: str, tmp_path: Path) -> None:
    schema = fresh_schema("race")
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, pg_dsn, schema, str(n), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"ready"
    go.touch()  # all four start writing at once
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()

    store = PostgresStore(pg_dsn, schema=schema)
    try:
        expected = sorted(digest(payload(i)) for i in range(500))
        assert list(store.keys()) == expected
        for key in expected:
            store.get(key)  # verified against its key
        with admin(pg_dsn) as conn:
            (count,) = conn.execute(f"SELECT count(*) FROM {schema}.artifacts").fetchone() or ()
            seqs = conn.execute(
                f"SELECT seq FROM {schema}.events WHERE run_id = 'shared-run' ORDER BY seq"
            ).fetchall()
        assert count == 500
        assert [s for (s,) in seqs] == list(range(800)), "sequence numbers have gaps or repeats"

        shared = store.read_events("shared-run")
        assert len(shared) == 800
        assert sorted(shared) == sorted(
            b'{"w":%d,"i":%d}' % (n, i) for n in range(4) for i in range(200)
        ), "a line is torn, lost or duplicated"
        for n in range(4):
            mine = [line for line in shared if line.startswith(b'{"w":%d,' % n)]
            assert mine == [b'{"w":%d,"i":%d}' % (n, i) for i in range(200)], "order per writer"
            assert store.read_events(f"own-{n}") == [b'{"i":%d}' % i for i in range(200)]
        assert store.read_run_head("shared-run") in [b'{"w":%d}' % n for n in range(4)]
        assert verify_store(store).checked["artifacts"] == 500
    finally:
        store.close()


# -- lost connections ---------------------------------------------------------------------------


def flushed(store: PostgresStore, value: object) -> object:
    """``value``, once ``store`` committed what it holds (a put or an event line is written
    in a batch: its first round trip is the commit)."""
    store.flush()
    return value


def append_flushed(store: PostgresStore, run_id: str, line: bytes) -> None:
    store.append_event(run_id, line)
    store.flush()


# Each operation after the kill, and what it must return.
OPS: dict[str, tuple[Callable[[PostgresStore], object], object]] = {
    "put": (lambda s: flushed(s, s.put(b"after the kill")), digest(b"after the kill")),
    "put-large": (lambda s: s.put(b"L" * 100_000), digest(b"L" * 100_000)),
    "get": (lambda s: s.get(digest(b"before")), b"before"),
    "has": (lambda s: s.has(digest(b"before")), True),
    "keys": (lambda s: list(s.keys()), [digest(b"before")]),
    "append_event": (lambda s: append_flushed(s, "r", b'{"n":1}'), None),
    "read_events": (lambda s: s.read_events("r"), [b'{"n":0}']),
    "write_run_head": (lambda s: s.write_run_head("r", b'{"h":2}'), None),
    "read_run_head": (lambda s: s.read_run_head("r"), b'{"h":1}'),
    "run_ids": (lambda s: s.run_ids(), ["r"]),
    "swap_claim": (lambda s: s.swap_claim("c", b"held", b"next"), True),
    "read_claim": (lambda s: s.read_claim("c"), b"held"),
}


def test_a_background_commits_retry_reaches_the_writers_notices(pg_dsn: str) -> None:
    # The timer thread commits the batch, out of the writer's context: its retry of the lost
    # connection must still reach whoever collects the writer's notices (a batch worker
    # returns them to the client), once, and so must a retry of a foreground commit.
    app = f"orch-bg-{secrets.token_hex(4)}"
    location = with_params(pg_dsn, application_name=app, schema=fresh_schema())
    store = PostgresStore(location, commit_delay=0.05)
    other = PostgresStore(pg_dsn, schema=store.schema)
    try:
        store.put(b"opened")
        store.flush()
        assert terminate_backends(pg_dsn, app) == 1
        with collecting() as notices:
            key = store.put(b"committed by the timer")
        deadline = time.monotonic() + 30
        while not other.has(key) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert other.has(key), "the background commit never came"
        assert store.reconnects == 1
        assert len(notices) == 1 and "; retrying" in notices[0], notices
        assert password_of(pg_dsn) not in notices[0]
        store.close()
        # Written in two contexts, committed in a third (a flush): each of them hears of it.
        store = PostgresStore(location, commit_delay=HOUR)
        with collecting() as first:
            store.put(b"first writer")
        with collecting() as second:
            store.append_event("r", b'{"n":0}')
        assert terminate_backends(pg_dsn, app) == 1
        with collecting() as flusher:
            store.flush()
        assert store.reconnects == 1 and other.read_events("r") == [b'{"n":0}']
        assert len(first) == len(second) == len(flusher) == 1, (first, second, flusher)
    finally:
        store.close()
        other.close()


def test_store_calls_leave_no_thread_local_for_the_cycle_collector(pg_dsn: str) -> None:
    # On CPython 3.11 before 3.11.9, a collection that frees a threading.local inside
    # sys._current_frames() (Dask's worker profiler, 100 times a second) deadlocks the whole
    # process holding the GIL (CPython gh-106883): a Dask worker froze mid-batch, and the
    # batch waited out the scheduler's 5-minute worker TTL. Each retrying wrapper per call
    # (tenacity's Retrying) left one in a reference cycle; a store call must leave none.
    store = PostgresStore(pg_dsn + f"?schema={fresh_schema()}")
    try:
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for i in range(20):
                store.put(f"blob {i}".encode())
                store.append_event("r", b'{"n":%d}' % i)
                store.write_run_head("r", b'{"h":%d}' % i)
                assert store.swap_claim(f"c{i}", None, b"held")
                assert store.read_run_head("r") == b'{"h":%d}' % i
            gc.collect()
            left = [type(o).__qualname__ for o in gc.garbage if isinstance(o, threading.local)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        assert left == []
    finally:
        store.close()


@pytest.mark.parametrize("op", sorted(OPS))
def test_terminated_backend_is_reconnected_and_reported(
    pg_dsn: str, op: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = f"orch-kill-{secrets.token_hex(4)}"
    store = PostgresStore(with_params(pg_dsn, application_name=app, schema=fresh_schema()))
    try:
        store.put(b"before")
        store.append_event("r", b'{"n":0}')
        store.write_run_head("r", b'{"h":1}')
        assert store.swap_claim("c", None, b"held")
        assert terminate_backends(pg_dsn, app) == 1, "the store's backend was not found to kill"
        call, expected = OPS[op]
        with caplog.at_level(logging.WARNING, logger="traces.pgstore"):
            assert call(store) == expected
        assert store.reconnects == 1
        warnings = [r.getMessage() for r in caplog.records if r.name == "traces.pgstore"]
        assert len(warnings) == 1 and "retrying" in warnings[0], warnings
        assert password_of(pg_dsn) not in warnings[0], "password in the log"
        # Nothing was lost or doubled by the retry.
        events = [b'{"n":0}', b'{"n":1}'] if op == "append_event" else [b'{"n":0}']
        assert store.read_events("r") == events
        assert store.read_run_head("r") == (b'{"h":2}' if op == "write_run_head" else b'{"h":1}')
        assert store.get(digest(b"before")) == b"before"
        assert store.read_claim("c") == (b"next" if op == "swap_claim" else b"held")
    finally:
        store.close()


class _AnswerLostOnce:
    """A connection whose first event INSERT commits on the server, then fails on the client:
    the case where a retry cannot know whether its first try took effect."""

    def __init__(self, conn: psycopg.Connection[Any], *needles: str) -> None:
        self._conn = conn
        self.needles = needles or ("INSERT INTO", ".events")
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        cursor = self._conn.execute(query, params, **kwargs)
        if self.armed and all(n in str(query) for n in self.needles):
            self.armed = False
            raise psycopg.OperationalError("simulated: the answer to the commit was lost")
        return cursor


def test_append_retried_after_a_lost_answer_is_not_doubled(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Each line on its own (no batch): the one-statement append of the line.
    store = PostgresStore(pg_dsn, schema=fresh_schema(), commit_delay=0)
    try:
        store.append_event("r", b'{"n":0}')
        flaky = _AnswerLostOnce(store._conn)  # type: ignore[arg-type]
        store._conn = flaky  # type: ignore[assignment]
        with caplog.at_level(logging.WARNING, logger="traces.pgstore"):
            store.append_event("r", b'{"n":1}')
        assert not flaky.armed, "the simulated failure did not happen"
        assert any("append an event" in r.getMessage() for r in caplog.records)
        assert store.read_events("r") == [b'{"n":0}', b'{"n":1}']
        store.append_event("r", b'{"n":2}')  # the log goes on from the right place
        assert store.read_events("r") == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    finally:
        store.close()


def test_a_batch_retried_after_a_lost_commit_is_not_doubled(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore(pg_dsn, schema=fresh_schema(), commit_delay=3600)  # flush() only
    try:
        store.append_event("r", b'{"n":0}')
        store.flush()
        flaky = _CommitAnswerLostOnce(store._conn)  # type: ignore[arg-type]
        store._conn = flaky  # type: ignore[assignment]
        key = store.put(b"in the batch")
        for run in ("r", "s"):
            store.append_event(run, b'{"n":1}')
            store.append_event(run, b'{"n":2}')
        with caplog.at_level(logging.WARNING, logger="traces.pgstore"):
            store.flush()  # the batch's COMMIT succeeds, its answer is lost, the retry looks
        assert not flaky.armed, "the simulated failure did not happen"
        assert any("write a batch of 1 artifact(s)" in r.getMessage() for r in caplog.records)
        assert store.read_events("r") == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
        assert store.read_events("s") == [b'{"n":1}', b'{"n":2}']
        store.append_event("s", b'{"n":3}')  # the logs go on from the right place
        store.flush()
        with admin(pg_dsn) as conn:
            seqs = conn.execute(
                f"SELECT run_id, seq FROM {store.schema}.events ORDER BY run_id, seq"
            ).fetchall()
        assert seqs == [("r", 0), ("r", 1), ("r", 2), ("s", 0), ("s", 1), ("s", 2)]
        assert store.get(key) == b"in the batch"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("expected", "new", "needle"),
    [(None, b"mine", "INSERT INTO"), (b"old", b"mine", "UPDATE"), (b"old", None, "DELETE")],
)
def test_a_claim_swapped_before_a_lost_answer_is_reported_as_won(
    pg_dsn: str, expected: bytes | None, new: bytes | None, needle: str
) -> None:
    store = PostgresStore(pg_dsn, schema=fresh_schema())
    try:
        if expected is not None:
            assert store.swap_claim("c", None, expected)
        flaky = _AnswerLostOnce(store._conn, needle, ".claims")  # type: ignore[arg-type]
        store._conn = flaky  # type: ignore[assignment]
        # The first try committed; the retry finds the claim already swapped, and says so.
        assert store.swap_claim("c", expected, new)
        assert not flaky.armed, "the simulated failure did not happen"
        assert store.read_claim("c") == new
        assert not store.swap_claim("c", expected, new)  # and only once
    finally:
        store.close()


def test_racing_processes_win_each_claim_once(pg_dsn: str, tmp_path: Path) -> None:
    location = with_params(pg_dsn, schema=fresh_schema("claims"))
    open_store(location).close()
    won = race(location, tmp_path / "go")
    with open_store(location) as store:
        assert_one_winner_each(store, won)


def test_database_gone_for_good_gives_a_clear_error_then_recovers(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    with admin(pg_dsn) as conn:
        conn.execute("CREATE DATABASE lost_db")
    app = f"orch-lost-{secrets.token_hex(4)}"
    dsn = pg_dsn.rsplit("/", 1)[0] + "/lost_db"
    store = PostgresStore(with_params(dsn, application_name=app), attempts=3, max_wait=0.2)
    doomed_app = f"orch-doomed-{secrets.token_hex(4)}"
    doomed = PostgresStore(
        with_params(dsn, application_name=doomed_app), attempts=2, max_wait=0.1, commit_delay=3600
    )
    try:
        store.put(b"kept")
        store.flush()
        doomed.put(b"never committed")  # pending: only close() would commit it
        with admin(pg_dsn) as conn:
            conn.execute("ALTER DATABASE lost_db ALLOW_CONNECTIONS false")
        assert terminate_backends(pg_dsn, app) == 1
        assert terminate_backends(pg_dsn, doomed_app) == 1
        with caplog.at_level(logging.WARNING, logger="traces.store"):
            doomed.close()  # in a finally, say: it warns, it does not raise
        lost = [r.getMessage() for r in caplog.records if r.name == "traces.store"]
        assert len(lost) == 1 and "closed with 1 writes it could not commit" in lost[0], lost
        assert "fix: call flush() before close()" in lost[0] and "***" in lost[0]
        held = store.put(b"held while the database is gone")  # pending: no round trip yet
        with pytest.raises(StoreLocationError) as info:
            store.flush()
        msg = str(info.value)
        assert "could not write a batch of 1 artifact(s)" in msg, msg
        assert "after 3 attempts" in msg, msg
        assert "not currently accepting connections" in msg and "fix:" in msg
        assert store.location in msg and "***" in store.location
        with pytest.raises(StoreLocationError):  # a durable write never goes before it
            store.write_run_head("r", b"{}")
        assert store.get(held) == b"held while the database is gone"  # still pending
        with admin(pg_dsn) as conn:
            conn.execute("ALTER DATABASE lost_db ALLOW_CONNECTIONS true")
        store.flush()  # the batch that failed, committed: nothing was dropped
        assert store.get(store.put(b"written later")) == b"written later"
        assert store.get(digest(b"kept")) == b"kept"
        again = PostgresStore(dsn)  # another connection sees what was committed
        try:
            assert again.get(held) == b"held while the database is gone"
            assert again.read_run_head("r") is None
        finally:
            again.close()
    finally:
        store.close()


def test_unreachable_server_fails_after_bounded_retries(pg_dsn: str) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = f"postgresql://orch:hunter2secret@127.0.0.1:{port}/orch"
    with pytest.raises(StoreLocationError) as info:
        PostgresStore(dsn, attempts=3, max_wait=0.2)
    msg = str(info.value)
    assert "could not open the store" in msg and "after 3 attempts" in msg, msg
    assert f"127.0.0.1:{port}" in msg and "fix:" in msg
    assert "hunter2secret" not in msg


def test_wrong_password_fails_at_once_without_echoing_it(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = pg_dsn.replace(password_of(pg_dsn), "wr0ngpassw0rd")
    with (
        caplog.at_level(logging.WARNING, logger="traces.pgstore"),
        pytest.raises(StoreLocationError) as info,
    ):
        PostgresStore(dsn)
    msg = str(info.value)
    assert "password authentication failed" in msg and "attempts" not in msg, msg
    assert "wr0ngpassw0rd" not in msg
    assert not caplog.records, "a permanent failure must not be retried"


def test_closed_store_refuses_work(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn, schema=fresh_schema())
    store.close()
    with pytest.raises(Exception, match="is closed"):
        store.put(b"x")


# -- locations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://alice:s3cret@db:5432/orch", "postgresql://alice:***@db:5432/orch"),
        ("postgres://alice:s3cret@db/orch?schema=x", "postgres://alice:***@db/orch?schema=x"),
        ("postgresql://alice@db/orch", "postgresql://alice@db/orch"),
        ("postgresql://db/orch?user=a&password=s3cret", "postgresql://db/orch?user=a&password=***"),
        ("host=db password=s3cret dbname=orch", "host=db password=*** dbname=orch"),
        ("host=db password='s3 cret' dbname=orch", "host=db password=*** dbname=orch"),
        ("host=db password s3cret", "host=db password ***"),  # malformed, libpq quotes it
    ],
)
def test_location_masks_the_password(dsn: str, shown: str) -> None:
    assert mask_dsn(dsn) == shown


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:s3cretpw@[::1/db",  # libpq's message quotes the whole URI
        "postgresql://u:s3cret%2Fpw@[::1/db",
        "host=db password s3cretpw",
        "postgresql://u:s3cretpw@db/orch?bogus=1",
    ],
)
def test_malformed_location_is_refused_without_echoing_the_password(dsn: str) -> None:
    with pytest.raises(StoreLocationError, match="invalid PostgreSQL location") as info:
        PostgresStore(dsn)
    assert "s3cret" not in str(info.value) and "fix:" in str(info.value)


def test_bad_schema_name_is_refused_before_connecting() -> None:
    with pytest.raises(StoreLocationError, match="invalid schema name") as info:
        PostgresStore("postgresql://u:s3cret@192.0.2.1/orch?schema=Robert%27);DROP")
    assert "s3cret" not in str(info.value)


def test_open_store_opens_postgres_urls(pg_dsn: str) -> None:
    schema = fresh_schema()
    for scheme in ("postgresql", "postgres"):
        url = with_params(pg_dsn.replace("postgresql", scheme, 1), schema=schema)
        store = open_store(url)
        try:
            assert isinstance(store, PostgresStore)
            assert store.schema == schema
            assert "***" in store.location and password_of(pg_dsn) not in store.location
            key = store.put(b"via open_store")  # the second scheme reads what the first wrote
            assert store.get(key) == b"via open_store"
            assert list(store.keys()) == [key]
        finally:
            store.close()


def test_open_store_without_psycopg_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "traces.pgstore")
    with pytest.raises(StoreLocationError) as info:
        open_store("postgresql://alice:s3cret@db.example/orch")
    msg = str(info.value)
    assert "pip install 'orch[postgres]'" in msg and "s3cret" not in msg


# -- a real pipeline ----------------------------------------------------------------------------


class Q(BaseModel):
    question: str


class A(BaseModel):
    text: str


async def _model(request: dict[str, Any]) -> dict[str, Any]:
    return {"text": request["prompt"].upper()}


@agent(name="ask", version="1")
async def ask(q: Q, ctx: Context) -> A:
    request = {"model": "m", "prompt": q.question}
    response = await ctx.effect("model", "m", request, lambda: _model(request))
    return A(text=response["text"])


@agent(name="shout", version="1")
async def shout(a: A, ctx: Context) -> A:
    return A(text=a.text + "!")


def test_pipeline_recorded_in_postgres_verifies_and_replays(pg_dsn: str) -> None:
    p = PipelineBuilder("two-nodes")
    first = p.node("ask", ask, question=p.input("question", str))
    p.output("answer", p.node("shout", shout, text=first.field("text")))
    pipeline = p.build()
    location = with_params(pg_dsn, schema=fresh_schema("pipe"))

    store = open_store(location)
    try:
        result = run(pipeline, {"question": "hello"}, store=store, seed=3)
        assert result.status == "ok", result
    finally:
        store.close()

    store = open_store(location)  # another connection, as another process would open it
    try:
        assert store.run_ids() == [result.run_id]
        report = verify_run(store, result.run_id)
        assert report.ok, report.problems
        assert report.root_hash == result.root_hash
        replay = anyio.run(areplay, pipeline, result.run_id, store)
        assert replay.clean, [d.describe() for d in replay.divergences]
        assert replay.result.root_hash == result.root_hash
        assert verify_store(store).ok

        events = store.read_events(result.run_id)
        store._tamper_event(result.run_id, 1, events[1].replace(b'"', b"'", 1))  # type: ignore[attr-defined]
        assert not verify_run(store, result.run_id).ok, "a tampered event must be found"
    finally:
        store.close()


def test_a_user_without_create_rights_uses_an_existing_store(pg_dsn: str) -> None:
    """Opening runs no DDL when the tables exist, and the privileges docs/stores.md lists
    are enough."""
    schema = fresh_schema("grants")
    PostgresStore(pg_dsn, schema=schema).close()  # created by the owner
    role, password = f"writer_{secrets.token_hex(4)}", secrets.token_hex(8)
    with admin(pg_dsn) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"REVOKE CREATE ON DATABASE orch FROM PUBLIC, {role}")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {schema} TO {role}")
        conn.execute(
            f"GRANT UPDATE ON {schema}.event_logs, {schema}.run_heads, {schema}.run_index TO {role}"
        )
        conn.execute(f"GRANT DELETE ON {schema}.run_index TO {role}")
    dsn = pg_dsn.replace("orch:" + password_of(pg_dsn), f"{role}:{password}")
    store = PostgresStore(dsn, schema=schema)
    try:
        key = store.put(b"by a plain user")
        store.put(b"by a plain user")
        store.append_event("r", b"{}")
        store.append_event("r", b"{}")
        store.write_run_head("r", b"{}")
        store.write_run_head("r", b"{}")
        assert store.get(key) == b"by a plain user"
        assert store.read_events("r") == [b"{}", b"{}"]
    finally:
        store.close()
    # The same user cannot create a store: a clear error, not a crash.
    with pytest.raises(StoreError, match="could not open the store and create its tables") as info:
        PostgresStore(dsn, schema=fresh_schema("denied"))
    assert "permission denied" in str(info.value) and "fix:" in str(info.value)
    assert password not in str(info.value)


def test_a_reader_who_may_not_write_the_index_still_lists_runs(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An auditor with SELECT only: filling decision texts is refused, so the list turns into
    the scan of every head, with a notice naming the grant; it is never refused."""
    from traces import RunFilter, list_runs
    from traces.conformance import RunSpec, write_run

    schema = fresh_schema("reader")
    owner = PostgresStore(pg_dsn, schema=schema)
    try:
        for i in range(3):
            decisions = (("router", ("large" if i else "small",), f"reason {i}"),)
            spec = RunSpec(f"run-{i}", "p", "ok", i, 1000.0 + i, decisions)
            write_run(owner, spec)
        owner.flush()
    finally:
        owner.close()
    role, password = f"reader_{secrets.token_hex(4)}", secrets.token_hex(8)
    with admin(pg_dsn) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    dsn = pg_dsn.replace("orch:" + password_of(pg_dsn), f"{role}:{password}")
    reader = PostgresStore(dsn, schema=schema)
    try:
        with caplog.at_level(logging.WARNING, logger="traces.pgstore"):
            index = reader.run_index()
            assert index is not None
            index.warm()  # a server's warm-up: refused the fill, it turns to the scan too
            page = list_runs(reader, RunFilter(text="large"))
            assert [r.run_id for r in page.runs] == ["run-2", "run-1"]
            assert [r.run_id for r in list_runs(reader).runs] == ["run-2", "run-1", "run-0"]
        warned = [r.getMessage() for r in caplog.records if "runs index" in r.getMessage()]
        assert len(warned) == 1 and "fix: grant INSERT, UPDATE and DELETE" in warned[0], warned
        assert password not in warned[0]
    finally:
        reader.close()


def test_warm_reads_every_runs_decisions_into_the_index(pg_dsn: str) -> None:
    from traces import RunFilter
    from traces.conformance import assert_index_agrees, sample_specs, write_run

    store = PostgresStore(pg_dsn, schema=fresh_schema("warm"))
    try:
        for spec in sample_specs(5, 30):
            write_run(store, spec)
        store.flush()
        index = store.run_index()
        assert index is not None
        pending = f"SELECT count(*) FROM {store._q}.run_index WHERE decisions IS NULL"

        def unread() -> int:
            return int(store._call("count", lambda c: c.execute(pending).fetchone()[0]))

        index.page(RunFilter(), limit=1)
        assert unread() > 0
        index.warm()
        assert unread() == 0
        assert_index_agrees(store, [RunFilter(text="escalated"), RunFilter()], limits=(1, 50))
    finally:
        store.close()


# -- the ledger: retries and lost connections -------------------------------------------------


class _CommitAnswerLostOnce:
    """A connection whose first write commits on the server, then fails on the client (a
    transaction's COMMIT, or an insert made in autocommit mode, as the one-statement ledger
    append is): a ledger append's retry cannot know whether its first try took effect."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self.armed = True
        self.in_transaction = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def transaction(self) -> Any:
        return _LoseTheAnswer(self, self._conn.transaction())

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        cursor = self._conn.execute(query, *args, **kwargs)
        if self.armed and not self.in_transaction and str(query).startswith("WITH n AS (INSERT"):
            self.armed = False  # the statement committed on its own; its answer is lost
            raise psycopg.OperationalError("simulated: the answer to the insert was lost")
        return cursor


class _LoseTheAnswer:
    def __init__(self, owner: _CommitAnswerLostOnce, tx: Any) -> None:
        self.owner, self.tx = owner, tx

    def __enter__(self) -> Any:
        self.owner.in_transaction = True
        return self.tx.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        self.owner.in_transaction = False
        swallowed = self.tx.__exit__(*exc)  # commits when the block ended without error
        if exc[0] is None and self.owner.armed:
            self.owner.armed = False
            raise psycopg.OperationalError("simulated: the answer to COMMIT was lost")
        return swallowed


@pytest.mark.parametrize("at", [None, 1])
def test_ledger_append_retried_after_a_lost_commit_is_not_doubled(
    pg_dsn: str, at: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore(pg_dsn, schema=fresh_schema())
    try:
        assert store.ledger_append(b"zero") == 0
        flaky = _CommitAnswerLostOnce(store._conn)  # type: ignore[arg-type]
        store._conn = flaky  # type: ignore[assignment]
        with caplog.at_level(logging.WARNING, logger="traces.pgstore"):
            # The first try committed; the retry finds its own entry and reports its index.
            assert store.ledger_append(b"one", at=at) == 1
        assert not flaky.armed, "the simulated failure did not happen"
        assert any("append an entry to the ledger" in r.getMessage() for r in caplog.records)
        assert store.ledger_read() == [b"zero", b"one"]
        assert store.ledger_append(b"two") == 2  # the ledger goes on from the right place
    finally:
        store.close()


# Each ledger operation after the kill, and what it must return.
LEDGER_OPS: dict[str, tuple[Callable[[PostgresStore], object], object]] = {
    "ledger_append": (lambda s: s.ledger_append(b"one"), 1),
    "ledger_append_at": (lambda s: s.ledger_append(b"one", at=1), 1),
    "ledger_size": (lambda s: s.ledger_size(), 1),
    "ledger_read": (lambda s: s.ledger_read(), [b"zero"]),
    "write_checkpoint": (lambda s: s.write_checkpoint(1, b"replaced"), None),
    "read_checkpoint": (lambda s: s.read_checkpoint(1), b"note"),
    "checkpoint_sizes": (lambda s: s.checkpoint_sizes(), [1]),
}


@pytest.mark.parametrize("op", sorted(LEDGER_OPS))
def test_ledger_survives_a_terminated_backend(pg_dsn: str, op: str) -> None:
    app = f"orch-kill-{secrets.token_hex(4)}"
    store = PostgresStore(with_params(pg_dsn, application_name=app, schema=fresh_schema()))
    try:
        store.ledger_append(b"zero")
        store.write_checkpoint(1, b"note")
        assert terminate_backends(pg_dsn, app) == 1, "the store's backend was not found to kill"
        call, expected = LEDGER_OPS[op]
        assert call(store) == expected
        assert store.reconnects == 1
        appended = op.startswith("ledger_append")
        assert store.ledger_read() == ([b"zero", b"one"] if appended else [b"zero"])
        assert store.read_checkpoint(1) == (b"replaced" if op == "write_checkpoint" else b"note")
    finally:
        store.close()


def test_ledger_of_stores_in_two_schemas_is_separate(pg_dsn: str) -> None:
    first = PostgresStore(pg_dsn, schema=fresh_schema())
    second = PostgresStore(pg_dsn, schema=fresh_schema())
    try:
        assert first.ledger_append(b"first's") == 0
        assert second.ledger_append(b"second's", at=0) == 0
        assert first.ledger_read() == [b"first's"] and second.ledger_read() == [b"second's"]
    finally:
        first.close()
        second.close()
