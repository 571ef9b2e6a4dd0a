"""What a store-kept runs index reads of the runs' decisions, and when: a page without a text
filter reads only the runs it shows (a batch that just wrote thousands of runs costs the first
page its own rows, not the batch); a text filter reads every run it may match; runs whose
records cannot be read drop out of pages, counts and pipelines exactly as they drop out of
the scan (traces._runindex.ScanIndex), even while their decisions are still unread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from traces import DirectoryStore, RunFilter, RunHead, SQLiteStore, digest, list_runs
from traces._store import ArtifactStore
from traces.conformance import (
    RunSpec,
    assert_index_agrees,
    sample_filters,
    sample_specs,
    write_run,
)


def _sqlite(tmp: Path) -> tuple[ArtifactStore, Path]:
    return SQLiteStore(tmp / "s.db"), tmp / "s.db"


def _dir(tmp: Path) -> tuple[ArtifactStore, Path]:
    return DirectoryStore(tmp / "store"), tmp / "store" / "index" / "runs.sqlite"


STORES: dict[str, Callable[[Path], tuple[ArtifactStore, Path]]] = {
    "sqlite": _sqlite,
    "directory": _dir,
}


def _pending(db_file: Path) -> int:
    db = sqlite3.connect(db_file)
    try:
        return int(
            db.execute("SELECT count(*) FROM run_index WHERE decisions IS NULL").fetchone()[0]
        )
    finally:
        db.close()


@pytest.mark.parametrize("kind", sorted(STORES))
def test_a_page_reads_only_the_decisions_it_shows(kind: str, tmp_path: Path) -> None:
    store, db_file = STORES[kind](tmp_path)
    try:
        specs = sample_specs(11, 60)
        for spec in specs:
            write_run(store, spec)
        ended = sum(1 for s in specs if s.decisions is not None)
        page = list_runs(store, limit=5)
        assert len(page.runs) == 5
        shown = sum(1 for r in page.runs if r.root_hash is not None)
        # The page's rows, and the one past them that says whether a next page exists.
        assert ended - 6 <= _pending(db_file) <= ended - shown
        list_runs(store, RunFilter(text="escalated"), limit=5)
        assert _pending(db_file) == 0
    finally:
        store.close()


def _unreadable(store: ArtifactStore, run_id: str, pipeline: str, started_at: float) -> None:
    """A head naming a record the store does not hold (a run the list must leave out)."""
    head = RunHead(
        run_id=run_id,
        pipeline=pipeline,
        spec_hash=digest(pipeline.encode()),
        seed=1,
        status="ok",
        root_hash=digest(f"no record of {run_id}".encode()),
        started_at=started_at,
        finished_at=started_at + 1.0,
    )
    store.write_run_head(run_id, head.to_bytes())


@pytest.mark.parametrize("kind", sorted(STORES))
def test_unreadable_runs_drop_out_while_their_decisions_are_unread(
    kind: str, tmp_path: Path
) -> None:
    store, _ = STORES[kind](tmp_path)
    try:
        for spec in sample_specs(5, 20):
            write_run(store, spec)
        # The newest runs (every first page holds them) and a pipeline with no readable run.
        for i in range(4):
            _unreadable(store, f"zz-broken-{i}", "alpha", 1_800_000_000.0 + i)
        _unreadable(store, "zz-ghost", "ghost", 1_800_000_010.0)
        write_run(store, RunSpec("zz-last", "beta", "ok", 2, 1_800_000_020.0, ()))
        shown = [r.run_id for r in list_runs(store, limit=5).runs]
        assert shown[0] == "zz-last" and not any(r.startswith("zz-") for r in shown[1:])
        assert_index_agrees(store, [*sample_filters(), RunFilter(pipeline="ghost")], (1, 2, 5))
    finally:
        store.close()
