"""A ledger view extended with the entries appended since it was read (what ``orch ui``'s
verification badge keeps) is the view a fresh read gives: same tree, entries, runs and
problems; the view it was extended from is left as it was; a ledger that is not the one the
view read (shorter, or with another last entry) is read again whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, agent
from orch._runtime import run
from traces import ArtifactStore, DirectoryStore, LedgerView, SQLiteStore, verify_run


class Num(BaseModel):
    x: int


@agent(name="ledger-view-double", version="1")
async def double(n: Num, ctx: Context) -> Num:
    ctx.decide(candidates=["a", "b"], chosen="a", reason="first", scores={"a": 1.0, "b": 0.0})
    return Num(x=2 * n.x)


def _pipeline() -> Pipeline:
    p = PipelineBuilder("ledger-view")
    x = p.input("x", int)
    a = p.node("a", double, x=x)
    p.output("y", a.field("x"))
    return p.build()


PIPELINE = _pipeline()


@pytest.fixture(params=["dir", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    st: ArtifactStore = (
        DirectoryStore(tmp_path / "store")
        if request.param == "dir"
        else SQLiteStore(tmp_path / "store.db")
    )
    yield st
    st.close()


def _runs(store: ArtifactStore, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        result = run(PIPELINE, {"x": i}, store=store, seed=i)
        assert result.ok
        ids.append(result.run_id)
    return ids


def _fields(view: LedgerView | None) -> tuple[object, ...]:
    assert view is not None
    return (
        view.size,
        view.tree.size,
        view.tree.root(),
        view.entries,
        view.by_run,
        view.store_id,
        view.problems,
        view.started,
        view.complete,
    )


def test_an_extended_view_is_a_fresh_read(store: ArtifactStore) -> None:
    first = _runs(store, 2)
    view = LedgerView.read(store)
    assert view is not None
    before = _fields(view)
    later = _runs(store, 3, start=2)
    extended = view.extended(store)
    assert extended is not None and extended is not view
    assert extended.size > view.size
    assert _fields(extended) == _fields(LedgerView.read(store))
    assert set(extended.by_run) == {*first, *later}
    assert _fields(view) == before  # whoever still holds the old view sees what it read
    assert extended.extended(store) is extended  # nothing appended: the same view
    for run_id in [*first, *later]:
        with_view = verify_run(store, run_id, ledger=extended)
        assert with_view.ok, with_view.problems
        assert with_view == verify_run(store, run_id)


def test_an_unreadable_entry_appended_later_is_a_problem_of_the_extended_view(
    store: ArtifactStore,
) -> None:
    _runs(store, 1)
    view = LedgerView.read(store)
    assert view is not None and not view.problems
    store.ledger_append(b"not a ledger entry")
    extended = view.extended(store)
    assert _fields(extended) == _fields(LedgerView.read(store))
    assert extended is not None and [p[1] for p in extended.problems] == [
        f"ledger entry #{view.size}"
    ]


def test_a_ledger_shorter_or_rewritten_at_its_end_is_read_again(tmp_path: Path) -> None:
    longer, other = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    try:
        _runs(longer, 3)
        _runs(other, 1)
        view = LedgerView.read(longer)
        assert view is not None
        # Shorter: as a store put back to an older copy looks.
        assert _fields(view.extended(other)) == _fields(LedgerView.read(other))
        _runs(other, 2, start=1)
        size = other.ledger_size()
        if size != view.size:  # pad the other ledger to the same length
            assert size < view.size
            for _ in range(view.size - size):
                other.ledger_append(b"padding")
        # Same length, another last entry: not the ledger the view read.
        assert _fields(view.extended(other)) == _fields(LedgerView.read(other))
    finally:
        longer.close()
        other.close()
