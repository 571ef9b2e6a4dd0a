"""Fault tests of the tool broker against a misbehaving stdio MCP server (``faulty_server.py``).

Each fault is provoked in a real run (``orch.arun``) whose one agent calls the tool through
the broker, and is checked four ways: the structured error (category, retryable); how many
attempts were made, counted both in the audit log and on the server (its request log); the
record (one audit entry per attempt with outcome, invoked and latency, one failed effect per
attempt in the step record); and an offline replay (``orch._replay.areplay`` with a broker
whose server command does not exist) that is clean and reproduces the same error.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import faulty_server as fs
import pytest
from pydantic import BaseModel, Field
from tool_servers import child_pids

import orch
from agents.tools import (
    McpSource,
    MemoryAuditLog,
    Principal,
    TimeBudget,
    ToolBroker,
)
from agents.tools._audit import AuditEntry
from agents.tools._broker import ToolOutcome
from orch import Context, PipelineBuilder, agent
from orch._replay import areplay
from traces import EffectRecord, MemoryStore, StepRecord

pytestmark = pytest.mark.slow

WHO = Principal(id="alice", tenant="acme", scopes={"*"})
TOOL_ERROR = "agents.tools.errors.ToolCallError"  # pinned: records keep the old name


# -- a one-step pipeline whose agent calls a tool -------------------------------------------


class Call(BaseModel):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Reply(BaseModel):
    text: str


@agent(name="caller", version="1")
async def caller(call: Call, ctx: Context) -> Reply:
    """Call the tool (within the run's ``budget`` service, when it is a TimeBudget)."""
    broker: ToolBroker = ctx.service("tools")
    budget: TimeBudget | None = ctx.service("budget")
    result = await broker.call(ctx, call.tool, call.arguments, budget=budget)
    return Reply(text=result.text)


def _pipeline() -> orch.Pipeline:
    p = PipelineBuilder("tool-faults")
    request = p.input("request", Call)
    p.node("call", caller, request)
    return p.build()


PIPELINE = _pipeline()


def services(broker: ToolBroker, budget: TimeBudget | None = None) -> dict[str, Any]:
    return {"tools": broker, "principal": WHO, "budget": budget}


async def run_call(
    broker: ToolBroker,
    tool: str,
    arguments: dict[str, Any] | None = None,
    *,
    store: MemoryStore,
    budget: TimeBudget | None = None,
) -> orch.RunResult:
    return await orch.arun(
        PIPELINE,
        {"request": {"tool": tool, "arguments": arguments or {}}},
        store=store,
        services=services(broker, budget),
    )


# -- reading the record back --------------------------------------------------------------


def step_record(store: MemoryStore, result: orch.RunResult) -> StepRecord:
    return StepRecord.model_validate(store.get_value(result.steps["call"].record_key))


def effect_records(store: MemoryStore, result: orch.RunResult) -> list[EffectRecord]:
    """The step's tool-call attempts (effects of kind ``tool``), in order; other effects,
    such as a recorded listing of the server's tools, are not attempts."""
    step = step_record(store, result)
    effects = [EffectRecord.model_validate(store.get_value(k)) for k in step.effects]
    return [e for e in effects if e.kind == "tool"]


def outcomes(store: MemoryStore, result: orch.RunResult) -> list[ToolOutcome]:
    found = []
    for effect in effect_records(store, result):
        assert effect.response is not None, "a tool attempt records its outcome, failed or not"
        found.append(ToolOutcome.model_validate(store.get_value(effect.response)))
    return found


def check_failed_record(
    store: MemoryStore,
    result: orch.RunResult,
    broker: ToolBroker,
    *,
    tool: str,
    categories: list[str],
    invoked: list[bool],
) -> list[AuditEntry]:
    """The run failed with the last category; one audit entry and one failed effect per
    attempt, in order, that agree with each other; returns the audit entries."""
    assert len(categories) == len(invoked)
    assert result.status == "failed"
    step = step_record(store, result)
    assert step.status == "failed"
    assert step.error is not None and step.error.type == TOOL_ERROR
    assert f": {categories[-1]}: " in step.error.message
    if len(categories) > 1:
        assert f"after {len(categories)} attempts" in step.error.message

    effects = effect_records(store, result)
    assert [(e.target, e.status) for e in effects] == [(tool, "failed")] * len(categories)
    assert [e.error.type if e.error else None for e in effects] == ["ToolError"] * len(effects)
    assert [e.error.message.split(":")[0] if e.error else None for e in effects] == categories

    found = outcomes(store, result)
    assert [(o.ok, o.error.category if o.error else None) for o in found] == [
        (False, c) for c in categories
    ]
    assert [o.invoked for o in found] == invoked

    entries = broker.audit.entries(WHO.tenant)
    assert [(e.attempt, e.outcome, e.invoked) for e in entries] == [
        (i + 1, c, v) for i, (c, v) in enumerate(zip(categories, invoked, strict=True))
    ]
    for entry, effect in zip(entries, effects, strict=True):
        assert entry.run_id == result.run_id and entry.step_id == "call"
        assert entry.tool == tool and entry.source == "f"
        assert entry.effect == effect.index
        assert entry.request == effect.request, "the audit entry names the recorded request"
        # Latency is measured for every attempt (its value is wall-clock time: not asserted).
        assert isinstance(entry.latency_ms, float) and entry.latency_ms >= 0
        if entry.invoked:
            assert entry.latency_ms > 0
    assert isinstance(broker.audit, MemoryAuditLog)
    assert broker.audit.verify(WHO.tenant) == [], "the tenant's hash chain is intact"
    return entries


# -- servers and brokers ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_server_left_running() -> Iterator[None]:
    before = set(child_pids(fs.SCRIPT))
    yield
    left = [pid for pid in child_pids(fs.SCRIPT) if pid not in before]
    for pid in left:  # never leak one into the next test, then say so
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"faulty servers still running after the test: {left}"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """The request log of the faulty servers a test starts."""
    return tmp_path / "requests.log"


def faulty(log: Path, *args: str, **options: Any) -> McpSource:
    """A faulty stdio server as source ``f``, logging to ``log``."""
    return McpSource("f", command=[*fs.command(), *args], env={"FAULTY_LOG": str(log)}, **options)


@asynccontextmanager
async def opened(source: McpSource, **options: Any) -> AsyncIterator[ToolBroker]:
    broker = ToolBroker([source], backoff_s=0.01, **options)
    try:
        yield broker
    finally:
        await broker.aclose()


async def check_replays_offline(
    store: MemoryStore,
    result: orch.RunResult,
    tmp_path: Path,
    *,
    budget: TimeBudget | None = None,
    max_attempts: int = 3,
    **options: Any,
) -> None:
    """Replay the run with a broker whose server cannot even be started: it must be clean,
    reach the same error, and start nothing."""
    offline = McpSource("f", command=[str(tmp_path / "no-such-server")], **options)
    broker = ToolBroker([offline], backoff_s=0.01, max_attempts=max_attempts)
    try:
        report = await areplay(PIPELINE, result.run_id, store, services=services(broker, budget))
    finally:
        await broker.aclose()
    assert report.divergences == []
    assert report.clean, report.to_json()
    assert report.result.root_hash == result.root_hash
    assert step_record(store, report.result).error == step_record(store, result).error
    assert offline.connects == 0
    assert broker.audit.entries(WHO.tenant) == [], "a replay calls nothing, so audits nothing"


# -- the server process dies --------------------------------------------------------------


async def _kill_when_called(log: Path, tool: str, killed: list[int]) -> None:
    """SIGKILL the server process as soon as it has received a call of ``tool``."""
    for _ in range(3000):  # a guard against a hung test (30 s), not a measurement
        if fs.tool_calls(log, tool):
            break
        await anyio.sleep(0.01)
    else:
        pytest.fail(f"the server never received a call of {tool!r}")
    pid = fs.tool_calls(log, tool)[0]
    assert pid in child_pids(fs.SCRIPT), "the pid the server logged is our child process"
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


async def test_sigkill_mid_call_is_unavailable_and_the_retry_reconnects(
    log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    source = faulty(log)
    killed: list[int] = []
    async with opened(source) as broker, anyio.create_task_group() as tg:
        tg.start_soon(_kill_when_called, log, "hang_first", killed)
        result = await run_call(broker, "f.hang_first", store=store)

    assert result.status == "ok", result.error
    [first, second] = fs.pids(log)
    assert killed == [first]
    assert fs.tool_calls(log, "hang_first") == [first, second]
    assert result.outputs["call"].text == f"served by pid {second}"
    assert second != first
    assert source.connects == 2

    effects = effect_records(store, result)
    assert [e.status for e in effects] == ["failed", "ok"]
    first_try, retry = outcomes(store, result)
    assert first_try.error is not None
    assert first_try.error.category == "unavailable" and first_try.error.retryable
    assert first_try.invoked and retry.ok and retry.invoked
    entries = broker.audit.entries(WHO.tenant)
    assert [(e.attempt, e.outcome, e.invoked, e.effect) for e in entries] == [
        (1, "unavailable", True, 0),
        (2, "ok", True, 1),
    ]
    assert entries[0].retryable and entries[1].result is not None
    assert all(e.latency_ms > 0 for e in entries)
    await check_replays_offline(store, result, tmp_path)


async def test_exit_mid_call_is_retried_on_a_new_process(log: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    source = faulty(log)
    async with opened(source) as broker:
        result = await run_call(broker, "f.exit_first", store=store)

    assert result.status == "ok", result.error
    first, second = fs.pids(log)
    assert fs.tool_calls(log, "exit_first") == [first, second]
    assert result.outputs["call"].text == f"served by pid {second}"
    assert source.connects == 2
    failed, ok = outcomes(store, result)
    assert failed.error is not None and failed.error.category == "unavailable"
    # The server's last words are part of the error.
    assert "exiting mid-call of exit_first" in failed.error.message
    assert ok.ok
    assert [e.outcome for e in broker.audit.entries(WHO.tenant)] == ["unavailable", "ok"]
    await check_replays_offline(store, result, tmp_path)


async def test_a_call_that_reached_a_non_idempotent_tool_is_not_made_again(
    log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    source = faulty(log)
    async with opened(source) as broker:
        result = await run_call(broker, "f.debit_first", store=store)

    # The process died with the call in hand: it may have debited. One attempt, no retry.
    assert result.status == "failed"
    assert "not retried: the call reached 'f.debit_first'" in result.error.message
    (first,) = fs.pids(log)
    assert fs.tool_calls(log, "debit_first") == [first]
    (failed,) = outcomes(store, result)
    assert failed.error is not None and failed.error.category == "unavailable"
    assert not failed.error.retryable and failed.invoked and failed.next_attempt_in_s is None
    assert [e.outcome for e in broker.audit.entries(WHO.tenant)] == ["unavailable"]
    await check_replays_offline(store, result, tmp_path)


async def test_a_policy_may_declare_a_tool_idempotent(log: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    source = faulty(log, idempotent={"debit_first": True})
    async with opened(source) as broker:
        result = await run_call(broker, "f.debit_first", store=store)
    assert result.status == "ok", result.error
    first, second = fs.pids(log)
    assert fs.tool_calls(log, "debit_first") == [first, second]
    await check_replays_offline(store, result, tmp_path)


async def test_a_server_that_always_exits_fails_after_max_attempts(
    log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    source = faulty(log)
    async with opened(source, max_attempts=3) as broker:
        result = await run_call(broker, "f.exit_mid_call", store=store)

    check_failed_record(
        store,
        result,
        broker,
        tool="f.exit_mid_call",
        categories=["unavailable"] * 3,
        invoked=[True] * 3,
    )
    started = fs.pids(log)
    assert len(set(started)) == 3, "every attempt ran on a new process"
    assert fs.tool_calls(log, "exit_mid_call") == started
    assert source.connects == 3
    assert all(e.retryable for e in broker.audit.entries(WHO.tenant))
    await check_replays_offline(store, result, tmp_path)


async def test_a_server_that_exits_on_start_is_unavailable_with_its_stderr(
    log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    source = faulty(log, "--mode", "exit-on-start")
    async with opened(source, max_attempts=2) as broker:
        result = await run_call(broker, "f.echo", {"text": "hi"}, store=store)

    entries = check_failed_record(
        store,
        result,
        broker,
        tool="f.echo",
        categories=["unavailable"] * 2,
        invoked=[False] * 2,
    )
    assert len(fs.pids(log)) == 2 and fs.tool_calls(log) == []
    assert source.connects == 2
    assert all("configured to exit on start" in e.message for e in entries)
    await check_replays_offline(store, result, tmp_path, max_attempts=2)


async def test_a_server_that_cannot_be_started_is_unavailable_and_not_retried(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    source = McpSource("f", command=[str(tmp_path / "not-installed")])
    async with opened(source) as broker:
        result = await run_call(broker, "f.echo", {"text": "hi"}, store=store)

    [entry] = check_failed_record(
        store, result, broker, tool="f.echo", categories=["unavailable"], invoked=[False]
    )
    assert not entry.retryable, "a missing executable does not come back on a retry"
    assert "install it or correct the command" in entry.message
    assert source.connects == 1
    # With no schema, nothing says which arguments are secret: none of their values is
    # recorded (fail closed).
    [effect] = effect_records(store, result)
    assert store.get_value(effect.request)["arguments"] == {"text": "[redacted]"}
    await check_replays_offline(store, result, tmp_path)


async def test_a_connection_error_names_the_tool_that_was_called(tmp_path: Path) -> None:
    """Not the server ('f'): the error is about the call the caller made."""
    store = MemoryStore()
    async with opened(McpSource("f", command=[str(tmp_path / "not-installed")])) as broker:
        result = await run_call(broker, "f.echo", {"text": "hi"}, store=store)
    [outcome] = outcomes(store, result)
    assert outcome.error is not None and outcome.error.category == "unavailable"
    assert outcome.error.tool == "f.echo"


# -- the server hangs ---------------------------------------------------------------------


async def test_a_call_that_hangs_past_its_timeout_is_timeout_and_retried(
    log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    options: dict[str, Any] = {"tool_timeouts": {"hang": 0.2}}
    source = faulty(log, **options)
    async with opened(source, max_attempts=2) as broker:
        result = await run_call(broker, "f.hang", store=store)

    entries = check_failed_record(
        store, result, broker, tool="f.hang", categories=["timeout"] * 2, invoked=[True] * 2
    )
    assert all(e.retryable and e.timeout_s == 0.2 for e in entries)
    assert [o.timeout_s for o in outcomes(store, result)] == [0.2, 0.2]
    [pid] = fs.pids(log)
    assert fs.tool_calls(log, "hang") == [pid, pid], "a timeout keeps the connection"
    assert source.connects == 1
    await check_replays_offline(store, result, tmp_path, max_attempts=2, **options)


class AttemptClock:
    """A budget clock that advances one second per invocation of ``tool`` as it ends (the
    broker adds each invocation's latency to the tool's history right then), so that the
    budget's arithmetic is exact whatever the machine's speed."""

    def __init__(self, broker: ToolBroker, tool: str) -> None:
        self.broker = broker
        self.tool = tool

    def __call__(self) -> float:
        return float(len(self.broker.history(self.tool)))


# expected_s is the budget's prior for a tool with no latency history; timeout_s caps a call.
BUDGETED: dict[str, Any] = {"tool_timeouts": {"hang": 0.2}, "expected_s": 0.2}


async def test_a_budget_refuses_the_retry_it_cannot_fit(log: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    source = faulty(log, **BUDGETED)
    async with opened(source, max_attempts=10) as broker:
        # Two attempts of one (logical) second leave 0.1 s, less than the 0.2 s expected.
        budget = TimeBudget(2.1, ["f.hang"], clock=AttemptClock(broker, "f.hang"))
        result = await run_call(broker, "f.hang", store=store, budget=budget)

    entries = check_failed_record(
        store,
        result,
        broker,
        tool="f.hang",
        categories=["timeout"] * 3,
        invoked=[True, True, False],
    )
    assert [e.retryable for e in entries] == [True, True, False]
    assert "refused before it started" in entries[2].message
    assert len(fs.tool_calls(log, "hang")) == 2, "the refused attempt never reached the server"
    assert source.connects == 1
    allocations = [o.allocation for o in outcomes(store, result)]
    assert [a["fits"] if a else None for a in allocations[:2]] == [True, True]
    assert [a["remaining_s"] if a else None for a in allocations[:2]] == [2.1, 1.1]
    assert "has 0.100s left, less than the 0.200s" in entries[2].message
    # The budget's arithmetic is recorded, so the replay serves it instead of redoing it.
    replay_budget = TimeBudget(2.1, ["f.hang"])
    await check_replays_offline(
        store, result, tmp_path, budget=replay_budget, max_attempts=10, **BUDGETED
    )


async def test_a_budget_stops_the_retries_when_no_time_is_left(log: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    source = faulty(log, **BUDGETED)
    async with opened(source, max_attempts=10) as broker:
        budget = TimeBudget(2.0, ["f.hang"], clock=AttemptClock(broker, "f.hang"))
        result = await run_call(broker, "f.hang", store=store, budget=budget)

    check_failed_record(
        store, result, broker, tool="f.hang", categories=["timeout"] * 2, invoked=[True] * 2
    )
    assert len(fs.tool_calls(log, "hang")) == 2
    assert budget.remaining_s == 0
    assert [o.next_attempt_in_s for o in outcomes(store, result)] == [0.01, None]
    # The decision to stop was recorded: a replay, whose own budget is untouched (nothing
    # takes time when every attempt is served), stops where the run stopped.
    await check_replays_offline(
        store,
        result,
        tmp_path,
        budget=TimeBudget(2.0, ["f.hang"]),
        max_attempts=10,
        **BUDGETED,
    )


async def test_a_call_that_cannot_fit_at_all_is_refused_before_it_starts(
    log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    source = faulty(log, **BUDGETED)
    async with opened(source) as broker:
        budget = TimeBudget(0.05, ["f.hang"])  # less than the 0.2 s the call is expected to take
        result = await run_call(broker, "f.hang", store=store, budget=budget)

    [entry] = check_failed_record(
        store, result, broker, tool="f.hang", categories=["timeout"], invoked=[False]
    )
    assert not entry.retryable and "refused before it started" in entry.message
    assert entry.timeout_s is None
    assert fs.pids(log) == [] and source.connects == 0, "refused before connecting"
    await check_replays_offline(store, result, tmp_path, budget=TimeBudget(0.05), **BUDGETED)


async def test_time_spent_connecting_counts_against_the_budget(log: Path, tmp_path: Path) -> None:
    """The budget's clock starts with the call, not at its first allocation: a server slow
    to start uses up the budget, and no retry starts another one."""
    store = MemoryStore()
    source = faulty(log, "--start-delay", "0.4", **BUDGETED)
    async with opened(source, max_attempts=3) as broker:
        # The server takes at least 0.4 s to start, so less than the 0.2 s the call is expected
        # to take is left of 0.5 s once it has, whatever the machine's speed.
        budget = TimeBudget(0.5, ["f.exit_mid_call"])
        result = await run_call(broker, "f.exit_mid_call", store=store, budget=budget)
    [outcome] = outcomes(store, result)
    assert outcome.error is not None and outcome.error.category == "timeout"
    assert not outcome.invoked and "refused before it started" in outcome.error.message
    assert len(fs.pids(log)) == 1 and fs.tool_calls(log) == []
    await check_replays_offline(
        store, result, tmp_path, budget=TimeBudget(0.5, ["f.exit_mid_call"]), **BUDGETED
    )


async def test_a_server_stuck_in_the_handshake_is_shut_down(log: Path, tmp_path: Path) -> None:
    """connect_timeout_s cancels the connection itself, so its process is stopped (and the
    broker's close does not wait for a handshake that never ends)."""
    store = MemoryStore()
    source = faulty(log, "--mode", "no-handshake", connect_timeout_s=0.2)
    async with opened(source, max_attempts=2) as broker:
        result = await run_call(broker, "f.echo", {"text": "hi"}, store=store)
        started = fs.pids(log)
        assert len(started) == 2
        assert child_pids(fs.SCRIPT) == [], "each stuck server was stopped as its attempt ended"
    entries = check_failed_record(
        store,
        result,
        broker,
        tool="f.echo",
        categories=["unavailable"] * 2,
        invoked=[False] * 2,
    )
    assert all("did not finish connecting within 0.2s" in e.message for e in entries)
    assert [pid for pid, event in fs.read_log(log) if event == "initialize"] == started
    await check_replays_offline(store, result, tmp_path, max_attempts=2)


# -- the server answers wrongly -----------------------------------------------------------


@pytest.mark.anyio  # explicit: a parametrized async test needs it at collection time
@pytest.mark.parametrize("tool", ["malformed", "malformed_block"])
async def test_a_malformed_result_is_internal_and_not_retried(
    tool: str, log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    source = faulty(log)
    async with opened(source) as broker:
        result = await run_call(broker, f"f.{tool}", store=store)

    [entry] = check_failed_record(
        store, result, broker, tool=f"f.{tool}", categories=["internal"], invoked=[True]
    )
    assert not entry.retryable and "malformed" in entry.message
    assert len(fs.tool_calls(log, tool)) == 1
    assert source.connects == 1
    await check_replays_offline(store, result, tmp_path)


async def test_a_response_that_is_not_json_is_internal_and_not_retried(
    log: Path, tmp_path: Path
) -> None:
    """The SDK drops a line it cannot parse, so the call can only time out; the broker
    still reports what happened (internal), and a retry would get the same answer."""
    store = MemoryStore()
    options: dict[str, Any] = {"tool_timeouts": {"not_json": 0.2}}
    async with opened(faulty(log, **options), max_attempts=2) as broker:
        result = await run_call(broker, "f.not_json", store=store)
    [entry] = check_failed_record(
        store, result, broker, tool="f.not_json", categories=["internal"], invoked=[True]
    )
    assert not entry.retryable and "not valid JSON-RPC" in entry.message
    assert len(fs.tool_calls(log, "not_json")) == 1
    await check_replays_offline(store, result, tmp_path, max_attempts=2, **options)


async def test_a_malformed_listing_is_internal_and_not_retried(log: Path, tmp_path: Path) -> None:
    """The server answers tools/list wrongly: every reconnect would get the same answer."""
    store = MemoryStore()
    async with opened(faulty(log, "--mode", "bad-listing")) as broker:
        result = await run_call(broker, "f.echo", {"text": "hi"}, store=store)
    [entry] = check_failed_record(
        store, result, broker, tool="f.echo", categories=["internal"], invoked=[False]
    )
    assert not entry.retryable and "malformed" in entry.message
    assert len(fs.pids(log)) == 1 and fs.tool_calls(log) == []
    await check_replays_offline(store, result, tmp_path)


async def test_a_tool_reporting_is_error_is_a_structured_error_not_retried(
    log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    source = faulty(log, alternatives={"is_error": "f.echo"})
    async with opened(source) as broker:
        result = await run_call(broker, "f.is_error", store=store)

    [entry] = check_failed_record(
        store, result, broker, tool="f.is_error", categories=["internal"], invoked=[True]
    )
    assert not entry.retryable
    assert entry.message == "the warehouse refused the order"
    [outcome] = outcomes(store, result)
    assert outcome.error is not None
    assert outcome.error.alternative == "f.echo"
    assert outcome.error.for_model() == {
        "error": "internal",
        "message": "the warehouse refused the order",
        "alternative": "f.echo",
    }
    assert outcome.result is None
    assert len(fs.tool_calls(log, "is_error")) == 1
    await check_replays_offline(store, result, tmp_path, alternatives={"is_error": "f.echo"})


async def test_a_json_rpc_invalid_params_error_is_invalid_arguments(
    log: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    source = faulty(log)
    async with opened(source) as broker:
        result = await run_call(broker, "f.bad_params", store=store)

    [entry] = check_failed_record(
        store, result, broker, tool="f.bad_params", categories=["invalid_arguments"], invoked=[True]
    )
    assert not entry.retryable
    assert "quantity must be positive" in entry.message
    [outcome] = outcomes(store, result)
    assert outcome.error is not None and outcome.error.code == -32602
    assert len(fs.tool_calls(log, "bad_params")) == 1
    assert source.connects == 1
    await check_replays_offline(store, result, tmp_path)


async def test_a_server_defined_error_is_not_a_lost_connection(log: Path, tmp_path: Path) -> None:
    """-32000 is also the SDK's own "connection closed"; from the server (JSON-RPC leaves
    -32000..-32099 to servers) it is an application error: no reconnect, no repeated call."""
    store = MemoryStore()
    source = faulty(log)
    async with opened(source) as broker:
        result = await run_call(broker, "f.server_error", store=store)
    [entry] = check_failed_record(
        store, result, broker, tool="f.server_error", categories=["internal"], invoked=[True]
    )
    assert not entry.retryable and "the database is locked" in entry.message
    [outcome] = outcomes(store, result)
    assert outcome.error is not None and outcome.error.code == -32000
    assert len(fs.tool_calls(log, "server_error")) == 1
    assert source.connects == 1
    await check_replays_offline(store, result, tmp_path)


def test_the_faulty_server_log_format(tmp_path: Path) -> None:
    """The helpers the tests count with read what the server writes."""
    path = tmp_path / "x.log"
    path.write_text("12 start\n12 initialize\n12 tools/call echo\n13 start\n13 tools/call add\n")
    assert fs.pids(path) == [12, 13]
    assert fs.tool_calls(path) == [12, 13]
    assert fs.tool_calls(path, "echo") == [12]
    assert fs.read_log(tmp_path / "missing.log") == []
