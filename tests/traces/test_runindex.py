"""Runs lists (traces._runindex): filters, newest-first pages continued by a cursor, and the
text of routing decisions, on the scan that stands in for a store's own index."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from orch import Context, PipelineBuilder, agent, arun
from traces import MemoryStore, RunFilter, list_runs
from traces._runindex import ScanIndex, decode_cursor


class Q(BaseModel):
    x: int


@agent(name="router-ish", version="1")
async def routerish(q: Q, ctx: Context) -> Q:
    escalate = q.x % 3 == 0
    ctx.decide(
        candidates=["small", "large"],
        chosen="large" if escalate else "small",
        reason="sigma 0.5: escalated" if escalate else "all agree",
    )
    return q


@agent(name="boom", version="1")
async def boom(q: Q, ctx: Context) -> Q:
    raise ValueError("no")


async def populated() -> tuple[MemoryStore, list[str]]:
    store = MemoryStore()
    ok = PipelineBuilder("routed")
    ok.node("r", routerish, x=ok.input("x", int))
    bad = PipelineBuilder("broken")
    bad.node("b", boom, x=bad.input("x", int))
    ids = []
    for i in range(9):
        pipeline = (bad if i == 4 else ok).build()
        result = await arun(pipeline, {"x": i}, store=store, seed=i % 2, run_id=f"run-{i}")
        ids.append(result.run_id)
    return store, ids


async def test_filters_match_what_the_heads_and_decisions_say() -> None:
    store, ids = await populated()
    everything = list_runs(store, limit=100)
    assert [r.run_id for r in everything.runs] == sorted(
        ids, key=lambda i: (store_started(store, i), i), reverse=True
    )
    assert everything.next is None
    assert [r.run_id for r in list_runs(store, RunFilter(status="failed")).runs] == ["run-4"]
    escalated = list_runs(store, RunFilter(text="ESCALATED"), limit=100).runs
    assert sorted(r.run_id for r in escalated) == ["run-0", "run-3", "run-6"]
    assert all(r.decisions == 1 and "large" in r.decision_text for r in escalated)
    assert {r.seed for r in list_runs(store, RunFilter(seed=1), limit=100).runs} == {1}
    assert ScanIndex(store).pipelines() == ["broken", "routed"]
    assert ScanIndex(store).count(RunFilter(pipeline="routed")) == 8


def store_started(store: MemoryStore, run_id: str) -> float:
    import orjson

    raw = store.read_run_head(run_id)
    assert raw is not None
    return float(orjson.loads(raw)["started_at"])


async def test_pages_continue_after_their_cursor_without_overlap() -> None:
    store, ids = await populated()
    seen: list[str] = []
    after = None
    while True:
        page = list_runs(store, limit=2, after=after)
        seen += [r.run_id for r in page.runs]
        if page.next is None:
            break
        after = page.next
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert seen == [r.run_id for r in list_runs(store, limit=100).runs]


@pytest.mark.parametrize("cursor", ["", "not a cursor", "W10", "WyJhIiwxXQ"])
def test_a_bad_cursor_or_limit_is_one_clear_error(cursor: str) -> None:
    with pytest.raises(ValueError, match="not a page cursor of a runs list; fix:"):
        decode_cursor(cursor)
    with pytest.raises(ValueError, match="page limit is 0; fix: give 1 to 500"):
        list_runs(MemoryStore(), limit=0)
