"""Security tests of the tool broker: authorisation, tenant isolation, validation, redaction.

What reaches a server is counted on the server's side: a call counter in an in-process
``MCPServer``, the request log of the stdio ``faulty_server.py`` (whose log file does not
even exist when no process was started), ``McpSource.connects`` and this process's children.
Secrets are looked for as bytes everywhere a run leaves a trace: every artifact of the
store, every event log line and run head, and the audit log (its SQLite file included).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import faulty_server as fs
import pytest
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field, SecretStr
from tool_servers import child_pids

import orch
from agents.tools import (
    CredentialVault,
    McpSource,
    Principal,
    SQLiteAuditLog,
    ToolBroker,
    ToolConfigError,
    ToolSource,
    tool,
)
from agents.tools._audit import AuditEntry
from agents.tools._broker import ToolOutcome
from agents.tools._redact import REDACTED
from agents.tools._tool import LocalTool
from orch import Context, PipelineBuilder, agent
from orch._replay import areplay
from traces import ArtifactStore, DirectoryStore, EffectRecord, MemoryStore, StepRecord

pytestmark = pytest.mark.slow

TOOL_ERROR = "agents.tools.errors.ToolCallError"  # pinned: records keep the old name
NOWHERE = ["/nonexistent/orch-tests/mcp-server"]
"""The command of a replay's server: a replay must never start it."""

ALICE = Principal(id="alice", tenant="a", scopes={"*"})
BRUNO = Principal(id="bruno", tenant="b", scopes={"*"})


# -- a one-step pipeline whose agent calls a tool -------------------------------------------


class Call(BaseModel):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Reply(BaseModel):
    text: str


@agent(name="caller", version="1")
async def caller(call: Call, ctx: Context) -> Reply:
    """Call the tool; arguments from the run's ``secrets`` service (never part of the run's
    input, so never recorded as such) are added to the call's own."""
    broker: ToolBroker = ctx.service("tools")
    secret_arguments: dict[str, Any] = ctx.service("secrets")
    result = await broker.call(ctx, call.tool, {**call.arguments, **secret_arguments})
    return Reply(text=result.text)


def _pipeline() -> orch.Pipeline:
    p = PipelineBuilder("tool-security")
    request = p.input("request", Call)
    p.node("call", caller, request)
    return p.build()


PIPELINE = _pipeline()


def services(
    broker: ToolBroker, who: Principal, secrets: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"tools": broker, "principal": who, "secrets": secrets or {}}


async def run_call(
    broker: ToolBroker,
    who: Principal,
    tool_name: str,
    arguments: dict[str, Any] | None = None,
    *,
    store: ArtifactStore,
    secrets: dict[str, Any] | None = None,
) -> orch.RunResult:
    return await orch.arun(
        PIPELINE,
        {"request": {"tool": tool_name, "arguments": arguments or {}}},
        store=store,
        services=services(broker, who, secrets),
    )


@asynccontextmanager
async def opened(
    sources: Iterable[ToolSource | LocalTool], **options: Any
) -> AsyncIterator[ToolBroker]:
    broker = ToolBroker(list(sources), backoff_s=0.01, **options)
    try:
        yield broker
    finally:
        await broker.aclose()


async def check_replays_offline(
    store: ArtifactStore,
    result: orch.RunResult,
    who: Principal,
    sources: Iterable[ToolSource | LocalTool],
    *,
    secrets: dict[str, Any] | None = None,
    **options: Any,
) -> None:
    """The run replays clean with ``sources`` (whose servers cannot be reached)."""
    sources = list(sources)
    async with opened(sources, **options) as broker:
        report = await areplay(
            PIPELINE, result.run_id, store, services=services(broker, who, secrets)
        )
    assert report.clean, report.to_json()
    assert step_record(store, report.result).error == step_record(store, result).error
    for source in sources:
        if isinstance(source, McpSource):
            assert source.connects == 0
    assert broker.audit.entries(who.tenant) == [], "a replay calls nothing, so audits nothing"


# -- reading the record back --------------------------------------------------------------


def step_record(store: ArtifactStore, result: orch.RunResult) -> StepRecord:
    return StepRecord.model_validate(store.get_value(result.steps["call"].record_key))


def effect_records(store: ArtifactStore, result: orch.RunResult) -> list[EffectRecord]:
    """The step's tool-call attempts (effects of kind ``tool``); other effects, such as a
    recorded listing of the server's tools, are not attempts."""
    step = step_record(store, result)
    effects = [EffectRecord.model_validate(store.get_value(k)) for k in step.effects]
    return [e for e in effects if e.kind == "tool"]


def recorded_request(store: ArtifactStore, effect: EffectRecord) -> dict[str, Any]:
    value: dict[str, Any] = store.get_value(effect.request)
    return value


def recorded_outcome(store: ArtifactStore, effect: EffectRecord) -> ToolOutcome:
    assert effect.response is not None
    return ToolOutcome.model_validate(store.get_value(effect.response))


def check_refused(
    store: ArtifactStore,
    result: orch.RunResult,
    entries: list[AuditEntry],
    *,
    tool_name: str,
    category: str,
    message: str,
) -> None:
    """The run failed with a refusal of ``tool_name`` that nothing recorded as an effect,
    and the audit log's one entry says so."""
    assert result.status == "failed"
    step = step_record(store, result)
    assert step.status == "failed" and step.effects == []
    assert step.error is not None and step.error.type == TOOL_ERROR
    assert f"{category}: " in step.error.message and message in step.error.message
    [entry] = entries
    assert entry.tool == tool_name and entry.run_id == result.run_id
    assert (entry.outcome, entry.invoked, entry.attempt) == (category, False, 1)
    assert entry.effect is None and entry.request is None and entry.result is None
    assert message in entry.message


def leaks(needles: Iterable[str], store: ArtifactStore, *, files: Iterable[Path] = ()) -> list[str]:
    """Where the needles occur as bytes: artifacts, event logs, run heads and files."""
    found: list[str] = []
    blobs: list[tuple[str, bytes]] = [(f"artifact {k}", store.get(k)) for k in store.keys()]
    for run_id in store.run_ids():
        blobs += [(f"event of {run_id}", line) for line in store.read_events(run_id)]
        blobs.append((f"head of {run_id}", store.read_run_head(run_id) or b""))
    blobs += [(str(path), path.read_bytes()) for path in files]
    for needle in needles:
        data = needle.encode()
        found += [f"{needle!r} in {where}" for where, blob in blobs if data in blob]
    return found


def audit_bytes(broker: ToolBroker, *tenants: str) -> bytes:
    return b"\n".join(
        e.model_dump_json().encode() for t in tenants for e in broker.audit.entries(t)
    )


def environ_of(pid: int) -> dict[str, str]:
    """The environment a (child) process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs}


def files_under(*roots: Path) -> list[Path]:
    out: list[Path] = []
    for root in roots:
        out += [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return out


# -- servers ------------------------------------------------------------------------------


def _servers() -> list[int]:
    return child_pids(fs.SCRIPT) + child_pids("server-everything")


@pytest.fixture(autouse=True)
def _no_server_left_running() -> Iterator[None]:
    before = set(_servers())
    yield
    left = [pid for pid in _servers() if pid not in before]
    for pid in left:  # never leak one into the next test, then say so
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"servers still running after the test: {left}"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """The request log of the faulty servers a test starts."""
    return tmp_path / "requests.log"


def faulty(log: Path, **options: Any) -> McpSource:
    return McpSource("f", command=fs.command(), env={"FAULTY_LOG": str(log)}, **options)


def shop_server(calls: list[str]) -> MCPServer:
    """An in-process server that counts the calls its tools receive."""
    server = MCPServer("shop")

    @server.tool()
    def orders(customer: str) -> str:
        calls.append(f"orders {customer}")
        return f"2 orders for {customer}"

    @server.tool()
    def delete_order(order: int) -> str:
        calls.append(f"delete_order {order}")
        return f"deleted {order}"

    @server.tool()
    def add(a: int, b: int) -> int:
        calls.append(f"add {a} {b}")
        return a + b

    return server


# -- authorisation: scopes ----------------------------------------------------------------


async def test_a_missing_scope_is_refused_and_the_in_process_server_is_never_called() -> None:
    calls: list[str] = []
    server = shop_server(calls)
    options: dict[str, Any] = {
        "scopes": ["shop:read"],
        "tool_scopes": {"delete_order": ["shop:admin"]},
        "alternatives": {"delete_order": "shop.orders"},
    }
    source = McpSource("shop", server=server, **options)
    clerk = Principal(id="clerk", tenant="a", scopes={"shop:read"})
    store = MemoryStore()
    async with opened([source]) as broker:
        denied = await run_call(broker, clerk, "shop.delete_order", {"order": 7}, store=store)
        assert calls == [] and source.connects == 0, "nothing reached the server"
        check_refused(
            store,
            denied,
            broker.audit.entries("a"),
            tool_name="shop.delete_order",
            category="permission_denied",
            message="lacks scope shop:admin",
        )
        error = step_record(store, denied).error
        assert error is not None and "try 'shop.orders' instead" in error.message
        # The counter does count: the scope the clerk holds lets the call through.
        allowed = await run_call(broker, clerk, "shop.orders", {"customer": "ada"}, store=store)
        assert allowed.status == "ok" and calls == ["orders ada"]
    await check_replays_offline(
        store, denied, clerk, [McpSource("shop", command=NOWHERE, **options)]
    )


async def test_a_missing_scope_never_starts_a_stdio_server(log: Path) -> None:
    source = faulty(log, scopes=["f:call"])
    outsider = Principal(id="olga", tenant="a", scopes={"other:*", "f:read"})
    store = MemoryStore()
    async with opened([source]) as broker:
        result = await run_call(broker, outsider, "f.echo", {"text": "hi"}, store=store)
        assert source.connects == 0 and child_pids(fs.SCRIPT) == []
    assert fs.read_log(log) == [], "no server process ever started (nor wrote its log)"
    check_refused(
        store,
        result,
        broker.audit.entries("a"),
        tool_name="f.echo",
        category="permission_denied",
        message="lacks scope f:call (has: f:read, other:*)",
    )
    await check_replays_offline(
        store, result, outsider, [McpSource("f", command=NOWHERE, scopes=["f:call"])]
    )


async def test_listing_tools_never_starts_a_server_the_principal_may_not_use(log: Path) -> None:
    """A principal who lacks the scopes every tool of a server needs sees none of them, and
    the server is not even started to be listed."""
    source = faulty(log, scopes=["f:call"])
    outsider = Principal(id="olga", tenant="a", scopes={"other:*"})
    async with opened([source]) as broker:
        listing = await broker.discover(outsider)
    assert listing.tools == []
    assert source.connects == 0
    assert fs.read_log(log) == []


# -- validation ---------------------------------------------------------------------------


async def test_arguments_that_violate_the_schema_never_reach_the_server(log: Path) -> None:
    source = faulty(log)
    store = MemoryStore()
    bad: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"text": 5}, {"text": "expected string, got 5"}),
        ({}, {"text": "required argument is missing"}),
        ({"text": "hi", "colour": "red"}, {"colour": "unknown argument (known: text)"}),
    ]
    async with opened([source]) as broker:
        for arguments, hints in bad:
            result = await run_call(broker, ALICE, "f.echo", arguments, store=store)
            assert result.status == "failed"
            [effect] = effect_records(store, result)
            assert effect.status == "failed" and effect.target == "f.echo"
            outcome = recorded_outcome(store, effect)
            assert outcome.error is not None and not outcome.invoked
            assert outcome.error.category == "invalid_arguments"
            assert outcome.error.hints == hints
            assert not outcome.error.retryable
            assert outcome.error.for_model()["hints"] == hints
        assert fs.tool_calls(log) == [], "no invalid call reached the server"
        entries = broker.audit.entries("a")
        assert [(e.outcome, e.invoked, e.attempt) for e in entries] == [
            ("invalid_arguments", False, 1)
        ] * 3
        # The log does count calls: a valid one gets through.
        ok = await run_call(broker, ALICE, "f.echo", {"text": "hi"}, store=store)
        assert ok.status == "ok" and ok.outputs["call"].text == "hi"
        assert len(fs.tool_calls(log, "echo")) == 1
    assert len(fs.pids(log)) == 1 and source.connects == 1


async def test_arguments_that_violate_the_schema_of_an_in_process_tool_are_refused() -> None:
    calls: list[str] = []
    source = McpSource("shop", server=shop_server(calls))
    store = MemoryStore()
    async with opened([source]) as broker:
        result = await run_call(broker, ALICE, "shop.add", {"a": "one", "b": 2}, store=store)
    [effect] = effect_records(store, result)
    outcome = recorded_outcome(store, effect)
    assert outcome.error is not None and outcome.error.category == "invalid_arguments"
    assert list(outcome.error.hints) == ["a"] and "integer" in outcome.error.hints["a"]
    assert calls == []


async def test_arguments_that_violate_a_local_tools_signature_are_refused() -> None:
    seen: list[tuple[str, int]] = []

    @tool
    def restock(sku: str, quantity: int) -> str:
        seen.append((sku, quantity))
        return "ok"

    store = MemoryStore()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"sku": "x1", "quantity": "many"}, "quantity"),
        ({"sku": "x1"}, "quantity"),
        ({"sku": "x1", "quantity": 2, "colour": "red"}, "colour"),
    ]
    async with opened([restock]) as broker:
        for arguments, named in cases:
            result = await run_call(broker, ALICE, "restock", arguments, store=store)
            [effect] = effect_records(store, result)
            outcome = recorded_outcome(store, effect)
            assert outcome.error is not None and outcome.error.category == "invalid_arguments"
            assert list(outcome.error.hints) == [named]
            assert not outcome.invoked
    assert seen == []


# -- tenants ------------------------------------------------------------------------------

TOKEN_A = "tok-a-3f9c27d1e8b4"
TOKEN_B = "tok-b-91d0ab64c7e2"


async def test_a_tenant_without_the_credential_is_refused_before_any_call(log: Path) -> None:
    received: list[str] = []

    @tool(credential="warehouse", credential_arg="token")
    def stock(sku: str, token: str) -> str:
        received.append(token)
        return f"{sku}: 4 left"

    source = faulty(log, credential="warehouse", credential_env="SERVICE_TOKEN")
    vault = CredentialVault({"b": {"warehouse": TOKEN_B}})
    store = MemoryStore()
    async with opened([stock, source], credentials=vault) as broker:
        local = await run_call(broker, ALICE, "stock", {"sku": "x1"}, store=store)
        remote = await run_call(broker, ALICE, "f.echo", {"text": "hi"}, store=store)
        assert received == [] and source.connects == 0 and fs.read_log(log) == []
        entries = broker.audit.entries("a")
        for result, entry, name in [(local, entries[0], "stock"), (remote, entries[1], "f.echo")]:
            check_refused(
                store,
                result,
                [entry],
                tool_name=name,
                category="permission_denied",
                message="tenant 'a' holds no credential 'warehouse'",
            )
        # Tenant b holds it: its calls go through, with its own credential.
        ok = await run_call(broker, BRUNO, "stock", {"sku": "x1"}, store=store)
        assert ok.status == "ok" and received == [TOKEN_B]
        ok = await run_call(broker, BRUNO, "f.echo", {"text": "hi"}, store=store)
        assert ok.status == "ok"
        [pid] = fs.pids(log)
        assert environ_of(pid)["SERVICE_TOKEN"] == TOKEN_B
    assert [e.outcome for e in broker.audit.entries("b")] == ["ok", "ok"]
    assert len(broker.audit.entries("a")) == 2
    assert leaks([TOKEN_B], store) == []


async def test_a_source_owned_by_another_tenant_refuses_its_principals() -> None:
    calls: list[str] = []
    source = McpSource("private", server=shop_server(calls), tenant="b")
    store = MemoryStore()
    async with opened([source]) as broker:
        denied = await run_call(broker, ALICE, "private.orders", {"customer": "x"}, store=store)
        assert calls == [] and source.connects == 0
        check_refused(
            store,
            denied,
            broker.audit.entries("a"),
            tool_name="private.orders",
            category="permission_denied",
            message="belongs to another tenant",
        )
        assert (await broker.discover(ALICE)).tools == []
        assert source.connects == 0, "listing another tenant's source connects to nothing"
        names = {t["name"] for t in (await broker.discover(BRUNO)).tools}
        assert names == {"private.orders", "private.delete_order", "private.add"}
        ok = await run_call(broker, BRUNO, "private.orders", {"customer": "x"}, store=store)
        assert ok.status == "ok" and calls == ["orders x"]
    assert [e.outcome for e in broker.audit.entries("b")] == ["ok"]


async def test_each_tenant_reads_only_its_own_audit_entries(tmp_path: Path) -> None:
    @tool(scopes={"notes:write"})
    def note(text: str) -> str:
        return f"noted {text}"

    path = tmp_path / "audit.db"
    audit = SQLiteAuditLog(path)
    reader = Principal(id="rita", tenant="a")  # no scope: refused
    store = MemoryStore()
    async with opened([note], audit=audit) as broker:
        for who, arguments in [
            (ALICE, {"text": "one"}),
            (BRUNO, {"text": "two"}),
            (reader, {"text": "three"}),
            (BRUNO, {"text": 4}),
            (ALICE, {"text": "five"}),
        ]:
            await run_call(broker, who, "note", arguments, store=store)
    a, b = audit.entries("a"), audit.entries("b")
    assert [(e.tenant, e.principal, e.outcome) for e in a] == [
        ("a", "alice", "ok"),
        ("a", "rita", "permission_denied"),
        ("a", "alice", "ok"),
    ]
    assert [(e.tenant, e.principal, e.outcome) for e in b] == [
        ("b", "bruno", "ok"),
        ("b", "bruno", "invalid_arguments"),
    ]
    assert [e.seq for e in a] == [0, 1, 2] and [e.seq for e in b] == [0, 1]
    assert {e.hash for e in a}.isdisjoint({e.hash for e in b})
    assert {e.run_id for e in a}.isdisjoint({e.run_id for e in b})
    assert audit.verify("a") == [] and audit.verify("b") == []
    assert audit.entries("c") == []
    audit.close()
    # What another process reading the file sees: the same chains, still apart.
    again = SQLiteAuditLog(path)
    try:
        assert again.entries("a") == a and again.entries("b") == b
    finally:
        again.close()


async def test_each_tenant_gets_its_own_credential_in_its_own_server_process(
    everything_stdio: list[str], tmp_path: Path
) -> None:
    def everything(command: list[str]) -> McpSource:
        # Each tenant's token goes into its own server process's environment.
        return McpSource(
            "everything", command=command, credential="service", credential_env="SERVICE_TOKEN"
        )

    source = everything(everything_stdio)
    vault = CredentialVault({"a": {"service": TOKEN_A}, "b": {"service": TOKEN_B}})
    store = DirectoryStore(tmp_path / "store")
    audit_path = tmp_path / "audit" / "audit.db"
    audit = SQLiteAuditLog(audit_path)
    results: dict[str, orch.RunResult] = {}
    async with opened([source], credentials=vault, audit=audit) as broker:
        for who in (ALICE, BRUNO):
            results[who.tenant] = await run_call(broker, who, "everything.get-env", store=store)
        # Two processes, one per tenant, each started with its own tenant's token only.
        assert source.connects == 2
        servers = child_pids(everything_stdio[1])
        assert len(servers) == 2
        tokens = sorted(environ_of(pid).get("SERVICE_TOKEN", "") for pid in servers)
        assert tokens == [TOKEN_A, TOKEN_B]
    audit.close()

    for tenant, result in results.items():
        assert result.status == "ok", result.error
        text = result.outputs["call"].text
        env = json.loads(text)
        # The server saw a token; the broker scrubbed the tenant's own out of the result.
        # Had the process held the other tenant's token, it would still be there.
        assert env["SERVICE_TOKEN"] == REDACTED, tenant
        assert TOKEN_A not in text and TOKEN_B not in text
    reread = SQLiteAuditLog(audit_path)
    try:
        assert [e.outcome for e in reread.entries("a")] == ["ok"]
        assert [e.outcome for e in reread.entries("b")] == ["ok"]
    finally:
        reread.close()

    found = leaks(
        [TOKEN_A, TOKEN_B], store, files=files_under(tmp_path / "store", tmp_path / "audit")
    )
    assert found == []

    # A replay needs the credentials' names, not their values: nothing is called.
    placeholders = CredentialVault({"a": {"service": "placeholder"}})
    await check_replays_offline(
        store, results["a"], ALICE, [everything(NOWHERE)], credentials=placeholders
    )


class Tenants(BaseModel):
    tool: str
    rounds: int = 2


class PerTenant(BaseModel):
    texts: dict[str, list[str]]


@agent(name="for-each-tenant", version="1")
async def for_each_tenant(request: Tenants, ctx: Context) -> PerTenant:
    """Call the tool for ALICE and BRUNO at once (a call may name its principal), in rounds."""
    broker: ToolBroker = ctx.service("tools")
    texts: dict[str, list[str]] = {"a": [], "b": []}

    async def one(who: Principal) -> None:
        result = await broker.call(ctx, request.tool, {}, principal=who)
        texts[who.tenant].append(result.text)

    async with anyio.create_task_group() as tg:
        for _ in range(request.rounds):
            for who in (ALICE, BRUNO):
                tg.start_soon(one, who)
    return PerTenant(texts=texts)


def _tenants_pipeline() -> orch.Pipeline:
    p = PipelineBuilder("tool-tenants")
    p.node("call", for_each_tenant, p.input("request", Tenants))
    return p.build()


async def test_concurrent_calls_of_two_tenants_each_use_their_own_server_process(
    log: Path,
) -> None:
    def source(command: list[str]) -> McpSource:
        options: dict[str, Any] = {"credential": "svc", "credential_env": "SERVICE_TOKEN"}
        return McpSource("f", command=command, env={"FAULTY_LOG": str(log)}, **options)

    pipeline = _tenants_pipeline()
    live = source(fs.command())
    vault = CredentialVault({"a": {"svc": TOKEN_A}, "b": {"svc": TOKEN_B}})
    store = MemoryStore()
    async with opened([live], credentials=vault) as broker:
        result = await orch.arun(
            pipeline,
            {"request": {"tool": "f.pid"}},
            store=store,
            services={"tools": broker, "principal": ALICE},
        )
        assert result.status == "ok", result.error
        by_pid = {pid: environ_of(pid).get("SERVICE_TOKEN") for pid in fs.pids(log)}
    assert live.connects == 2 and sorted(by_pid.values()) == [TOKEN_A, TOKEN_B]
    texts = result.outputs["call"].texts
    for tenant, token in (("a", TOKEN_A), ("b", TOKEN_B)):
        [pid] = {pid for pid, t in by_pid.items() if t == token}
        assert texts[tenant] == [f"served by pid {pid}"] * 2, tenant
        entries = broker.audit.entries(tenant)
        assert [(e.tenant, e.outcome) for e in entries] == [(tenant, "ok")] * 2
    assert leaks([TOKEN_A, TOKEN_B], store) == []
    # Concurrent attempts keep the slots they took as they started: the replay is clean.
    offline = source(NOWHERE)
    async with opened([offline], credentials=vault) as replayer:
        report = await areplay(
            pipeline, result.run_id, store, services={"tools": replayer, "principal": ALICE}
        )
    assert report.clean, report.to_json()
    assert offline.connects == 0


async def test_a_short_credential_never_reaches_the_record() -> None:
    short = "k3y9z"

    @tool(credential="svc", credential_arg="token")
    def whoami(token: str) -> str:
        return f"connected with {token}"

    try:
        vault = CredentialVault({"a": {"svc": short}})
    except ToolConfigError:
        return  # refusing a credential too short to scrub keeps the promise too
    store = MemoryStore()
    async with opened([whoami], credentials=vault) as broker:
        result = await run_call(broker, ALICE, "whoami", store=store)
    assert result.status == "ok"
    assert leaks([short], store) == []


# -- secrets in arguments -----------------------------------------------------------------

API_KEY = "ak-live-51f0c3e9d2aa"
DOOR_CODE = "door-8d1e44b7c0"
BADGE = "badge-339145-77"


async def test_secret_arguments_reach_the_tool_but_never_the_record() -> None:
    received: list[tuple[str, str, str]] = []

    @tool(secrets={"badge"})
    def unlock(user: str, api_key: str, door_code: SecretStr, badge: str) -> str:
        received.append((api_key, door_code.get_secret_value(), badge))
        return f"unlocked for {user} with {api_key}, {door_code.get_secret_value()} and {badge}"

    secrets = {"api_key": API_KEY, "door_code": DOOR_CODE, "badge": BADGE}
    store = MemoryStore()
    async with opened([unlock]) as broker:
        result = await run_call(
            broker, ALICE, "unlock", {"user": "carol"}, store=store, secrets=secrets
        )
    assert result.status == "ok", result.error
    assert received == [(API_KEY, DOOR_CODE, BADGE)], "the tool gets the real values"
    # Its result is scrubbed of them before anyone (the agent, the record) sees it.
    assert result.outputs["call"].text == (
        f"unlocked for carol with {REDACTED}, {REDACTED} and {REDACTED}"
    )
    [effect] = effect_records(store, result)
    assert recorded_request(store, effect)["arguments"] == {
        "user": "carol",
        "api_key": REDACTED,
        "door_code": REDACTED,
        "badge": REDACTED,
    }
    needles = list(secrets.values())
    assert leaks(needles, store) == []
    audit = audit_bytes(broker, "a")
    assert audit and not any(s.encode() in audit for s in needles)
    # The record does not depend on the secrets' values: other values replay it clean.
    others = {k: f"other-{k}-value" for k in secrets}
    await check_replays_offline(store, result, ALICE, [unlock], secrets=others)


async def test_a_secret_quoted_in_a_tool_error_is_scrubbed_from_the_record() -> None:
    @tool
    def charge(amount: int, api_key: str) -> str:
        raise ValueError(f"card declined for key {api_key} (amount {amount})")

    store = MemoryStore()
    async with opened([charge]) as broker:
        result = await run_call(
            broker, ALICE, "charge", {"amount": 5}, store=store, secrets={"api_key": API_KEY}
        )
    assert result.status == "failed"
    [effect] = effect_records(store, result)
    outcome = recorded_outcome(store, effect)
    assert outcome.error is not None and outcome.error.category == "internal"
    assert outcome.error.message == (
        f"the tool raised ValueError: card declined for key {REDACTED} (amount 5)"
    )
    [entry] = broker.audit.entries("a")
    assert entry.outcome == "internal" and REDACTED in entry.message
    assert leaks([API_KEY], store) == []
    assert API_KEY.encode() not in audit_bytes(broker, "a")


async def test_secret_arguments_of_an_mcp_tool_are_redacted() -> None:
    seen: list[tuple[str, str]] = []
    server = MCPServer("accounts")

    @server.tool()
    def login(user: str, password: str) -> str:
        seen.append((user, password))
        return f"welcome {user}, your password {password} is weak"

    @server.tool()
    def lookup(account: str) -> str:
        seen.append(("lookup", account))
        return f"account {account}: active"

    account = "acct-77102934"
    source = McpSource("accounts", server=server, secrets=["account"])
    store = MemoryStore()
    async with opened([source]) as broker:
        first = await run_call(
            broker,
            ALICE,
            "accounts.login",
            {"user": "carol"},
            store=store,
            secrets={"password": API_KEY},
        )
        second = await run_call(
            broker, ALICE, "accounts.lookup", {}, store=store, secrets={"account": account}
        )
    assert seen == [("carol", API_KEY), ("lookup", account)]
    assert first.outputs["call"].text == f"welcome carol, your password {REDACTED} is weak"
    assert second.outputs["call"].text == f"account {REDACTED}: active"
    [login_effect] = effect_records(store, first)
    assert recorded_request(store, login_effect)["arguments"] == {
        "user": "carol",
        "password": REDACTED,
    }
    assert leaks([API_KEY, account], store) == []
    assert not any(s.encode() in audit_bytes(broker, "a") for s in (API_KEY, account))


async def test_an_argument_an_mcp_schema_marks_secret_is_redacted() -> None:
    """The schema (``format: password``, ``writeOnly``, as pydantic's SecretStr) says the
    argument is secret; its name does not look like one."""
    server = MCPServer("doors")
    opened_with: list[str] = []

    @server.tool()
    def open_door(door_code: SecretStr) -> str:
        opened_with.append(door_code.get_secret_value())
        return "opened"

    store = MemoryStore()
    async with opened([McpSource("doors", server=server)]) as broker:
        result = await run_call(
            broker, ALICE, "doors.open_door", store=store, secrets={"door_code": DOOR_CODE}
        )
    assert result.status == "ok" and opened_with == [DOOR_CODE]
    assert leaks([DOOR_CODE], store) == []


async def test_a_secret_argument_of_the_wrong_type_is_not_quoted_in_the_hints() -> None:
    calls: list[str] = []
    server = MCPServer("accounts")

    @server.tool()
    def login(user: str, password: str) -> str:
        calls.append(user)
        return "welcome"

    number = 918273645
    store = MemoryStore()
    async with opened([McpSource("accounts", server=server)]) as broker:
        result = await run_call(
            broker,
            ALICE,
            "accounts.login",
            {"user": "c"},
            store=store,
            secrets={"password": number},
        )
    [effect] = effect_records(store, result)
    outcome = recorded_outcome(store, effect)
    assert outcome.error is not None and outcome.error.category == "invalid_arguments"
    assert list(outcome.error.hints) == ["password"] and calls == []
    assert leaks([str(number)], store) == []
