"""The text filter of the SQLite-backed runs indexes (the SQLite store's and the directory
store's sidecar): a needle of 3 characters or more is answered from the FTS5 trigram table
(traces._sqlindex), and the answer is still exactly the scan's (RunFilter.matches: a casefold
substring), for texts any script, case folding ('ß' -> 'ss'), NUL and quotes can make; a
common needle, or one of 1-2 characters, walks the rows; a process whose SQLite lacks the
trigram tokenizer (forced here) scans, and the runs it filled are searched again by a process
that has it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traces import DirectoryStore, RunFilter, SQLiteStore
from traces import _sqlindex as sqlindex
from traces._runindex import ScanIndex
from traces._sqlindex import SQLIndex
from traces._store import ArtifactStore
from traces.conformance import RunSpec, assert_index_agrees, sample_specs, write_run

pytestmark = pytest.mark.skipif(
    not sqlindex.TRIGRAM, reason="this SQLite has no FTS5 trigram tokenizer (before 3.34)"
)

TEXTS = [
    "Straße zur Mühle",
    "ΣΊΣΥΦΟΣ rolls",
    "nul\x00inside escalated",
    'said "quoted" words',
    "emoji 😀😀 pair",
    "İstanbul office",
    "ﬁle ligature",
    "tab\there, newline\nthere",
    "zanzibar",
]
NEEDLES = [
    "strasse",
    "STRASSE ZUR",
    "ße z",
    "σίσυφος",
    "inside escalated",
    "nul\x00in",
    '"quoted"',
    'd "q',
    "😀😀 p",
    "i̇stanbul",
    "file",
    "\there",
    "e,\nnew",
    "zanzibar",
    "escalated",
    "no such text",
    "ss",
    "é",
]


def _dir(tmp: Path) -> tuple[ArtifactStore, Path]:
    return DirectoryStore(tmp / "store"), tmp / "store" / "index" / "runs.sqlite"


def _sqlite(tmp: Path) -> tuple[ArtifactStore, Path]:
    return SQLiteStore(tmp / "s.db"), tmp / "s.db"


STORES: dict[str, Callable[[Path], tuple[ArtifactStore, Path]]] = {
    "directory": _dir,
    "sqlite": _sqlite,
}


def populate(store: ArtifactStore) -> None:
    for spec in sample_specs(7, 40):
        write_run(store, spec)
    for i, text in enumerate(TEXTS):
        write_run(
            store,
            RunSpec(
                f"tricky-{i}", "alpha", "ok", i % 3, 1_700_000_005.0 + i, (("acar", ("x",), text),)
            ),
        )


def wheres() -> list[RunFilter]:
    out = [RunFilter(text=n) for n in NEEDLES]
    out += [RunFilter(text="escalated", status="ok"), RunFilter(text="strasse", seed=0)]
    out += [RunFilter(text="agree", pipeline="beta", started_from=1_700_000_010.0)]
    return out


def index_of(store: ArtifactStore) -> SQLIndex:
    index = store.run_index()
    assert isinstance(index, SQLIndex)
    return index


def count(db_file: Path, table: str) -> int:
    db = sqlite3.connect(db_file)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("kind", sorted(STORES))
def test_a_needle_of_three_characters_is_answered_by_the_trigram_table(
    kind: str, tmp_path: Path
) -> None:
    store, db_file = STORES[kind](tmp_path)
    try:
        populate(store)
        index = index_of(store)
        assert index.trigram
        assert_index_agrees(store, wheres(), limits=(1, 3, 50))
        # Every ranked query of >= 3 folded characters without NUL took the trigram path
        # (count and pages), the others none.
        searched = [w for w in wheres() if len(w.text or "") >= 3 and "\x00" not in (w.text or "")]
        before = index.trigram_answers
        for where in searched:
            index.page(where, limit=50)
        assert index.trigram_answers - before == len(searched)
        for where in (RunFilter(text="ss"), RunFilter(text="nul\x00in"), RunFilter()):
            index.page(where)
        assert index.trigram_answers - before == len(searched)
        # The trigram table holds every run with decisions, nothing is left unsearched.
        runs = ScanIndex(store).page(RunFilter(), limit=500).runs
        assert count(db_file, "run_index_fts") == sum(1 for r in runs if r.decisions > 0)
        assert count(db_file, "run_index_unsearched") == 0
    finally:
        store.close()


@pytest.mark.parametrize("kind", sorted(STORES))
def test_a_common_needle_walks_the_rows_and_agrees(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlindex, "SPARSE", 2)
    store, _ = STORES[kind](tmp_path)
    try:
        populate(store)
        index = index_of(store)
        index.page(RunFilter(text="escalated"))  # fills every run
        before = index.trigram_answers
        index.page(RunFilter(text="escalated"))  # in many runs: walks the rows
        assert index.trigram_answers == before
        index.page(RunFilter(text="zanzibar"))  # in one: the trigram table
        assert index.trigram_answers == before + 1
        assert_index_agrees(store, wheres(), limits=(1, 3))
    finally:
        store.close()


@pytest.mark.parametrize("kind", sorted(STORES))
def test_without_the_trigram_tokenizer_the_scan_answers_and_a_later_process_catches_up(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlindex, "TRIGRAM", False)
    store, db_file = STORES[kind](tmp_path)
    try:
        populate(store)
        index = index_of(store)
        assert not index.trigram
        assert_index_agrees(store, wheres(), limits=(1, 50))
        assert index.trigram_answers == 0
        unsearched = count(db_file, "run_index_unsearched")
        assert unsearched > 0  # the runs it filled, for a process with the tokenizer
    finally:
        store.close()
    monkeypatch.setattr(sqlindex, "TRIGRAM", True)
    store, db_file = STORES[kind](tmp_path)
    try:
        index = index_of(store)
        assert_index_agrees(store, wheres(), limits=(1, 50))
        assert index.trigram_answers > 0
        assert count(db_file, "run_index_unsearched") == 0
        # A run rewritten and one deleted: the trigram table follows.
        write_run(
            store,
            RunSpec(
                "tricky-0",
                "alpha",
                "ok",
                0,
                1_700_000_005.0,
                (("acar", ("x",), "now zanzibar too"),),
            ),
        )
        store.write_run_head("tricky-8", b"not a head")
        assert_index_agrees(store, wheres(), limits=(50,))
    finally:
        store.close()


@pytest.mark.parametrize("kind", sorted(STORES))
def test_a_read_only_store_searches_its_copy(kind: str, tmp_path: Path) -> None:
    store, _ = STORES[kind](tmp_path)
    populate(store)
    assert_index_agrees(store, wheres()[:4], limits=(50,))
    store.close()
    reader: ArtifactStore
    if kind == "sqlite":
        reader = SQLiteStore(tmp_path / "s.db", read_only=True)
    else:
        reader = DirectoryStore(tmp_path / "store", create=False)
        reader.read_only = True
    try:
        index = index_of(reader)
        assert_index_agrees(reader, wheres(), limits=(1, 50))
        assert index.trigram_answers > 0
    finally:
        reader.close()


texts = st.text(st.characters(codec="utf-8"), max_size=16)


@pytest.mark.parametrize("kind", sorted(STORES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reasons=st.lists(texts, min_size=1, max_size=6), data=st.data())
def test_any_needle_agrees_with_the_scan(
    kind: str,
    reasons: list[str],
    data: st.DataObject,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Needles cut from the texts (in another case) or drawn afresh, 3 characters or more.
    cuts = []
    for reason in reasons:
        i = data.draw(st.integers(0, len(reason)))
        j = data.draw(st.integers(i, len(reason)))
        cuts.append(data.draw(st.sampled_from([str.upper, str.lower, str.casefold]))(reason[i:j]))
    fresh = data.draw(st.lists(st.text(min_size=3, max_size=5), max_size=2))
    needles = [n for n in [*cuts, *fresh] if len(n.casefold()) >= 3]
    store, _ = STORES[kind](tmp_path_factory.mktemp(kind))
    try:
        for i, reason in enumerate(reasons):
            spec = RunSpec(
                f"r-{i}", "alpha", "ok", 0, 1_700_000_000.0 + i % 3, (("acar", ("x",), reason),)
            )
            write_run(store, spec)
        assert_index_agrees(store, [RunFilter(text=n) for n in needles], limits=(2, 50))
    finally:
        store.close()
