"""The runs index of the directory store: a journal writers append to, a sidecar SQLite file
readers keep.

Layout under the store root::

    index/changes.log   one line per head written: "<run id> <crc32 of it, 8 hex>\\n"
    index/runs.sqlite   the index (traces._sqlindex's table), and where it has read the
                        journal to (run_index_meta: format, journal, offset)

A writer (:class:`HeadJournal`) appends its line after the head's rename, with one ``write``
on an ``O_APPEND`` descriptor it keeps open: no lock, no read, no fsync unless the store
syncs everything. A reader (:class:`DirectoryRunIndex`) compares the journal's size with the
offset it has read to (a ``stat`` and one indexed row when nothing changed), and otherwise,
holding the sidecar's write lock, reads the new lines, re-reads the heads they name (or drops
the rows of heads gone) and moves the offset past the last complete line.

The sidecar is rebuilt from the heads (every ``runs/*/head.json``) when it is missing, cannot
be opened as SQLite, holds another :data:`~traces._sqlindex.FORMAT`, or names another journal
file (the journal was deleted or replaced), and when a journal line fails its checksum (a
torn or garbled line, after a crash of the machine): the offset is taken before the heads are
read, so a head written during the rebuild is read again from the journal. A head renamed by a
writer killed before its journal line is found by the reader's look at every run the index
says is running (their head files' inode and mtime, at most every :data:`RECHECK` seconds);
a head written by a version of orch that keeps no journal is not (``orch``'s
``rebuild_index`` redoes it all).

A store this process may only read is never written: its index lives in memory, a copy of
the sidecar when there is a sound one, caught up from the journal like any other; a store
that has neither is indexed from its heads, once per process.

The sidecar also holds the text search's tables (:mod:`traces._sqlindex`), kept by the fills.

This module must never write a record or a head; everything it writes is under ``index/``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from ._store import check_run_id

if TYPE_CHECKING:
    from ._dirstore import DirectoryStore

__all__ = ["DirectoryRunIndex", "HeadJournal", "journal_line"]

#: Seconds between two looks at the head files of the runs the index holds as running.
RECHECK = 5.0


def journal_line(run_id: str) -> bytes:
    """The journal's line for a head written under ``run_id``."""
    raw = run_id.encode()
    return raw + b" %08x\n" % zlib.crc32(raw)


def _parse_line(line: bytes) -> str | None:
    """The run id of a sound journal line (without its newline), else None."""
    raw, _, crc = line.partition(b" ")
    try:
        if crc != b"%08x" % zlib.crc32(raw):
            return None
        return check_run_id(raw.decode("ascii"))
    except ValueError:  # not ASCII, or not a run id
        return None


class HeadJournal:
    """The writers' side: one line appended per head written."""

    def __init__(self, folder: Path, *, fsync: bool) -> None:
        self.path = folder / "changes.log"
        self._fsync = fsync
        self._fd: int | None = None
        self._lock = threading.Lock()

    def note(self, run_id: str) -> None:
        """Record that the head of ``run_id`` was just written."""
        fd = self._fd
        if fd is None:
            with self._lock:
                fd = self._fd
                if fd is None:
                    self.path.parent.mkdir(exist_ok=True)
                    fd = self._fd = os.open(
                        self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
                    )
        os.write(fd, journal_line(run_id))  # one write: appenders never interleave a line
        if self._fsync:
            os.fsync(fd)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)


def _stamp(path: Path) -> str | None:
    """What tells a head file from the one before it (rename makes a new inode)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def _journal_id(st: os.stat_result | None) -> str:
    return "" if st is None else f"{st.st_dev}:{st.st_ino}"


class DirectoryRunIndex(SQLIndex):
    """The index of a :class:`~traces.DirectoryStore` (see the module docstring)."""

    def __init__(self, store: DirectoryStore) -> None:
        super().__init__(store)
        self._dir = store
        self.folder = store.root / "index"
        self.file = self.folder / "runs.sqlite"
        self.journal = self.folder / "changes.log"
        self._db: sqlite3.Connection | None = None
        self._in_memory = store.read_only
        self._lock = threading.Lock()
        self._rechecked = float("-inf")
        self.trigram = trigram_enabled()

    # -- the sidecar ---------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        db = self._db
        if db is None:
            db = self._db = self._open()
        return db

    def _open(self) -> sqlite3.Connection:
        if not self._in_memory:
            for attempt in (1, 2):
                db: sqlite3.Connection | None = None
                try:
                    self.folder.mkdir(exist_ok=True)
                    db = sqlite3.connect(
                        self.file, isolation_level=None, timeout=30.0, check_same_thread=False
                    )
                    db.executescript(sqlite_schema(trigram=self.trigram))
                    db.execute("SELECT count(*) FROM run_index_meta").fetchone()
                    return db
                except sqlite3.DatabaseError:
                    if db is not None:
                        db.close()
                    if attempt == 2:
                        raise
                    # Not a database (a torn copy, another program's file): derived data,
                    # so start afresh.
                    for name in (self.file, self.file.with_name(self.file.name + "-journal")):
                        name.unlink(missing_ok=True)
                except OSError:
                    if db is not None:
                        db.close()
                    break  # the folder is not ours to write after all: keep it in memory
            self._in_memory = True
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        with contextlib.suppress(sqlite3.Error, OSError):
            if self.file.is_file():  # a sound sidecar saves reading every head
                source = sqlite3.connect(
                    f"{self.file.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0
                )
                try:
                    source.backup(db)
                finally:
                    source.close()
        try:
            db.executescript(sqlite_schema(trigram=self.trigram))
        except sqlite3.DatabaseError:
            db.close()
            db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            db.executescript(sqlite_schema(trigram=self.trigram))
        return db

    def _meta(self, db: sqlite3.Connection) -> dict[str, str]:
        return {str(k): str(v) for k, v in db.execute("SELECT key, value FROM run_index_meta")}

    def _set_meta(self, db: sqlite3.Connection, **values: str) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO run_index_meta (key, value) VALUES (?, ?)", values.items()
        )

    def _journal_stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.journal)
        except FileNotFoundError:
            return None

    def _current(self, meta: dict[str, str], st: os.stat_result | None) -> bool:
        """Whether the index has read every line of the journal ``st`` describes."""
        size = 0 if st is None else st.st_size
        return (
            meta.get("format") == FORMAT
            and meta.get("journal") == _journal_id(st)
            and meta.get("offset") == str(size)
        )

    # -- catching up ------------------------------------------------------------------------

    def _read_head(self, run_id: str) -> tuple[Any, ...] | None:
        path = self._dir.root / "runs" / run_id / "head.json"
        stamp = _stamp(path)  # before the read: a head replaced after it is read again later
        row = head_row(run_id, self.store.read_run_head(run_id), stamp)
        if row is not None:
            row = (*row[:3], sqlite_seed(row[3]), *row[4:])
        return row

    def _apply(self, db: sqlite3.Connection, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            row = self._read_head(run_id)
            if row is None:
                sqlite_delete(db, run_id)
            else:
                db.execute(SQLITE_UPSERT, row)

    def _rebuild(self, db: sqlite3.Connection) -> None:
        """Inside the caller's transaction: every head read again."""
        st = self._journal_stat()  # before the heads: a head written meanwhile is journaled
        sqlite_clear(db, self.trigram)
        self._apply(db, self.store.run_ids())
        self._set_meta(
            db,
            format=FORMAT,
            journal=_journal_id(st),
            offset=str(0 if st is None else st.st_size),
        )

    def _replay(self, db: sqlite3.Connection, meta: dict[str, str]) -> None:
        """Inside the caller's transaction: the journal's new lines applied, or a rebuild."""
        st = self._journal_stat()
        known = meta.get("journal")
        offset = int(meta.get("offset", "0")) if known else 0
        if (
            meta.get("format") != FORMAT
            or known is None
            or (known and known != _journal_id(st))
            or offset > (0 if st is None else st.st_size)
        ):
            self._rebuild(db)
            return
        if st is None:
            return
        with open(self.journal, "rb") as f:
            f.seek(offset)
            chunk = f.read(st.st_size - offset)
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next time
        ids = [_parse_line(line) for line in chunk[:end].split(b"\n")[:-1]]
        if None in ids:
            self._rebuild(db)
            return
        self._apply(db, sorted({i for i in ids if i is not None}))
        self._set_meta(db, journal=_journal_id(st), offset=str(offset + end))

    def _recheck_running(self, db: sqlite3.Connection) -> None:
        """Inside the caller's transaction: runs held as running whose head file changed."""
        rows = db.execute("SELECT run_id, stamp FROM run_index WHERE status = 'running'")
        root = self._dir.root / "runs"
        changed = [r for r, stamp in rows.fetchall() if _stamp(root / r / "head.json") != stamp]
        self._apply(db, changed)

    def _write(self, db: sqlite3.Connection, work: Callable[[], object]) -> None:
        db.execute("BEGIN" if self._in_memory else "BEGIN IMMEDIATE")
        try:
            work()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _catch_up(self) -> None:
        with self._lock:
            db = self._connection()
            if not self._current(self._meta(db), self._journal_stat()):
                self._write(db, lambda: self._replay(db, self._meta(db)))
            if time.monotonic() - self._rechecked >= RECHECK:
                self._write(db, lambda: self._recheck_running(db))
                self._rechecked = time.monotonic()

    def _store_fills(self, fills: list[tuple[Any, ...]]) -> None:
        with self._lock:
            db = self._connection()
            self._write(db, functools.partial(sqlite_store_fills, db, fills, self.trigram))

    def _settle(self) -> None:
        with self._lock:
            db = self._connection()
            if db.execute("SELECT 1 FROM run_index_unsearched LIMIT 1").fetchone():
                self._write(db, functools.partial(sqlite_drain, db))

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

    def rebuild(self) -> None:
        with self._lock:
            db = self._connection()
            self._write(db, lambda: self._rebuild(db))
        self._catch_up()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
