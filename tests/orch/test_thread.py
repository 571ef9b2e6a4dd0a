"""Conversation threads (``arun(..., thread=T)``): a chain of runs, one per turn, whose state is
carried by content; one turn at a time; a turn that did not end ok is resumed before the next;
a turn killed mid-way in a real process and resumed gives the uninterrupted thread's root
hashes; ``orch thread show|verify|replay``."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from pydantic import BaseModel
from thread_chat import Conversation, chat
from typer.testing import CliRunner

import orch
from orch import Context, PipelineBuilder, RunControl, ThreadBusyError, ThreadError, agent
from orch.cli import app
from orch.testing import ManualClock
from traces import (
    ArtifactStore,
    MemoryStore,
    OverlayStore,
    RunHead,
    RunRecord,
    chained_events,
    open_store,
)

CHAT = str(Path(__file__).parents[1] / "fixtures" / "thread_chat.py")
ORIGIN = {"pipeline": f"{CHAT}:chat"}
ORCH = [sys.executable, "-m", "orch.cli"]


def record_of(store: ArtifactStore, result: orch.RunResult) -> RunRecord:
    return RunRecord.model_validate(store.get_value(result.root_hash))


def head_of(store: ArtifactStore, run_id: str) -> RunHead:
    raw = store.read_run_head(run_id)
    assert raw is not None
    return RunHead.model_validate_json(raw)


def run_start(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    first = chained_events(store.read_events(run_id))[0]
    assert first["type"] == "run_start"
    return dict(first["data"])


def say(store: ArtifactStore, message: str, thread: str = "T", **kw: Any) -> orch.RunResult:
    return orch.run(chat, {"message": message}, thread=thread, store=store, **kw)


def texts(state: Conversation) -> list[str]:
    return [m.text for m in state.messages if m.role == "user"]


# -- a thread of turns -------------------------------------------------------------------------


def test_five_turns_carry_the_conversation_hash_linked_through_their_records() -> None:
    store = MemoryStore()
    results = [say(store, f"m{i}") for i in range(1, 6)]
    assert [r.status for r in results] == ["ok"] * 5
    final = results[-1].outputs["state"]
    assert texts(final) == ["m1", "m2", "m3", "m4", "m5"] and len(final.messages) == 10

    turns = orch.thread_turns(store, "T")
    assert [(t.turn, t.run_id, t.status, t.root_hash, t.previous) for t in turns] == [
        (n, r.run_id, "ok", r.root_hash, results[n - 2].run_id if n > 1 else None)
        for n, r in enumerate(results, 1)
    ]
    records = [record_of(store, r) for r in results]
    assert store.get_value(records[0].inputs["state"]) is None  # turn 1 starts with no state
    for before, after in itertools.pairwise(records):
        # The input artifact is the previous output artifact: the turns are hash-linked.
        assert after.inputs["state"] == before.outputs["state"]
    for n, r in enumerate(results, 1):
        head = head_of(store, r.run_id)
        assert (head.thread, head.turn) == ("T", n) and head.seal_ok()
        assert run_start(store, r.run_id)["thread"] == {
            "id": "T",
            "turn": n,
            "previous": results[n - 2].run_id if n > 1 else None,
            "previous_root": results[n - 2].root_hash if n > 1 else None,
        }


def test_a_turn_has_the_root_hash_of_a_plain_run_with_the_same_inputs_and_state() -> None:
    store, plain = MemoryStore(), MemoryStore()
    results = [say(store, f"m{i}") for i in range(1, 4)]
    state = None
    for i, r in enumerate(results, 1):
        alone = orch.run(chat, {"message": f"m{i}", "state": state}, store=plain)
        assert alone.root_hash == r.root_hash
        assert head_of(plain, alone.run_id).thread is None
        state = alone.outputs["state"]
    # Another thread of the same store is a chain of its own: its turn 1 is turn 1 again.
    other = say(store, "m1", thread="U")
    assert other.root_hash == results[0].root_hash
    assert [t.run_id for t in orch.thread_turns(store, "U")] == [other.run_id]
    assert len(orch.thread_turns(store, "T")) == 3


def test_a_pipeline_without_state_gets_none_and_an_unknown_thread_has_no_turns() -> None:
    p = PipelineBuilder("echo")
    p.node("echo", echo, text=p.input("text", str))
    pipeline = p.build()
    store = MemoryStore()
    assert orch.thread_turns(store, "T") == []
    a = orch.run(pipeline, {"text": "a"}, thread="T", store=store)
    b = orch.run(pipeline, {"text": "b"}, thread="T", store=store)
    assert [t.run_id for t in orch.thread_turns(store, "T")] == [a.run_id, b.run_id]
    assert "state" not in record_of(store, b).inputs
    assert run_start(store, b.run_id)["thread"]["previous_root"] == a.root_hash


class Text(BaseModel):
    text: str


@agent(name="echo", version="1")
async def echo(item: Text, ctx: Context) -> Text:
    return item


def test_what_a_thread_cannot_feed_is_refused_before_anything_is_written() -> None:
    store = MemoryStore()
    with pytest.raises(ThreadError, match=r"leave 'state' out of the inputs"):
        orch.run(chat, {"message": "m", "state": None}, thread="T", store=store)
    strict = PipelineBuilder("strict")
    given = strict.input("state", str)
    strict.node("echo", echo, text=given)
    strict.output("state", given)
    with pytest.raises(ThreadError, match=r"not optional.*fix: declare it optional"):
        orch.run(strict.build(), {}, thread="T", store=store)
    open_ = PipelineBuilder("no-output")
    open_.input("state", str | None)
    open_.node("echo", echo, text=open_.input("text", str))
    with pytest.raises(ThreadError, match=r"no output 'state'.*fix: name one"):
        orch.run(open_.build(), {"text": "t"}, thread="T", store=store)
    with pytest.raises(ThreadError, match=r"invalid thread id 'a/b'; fix: use 1 to"):
        say(store, "m", thread="a/b")
    with pytest.raises(ThreadError, match=r"invalid thread id"):
        say(store, "m", thread="x" * 116)
    assert store.run_ids() == [] and store.read_claim("thread-index.T") is None
    first = say(store, "m1")
    with pytest.raises(ThreadError, match=r"leave thread= out when resuming"):
        orch.run(chat, resume=first.run_id, thread="T", store=store)


async def test_a_turn_streams_its_events() -> None:
    store = MemoryStore()
    first = await orch.arun(chat, {"message": "m1"}, thread="T", store=store)
    async with orch.stream(chat, {"message": "m2"}, thread="T", store=store) as events:
        kinds = [(e.kind, e.data) async for e in events]
    assert kinds[0][0] == "run_start"
    assert kinds[0][1]["thread"] == {
        "id": "T",
        "turn": 2,
        "previous": first.run_id,
        "previous_root": first.root_hash,
    }
    assert events.result is not None and events.result.ok
    assert [t.run_id for t in orch.thread_turns(store, "T")] == [
        first.run_id,
        events.result.run_id,
    ]


# -- a turn that did not end ok ------------------------------------------------------------


def test_a_failed_turn_is_resumed_before_the_next_and_keeps_its_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    monkeypatch.setenv("ORCH_TEST_THREAD_FAIL", "m2")
    say(store, "m1")
    failed = say(store, "m2")
    assert failed.status == "failed"
    with pytest.raises(ThreadError) as refused:
        say(store, "m3")
    message = str(refused.value)
    assert f"turn 2 (run {failed.run_id}) ended failed" in message
    assert f"resume={failed.run_id!r}" in message and f"--resume {failed.run_id}" in message
    assert [t.status for t in orch.thread_turns(store, "T")] == ["ok", "failed"]

    monkeypatch.delenv("ORCH_TEST_THREAD_FAIL")
    resumed = orch.run(chat, resume=failed.run_id, store=store)
    assert resumed.ok
    head = head_of(store, resumed.run_id)
    assert (head.thread, head.turn) == ("T", 2)
    assert run_start(store, resumed.run_id)["thread"] == run_start(store, failed.run_id)["thread"]
    turns = orch.thread_turns(store, "T")
    assert (turns[1].run_id, turns[1].status) == (resumed.run_id, "ok")
    third = say(store, "m3")
    assert orch.thread_turns(store, "T")[2].previous == resumed.run_id
    assert record_of(store, third).inputs["state"] == record_of(store, resumed).outputs["state"]
    assert texts(third.outputs["state"]) == ["m1", "m2", "m3"]


def test_a_cancelled_turn_blocks_the_next_until_resumed() -> None:
    store = MemoryStore()
    control = RunControl()
    control.cancel("stopped by the test")
    cancelled = say(store, "m1", control=control)
    assert cancelled.status == "cancelled"
    with pytest.raises(ThreadError, match=rf"turn 1 \(run {cancelled.run_id}\) ended cancelled"):
        say(store, "m2")
    assert orch.run(chat, resume=cancelled.run_id, store=store).ok
    assert say(store, "m2").ok
    assert [t.turn for t in orch.thread_turns(store, "T")] == [1, 2]


def test_a_waiting_turn_is_answered_before_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    monkeypatch.setenv("ORCH_TEST_THREAD_ASK", "m1")
    waiting = say(store, "m1")
    assert waiting.status == "waiting"
    with pytest.raises(ThreadError, match=rf"waits for an answer.*orch answer {waiting.run_id}"):
        say(store, "m2")
    answered = orch.answer(chat, waiting.run_id, {"approve": True}, by="alice", store=store)
    assert answered.ok
    assert head_of(store, answered.run_id).turn == 1
    second = say(store, "m2")
    assert texts(second.outputs["state"]) == ["m1", "m2"]
    assert [t.run_id for t in orch.thread_turns(store, "T")] == [answered.run_id, second.run_id]


# -- the index, checked against the heads ------------------------------------------------------


def index_of(store: ArtifactStore, thread: str = "T") -> tuple[bytes, list[str]]:
    raw = store.read_claim(f"thread-index.{thread}")
    assert raw is not None
    return raw, orjson.loads(raw)["turns"]


def set_index(store: ArtifactStore, runs: list[str], thread: str = "T") -> None:
    raw, _ = index_of(store, thread)
    new = orjson.dumps({"format": "orch.thread-index/1", "thread": thread, "turns": runs})
    assert store.swap_claim(f"thread-index.{thread}", raw, new)


def test_a_resume_the_index_missed_is_found_through_its_lineage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process killed after its resume of a turn ended ok, before the index named it."""
    import orch._thread

    store = MemoryStore()
    monkeypatch.setenv("ORCH_TEST_THREAD_FAIL", "m1")
    failed = say(store, "m1")
    monkeypatch.delenv("ORCH_TEST_THREAD_FAIL")
    monkeypatch.setattr(orch._thread, "_point_turn", lambda *args: None)
    resumed = orch.run(chat, resume=failed.run_id, store=store)
    assert index_of(store)[1] == [failed.run_id]
    assert [(t.run_id, t.status) for t in orch.thread_turns(store, "T")] == [(resumed.run_id, "ok")]
    second = say(store, "m2")
    assert index_of(store)[1] == [resumed.run_id, second.run_id]  # settled by the next turn


def test_an_entry_whose_run_never_began_is_not_a_turn() -> None:
    """A process killed after it entered its turn in the index, before its head."""
    store = MemoryStore()
    first = say(store, "m1")
    set_index(store, [first.run_id, "never-began"])
    assert [t.run_id for t in orch.thread_turns(store, "T")] == [first.run_id]
    second = say(store, "m2")
    assert index_of(store)[1] == [first.run_id, second.run_id]
    assert head_of(store, second.run_id).turn == 2


def test_an_index_that_disagrees_with_the_heads_is_refused() -> None:
    store = MemoryStore()
    a, b = say(store, "m1"), say(store, "m2")
    set_index(store, [b.run_id, a.run_id])
    with pytest.raises(ThreadError, match=rf"names run {b.run_id} for turn 1.*turn 2 of thread T"):
        orch.thread_turns(store, "T")
    with pytest.raises(ThreadError, match="fix: check the store"):
        say(store, "m3")
    report = orch._thread.verify_thread(store, "T")
    assert not report.ok and f"names run {b.run_id} for turn 1" in report.problems[0]


def test_a_store_without_claims_finds_the_turns_from_the_heads() -> None:
    store = MemoryStore()
    results = [say(store, f"m{i}") for i in range(1, 4)]
    overlay = OverlayStore(store)  # keeps no claims, so no index
    assert orch.thread_turns(overlay, "T") == orch.thread_turns(store, "T")
    assert [t.run_id for t in orch.thread_turns(overlay, "T")] == [r.run_id for r in results]


# -- one turn at a time ------------------------------------------------------------------------

GATE: dict[str, anyio.Event] = {}


@agent(name="gated", version="1")
async def gated(item: Text, ctx: Context) -> Text:
    if item.text == "hold":
        GATE["started"].set()
        await GATE["release"].wait()
    return item


def gated_pipeline() -> orch.Pipeline:
    p = PipelineBuilder("gated")
    p.node("gate", gated, text=p.input("text", str))
    return p.build()


async def test_a_second_turn_while_one_runs_is_refused_or_waits_its_turn() -> None:
    pipeline, store, clock = gated_pipeline(), MemoryStore(), ManualClock()
    GATE.update(started=anyio.Event(), release=anyio.Event())
    first_done, results = anyio.Event(), {}

    async def turn(name: str, text: str, **kw: Any) -> None:
        results[name] = await orch.arun(pipeline, {"text": text}, thread="T", store=store, **kw)
        if name == "first":
            first_done.set()

    with clock.installed():
        async with anyio.create_task_group() as tg:
            tg.start_soon(turn, "first", "hold")
            await GATE["started"].wait()
            with pytest.raises(ThreadBusyError, match=r"thread T is busy: .*run .*, thread T"):
                await orch.arun(pipeline, {"text": "now"}, thread="T", store=store)
            tg.start_soon(partial(turn, "second", "after", wait=True))
            await clock.wait_for_sleepers(3)  # the first's two lease renewers, and the waiter
            assert "second" not in results
            GATE["release"].set()
            await first_done.wait()
            clock.advance(1)  # the waiter looks again: the lease is free
    turns = orch.thread_turns(store, "T")
    assert [t.run_id for t in turns] == [results["first"].run_id, results["second"].run_id]
    assert [t.status for t in turns] == ["ok", "ok"]
    assert len(store.run_ids()) == 2  # the refused turn wrote nothing


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def thread_store(tmp_path: Path) -> tuple[str, list[orch.RunResult]]:
    location = str(tmp_path / "store")
    with open_store(location) as store:
        results = [say(store, f"m{i}", origin=ORIGIN) for i in range(1, 4)]
    return location, results


def test_thread_show_lists_turns(thread_store: tuple[str, list[orch.RunResult]]) -> None:
    location, results = thread_store
    shown = CliRunner().invoke(app, ["thread", "show", "T", "--store", location, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert [(t["turn"], t["run_id"], t["status"], t["root_hash"]) for t in data["turns"]] == [
        (n, r.run_id, "ok", r.root_hash) for n, r in enumerate(results, 1)
    ]
    text = CliRunner().invoke(app, ["thread", "show", "T", "--store", location])
    assert text.exit_code == 0, text.output
    for r in results:
        assert r.run_id in text.stdout and r.root_hash in text.stdout.replace("\n", "")


def test_thread_show_of_an_unknown_thread_or_store(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    with open_store(location):
        pass
    unknown = CliRunner().invoke(app, ["thread", "show", "nope", "--store", location])
    assert unknown.exit_code == 2
    assert "no thread 'nope' in store" in unknown.output and len(unknown.output.splitlines()) == 1
    missing = tmp_path / "missing"
    gone = CliRunner().invoke(app, ["thread", "show", "T", "--store", str(missing)])
    assert gone.exit_code == 2 and not missing.exists()  # a read-only command makes no store
    bad = CliRunner().invoke(app, ["thread", "verify", "a/b", "--store", location])
    assert bad.exit_code == 2 and "invalid thread id" in bad.output


def test_thread_verify(thread_store: tuple[str, list[orch.RunResult]]) -> None:
    location, results = thread_store
    ok = CliRunner().invoke(app, ["thread", "verify", "T", "--store", location, "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["ok"] and report["complete"]
    assert (report["runs_checked"], report["links_checked"]) == (3, 3)
    with open_store(location) as store:  # turn 3 claims it followed turn 1
        set_index(store, [results[0].run_id, results[2].run_id])
    bad = CliRunner().invoke(app, ["thread", "verify", "T", "--store", location])
    assert bad.exit_code == 1
    assert "TAMPERED" in bad.stdout and f"names run {results[2].run_id} for turn 2" in bad.stdout


def test_thread_replay(thread_store: tuple[str, list[orch.RunResult]]) -> None:
    location, results = thread_store
    clean = CliRunner().invoke(app, ["thread", "replay", "T", "--store", location, "--json"])
    assert clean.exit_code == 0, clean.output
    data = json.loads(clean.stdout)
    assert data["clean"] and data["turns"] == 3
    assert [(r["turn"], r["run_id"], r["root_hash"]) for r in data["replayed"]] == [
        (n, r.run_id, r.root_hash) for n, r in enumerate(results, 1)
    ]
    changed = ["--pipeline", f"{CHAT}:chat_changed", "--no-record"]
    diverged = CliRunner().invoke(app, ["thread", "replay", "T", "--store", location, *changed])
    assert diverged.exit_code == 1
    assert f"turn 1 (run {results[0].run_id})" in diverged.stdout
    assert "DIVERGED" in diverged.stdout and "step 't1', effect #0" in diverged.stdout
    assert f"turn 2 (run {results[1].run_id})" not in diverged.stdout  # stopped at the first


# -- a turn killed in a real process -----------------------------------------------------------


def turn_in_process(location: str, message: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, CHAT, location, "T", message],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def ended_steps(location: str) -> tuple[str | None, int]:
    """Turn 3's run, once it has a head, and how many of its steps ended."""
    with open_store(location, create=False) as store:
        turns = orch.thread_turns(store, "T")
        if len(turns) < 3:
            return None, 0
        ends = 0
        for line in store.read_events(turns[2].run_id):
            try:
                ends += orjson.loads(line).get("type") == "step_end"
            except orjson.JSONDecodeError:  # a torn tail while it writes
                break
        return turns[2].run_id, ends


@pytest.mark.slow
def test_a_turn_killed_mid_way_and_resumed_gives_the_uninterrupted_thread(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    env = dict(os.environ, ORCH_TEST_STEP_SECONDS="0")
    env.pop("ORCH_TEST_THREAD_FAIL", None)
    env.pop("ORCH_TEST_THREAD_ASK", None)
    made = [turn_in_process(location, m, env) for m in ("m1", "m2")]

    slow = dict(env, ORCH_TEST_STEP_SECONDS="0.1")  # 0.4s left in the turn after 2 steps
    proc = subprocess.Popen(
        [sys.executable, CHAT, location, "T", "m3"],
        env=slow,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    killed, ended = None, 0
    while time.monotonic() < deadline and ended < 2:
        killed, ended = ended_steps(location)
        if proc.poll() is not None:
            assert proc.stderr is not None
            pytest.fail(f"turn 3 ended before it could be killed: {proc.stderr.read()!r}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert killed is not None and ended >= 2

    with open_store(location, create=False) as store:
        assert [t.status for t in orch.thread_turns(store, "T")] == ["ok", "ok", "running"]
        with pytest.raises(ThreadError, match=rf"turn 3 \(run {killed}\) was interrupted"):
            say(store, "m4")  # the dead process's lease is taken over at once, then refused
    shown = CliRunner().invoke(app, ["thread", "show", "T", "--store", location, "--json"])
    assert json.loads(shown.stdout)["turns"][2]["process_gone"] is True

    resumed = subprocess.run(
        [*ORCH, "run", f"{CHAT}:chat", "--resume", killed, "--store", location, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    third = json.loads(resumed.stdout)
    made.append({"run_id": third["run_id"], "root_hash": third["root_hash"]})
    made += [turn_in_process(location, m, env) for m in ("m4", "m5")]

    with open_store(location, create=False) as store:
        turns = orch.thread_turns(store, "T")
        assert [(t.run_id, t.status) for t in turns] == [(m["run_id"], "ok") for m in made]
        assert head_of(store, third["run_id"]).turn == 3
        assert head_of(store, killed).status in ("interrupted", "superseded")
        hashes = [t.root_hash for t in turns]
    uninterrupted = MemoryStore()
    assert hashes == [say(uninterrupted, f"m{i}").root_hash for i in range(1, 6)]

    verified = CliRunner().invoke(app, ["thread", "verify", "T", "--store", location, "--json"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["complete"] is True
    replayed = CliRunner().invoke(app, ["thread", "replay", "T", "--store", location, "--json"])
    assert replayed.exit_code == 0, replayed.output
    data = json.loads(replayed.stdout)
    assert data["clean"] and [r["root_hash"] for r in data["replayed"]] == hashes


def test_orch_run_thread_starts_the_next_turn(tmp_path: Path) -> None:
    import thread_chat

    runner = CliRunner()
    where = ["--store", str(tmp_path / "s")]
    target = f"{thread_chat.__file__}:chat"
    for message in ("hi", "again"):
        ran = runner.invoke(
            app, ["run", target, "-i", f"message={message}", "--thread", "t1", *where]
        )
        assert ran.exit_code == 0, ran.output
    shown = runner.invoke(app, ["thread", "show", "t1", "--json", *where])
    turns = json.loads(shown.stdout)
    listed = turns["turns"] if isinstance(turns, dict) else turns
    assert [t["turn"] for t in listed] == [1, 2]
    both = runner.invoke(app, ["run", target, "--resume", "x", "--thread", "t1", *where])
    assert both.exit_code == 2 and "keeps its own thread" in both.output
