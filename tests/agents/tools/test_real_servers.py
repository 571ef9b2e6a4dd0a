"""The tool broker against real MCP servers, inside real runs.

PyPI ``mcp-server-time`` and ``mcp-server-git`` over stdio, npm ``server-everything`` over
stdio and over streamable HTTP on 127.0.0.1, and an in-process ``MCPServer``: discovery as a
recorded effect, calls, arguments refused with hints before they reach the server, structured
content, one connection reused by every call, clean shutdown (no server process left behind,
also when a broker outlives the event loop of a run), a server killed between calls reconnected
by the retry and audited. Every run verifies and replays clean offline, with the server
unreachable and no connection opened.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field
from tool_servers import child_pids, free_port, python_server

from agents.tools import (
    CredentialVault,
    McpSource,
    Principal,
    ToolBroker,
    ToolCallError,
    ToolOutcome,
)
from orch import Context, PipelineBuilder, RunResult, agent, arun, run
from orch._replay import areplay
from traces import ArtifactStore, EffectRecord, MemoryStore, StepRecord, verify_run

NOWHERE = ["/nonexistent/orch-tests/mcp-server"]
"""The command of a replay's server: replay must never start it."""

# -- a pipeline that runs a script of tool calls ---------------------------------------------


class Call(BaseModel):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = None


class Script(BaseModel):
    calls: list[Call] = Field(default_factory=list)
    list_tools: bool = False
    parallel: bool = False
    """Make the calls as concurrent child steps (they race for the first connection)."""


class Reply(BaseModel):
    tool: str
    ok: bool
    result: dict[str, Any] | None = None
    """The ToolResult, as JSON."""
    error: dict[str, Any] | None = None
    """The ToolError, as JSON."""
    attempts: int = 1


class Transcript(BaseModel):
    listing: dict[str, Any] | None = None
    replies: list[Reply]


async def _call(ctx: Context, call: Call) -> Reply:
    broker: ToolBroker = ctx.service("tools")
    try:
        result = await broker.call(ctx, call.tool, call.arguments, timeout_s=call.timeout_s)
    except ToolCallError as exc:
        return Reply(
            tool=call.tool,
            ok=False,
            error=exc.error.model_dump(mode="json"),
            attempts=exc.attempts,
        )
    return Reply(tool=call.tool, ok=True, result=result.model_dump(mode="json"))


@agent(name="one-tool-call", version="1")
async def one_tool_call(call: Call, ctx: Context) -> Reply:
    return await _call(ctx, call)


@agent(name="tool-script", version="1")
async def tool_script(script: Script, ctx: Context) -> Transcript:
    listing = None
    if script.list_tools:
        listing = (await ctx.service("tools").list_tools(ctx)).model_dump(mode="json")
    if script.parallel:
        replies = await ctx.map(one_tool_call, script.calls)
    else:
        replies = [await _call(ctx, c) for c in script.calls]
    return Transcript(listing=listing, replies=replies)


def _pipeline() -> Any:
    p = PipelineBuilder("real-mcp-servers")
    p.output("transcript", p.node("calls", tool_script, p.input("script", Script)))
    return p.build()


PIPELINE = _pipeline()


def call(tool: str, timeout_s: float | None = None, **arguments: Any) -> Call:
    return Call(tool=tool, arguments=arguments, timeout_s=timeout_s)


async def run_script(
    broker: ToolBroker,
    who: Principal,
    store: ArtifactStore,
    *calls: Call,
    list_tools: bool = False,
    parallel: bool = False,
) -> tuple[RunResult, Transcript]:
    script = Script(calls=list(calls), list_tools=list_tools, parallel=parallel)
    services = {"tools": broker, "principal": who}
    result = await arun(PIPELINE, {"script": script}, store=store, services=services)
    assert result.ok, result.error
    return result, result.outputs["transcript"]


def effects(store: ArtifactStore, result: RunResult, step: str = "calls") -> list[EffectRecord]:
    """The effects a step of the run recorded, in order (``tool`` attempts and the
    ``tool-list`` of list_tools)."""
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)[step]))
    return [EffectRecord.model_validate(store.get_value(k)) for k in rec.effects]


def tool_effects(store: ArtifactStore, result: RunResult) -> list[EffectRecord]:
    """The step's tool call attempts, in order."""
    return [e for e in effects(store, result) if e.kind == "tool"]


def outcome(store: ArtifactStore, effect: EffectRecord) -> ToolOutcome:
    assert effect.kind == "tool" and effect.response is not None
    return ToolOutcome.model_validate(store.get_value(effect.response))


async def replays_offline(
    store: ArtifactStore,
    result: RunResult,
    who: Principal,
    *sources: McpSource,
    **broker_options: Any,
) -> None:
    """The run verifies, and replays clean with ``sources`` (whose servers are unreachable)
    in a broker configured like the original (``broker_options``): the same root hash and
    outputs, and not one connection opened."""
    report = verify_run(store, result.run_id)
    assert report.ok, report.problems
    assert report.complete
    broker = ToolBroker(sources, **broker_options)
    services = {"tools": broker, "principal": who}
    replay = await areplay(PIPELINE, result.run_id, store, services=services)
    assert replay.clean, replay.to_json()
    assert replay.result.root_hash == result.root_hash
    assert replay.result.outputs == result.outputs
    assert [s.connects for s in sources] == [0] * len(sources)
    await broker.aclose()


def replays_offline_sync(
    store: ArtifactStore, result: RunResult, who: Principal, *sources: McpSource
) -> None:
    anyio.run(functools.partial(replays_offline, store, result, who, *sources))


def error_of(reply: Reply) -> dict[str, Any]:
    assert not reply.ok and reply.error is not None, reply
    return reply.error


class Children:
    """Live child processes of this test process whose command line contains ``needle``,
    leaving out any that were already running when the test began (another test's)."""

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.before = set(child_pids(needle))

    def __call__(self) -> list[int]:
        return sorted(set(child_pids(self.needle)) - self.before)


async def wait_until(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` (a liveness guard, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s:g}s")
        await anyio.sleep(0.01)


# -- PyPI mcp-server-time over stdio ---------------------------------------------------------


@pytest.mark.slow
async def test_time_server_discovery_calls_and_refusals(alice: Principal) -> None:
    servers = Children("mcp_server_time")
    source = McpSource("time", command=python_server("mcp_server_time"))
    ghost = McpSource("ghost", command=NOWHERE)  # listed as unavailable, never fatal
    broker = ToolBroker([source, ghost])
    store = MemoryStore()
    calls = [
        call("time.get_current_time", timezone="Europe/Paris"),
        call(
            "time.convert_time",
            source_timezone="Europe/London",
            time="12:00",
            target_timezone="Asia/Tokyo",
        ),
        call("time.get_current_time"),  # timezone missing
        call("time.get_current_time", timezone=7),  # not a string
        call("time.convert_time", time="12:00"),  # two of three missing
        call("time.get_current_tme", timezone="UTC"),  # no such tool
        call("time.get_current_time", timezone="Mars/Olympus_Mons"),  # valid, yet the server fails
    ]
    try:
        result, out = await run_script(broker, alice, store, *calls, list_tools=True)
    finally:
        await broker.aclose()

    # Discovery: a recorded effect listing both tools with their input schemas.
    assert out.listing is not None
    assert "cannot start MCP server 'ghost'" in out.listing["unavailable"]["ghost"]
    listed = {t["name"]: t for t in out.listing["tools"]}
    assert set(listed) == {"time.get_current_time", "time.convert_time"}
    now_schema = listed["time.get_current_time"]["input_schema"]
    assert now_schema["required"] == ["timezone"]
    assert now_schema["properties"]["timezone"]["type"] == "string"
    convert_schema = listed["time.convert_time"]["input_schema"]
    assert set(convert_schema["required"]) == {"source_timezone", "time", "target_timezone"}
    assert all(t["source"] == "time" and t["version"] for t in listed.values())
    recorded = effects(store, result)
    assert (recorded[0].kind, recorded[0].target, recorded[0].status) == (
        "tool-list",
        "tools",
        "ok",
    )
    assert store.get_value(recorded[0].response) == out.listing

    now, converted, missing, wrong, partial, typo, mars = out.replies
    # Valid calls: structured content as the server sent it.
    assert now.ok and now.result is not None
    assert now.result["structured"]["timezone"] == "Europe/Paris"
    stamp = datetime.fromisoformat(now.result["structured"]["datetime"])
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() in (3600, 7200)
    assert json.loads(now.result["content"][0]["text"]) == now.result["structured"]
    assert converted.ok and converted.result is not None
    conv = converted.result["structured"]
    assert conv["source"]["timezone"] == "Europe/London"
    assert conv["target"]["timezone"] == "Asia/Tokyo"
    assert conv["time_difference"] in ("+8.0h", "+9.0h")
    assert datetime.fromisoformat(conv["target"]["datetime"]).hour in (20, 21)

    # Invalid arguments: refused with a hint per argument, never sent, never retried.
    assert error_of(missing)["category"] == "invalid_arguments"
    assert error_of(missing)["hints"] == {"timezone": "required argument is missing"}
    assert error_of(wrong)["hints"] == {"timezone": "expected string, got 7"}
    assert error_of(partial)["hints"] == {
        "source_timezone": "required argument is missing",
        "target_timezone": "required argument is missing",
    }
    assert not any(error_of(r)["retryable"] for r in (missing, wrong, partial))
    assert error_of(typo)["category"] == "not_found"
    assert error_of(typo)["alternative"] == "time.get_current_time"
    # A value the schema allows but the server rejects: it reached the server, which says
    # what is wrong in words only (isError). The broker cannot tell that it is about an
    # argument, so it reports an internal, non-retryable failure with the server's text.
    assert error_of(mars)["category"] == "internal"
    assert "Invalid timezone" in mars.error["message"]
    assert "Mars/Olympus_Mons" in mars.error["message"]
    assert not mars.error["retryable"]

    attempts = [e for e in recorded if e.kind == "tool"]
    assert [e.kind for e in recorded] == ["tool-list"] + ["tool"] * 7
    invoked = [outcome(store, e).invoked for e in attempts]
    assert invoked == [True, True, False, False, False, False, True]
    assert [e.status for e in attempts] == ["ok", "ok"] + ["failed"] * 5
    audit = broker.audit.entries("acme")
    # One audit entry per call: the refusals were not retried.
    outcomes = ["ok", "ok", *["invalid_arguments"] * 3, "not_found", "internal"]
    assert [(a.effect, a.outcome, a.invoked) for a in audit] == list(
        zip([e.index for e in attempts], outcomes, invoked, strict=True)
    )
    assert all(a.run_id == result.run_id and a.step_id == "calls" for a in audit)
    assert broker.audit.verify("acme") == []
    assert source.connects == 1
    assert servers() == []

    await replays_offline(
        store,
        result,
        alice,
        McpSource("time", command=NOWHERE),
        McpSource("ghost", command=NOWHERE),
    )


# -- PyPI mcp-server-git over stdio ----------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.org",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.org",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with two commits and an untracked file."""
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# demo\n")
    _git(path, "add", "README.md")
    _git(path, "commit", "-q", "-m", "first: add the readme")
    (path / "notes.txt").write_text("tool broker\n")
    _git(path, "add", "notes.txt")
    _git(path, "commit", "-q", "-m", "second: add notes")
    (path / "scratch.txt").write_text("not tracked\n")
    return path


@pytest.mark.slow
async def test_git_server_status_and_log(repo: Path, alice: Principal, tmp_path: Path) -> None:
    command = [*python_server("mcp_server_git"), "--repository", str(repo)]
    source = McpSource("git", command=command)
    broker = ToolBroker([source])
    store = MemoryStore()
    try:
        result, out = await run_script(
            broker,
            alice,
            store,
            call("git.git_status", repo_path=str(repo)),
            call("git.git_log", repo_path=str(repo), max_count=10),
            call("git.git_log", repo_path=str(repo), max_count="ten"),
            call("git.git_status", repo_path=str(tmp_path)),  # outside the allowed repository
        )
    finally:
        await broker.aclose()
    status, log, bad, outside = out.replies
    assert status.ok and status.result is not None
    status_text = status.result["content"][0]["text"]
    assert "On branch main" in status_text
    assert "scratch.txt" in status_text
    assert log.ok and log.result is not None
    log_text = log.result["content"][0]["text"]
    shas = _git(repo, "log", "--format=%H").split()
    assert len(shas) == 2
    assert all(sha in log_text for sha in shas)
    assert "first: add the readme" in log_text and "second: add notes" in log_text
    assert log_text.index("second: add notes") < log_text.index("first: add the readme")
    assert error_of(bad)["hints"] == {"max_count": 'expected integer, got "ten"'}
    # The server's own refusal: it was called, and said no (isError).
    assert "outside the allowed repository" in error_of(outside)["message"]
    assert not error_of(outside)["retryable"]
    assert [outcome(store, e).invoked for e in tool_effects(store, result)] == [
        True,
        True,
        False,
        True,
    ]
    assert source.connects == 1
    await replays_offline(store, result, alice, McpSource("git", command=NOWHERE))


# -- npm server-everything, over stdio and streamable HTTP -----------------------------------


@pytest.mark.slow
@pytest.mark.anyio  # explicit: a parametrized async test needs it at collection time
@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_everything_server(
    transport: str, request: pytest.FixtureRequest, alice: Principal
) -> None:
    if transport == "stdio":
        source = McpSource("everything", command=request.getfixturevalue("everything_stdio"))
        offline = McpSource("everything", command=NOWHERE)
    else:
        source = McpSource("everything", url=request.getfixturevalue("everything_http"))
        # A port nobody listens on: a replay that tried to connect would fail.
        offline = McpSource("everything", url=f"http://127.0.0.1:{free_port()}/mcp")
    broker = ToolBroker([source])
    store = MemoryStore()
    try:
        result, out = await run_script(
            broker,
            alice,
            store,
            call("everything.get-sum", a=2, b=3.5),
            call("everything.echo", message="héllo, wörld ✓"),
            call("everything.get-structured-content", location="Chicago"),
            call("everything.get-sum", a=1, b="two"),
            call("everything.get-sum", a=1),
            call("everything.get-structured-content", location="Paris"),
            call("everything.echo"),
            list_tools=True,
        )
    finally:
        await broker.aclose()
    assert out.listing is not None
    names = {t["name"] for t in out.listing["tools"]}
    assert {"everything.get-sum", "everything.echo", "everything.get-structured-content"} <= names

    total, echo, weather, typed, missing, enum, empty = out.replies
    assert total.ok and total.result is not None
    assert "5.5" in total.result["content"][0]["text"]
    assert echo.ok and echo.result is not None
    assert echo.result["content"] == [{"type": "text", "text": "Echo: héllo, wörld ✓"}]
    assert weather.ok and weather.result is not None
    structured = weather.result["structured"]
    assert isinstance(structured, dict)
    assert {"temperature", "conditions", "humidity"} <= set(structured)
    assert json.loads(weather.result["content"][0]["text"]) == structured

    assert error_of(typed)["hints"] == {"b": 'expected number, got "two"'}
    assert error_of(missing)["hints"] == {"b": "required argument is missing"}
    assert set(error_of(enum)["hints"]) == {"location"}
    assert "'Paris' is not one of" in enum.error["hints"]["location"]
    assert error_of(empty)["hints"] == {"message": "required argument is missing"}
    assert {r.error["category"] for r in (typed, missing, enum, empty)} == {"invalid_arguments"}
    recorded = [outcome(store, e) for e in tool_effects(store, result)]
    assert [o.invoked for o in recorded] == [True, True, True, False, False, False, False]
    assert len(broker.audit.entries("acme")) == 7  # no refusal was retried
    assert source.connects == 1
    await replays_offline(store, result, alice, offline)


@pytest.mark.slow
async def test_a_call_that_times_out_leaves_the_connection_usable(
    everything_stdio: list[str], alice: Principal
) -> None:
    source = McpSource("everything", command=everything_stdio)
    broker = ToolBroker([source], max_attempts=2, backoff_s=0.01)
    store = MemoryStore()
    try:
        result, out = await run_script(
            broker,
            alice,
            store,
            # It takes a second (a node timer): far longer than the 0.2 s the call may take.
            call("everything.trigger-long-running-operation", timeout_s=0.2, duration=1, steps=1),
            call("everything.echo", message="still here"),
        )
    finally:
        await broker.aclose()
    slow, echo = out.replies
    assert error_of(slow)["category"] == "timeout"
    assert slow.attempts == 2  # a timeout is retryable
    assert echo.ok and echo.result is not None
    assert echo.result["content"][0]["text"] == "Echo: still here"
    assert source.connects == 1
    statuses = [(e.status, outcome(store, e).timeout_s) for e in tool_effects(store, result)]
    assert statuses == [("failed", 0.2), ("failed", 0.2), ("ok", 30.0)]
    await replays_offline(
        store,
        result,
        alice,
        McpSource("everything", command=NOWHERE),
        max_attempts=2,
        backoff_s=0.01,
    )


# -- an in-process MCPServer -----------------------------------------------------------------


class Person(BaseModel):
    name: str
    age: int


def demo_server(seen: list[str]) -> MCPServer:
    server = MCPServer("demo", version="3.1")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        seen.append(f"add {a} {b}")
        return a + b

    @server.tool()
    def introduce(person: Person) -> str:
        """Introduce a person."""
        seen.append(f"introduce {person.name}")
        return f"This is {person.name}, {person.age}."

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails."""
        seen.append("explode")
        raise ValueError(f"exploded: {reason}")

    return server


async def test_in_process_server(alice: Principal) -> None:
    seen: list[str] = []
    source = McpSource("demo", server=demo_server(seen))
    broker = ToolBroker([source])
    store = MemoryStore()
    try:
        result, out = await run_script(
            broker,
            alice,
            store,
            call("demo.add", a=2, b=40),
            call("demo.introduce", person={"name": "Ada", "age": 36}),
            call("demo.introduce", person={"name": "Ada", "age": "old"}),
            call("demo.introduce", person={"name": "Ada"}),
            call("demo.add", a=1, b=2, c=3),
            call("demo.explode", reason="on purpose"),
            list_tools=True,
        )
    finally:
        await broker.aclose()
    assert out.listing is not None
    listed = {t["name"]: t for t in out.listing["tools"]}
    assert set(listed) == {"demo.add", "demo.introduce", "demo.explode"}
    assert {t["version"] for t in listed.values()} == {"3.1"}

    added, introduced, old, ageless, extra, exploded = out.replies
    assert added.ok and added.result is not None
    assert added.result["structured"] == {"result": 42}
    assert introduced.ok and introduced.result is not None
    assert introduced.result["content"][0]["text"] == "This is Ada, 36."
    assert error_of(old)["hints"] == {"person.age": 'expected integer, got "old"'}
    assert error_of(ageless)["hints"] == {"person.age": "required argument is missing"}
    # The server's schema allows extra arguments; the server itself ignores them.
    assert extra.ok and extra.result is not None
    assert extra.result["structured"] == {"result": 3}
    assert error_of(exploded)["category"] == "internal"
    assert exploded.error["message"] == "Error executing tool explode"
    # The refused calls never reached the server.
    assert seen == ["add 2 40", "introduce Ada", "add 1 2", "explode"]
    assert source.connects == 1
    await replays_offline(store, result, alice, McpSource("demo", server=demo_server(seen)))
    assert seen == ["add 2 40", "introduce Ada", "add 1 2", "explode"]


# -- connections: reuse, clean close, event loops, a server that dies ------------------------


@pytest.mark.slow
async def test_one_connection_serves_every_call_and_aclose_stops_the_server(
    everything_stdio: list[str], alice: Principal
) -> None:
    servers = Children(" ".join(everything_stdio))
    source = McpSource("everything", command=everything_stdio)
    broker = ToolBroker([source])
    store = MemoryStore()
    try:
        # Concurrent first calls race for the connection: one is opened.
        concurrent, fanned = await run_script(
            broker,
            alice,
            store,
            *[call("everything.echo", message=f"m{i}") for i in range(8)],
            parallel=True,
        )
        assert source.connects == 1
        assert len(servers()) == 1
        sequential, summed = await run_script(
            broker, alice, store, *[call("everything.get-sum", a=i, b=1) for i in range(20)]
        )
        assert source.connects == 1
        assert len(servers()) == 1
    finally:
        await broker.aclose()
    assert servers() == []
    texts = [r.result["content"][0]["text"] for r in fanned.replies if r.result]
    assert texts == [f"Echo: m{i}" for i in range(8)]
    assert [r.ok for r in summed.replies] == [True] * 20
    assert all(str(i + 1) in r.result["content"][0]["text"] for i, r in enumerate(summed.replies))
    # After a close, the next call connects again.
    try:
        await run_script(broker, alice, store, call("everything.echo", message="again"))
        assert source.connects == 2
    finally:
        await broker.aclose()
    assert servers() == []
    for result in (concurrent, sequential):
        await replays_offline(store, result, alice, McpSource("everything", command=NOWHERE))


@pytest.mark.slow
def test_a_broker_across_two_runs_reconnects_in_each_loop(
    everything_stdio: list[str], alice: Principal
) -> None:
    """``orch.run`` starts an event loop per call: the connection of the first loop ends
    with it (its server process too, with no aclose), and the second loop opens its own."""
    servers = Children(" ".join(everything_stdio))
    source = McpSource("everything", command=everything_stdio)
    broker = ToolBroker([source])
    store = MemoryStore()
    services = {"tools": broker, "principal": alice}
    results = []
    for i in range(2):
        script = Script(calls=[call("everything.echo", message=f"loop {i}")])
        result = run(PIPELINE, {"script": script}, store=store, services=services)
        assert result.ok, result.error
        assert result.outputs["transcript"].replies[0].result["content"][0]["text"] == (
            f"Echo: loop {i}"
        )
        assert source.connects == i + 1
        assert servers() == []
        results.append(result)
    anyio.run(broker.aclose)  # a no-op for connections of loops that have ended
    assert servers() == []
    for result in results:
        replays_offline_sync(store, result, alice, McpSource("everything", command=NOWHERE))


@pytest.mark.slow
async def test_a_server_killed_between_calls_is_reconnected_and_audited(
    everything_stdio: list[str], alice: Principal
) -> None:
    servers = Children(" ".join(everything_stdio))
    source = McpSource("everything", command=everything_stdio)
    broker = ToolBroker([source])
    store = MemoryStore()
    try:
        first, _ = await run_script(broker, alice, store, call("everything.echo", message="a"))
        (pid,) = servers()
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: pid not in servers(), "the server's death")
        second, out = await run_script(
            broker,
            alice,
            store,
            call("everything.echo", message="b"),
            call("everything.echo", message="c"),
        )
        assert source.connects == 2
        (new_pid,) = servers()
        assert new_pid != pid
    finally:
        await broker.aclose()
    assert servers() == []
    assert [r.result["content"][0]["text"] for r in out.replies if r.result] == [
        "Echo: b",
        "Echo: c",
    ]
    # The first attempt found the server gone (recorded and audited), the retry reconnected.
    recorded = tool_effects(store, second)
    assert [e.status for e in recorded] == ["failed", "ok", "ok"]
    lost = outcome(store, recorded[0])
    assert lost.error is not None and lost.error.category == "unavailable"
    assert lost.error.retryable and lost.invoked
    audit = [a for a in broker.audit.entries("acme") if a.run_id == second.run_id]
    assert [(a.effect, a.attempt, a.outcome) for a in audit] == list(
        zip([e.index for e in recorded], [1, 2, 1], ["unavailable", "ok", "ok"], strict=True)
    )
    assert audit[0].retryable and audit[0].invoked
    assert "everything" in audit[0].message
    assert broker.audit.verify("acme") == []
    for result in (first, second):
        await replays_offline(store, result, alice, McpSource("everything", command=NOWHERE))


@pytest.mark.slow
async def test_an_http_server_that_stays_down_fails_after_the_retries(
    everything_http: str, everything_stdio: list[str], alice: Principal
) -> None:
    needle = f"{everything_stdio[1]} streamableHttp"  # the fixture's server
    source = McpSource("everything", url=everything_http)
    broker = ToolBroker([source], backoff_s=0.01)
    store = MemoryStore()
    try:
        first, _ = await run_script(broker, alice, store, call("everything.echo", message="a"))
        (pid,) = child_pids(needle)
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: pid not in child_pids(needle), "the server's death")
        second, out = await run_script(broker, alice, store, call("everything.echo", message="b"))
    finally:
        await broker.aclose()
    (gone,) = out.replies
    assert error_of(gone)["category"] == "unavailable"
    assert gone.error["retryable"]
    assert gone.attempts == 3
    assert "cannot connect to MCP server 'everything'" in gone.error["message"]
    # Every attempt failed (whether at the step's listing of the server or at the call).
    assert [e.status for e in effects(store, second)].count("ok") <= 1
    assert {e.status for e in tool_effects(store, second)} == {"failed"}
    audit = [a for a in broker.audit.entries("acme") if a.run_id == second.run_id]
    assert [(a.attempt, a.outcome) for a in audit] == [(i, "unavailable") for i in (1, 2, 3)]
    for result in (first, second):
        offline = McpSource("everything", url=f"http://127.0.0.1:{free_port()}/mcp")
        await replays_offline(store, result, alice, offline, backoff_s=0.01)


@pytest.mark.slow
async def test_a_server_that_crashes_at_start_is_reported_with_its_stderr(
    alice: Principal,
) -> None:
    script = "import sys; sys.stderr.write('boom: no config file\\n'); sys.exit(3)"
    servers = Children(script)
    source = McpSource("crashy", command=[sys.executable, "-c", script])
    broker = ToolBroker([source], backoff_s=0.01)
    store = MemoryStore()
    try:
        result, out = await run_script(broker, alice, store, call("crashy.anything"))
    finally:
        await broker.aclose()
    (failed,) = out.replies
    assert error_of(failed)["category"] == "unavailable"
    assert "cannot connect to MCP server 'crashy'" in failed.error["message"]
    assert "server stderr: boom: no config file" in failed.error["message"]
    assert failed.attempts == 3  # it may come up on a retry
    assert source.connects == 3
    assert servers() == []
    await replays_offline(
        store, result, alice, McpSource("crashy", command=NOWHERE), backoff_s=0.01
    )


async def test_a_connection_failure_names_the_tool_that_was_called(alice: Principal) -> None:
    broker = ToolBroker([McpSource("ghost", command=NOWHERE)])
    store = MemoryStore()
    try:
        result, out = await run_script(broker, alice, store, call("ghost.lookup", q="x"))
    finally:
        await broker.aclose()
    (failed,) = out.replies
    assert error_of(failed)["category"] == "unavailable"
    assert not failed.error["retryable"]  # the command does not exist: a retry cannot help
    assert failed.attempts == 1
    assert failed.error["tool"] == "ghost.lookup"
    await replays_offline(store, result, alice, McpSource("ghost", command=NOWHERE))


@pytest.mark.slow
async def test_a_tenants_credential_reaches_its_own_server_process_and_no_record(
    everything_stdio: list[str],
) -> None:
    """A stdio server that needs a credential gets the calling tenant's as an environment
    variable, one process per tenant; the value is scrubbed from what the server returns and
    appears in no artifact, event or audit entry; a tenant without one is refused."""
    tokens = {"acme": "tok-acme-5b1f9e27", "globex": "tok-globex-0c7d3a44"}
    vault = CredentialVault({t: {"api": v} for t, v in tokens.items()})
    options: dict[str, Any] = {"credential": "api", "credential_env": "API_TOKEN"}
    source = McpSource("everything", command=everything_stdio, **options)
    broker = ToolBroker([source], credentials=vault)
    store = MemoryStore()
    runs: list[tuple[RunResult, Principal]] = []
    envs: dict[str, dict[str, Any]] = {}
    try:
        for tenant in ("acme", "globex", "acme"):
            who = Principal(id=f"{tenant}-bot", tenant=tenant, scopes=frozenset({"*"}))
            result, out = await run_script(broker, who, store, call("everything.get-env"))
            (reply,) = out.replies
            assert reply.ok and reply.result is not None
            envs[tenant] = json.loads(reply.result["content"][0]["text"])
            runs.append((result, who))
        stranger = Principal(id="eve", tenant="initech", scopes=frozenset({"*"}))
        refused, out = await run_script(broker, stranger, store, call("everything.get-env"))
        runs.append((refused, stranger))
    finally:
        await broker.aclose()
    # Each tenant's process had its own token (scrubbed, as the caller's secret), never the
    # other's (which would not be scrubbed from this tenant's result).
    assert envs["acme"]["API_TOKEN"] == envs["globex"]["API_TOKEN"] == "[redacted]"
    assert source.connects == 2  # one connection per tenant, reused by acme's second run
    (denied,) = out.replies
    assert error_of(denied)["category"] == "permission_denied"
    assert "holds no credential 'api'" in denied.error["message"]
    assert effects(store, refused) == []  # a denial is not an effect
    assert [a.outcome for a in broker.audit.entries("initech")] == ["permission_denied"]

    everything = [store.read_raw(k) or b"" for k in store.keys()]
    everything += [line for r, _ in runs for line in store.read_events(r.run_id)]
    audits = [a.model_dump_json() for t in ("acme", "globex") for a in broker.audit.entries(t)]
    for token in tokens.values():
        assert not any(token.encode() in blob for blob in everything)
        assert not any(token in entry for entry in audits)

    # Replay authorises from configuration too, so it needs the vault's entries; their values
    # are never read (nothing is called), and no process is started.
    dummy = CredentialVault({t: {"api": "not-the-real-one"} for t in tokens})
    for result, who in runs:
        offline = McpSource("everything", command=NOWHERE, **options)
        await replays_offline(store, result, who, offline, credentials=dummy)
