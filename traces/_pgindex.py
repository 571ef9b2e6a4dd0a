"""The runs index of the PostgreSQL store: the ``run_index`` table in the store's schema.

A head's row is written by the statement that writes the head (a data-modifying ``WITH``: one
statement, one transaction), so the two never disagree. A schema made before the index gets
the empty table from the next process that opens it, and the rows of every head on the first
query (:meth:`PostgresRunIndex._catch_up`: in one transaction holding a ``SHARE`` lock on
``run_heads``, so that no head is written meanwhile); ``run_index_meta`` says when that is done.
Decisions are read by the queries that need them (:mod:`traces._sqlindex`).

Texts are ``bytea`` (UTF-8): PostgreSQL's ``text`` cannot hold NUL, which a decision's reason
may. Run ids and pipelines sort in the ``C`` collation, code point order, as Python's do. A
head whose pipeline, thread or lineage holds a NUL gets no row (it would not fit), and is
missing from the lists; nothing else is refused.

A user who may read the store but not write ``run_index`` (an auditor with ``SELECT`` only)
cannot fill decision texts or build the index: the first refusal turns this index object into
the scan of every head (:class:`~traces._runindex.ScanIndex`), with a notice saying so and the
grant that makes it fast. Listing is then slow on a big store, never refused.

This module never writes the store's records or heads, only ``run_index`` and its meta row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._notices import notice
from ._runindex import RunFilter, RunIndex, RunPage, ScanIndex
from ._sqlindex import FORMAT, SQLIndex, head_row, upsert_sql
from .errors import StoreError

if TYPE_CHECKING:
    from .pgstore import PostgresStore

__all__ = ["PG_INDEX_DDL", "PG_INDEX_SQL", "PostgresRunIndex", "pg_row"]

log = logging.getLogger("traces.pgstore")
_T = TypeVar("_T")


def _refused(exc: StoreError) -> bool:
    """Whether ``exc`` is the server refusing this user a write (not a lost connection)."""
    import psycopg

    return isinstance(exc.__cause__, psycopg.errors.InsufficientPrivilege)


PG_INDEX_DDL = """
CREATE TABLE IF NOT EXISTS {s}.run_index (
    run_id text COLLATE "C" PRIMARY KEY,
    pipeline text COLLATE "C" NOT NULL,
    status text NOT NULL,
    seed numeric NOT NULL,
    started_at double precision NOT NULL,
    finished_at double precision,
    root_hash text,
    thread text,
    turn bigint,
    lineage text,
    stamp text,
    decisions bigint,
    decision_text bytea,
    folded bytea,
    text_of text
);
CREATE INDEX IF NOT EXISTS run_index_order ON {s}.run_index (started_at, run_id);
CREATE INDEX IF NOT EXISTS run_index_status ON {s}.run_index (status, started_at, run_id);
CREATE INDEX IF NOT EXISTS run_index_pipeline ON {s}.run_index (pipeline, started_at, run_id);
CREATE INDEX IF NOT EXISTS run_index_seed ON {s}.run_index (seed, started_at, run_id);
CREATE INDEX IF NOT EXISTS run_index_pending ON {s}.run_index (run_id) WHERE decisions IS NULL;
CREATE TABLE IF NOT EXISTS {s}.run_index_meta (key text PRIMARY KEY, value text NOT NULL);
"""

_UPSERT = upsert_sql("{s}.run_index AS r", "r", "%s", "IS NOT DISTINCT FROM")
_WRITE_HEAD = (
    "WITH h AS (INSERT INTO {s}.run_heads (run_id, data) VALUES (%s, %s) "
    "ON CONFLICT (run_id) DO UPDATE SET data = excluded.data) "
)
# Statements, with {s} for the quoted schema name (formatted by the store).
PG_INDEX_SQL = {
    "write_head_indexed": _WRITE_HEAD + _UPSERT,
    "write_head_unindexed": _WRITE_HEAD + "DELETE FROM {s}.run_index WHERE run_id = %s",
    "index_upsert": _UPSERT,
    "index_clear": "DELETE FROM {s}.run_index",
    "index_format": "SELECT value FROM {s}.run_index_meta WHERE key = 'format'",
    "index_set_format": (
        "INSERT INTO {s}.run_index_meta (key, value) VALUES ('format', %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    ),
    "index_lock_heads": "LOCK TABLE {s}.run_heads IN SHARE MODE",
    "index_heads": "SELECT run_id, data FROM {s}.run_heads",
    "index_fill": (
        "UPDATE {s}.run_index SET decisions = %s, decision_text = %s, folded = %s, "
        "text_of = %s WHERE run_id = %s AND root_hash = %s"
    ),
}


def pg_row(run_id: str, data: bytes) -> tuple[Any, ...] | None:
    """The index row of a head for PostgreSQL, or None (no row: see the module docstring)."""
    row = head_row(run_id, data)
    if row is None or any("\x00" in v for v in (row[1], row[7], row[9]) if v is not None):
        return None
    return (*row[:12], None if row[12] is None else row[12].encode(), *row[13:])


class PostgresRunIndex(SQLIndex):
    """The index of a :class:`~traces.pgstore.PostgresStore`, on the store's connection."""

    mark = "%s"
    contains = "position(%s::bytea in folded) > 0"

    def __init__(self, store: PostgresStore) -> None:
        super().__init__(store)
        self._pg = store
        self._built = False
        self._scan: RunIndex | None = None
        """The scan this index turned into, once the user was refused a write (see above)."""

    def _or_scan(self, ask: Callable[[RunIndex], _T]) -> _T:
        if self._scan is None:
            try:
                return ask(super())  # type: ignore[arg-type]
            except StoreError as exc:
                if not _refused(exc):
                    raise
                notice(
                    log,
                    "PostgreSQL store %s: this user may not write the runs index (%s), so runs "
                    "lists read every head instead (slow on a big store); fix: grant INSERT, "
                    "UPDATE and DELETE on %s.run_index and %s.run_index_meta",
                    self._pg.location,
                    type(exc.__cause__).__name__,
                    self._pg.schema,
                    self._pg.schema,
                )
                self._scan = ScanIndex(self._pg)
        return ask(self._scan)

    def page(self, where: RunFilter, *, limit: int = 50, after: str | None = None) -> RunPage:
        return self._or_scan(lambda index: index.page(where, limit=limit, after=after))

    def count(self, where: RunFilter) -> int:
        return self._or_scan(lambda index: index.count(where))

    def pipelines(self) -> list[str]:
        return self._or_scan(lambda index: index.pipelines())

    def warm(self) -> None:
        self._or_scan(lambda index: index.warm())

    def _seed(self, seed: int) -> object:
        return seed

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        sql = sql.replace("FROM run_index ", f"FROM {self._pg._q}.run_index ")
        rows = self._pg._call("read the runs index", lambda c: c.execute(sql, args).fetchall())
        return [_decoded(r) for r in rows]

    def _build(self, *, again: bool = False) -> None:
        sql = self._pg._sql

        def build(conn: Any) -> None:
            with conn.transaction():
                conn.execute(sql["index_lock_heads"])  # no head written until this commits
                found = conn.execute(sql["index_format"]).fetchone()
                if not again and found is not None and found[0] == FORMAT:
                    return
                conn.execute(sql["index_clear"])
                rows = []
                for run_id, data in conn.execute(sql["index_heads"], binary=True).fetchall():
                    row = pg_row(str(run_id), bytes(data))
                    if row is not None:
                        rows.append(row)
                conn.cursor().executemany(sql["index_upsert"], rows)
                conn.execute(sql["index_set_format"], (FORMAT,))

        self._pg._call("build the runs index", build)
        self._built = True

    def _catch_up(self) -> None:
        sql = self._pg._sql
        if not self._built:
            row = self._pg._call(
                "read the runs index", lambda c: c.execute(sql["index_format"]).fetchone()
            )
            if row is not None and row[0] == FORMAT:
                self._built = True
            else:
                self._build()

    def _store_fills(self, fills: list[tuple[Any, ...]]) -> None:
        sql = self._pg._sql
        rows = [(n, text.encode(), *rest) for n, text, *rest in fills]  # bytea: see above

        def fill(conn: Any) -> None:
            with conn.transaction():
                conn.cursor().executemany(sql["index_fill"], rows)

        self._pg._call("fill the runs index", fill)

    def rebuild(self) -> None:
        self._build(again=True)
        self._catch_up()


def _decoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A selected row with its bytea text as str (a page's rows; counts pass through)."""
    if len(row) < 12 or row[11] is None:
        return tuple(row)
    return (*row[:11], bytes(row[11]).decode())
