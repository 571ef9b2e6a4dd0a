"""Writing a batch of artifacts and event lines to SQLite in one transaction.

The SQLite store (:mod:`traces._sqlitestore`) holds puts and event lines in a
:class:`~traces._writebehind.Batch` and commits it with :func:`commit_batch_with`, alone or
together with the one durable write (a run head, a claim, a ledger entry) that must follow it.
A batch is written by a few multi-row statements: one step of SQLite each, where
``executemany`` takes a step, and a turn of the GIL, per row (a background commit then barely
slows the thread that runs the engine).

An event line's sequence number is its run's next one: read once per run by each store object
(under the write lock, in the transaction), then counted on in ``next_seq``. Another process
appending to the same run outdates that count; the primary key refuses the duplicate, and the
batch is written again with every number read afresh. This module must never commit a part of
a batch, nor reorder the lines of a run.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from ._writebehind import Batch

__all__ = ["commit_batch_with"]

_NEXT_SEQ = "SELECT COALESCE(MAX(seq) + 1, 0) FROM events WHERE run_id = ?"
_PUT_ROWS = "INSERT OR IGNORE INTO artifacts (key, data) VALUES "
_APPEND_ROWS = "INSERT INTO events (run_id, seq, line) VALUES "
# Rows per statement, at most: powers of two, so that few statement texts recur and stay
# prepared (SQLite's limit of 999 parameters is far).
_ROWS_PER_STATEMENT = 256

_T = TypeVar("_T")


@functools.lru_cache(maxsize=64)
def _rows_sql(head: str, width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return head + ", ".join([one] * rows)


def _insert_rows(
    db: sqlite3.Connection, head: str, width: int, rows: list[tuple[Any, ...]]
) -> None:
    done = 0
    while done < len(rows):
        n = min(_ROWS_PER_STATEMENT, 1 << ((len(rows) - done).bit_length() - 1))
        db.execute(_rows_sql(head, width, n), [v for row in rows[done : done + n] for v in row])
        done += n


def _write_batch(db: sqlite3.Connection, batch: Batch, next_seq: dict[str, int]) -> dict[str, int]:
    """Store ``batch`` inside the caller's transaction; return each run's next sequence
    number after it (for ``next_seq``, the caller's cache, once committed)."""
    if batch.blobs:
        _insert_rows(db, _PUT_ROWS, 2, list(batch.blobs.items()))
    seqs: dict[str, int] = {}
    if batch.events:
        rows: list[tuple[Any, ...]] = []
        for run_id, line in batch.events:
            seq = seqs.get(run_id)
            if seq is None:
                seq = next_seq.get(run_id)
                if seq is None:
                    seq = int(db.execute(_NEXT_SEQ, (run_id,)).fetchone()[0])
            rows.append((run_id, seq, line))
            seqs[run_id] = seq + 1
        _insert_rows(db, _APPEND_ROWS, 3, rows)
    return seqs


def commit_batch_with(
    db: sqlite3.Connection, batch: Batch, next_seq: dict[str, int], write: Callable[[], _T]
) -> _T:
    """Commit ``batch`` then ``write`` in one transaction on ``db``; roll back on failure.
    A sequence number another process took meanwhile (a cached one outdated) empties the
    cache and tries once more, reading each run's next number afresh."""
    for attempt in (1, 2):
        db.execute("BEGIN IMMEDIATE")  # the write lock first: no deadlock between upgraders
        try:
            seqs = _write_batch(db, batch, next_seq)
            result = write()
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if attempt == 2 or not next_seq:
                raise
            next_seq.clear()
            continue
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        next_seq.update(seqs)
        return result
    raise AssertionError("unreachable")
