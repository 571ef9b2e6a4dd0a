"""The runs index of the SQLite store: the ``run_index`` table in the store's own file.

A head's row is written by :meth:`~traces.SQLiteStore.write_run_head` in the transaction that
writes the head (:func:`write_row`), so the two never disagree, whatever crashes. A file made
before the index existed gets the (empty) table when a writer opens it, and the rows of every
head on the first query (:meth:`SQLiteStoreIndex._catch_up`, in one transaction that holds the
write lock, so no head is written meanwhile); ``run_index_meta`` says when that is done.
Decisions are read by the queries that need them, and their texts go into the trigram table
with them (:mod:`traces._sqlindex`).

A store this process may only read gets an index in memory (SQLite's ``temp`` schema, which
shadows the file's table): a copy of the file's index when it has one, else rows read from
the heads; that copy does not follow heads written later by other processes (an index opened
read-only is a snapshot), but its decisions are read and kept in memory as for any other.

This module never writes the store's records or heads, only ``run_index``, its meta row and
the tables of its text search.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ._sqlindex import (
    FORMAT,
    SQLITE_UPSERT,
    SQLIndex,
    head_row,
    sqlite_clear,
    sqlite_delete,
    sqlite_drain,
    sqlite_schema,
    sqlite_seed,
    sqlite_store_fills,
    trigram_enabled,
)
from ._store import ArtifactStore

__all__ = ["SQLiteStoreIndex", "index_row", "write_row"]


def index_row(run_id: str, data: bytes) -> tuple[Any, ...] | None:
    """The row to write with a head (None: delete the run's row), made before taking the lock."""
    row = head_row(run_id, data)
    if row is not None:
        row = (*row[:3], sqlite_seed(row[3]), *row[4:])
    return row


def write_row(db: sqlite3.Connection, run_id: str, row: tuple[Any, ...] | None) -> None:
    """Write ``row`` (from :func:`index_row`) inside the caller's transaction."""
    if row is None:
        sqlite_delete(db, run_id)
    else:
        db.execute(SQLITE_UPSERT, row)


def _format(db: sqlite3.Connection, schema: str) -> str | None:
    try:
        row = db.execute(
            f"SELECT value FROM {schema}.run_index_meta WHERE key = 'format'"
        ).fetchone()
    except sqlite3.OperationalError:  # no such table: a file made before the index
        return None
    return None if row is None else str(row[0])


def _insert_heads(db: sqlite3.Connection) -> None:
    """Rows for every head (into ``run_index`` as it resolves: temp's when there is one)."""
    rows = []
    for run_id, data in db.execute("SELECT run_id, data FROM run_heads").fetchall():
        row = index_row(str(run_id), bytes(data))
        if row is not None:
            rows.append(row)
    db.executemany(SQLITE_UPSERT, rows)


class SQLiteStoreIndex(SQLIndex):
    """The index of a :class:`~traces.SQLiteStore`, on a connection of its own."""

    def __init__(
        self, store: ArtifactStore, connect: Callable[[], sqlite3.Connection], *, read_only: bool
    ) -> None:
        super().__init__(store)
        self._connect = connect
        self._read_only = read_only
        self._db: sqlite3.Connection | None = None
        self._built = False
        self._lock = threading.Lock()
        self.trigram = trigram_enabled()

    def _connection(self) -> sqlite3.Connection:
        db = self._db
        if db is None:
            db = self._db = self._connect()
            if self._read_only:
                db.executescript(sqlite_schema("temp", trigram=self.trigram))
                self._load(db)
            elif self.trigram:  # the store made them, unless its file was made without
                db.executescript(sqlite_schema())
        return db

    def _load(self, db: sqlite3.Connection) -> None:
        """Fill the in-memory index of a read-only store."""
        db.execute("BEGIN")
        try:
            sqlite_clear(db, self.trigram)  # temp's tables: they shadow the file's
            if _format(db, "main") == FORMAT:
                db.execute("INSERT INTO temp.run_index SELECT * FROM main.run_index")
                # Their texts go into the in-memory trigram table on the first text filter.
                db.execute(
                    "INSERT INTO temp.run_index_unsearched SELECT run_id FROM temp.run_index "
                    "WHERE decisions > 0"
                )
            else:
                _insert_heads(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _build(self, db: sqlite3.Connection, *, again: bool = False) -> None:
        """Rows for every head, once (or ``again``), with the write lock held throughout."""
        db.execute("BEGIN IMMEDIATE")
        try:
            if again or _format(db, "main") != FORMAT:
                sqlite_clear(db, self.trigram)
                _insert_heads(db)
                db.execute(
                    "INSERT OR REPLACE INTO run_index_meta (key, value) VALUES ('format', ?)",
                    (FORMAT,),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._built = True

    def _catch_up(self) -> None:
        with self._lock:
            db = self._connection()
            if not self._built and not self._read_only:
                self._build(db)

    def _write(self, work: Callable[[sqlite3.Connection], object]) -> None:
        with self._lock:
            db = self._connection()
            db.execute("BEGIN" if self._read_only else "BEGIN IMMEDIATE")
            try:
                work(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _store_fills(self, fills: list[tuple[Any, ...]]) -> None:
        self._write(lambda db: sqlite_store_fills(db, fills, self.trigram))

    def _settle(self) -> None:
        if self._query("SELECT 1 FROM run_index_unsearched LIMIT 1", ()):
            self._write(sqlite_drain)

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

    def rebuild(self) -> None:
        with self._lock:
            db = self._connection()
            if self._read_only:
                db.execute("BEGIN")
                try:
                    sqlite_clear(db, self.trigram)
                    _insert_heads(db)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            else:
                self._build(db, again=True)
        self._catch_up()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
