"""orch's OpenTelemetry spans in a real observability tool: Arize Phoenix, started here.

Phoenix (PyPI ``arize-phoenix``) is a server with a virtual environment of its own: it pins
``anthropic<2``, which would downgrade the SDK the model adapters are tested against.
``ORCH_PHOENIX`` names that environment's ``python`` (or its ``phoenix`` script); without it
the tests are skipped, unless ``ORCH_REQUIRE_PHOENIX=1`` (set by ``.ci/run``), when they fail.

The server runs on free 127.0.0.1 ports with its database in a temporary directory, its
telemetry and every fetch of its own off. Runs reach it over OTLP/HTTP (the ``otel`` extra's
exporter): the quickstart's run through ``examples/otel_export.py``, as docs/observability.md
tells a user to, and a fan-out run with a tool through :func:`traces.otel.export_run`. What
Phoenix then serves (``GET /v1/projects/{project}/spans``) is checked against the store's
records, not against the spans orch sent: one trace per run, parents as the record's tree,
GenAI and decision attributes, and no second copy of any span when a replay is exported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, cast

import anyio
import pytest
from example_modules import EXAMPLES, disagreeing_run, load_example
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter
from pydantic import BaseModel

from agents.models import ChatMessage, ChatRequest, ModelHub
from agents.testing import SCRIPTED_PROVIDER, scripted_hub
from agents.tools import Principal, ToolBroker, tool
from orch import Context, PipelineBuilder, agent
from orch import run as orch_run
from orch._replay import areplay
from traces import ArtifactStore, open_store
from traces._runview import RunView, load_run_view
from traces.otel import export_run, run_spans

pytestmark = pytest.mark.slow

REQUIRE_ENV = "ORCH_REQUIRE_PHOENIX"
PHOENIX_VERSION = "20.26.1"  # the version .ci/run installs
PROJECT = "orch-phoenix-test"
# Bounds on waiting, not timings under test: the first start creates and migrates a new
# SQLite database (about 25 s on CI's 2 cores), and spans are written by a batch inserter.
START_WAIT_S = 240.0
INGEST_WAIT_S = 60.0


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: CI must run the Phoenix test)")
    pytest.skip(reason)


def phoenix_command() -> list[str]:
    """The command that starts Phoenix's server, from ``$ORCH_PHOENIX``."""
    given = os.environ.get("ORCH_PHOENIX")
    if not given:
        _unavailable(
            "ORCH_PHOENIX is not set; fix: python3 -m venv DIR && DIR/bin/pip install "
            f"arize-phoenix=={PHOENIX_VERSION}, then ORCH_PHOENIX=DIR/bin/python"
        )
    path = Path(given)
    if not path.is_file() or not os.access(path, os.X_OK):
        _unavailable(
            f"ORCH_PHOENIX={given} is not an executable file; fix: name the python (or the "
            "phoenix script) of the virtual environment Phoenix is installed in"
        )
    if path.name.startswith("python"):
        return [str(path), "-m", "phoenix.server.main", "serve"]
    return [str(path), "serve"]


def otlp_exporter(endpoint: str) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        _unavailable("the OTLP/HTTP span exporter is not installed; fix: pip install -e '.[otel]'")
    return OTLPSpanExporter(endpoint=endpoint)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class Phoenix:
    url: str
    log: Path

    @property
    def traces_endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def spans(self) -> list[dict[str, Any]]:
        """Every span of the test project, through Phoenix's REST API (all pages)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            url = f"{self.url}/v1/projects/{PROJECT}/spans?{urllib.parse.urlencode(query)}"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    page = json.load(response)
            except urllib.error.HTTPError as exc:
                if exc.code == 404 and not out:
                    return []  # no span has reached the project yet
                raise
            out += page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def wait_for(
        self, ready: Callable[[list[dict[str, Any]]], bool], what: str
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + INGEST_WAIT_S
        while True:
            spans = self.spans()
            if ready(spans):
                return spans
            if time.monotonic() > deadline:
                pytest.fail(f"Phoenix did not store {what} within {INGEST_WAIT_S:.0f} s")
            time.sleep(0.25)


def _server_env(work: Path, http_port: int, grpc_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
    env |= {
        "PHOENIX_WORKING_DIR": str(work),  # its SQLite database too
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(http_port),
        # The OTLP/gRPC receiver always listens on every interface ([::]); only HTTP is used.
        "PHOENIX_GRPC_PORT": str(grpc_port),
        # No outbound traffic: no telemetry pixels, web fonts or sandbox downloads; the
        # assistant (it would call model providers) and the extra endpoints off.
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        "PHOENIX_AGENTS_DISABLE_BASH": "true",
        "PHOENIX_ALLOWED_SANDBOX_PROVIDERS": "NONE",
        "PHOENIX_ENABLE_MCP_SERVER": "false",
    }
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server's whole process group: SIGTERM, then SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    command = phoenix_command()
    work = tmp_path_factory.mktemp("phoenix")
    http_port, grpc_port = _free_ports(2)
    server = Phoenix(url=f"http://127.0.0.1:{http_port}", log=work / "server.log")
    with server.log.open("wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=work,
            env=_server_env(work, http_port, grpc_port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended whole
        )
    try:
        deadline = time.monotonic() + START_WAIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Phoenix exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Phoenix not healthy after {START_WAIT_S:.0f} s:\n{server.log_tail()}")
            time.sleep(0.25)
        yield server
    finally:
        _stop(proc)


# A help desk: triage fans out to one specialist per area (child steps), each asks a
# scripted model and calls a tool through the broker; triage then routes to one of them.


class Ticket(BaseModel):
    text: str


class AreaQuestion(BaseModel):
    area: str
    text: str


class Finding(BaseModel):
    area: str
    answer: str
    open_tickets: int


AREAS = ("billing", "travel")
DESK_MODELS = {f"{area}-7b": f"{area} says: look at the {area} page" for area in AREAS}
DESK_PRICES = dict.fromkeys(DESK_MODELS, (0.2, 0.6))


@tool
def open_tickets(area: str, text: str) -> int:
    """How many open tickets in ``area`` mention a word of ``text``."""
    return len(area) + len(text.split())


@agent(name="specialist", version="1")
async def specialist(q: AreaQuestion, ctx: Context) -> Finding:
    hub: ModelHub = ctx.service("models")
    request = ChatRequest(
        model=f"{q.area}-7b", messages=[ChatMessage(role="user", content=q.text)], max_tokens=64
    )
    reply = await hub.chat(ctx, request)
    broker: ToolBroker = ctx.service("tools")
    found = await broker.call(ctx, "open_tickets", {"area": q.area, "text": q.text})
    return Finding(area=q.area, answer=reply.text, open_tickets=found.structured)


@agent(name="triage-router", version="1")
async def triage(t: Ticket, ctx: Context) -> Finding:
    questions = [AreaQuestion(area=a, text=t.text) for a in AREAS]
    findings = cast(list[Finding], await ctx.map(specialist, questions))
    best = max(findings, key=lambda f: (f.open_tickets, f.area))
    ctx.decide(
        candidates=list(AREAS),
        chosen=best.area,
        scores={f.area: f.open_tickets for f in findings},
        reason=f"{best.area} has the most open tickets ({best.open_tickets})",
    )
    return best


def desk_run(store: ArtifactStore, text: str) -> str:
    p = PipelineBuilder("help-desk")
    p.output("finding", p.node("triage", triage, text=p.input("text", str)))
    services = {
        "models": scripted_hub(DESK_MODELS, prices=DESK_PRICES),
        "tools": ToolBroker([open_tickets]),
        "principal": Principal(id="desk", tenant="test"),
    }
    result = orch_run(p.build(), {"text": text}, store=store, seed=3, services=services)
    assert result.ok, result.error
    return result.run_id


def project_resource() -> Resource:
    # Phoenix files spans under the project this resource attribute names.
    return Resource.create({"service.name": "orch", "openinference.project.name": PROJECT})


def expected_span_count(view: RunView) -> int:
    return 1 + len(view.steps) + sum(len(sv.effects) for sv in view.steps.values())


@dataclass(frozen=True)
class Exported:
    store: ArtifactStore
    quickstart: ModuleType
    quickstart_run: str
    desk_run: str
    phoenix: Phoenix

    @property
    def runs(self) -> tuple[str, str]:
        return (self.quickstart_run, self.desk_run)


@pytest.fixture(scope="module")
def exported(phoenix: Phoenix, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    location = tmp_path_factory.mktemp("store") / "store"
    quickstart = load_example("quickstart", "quickstart_phoenix")
    with open_store(location) as store:
        q_run = disagreeing_run(quickstart, store)  # its router escalates, its judge decides
        d_run = desk_run(store, "refund my flight")
    # The documented recipe, as a user runs it: the example script on the store.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {
        "ORCH_STORE": str(location),
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={PROJECT}",
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "otel_export.py"), q_run, phoenix.traces_endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with open_store(location, create=False) as store:
        exporter = otlp_exporter(phoenix.traces_endpoint)
        providers = dict.fromkeys(DESK_MODELS, SCRIPTED_PROVIDER)
        export_run(store, d_run, exporter, providers=providers, resource=project_resource())
        exporter.shutdown()
        total = sum(expected_span_count(load_run_view(store, r)) for r in (q_run, d_run))
        phoenix.wait_for(lambda spans: len(spans) >= total, f"the {total} spans of two runs")
        yield Exported(store, quickstart, q_run, d_run, phoenix)


def _trace_of(spans: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The spans of the one trace whose root span names ``run_id``."""
    roots = [
        s for s in spans if s["parent_id"] is None and s["attributes"].get("orch.run.id") == run_id
    ]
    assert len(roots) == 1, f"run {run_id}: {len(roots)} root spans in Phoenix"
    trace_id = roots[0]["context"]["trace_id"]
    return [s for s in spans if s["context"]["trace_id"] == trace_id]


def test_one_trace_per_run_with_every_span(exported: Exported) -> None:
    spans = exported.phoenix.spans()
    traces = {}
    for run_id in exported.runs:
        view = load_run_view(exported.store, run_id)
        trace = _trace_of(spans, run_id)
        assert len(trace) == expected_span_count(view)
        # One root; the ids Phoenix holds are the ones orch derives from the record.
        assert sum(s["parent_id"] is None for s in trace) == 1
        local = {f"{s.context.span_id:016x}" for s in run_spans(exported.store, run_id)}
        assert {s["context"]["span_id"] for s in trace} == local
        traces[run_id] = trace[0]["context"]["trace_id"]
    assert len(set(traces.values())) == len(exported.runs)


def test_parents_and_attributes_follow_the_record(exported: Exported) -> None:
    spans = exported.phoenix.spans()
    kinds_seen: set[str] = set()
    for run_id in exported.runs:
        view = load_run_view(exported.store, run_id)
        trace = _trace_of(spans, run_id)
        (root,) = [s for s in trace if s["parent_id"] is None]
        assert root["name"] == f"invoke_workflow {view.head.pipeline}"
        attrs = root["attributes"]
        assert attrs["orch.pipeline.name"] == view.head.pipeline
        assert attrs["orch.run.root_hash"] == view.head.root_hash
        assert attrs["orch.cost.usd"] == pytest.approx(view.cost_usd, rel=1e-12)
        assert view.cost_usd > 0

        steps = {
            s["attributes"]["orch.step.id"]: s
            for s in trace
            if s["attributes"].get("gen_ai.operation.name") == "invoke_agent"
        }
        assert set(steps) == set(view.steps)
        for step_id, sv in view.steps.items():
            span = steps[step_id]
            rec = sv.record
            parent = steps[rec.parent] if rec.parent else root
            assert span["parent_id"] == parent["context"]["span_id"], step_id
            assert span["span_kind"] == "AGENT"  # Phoenix read gen_ai.operation.name
            assert span["attributes"]["gen_ai.agent.name"] == rec.agent.name
            assert span["attributes"]["orch.step.status"] == rec.status
            decisions = [
                (
                    e["attributes"]["orch.decision.router"],
                    e["attributes"]["orch.decision.chosen"],
                    e["attributes"]["orch.decision.candidates"],
                    e["attributes"]["orch.decision.reason"],
                )
                for e in span["events"]
                if e["name"] == "orch.decision"
            ]
            assert decisions == [
                (d.router, list(d.chosen), list(d.candidates), d.reason) for d in sv.decisions
            ], step_id

            effects = {
                s["attributes"]["orch.effect.index"]: s
                for s in trace
                if s["parent_id"] == span["context"]["span_id"]
                and "orch.effect.index" in s["attributes"]
            }
            assert sorted(effects) == [e.index for e in sv.effects], step_id
            for eff in sv.effects:
                _check_effect(exported.store, effects[eff.index], eff)
                kinds_seen.add(effects[eff.index]["span_kind"])
    assert kinds_seen == {"LLM", "TOOL"}  # both kinds of effect were looked at
    # A routing decision of each run reached Phoenix.
    routed = {
        s["attributes"].get("gen_ai.agent.name")
        for s in spans
        if any(e["name"] == "orch.decision" for e in s["events"])
    }
    assert {"agreement-router", "reliability-judge", "triage-router"} <= routed


def _check_effect(store: ArtifactStore, span: dict[str, Any], eff: Any) -> None:
    attrs = span["attributes"]
    assert attrs["orch.effect.record"] is not None
    if eff.cost_usd is not None:
        assert attrs["orch.cost.usd"] == pytest.approx(eff.cost_usd, rel=1e-12)
    if eff.kind == "tool":
        assert span["name"] == f"execute_tool {eff.target}"
        assert span["span_kind"] == "TOOL"
        assert attrs["gen_ai.tool.name"] == eff.target
        assert attrs["tool.name"] == eff.target  # Phoenix's own reading of it
        return
    assert eff.kind == "model"
    assert span["name"] == f"chat {eff.target}"
    assert span["span_kind"] == "LLM"
    response = store.get_value(eff.response)
    assert attrs["gen_ai.request.model"] == eff.target
    # The name the provider reported, where it reported one (scripted models do not).
    assert attrs.get("gen_ai.response.model") == (response["provider_model"] or None)
    assert attrs["gen_ai.usage.input_tokens"] == eff.usage["input_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == eff.usage["output_tokens"]
    # Phoenix turned the GenAI attributes into its own (OpenInference) ones.
    assert attrs["llm.model_name"] == eff.target
    assert attrs["llm.token_count.prompt"] == eff.usage["input_tokens"]
    assert attrs["llm.token_count.completion"] == eff.usage["output_tokens"]
    assert eff.cost_usd is not None and eff.cost_usd > 0
    assert "gen_ai.input.messages" not in attrs  # contents are opt-in


def test_a_replay_adds_no_duplicate_spans(exported: Exported) -> None:
    store, phoenix = exported.store, exported.phoenix
    before = phoenix.spans()
    original = _trace_of(before, exported.quickstart_run)
    chats_before = sum(s["span_kind"] == "LLM" for s in before)

    async def replay() -> Any:
        return await areplay(
            exported.quickstart.pipeline,
            exported.quickstart_run,
            store,
            services=exported.quickstart.services(),
        )

    report = anyio.run(replay)
    assert report.clean, report.first_divergence
    replay_run = report.result.run_id
    assert replay_run != exported.quickstart_run
    # The replay's spans, then a new run's, in one request: once the new run's spans are in
    # Phoenix, its inserter (first in, first out) has handled the replay's before them.
    sentinel = desk_run(store, "lost luggage")
    n_sentinel = expected_span_count(load_run_view(store, sentinel))
    spans = run_spans(store, replay_run, resource=project_resource())
    spans += run_spans(store, sentinel, resource=project_resource())
    exporter = otlp_exporter(phoenix.traces_endpoint)
    assert exporter.export(spans).name == "SUCCESS"
    exporter.shutdown()
    after = phoenix.wait_for(
        lambda got: (
            sum(
                s["parent_id"] is None and s["attributes"].get("orch.run.id") == sentinel
                for s in got
            )
            == 1
            and len(got) >= len(before) + n_sentinel
        ),
        "the spans of a new run sent after a replay's",
    )
    assert len(after) == len(before) + n_sentinel
    sentinel_view = load_run_view(store, sentinel)
    sentinel_chats = sum(
        e.kind == "model" for sv in sentinel_view.steps.values() for e in sv.effects
    )
    assert sum(s["span_kind"] == "LLM" for s in after) == chats_before + sentinel_chats
    # The run's trace is as it was: same spans, its root still names the original run, and
    # no root in Phoenix names the replay (the replay's spans had the same ids).
    assert sorted(s["context"]["span_id"] for s in _trace_of(after, exported.quickstart_run)) == (
        sorted(s["context"]["span_id"] for s in original)
    )
    assert not any(s["attributes"].get("orch.run.id") == replay_run for s in after)


def test_contents_reach_phoenix_as_messages_when_asked(exported: Exported) -> None:
    store, phoenix = exported.store, exported.phoenix
    text = "charge appeared twice"
    run_id = desk_run(store, text)
    exporter = otlp_exporter(phoenix.traces_endpoint)
    export_run(store, run_id, exporter, include_content=True, resource=project_resource())
    exporter.shutdown()
    n = expected_span_count(load_run_view(store, run_id))
    spans = phoenix.wait_for(
        lambda got: sum(s["context"]["trace_id"] == _trace_id(got, run_id) for s in got) == n,
        f"the {n} spans of run {run_id}",
    )
    chats = [s for s in _trace_of(spans, run_id) if s["span_kind"] == "LLM"]
    assert sorted(s["attributes"]["gen_ai.request.model"] for s in chats) == sorted(DESK_MODELS)
    for chat in chats:
        attrs = chat["attributes"]
        # Phoenix read orch's gen_ai.input/output.messages (it drops any other shape).
        assert attrs["llm.input_messages.0.message.role"] == "user"
        assert attrs["llm.input_messages.0.message.content"] == text
        assert attrs["llm.output_messages.0.message.role"] == "assistant"
        reply = DESK_MODELS[attrs["gen_ai.request.model"]]
        assert attrs["llm.output_messages.0.message.content"] == reply


def _trace_id(spans: list[dict[str, Any]], run_id: str) -> str | None:
    for s in spans:
        if s["parent_id"] is None and s["attributes"].get("orch.run.id") == run_id:
            return str(s["context"]["trace_id"])
    return None
