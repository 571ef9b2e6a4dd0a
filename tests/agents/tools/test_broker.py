"""The broker end to end, in process: local tools and an in-process MCP server, inside real runs.

Each attempt is one recorded effect of kind ``tool`` whose response is a ``ToolOutcome``; the
six stages run in order; failures are recorded whole and come back in replay as the same
``ToolCallError``; replay needs no server; completion order never changes the root hash; and
effects a step makes concurrently get distinct indexes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, SecretStr
from tool_servers import FakeClock

from agents.tools import (
    CredentialVault,
    McpSource,
    Principal,
    RateLimit,
    TimeBudget,
    ToolBroker,
    ToolCallError,
    ToolError,
    ToolListing,
    ToolOutcome,
    tool,
)
from orch import Context, Pipeline, PipelineBuilder, RunResult, agent, arun
from orch._replay import ReplayReport, areplay
from orch.testing import assert_order_independent
from traces import EffectRecord, MemoryStore, StepRecord, canonical_bytes, digest, verify_run

ALICE = Principal(id="alice", tenant="acme", scopes={"*"})
OFFLINE = ["/nonexistent/mcp-demo-server"]


# -- tools and servers --------------------------------------------------------------------------


class Calls:
    """What the tools were asked to do (so a test can tell that nothing was called)."""

    def __init__(self) -> None:
        self.made: list[str] = []


def demo_server(calls: Calls) -> MCPServer:
    srv = MCPServer("demo", version="2.0")

    @srv.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.made.append(f"demo.add {a} {b}")
        return a + b

    @srv.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        calls.made.append(f"demo.shout {text}")
        return text.upper()

    @srv.tool()
    def explode(reason: str) -> str:
        """Always fails."""
        calls.made.append("demo.explode")
        raise ValueError(reason)

    @srv.tool()
    def unlock(door: str, pin: SecretStr) -> str:
        """Open a door."""
        calls.made.append(f"demo.unlock {door}")
        return f"opened {door}"

    return srv


def local_tools(calls: Calls) -> list[Any]:
    @tool
    def echo(text: str) -> str:
        """Say it back."""
        calls.made.append(f"echo {text}")
        return text

    @tool(scopes={"orders:read"}, alternative="echo")
    def orders(customer: str) -> list[str]:
        calls.made.append(f"orders {customer}")
        return [f"{customer}-1", f"{customer}-2"]

    @tool(scopes={"admin"})
    def wipe() -> str:
        calls.made.append("wipe")
        return "wiped"

    @tool(tenant="globex")
    def globex_only() -> str:
        calls.made.append("globex_only")
        return "theirs"

    @tool
    def flaky(n: int) -> str:
        calls.made.append(f"flaky {n}")
        raise ToolCallError(ToolError.of("unavailable", "flaky", "the backend is down"))

    @tool
    def login(user: str, pin: SecretStr, api_key: str, note: str = "") -> str:
        calls.made.append(f"login {user} {pin.get_secret_value()} {api_key}")
        return f"welcome {user}"

    return [echo, orders, wipe, globex_only, flaky, login]


DEMO_OPTIONS: dict[str, Any] = {
    "tool_scopes": {"unlock": ["doors:open"]},
    "alternatives": {"explode": "demo.shout"},
}


def live_broker(calls: Calls, **options: Any) -> ToolBroker:
    source = McpSource("demo", server=demo_server(calls), **DEMO_OPTIONS)
    return ToolBroker([*local_tools(calls), source], backoff_s=0.0, **options)


def offline_broker(**options: Any) -> ToolBroker:
    """The same tools, with the MCP server replaced by a command that cannot start."""
    source = McpSource("demo", command=OFFLINE, **DEMO_OPTIONS)
    return ToolBroker([*local_tools(Calls()), source], backoff_s=0.0, **options)


@asynccontextmanager
async def closing(*brokers: ToolBroker) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for broker in brokers:
            await broker.aclose()


# -- runs ---------------------------------------------------------------------------------------


class Task(BaseModel):
    name: str = "task"


class Done(BaseModel):
    value: Any = None


Script = Callable[[Context], Awaitable[Any]]


@agent(name="broker-script", version="1")
async def scripted(task: Task, ctx: Context) -> Done:
    script: Script = ctx.service("script")
    return Done(value=await script(ctx))


def one_step() -> Pipeline:
    p = PipelineBuilder("broker")
    p.node("s", scripted, name=p.input("name", str))
    return p.build()


async def record(
    script: Script, broker: ToolBroker, principal: Principal | None = ALICE
) -> tuple[RunResult, MemoryStore]:
    store = MemoryStore()
    services: dict[str, Any] = {"tools": broker, "script": script}
    if principal is not None:
        services["principal"] = principal
    result = await arun(one_step(), {"name": "run"}, store=store, services=services)
    return result, store


async def replay(
    result: RunResult,
    store: MemoryStore,
    script: Script,
    broker: ToolBroker,
    principal: Principal | None = ALICE,
) -> ReplayReport:
    services: dict[str, Any] = {"tools": broker, "script": script}
    if principal is not None:
        services["principal"] = principal
    report = await areplay(one_step(), result.run_id, store, services=services)
    assert report.clean, [d.describe() for d in report.divergences]
    assert report.result.root_hash == result.root_hash
    return report


def all_effects(store: MemoryStore, result: RunResult, step: str = "s") -> list[EffectRecord]:
    rec = StepRecord.model_validate(store.get_value(dict(result.record.steps)[step]))
    return [EffectRecord.model_validate(store.get_value(k)) for k in rec.effects]


def effects(store: MemoryStore, result: RunResult, step: str = "s") -> list[EffectRecord]:
    """The tool attempts of the step (without the per-step server listings)."""
    return [e for e in all_effects(store, result, step) if e.kind == "tool"]


def outcome_of(store: MemoryStore, eff: EffectRecord) -> ToolOutcome:
    assert eff.response is not None
    return ToolOutcome.model_validate(store.get_value(eff.response))


def error_of(exc: ToolCallError) -> dict[str, Any]:
    return {"attempts": exc.attempts, **exc.error.model_dump(mode="json")}


async def attempt(ctx: Context, name: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The call's result text, or its structured error."""
    try:
        result = await ctx.service("tools").call(ctx, name, args, **kw)
    except ToolCallError as exc:
        return error_of(exc)
    return {"text": result.text}


# -- each attempt is one effect -----------------------------------------------------------------


async def test_each_attempt_is_one_tool_effect_whose_response_is_a_tool_outcome() -> None:
    calls = Calls()
    broker = live_broker(calls)

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        total = await tools.call(ctx, "demo.add", {"a": 2, "b": 3})
        loud = await tools.call(ctx, "demo.shout", {"text": "hi"})
        said = await tools.call(ctx, "echo", {"text": "there"})
        return [total.text, total.structured, loud.text, said.text]

    async with closing(broker):
        result, store = await record(script, broker)
    assert result.ok, result.error
    assert result.outputs["s"].value == ["5", {"result": 5}, "HI", "there"]
    assert calls.made == ["demo.add 2 3", "demo.shout hi", "echo there"]

    recorded = effects(store, result)
    assert [(e.index, e.kind, e.target, e.status) for e in recorded] == [
        (0, "tool", "demo.add", "ok"),
        (1, "tool", "demo.shout", "ok"),
        (2, "tool", "echo", "ok"),
    ]
    assert store.get_value(recorded[0].request) == {
        "tool": "demo.add",
        "arguments": {"a": 2, "b": 3},
        "principal": {"id": "alice", "tenant": "acme", "scopes": ["*"]},
        "attempt": 1,
    }
    outcomes = [outcome_of(store, e) for e in recorded]
    assert all(o.ok and o.invoked and o.error is None for o in outcomes)
    assert [o.version for o in outcomes] == ["2.0", "2.0", "1"]
    assert [o.timeout_s for o in outcomes] == [30.0, 30.0, 30.0]
    assert outcomes[2].result is not None
    assert outcomes[2].result.text == "there"

    audit = broker.audit.entries("acme")
    assert len(audit) == 3
    for entry, eff, out in zip(audit, recorded, outcomes, strict=True):
        assert (entry.run_id, entry.step_id, entry.effect) == (result.run_id, "s", eff.index)
        assert entry.tool == eff.target
        assert entry.request == eff.request  # the audit names the recorded request artifact
        # ... and the recorded effect, whose response is the outcome with the result
        record_key = StepRecord.model_validate(
            store.get_value(dict(result.record.steps)["s"])
        ).effects[eff.index]
        assert entry.result == record_key
        assert EffectRecord.model_validate(store.get_value(record_key)).response == digest(
            canonical_bytes(out)
        )
        assert (entry.outcome, entry.invoked, entry.attempt) == ("ok", True, 1)
        assert entry.latency_ms >= 0
    assert [e.source for e in audit] == ["demo", "demo", "local"]
    assert broker.audit.verify("acme") == []  # type: ignore[attr-defined]
    assert verify_run(store, result.run_id).ok


async def test_a_run_replays_clean_with_a_server_that_cannot_start() -> None:
    calls = Calls()
    broker = live_broker(calls)

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        listing = await tools.list_tools(ctx)
        total = await tools.call(ctx, "demo.add", {"a": 20, "b": 22})
        said = await tools.call(ctx, "echo", {"text": total.text})
        return [len(listing.tools), said.text]

    async with closing(broker):
        result, store = await record(script, broker)
    assert result.ok, result.error
    made = list(calls.made)

    offline = offline_broker()
    async with closing(offline):
        report = await replay(result, store, script, offline)
        assert report.result.outputs == result.outputs
        source = offline.source("demo")
        assert isinstance(source, McpSource)
        assert source.connects == 0
        assert offline.audit.entries("acme") == []  # a replay makes no attempts
        assert calls.made == made
        # ... and the replacement really cannot serve anything live:
        unavailable = (await offline.discover(ALICE)).unavailable
        assert "cannot start MCP server 'demo'" in unavailable["demo"]


# -- the stages, in order -----------------------------------------------------------------------


async def test_identity_comes_first_a_missing_principal_is_a_config_error() -> None:
    calls = Calls()
    broker = live_broker(calls)

    async def script(ctx: Context) -> Any:
        return await ctx.service("tools").call(ctx, "demo.add", {"a": 1, "b": 2})

    async with closing(broker):
        result, store = await record(script, broker, principal=None)
    assert not result.ok
    assert result.error is not None
    assert result.error.type.endswith("ToolConfigError")
    assert "a tool call has no principal; fix: pass principal=Principal(...)" in (
        result.error.message
    )
    assert effects(store, result) == []
    assert calls.made == []
    source = broker.source("demo")
    assert isinstance(source, McpSource)
    assert source.connects == 0


async def test_a_principal_of_the_wrong_type_is_a_config_error() -> None:
    broker = ToolBroker(local_tools(Calls()))

    async def script(ctx: Context) -> Any:
        return await attempt(ctx, "echo", {"text": "x"})

    store = MemoryStore()
    services = {"tools": broker, "script": script, "principal": {"id": "alice"}}
    result = await arun(one_step(), {"name": "run"}, store=store, services=services)
    assert result.error is not None
    assert result.error.type.endswith("ToolConfigError")
    assert "the principal is a dict; fix: use agents.tools.Principal" in result.error.message


async def test_a_denial_never_resolves_records_no_effect_and_is_audited() -> None:
    calls = Calls()
    vault = McpSource("vault", command=OFFLINE, scopes=["vault:read"])
    broker = ToolBroker(
        [*local_tools(calls), vault],
        credentials=CredentialVault(),
    )
    bob = Principal(id="bob", tenant="acme", scopes={"orders:write", "files:*"})

    async def script(ctx: Context) -> Any:
        return [
            await attempt(ctx, "vault.read", {"path": "/x"}),
            await attempt(ctx, "orders", {"customer": "c1"}),
            await attempt(ctx, "globex_only", {}),
        ]

    async with closing(broker):
        result, store = await record(script, broker, principal=bob)
    assert result.ok, result.error
    vault_err, orders_err, tenant_err = result.outputs["s"].value
    assert vault_err["category"] == "permission_denied"
    assert vault_err["message"] == (
        "principal 'bob' lacks scope vault:read (has: files:*, orders:write)"
    )
    assert not vault_err["retryable"]
    assert orders_err["category"] == "permission_denied"
    assert orders_err["alternative"] == "echo"
    assert tenant_err["message"].startswith("tool 'globex_only' belongs to another tenant")
    assert vault.connects == 0  # the server was never asked
    assert calls.made == []
    assert effects(store, result) == []
    audit = broker.audit.entries("acme")
    assert [(a.tool, a.outcome, a.invoked, a.effect, a.request) for a in audit] == [
        ("vault.read", "permission_denied", False, None, None),
        ("orders", "permission_denied", False, None, None),
        ("globex_only", "permission_denied", False, None, None),
    ]

    # A denial is a function of configuration alone: replay reaches it again, unaudited.
    offline = ToolBroker(
        [*local_tools(Calls()), McpSource("vault", command=OFFLINE, scopes=["vault:read"])]
    )
    async with closing(offline):
        report = await replay(result, store, script, offline, principal=bob)
    assert report.result.outputs == result.outputs
    assert offline.audit.entries("acme") == []


async def test_a_missing_credential_is_a_denial_before_anything_is_called() -> None:
    calls: list[str] = []

    @tool(credential="crm", credential_arg="key")
    def crm(customer: str, key: str) -> str:
        calls.append(customer)
        return customer

    broker = ToolBroker([crm], credentials=CredentialVault({"globex": {"crm": "key-globex"}}))

    async def script(ctx: Context) -> Any:
        return await attempt(ctx, "crm", {"customer": "c1"})

    result, store = await record(script, broker)
    err = result.outputs["s"].value
    assert err["category"] == "permission_denied"
    assert "tenant 'acme' holds no credential 'crm'" in err["message"]
    assert calls == []
    assert effects(store, result) == []


async def test_an_invalid_call_never_reaches_the_rate_limiter_or_the_tool() -> None:
    calls = Calls()
    clock = FakeClock()
    broker = live_broker(
        calls,
        default_rate_limit=RateLimit(per_second=1.0, burst=1),
        clock=clock,
        max_attempts=1,
    )

    async def script(ctx: Context) -> Any:
        return [
            await attempt(ctx, "echo", {"text": 5}),
            await attempt(ctx, "echo", {"txt": "x"}),
            await attempt(ctx, "demo.add", {"a": "one"}),
            await attempt(ctx, "echo", {"text": "valid"}),  # takes the bucket's only token
            await attempt(ctx, "echo", {"text": "again"}),
        ]

    async with closing(broker):
        result, store = await record(script, broker)
    assert result.ok, result.error
    wrong_type, unknown_arg, mcp_bad, valid, limited = result.outputs["s"].value
    assert wrong_type["category"] == "invalid_arguments"
    assert wrong_type["hints"] == {"text": "Input should be a valid string"}
    assert unknown_arg["hints"] == {
        "text": "Field required",
        "txt": "Extra inputs are not permitted",
    }
    assert mcp_bad["hints"] == {
        "a": 'expected integer, got "one"',
        "b": "required argument is missing",
    }
    assert not mcp_bad["retryable"]
    assert valid == {"text": "valid"}
    assert limited["category"] == "rate_limited"
    assert calls.made == ["echo valid"]
    assert clock.reads == 2  # only the two valid calls asked the rate limiter
    recorded = effects(store, result)
    assert [e.status for e in recorded] == ["failed", "failed", "failed", "ok", "failed"]
    assert not any(outcome_of(store, e).invoked for e in recorded if e.status == "failed")
    # Resolution ran for the MCP call (the schema came from the server) but invocation did not.
    assert outcome_of(store, recorded[2]).version == "2.0"


async def test_a_rate_limited_call_takes_nothing_from_the_time_budget() -> None:
    clock = FakeClock()
    budget_clock = FakeClock()
    broker = ToolBroker(
        local_tools(Calls()),
        rate_limits={"echo": RateLimit(per_second=1.0, burst=1)},
        clock=clock,
        max_attempts=1,
    )
    budget = TimeBudget(10.0, ["echo", "echo"], clock=budget_clock)

    async def script(ctx: Context) -> Any:
        first = await attempt(ctx, "echo", {"text": "a"}, budget=budget)
        second = await attempt(ctx, "echo", {"text": "b"}, budget=budget)
        return [first, second]

    result, store = await record(script, broker)
    first, second = result.outputs["s"].value
    assert first == {"text": "a"}
    assert second["category"] == "rate_limited"
    assert budget.pending("echo") == []  # the second planned call is still to come
    assert budget.plan[1:] == ["echo"]
    allocations = [outcome_of(store, e).allocation for e in effects(store, result)]
    assert allocations[0] is not None
    assert allocations[1] is None  # refused before the budget stage


async def test_a_call_the_budget_cannot_fit_is_refused_before_it_starts() -> None:
    calls: list[str] = []

    @tool(expected_s=2.0, timeout_s=10.0)
    def slow(x: int) -> int:
        calls.append("slow")
        return x

    broker = ToolBroker([slow])
    clock = FakeClock()
    budget = TimeBudget(5.0, ["slow", "slow"], clock=clock)

    async def script(ctx: Context) -> Any:
        first = await attempt(ctx, "slow", {"x": 1}, budget=budget)
        clock.advance(4.0)  # 1 s left, the tool is expected to take 2
        second = await attempt(ctx, "slow", {"x": 2}, budget=budget)
        return [first, second]

    result, store = await record(script, broker)
    first, second = result.outputs["s"].value
    assert first == {"text": "1"}
    assert second["category"] == "timeout"
    assert not second["retryable"]
    assert second["attempts"] == 1
    assert "refused before it started" in second["message"]
    assert calls == ["slow"]
    ok, refused = (outcome_of(store, e) for e in effects(store, result))
    assert ok.allocation == {
        "allocated_s": 2.5,
        "remaining_s": 5.0,
        "share_s": 2.5,
        "cap_s": 10.0,
        "expected_s": 2.0,
        "fits": True,
    }
    assert ok.timeout_s == 2.5
    assert refused.allocation is not None
    assert refused.allocation["fits"] is False
    assert refused.allocation["remaining_s"] == 1.0
    assert not refused.invoked


# -- failures, recorded and replayed ------------------------------------------------------------


async def test_failed_outcomes_are_recorded_and_replay_as_the_same_error() -> None:
    calls = Calls()
    broker = live_broker(calls)

    async def script(ctx: Context) -> Any:
        return [
            await attempt(ctx, "echo", {"text": ["not", "a", "string"]}),
            await attempt(ctx, "demo.add", {"a": 1}),
            await attempt(ctx, "demo.ad", {"a": 1, "b": 2}),
            await attempt(ctx, "demo.explode", {"reason": "on purpose"}),
            await attempt(ctx, "flaky", {"n": 1}),
        ]

    async with closing(broker):
        result, store = await record(script, broker)
    assert result.ok, result.error
    local_bad, mcp_bad, not_found, exploded, flaky = result.outputs["s"].value
    assert local_bad["hints"] == {"text": "Input should be a valid string"}
    assert mcp_bad["hints"] == {"b": "required argument is missing"}
    assert not_found["category"] == "not_found"
    assert not_found["alternative"] == "demo.add"
    assert exploded["category"] == "internal"
    assert exploded["alternative"] == "demo.shout"
    assert (flaky["category"], flaky["retryable"], flaky["attempts"]) == ("unavailable", True, 3)

    recorded = effects(store, result)
    assert [(e.target, e.status) for e in recorded] == [
        ("echo", "failed"),
        ("demo.add", "failed"),
        ("demo.ad", "failed"),
        ("demo.explode", "failed"),
        ("flaky", "failed"),
        ("flaky", "failed"),
        ("flaky", "failed"),
    ]
    for eff in recorded:
        out = outcome_of(store, eff)  # the failure is recorded whole, as a response
        assert not out.ok
        assert out.error is not None
        assert eff.error is not None
        assert eff.error.type == "ToolError"
        assert eff.error.message == f"{out.error.category}: {out.error.message}"
    assert [store.get_value(e.request)["attempt"] for e in recorded[4:]] == [1, 2, 3]
    assert [a.outcome for a in broker.audit.entries("acme")] == [
        "invalid_arguments",
        "invalid_arguments",
        "not_found",
        "internal",
        "unavailable",
        "unavailable",
        "unavailable",
    ]
    made = list(calls.made)

    served: list[dict[str, Any]] = []

    async def replay_script(ctx: Context) -> Any:
        out = await script(ctx)
        served.extend(out)
        return out

    offline = offline_broker()
    async with closing(offline):
        report = await replay(result, store, replay_script, offline)
    assert served == result.outputs["s"].value  # category, hints, alternative, attempts
    assert report.result.outputs == result.outputs
    assert calls.made == made


async def test_replay_raises_the_recorded_error_as_a_tool_call_error() -> None:
    broker = live_broker(Calls())
    raised: list[ToolCallError] = []

    async def script(ctx: Context) -> Any:
        try:
            await ctx.service("tools").call(ctx, "demo.add", {"a": "x", "b": 2})
        except ToolCallError as exc:
            raised.append(exc)
        return None

    async with closing(broker):
        result, store = await record(script, broker)
    offline = offline_broker()
    async with closing(offline):
        await replay(result, store, script, offline)
    live, served = raised
    assert type(served) is ToolCallError
    assert served.error == live.error
    assert served.attempts == live.attempts
    assert str(served) == str(live)
    assert "a: expected integer" in str(served)


async def test_not_found_suggests_the_closest_tool() -> None:
    broker = live_broker(Calls())

    async def script(ctx: Context) -> Any:
        return [
            await attempt(ctx, "ech", {"text": "x"}),
            await attempt(ctx, "demo.shot", {"text": "x"}),
            await attempt(ctx, "nothing-like-it", {}),
        ]

    async with closing(broker):
        result, store = await record(script, broker)
    local, remote, nothing = result.outputs["s"].value
    assert (local["category"], local["alternative"]) == ("not_found", "echo")
    assert "neither a local tool (echo, flaky" in local["message"]
    assert "SERVER.TOOL of a registered server (demo)" in local["message"]
    assert (remote["category"], remote["alternative"]) == ("not_found", "demo.shout")
    assert "has no tool 'shot' (it has 4: add, explode, shout, unlock)" in remote["message"]
    assert nothing["alternative"] is None
    # An unknown local name is refused by name alone; an unknown server tool needs the server.
    assert [e.target for e in effects(store, result)] == ["demo.shot"]


# -- identity -----------------------------------------------------------------------------------


async def test_the_principal_is_the_calls_then_the_runs_then_the_brokers() -> None:
    default = Principal(id="daemon", tenant="ops")
    service = Principal(id="svc", tenant="acme")
    explicit = Principal(id="erin", tenant="globex")
    broker = ToolBroker(local_tools(Calls()), principal=default)

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        await tools.call(ctx, "echo", {"text": "implicit"})
        await tools.call(ctx, "echo", {"text": "explicit"}, principal=explicit)
        return None

    with_service, store = await record(script, broker, principal=service)
    assert with_service.ok, with_service.error
    without, store2 = await record(script, broker, principal=None)
    assert without.ok, without.error

    def principals(s: MemoryStore, r: RunResult) -> list[str]:
        return [s.get_value(e.request)["principal"]["id"] for e in effects(s, r)]

    assert principals(store, with_service) == ["svc", "erin"]
    assert principals(store2, without) == ["daemon", "erin"]
    assert [e.principal for e in broker.audit.entries("acme")] == ["svc"]
    assert [e.principal for e in broker.audit.entries("globex")] == ["erin", "erin"]
    assert [e.principal for e in broker.audit.entries("ops")] == ["daemon"]


# -- listing ------------------------------------------------------------------------------------


async def test_list_tools_is_a_recorded_effect_filtered_by_scopes() -> None:
    calls = Calls()
    broker = live_broker(calls)
    reader = Principal(id="rita", tenant="acme", scopes={"orders:*"})

    async def script(ctx: Context) -> Any:
        listing = await ctx.service("tools").list_tools(ctx)
        assert isinstance(listing, ToolListing)
        return sorted(t["name"] for t in listing.tools)

    async with closing(broker):
        result, store = await record(script, broker, principal=reader)
    assert result.ok, result.error
    names = result.outputs["s"].value
    assert names == [
        "demo.add",
        "demo.explode",
        "demo.shout",
        "echo",
        "flaky",
        "login",
        "orders",
    ]  # not wipe (admin), globex_only (another tenant), demo.unlock (doors:open)
    (eff,) = all_effects(store, result)
    assert (eff.kind, eff.target, eff.status) == ("tool-list", "tools", "ok")
    assert store.get_value(eff.request) == {
        "principal": {"id": "rita", "tenant": "acme", "scopes": ["orders:*"]},
        "sources": ["demo", "local"],
    }
    listing = ToolListing.model_validate(store.get_value(eff.response))
    add = next(t for t in listing.tools if t["name"] == "demo.add")
    assert add["input_schema"]["required"] == ["a", "b"]
    assert add["version"] == "2.0"

    everyone = await broker.discover(ALICE)
    assert {t["name"] for t in everyone.tools} >= {"wipe", "demo.unlock"}

    offline = offline_broker()
    async with closing(offline):
        report = await replay(result, store, script, offline, principal=reader)
    assert report.result.outputs == result.outputs


async def test_a_source_that_cannot_be_listed_is_named_in_the_listing() -> None:
    broker = ToolBroker([*local_tools(Calls()), McpSource("broken", command=OFFLINE)])

    async def script(ctx: Context) -> Any:
        listing = await ctx.service("tools").list_tools(ctx)
        return [sorted(t["name"] for t in listing.tools), listing.unavailable]

    async with closing(broker):
        result, _ = await record(script, broker)
    names, unavailable = result.outputs["s"].value
    assert "echo" in names
    assert list(unavailable) == ["broken"]
    assert "cannot start MCP server 'broken'" in unavailable["broken"]


# -- secrets ------------------------------------------------------------------------------------


async def test_secret_arguments_reach_the_tool_but_never_the_record() -> None:
    calls = Calls()
    broker = live_broker(calls)

    async def script(ctx: Context) -> Any:
        result = await ctx.service("tools").call(
            ctx,
            "login",
            {"user": "bob", "pin": "pin-4711-x", "api_key": "ak-000111", "note": "hello"},
        )
        return result.text

    async with closing(broker):
        result, store = await record(script, broker)
    assert result.ok, result.error
    assert calls.made == ["login bob pin-4711-x ak-000111"]
    (eff,) = effects(store, result)
    assert store.get_value(eff.request)["arguments"] == {
        "user": "bob",
        "pin": "[redacted]",  # SecretStr in the schema
        "api_key": "[redacted]",  # a name that looks secret
        "note": "hello",
    }
    (entry,) = broker.audit.entries("acme")
    assert entry.arguments == digest(
        canonical_bytes(
            {"user": "bob", "pin": "[redacted]", "api_key": "[redacted]", "note": "hello"}
        )
    )


async def test_a_secret_marked_in_an_mcp_schema_never_reaches_the_record() -> None:
    broker = live_broker(Calls())

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        return (await tools.call(ctx, "demo.unlock", {"door": "front", "pin": "98765432"})).text

    async with closing(broker):
        result, store = await record(script, broker)
    assert result.ok, result.error
    (eff,) = effects(store, result)
    assert b"98765432" not in store.get(eff.request)


async def test_a_retry_keeps_time_for_the_next_planned_call_of_the_same_tool() -> None:
    failures = [1]

    @tool(expected_s=1.0, timeout_s=100.0)
    def fetch(page: int) -> str:
        if failures:
            failures.pop()
            raise ToolCallError(ToolError.of("unavailable", "fetch", "try again"))
        return f"page {page}"

    broker = ToolBroker([fetch], backoff_s=0.0)
    budget = TimeBudget(12.0, ["fetch", "fetch"], clock=FakeClock())

    async def script(ctx: Context) -> Any:
        return (await ctx.service("tools").call(ctx, "fetch", {"page": 1}, budget=budget)).text

    result, store = await record(script, broker)
    assert result.ok, result.error
    first, retry = (outcome_of(store, e).allocation for e in effects(store, result))
    assert first is not None
    assert retry is not None
    assert first["share_s"] == 6.0  # half: the second planned fetch is still to come
    assert retry["share_s"] == 6.0  # still half: the retry is not the second fetch


# -- determinism --------------------------------------------------------------------------------


class Job(BaseModel):
    text: str
    a: int


class Worked(BaseModel):
    parts: list[str]


@agent(name="broker-worker", version="1")
async def worker(job: Job, ctx: Context) -> Worked:
    tools = ctx.service("tools")
    loud = await tools.call(ctx, "demo.shout", {"text": job.text})
    total = await tools.call(ctx, "demo.add", {"a": job.a, "b": ctx.rng.randint(0, 9)})
    said = await tools.call(ctx, "echo", {"text": f"{loud.text}/{total.text}"})
    return Worked(parts=[said.text])


class Gathered(BaseModel):
    parts: list[str]


class Pieces(BaseModel):
    items: list[Worked]


@agent(name="broker-gather", version="1")
async def gather(pieces: Pieces, ctx: Context) -> Gathered:
    listing = await ctx.service("tools").list_tools(ctx)
    return Gathered(parts=[p for w in pieces.items for p in w.parts] + [str(len(listing.tools))])


def fan_out() -> Pipeline:
    p = PipelineBuilder("broker-fan-out")
    nodes = [p.node(f"w{i}", worker, text=f"job {i}", a=i) for i in range(5)]
    p.node("gather", gather, items=nodes)
    return p.build()


async def test_completion_order_does_not_change_the_root_hash() -> None:
    calls = Calls()
    broker = live_broker(calls)
    async with closing(broker):
        result = await assert_order_independent(
            fan_out(), {}, shuffles=3, services={"tools": broker, "principal": ALICE}
        )
    assert result.ok, result.error
    assert len(result.outputs["gather"].parts) == 6
    assert len(calls.made) == 4 * 5 * 3  # every run really called the tools


async def test_concurrent_effects_in_one_step_get_distinct_indexes() -> None:
    order: list[str] = []

    async def script(ctx: Context) -> Any:
        b_done = anyio.Event()
        got: dict[str, Any] = {}

        async def perform_a() -> dict[str, str]:
            await b_done.wait()  # a started first but finishes last
            order.append("a")
            return {"v": "a"}

        async def perform_b() -> dict[str, str]:
            order.append("b")
            b_done.set()
            return {"v": "b"}

        async def run(name: str, perform: Callable[[], Awaitable[Any]]) -> None:
            got[name] = await ctx.effect("probe", name, {"which": name}, perform)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a", perform_a)
            tg.start_soon(run, "b", perform_b)
        assert ctx.effect_count == 2
        return [got["a"]["v"], got["b"]["v"]]

    result, store = await record(script, ToolBroker())
    assert result.ok, result.error
    assert order == ["b", "a"]
    recorded = all_effects(store, result)
    assert [(e.index, e.target, e.status) for e in recorded] == [(0, "a", "ok"), (1, "b", "ok")]
    assert [store.get_value(e.response) for e in recorded] == [{"v": "a"}, {"v": "b"}]
    order.clear()
    report = await replay(result, store, script, ToolBroker())
    assert order == []
    assert report.result.outputs["s"].value == ["a", "b"]


async def test_concurrent_tool_calls_in_one_step_are_audited_under_their_own_indexes() -> None:
    calls = Calls()
    broker = live_broker(calls)

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        got: dict[str, str] = {}

        async def call(name: str, tool_name: str, args: dict[str, Any]) -> None:
            got[name] = (await tools.call(ctx, tool_name, args)).text

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "add", "demo.add", {"a": 1, "b": 1})
            tg.start_soon(call, "echo", "echo", {"text": "quick"})
            tg.start_soon(call, "shout", "demo.shout", {"text": "x"})
        return [got["add"], got["echo"], got["shout"]]

    async with closing(broker):
        result, store = await record(script, broker)
    assert result.ok, result.error
    recorded = effects(store, result)
    assert [e.index for e in recorded] == [0, 1, 2]
    assert [e.target for e in recorded] == ["demo.add", "echo", "demo.shout"]  # start order
    by_index = {a.effect: a for a in broker.audit.entries("acme")}
    assert sorted(by_index) == [0, 1, 2]
    for eff in recorded:
        assert by_index[eff.index].tool == eff.target
        assert by_index[eff.index].request == eff.request
    offline = offline_broker()
    async with closing(offline):
        report = await replay(result, store, script, offline)
    assert report.result.outputs["s"].value == ["2", "quick", "X"]


async def test_a_broker_estimate_falls_back_to_the_tools_policy() -> None:
    broker = live_broker(Calls())
    echo = broker.estimate("echo")
    assert (echo.expected_s, echo.timeout_s, echo.samples) == (0.1, 30.0, 0)
    assert echo.p95_s == pytest.approx(20.0)  # the timeout over the safety factor
    assert broker.estimate("no.such") == echo  # an unknown tool has the default policy
