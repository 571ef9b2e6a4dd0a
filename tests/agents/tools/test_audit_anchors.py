"""Anchors of the broker's audit chains in the run store's ledger: one per tenant and step.

An anchor of entry n covers entries 0 to n through the chain's links, so a run anchors the
last entry its step's calls made when the step ends ok (before the step's record is
written), a failed step's before the run's seal, a long step's every 64 entries, and an
entry that no record shows (a denial) at once. A process killed mid-step leaves its step's
entries unanchored: a rollback of them is still caught, against the tool calls the run
recorded (its effect records and events), even once new anchored entries were appended over
the rolled-back ones; the test shows the anchors alone would not catch it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

import orch
from agents.errors import ToolCallError
from agents.tools import Principal, SQLiteAuditLog, ToolBroker, tool, verify_anchored
from agents.tools._audit import _anchor_problems
from orch._effect_path import ANCHOR_LIMIT
from traces import AnchorEntry, ArtifactStore, DirectoryStore, MemoryStore, ledger_of, parse_entry

WHO = Principal(id="alice", tenant="acme", scopes={"orders:read"})


class Task(BaseModel):
    n: int = 0
    calls: int = 1
    fail: bool = False


class Done(BaseModel):
    text: str
    n: int = 0
    """Where the next step's calls start."""
    calls: int = 1


@tool(scopes={"orders:read"})
def ping(n: int) -> str:
    """Answers with its argument."""
    return f"pong {n}"


@tool(scopes={"orders:delete"})
def wipe() -> str:
    """A tool the principal may not use."""
    return "wiped"


@orch.agent(name="pinger", version="1")
async def pinger(task: Task, ctx: orch.Context) -> Done:
    tools = ctx.service("tools")
    texts = [(await tools.call(ctx, "ping", {"n": task.n + i})).text for i in range(task.calls)]
    if task.fail:
        raise RuntimeError("the step fails after its calls")
    return Done(text=" ".join(texts), n=task.n + task.calls, calls=task.calls)


@orch.agent(name="denied-then-count", version="1")
async def denied_then_count(task: Task, ctx: orch.Context) -> Done:
    tools = ctx.service("tools")
    await tools.call(ctx, "ping", {"n": 1})  # recorded: its anchor waits for the step's end
    with pytest.raises(ToolCallError):
        await tools.call(ctx, "wipe", {})
    # Still inside the step: the denial's anchor is in the ledger already.
    return Done(text=" ".join(str(a.seq) for a in anchors(ctx.service("store"))))


class OrderedStore(MemoryStore):
    """A memory store that notes, in order, its ledger entries and the step records put."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def put(self, data: bytes) -> str:
        if b'"format":"orch.step/1"' in data:
            self.order.append("step " + orjson.loads(data)["step_id"])
        return super().put(data)

    def ledger_append(self, entry: bytes, *, at: int | None = None) -> int | None:
        index = super().ledger_append(entry, at=at)
        self.order.append(orjson.loads(entry)["type"])
        return index


def anchors(store: ArtifactStore) -> list[AnchorEntry]:
    found = [parse_entry(data) for _, data in ledger_of(store).entries()]
    return [a for a in found if isinstance(a, AnchorEntry) and a.source == "tool-audit"]


def one_node(agent: Any = pinger) -> orch.Pipeline:
    p = orch.PipelineBuilder("anchors")
    p.node("s", agent, p.input("task", Task))
    return p.build()


async def run(
    pipeline: orch.Pipeline, store: ArtifactStore, log: Any, **inputs: Any
) -> orch.RunResult:
    services = {"tools": ToolBroker([ping, wipe], audit=log), "principal": WHO, "store": store}
    return await orch.arun(pipeline, inputs, store=store, services=services)


async def test_a_step_anchors_the_last_entry_of_its_calls_before_its_record(
    tmp_path: Path,
) -> None:
    store, log = OrderedStore(), SQLiteAuditLog(tmp_path / "audit.db")
    result = await run(one_node(), store, log, task=Task(calls=3))
    assert result.ok
    entries = log.entries("acme")
    assert [(a.seq, a.hash, a.run) for a in anchors(store)] == [(2, entries[2].hash, result.run_id)]
    order = store.order
    assert order.index("anchor") < order.index("step s") < order.index("seal")
    assert verify_anchored(entries, "acme", store) == []
    log.close()


async def test_each_step_anchors_its_own_calls(tmp_path: Path) -> None:
    p = orch.PipelineBuilder("two-steps")
    a = p.node("a", pinger, p.input("task", Task))
    p.node("b", pinger, n=a.field("n"), calls=a.field("calls"))
    store, log = OrderedStore(), SQLiteAuditLog(tmp_path / "audit.db")
    result = await run(p.build(), store, log, task=Task(calls=2))
    assert result.ok
    assert [a.seq for a in anchors(store)] == [1, 3]
    tail = [x for x in store.order if x in ("anchor", "step a", "step b")]
    assert tail == ["anchor", "step a", "anchor", "step b"]
    assert verify_anchored(log.entries("acme"), "acme", store) == []
    log.close()


async def test_a_failed_step_is_anchored_before_the_run_is_sealed(tmp_path: Path) -> None:
    store, log = OrderedStore(), SQLiteAuditLog(tmp_path / "audit.db")
    result = await run(one_node(), store, log, task=Task(calls=2, fail=True))
    assert result.status == "failed"
    assert [a.seq for a in anchors(store)] == [1]
    assert store.order.index("anchor") < store.order.index("seal")
    log.close()


async def test_a_denied_call_is_anchored_at_once(tmp_path: Path) -> None:
    """A denial is recorded nowhere but in the chain: its entry is anchored as it is made,
    and that anchor covers the step's earlier entry, whose own anchor is then not written."""
    store, log = MemoryStore(), SQLiteAuditLog(tmp_path / "audit.db")
    result = await run(one_node(denied_then_count), store, log, task=Task())
    assert result.ok
    assert result.outputs["s"].text == "1"  # read inside the step, right after the denial
    pinged, denied = log.entries("acme")
    assert pinged.result is not None
    assert denied.outcome == "permission_denied" and denied.result is None
    assert [a.seq for a in anchors(store)] == [1]
    assert verify_anchored([pinged, denied], "acme", store) == []
    log.close()


async def test_a_long_step_is_anchored_every_so_many_entries(tmp_path: Path) -> None:
    store, log = MemoryStore(), SQLiteAuditLog(tmp_path / "audit.db")
    calls = 2 * ANCHOR_LIMIT + 2
    assert (await run(one_node(), store, log, task=Task(calls=calls))).ok
    assert [a.seq for a in anchors(store)] == [ANCHOR_LIMIT - 1, 2 * ANCHOR_LIMIT - 1, calls - 1]
    log.close()


async def test_identical_calls_of_two_runs_need_an_entry_each(tmp_path: Path) -> None:
    """Two runs of the same pipeline and inputs record byte-identical tool calls (one effect
    record key): the chain must hold an entry for each of them."""
    store, path = MemoryStore(), tmp_path / "audit.db"
    log = SQLiteAuditLog(path)
    for _ in range(2):
        assert (await run(one_node(), store, log, task=Task())).ok
    first, second = log.entries("acme")
    assert first.result == second.result
    log.close()
    _delete_last_row(path)
    rolled_back = SQLiteAuditLog(path)
    problems = verify_anchored(rolled_back.entries("acme"), "acme", store)
    assert any("holds no entry for it" in p for p in problems), problems
    rolled_back.close()


def _delete_last_row(path: Path) -> None:
    """Roll the audit file back by one entry, as someone with write access to it could."""
    db = sqlite3.connect(path)
    db.execute("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
    db.commit()
    db.close()


# A run killed mid-step, after two tool calls: its step never ends, so their entries are never
# anchored by it.
KILLED = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import orch
    from test_audit_anchors import WHO, Task, one_node, ping, wipe
    from agents.tools import SQLiteAuditLog, ToolBroker
    from traces import DirectoryStore

    @orch.agent(name="two-then-hang", version="1")
    async def two_then_hang(task: Task, ctx: orch.Context) -> Task:
        tools = ctx.service("tools")
        await tools.call(ctx, "ping", {"n": 1})
        await tools.call(ctx, "ping", {"n": 2})
        Path(sys.argv[4]).touch()  # both calls made and audited: kill now
        await asyncio.sleep(600)
        return task

    broker = ToolBroker([ping, wipe], audit=SQLiteAuditLog(sys.argv[3]))
    services = {"tools": broker, "principal": WHO}
    pipeline, store = one_node(two_then_hang), DirectoryStore(sys.argv[2])
    asyncio.run(orch.arun(pipeline, {"task": Task()}, store=store, services=services))
    """
)


def _kill_mid_step(store_dir: Path, audit_path: Path, ready: Path) -> None:
    """Run ``KILLED`` in a process and SIGKILL it once its step made its two calls."""
    here = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, here, str(store_dir), str(audit_path), str(ready)],
        env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()!r}")
            assert time.monotonic() < deadline, "the calls were not made in time"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.slow
def test_a_chain_rolled_back_after_a_kill_mid_step_is_caught(tmp_path: Path) -> None:
    store_dir, audit_path = tmp_path / "store", tmp_path / "audit.db"
    _kill_mid_step(store_dir, audit_path, tmp_path / "ready")
    store = DirectoryStore(store_dir)
    log = SQLiteAuditLog(audit_path)
    entries = log.entries("acme")
    assert len(entries) == 2 and all(e.result for e in entries)
    assert anchors(store) == []  # the step never ended: nothing anchored its calls
    assert verify_anchored(entries, "acme", store) == []
    log.close()

    # Roll the last entry back, then let another run append (and anchor) over it: the new
    # anchors agree with the rolled-back chain, the killed run's records do not.
    _delete_last_row(audit_path)
    log = SQLiteAuditLog(audit_path)
    assert asyncio.run(run(one_node(), store, log, task=Task(n=7))).ok
    entries = log.entries("acme")
    assert [a.seq for a in anchors(store)] == [1]
    assert _anchor_problems(entries, "acme", ledger_of(store).entries()) == []
    problems = verify_anchored(entries, "acme", store)
    assert len(problems) == 1, problems
    assert "recorded tool call 'ping'" in problems[0]
    assert "the chain holds no entry for it" in problems[0]
    log.close()
    store.close()
