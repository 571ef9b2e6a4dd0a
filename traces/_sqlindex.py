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
with a new root hash leaves them NULL ("pending", a partial index finds those rows), writers
pay nothing for them, and a query reads a pending run's records once, when it needs them, and
stores the result. What a query needs: a page without a text filter, only the rows it returns
(at most its limit, however many runs a batch just wrote); a page with a text filter, and a
count, every pending row that matches the filter's other fields (a text cannot be searched
unread, and a run whose records cannot be read is not counted); the pipelines, per pipeline
its runs in turn until one reads (the first, unless records are damaged). ``text_of`` is the
root hash the decisions were read from: a head rewritten with the same root keeps them.
``decisions`` -1 marks a run whose records cannot be read: left out of every list, as
:class:`~traces._runindex.ScanIndex` leaves it out.

A text filter is a pass over the rows in page order, cheap when the word is common (the page
fills at once) and a pass over the whole table when it is in almost no run. SQLite (>= 3.34,
with FTS5) also keeps the folded texts in an FTS5 table with the ``trigram`` tokenizer
(``run_index_fts``; its rowid is a run's id in ``run_index_text``): a needle of 3 characters
or more (case-folded, without NUL) that the trigram table finds in fewer than :data:`SPARSE`
runs is answered from those runs alone, the exact byte-substring check still applied to each,
so the answer is the scan's. The trigram table is maintained where the text is written: a fill
(and a row's deletion) names the run in ``run_index_unsearched``, and a process that has the
trigram tokenizer moves those runs' texts into the trigram table in the same transaction
(:func:`sqlite_store_fills`). Every run with text is thus in the trigram table or still named
in ``run_index_unsearched``, whatever process wrote it: a process whose SQLite lacks the
tokenizer leaves its fills named there (it never touches the FTS5 table, which it could not
open), and the trigram path counts those runs as candidates too. Stale entries (a run
rewritten or deleted since) are only extra candidates: the exact check rejects them.
PostgreSQL keeps the scan (its trigram index, ``pg_trgm``, is an extension a user may not be
allowed to create).

This module must never write a record: an index is derived data, rebuilt from the records.
"""

from __future__ import annotations

import abc
import dataclasses
import sqlite3
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
    "FILL_CHUNK",
    "FORMAT",
    "PENDING",
    "SPARSE",
    "TRIGRAM",
    "SQLIndex",
    "head_row",
    "sqlite_clear",
    "sqlite_delete",
    "sqlite_drain",
    "sqlite_schema",
    "sqlite_seed",
    "sqlite_store_fills",
    "trigram_enabled",
    "upsert_sql",
]

#: The version of the index's layout and meaning; an index of another version is rebuilt
#: (2: the trigram table, which an index of version 1 holds no entries in).
FORMAT = "2"

# The folded text is searched exactly, so the tokenizer must not fold again.
_TOKENIZE = "trigram case_sensitive 1"


def _has_trigram() -> bool:
    """Whether this process's SQLite has FTS5 and its trigram tokenizer (3.34 and later)."""
    try:
        db = sqlite3.connect(":memory:")
        try:
            db.execute(f"CREATE VIRTUAL TABLE t USING fts5(body, tokenize = '{_TOKENIZE}')")
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return True


#: Whether SQLite indexes keep and search the trigram table (read when an index or a schema
#: is made; a test sets it False to force the scan).
TRIGRAM = _has_trigram()
#: A text filter whose needle the trigram table finds in this many runs or more walks the rows
#: in page order instead: the page then fills within about ``limit * rows / SPARSE`` rows,
#: while answering from the candidates costs a look-up and a sort per candidate.
SPARSE = 1000


def trigram_enabled() -> bool:
    """:data:`TRIGRAM` as it is now (what a new index reads)."""
    return TRIGRAM


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

# The runs the trigram table finds a phrase in (up to a limit), plus the unsearched ones.
_HOW_MANY = (
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM run_index_fts WHERE run_index_fts MATCH ? "
    "LIMIT ?)) + (SELECT count(*) FROM run_index_unsearched)"
)
# Rows of those runs; CROSS JOIN keeps SQLite from walking run_index in page order instead.
_CANDIDATES = (
    "(SELECT run_index_text.text_run AS candidate FROM run_index_fts CROSS JOIN run_index_text "
    "ON run_index_text.id = run_index_fts.rowid WHERE run_index_fts MATCH ? "
    "UNION SELECT run_id FROM run_index_unsearched) AS c "
    "CROSS JOIN run_index ON run_index.run_id = c.candidate"
)

#: Rows whose decisions are still to be read.
PENDING = "decisions IS NULL"
#: Pending rows read per transaction when a query needs many (a text filter's first query
#: after a batch): each transaction holds the write lock briefly, and an interrupted fill keeps
#: what it did.
FILL_CHUNK = 500
# Rows a list shows: filled or pending (a run written since the last catch-up), not unreadable.
_LISTED = "(decisions IS NULL OR decisions >= 0)"


def sqlite_schema(schema: str = "main", *, trigram: bool | None = None) -> str:
    """The SQLite tables of a runs index in ``schema`` (``main``, or ``temp`` for an index
    kept in memory beside a store this process may only read); the trigram table when
    ``trigram`` (default: :data:`TRIGRAM`)."""
    search = f"""
CREATE TABLE IF NOT EXISTS {schema}.run_index_text (
    id INTEGER PRIMARY KEY,
    text_run TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE IF NOT EXISTS {schema}.run_index_fts USING fts5(
    body, tokenize = '{_TOKENIZE}'
);
"""
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
CREATE TABLE IF NOT EXISTS {schema}.run_index_unsearched (run_id TEXT PRIMARY KEY) WITHOUT ROWID;
""" + (search if (trigram_enabled() if trigram is None else trigram) else "")


def upsert_sql(target: str, existing: str, mark: str, same: str) -> str:
    """Insert or replace a row: ``INSERT INTO target``, the row already there named
    ``existing``, ``mark`` the parameter placeholder and ``same`` the dialect's null-safe
    equality. A head rewritten with the root hash its decisions were read from keeps them."""
    return (
        f"INSERT INTO {target} ({', '.join(ROW_COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(ROW_COLUMNS))}) "
        "ON CONFLICT (run_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _HEAD_COLUMNS)
        + ", "
        + ", ".join(
            f"{c} = CASE WHEN {existing}.text_of {same} excluded.root_hash AND "
            f"{existing}.decisions IS NOT NULL THEN {existing}.{c} ELSE excluded.{c} END"
            for c in _TEXT_COLUMNS
        )
    )


#: Insert or replace a row (SQLite): :func:`upsert_sql`.
SQLITE_UPSERT = upsert_sql("run_index", "run_index", "?", "IS")
SQLITE_DELETE = "DELETE FROM run_index WHERE run_id = ?"
# A run whose text the trigram table may not hold as it now is.
_UNSEARCHED = "INSERT OR IGNORE INTO run_index_unsearched (run_id) VALUES (?)"
#: Store a run's decisions, unless its head changed root meanwhile.
SQLITE_FILL = (
    "UPDATE run_index SET decisions = ?, decision_text = ?, folded = ?, text_of = ? "
    "WHERE run_id = ? AND root_hash = ?"
)


def sqlite_delete(db: sqlite3.Connection, run_id: str) -> None:
    """Delete a run's row inside the caller's transaction (its trigram entry goes with the
    next :func:`sqlite_drain`)."""
    db.execute(SQLITE_DELETE, (run_id,))
    db.execute(_UNSEARCHED, (run_id,))


def sqlite_store_fills(db: sqlite3.Connection, fills: list[tuple[Any, ...]], trigram: bool) -> None:
    """Inside the caller's transaction: :data:`SQLITE_FILL` each of ``fills``, and their
    texts into the trigram table when ``trigram`` (else left named as unsearched)."""
    db.executemany(SQLITE_FILL, fills)
    db.executemany(_UNSEARCHED, [(fill[4],) for fill in fills])
    if trigram:
        sqlite_drain(db)


def sqlite_drain(db: sqlite3.Connection) -> None:
    """Inside the caller's transaction: every run named unsearched gets its trigram entry
    as its row now is (none when the row is gone or holds no text)."""
    runs = db.execute(
        "SELECT u.run_id, r.decisions, r.folded FROM run_index_unsearched AS u "
        "LEFT JOIN run_index AS r ON r.run_id = u.run_id"
    ).fetchall()
    if not runs:
        return
    names = [(run,) for run, _, _ in runs]
    db.executemany(
        "DELETE FROM run_index_fts WHERE rowid = "
        "(SELECT id FROM run_index_text WHERE text_run = ?)",
        names,
    )
    db.executemany("DELETE FROM run_index_text WHERE text_run = ?", names)
    for run, decisions, folded in runs:
        if decisions is not None and decisions > 0:
            entry = db.execute("INSERT INTO run_index_text (text_run) VALUES (?)", (run,))
            # FTS5 reads a text only up to a NUL; a needle (which holds none) cannot span
            # one, so a space in its place finds every run the text itself would.
            body = bytes(folded).decode().replace("\x00", " ")
            db.execute(
                "INSERT INTO run_index_fts (rowid, body) VALUES (?, ?)", (entry.lastrowid, body)
            )
    db.execute("DELETE FROM run_index_unsearched")


def sqlite_clear(db: sqlite3.Connection, trigram: bool) -> None:
    """Inside the caller's transaction: every row gone, and what the trigram table held."""
    db.execute("DELETE FROM run_index")
    db.execute("DELETE FROM run_index_unsearched")
    if trigram:
        db.execute("DELETE FROM run_index_text")
        db.execute("DELETE FROM run_index_fts")


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
        #: Whether this index's text filters may use the trigram table (SQLite's, see the
        #: module docstring); PostgreSQL's never do.
        self.trigram = False
        #: How many text filters the trigram table answered (tests, benchmarks).
        self.trigram_answers = 0

    @abc.abstractmethod
    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows ``sql`` returns, as the table is now."""

    @abc.abstractmethod
    def _catch_up(self) -> None:
        """Bring the table's rows up to date with the store's heads (decisions stay pending:
        each query reads those it needs, :meth:`_fill`)."""

    @abc.abstractmethod
    def _store_fills(self, fills: list[tuple[Any, ...]]) -> None:
        """Write :func:`text_fill` values (the parameters of :data:`SQLITE_FILL`, in its
        order) in one transaction."""

    def _settle(self) -> None:
        """Before a text filter that may use the trigram table: runs other processes left
        unsearched get their entries (an index with a trigram table overrides this)."""

    def _source(self, where: RunFilter) -> tuple[str, list[Any]]:
        """What a query of ``where`` reads from: ``run_index``, or its rows whose run the
        trigram table finds the needle in (and those still unsearched), when few."""
        needle = (where.text or "").casefold()
        if not self.trigram or len(needle) < 3 or "\x00" in needle:
            return "run_index", []
        self._settle()
        match = '"' + needle.replace('"', '""') + '"'  # a phrase: the needle's trigrams in a row
        found = self._query(_HOW_MANY, (match, SPARSE))[0][0]
        if int(found) >= SPARSE:
            return "run_index", []
        self.trigram_answers += 1
        return _CANDIDATES, [match]

    def _fill(self, pending: Sequence[tuple[Any, ...]]) -> None:
        """Read and store the decisions of the ``(run id, root hash)`` rows ``pending``."""
        self._store_fills([text_fill(self.store, str(run), str(root)) for run, root in pending])

    def _fill_matching(self, where: RunFilter) -> None:
        """Read the decisions of every pending row matching ``where`` but for its text."""
        cond, args = self._where(dataclasses.replace(where, text=None), None)
        sql = f"SELECT run_id, root_hash FROM run_index WHERE {cond} AND {PENDING} LIMIT "
        while pending := self._query(sql + str(FILL_CHUNK), args):
            # A head rewritten meanwhile keeps its row pending (the fill names the old root):
            # the next round reads it under its new root, so this ends.
            self._fill(pending)

    def warm(self) -> None:
        self._catch_up()
        self._fill_matching(RunFilter())  # every pending row: what a first text filter reads
        if self.trigram:
            self._settle()

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

    def _indexed(self, row: tuple[Any, ...]) -> IndexedRun:
        run_id, pipeline, status, seed, started, finished, root, thread, turn, lineage = row[:10]
        decisions, text = row[10], row[11]
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
        if where.text:
            self._fill_matching(where)
        source, args = self._source(where)
        cond, where_args = self._where(where, start)
        args += where_args
        sql = (
            f"SELECT {_SELECT} FROM {source} WHERE {cond} "
            f"ORDER BY started_at DESC, run_id DESC LIMIT {limit + 1}"
        )
        while True:
            rows = self._query(sql, args)
            pending = [(row[0], row[6]) for row in rows if row[10] is None]
            if not pending:
                break
            # Only the rows this page shows are read; one whose records cannot be read drops
            # out of the list, so ask again (each round fills at least one row: this ends).
            self._fill(pending)
        runs = [self._indexed(row) for row in rows]
        more = len(runs) > limit
        runs = runs[:limit]
        return RunPage(runs, encode_cursor(runs[-1]) if more else None)

    def count(self, where: RunFilter) -> int:
        self._catch_up()
        self._fill_matching(where)  # a run whose records cannot be read is not counted
        source, args = self._source(where)
        cond, where_args = self._where(where, None)
        sql = f"SELECT count(*) FROM {source} WHERE {cond}"
        return int(self._query(sql, args + where_args)[0][0])

    def pipelines(self) -> list[str]:
        self._catch_up()
        m = self.mark
        # Each pipeline name once, by a walk down the pipeline index (a look-up per name, not
        # a pass over every row: the runs page asks on every request).
        names = self._query(
            "WITH RECURSIVE p(name) AS (SELECT min(pipeline) FROM run_index "
            "UNION ALL SELECT (SELECT min(pipeline) FROM run_index WHERE pipeline > p.name) "
            "FROM p WHERE p.name IS NOT NULL) SELECT name FROM p WHERE name IS NOT NULL",
            (),
        )
        first = (
            f"SELECT run_id, root_hash, decisions FROM run_index WHERE pipeline = {m} "
            f"AND {_LISTED} LIMIT 1"
        )
        listed = []
        for (name,) in names:
            # Listed when a run of it reads; a pending run is read first, and one that
            # cannot be read drops out, so the next is tried.
            while row := self._query(first, (name,)):
                run_id, root, decisions = row[0]
                if decisions is not None:
                    listed.append(str(name))
                    break
                self._fill([(run_id, root)])
        return sorted(listed)
