"""A runs index kept in an SQL table: how a head becomes a row, and the queries of a runs list.

The SQLite store keeps the table in its own file, the PostgreSQL store in its schema (both
write a head's row in the transaction that writes the head), and the directory store in a
sidecar SQLite file it catches up from a journal (:mod:`traces._dirindex`). This module holds
what they share: the row of a head (:func:`head_row`), the SQLite table, and
:class:`SQLIndex`, the queries over the table for one SQL dialect, which a backend subclass
connects to its database.

A row holds the head's fields and, once read, the run's decisions: their count, their text
(:func:`~traces._runindex.decision_text`) and that text case-folded as UTF-8 bytes (what a text
filter searches: a byte substring of UTF-8 is a character substring, and Python's casefold on
both sides is exactly :meth:`RunFilter.matches`). Decisions are filled lazily: a head written
with a new root hash leaves them NULL ("pending", a partial index finds those rows), and the
first query after reads the run's records once and stores the result, so writers pay nothing
for them. ``text_of`` is the root hash the decisions were read from: a head rewritten with the
same root keeps them. ``decisions`` -1 marks a run whose records cannot be read: left out of
every list, as :class:`~traces._runindex.ScanIndex` leaves it out.

This module must never write a record: an index is derived data, rebuilt from the records.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import orjson

from ._records import RunHead
from ._runindex import (
    UNREADABLE,
    IndexedRun,
    RunFilter,
    RunIndex,
    RunPage,
    _check_limit,
    decision_text,
    decode_cursor,
    encode_cursor,
    read_decisions,
)
from ._store import ArtifactStore

__all__ = [
    "FORMAT",
    "PENDING",
    "SQLIndex",
    "head_row",
    "sqlite_schema",
    "sqlite_seed",
]

#: The version of the index's layout and meaning; an index of another version is rebuilt.
FORMAT = "1"

#: The columns of a row, in the order :func:`head_row` gives them.
ROW_COLUMNS = (
    "run_id",
    "pipeline",
    "status",
    "seed",
    "started_at",
    "finished_at",
    "root_hash",
    "thread",
    "turn",
    "lineage",
    "stamp",
    "decisions",
    "decision_text",
    "folded",
    "text_of",
)
_HEAD_COLUMNS = ROW_COLUMNS[1:11]
_TEXT_COLUMNS = ROW_COLUMNS[11:]
# What a page selects (the fields of an IndexedRun).
_SELECT = (
    "run_id, pipeline, status, seed, started_at, finished_at, root_hash, thread, turn, "
    "lineage, decisions, decision_text"
)

#: Rows whose decisions are still to be read.
PENDING = "decisions IS NULL"
# Rows a list shows: filled or pending (a run written since the last catch-up), not unreadable.
_LISTED = "(decisions IS NULL OR decisions >= 0)"


def sqlite_schema(schema: str = "main") -> str:
    """The SQLite tables of a runs index in ``schema`` (``main``, or ``temp`` for an index
    kept in memory beside a store this process may only read)."""
    return f"""
CREATE TABLE IF NOT EXISTS {schema}.run_index (
    run_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    status TEXT NOT NULL,
    seed NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    root_hash TEXT,
    thread TEXT,
    turn INTEGER,
    lineage TEXT,
    stamp TEXT,
    decisions INTEGER,
    decision_text TEXT,
    folded BLOB,
    text_of TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {schema}.run_index_order ON run_index (started_at, run_id);
CREATE INDEX IF NOT EXISTS {schema}.run_index_status ON run_index (status, started_at, run_id);
CREATE INDEX IF NOT EXISTS {schema}.run_index_pipeline
    ON run_index (pipeline, started_at, run_id);
CREATE INDEX IF NOT EXISTS {schema}.run_index_seed ON run_index (seed, started_at, run_id);
CREATE INDEX IF NOT EXISTS {schema}.run_index_pending ON run_index (run_id) WHERE {PENDING};
CREATE TABLE IF NOT EXISTS {schema}.run_index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


#: Insert or replace a row (SQLite); a head rewritten with the root hash its decisions were
#: read from keeps them.
SQLITE_UPSERT = (
    f"INSERT INTO run_index ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' * 15)}) "
    "ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _HEAD_COLUMNS)
    + ", "
    + ", ".join(
        f"{c} = CASE WHEN run_index.text_of IS excluded.root_hash AND run_index.decisions IS "
        f"NOT NULL THEN run_index.{c} ELSE excluded.{c} END"
        for c in _TEXT_COLUMNS
    )
)
SQLITE_DELETE = "DELETE FROM run_index WHERE run_id = ?"
#: Store a run's decisions, unless its head changed root meanwhile.
SQLITE_FILL = (
    "UPDATE run_index SET decisions = ?, decision_text = ?, folded = ?, text_of = ? "
    "WHERE run_id = ? AND root_hash = ?"
)


def sqlite_seed(seed: int) -> int | str:
    """A seed as the SQLite column holds it: an integer, or its decimal text past 64 bits
    (the column has no type, so SQLite keeps either exactly)."""
    return seed if -(1 << 63) <= seed < (1 << 63) else str(seed)


def head_row(run_id: str, data: bytes | None, stamp: str | None = None) -> tuple[Any, ...] | None:
    """The index row of the head ``data`` stored under ``run_id``, or None when it is not one
    a runs list shows (missing, not a valid head, or naming another run). ``stamp``: what the
    directory store's index knows the head file by."""
    if data is None:
        return None
    try:
        head = RunHead.model_validate(orjson.loads(data))
    except UNREADABLE:
        return None
    if head.run_id != run_id:
        return None
    text: tuple[Any, ...] = (0, "", b"", None) if head.root_hash is None else (None,) * 4
    return (
        run_id,
        head.pipeline,
        head.status,
        head.seed,
        head.started_at,
        head.finished_at,
        head.root_hash,
        head.thread,
        head.turn,
        head.lineage,
        stamp,
        *text,
    )


def text_fill(store: ArtifactStore, run_id: str, root_hash: str) -> tuple[Any, ...]:
    """The values of :data:`SQLITE_FILL` for a run: its decisions read from its records, or
    -1 when they cannot be read."""
    try:
        decisions = read_decisions(store, root_hash)
    except UNREADABLE:
        return (-1, "", b"", root_hash, run_id, root_hash)
    text = decision_text(decisions)
    return (len(decisions), text, text.casefold().encode(), root_hash, run_id, root_hash)


class SQLIndex(RunIndex):
    """The queries of a runs list over the table; a subclass connects them to its database."""

    #: The dialect's parameter mark.
    mark = "?"
    #: Whether ``folded`` holds the needle (a byte string), in the dialect.
    contains = "instr(folded, ?) > 0"

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    @abc.abstractmethod
    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows ``sql`` returns, read from an index brought up to date (:meth:`_catch_up`)."""

    @abc.abstractmethod
    def _catch_up(self) -> None:
        """Bring the table up to date with the store's heads, then read pending decisions."""

    def _seed(self, seed: int) -> object:
        return sqlite_seed(seed)

    def _where(self, where: RunFilter, start: tuple[float, str] | None) -> tuple[str, list[Any]]:
        m = self.mark
        conds, args = [_LISTED], []
        for column, value in (
            ("pipeline", where.pipeline),
            ("status", where.status),
            ("seed", None if where.seed is None else self._seed(where.seed)),
        ):
            if value is not None:
                conds.append(f"{column} = {m}")
                args.append(value)
        if where.started_from is not None:
            conds.append(f"started_at >= {m}")
            args.append(float(where.started_from))
        if where.started_before is not None:
            conds.append(f"started_at < {m}")
            args.append(float(where.started_before))
        if where.text:
            conds.append(self.contains)
            args.append(where.text.casefold().encode())
        if start is not None:
            conds.append(f"(started_at, run_id) < ({m}, {m})")
            args += [start[0], start[1]]
        return " AND ".join(conds), args

    def _indexed(self, row: tuple[Any, ...]) -> IndexedRun | None:
        run_id, pipeline, status, seed, started, finished, root, thread, turn, lineage = row[:10]
        decisions, text = row[10], row[11]
        if decisions is None:  # written since this query's catch-up: read it now
            _, text, _, _, _, _ = fill = text_fill(self.store, run_id, root)
            decisions = fill[0]
            if decisions < 0:
                return None
        return IndexedRun(
            run_id=run_id,
            pipeline=pipeline,
            status=status,
            seed=int(seed),
            started_at=float(started),
            finished_at=None if finished is None else float(finished),
            root_hash=root,
            thread=thread,
            turn=turn,
            lineage=lineage,
            decisions=int(decisions),
            decision_text=text,
        )

    def page(self, where: RunFilter, *, limit: int = 50, after: str | None = None) -> RunPage:
        limit = _check_limit(limit)
        start = decode_cursor(after) if after is not None else None
        self._catch_up()
        cond, args = self._where(where, start)
        rows = self._query(
            f"SELECT {_SELECT} FROM run_index WHERE {cond} "
            f"ORDER BY started_at DESC, run_id DESC LIMIT {limit + 1}",
            args,
        )
        runs = [run for run in map(self._indexed, rows) if run is not None]
        more = len(rows) > limit
        runs = runs[:limit]
        return RunPage(runs, encode_cursor(runs[-1]) if more and runs else None)

    def count(self, where: RunFilter) -> int:
        self._catch_up()
        cond, args = self._where(where, None)
        return int(self._query(f"SELECT count(*) FROM run_index WHERE {cond}", args)[0][0])

    def pipelines(self) -> list[str]:
        self._catch_up()
        rows = self._query(f"SELECT DISTINCT pipeline FROM run_index WHERE {_LISTED}", ())
        return sorted(str(r[0]) for r in rows)
