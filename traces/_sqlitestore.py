"""The SQLite store: one file holding artifacts, event logs and run heads.

For users who want a single file to copy or archive, and for many writers on one machine:
SQLite in WAL mode lets readers (``orch show``, ``orch verify``) work while a run writes, and
serialises writers from several processes with a busy timeout. ``synchronous=NORMAL``
survives a killed process; pass ``durable=True`` for ``synchronous=FULL``, which also
survives power loss.

Artifacts and event lines are written behind (:mod:`traces._writebehind`): held by this store
object and committed in one transaction per batch, when the batch is full, at most
``commit_delay`` seconds after its first write, at :meth:`~SQLiteStore.flush` and at close, so
that a step costs no commit of its own. Run heads, claims, ledger entries and checkpoints are
committed when their call returns, in one transaction with (after) every write pending
before them: a committed head or ledger entry never names an artifact or event line that is
not committed too. A killed process loses at most the batch it had not committed, which
nothing durable names; a reader never sees half of a transaction. This object's reads see
its pending writes; other objects and processes see them once committed. ``commit_delay=0``
commits each write on its own, as a read-only store does (where writes fail at once).

Artifacts are rows of a rowid table with an index on their key: a step's record (about a
kilobyte) is appended to the table's last pages, and only its small index entry lands at a
random place. (Files made before this layout keep a ``WITHOUT ROWID`` artifacts table, where
each record went to a random page, most with an overflow page of their own: three times the
work per commit. They are read and written the same way.)

The ledger is a table keyed by index: an append computes the next index and inserts the entry
in one statement, in a transaction that holds SQLite's write lock from the read to the commit:
appenders in every process take turns, and indexes come out dense and unique. An event line
written on its own gets its sequence number the same way; how a batch numbers its lines, and
what happens when another process appends to the same run, is in :mod:`traces._sqlitebatch`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._canonical import HASH_PREFIX
from ._sqlindex import sqlite_schema
from ._sqlitebatch import commit_batch_with
from ._sqliteindex import SQLiteStoreIndex, index_row, write_row
from ._store import check_run_id, claim_change
from ._writebehind import Batch, WriteBehind, WriteBehindStore, lost_at_close
from .errors import StoreError, StoreLocationError, StoreNotFoundError

if TYPE_CHECKING:
    from ._runindex import RunIndex

__all__ = ["COMMIT_DELAY", "SQLiteStore"]

# Artifacts in a rowid table with an index on the key, not WITHOUT ROWID: see the module docstring.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (key TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, line BLOB NOT NULL, PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_heads (run_id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (name TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
""" + sqlite_schema()  # the runs index (traces._sqliteindex): derived from the heads

# Each swap is one conditional statement, so one transaction (see claim_change).
_CLAIM_SQL = {
    "take": "INSERT OR IGNORE INTO claims (name, data) VALUES (?, ?)",
    "release": "DELETE FROM claims WHERE name = ? AND data = ?",
    "replace": "UPDATE claims SET data = ? WHERE name = ? AND data = ?",
}

# An INSERT takes the write lock before it reads, so the index it computes is still the next
# one when it commits (idx is the rowid: lastrowid is the index given).
_LEDGER_APPEND = "INSERT INTO ledger (idx, entry) SELECT COALESCE(MAX(idx) + 1, 0), ? FROM ledger"
_LEDGER_APPEND_AT = (
    "INSERT INTO ledger (idx, entry) SELECT ?, ? "
    "WHERE (SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger) = ?"
)
# A line written on its own gets the run's next sequence number in the statement that
# inserts it, under the write lock.
_APPEND = (
    "INSERT INTO events (run_id, seq, line) "
    "SELECT ?1, COALESCE(MAX(seq) + 1, 0), ?2 FROM events WHERE run_id = ?1"
)
_PUT = "INSERT OR IGNORE INTO artifacts (key, data) VALUES (?, ?)"

#: Seconds between a write and the commit of its batch, at most (unless the database is busy).
COMMIT_DELAY = 0.005
# Above this size a put asks whether the key exists before holding the bytes: a repeated
# large artifact then costs one indexed read instead of a copy in memory and a rewrite.
_CHECK_BEFORE_PUT = 64 * 1024

# A checkpoint copies each page once, however many times the WAL holds it, and the random
# pages of the artifacts' key index are written again by most commits: fewer, larger
# checkpoints copy and sync less (measured: 3-9% of the store's CPU a node, 1,000-node runs
# and 10,000-node runs).
# 4,000 pages stay within the WAL index's first block (4,096 frames); past it each page
# looked up in the WAL costs more (16,000 measured slower than 1,000, SQLite's default).
_CHECKPOINT_PAGES = 4000
# The writer's page cache (see SQLiteStore._writer_connection), in KiB: the key index of a
# store of 100,000 artifacts is about 8 MiB. Measured, with one connection writing: a
# quarter less work per commit at 60,000 artifacts than SQLite's default of 2 MiB.
_WRITER_CACHE_KIB = 16 * 1024

_T = TypeVar("_T")


def _set_up_writer(db: sqlite3.Connection, durable: bool) -> None:
    """Settings of a connection that writes (they last as long as the connection)."""
    db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")


def _connect_read_only(file: Path) -> sqlite3.Connection:
    """A read-only connection that changes nothing in or beside ``file``."""
    uri = file.absolute().as_uri()
    db = sqlite3.connect(
        f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=30.0, check_same_thread=False
    )
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        wal = file.with_name(file.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise  # committed pages live in the WAL: reading the file alone would miss them
    # A WAL-mode file in a folder this process may not write: SQLite cannot make the -shm
    # file a reader needs. With no WAL pending, the file alone is the whole database.
    return sqlite3.connect(
        f"{uri}?mode=ro&immutable=1",
        uri=True,
        isolation_level=None,
        timeout=30.0,
        check_same_thread=False,
    )


class SQLiteStore(WriteBehindStore):
    """A store in one SQLite database file (created when missing)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durable: bool = False,
        create: bool = True,
        read_only: bool = False,
        commit_delay: float = COMMIT_DELAY,
    ) -> None:
        """Open the store in ``path``. With ``create=False`` a missing file (or one without
        the store's tables) raises :class:`~traces.errors.StoreNotFoundError` and nothing is
        made. ``read_only=True``, or a file this process may not write, opens it read-only
        (``read_only`` True): no journal-mode change, no tables created, writes refused.
        ``commit_delay``: the most seconds an artifact or event line waits for its batch's
        commit (see the module docstring); 0 commits each write on its own."""
        if not commit_delay >= 0:
            raise ValueError(f"commit_delay must be 0 or more seconds, not {commit_delay!r}")
        file = Path(path).expanduser()
        self.path = file
        self.location = str(file)
        if file.is_dir():
            raise StoreLocationError(
                f"store location {self.location} is a directory, not a SQLite file; fix: give "
                "a file path ending in .db, or drop the sqlite: prefix for a directory store"
            )
        exists = file.exists()
        if not exists and (read_only or not create):
            raise StoreNotFoundError(self.location)
        # WAL needs the folder as well as the file (it makes -wal and -shm files beside it).
        self.read_only = read_only or (
            exists and not (os.access(file, os.W_OK) and os.access(file.parent, os.W_OK))
        )
        db: sqlite3.Connection | None = None
        try:
            if self.read_only:
                db = _connect_read_only(file)
            elif create:
                file.parent.mkdir(parents=True, exist_ok=True)
                # check_same_thread=False: anyio may call from worker threads; a lock serialises.
                db = sqlite3.connect(
                    file, isolation_level=None, timeout=30.0, check_same_thread=False
                )
            else:  # mode=rw never makes the file
                db = sqlite3.connect(
                    f"{file.absolute().as_uri()}?mode=rw",
                    uri=True,
                    isolation_level=None,
                    timeout=30.0,
                    check_same_thread=False,
                )
            self._db = db
            if not create or self.read_only:
                tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if "artifacts" not in {r[0] for r in tables.fetchall()}:
                    db.close()
                    raise StoreNotFoundError(self.location)
            if not self.read_only:
                db.execute("PRAGMA journal_mode=WAL")
                _set_up_writer(db, durable)
                db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            if self.read_only:
                raise StoreLocationError(
                    f"cannot read SQLite store {self.location} read-only: {exc}; fix: ask its "
                    f"owner to run sqlite3 {self.location} 'PRAGMA wal_checkpoint(TRUNCATE)', or "
                    "copy the file (with its -wal file) to a folder you may write"
                ) from exc
            raise StoreLocationError(
                f"cannot open SQLite store {self.location}: {exc}; fix: give a writable path "
                "to a SQLite database file (or a new name ending in .db)"
            ) from exc
        self._lock = threading.Lock()
        self._closed = False
        self._durable = durable
        self._run_ids: set[str] = set()
        self._next_seq: dict[str, int] = {}
        """Each run's next event sequence number, as far as this object's commits know;
        touched only by the one commit under way (see traces._sqlitebatch)."""
        self._writer: sqlite3.Connection | None = None
        """The connection every commit uses, opened by the first (see _writer_connection)."""
        # None: each write commits on its own (read-only, or commit_delay=0).
        self._behind: WriteBehind | None = None
        self._index: SQLiteStoreIndex | None = None
        if not self.read_only and commit_delay > 0:
            self._behind = WriteBehind(
                self, self._lock, where=self.location, max_delay=commit_delay
            )

    # -- committing --------------------------------------------------------------------------

    def _durably(self, write: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``write`` (statements on the connection it is given, or nothing) in one
        transaction with every pending write, after them, and return what it returned.
        Called with the lock held."""
        if self._closed:
            raise StoreError(f"SQLite store {self.location} is closed; fix: open the store again")
        behind = self._behind
        if behind is None:
            return write(self._db)  # autocommit: one statement, one transaction
        behind.wait_idle()  # the batch in flight commits first (and frees the writer)
        db = self._writer_connection()
        batch = behind.pending
        if not batch.count:
            return write(db)
        behind.take()
        try:
            return commit_batch_with(db, batch, self._next_seq, lambda: write(db))
        except BaseException:
            behind.restore(batch)  # pending again, whole, ahead of anything newer
            raise

    def _writer_connection(self) -> sqlite3.Connection:
        """The connection every commit of a store with a write-behind uses: background
        commits, so that this object's reads go on meanwhile on its own (SQLite works outside
        the GIL), and durable writes, so that one connection writes: SQLite drops a
        connection's page cache when another commits, and the writer's cache holds the pages
        of the artifacts' key index that the next batch writes to again. Used by one commit
        at a time: a background one (the batch in flight) or one holding the lock after
        :meth:`WriteBehind.wait_idle`."""
        db = self._writer
        if db is None:
            db = self._writer = sqlite3.connect(
                self.path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            _set_up_writer(db, self._durable)
            db.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
        return db

    def _commit_batch(self, batch: Batch) -> None:
        commit_batch_with(self._writer_connection(), batch, self._next_seq, lambda: None)

    def _commit_pending(self) -> None:
        self._durably(lambda db: None)

    def flush(self) -> None:
        """Commit every artifact and event line this object holds, before returning."""
        with self._lock:
            if self._behind:
                self._commit_pending()

    # -- artifacts ---------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        # The hot path of every step: hashed and held, no statement (see _CHECK_BEFORE_PUT).
        behind = self._behind
        if type(data) is not bytes or behind is None:
            return super().put(data)
        key = HASH_PREFIX + hashlib.sha256(data).hexdigest()
        if len(data) > _CHECK_BEFORE_PUT and self._has_blob(key):
            return key
        with self._lock:
            if self._closed:
                self._commit_pending()  # raises: a closed store takes no writes
            behind.add_blob(key, data)
        return key

    def _read_blob(self, key: str) -> bytes | None:
        with self._lock:
            if self._behind is not None:
                data = self._behind.blob(key)
                if data is not None:
                    return data
            row = self._db.execute("SELECT data FROM artifacts WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _write_blob(self, key: str, data: bytes) -> None:
        with self._lock:
            if self._behind is not None and not self._closed:
                self._behind.add_blob(key, bytes(data))
                return
            # OR IGNORE: content addressing makes a second writer of the same key a no-op.
            self._durably(lambda db: db.execute(_PUT, (key, data)))

    def _has_blob(self, key: str) -> bool:
        with self._lock:
            if self._behind is not None and self._behind.blob(key) is not None:
                return True
            row = self._db.execute("SELECT 1 FROM artifacts WHERE key = ?", (key,)).fetchone()
        return row is not None

    def _iter_keys(self) -> Iterator[str]:
        with self._lock:
            rows = self._db.execute("SELECT key FROM artifacts").fetchall()
            keys = {r[0] for r in rows}
            if self._behind is not None:
                keys.update(self._behind.keys())
        return iter(keys)

    # -- event logs --------------------------------------------------------------------------

    def append_event(self, run_id: str, line: bytes) -> None:
        if run_id not in self._run_ids:  # checked once per run: this is every step's path
            self._run_ids.add(check_run_id(run_id))
        if type(line) is not bytes:
            line = bytes(line)
        with self._lock:
            behind = self._behind
            if behind is None or self._closed:
                self._durably(lambda db: db.execute(_APPEND, (run_id, line)))
            else:
                behind.add_line(run_id, line)

    def read_events(self, run_id: str) -> list[bytes]:
        check_run_id(run_id)
        with self._lock:
            pending: list[bytes] = []
            if self._behind is not None:
                self._behind.wait_idle()  # else a line committing now could show twice
                pending = self._behind.pending_lines(run_id)
            rows = self._db.execute(
                "SELECT line FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
        return [bytes(r[0]) for r in rows] + pending

    # -- run heads ---------------------------------------------------------------------------

    def write_run_head(self, run_id: str, data: bytes) -> None:
        check_run_id(run_id)
        row = index_row(run_id, data)  # parsed before the lock: writers never wait on it

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO run_heads (run_id, data) VALUES (?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET data = excluded.data",
                (run_id, data),
            )
            write_row(db, run_id, row)  # the head's index row, in the same transaction

        with self._lock:
            if self._behind is None:  # autocommit: one explicit transaction for the two
                self._durably(lambda db: self._in_transaction(lambda: write(db)))
            else:
                self._durably(write)

    def read_run_head(self, run_id: str) -> bytes | None:
        check_run_id(run_id)
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM run_heads WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def run_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT run_id FROM run_heads ORDER BY run_id").fetchall()
        return [r[0] for r in rows]

    def run_index(self) -> RunIndex:
        """The ``run_index`` table of this file (see :mod:`traces._sqliteindex`)."""
        with self._lock:
            if self._closed:
                raise StoreError(
                    f"SQLite store {self.location} is closed; fix: open the store again"
                )
            if self._index is None:
                self._index = SQLiteStoreIndex(
                    self, self._index_connection, read_only=self.read_only
                )
            return self._index

    def _index_connection(self) -> sqlite3.Connection:
        """A connection for the runs index of its own (its reads and fills never wait for
        this object's lock, nor hold it)."""
        if self.read_only:
            return _connect_read_only(self.path)
        return sqlite3.connect(
            self.path, isolation_level=None, timeout=30.0, check_same_thread=False
        )

    # -- claims ----------------------------------------------------------------------------

    supports_claims = True

    def read_claim(self, name: str) -> bytes | None:
        check_run_id(name)
        with self._lock:
            row = self._db.execute("SELECT data FROM claims WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
        change = claim_change(name, expected, new)
        if change is None:
            return self.read_claim(name) is None
        op, args = change
        with self._lock:
            return self._durably(lambda db: db.execute(_CLAIM_SQL[op], args).rowcount == 1)

    # -- the ledger -------------------------------------------------------------------------

    supports_ledger = True

    def _ledger_append(self, entry: bytes, at: int | None) -> int | None:
        with self._lock:
            if at is None:
                index = self._durably(lambda db: db.execute(_LEDGER_APPEND, (entry,)).lastrowid)
                assert index is not None  # an INSERT of one row always sets it
                return index
            added = self._durably(
                lambda db: db.execute(_LEDGER_APPEND_AT, (at, entry, at)).rowcount
            )
        return at if added == 1 else None

    def _ledger_rows(self, sql: str, *args: int) -> list[tuple[Any, ...]]:
        """The rows a read of the ledger's tables returns; none when the tables are missing
        (a store made before the ledger existed, opened read-only, cannot be given them)."""
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise

    def _ledger_size(self) -> int:
        rows = self._ledger_rows("SELECT MAX(idx) FROM ledger")
        return 0 if not rows or rows[0][0] is None else int(rows[0][0]) + 1

    def _ledger_read(self, start: int, stop: int | None) -> list[bytes]:
        if stop is None:
            rows = self._ledger_rows("SELECT entry FROM ledger WHERE idx >= ? ORDER BY idx", start)
        else:
            rows = self._ledger_rows(
                "SELECT entry FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx", start, stop
            )
        return [bytes(r[0]) for r in rows]

    def _write_checkpoint(self, size: int, note: bytes) -> None:
        with self._lock:
            self._durably(
                lambda db: db.execute(
                    "INSERT INTO checkpoints (size, note) VALUES (?, ?) "
                    "ON CONFLICT (size) DO UPDATE SET note = excluded.note",
                    (size, note),
                )
            )

    def _read_checkpoint(self, size: int) -> bytes | None:
        rows = self._ledger_rows("SELECT note FROM checkpoints WHERE size = ?", size)
        return bytes(rows[0][0]) if rows else None

    def _checkpoint_sizes(self) -> list[int]:
        return [int(r[0]) for r in self._ledger_rows("SELECT size FROM checkpoints")]

    def close(self) -> None:
        """Commit what is pending, then close the file (a second close does nothing). A
        commit that fails is reported as a warning, not raised: see ``lost_at_close``."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._behind:
                    self._commit_pending()
            except Exception as exc:
                assert self._behind is not None
                lost_at_close(self.location, self._behind, exc)
            finally:
                self._closed = True
                if self._index is not None:
                    self._index.close()
                if self._behind is not None:
                    self._behind.discard()
                if self._writer is not None:
                    self._writer.close()
                self._db.close()

    # -- test hooks: corrupt data in place, as a disk or an attacker would ---------------------
    # Each commits what is pending first, so that it changes what a reader would find.

    def _tamper_sql(self, sql: str, *args: object) -> None:
        with self._lock:
            self._durably(lambda db: db.execute(sql, args))

    def _tamper(self, key: str, data: bytes) -> None:
        self._tamper_sql("UPDATE artifacts SET data = ? WHERE key = ?", data, key)

    def _tamper_event(self, run_id: str, index: int, line: bytes) -> None:
        self._tamper_sql(
            "UPDATE events SET line = ? WHERE run_id = ? AND seq = ?", line, run_id, index
        )

    def _tamper_ledger(self, index: int, entry: bytes) -> None:
        self._tamper_sql("UPDATE ledger SET entry = ? WHERE idx = ?", entry, index)

    def _tamper_truncate_ledger(self, size: int) -> None:
        self._tamper_sql("DELETE FROM ledger WHERE idx >= ?", size)

    def _tamper_delete_blob(self, key: str) -> None:
        self._tamper_sql("DELETE FROM artifacts WHERE key = ?", key)

    def _tamper_delete_head(self, run_id: str) -> None:
        self._tamper_sql("DELETE FROM run_heads WHERE run_id = ?", run_id)

    def _tamper_delete_checkpoint(self, size: int) -> None:
        self._tamper_sql("DELETE FROM checkpoints WHERE size = ?", size)

    def _tamper_set_events(self, run_id: str, lines: list[bytes]) -> None:
        def replace() -> None:
            self._db.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            self._db.executemany(
                "INSERT INTO events (run_id, seq, line) VALUES (?, ?, ?)",
                [(run_id, seq, line) for seq, line in enumerate(lines)],
            )

        with self._lock:
            self._commit_pending()
            self._in_transaction(replace)
            self._next_seq.clear()

    def _tamper_snapshot(self) -> object:
        """The rows of every table, by table name."""
        with self._lock:
            self._commit_pending()
            self._db.execute("BEGIN")  # one consistent read of every table
            try:
                return {
                    table: self._db.execute(f'SELECT * FROM "{table}"').fetchall()
                    for table in self._table_names()
                }
            finally:
                self._db.execute("COMMIT")

    def _tamper_restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, dict)

        def restore() -> None:
            for table in self._table_names():
                self._db.execute(f'DELETE FROM "{table}"')
                rows = snapshot.get(table, [])
                if rows:
                    marks = ", ".join("?" * len(rows[0]))
                    self._db.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)

        with self._lock:
            self._commit_pending()  # written since the snapshot: gone with the rest
            self._in_transaction(restore)
            self._next_seq.clear()

    def _in_transaction(self, write: Callable[[], None]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            write()
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _table_names(self) -> list[str]:
        rows = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return [str(r[0]) for r in rows]
