"""``verify_store``'s progress hook: per phase its counts rise from 0 and end at the phase's
total, it is called at a bounded rate (not once per artifact), the report is the same with
it or without (an intact store and a tampered one), and an exception it raises stops the
verification (how ``orch ui`` stops one when it shuts down).

The stores hold real runs recorded by the engine, many enough that the strides matter (more
than 256 artifacts, more than 16 runs).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, agent
from orch._runtime import run
from traces import ArtifactStore, DirectoryStore, MemoryStore, SQLiteStore, verify_store
from traces._verify import PROGRESS_EVERY

RUNS = 40


class Num(BaseModel):
    x: int


@agent(name="progress-square", version="1")
async def square(n: Num, ctx: Context) -> Num:
    return Num(x=n.x * n.x)


@agent(name="progress-fan", version="1")
async def fan(n: Num, ctx: Context) -> Num:
    outs = [
        Num.model_validate(o) for o in await ctx.map(square, [Num(x=n.x + i) for i in range(3)])
    ]
    return max(outs, key=lambda o: o.x)


def _pipeline() -> Pipeline:
    p = PipelineBuilder("progress-demo")
    a = p.node("a", fan, x=p.input("x", int))
    p.output("result", p.node("b", square, x=a.field("x")).field("x"))
    return p.build()


@pytest.fixture(params=["memory", "directory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    made: ArtifactStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "directory":
        made = DirectoryStore(tmp_path / "dir")
    else:
        made = SQLiteStore(tmp_path / "s.db")
    pipeline = _pipeline()
    for i in range(RUNS):
        assert run(pipeline, {"x": i}, store=made, seed=1).ok
    made.flush()
    yield made
    made.close()


Call = tuple[str, int, int | None]


def verify_watched(store: ArtifactStore) -> tuple[list[Call], dict[str, object]]:
    calls: list[Call] = []
    report = verify_store(store, progress=lambda *call: calls.append(call))
    return calls, report.model_dump(mode="json")


def by_phase(calls: list[Call]) -> dict[str, list[Call]]:
    phases: dict[str, list[Call]] = {}
    for call in calls:
        phases.setdefault(call[0], []).append(call)
    return phases


def test_counts_rise_per_phase_and_end_at_the_totals(store: ArtifactStore) -> None:
    calls, report = verify_watched(store)
    phases = by_phase(calls)
    assert list(phases) == ["artifacts", "ledger", "runs"]
    # One phase after another: a phase's calls are contiguous.
    assert [c[0] for c in calls] == [p for p, cs in phases.items() for _ in cs]
    checked = report["checked"]
    assert isinstance(checked, dict)
    totals = {
        "artifacts": len(list(store.keys())),
        "ledger": checked.get("ledger entries", 0),
        "runs": len(store.run_ids()),
    }
    assert totals["artifacts"] > PROGRESS_EVERY["artifacts"]
    assert totals["runs"] == RUNS > PROGRESS_EVERY["runs"]
    for phase, seen in phases.items():
        done = [c[1] for c in seen]
        assert done[0] == 0 and done == sorted(done), phase
        assert seen[-1][1:] == (totals[phase], totals[phase]), phase
        for _, d, total in seen:
            assert total is None or d <= total, phase
    # Stores list their keys whole: the artifact count is known from the first call.
    assert phases["artifacts"][0] == ("artifacts", 0, totals["artifacts"])
    assert phases["runs"][0] == ("runs", 0, RUNS)
    assert checked["artifacts"] == totals["artifacts"] and checked["runs"] == RUNS


def test_the_rate_is_bounded(store: ArtifactStore) -> None:
    calls, _ = verify_watched(store)
    phases = by_phase(calls)
    for phase, every in PROGRESS_EVERY.items():
        seen = phases[phase]
        total = seen[-1][2]
        assert total is not None
        # The start, the end, and one call per stride between them.
        assert len(seen) <= total // every + 2, phase
        steps = [b[1] - a[1] for a, b in itertools.pairwise(seen)]
        assert all(s == every for s in steps[:-1]), (phase, steps)
        assert len(seen) >= 3, phase  # more items than one stride: a call between


def test_the_report_is_the_same_with_the_hook_or_without(store: ArtifactStore) -> None:
    _, watched = verify_watched(store)
    assert watched == verify_store(store).model_dump(mode="json")
    assert watched["problems"] == []


def test_a_tampered_store_reports_the_same_with_the_hook() -> None:
    store = MemoryStore()
    pipeline = _pipeline()
    ids = [run(pipeline, {"x": i}, store=store, seed=1).run_id for i in range(20)]
    victim = sorted(store.keys())[5]
    store._tamper(victim, b'{"x": 999}')
    lines = store.read_events(ids[3])
    event = orjson.loads(lines[1])
    event["data"] = {"edited": True}
    store._tamper_event(ids[3], 1, orjson.dumps(event))
    plain = verify_store(store).model_dump(mode="json")
    calls, watched = verify_watched(store)
    assert watched == plain
    assert len(plain["problems"]) >= 2
    subjects = " ".join(p["subject"] for p in plain["problems"])
    assert victim in subjects and ids[3] in subjects
    assert by_phase(calls)["runs"][-1] == ("runs", 20, 20)


def test_an_exception_from_the_hook_stops_it() -> None:
    store = MemoryStore()
    for i in range(3):
        run(_pipeline(), {"x": i}, store=store, seed=1)

    class Stop(Exception):
        pass

    calls: list[Call] = []

    def hook(phase: str, done: int, total: int | None) -> None:
        calls.append((phase, done, total))
        if phase == "runs":
            raise Stop

    with pytest.raises(Stop):
        verify_store(store, progress=hook)
    assert calls[-1] == ("runs", 0, 3)
