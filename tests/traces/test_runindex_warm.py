"""RunIndex.warm: the one-off work of a store's first queries (catching up with the heads,
reading every run's decisions for text search) done ahead, on the directory store's sidecar
and the SQLite store; it changes no answer, and a query after it reads no record."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from test_runindex_text import STORES, populate, wheres

from traces import MemoryStore, RunFilter
from traces import _sqlindex as sqlindex
from traces._runindex import ScanIndex
from traces.conformance import assert_index_agrees, sample_specs, write_run


def _pending(db_file: Path) -> int:
    db = sqlite3.connect(db_file)
    try:
        return int(
            db.execute(f"SELECT count(*) FROM run_index WHERE {sqlindex.PENDING}").fetchone()[0]
        )
    finally:
        db.close()


@pytest.mark.parametrize("kind", sorted(STORES))
def test_warm_reads_every_decision_once_and_changes_no_answer(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, db_file = STORES[kind](tmp_path)
    try:
        populate(store)
        index = store.run_index()
        assert index is not None
        index.page(RunFilter(), limit=1)  # a page reads only its own rows' decisions
        assert _pending(db_file) > 0
        index.warm()
        assert _pending(db_file) == 0
        # Heads written after it are caught up (and read) by the next warm, as by a query.
        for spec in sample_specs(3, 5):
            write_run(store, dataclasses.replace(spec, run_id=f"late-{spec.run_id}"))
        index.warm()
        assert _pending(db_file) == 0
        # After it, no text filter reads a record: every decision is in the index already.
        reads: list[str] = []
        monkeypatch.setattr(sqlindex, "read_decisions", lambda *a: reads.append("x") or [])
        for where in wheres():
            index.page(where, limit=50)
            index.count(where)
        assert reads == []
        monkeypatch.undo()
        assert_index_agrees(store, wheres(), limits=(1, 50))
    finally:
        store.close()


def test_an_index_that_keeps_nothing_warms_to_nothing() -> None:
    store = MemoryStore()
    ScanIndex(store).warm()  # the default: no work, no error
    assert store.run_index() is None
