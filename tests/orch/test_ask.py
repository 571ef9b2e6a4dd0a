"""Human in the loop (``ctx.ask``): a run waits, other branches go on, an answer checked
against the question's schema and principals resumes it, the answer is a recorded decision
naming who gave it, replay serves it, and the root hash is that of a run that had the answer
from the start, under any completion order."""

from __future__ import annotations

import json
from typing import Any

import anyio
import ask_pipelines
import pytest
from ask_pipelines import APPROVAL, NESTED, TWO_QUESTIONS, Approval
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import orch
from orch._replay import areplay
from orch.cli import app
from orch.testing import ShuffledCompletion
from traces import Decision, MemoryStore, StepRecord, open_store, verify_run

ALICE_YES = {"send#0": orch.Answer(question="send#0", value={"approve": True}, by="alice")}


def _events(store: MemoryStore, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in store.read_events(run_id)]


def _statuses(store: MemoryStore, result: orch.RunResult) -> dict[str, str]:
    return {
        sid: StepRecord.model_validate(store.get_value(key)).status
        for sid, key in result.record.steps
    }


async def test_a_run_waits_and_the_other_branch_goes_on() -> None:
    store = MemoryStore()
    result = await orch.arun(APPROVAL, {"text": "hi"}, store=store)
    assert result.status == "waiting" and result.waiting
    assert [q.id for q in result.questions] == ["send#0"]
    assert result.questions[0].schema_ == Approval.model_json_schema()
    assert _statuses(store, result) == {
        "draft": "ok",
        "side": "ok",  # independent of the question: it ran
        "send": "waiting",
        "report": "waiting",  # downstream of it: never started
    }
    head = store.read_run_head(result.run_id)
    assert head is not None and json.loads(head)["status"] == "waiting"
    assert verify_run(store, result.run_id).ok
    asks = [e for e in _events(store, result.run_id) if e["type"] == "ask"]
    assert [e["data"]["id"] for e in asks] == ["send#0"]
    pending = orch.pending_questions(store, result.run_id)
    assert [q.id for q in pending] == ["send#0"] and pending[0].asked_at is not None


async def test_an_answer_resumes_with_the_root_hash_of_an_uninterrupted_run() -> None:
    store = MemoryStore()
    waiting = await orch.arun(APPROVAL, {"text": "hi"}, store=store)
    done = await orch.aanswer(APPROVAL, waiting.run_id, {"approve": True}, by="alice", store=store)
    assert done.ok and done.outputs == {"sent": True, "side": "side(hi)"}
    fresh = await orch.arun(APPROVAL, {"text": "hi"}, store=MemoryStore(), answers=ALICE_YES)
    assert fresh.ok and fresh.root_hash == done.root_hash
    # The answer is a decision of the asking step, naming who gave it and the question.
    send = StepRecord.model_validate(store.get_value(dict(done.record.steps)["send"]))
    decision = Decision.model_validate(store.get_value(send.decisions[-1]))
    assert decision.chosen == ["alice"] and decision.parameters["kind"] == "answer"
    assert decision.evidence["answer"] == {"approve": True, "note": ""}
    assert decision.evidence["by"] == "alice" and decision.reason == "answered by alice"
    # The answer is listed in the resumed run's run_start (the ledger commits to it).
    start = _events(store, done.run_id)[0]
    assert set(start["data"]["answers"]) == {"send#0"}
    assert verify_run(store, done.run_id).ok
    report = await areplay(APPROVAL, done.run_id, store)
    assert report.clean and report.result.root_hash == done.root_hash


async def test_effects_before_the_pause_are_not_made_again(tmp_path: Any, monkeypatch: Any) -> None:
    log = tmp_path / "effects.log"
    monkeypatch.setenv("ORCH_TEST_EFFECT_LOG", str(log))
    store = MemoryStore()
    waiting = await orch.arun(APPROVAL, {"text": "hi"}, store=store)
    await orch.aanswer(APPROVAL, waiting.run_id, {"approve": True}, by="bob", store=store)
    made = log.read_text().splitlines()
    assert sorted(made) == ["draft:writer", "send:checker", "send:send", "side:side"]


async def test_a_refused_answer_writes_nothing_and_the_run_still_waits() -> None:
    store = MemoryStore()
    waiting = await orch.arun(APPROVAL, {"text": "hi"}, store=store)
    before = sorted(store.keys()), store.run_ids()
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"approve": "perhaps"}, "alice", "'perhaps' is not of type 'boolean'"),
        ({}, "alice", "'approve' is a required property"),
        ({"approve": True}, "mallory", "'mallory' may not answer"),
        ({"approve": True}, " ", "cannot name who answered"),
    ]
    for values, by, said in cases:
        with pytest.raises(orch.AnswerError, match=said):
            await orch.aanswer(APPROVAL, waiting.run_id, values, by=by, store=store)
    with pytest.raises(orch.AnswerError, match="does not wait on question 'x#0'"):
        orch.check_answer(store, waiting.run_id, {"approve": True}, by="alice", question="x#0")
    assert (sorted(store.keys()), store.run_ids()) == before
    assert orch.pending_questions(store, waiting.run_id)[0].id == "send#0"
    done = await orch.aanswer(APPROVAL, waiting.run_id, {"approve": False}, by="alice", store=store)
    assert done.ok and done.outputs["sent"] is False
    with pytest.raises(orch.AnswerError, match="is not waiting for an answer"):
        orch.check_answer(store, done.run_id, {"approve": True}, by="alice")
    with pytest.raises(orch.AnswerError, match="was already resumed by run"):
        orch.check_answer(store, waiting.run_id, {"approve": True}, by="alice")


async def test_deadline_default_and_escalation() -> None:
    store = MemoryStore()
    waiting = await orch.arun(APPROVAL, {"text": "hi"}, store=store)
    asked = orch.pending_questions(store, waiting.run_id)[0]
    assert asked.due_at is not None
    early, late = asked.due_at - 1, asked.due_at + 1
    with pytest.raises(orch.AnswerError, match="only once its deadline passed"):
        orch.check_answer(store, waiting.run_id, by="alice", use_default=True, now=early)
    with pytest.raises(orch.AnswerError, match="'manager' may not answer"):
        orch.check_answer(store, waiting.run_id, {"approve": True}, by="manager", now=early)
    escalated = orch.check_answer(store, waiting.run_id, {"approve": True}, by="manager", now=late)
    assert escalated["send#0"].by == "manager"
    applied = orch.check_answer(store, waiting.run_id, by="alice", use_default=True, now=late)
    assert applied["send#0"].by == "orch:deadline"
    done = await orch.arun(APPROVAL, resume=waiting.run_id, answers=applied, store=store)
    assert done.ok and done.outputs["sent"] is False
    send = StepRecord.model_validate(store.get_value(dict(done.record.steps)["send"]))
    decision = Decision.model_validate(store.get_value(send.decisions[-1]))
    assert decision.chosen == ["orch:deadline"] and "default applied" in decision.reason


async def test_two_questions_in_one_step_wait_twice() -> None:
    store = MemoryStore()
    first = await orch.arun(TWO_QUESTIONS, {"text": "t"}, store=store)
    assert [q.id for q in first.questions] == ["twice#0"]
    second = await orch.aanswer(TWO_QUESTIONS, first.run_id, {"approve": True}, by="a", store=store)
    assert second.waiting and [q.id for q in second.questions] == ["twice#1"]
    with pytest.raises(orch.AnswerError, match="already answered in its lineage"):
        await orch.arun(
            TWO_QUESTIONS,
            resume=second.run_id,
            store=store,
            answers={"twice#0": orch.Answer(question="twice#0", value={"approve": 0}, by="b")},
        )
    done = await orch.aanswer(TWO_QUESTIONS, second.run_id, {"approve": False}, by="b", store=store)
    assert done.ok and done.outputs == {"text": "True/False"}
    both = {
        "twice#0": orch.Answer(question="twice#0", value={"approve": True}, by="a"),
        "twice#1": orch.Answer(question="twice#1", value={"approve": False}, by="b"),
    }
    fresh = await orch.arun(TWO_QUESTIONS, {"text": "t"}, store=MemoryStore(), answers=both)
    assert fresh.root_hash == done.root_hash
    assert (await areplay(TWO_QUESTIONS, done.run_id, store)).clean


async def test_a_child_that_asks_makes_its_parent_wait() -> None:
    store = MemoryStore()
    first = await orch.arun(NESTED, {"text": "t"}, store=store)
    assert first.waiting and [q.id for q in first.questions] == ["parent/0#0"]
    statuses = _statuses(store, first)
    assert statuses["parent"] == "waiting" and statuses["parent/1"] == "ok"
    again = await orch.aanswer(NESTED, first.run_id, {"approve": True}, by="a", store=store)
    done = await orch.aanswer(NESTED, again.run_id, {"approve": True}, by="a", store=store)
    assert done.ok and done.outputs == {"text": "True/True writer(t)"}


def test_wrong_answer_type_is_refused_before_any_write() -> None:
    with pytest.raises(orch.AnswerError, match="not an Answer to question"):
        orch.run(APPROVAL, {"text": "x"}, store=MemoryStore(), answers={"send#0": {"x": 1}})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16))
def test_shuffled_completion_same_hashes_and_causal_events(seed: int) -> None:
    async def main() -> tuple[str, str, list[orch.RunEvent]]:
        store = MemoryStore()
        seen: list[orch.RunEvent] = []
        shuffle = ShuffledCompletion(seed)
        waiting = await orch.arun(
            APPROVAL, {"text": "hi"}, store=store, perturb=shuffle, on_event=seen.append
        )
        done = await orch.aanswer(
            APPROVAL, waiting.run_id, {"approve": True}, by="alice", store=store, perturb=shuffle
        )
        return waiting.root_hash, done.root_hash, seen

    waiting_root, done_root, seen = anyio.run(main)
    reference = orch.run(APPROVAL, {"text": "hi"}, store=MemoryStore(), answers=ALICE_YES)
    assert done_root == reference.root_hash
    started = set()
    for event in seen:
        if event.kind == "step_start":
            started.add(event.step)
        elif event.step is not None:
            assert event.step in started, event  # ask, decision, effect, end: after its start
    assert seen[0].kind == "run_start" and seen[-1].kind == "run_end"
    assert [e.data["id"] for e in seen if e.kind == "ask"] == ["send#0"]
    assert waiting_root  # the waiting run has a record too


def test_cli_answer_and_runs_waiting(tmp_path: Any) -> None:
    runner = CliRunner()
    where = ["--store", str(tmp_path / "s")]
    target = f"{APPROVAL_FILE}:APPROVAL"
    ran = runner.invoke(app, ["run", target, "-i", "text=hi", *where])
    assert ran.exit_code == 3, ran.output
    assert "answer with: orch answer" in ran.output
    listed = runner.invoke(app, ["runs", "--waiting", "--json", *where])
    runs = json.loads(listed.stdout)
    assert [r["status"] for r in runs] == ["waiting"]
    rid = runs[0]["run_id"]
    assert runs[0]["questions"][0]["id"] == "send#0"
    bad = runner.invoke(app, ["answer", rid, "approve=perhaps", "--as", "alice", *where])
    assert bad.exit_code == 2 and "is refused" in bad.output
    assert "Traceback" not in bad.output
    good = runner.invoke(app, ["answer", rid, "approve=true", "note=ok", "--as", "alice", *where])
    assert good.exit_code == 0, good.output
    st = open_store(str(tmp_path / "s"))
    assert [h for h in st.run_ids() if json.loads(st.read_run_head(h) or b"{}")["status"] == "ok"]
    none = runner.invoke(app, ["runs", "--waiting", *where])
    assert "no runs waiting for an answer" in none.output


APPROVAL_FILE = ask_pipelines.__file__


async def test_the_ledger_commits_to_the_answer() -> None:
    """The answer is in the resumed run's run_start, whose hash the ledger's start entry holds:
    changing who answered (or what) breaks verification."""
    from traces import StartEntry, ledger_of

    store = MemoryStore()
    waiting = await orch.arun(APPROVAL, {"text": "hi"}, store=store)
    done = await orch.aanswer(APPROVAL, waiting.run_id, {"approve": True}, by="alice", store=store)
    start_line = store.read_events(done.run_id)[0]
    start = json.loads(start_line)
    entries = ledger_of(store).entries_of({done.run_id})[done.run_id]
    starts = [e for _, e in entries if isinstance(e, StartEntry)]
    assert [s.start_event for s in starts] == [start["hash"]]
    assert verify_run(store, done.run_id).ok
    other = store.put_value(
        orch.Answer(question="send#0", value={"approve": True}, by="mallory").model_dump(
            mode="json"
        )
    )
    forged = start_line.replace(start["data"]["answers"]["send#0"].encode(), other.encode())
    assert forged != start_line
    store._tamper_event(done.run_id, 0, forged)  # type: ignore[attr-defined]
    assert not verify_run(store, done.run_id).ok


async def test_a_waiting_run_replays_to_the_same_waiting_record() -> None:
    store = MemoryStore()
    waiting = await orch.arun(APPROVAL, {"text": "hi"}, store=store)
    report = await areplay(APPROVAL, waiting.run_id, store)
    assert report.clean and report.result.status == "waiting"
    assert report.result.root_hash == waiting.root_hash
