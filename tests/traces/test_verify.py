"""Verification finds and names tampering in every backend, and accepts honest records.

A real run (fan-out children, a decision, a pipeline output) is recorded in each backend,
then altered through the backend's own tamper hooks: an artifact, a step record, a decision,
the run record, an event line, the run head, the log's length. Each must come back as a
problem naming the exact thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, agent
from orch._runtime import run
from traces import (
    ArtifactStore,
    DirectoryStore,
    MemoryStore,
    RunRecord,
    SQLiteStore,
    StepRecord,
    verify_run,
    verify_store,
)


class Num(BaseModel):
    x: int


@agent(name="square", version="1")
async def square(n: Num, ctx: Context) -> Num:
    return Num(x=n.x * n.x)


@agent(name="fan", version="1")
async def fan(n: Num, ctx: Context) -> Num:
    outs = await ctx.map(square, [Num(x=n.x + i) for i in range(3)])
    best = max(outs, key=lambda o: o.x)
    ctx.decide(
        candidates=[str(o.x) for o in outs],
        chosen=str(best.x),
        reason="largest square",
        scores={str(o.x): o.x for o in outs},
    )
    return best


def _pipeline() -> Pipeline:
    p = PipelineBuilder("verify-demo")
    x = p.input("x", int)
    a = p.node("a", fan, x=x)
    b = p.node("b", square, x=a.field("x"))
    p.output("result", b.field("x"))
    return p.build()


PIPELINE = _pipeline()


@pytest.fixture(params=["memory", "dir", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    st: ArtifactStore
    if request.param == "memory":
        st = MemoryStore()
    elif request.param == "dir":
        st = DirectoryStore(tmp_path / "store")
    else:
        st = SQLiteStore(tmp_path / "store.db")
    yield st
    st.close()


def _record(store: ArtifactStore) -> tuple[str, RunRecord]:
    result = run(PIPELINE, {"x": 2}, store=store, seed=7)
    assert result.ok
    return result.run_id, result.record


def _step(store: ArtifactStore, record: RunRecord, step_id: str) -> StepRecord:
    return StepRecord.model_validate(store.get_value(dict(record.steps)[step_id]))


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at % len(b)] ^= 0x20
    return bytes(b)


def _subjects(store: ArtifactStore, run_id: str) -> str:
    report = verify_run(store, run_id)
    assert not report.ok, "tampering went unnoticed"
    return "\n".join(f"{p.kind} | {p.subject} | {p.detail}" for p in report.problems)


def test_honest_run_verifies_with_counts(store: ArtifactStore) -> None:
    run_id, record = _record(store)
    report = verify_run(store, run_id)
    assert report.ok, report.problems
    assert report.complete and report.status == "ok"
    assert report.root_hash == record.root_hash()
    # a, a/0..a/2, b
    assert report.checked["steps"] == 5
    assert store.get_value(record.outputs["result"]) == 16**2
    assert report.checked["decisions"] == 1
    assert report.checked["events"] == len(store.read_events(run_id))
    assert report.warnings == []


def test_altered_child_output_is_named(store: ArtifactStore) -> None:
    run_id, record = _record(store)
    child = _step(store, record, "a/1")
    assert child.output is not None
    store._tamper(child.output, _flip(store.get(child.output), 3))  # type: ignore[attr-defined]
    found = _subjects(store, run_id)
    assert "output of step 'a/1'" in found
    assert child.output in found


def test_altered_step_record_is_named(store: ArtifactStore) -> None:
    run_id, record = _record(store)
    key = dict(record.steps)["b"]
    store._tamper(key, _flip(store.get(key), 30))  # type: ignore[attr-defined]
    found = _subjects(store, run_id)
    assert f"step record 'b' ({key})" in found
    assert "altered" in found


def test_altered_decision_is_named(store: ArtifactStore) -> None:
    run_id, record = _record(store)
    key = _step(store, record, "a").decisions[0]
    data = store.get(key).replace(b"largest square", b"largest sqvare")
    store._tamper(key, data)  # type: ignore[attr-defined]
    assert "decision #0 of step 'a'" in _subjects(store, run_id)


def test_altered_run_record_is_named(store: ArtifactStore) -> None:
    run_id, record = _record(store)
    root = record.root_hash()
    store._tamper(root, store.get(root).replace(b'"seed":7', b'"seed":8'))  # type: ignore[attr-defined]
    assert f"run record ({root})" in _subjects(store, run_id)


def test_edited_event_is_named_by_number(store: ArtifactStore) -> None:
    run_id, _ = _record(store)
    lines = store.read_events(run_id)
    i = next(n for n, line in enumerate(lines) if b'"step_end"' in line)
    store._tamper_event(run_id, i, lines[i].replace(b'"ok"', b'"no"'))  # type: ignore[attr-defined]
    assert f"event #{i} |" in _subjects(store, run_id)


def test_rehashed_event_breaks_the_chain(store: ArtifactStore) -> None:
    """An attacker who recomputes an edited event's own hash still breaks the next link."""
    from traces._eventlog import event_body_hash

    run_id, _ = _record(store)
    lines = store.read_events(run_id)
    i = next(n for n, line in enumerate(lines) if b'"step_start"' in line)
    event = orjson.loads(lines[i])
    event["step"] = "forged"
    event.pop("hash")
    body = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    forged = body[:-1] + b',"hash":"' + event_body_hash(event).encode() + b'"}'
    store._tamper_event(run_id, i, forged)  # type: ignore[attr-defined]
    found = _subjects(store, run_id)
    assert f"event #{i + 1} |" in found
    assert "out of chain" in found


def test_edited_run_head_is_named(store: ArtifactStore) -> None:
    run_id, _ = _record(store)
    head = orjson.loads(store.read_run_head(run_id) or b"")
    head["finished_at"] = head["finished_at"] + 1
    store.write_run_head(run_id, orjson.dumps(head))
    assert "run head of" in _subjects(store, run_id)


def test_appended_event_after_the_end_is_found(store: ArtifactStore) -> None:
    from traces import EventLog

    run_id, _ = _record(store)
    lines = store.read_events(run_id)
    log = EventLog(store, run_id)
    log.count = len(lines)
    log.head = orjson.loads(lines[-1])["hash"]
    log.emit("note", text="added later")
    assert "events were removed or appended" in _subjects(store, run_id)


def test_missing_artifact_is_named(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "s")
    run_id, record = _record(store)
    out = _step(store, record, "b").output
    assert out is not None
    store._tamper_delete_blob(out)
    found = _subjects(store, run_id)
    assert "output of step 'b'" in found and "missing" in found


def test_unfinished_run_with_torn_tail_is_a_warning(tmp_path: Path) -> None:
    """What SIGKILL leaves: a running head and half a line. Finished steps still verify."""
    store = DirectoryStore(tmp_path / "s")
    run_id, _ = _record(store)
    lines = store.read_events(run_id)
    head = orjson.loads(store.read_run_head(run_id) or b"")
    # Rebuild the state of the store as it was mid-run: the first 5 events and a torn 6th.
    from traces._records import RunHead

    running = RunHead.model_validate(head).model_copy(
        update={
            "status": "running",
            "root_hash": None,
            "finished_at": None,
            "event_count": 0,
            "event_head": None,
        }
    )
    store.write_run_head(run_id, running.to_bytes())
    # A killed process never sealed the run in the ledger: drop the seal it appended last.
    store._tamper_truncate_ledger(store.ledger_size() - 1)
    store.close()
    log = tmp_path / "s" / "runs" / run_id / "events.jsonl"
    log.write_bytes(b"\n".join(lines[:5]) + b"\n" + lines[5][:40])
    report = verify_run(store, run_id)
    assert report.ok, report.problems
    assert not report.complete and report.status == "running"
    assert report.root_hash is None
    ended = sum(b'"step_end"' in line for line in lines[:5])
    assert report.checked["steps"] == ended
    assert any("event #5 is torn" in w for w in report.warnings)


def test_torn_line_in_a_finished_run_is_a_problem(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "s")
    run_id, _ = _record(store)
    store.close()
    log = tmp_path / "s" / "runs" / run_id / "events.jsonl"
    log.write_bytes(log.read_bytes()[:-30])
    found = _subjects(store, run_id)
    assert "not a valid JSON event" in found


def test_verify_store_rehashes_unreferenced_artifacts(store: ArtifactStore) -> None:
    run_id, _ = _record(store)
    stray = store.put(b"not referenced by any run")
    assert verify_store(store).ok
    store._tamper(stray, b"changed")  # type: ignore[attr-defined]
    assert verify_run(store, run_id).ok  # the run does not reference it...
    report = verify_store(store)  # ...but the whole-store check re-hashes everything
    assert not report.ok
    assert [p.subject for p in report.problems] == [f"artifact {stray}"]
    assert report.checked["runs"] == 1


def test_verify_store_prefixes_problems_with_the_run(store: ArtifactStore) -> None:
    run_id, record = _record(store)
    key = dict(record.steps)["a/2"]
    store._tamper(key, _flip(store.get(key), 5))  # type: ignore[attr-defined]
    report = verify_store(store)
    assert any(p.subject.startswith(f"run {run_id}: step record 'a/2'") for p in report.problems)


def test_a_torn_line_left_before_a_takeover_is_not_an_appended_event(tmp_path: Path) -> None:
    """A process killed mid-write leaves a torn last line; the resume anchors the intact
    events only. The torn line is what the crash left, not an event appended afterwards."""
    import anyio
    from tamper_cases import Faults, ProcessDied, demo

    from orch import arun

    store = DirectoryStore(tmp_path / "s")

    async def died() -> None:
        await arun(demo, {"q": "hi"}, store=store, services={"faults": Faults(die=True)})

    with pytest.raises(BaseExceptionGroup) as info:
        anyio.run(died)
    assert info.group_contains(ProcessDied)
    (run_id,) = store.run_ids()
    store.append_event(run_id, b'{"data":{"record":"sha256:0')  # torn by the kill
    resumed = anyio.run(
        lambda: arun(demo, store=store, resume=run_id, services={"faults": Faults()})
    )
    assert resumed.ok
    report = verify_store(store)
    assert report.ok, report.problems
    assert any(f"event #{len(store.read_events(run_id)) - 1} is torn" in w for w in report.warnings)


def test_a_resume_killed_before_it_began_leaves_a_warning_not_a_problem(tmp_path: Path) -> None:
    """A resume marks the runs it takes over, then begins its own run; killed in between,
    the ledger names a run that never started. That is a crash, not a rewritten ledger."""
    import anyio
    from tamper_cases import Faults, demo

    from orch import arun
    from orch._lineage import lineage_members, mark_taken_over

    store = DirectoryStore(tmp_path / "s")

    async def died() -> None:
        await arun(demo, {"q": "hi"}, store=store, services={"faults": Faults(die=True)})

    with pytest.raises(BaseExceptionGroup):
        anyio.run(died)
    (run_id,) = store.run_ids()
    mark_taken_over(store, lineage_members(store, run_id), run_id, "never-began")
    report = verify_store(store)
    assert report.ok, report.problems
    assert any("run never-began never began" in w for w in report.warnings), report.warnings


def test_a_run_killed_before_its_start_entry_is_adopted_by_its_resume(tmp_path: Path) -> None:
    """Killed between writing its head and appending its start entry, a run is unknown to
    the ledger; the resume that takes it over adopts it first, so the ledger names a run it
    knows when it marks it interrupted."""
    import anyio
    from tamper_cases import Faults, demo

    from orch import arun
    from traces._ledger_entries import parse_entry

    store = DirectoryStore(tmp_path / "s")

    async def died() -> None:
        await arun(demo, {"q": "hi"}, store=store, services={"faults": Faults(die=True)})

    with pytest.raises(BaseExceptionGroup):
        anyio.run(died)
    (run_id,) = store.run_ids()
    assert [parse_entry(e).type for e in store.ledger_read()] == ["genesis", "start"]
    store._tamper_truncate_ledger(1)  # as if killed before the start entry
    assert verify_store(store).ok
    resumed = anyio.run(
        lambda: arun(demo, store=store, resume=run_id, services={"faults": Faults()})
    )
    assert resumed.ok
    kinds = [(e.type, getattr(e, "run", "")) for e in map(parse_entry, store.ledger_read())]
    assert kinds[1] == ("adopt", run_id) and ("status", run_id) in kinds
    report = verify_store(store)
    assert report.ok, report.problems
