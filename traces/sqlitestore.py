"""The SQLite store: one file holding artifacts, event logs and run heads.

For users who want a single file to copy or archive, and for many writers on one machine:
SQLite in WAL mode lets readers (``orch show``, ``orch verify``) work while a run writes, and
serialises writers from several processes with a busy timeout. Each write is its own
transaction, so a killed process loses at most the write it was making, and a reader never
sees half of one. ``synchronous=NORMAL`` survives a killed process; pass ``durable=True`` for
``synchronous=FULL``, which also survives power loss.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import StoreLocationError
from .store import ArtifactStore, check_run_id, claim_change

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, line BLOB NOT NULL, PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_heads (run_id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (name TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
"""

# Each swap is one conditional statement, so one transaction (see claim_change).
_CLAIM_SQL = {
    "take": "INSERT OR IGNORE INTO claims (name, data) VALUES (?, ?)",
    "release": "DELETE FROM claims WHERE name = ? AND data = ?",
    "replace": "UPDATE claims SET data = ? WHERE name = ? AND data = ?",
}


class SQLiteStore(ArtifactStore):
    """A store in one SQLite database file (created when missing)."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        file = Path(path).expanduser()
        self.path = file
        self.location = str(file)
        if file.is_dir():
            raise StoreLocationError(
                f"store location {self.location} is a directory, not a SQLite file; fix: give "
                "a file path ending in .db, or drop the sqlite: prefix for a directory store"
            )
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: anyio may call from worker threads; the lock serialises.
            self._db = sqlite3.connect(
                file, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreLocationError(
                f"cannot open SQLite store {self.location}: {exc}; fix: give a writable path "
                "to a SQLite database file (or a new name ending in .db)"
            ) from exc
        self._lock = threading.Lock()
        self._next_seq: dict[str, int] = {}

    # -- artifacts ---------------------------------------------------------------------------

    def _read_blob(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM artifacts WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _write_blob(self, key: str, data: bytes) -> None:
        with self._lock:
            # OR IGNORE: content addressing makes a second writer of the same key a no-op.
            self._db.execute(
                "INSERT OR IGNORE INTO artifacts (key, data) VALUES (?, ?)", (key, data)
            )

    def _has_blob(self, key: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM artifacts WHERE key = ?", (key,)).fetchone()
        return row is not None

    def _iter_keys(self) -> Iterator[str]:
        with self._lock:
            rows = self._db.execute("SELECT key FROM artifacts").fetchall()
        return (r[0] for r in rows)

    # -- event logs --------------------------------------------------------------------------

    def append_event(self, run_id: str, line: bytes) -> None:
        with self._lock:
            seq = self._next_seq.get(run_id)
            if seq is None:
                check_run_id(run_id)
                row = self._db.execute(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM events WHERE run_id = ?", (run_id,)
                ).fetchone()
                seq = int(row[0])
            self._db.execute(
                "INSERT INTO events (run_id, seq, line) VALUES (?, ?, ?)", (run_id, seq, line)
            )
            self._next_seq[run_id] = seq + 1

    def read_events(self, run_id: str) -> list[bytes]:
        check_run_id(run_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT line FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    # -- run heads ---------------------------------------------------------------------------

    def write_run_head(self, run_id: str, data: bytes) -> None:
        check_run_id(run_id)
        with self._lock:
            self._db.execute(
                "INSERT INTO run_heads (run_id, data) VALUES (?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET data = excluded.data",
                (run_id, data),
            )

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
            return self._db.execute(_CLAIM_SQL[op], args).rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- test hooks: corrupt data in place, as a disk or an attacker would ---------------------

    def _tamper(self, key: str, data: bytes) -> None:
        with self._lock:
            self._db.execute("UPDATE artifacts SET data = ? WHERE key = ?", (data, key))

    def _tamper_event(self, run_id: str, index: int, line: bytes) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE events SET line = ? WHERE run_id = ? AND seq = ?", (line, run_id, index)
            )
