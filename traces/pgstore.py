"""The PostgreSQL store: artifacts, event logs and run heads shared by many processes and machines.

Location: ``postgresql://user:password@host:port/database`` (or ``postgres://``, or any libpq
key/value DSN given to :class:`PostgresStore` directly), with an optional ``?schema=NAME``
(default ``orch``) so that several stores can share one database. The tables, created on open
when missing::

    artifacts  (key text PRIMARY KEY, data bytea)       immutable, content-addressed
    run_heads  (run_id text PRIMARY KEY, data bytea)    replaced atomically (upsert)
    event_logs (run_id text PRIMARY KEY, length bigint) the next sequence number of each log
    events     (run_id, seq, line bytea, token bytea)   PRIMARY KEY (run_id, seq)
    ledger     (idx bigint PRIMARY KEY, entry bytea, token bytea)  the store's ledger
    ledger_length (id int PRIMARY KEY, length bigint)   the ledger's next index (one row)
    checkpoints (size bigint PRIMARY KEY, note bytea)   replaced atomically (upsert)
    run_index, run_index_meta                           the runs index (traces._pgindex):
                                                        derived from the heads

Router state needs no table of its own: its versions are artifacts like any other.

Concurrency. A put is ``INSERT ... ON CONFLICT DO NOTHING``: content addressing makes the same
key from two writers the same bytes, so racing writers are harmless. An append takes the run's
next sequence number by an upsert on ``event_logs`` in the same statement that inserts the
line, so the row lock on the counter orders appenders to one run (appends to other runs do not
wait) and a line becomes visible only together with every line before it: a reader never sees
a gap, a torn line or an order that later changes. A ledger append works the same way, with
one counter row (``ledger_length``) for the store: one statement bumps it and inserts the
entry, so appenders from every process take turns, indexes are dense and unique, and no
reader sees an entry before the one below it. A compare-and-append (``at=``, the genesis
entry) locks the counter row in a transaction instead.

Batching. Puts and event lines are written behind (:mod:`traces._writebehind`): held by
the store object and committed in one transaction per batch (a pipeline: the statements go
out together and the server answers once, one WAL flush for the lot), at most
``commit_delay`` seconds after the first, by a background thread while the engine goes on.
A batch's artifacts go in one statement (two arrays the server unnests), and its lines of one
run take their sequence numbers in one statement (the counter bumped by their count). A run
head, a claim swap, a ledger entry or a checkpoint first waits for the batch in flight and
commits the pending one, so it is never committed before what it names; so does
:meth:`~PostgresStore.flush`. A killed process loses at most the writes no
durable thing names yet. ``commit_delay=0`` writes each put and line on its own.

Connection loss. Every operation runs in its own transaction and is retried, with a bounded
number of attempts and a growing pause, on :class:`psycopg.OperationalError` (a lost or
terminated connection, a server restart, a serialisation failure); each retry is logged as a
warning on the ``traces.pgstore`` logger. When the attempts run out the store raises
:class:`~traces.errors.StoreLocationError` naming the store and the operation: a write is
never dropped silently. Puts and head writes are idempotent, so a retry after a commit whose
answer was lost is harmless; an event line and a ledger entry carry a random token (one per
batch for a batch's lines), and a retry first looks for it, so neither is ever appended twice.

This module must never log or echo a password: ``location`` and every message show the DSN
with it masked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import anyio
import psycopg
from psycopg import conninfo as pg_conninfo

from ._canonical import digest
from ._notices import forwarding, notice
from ._pgindex import PG_INDEX_DDL, PG_INDEX_SQL, PostgresRunIndex, pg_row
from ._store import check_run_id, claim_change
from ._writebehind import Batch, WriteBehind, WriteBehindStore, lost_at_close
from .errors import StoreError, StoreLocationError, StoreNotFoundError

if TYPE_CHECKING:
    from ._runindex import RunIndex

__all__ = ["COMMIT_DELAY", "DEFAULT_SCHEMA", "PostgresStore", "mask_dsn"]

log = logging.getLogger("traces.pgstore")  # a public name: logging is configured by it

DEFAULT_SCHEMA = "orch"
# Unquoted-identifier rules (lower case, so the name needs no quoting to be typed by hand).
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Above this size a put asks whether the key exists before sending the bytes: a repeated large
# artifact then costs one small round trip instead of an upload. Below it the INSERT alone is
# cheaper than two round trips.
_CHECK_BEFORE_UPLOAD = 64 * 1024
#: Seconds between a put or an event line and the commit of its batch, at most (unless the
#: server is slow or gone).
COMMIT_DELAY = 0.005
# Connections a forked child inherited: never closed there, since closing would end the
# parent's session on the shared socket.
_INHERITED: list[object] = []
# libpq defaults that keep a dead peer from hanging a call forever; a DSN may override them.
_CONNECT_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "orch",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    # Unacknowledged data (a request to a vanished host) fails after a minute, not TCP's ~15.
    "tcp_user_timeout": "60000",
}
# Connection errors that no retry can fix: fail at once with the server's reason.
_PERMANENT = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "role is not permitted to log in",
    "invalid connection option",
)

_T = TypeVar("_T")
_Conn = psycopg.Connection[tuple[Any, ...]]

_DDL = (
    """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.artifacts (key text PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.run_heads (run_id text PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.event_logs (run_id text PRIMARY KEY, length bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.events (
    run_id text NOT NULL,
    seq bigint NOT NULL,
    line bytea NOT NULL,
    token bytea NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS {s}.claims (name text PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.ledger (
    idx bigint PRIMARY KEY,
    entry bytea NOT NULL,
    token bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.checkpoints (size bigint PRIMARY KEY, note bytea NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.ledger_length (
    id int PRIMARY KEY CHECK (id = 0),
    length bigint NOT NULL
);
INSERT INTO {s}.ledger_length (id, length)
    SELECT 0, COALESCE(MAX(idx) + 1, 0) FROM {s}.ledger
    ON CONFLICT (id) DO NOTHING;
"""
    + PG_INDEX_DDL
)
_TABLES = (
    "artifacts",
    "run_heads",
    "event_logs",
    "events",
    "claims",
    "ledger",
    "checkpoints",
    "ledger_length",
    "run_index",
    "run_index_meta",
)
# Every statement, with {s} for the quoted schema name.
_SQL = {
    "get": "SELECT data FROM {s}.artifacts WHERE key = %s",
    "has": "SELECT 1 FROM {s}.artifacts WHERE key = %s",
    "put": "INSERT INTO {s}.artifacts (key, data) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
    # A batch's artifacts in one statement: two arrays sent in binary (%b), which psycopg
    # dumps in C; executemany would adapt and send each row on its own, holding the GIL.
    "put_many": (
        "INSERT INTO {s}.artifacts (key, data) SELECT * FROM unnest(%b::text[], %b::bytea[]) "
        "ON CONFLICT (key) DO NOTHING"
    ),
    "keys": "SELECT key FROM {s}.artifacts",
    # The counter upsert and the line insert are one statement, so one transaction: the row
    # lock on the counter orders appenders to a run until the line is committed with it.
    "append": (
        "WITH n AS (INSERT INTO {s}.event_logs AS l (run_id, length) VALUES (%s, 1) "
        "ON CONFLICT (run_id) DO UPDATE SET length = l.length + 1 "
        "RETURNING l.length - 1 AS seq) "
        "INSERT INTO {s}.events (run_id, seq, line, token) SELECT %s, seq, %s, %s FROM n"
    ),
    # A batch's lines of one run: the counter bumped by their count, the lines numbered from
    # its old value, in one statement (see "append").
    "append_many": (
        "WITH n AS (INSERT INTO {s}.event_logs AS l (run_id, length) VALUES (%s, %s) "
        "ON CONFLICT (run_id) DO UPDATE SET length = l.length + excluded.length "
        "RETURNING l.length - %s AS base) "
        "INSERT INTO {s}.events (run_id, seq, line, token) "
        "SELECT %s, n.base + t.i - 1, t.line, %s "
        "FROM n, unnest(%b::bytea[]) WITH ORDINALITY AS t(line, i)"
    ),
    "appended": "SELECT 1 FROM {s}.events WHERE run_id = %s AND token = %s",
    "events": "SELECT line FROM {s}.events WHERE run_id = %s ORDER BY seq",
    "write_head": (
        "INSERT INTO {s}.run_heads (run_id, data) VALUES (%s, %s) "
        "ON CONFLICT (run_id) DO UPDATE SET data = excluded.data"
    ),
    "read_head": "SELECT data FROM {s}.run_heads WHERE run_id = %s",
    "runs": "SELECT run_id FROM {s}.run_heads",
    "read_claim": "SELECT data FROM {s}.claims WHERE name = %s",
    # A swap is one conditional statement (see traces._store.claim_change).
    "claim_take": (
        "INSERT INTO {s}.claims (name, data) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
    ),
    "claim_release": "DELETE FROM {s}.claims WHERE name = %s AND data = %s",
    "claim_replace": "UPDATE {s}.claims SET data = %s WHERE name = %s AND data = %s",
    # The ledger: see _ledger_append for how appenders take turns. The counter upsert and the
    # entry insert are one statement, as for an event: the row lock on the counter orders
    # appenders until the entry commits with it.
    "ledger_append": (
        "WITH n AS (INSERT INTO {s}.ledger_length AS l (id, length) VALUES (0, 1) "
        "ON CONFLICT (id) DO UPDATE SET length = l.length + 1 "
        "RETURNING l.length - 1 AS idx) "
        "INSERT INTO {s}.ledger (idx, entry, token) SELECT idx, %s, %s FROM n RETURNING idx"
    ),
    "ledger_counter_row": (
        "INSERT INTO {s}.ledger_length (id, length) VALUES (0, 0) ON CONFLICT (id) DO NOTHING"
    ),
    "ledger_counter_lock": "SELECT length FROM {s}.ledger_length WHERE id = 0 FOR UPDATE",
    "ledger_counter_bump": "UPDATE {s}.ledger_length SET length = length + 1 WHERE id = 0",
    "ledger_next": "SELECT COALESCE(MAX(idx) + 1, 0) FROM {s}.ledger",
    "ledger_insert": "INSERT INTO {s}.ledger (idx, entry, token) VALUES (%s, %s, %s)",
    "ledger_appended": "SELECT idx FROM {s}.ledger WHERE token = %s ORDER BY idx DESC LIMIT 1",
    "ledger_read": "SELECT entry FROM {s}.ledger WHERE idx >= %s AND idx < %s ORDER BY idx",
    "ledger_read_all": "SELECT entry FROM {s}.ledger WHERE idx >= %s ORDER BY idx",
    "write_checkpoint": (
        "INSERT INTO {s}.checkpoints (size, note) VALUES (%s, %s) "
        "ON CONFLICT (size) DO UPDATE SET note = excluded.note"
    ),
    "read_checkpoint": "SELECT note FROM {s}.checkpoints WHERE size = %s",
    "checkpoint_sizes": "SELECT size FROM {s}.checkpoints",
    "tamper": "UPDATE {s}.artifacts SET data = %s WHERE key = %s",
    "tamper_event": "UPDATE {s}.events SET line = %s WHERE run_id = %s AND seq = %s",
    "tamper_ledger": "UPDATE {s}.ledger SET entry = %s WHERE idx = %s",
    "tamper_truncate_ledger": "DELETE FROM {s}.ledger WHERE idx >= %s",
    "tamper_ledger_length": "UPDATE {s}.ledger_length SET length = %s WHERE id = 0",
    "tamper_delete_blob": "DELETE FROM {s}.artifacts WHERE key = %s",
    "tamper_delete_head": "DELETE FROM {s}.run_heads WHERE run_id = %s",
    "tamper_delete_events": "DELETE FROM {s}.events WHERE run_id = %s",
    "tamper_insert_event": (
        "INSERT INTO {s}.events (run_id, seq, line, token) VALUES (%s, %s, %s, %s)"
    ),
    "tamper_event_log": (
        "INSERT INTO {s}.event_logs (run_id, length) VALUES (%s, %s) "
        "ON CONFLICT (run_id) DO UPDATE SET length = excluded.length"
    ),
    "tamper_delete_checkpoint": "DELETE FROM {s}.checkpoints WHERE size = %s",
    "tables": "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
    **PG_INDEX_SQL,
}


_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)([^@/]*)@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)")
# Also matches a malformed "password secret" (no "="), which libpq rejects by quoting it.
_PAIR_PASSWORD = re.compile(r"(\bpassword\b\s*=?\s*)('(?:[^'\\]|\\.)*'|\S+)")


def mask_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***`` (URL user info, ``password=`` pairs)."""
    masked = _URL_PASSWORD.sub(r"\1***@", dsn)
    masked = _QUERY_PASSWORD.sub(r"\1***", masked)
    if "://" not in masked:
        masked = _PAIR_PASSWORD.sub(r"\1***", masked)
    return masked


def _passwords(dsn: str) -> list[str]:
    """Every password written in ``dsn``, raw and percent-decoded, longest first."""
    found = [m.group(2) for m in (_URL_PASSWORD.search(dsn),) if m]
    found += [m.group(2) for m in _QUERY_PASSWORD.finditer(dsn)]
    if "://" not in dsn:
        found += [m.group(2).strip("'") for m in _PAIR_PASSWORD.finditer(dsn)]
    found += [unquote(p) for p in found]
    # Very short ones are left alone: masking every "a" would garble the message.
    return sorted({p for p in found if len(p) >= 4}, key=len, reverse=True)


def _split_schema(dsn: str) -> tuple[str, str | None]:
    """Remove ``schema=`` (not a libpq parameter) from a URL's query; return (dsn, schema)."""
    if "://" not in dsn or "schema=" not in dsn:
        return dsn, None
    parts = urlsplit(dsn)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in pairs if k == "schema"]
    if not schemas:
        return dsn, None
    rest = [(k, v) for k, v in pairs if k != "schema"]
    # quote, not quote_plus: libpq decodes %20 but takes "+" literally.
    query = urlencode(rest, quote_via=quote)
    return urlunsplit(parts._replace(query=query)), schemas[-1]


def _is_transient(exc: BaseException) -> bool:
    if not isinstance(exc, psycopg.OperationalError):
        return False
    message = str(exc)
    return not any(p in message for p in _PERMANENT)


class PostgresStore(WriteBehindStore):
    """A store in a PostgreSQL database (its schema is created when missing).

    ``attempts`` bounds the tries of each operation when the connection fails (pauses of
    0.1 s, doubling up to ``max_wait`` seconds, between them). The store is safe to use from
    several threads: one connection, one lock (the engine calls the store from one event-loop
    thread, so a pool would add a dependency and connections for no gain there); run several
    processes for parallel writes.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        attempts: int = 6,
        max_wait: float = 2.0,
        create: bool = True,
        commit_delay: float = COMMIT_DELAY,
    ) -> None:
        """Connect; with ``create=False`` a database without the store's schema raises
        :class:`~traces.errors.StoreNotFoundError` and nothing is created in it.
        ``commit_delay``: the most seconds a put or event line waits for its batch's commit
        (see the module docstring); 0 writes each on its own."""
        if not commit_delay >= 0:
            raise ValueError(f"commit_delay must be 0 or more seconds, not {commit_delay!r}")
        if not isinstance(dsn, str) or not dsn.strip():
            raise StoreLocationError(
                f"empty or non-string PostgreSQL location {dsn!r}; fix: give "
                "postgresql://user:password@host:port/database"
            )
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.location = mask_dsn(dsn)
        self._dsn, self._secrets = dsn, _passwords(dsn)
        conninfo, url_schema = _split_schema(dsn)
        self.schema = schema or url_schema or DEFAULT_SCHEMA
        if _SCHEMA_RE.match(self.schema) is None:
            raise StoreLocationError(
                f"invalid schema name {self.schema!r} for PostgreSQL store {self.location}; "
                "fix: use 1 to 63 lower-case letters, digits or '_', not starting with a digit"
            )
        try:
            params = pg_conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise StoreLocationError(
                f"invalid PostgreSQL location {self.location}: {self._scrub(exc)}; fix: write "
                "postgresql://user:password@host:port/database[?schema=NAME]"
            ) from None  # the chained libpq error may quote the DSN, password and all
        for name, value in _CONNECT_DEFAULTS.items():
            params.setdefault(name, value)
        self._conninfo = pg_conninfo.make_conninfo("", **params)
        self._attempts = attempts
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._conn: _Conn | None = None
        self._pid = os.getpid()
        self._closed = False
        #: Connections opened again after one was lost (for monitoring and tests).
        self.reconnects = 0
        self._opened = False
        self._q = f'"{self.schema}"'
        self._sql = {name: q.format(s=self._q) for name, q in _SQL.items()}
        self._run_ids: set[str] = set()
        self._index: PostgresRunIndex | None = None
        # Pending writes have a lock of their own, so that writers never wait for the
        # connection (a background commit holds it for a round trip). Order: this one first.
        self._buffer_lock = threading.Lock()
        self._behind: WriteBehind | None = None
        if commit_delay > 0:
            self._behind = WriteBehind(
                self, self._buffer_lock, where=self.location, max_delay=commit_delay
            )
        try:
            if not create:  # a reader must not leave an empty schema behind a typo
                found = self._call(
                    "look up the store's schema",
                    lambda c: c.execute(
                        "SELECT to_regnamespace(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                        (self.schema, f"{self._q}.artifacts"),
                    ).fetchone(),
                )
                if not (found and found[0]):
                    raise StoreNotFoundError(f"{self.location} (schema {self.schema})")  # noqa: TRY301
            self._call("open the store and create its tables", self._create_schema)
        except BaseException:
            self.close()
            raise
        self._opened = True

    # -- connection and retries --------------------------------------------------------------

    def _scrub(self, exc: BaseException | None) -> str:
        """The message of ``exc`` on one line, with the DSN and its password masked."""
        text = " ".join(str(exc).split()).replace(self._dsn, self.location)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _connection(self) -> _Conn:
        conn = self._conn
        if conn is not None and self._pid != os.getpid():
            _INHERITED.append(conn)  # see _INHERITED: a forked child must not close it
            conn = self._conn = None
        if conn is not None and (conn.closed or conn.broken):
            conn.close()
            conn = self._conn = None
        if conn is None:
            conn = psycopg.connect(self._conninfo, autocommit=True)
            self._conn, self._pid = conn, os.getpid()
            if self._opened:  # counted once connected: a failed try is a retry, not a reconnect
                self.reconnects += 1
        return conn

    def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._pid != os.getpid():
            _INHERITED.append(conn)  # see _INHERITED: a forked child must not close it
            return
        with contextlib.suppress(Exception):  # it failed already: closing may fail too
            conn.close()

    def _call(self, what: str, op: Callable[[_Conn], _T]) -> _T:
        """Run ``op`` on a live connection, retrying transient failures; see the module doc."""
        with self._lock:
            if self._closed:
                raise StoreError(
                    f"PostgreSQL store {self.location} is closed, so it cannot {what}; "
                    "fix: open the store again"
                )
            started = time.monotonic()
            # A plain loop, not a tenacity Retrying: each Retrying holds a threading.local in
            # a reference cycle, which only the cyclic collector frees, and on CPython 3.11
            # before 3.11.9 a collection that frees one inside sys._current_frames() (Dask's
            # worker profiler calls it 100 times a second) deadlocks the whole process
            # holding the GIL (CPython gh-106883). This runs several times per run.
            attempt = 1
            while True:
                try:
                    return op(self._connection())
                except psycopg.OperationalError as exc:
                    if attempt >= self._attempts or not _is_transient(exc):
                        last: psycopg.OperationalError = exc
                        break
                    notice(
                        log,
                        "PostgreSQL store %s: %s failed (attempt %d of %d): %s; retrying",
                        self.location,
                        what,
                        attempt,
                        self._attempts,
                        self._scrub(exc),
                    )
                    # A connection that failed is never trusted again, broken or not: libpq
                    # can be left mid-command ("another command is already in progress") by
                    # a backend terminated under it, and would fail every retry the same way.
                    self._discard_connection()
                    # 0.1 s, doubling, at most max_wait (what tenacity's wait_exponential did).
                    time.sleep(max(0.1, min(0.1 * 2 ** (attempt - 1), self._max_wait)))
                    attempt += 1
                except psycopg.Error as exc:
                    raise StoreError(
                        f"PostgreSQL store {self.location} (schema {self.schema}): could not "
                        f"{what}: {type(exc).__name__}: {self._scrub(exc)}; fix: check that the "
                        f"user may read and write schema {self.schema}"
                    ) from exc
            if not _is_transient(last):  # permanent: no retry can fix it
                raise StoreLocationError(
                    f"PostgreSQL store {self.location}: could not {what}: {self._scrub(last)}; "
                    "fix: check the location's host, port, user, password and database"
                ) from last
            tries = f"{self._attempts} attempt{'s' if self._attempts != 1 else ''}"
            raise StoreLocationError(
                f"PostgreSQL store {self.location}: could not {what} after {tries} over "
                f"{time.monotonic() - started:.1f} s: {self._scrub(last)}; "
                "fix: check that the server is running and "
                "reachable from here, then run again (the operation did not complete, or its "
                "answer was lost)"
            ) from last

    def _create_schema(self, conn: _Conn) -> None:
        names = [f"{self._q}.{t}" for t in _TABLES]
        row = conn.execute(
            "SELECT " + ", ".join("to_regclass(%s) IS NOT NULL" for _ in names), names
        ).fetchone()
        if row is not None and all(row):
            return  # a read-mostly user need not have CREATE rights on the database
        with conn.transaction():
            # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalogue; the
            # transaction-scoped advisory lock makes processes opening at once take turns.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("orch:" + self.schema,))
            conn.execute(_DDL.format(s=self._q))

    # -- artifacts ---------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        # Held for the next batch, no round trip (one INSERT ... ON CONFLICT DO NOTHING per
        # artifact when committed), except for large payloads, see _CHECK_BEFORE_UPLOAD.
        if not isinstance(data, bytes):
            return super().put(data)  # raises the standard error
        key = digest(data)
        if len(data) > _CHECK_BEFORE_UPLOAD and self._has_blob(key):
            return key
        self._write_blob(key, data)
        return key

    def _read_blob(self, key: str) -> bytes | None:
        if self._behind is not None:
            with self._buffer_lock:
                data = self._behind.blob(key)
            if data is not None:
                return data
        row = self._call(
            f"read artifact {key}",
            lambda c: c.execute(self._sql["get"], (key,), binary=True).fetchone(),
        )
        return None if row is None else bytes(row[0])

    def _write_blob(self, key: str, data: bytes) -> None:
        behind = self._behind
        if behind is None:
            self._call(f"write artifact {key}", lambda c: c.execute(self._sql["put"], (key, data)))
            return
        with self._buffer_lock:
            self._check_open("write artifacts")
            behind.add_blob(key, bytes(data))

    def _has_blob(self, key: str) -> bool:
        if self._behind is not None:
            with self._buffer_lock:
                if self._behind.blob(key) is not None:
                    return True
        row = self._call(
            f"look up artifact {key}", lambda c: c.execute(self._sql["has"], (key,)).fetchone()
        )
        return row is not None

    def _iter_keys(self) -> Iterator[str]:
        pending: set[str] = set()
        if self._behind is not None:
            with self._buffer_lock:
                pending = self._behind.keys()
        rows = self._call(
            "list artifacts",
            lambda c: c.execute(self._sql["keys"]).fetchall(),
        )
        return iter(pending.union(str(r[0]) for r in rows))

    # -- event logs --------------------------------------------------------------------------

    def append_event(self, run_id: str, line: bytes) -> None:
        if run_id not in self._run_ids:  # checked once per run: this is every step's path
            self._run_ids.add(check_run_id(run_id))
        behind = self._behind
        if behind is not None:
            with self._buffer_lock:
                self._check_open("append events")
                behind.add_line(run_id, bytes(line))
            return
        token = secrets.token_bytes(16)
        sent = False

        def append(conn: _Conn) -> None:
            nonlocal sent
            # A retry after a lost answer: the first try may have committed, look for it.
            if sent and conn.execute(self._sql["appended"], (run_id, token)).fetchone():
                return
            sent = True
            conn.execute(self._sql["append"], (run_id, run_id, bytes(line), token))

        self._call(f"append an event to run {run_id}", append)

    def read_events(self, run_id: str) -> list[bytes]:
        check_run_id(run_id)

        def read(conn: _Conn) -> list[tuple[Any, ...]]:
            return conn.execute(self._sql["events"], (run_id,), binary=True).fetchall()

        what = f"read the events of run {run_id}"
        if self._behind is None:
            return [bytes(r[0]) for r in self._call(what, read)]
        with self._buffer_lock:
            # No commit may move pending lines under the read (it would see them twice).
            self._behind.wait_idle()
            pending = self._behind.pending_lines(run_id)
            rows = self._call(what, read)
        return [bytes(r[0]) for r in rows] + pending

    # -- committing ------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StoreError(
                f"PostgreSQL store {self.location} is closed, so it cannot {what}; "
                "fix: open the store again"
            )

    def _commit_batch(self, batch: Batch) -> None:
        keys, datas = list(batch.blobs), list(batch.blobs.values())
        runs = list(batch.lines_by_run().items())
        token = secrets.token_bytes(16)
        sent = False

        def commit(conn: _Conn) -> None:
            nonlocal sent
            # A retry after a lost answer: the batch is one transaction, so one of its lines
            # found means all of it committed.
            if (
                sent
                and runs
                and conn.execute(self._sql["appended"], (runs[0][0], token)).fetchone()
            ):
                return
            sent = True
            with conn.pipeline(), conn.transaction():
                if keys:
                    conn.execute(self._sql["put_many"], (keys, datas))
                for run_id, lines in runs:
                    n = len(lines)
                    conn.execute(self._sql["append_many"], (run_id, n, n, run_id, token, lines))

        lines = batch.count - len(keys)
        self._call(f"write a batch of {len(keys)} artifact(s) and {lines} event line(s)", commit)

    def _commit_pending(self) -> None:
        """Commit every write accepted before this call (the batch in flight first); called
        holding neither lock."""
        behind = self._behind
        if behind is None:
            return
        with self._buffer_lock:
            batch = behind.begin_foreground()
        if batch is None:
            return
        committed = False
        try:
            with forwarding(batch.sinks):  # the retries reach the runs that wrote it too
                self._commit_batch(batch)
            committed = True
        finally:
            with self._buffer_lock:
                behind.end_foreground(batch, committed)

    def _durable_call(self, what: str, op: Callable[[_Conn], _T]) -> _T:
        """``_call`` for a write that must follow every write accepted before it."""
        self._commit_pending()
        return self._call(what, op)

    def flush(self) -> None:
        """Commit every artifact and event line this object holds, before returning."""
        self._commit_pending()

    async def _aflush_pending(self) -> None:
        # In a worker thread: the event loop goes on during the round trip, and flushes of
        # concurrent runs that queue meanwhile find their writes committed (a group commit).
        await anyio.to_thread.run_sync(self.flush)

    # -- run heads ---------------------------------------------------------------------------

    def write_run_head(self, run_id: str, data: bytes) -> None:
        check_run_id(run_id)
        data = bytes(data)
        # The head's index row goes in the statement that writes the head: one transaction.
        row = pg_row(run_id, data)
        if row is None:
            sql, args = self._sql["write_head_unindexed"], (run_id, data, run_id)
        else:
            sql, args = self._sql["write_head_indexed"], (run_id, data, *row)
        self._durable_call(f"write the head of run {run_id}", lambda c: c.execute(sql, args))

    def run_index(self) -> RunIndex:
        """The ``run_index`` table of this schema (see :mod:`traces._pgindex`)."""
        with self._lock:
            if self._index is None:
                self._index = PostgresRunIndex(self)
            return self._index

    def read_run_head(self, run_id: str) -> bytes | None:
        check_run_id(run_id)
        row = self._call(
            f"read the head of run {run_id}",
            lambda c: c.execute(self._sql["read_head"], (run_id,), binary=True).fetchone(),
        )
        return None if row is None else bytes(row[0])

    def run_ids(self) -> list[str]:
        rows = self._call(
            "list runs",
            lambda c: c.execute(self._sql["runs"]).fetchall(),
        )
        # Sorted here, not by ORDER BY: the database's collation need not sort like Python.
        return sorted(str(r[0]) for r in rows)

    # -- claims ----------------------------------------------------------------------------

    supports_claims = True

    def read_claim(self, name: str) -> bytes | None:
        check_run_id(name)
        row = self._call(
            f"read claim {name}",
            lambda c: c.execute(self._sql["read_claim"], (name,), binary=True).fetchone(),
        )
        return None if row is None else bytes(row[0])

    def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
        change = claim_change(name, expected, new)
        if change is None:
            return self.read_claim(name) is None
        op, args = change
        sql = self._sql[f"claim_{op}"]
        sent = False

        def swap(conn: _Conn) -> bool:
            nonlocal sent
            if sent:
                # A retry after a lost answer: the first try may have committed. Claim
                # documents are unique to their writer, so finding ``new`` means it did.
                row = conn.execute(self._sql["read_claim"], (name,), binary=True).fetchone()
                current = None if row is None else bytes(row[0])
                if current == new:
                    return True
                if current != expected:
                    return False
            sent = True
            return conn.execute(sql, args).rowcount == 1

        return self._durable_call(f"swap claim {name}", swap)

    # -- the ledger -------------------------------------------------------------------------

    supports_ledger = True

    def _ledger_append(self, entry: bytes, at: int | None) -> int | None:
        token = secrets.token_bytes(16)
        sent = False

        def append(conn: _Conn) -> int | None:
            nonlocal sent
            if sent:  # a retry after a lost answer: the first try may have committed
                row = conn.execute(self._sql["ledger_appended"], (token,)).fetchone()
                if row is not None:
                    return int(row[0])
            sent = True
            if at is None:  # the common case: one statement, one round trip
                row = conn.execute(self._sql["ledger_append"], (entry, token)).fetchone()
                assert row is not None
                return int(row[0])
            with conn.transaction():
                # A compare-and-append (the genesis entry): the counter row, locked until the
                # transaction ends, orders it with every other appender.
                conn.execute(self._sql["ledger_counter_row"])
                row = conn.execute(self._sql["ledger_counter_lock"]).fetchone()
                index = 0 if row is None else int(row[0])
                if at != index:
                    return None
                conn.execute(self._sql["ledger_counter_bump"])
                conn.execute(self._sql["ledger_insert"], (index, entry, token))
            return index

        return self._durable_call("append an entry to the ledger", append)

    def _ledger_size(self) -> int:
        row = self._call(
            "read the size of the ledger", lambda c: c.execute(self._sql["ledger_next"]).fetchone()
        )
        return 0 if row is None else int(row[0])

    def _ledger_read(self, start: int, stop: int | None) -> list[bytes]:
        sql = self._sql["ledger_read_all" if stop is None else "ledger_read"]
        args = (start,) if stop is None else (start, stop)
        rows = self._call(
            f"read ledger entries from {start}",
            lambda c: c.execute(sql, args, binary=True).fetchall(),
        )
        return [bytes(r[0]) for r in rows]

    def _write_checkpoint(self, size: int, note: bytes) -> None:
        self._durable_call(
            f"write the checkpoint of tree size {size}",
            lambda c: c.execute(self._sql["write_checkpoint"], (size, note)),
        )

    def _read_checkpoint(self, size: int) -> bytes | None:
        row = self._call(
            f"read the checkpoint of tree size {size}",
            lambda c: c.execute(self._sql["read_checkpoint"], (size,), binary=True).fetchone(),
        )
        return None if row is None else bytes(row[0])

    def _checkpoint_sizes(self) -> list[int]:
        rows = self._call(
            "list checkpoints", lambda c: c.execute(self._sql["checkpoint_sizes"]).fetchall()
        )
        return [int(r[0]) for r in rows]

    def close(self) -> None:
        """Commit what is pending, then close the connection (a second close does nothing).
        A commit that fails is reported as a warning, not raised: see ``lost_at_close``."""
        try:
            if not self._closed:
                self._commit_pending()
        except Exception as exc:
            assert self._behind is not None  # nothing else commits
            lost_at_close(self.location, self._behind, exc)
        finally:
            if self._behind is not None:
                with self._buffer_lock:
                    self._behind.discard()
            with self._lock:
                self._closed = True
                conn, self._conn = self._conn, None
                if conn is not None and self._pid == os.getpid():
                    conn.close()

    # -- test hooks: corrupt data in place, as a disk or an attacker would ---------------------
    # Each commits what is pending first, so that it changes what a reader would find.

    def _tamper(self, key: str, data: bytes) -> None:
        self._durable_call(
            f"tamper with artifact {key}",
            lambda c: c.execute(self._sql["tamper"], (data, key)),
        )

    def _tamper_event(self, run_id: str, index: int, line: bytes) -> None:
        self._durable_call(
            f"tamper with event {index} of run {run_id}",
            lambda c: c.execute(self._sql["tamper_event"], (line, run_id, index)),
        )

    def _tamper_ledger(self, index: int, entry: bytes) -> None:
        self._durable_call(
            f"tamper with ledger entry {index}",
            lambda c: c.execute(self._sql["tamper_ledger"], (entry, index)),
        )

    def _tamper_truncate_ledger(self, size: int) -> None:
        def truncate(conn: _Conn) -> None:
            with conn.transaction():
                conn.execute(self._sql["tamper_truncate_ledger"], (size,))
                # As an attacker would: later appends continue from the new end.
                conn.execute(self._sql["tamper_ledger_length"], (size,))

        self._durable_call(f"truncate the ledger to {size}", truncate)

    def _tamper_delete_blob(self, key: str) -> None:
        self._durable_call(
            f"delete artifact {key}", lambda c: c.execute(self._sql["tamper_delete_blob"], (key,))
        )

    def _tamper_delete_head(self, run_id: str) -> None:
        self._durable_call(
            f"delete the head of run {run_id}",
            lambda c: c.execute(self._sql["tamper_delete_head"], (run_id,)),
        )

    def _tamper_set_events(self, run_id: str, lines: list[bytes]) -> None:
        def replace(conn: _Conn) -> None:
            with conn.transaction():
                conn.execute(self._sql["tamper_delete_events"], (run_id,))
                conn.cursor().executemany(
                    self._sql["tamper_insert_event"],
                    [
                        (run_id, seq, line, secrets.token_bytes(16))
                        for seq, line in enumerate(lines)
                    ],
                )
                conn.execute(self._sql["tamper_event_log"], (run_id, len(lines)))

        self._durable_call(f"replace the events of run {run_id}", replace)

    def _tamper_delete_checkpoint(self, size: int) -> None:
        self._durable_call(
            f"delete the checkpoint of tree size {size}",
            lambda c: c.execute(self._sql["tamper_delete_checkpoint"], (size,)),
        )

    def _tamper_snapshot(self) -> object:
        """The rows of every table in the store's schema, by table name."""

        def snapshot(conn: _Conn) -> dict[str, list[tuple[Any, ...]]]:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                tables = [str(r[0]) for r in conn.execute(self._sql["tables"], (self.schema,))]
                return {
                    t: conn.execute(f'SELECT * FROM {self._q}."{t}"', binary=True).fetchall()
                    for t in tables
                }

        return self._durable_call("copy every table", snapshot)

    def _tamper_restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, dict)

        def restore(conn: _Conn) -> None:
            with conn.transaction():
                tables = [str(r[0]) for r in conn.execute(self._sql["tables"], (self.schema,))]
                conn.execute("TRUNCATE " + ", ".join(f'{self._q}."{t}"' for t in tables))
                for t in tables:
                    rows = snapshot.get(t, [])
                    if rows:
                        marks = ", ".join(["%s"] * len(rows[0]))
                        conn.cursor().executemany(
                            f'INSERT INTO {self._q}."{t}" VALUES ({marks})', rows
                        )

        self._durable_call("put every table back", restore)
