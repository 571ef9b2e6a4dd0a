"""The runs indexes the stores keep agree with the scan of every head (traces._runindex's
ScanIndex, the reference): random populations (statuses, pipelines, seeds, start times with
ties, decision texts in any script), random filters, page sizes and cursors; for the
directory, SQLite and PostgreSQL stores. Then what only an index can get wrong: a directory
store's journal torn or missing, its sidecar corrupt or gone, a head renamed by a writer that
died before its journal line, a store made before the index, stores this process may only
read (whose index must live in memory, writing nothing)."""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_server import REQUIRE_ENV, postgres_server

from traces import DirectoryStore, RunFilter, SQLiteStore, list_runs
from traces._dirindex import DirectoryRunIndex
from traces._runindex import ScanIndex, rebuild_index
from traces._store import ArtifactStore
from traces.conformance import (
    RunSpec,
    assert_index_agrees,
    sample_filters,
    sample_specs,
    write_run,
)

WORDS = ["escalated", "ESCALATED", "small", "large", "Straße", "σ", "agree", "\x00nul"]
STARTS = [1_700_000_000.0 + d for d in (0.0, 0.5, 1.0, 1.0, 2.25, 3.0)]

decisions = st.lists(
    st.tuples(
        st.sampled_from(["acar", "tcar", "cascade"]),
        st.lists(st.sampled_from(WORDS[2:5]), min_size=1, max_size=2).map(tuple),
        st.one_of(st.sampled_from(WORDS), st.text(max_size=12)),
    ),
    max_size=3,
).map(tuple)


@st.composite
def populations(draw: st.DrawFn) -> list[RunSpec]:
    n = draw(st.integers(0, 14))
    specs = []
    for i in range(n):
        status = draw(st.sampled_from(["running", "ok", "failed", "cancelled", "superseded"]))
        specs.append(
            RunSpec(
                run_id=f"r{draw(st.integers(0, 99)):02d}-{i}",
                pipeline=draw(st.sampled_from(["alpha", "beta", "Gamma"])),
                status=status,
                seed=draw(st.integers(0, 2)),
                started_at=draw(st.sampled_from(STARTS)),
                decisions=None if status == "running" else draw(decisions),
            )
        )
    return specs


filters = st.builds(
    RunFilter,
    pipeline=st.none() | st.sampled_from(["alpha", "beta", "gamma"]),
    status=st.none() | st.sampled_from(["running", "ok", "failed"]),
    seed=st.none() | st.integers(0, 2),
    started_from=st.none() | st.sampled_from(STARTS),
    started_before=st.none() | st.sampled_from(STARTS),
    text=st.none()
    | st.sampled_from(["", *WORDS, "STRASSE", "ß", "acar: large", "Σ"])
    | st.text(max_size=3),
)


def _dir(tmp: Path) -> ArtifactStore:
    return DirectoryStore(tmp / "store")


def _sqlite(tmp: Path) -> ArtifactStore:
    return SQLiteStore(tmp / "store.db")


STORES: dict[str, Callable[[Path], ArtifactStore]] = {"directory": _dir, "sqlite": _sqlite}


def check_population(
    make: Callable[[], ArtifactStore], specs: list[RunSpec], wheres: list[RunFilter]
) -> None:
    store = make()
    try:
        for spec in specs:
            write_run(store, spec)
        assert_index_agrees(store, wheres, limits=(1, 2, 5))
    finally:
        store.close()


@pytest.mark.parametrize("kind", sorted(STORES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=populations(), wheres=st.lists(filters, min_size=1, max_size=4))
def test_every_index_agrees_with_the_scan(
    kind: str,
    specs: list[RunSpec],
    wheres: list[RunFilter],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp(kind)
    check_population(lambda: STORES[kind](tmp), specs, wheres)


# -- PostgreSQL (skipped without a server, unless ORCH_REQUIRE_POSTGRES=1) ---------------------


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    if os.environ.get(REQUIRE_ENV) != "1":
        pytest.importorskip("psycopg")

    with postgres_server() as dsn:
        yield dsn


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(specs=populations(), wheres=st.lists(filters, min_size=1, max_size=3))
def test_the_postgres_index_agrees_with_the_scan(
    pg_dsn: str, specs: list[RunSpec], wheres: list[RunFilter]
) -> None:
    from traces.pgstore import PostgresStore

    schema = f"idx_{secrets.token_hex(6)}"
    check_population(lambda: PostgresStore(pg_dsn, schema=schema), specs, wheres)


# -- the directory store's journal and sidecar -----------------------------------------------


def populated(tmp: Path, n: int = 30) -> tuple[DirectoryStore, list[RunSpec]]:
    store = DirectoryStore(tmp / "store")
    specs = sample_specs(3, n)
    for spec in specs:
        write_run(store, spec)
    return store, specs


def test_a_torn_journal_line_rebuilds_and_a_missing_sidecar_is_remade(tmp_path: Path) -> None:
    store, _ = populated(tmp_path)
    assert_index_agrees(store, sample_filters())
    index = store.root / "index"
    with open(index / "changes.log", "ab") as f:
        f.write(b"ru")  # a machine crash mid-line; the next writer's line follows it
    write_run(store, RunSpec("late", "alpha", "ok", 1, 1_800_000_000.0, (("acar", ("x",), "y"),)))
    assert list_runs(store, limit=1).runs[0].run_id == "late"
    assert_index_agrees(store, sample_filters())
    store.close()
    (index / "runs.sqlite").unlink()
    store = DirectoryStore(tmp_path / "store")
    assert_index_agrees(store, sample_filters())
    store.close()


def test_a_corrupt_sidecar_or_an_old_store_is_rebuilt_from_the_heads(tmp_path: Path) -> None:
    store, _ = populated(tmp_path)
    want = [r.run_id for r in ScanIndex(store).page(RunFilter(), limit=500).runs]
    store.close()
    (tmp_path / "store" / "index" / "runs.sqlite").write_bytes(b"not a database" * 100)
    store = DirectoryStore(tmp_path / "store")
    assert [r.run_id for r in list_runs(store, limit=500).runs] == want
    store.close()
    # A store made before the index: no index/ at all.
    for f in (tmp_path / "store" / "index").iterdir():
        f.unlink()
    (tmp_path / "store" / "index").rmdir()
    store = DirectoryStore(tmp_path / "store", create=False)
    assert [r.run_id for r in list_runs(store, limit=500).runs] == want
    assert rebuild_index(store) == len(want)
    store.close()


def test_a_head_renamed_without_its_journal_line_is_found_while_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, specs = populated(tmp_path)
    running = next(s for s in specs if s.status == "running")
    assert list_runs(store, RunFilter(status="running"), limit=500).runs
    # The writer died between the head's rename and its journal line.
    monkeypatch.setattr(store._journal, "note", lambda run_id: None)
    write_run(
        store,
        RunSpec(
            running.run_id,
            running.pipeline,
            "ok",
            running.seed,
            running.started_at,
            (("acar", ("large",), "escalated late"),),
        ),
    )
    monkeypatch.setattr("traces._dirindex.RECHECK", 0.0)
    found = list_runs(store, RunFilter(text="escalated late")).runs
    assert [r.run_id for r in found] == [running.run_id]
    assert_index_agrees(store, sample_filters())
    store.close()


def test_a_read_only_directory_store_indexes_in_memory_and_writes_nothing(
    tmp_path: Path,
) -> None:
    store, _ = populated(tmp_path)
    assert_index_agrees(store, sample_filters())  # a sidecar to copy
    write_run(store, RunSpec("after", "beta", "ok", 0, 1_800_000_000.0, (("tcar", ("a",), "b"),)))
    store.close()
    before = snapshot(tmp_path / "store")
    reader = DirectoryStore(tmp_path / "store", create=False)
    reader.read_only = True  # as os.access says for an auditor's read-only copy
    index = reader.run_index()
    assert isinstance(index, DirectoryRunIndex)
    assert_index_agrees(reader, sample_filters())
    assert list_runs(reader, limit=1).runs[0].run_id == "after"  # caught up from the journal
    reader.close()
    assert snapshot(tmp_path / "store") == before


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- the SQLite store ----------------------------------------------------------------------


def test_a_sqlite_file_made_before_the_index_is_indexed_on_first_use(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    for spec in sample_specs(5, 25):
        write_run(store, spec)
    store.close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.executescript("DROP TABLE run_index; DROP TABLE run_index_meta;")
    db.close()
    reader = SQLiteStore(tmp_path / "s.db", read_only=True)
    before = snapshot(tmp_path)
    assert_index_agrees(reader, sample_filters())  # in memory: the file is not written
    reader.close()
    assert snapshot(tmp_path) == before
    store = SQLiteStore(tmp_path / "s.db", create=False)
    assert_index_agrees(store, sample_filters())
    store.close()
    reader = SQLiteStore(tmp_path / "s.db", read_only=True)
    assert_index_agrees(reader, sample_filters())  # a copy of the file's index now
    reader.close()


def test_a_sqlite_head_and_its_row_commit_together(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", commit_delay=0)
    spec = sample_specs(9, 1)[0]
    write_run(store, spec)
    db = sqlite3.connect(tmp_path / "s.db")
    rows = db.execute("SELECT run_id, status FROM run_index").fetchall()
    assert rows == [(spec.run_id, spec.status)]
    store.write_run_head(spec.run_id, b"no head")
    assert db.execute("SELECT count(*) FROM run_index").fetchone() == (0,)
    db.close()
    store.close()
