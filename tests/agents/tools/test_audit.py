"""The audit log: per-tenant hash chains in memory and in SQLite, verification of changed
entries and gaps (the SQLite rows tampered with directly), tenant isolation, and appends from
several processes at once into one SQLite file."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

import orch
from agents.tools import (
    AuditEntry,
    AuditLog,
    MemoryAuditLog,
    Principal,
    SQLiteAuditLog,
    ToolBroker,
    tool,
)
from agents.tools._audit import entry_hash, verify_anchored
from traces import MemoryStore

AUDIT_PY = Path(__file__).resolve().parents[3] / "agents" / "tools" / "_audit.py"


def fields(tenant: str = "acme", **changes: Any) -> dict[str, Any]:
    """Every field of an entry but the chain's own (seq, prev, hash)."""
    base: dict[str, Any] = {
        "tenant": tenant,
        "principal": "alice",
        "scopes": ["orders:read"],
        "run_id": "run-1",
        "step_id": "s",
        "effect": 0,
        "tool": "search",
        "source": "local",
        "version": "1",
        "attempt": 1,
        "arguments": "sha256:args",
        "request": "sha256:request",
        "result": "sha256:result",
        "outcome": "ok",
        "message": "",
        "retryable": False,
        "invoked": True,
        "latency_ms": 1.5,
        "timeout_s": 30.0,
        "at": 1700000000.25,
    }
    return base | changes


Backend = Callable[[], Any]


@pytest.fixture(params=["memory", "sqlite"])
def make_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[SQLiteAuditLog] = []

    def make() -> Any:
        if request.param == "memory":
            return MemoryAuditLog()
        log = SQLiteAuditLog(tmp_path / "audit" / "log.db")
        opened.append(log)
        return log

    yield make
    for log in opened:
        log.close()


def fill(log: Any) -> None:
    for i, tenant in enumerate(["acme", "globex", "acme", "acme", "globex"]):
        log.append(fields(tenant, effect=i, tool=f"tool-{i}"))


def test_each_tenant_has_its_own_chain(make_log: Backend) -> None:
    log = make_log()
    assert isinstance(log, AuditLog)
    fill(log)
    for tenant, tools in [
        ("acme", ["tool-0", "tool-2", "tool-3"]),
        ("globex", ["tool-1", "tool-4"]),
    ]:
        chain = log.entries(tenant)
        assert [e.tool for e in chain] == tools
        assert [e.seq for e in chain] == list(range(len(tools)))
        assert chain[0].prev is None
        for before, after in itertools.pairwise(chain):
            assert after.prev == before.hash
        for e in chain:
            assert e.tenant == tenant
            assert e.hash == entry_hash(e.model_dump())
        assert log.verify(tenant) == []


def test_append_returns_the_sealed_entry(make_log: Backend) -> None:
    log = make_log()
    first = log.append(fields())
    second = log.append(fields(outcome="permission_denied", invoked=False))
    assert isinstance(first, AuditEntry)
    assert (first.seq, first.prev) == (0, None)
    assert (second.seq, second.prev) == (1, first.hash)
    assert log.entries("acme") == [first, second]


def test_a_tenant_reads_only_its_own_entries(make_log: Backend) -> None:
    log = make_log()
    fill(log)
    assert {e.tenant for e in log.entries("acme")} == {"acme"}
    assert {e.tenant for e in log.entries("globex")} == {"globex"}
    assert log.entries("initech") == []
    assert log.verify("initech") == []


def test_entries_are_a_copy(make_log: Backend) -> None:
    log = make_log()
    fill(log)
    log.entries("acme").clear()
    assert len(log.entries("acme")) == 3


def test_the_sqlite_log_persists_and_continues_its_chains(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SQLiteAuditLog(path)
    fill(log)
    log.close()
    again = SQLiteAuditLog(path)
    try:
        entry = again.append(fields("acme", tool="later"))
        assert entry.seq == 3
        assert entry.prev == again.entries("acme")[2].hash
        assert again.verify("acme") == []
        assert again.verify("globex") == []
    finally:
        again.close()


# -- tampering ----------------------------------------------------------------------------------


def test_verify_finds_a_changed_entry_in_memory() -> None:
    log = MemoryAuditLog()
    fill(log)
    chain = log._by_tenant["acme"]
    chain[1] = chain[1].model_copy(update={"outcome": "ok", "principal": "mallory"})
    problems = log.verify("acme")
    assert len(problems) == 1
    assert problems[0].startswith("entry #1: its fields hash to ")
    assert log.verify("globex") == []


def test_verify_finds_a_gap_in_memory() -> None:
    log = MemoryAuditLog()
    fill(log)
    del log._by_tenant["acme"][1]
    problems = log.verify("acme")
    assert any("entry #1: sequence number 2, expected 1 (a gap)" in p for p in problems)
    assert any(p.startswith("entry #1: links to ") for p in problems)


def _tamper(path: Path, tenant: str, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    db = sqlite3.connect(path)
    try:
        (body,) = db.execute(
            "SELECT body FROM audit WHERE tenant = ? AND seq = ?", (tenant, seq)
        ).fetchone()
        data = orjson.loads(body)
        change(data)
        with db:
            db.execute(
                "UPDATE audit SET body = ? WHERE tenant = ? AND seq = ?",
                (orjson.dumps(data, option=orjson.OPT_SORT_KEYS), tenant, seq),
            )
    finally:
        db.close()


def test_verify_finds_a_row_changed_in_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SQLiteAuditLog(path)
    try:
        fill(log)
        db = sqlite3.connect(path)
        with db:
            # The bytes of the row itself, as an editor of the file would change them.
            db.execute(
                "UPDATE audit SET body = replace(body, ?, ?) WHERE tenant = 'acme' AND seq = 1",
                (b'"outcome":"ok"', b'"outcome":"no"'),
            )
        db.close()
        assert log.entries("acme")[1].outcome == "no"
        problems = log.verify("acme")
        assert len(problems) == 1
        assert problems[0].startswith("entry #1: its fields hash to ")
        assert log.verify("globex") == []
    finally:
        log.close()


def test_verify_finds_a_resealed_entry_by_its_successor_link(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SQLiteAuditLog(path)
    try:
        fill(log)

        def reseal(data: dict[str, Any]) -> None:
            data["principal"] = "mallory"
            data["hash"] = entry_hash(data)  # the forger recomputes the entry's own hash

        _tamper(path, "acme", 1, reseal)
        problems = log.verify("acme")
        assert len(problems) == 1
        assert problems[0].startswith("entry #2: links to ")
    finally:
        log.close()


def test_verify_finds_a_row_deleted_from_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SQLiteAuditLog(path)
    try:
        fill(log)
        db = sqlite3.connect(path)
        with db:
            db.execute("DELETE FROM audit WHERE tenant = 'acme' AND seq = 1")
        db.close()
        problems = log.verify("acme")
        assert "entry #1: sequence number 2, expected 1 (a gap)" in problems
        assert log.verify("globex") == []
    finally:
        log.close()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("principal", "mallory"),
        ("scopes", ["*"]),
        ("tool", "delete_everything"),
        ("arguments", "sha256:other"),
        ("outcome", "permission_denied"),
        ("invoked", False),
        ("latency_ms", 2.5),
        ("at", 1.0),
    ],
)
def test_every_field_is_covered_by_the_hash(tmp_path: Path, name: str, value: Any) -> None:
    path = tmp_path / "log.db"
    log = SQLiteAuditLog(path)
    try:
        log.append(fields())
        _tamper(path, "acme", 0, lambda data: data.__setitem__(name, value))
        assert len(log.verify("acme")) == 1
    finally:
        log.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_an_entry_with_defaulted_or_coerced_fields_verifies(tmp_path: Path, backend: str) -> None:
    log: Any = MemoryAuditLog() if backend == "memory" else SQLiteAuditLog(tmp_path / "l.db")
    given = fields(latency_ms=5, at=1700000000)
    del given["message"], given["retryable"]
    try:
        log.append(given)
        assert log.verify("acme") == []
    finally:
        if isinstance(log, SQLiteAuditLog):
            log.close()


# -- concurrency --------------------------------------------------------------------------------


def test_threads_appending_at_once_keep_each_chain_gap_free(make_log: Backend) -> None:
    log = make_log()

    def work(k: int) -> None:
        for i in range(20):
            log.append(fields("acme" if i % 2 else "globex", principal=f"t{k}", effect=i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tenant in ("acme", "globex"):
        chain = log.entries(tenant)
        assert [e.seq for e in chain] == list(range(40))
        assert log.verify(tenant) == []


# The worker loads _audit.py by its path: importing the package would pull in the model SDKs and
# the MCP client, seconds of start-up per process for a module that needs none of them.
WORKER = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("audit_under_test", sys.argv[1])
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)
log = audit.SQLiteAuditLog(sys.argv[2])
who, n = sys.argv[3], int(sys.argv[4])
base = dict(
    scopes=[], run_id=None, step_id=None, source=None, version=None, attempt=1,
    arguments="sha256:a", request=None, result=None, outcome="ok", message="",
    retryable=False, invoked=True, latency_ms=0.0, timeout_s=None, at=0.0, tool="t",
)
for i in range(n):
    for tenant in ("acme", "globex"):
        log.append(dict(base, tenant=tenant, principal=who, effect=i))
log.close()
"""


@pytest.mark.slow
def test_processes_appending_into_one_file_keep_each_chain_gap_free(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "audit.db"  # created by the workers themselves, all at once
    workers, per_worker = 4, 20
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(AUDIT_PY), str(path), f"w{k}", str(per_worker)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for k in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    log = SQLiteAuditLog(path)
    try:
        for tenant in ("acme", "globex"):
            chain = log.entries(tenant)
            assert [e.seq for e in chain] == list(range(workers * per_worker))
            assert log.verify(tenant) == []
            by_worker = {f"w{k}": 0 for k in range(workers)}
            for e in chain:
                by_worker[e.principal] += 1
            assert by_worker == {f"w{k}": per_worker for k in range(workers)}
            # Each worker's own entries are in the order it appended them.
            for k in range(workers):
                mine = [e.effect for e in chain if e.principal == f"w{k}"]
                assert mine == list(range(per_worker))
    finally:
        log.close()


class _Task(BaseModel):
    n: int


class _Done(BaseModel):
    text: str


@orch.agent(name="caller", version="1")
async def _caller(task: _Task, ctx: orch.Context) -> _Done:
    tools = ctx.service("tools")
    first = await tools.call(ctx, "ping", {"n": task.n})
    second = await tools.call(ctx, "ping", {"n": task.n + 1})
    return _Done(text=first.text + second.text)


async def test_a_chain_is_checked_against_the_anchors_in_the_store_ledger(
    tmp_path: Path,
) -> None:
    """A tenant's chain rolled back, truncated or rewritten (re-sealed, so that its own links
    still hold) disagrees with the anchors in the run store's ledger: the step's one anchor,
    of its last entry, covers both (test_audit_anchors.py has the rest)."""

    @tool
    def ping(n: int) -> str:
        return f"pong {n}"

    p = orch.PipelineBuilder("anchored")
    p.node("s", _caller, n=p.input("n", int))
    log = SQLiteAuditLog(tmp_path / "audit.db")
    broker = ToolBroker([ping], audit=log)
    store = MemoryStore()
    who = Principal(id="alice", tenant="acme", scopes={"*"})
    result = await orch.arun(
        p.build(), {"n": 1}, store=store, services={"tools": broker, "principal": who}
    )
    assert result.ok
    entries = log.entries("acme")
    assert len(entries) == 2
    assert verify_anchored(entries, "acme", store) == []
    # Truncated (a rollback of the audit file): the ledger still holds the second anchor.
    assert "holds only 1: the chain was truncated or rolled back" in " ".join(
        verify_anchored(entries[:1], "acme", store)
    )
    # Rewritten and re-sealed so that its own chain verifies: the anchors disagree.
    forged = MemoryAuditLog()
    for e in entries:
        forged.append(e.model_dump(exclude={"seq", "prev", "hash"}) | {"message": "nothing"})
    rewritten = forged.entries("acme")
    assert forged.verify("acme") == []
    problems = verify_anchored(rewritten, "acme", store)
    assert len(problems) == 1 and "entry #1" in problems[0]
    assert "was rewritten or forked at or before this entry" in problems[0]
    log.close()
