"""The example service (examples/service) as a client sees it: ``python -m examples.service``
under uvicorn in a subprocess, its model an OpenAI wire-protocol server streaming chunks (the
real ``openai`` SDK talks to it), driven over HTTP by httpx2 reading the SSE streams.

One request's events arrive in causal order with the model's tokens inside their effect and the
run verifies; 100 concurrent sessions each get their own ordered stream and run; a tool call
waits for an approval that is checked (422) before it resumes the run, and the tool runs once;
a session's turns are a thread whose state carries the messages; a client that goes away
cancels its run, recorded with the reason.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from typer.testing import CliRunner

import orch
from orch.cli import app as cli
from traces import ArtifactStore, open_store

# The wire-protocol servers of the model adapter tests live in tests/agents.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from wire_servers import Reply, ScriptedServer, openai_stream

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PARTS = ["Paris ", "is the ", "capital ", "of France."]
REPLY = "".join(PARTS)
QUESTION = "hello, what is the capital of France?"
DISCONNECTED = "the client disconnected from the event stream"  # examples.service.app's

Event = tuple[str, dict[str, Any]]


@pytest.fixture(scope="module")
def model_server() -> Iterator[ScriptedServer]:
    with ScriptedServer(Reply(sse=openai_stream(PARTS))) as server:
        yield server


@dataclass
class Service:
    url: str
    store: Path
    notes: Path


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, model_server: ScriptedServer
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service")
    svc = Service(url="", store=tmp / "store", notes=tmp / "notes.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    log = (tmp / "service.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.service",
            "--store",
            str(svc.store),
            "--base-url",
            f"{model_server.url}/v1",
            "--model",
            "served-model",
            "--notes",
            str(svc.notes),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, f"no URL printed ({line!r}); log:\n{(tmp / 'service.log').read_text()}"
        svc.url = found.group(0)
        yield svc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx2.AsyncClient]:
    limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx2.AsyncClient(base_url=service.url, timeout=120, limits=limits) as c:
        yield c


@pytest.fixture
def store(service: Service) -> Iterator[ArtifactStore]:
    with open_store(service.store, create=False) as st:
        yield st


async def post_sse(client: httpx2.AsyncClient, path: str, body: dict[str, Any]) -> list[Event]:
    """POST ``body`` and read the whole SSE answer as (event name, JSON data) pairs."""
    async with client.sse(path, method="POST", json=body) as source:
        assert source.response.status_code == 200, await source.response.aread()
        return [(sse.event, sse.json()) async for sse in source]


def check_causal(events: list[Event]) -> dict[str, Any]:
    """Assert the stream is one run's events in causal order; return its ``result``."""
    kinds = [k for k, _ in events]
    assert kinds[0] == "run_start", kinds
    assert kinds[-2:] == ["run_end", "result"], kinds[-3:]
    run_events = [e for k, e in events if k != "result"]
    assert all(k == e["kind"] for k, e in events if k != "result")
    assert len({e["run_id"] for e in run_events}) == 1
    seqs = [e["seq"] for e in run_events if e["seq"] is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every recorded event, in order
    assert all(e["hash"] for e in run_events if e["seq"] is not None)
    started: dict[str, int] = {}
    ended: dict[str, int] = {}
    effects: dict[tuple[str, int], str] = {}  # (step, index) -> start / done
    for i, (kind, e) in enumerate(events):
        step = e.get("step")
        if kind == "step_start":
            assert step not in started, f"{step} started twice"
            parent = step.rpartition("/")[0]
            if parent:
                assert parent in started and parent not in ended, f"{step} outside {parent}"
            started[step] = i
        elif kind == "step_end":
            assert step not in ended, f"{step} ended twice"
            if step not in started:  # taken from the record (a resume) or never run
                assert e["data"].get("reused") or e["data"]["status"] in ("skipped", "cancelled")
            for child in started:
                if child.startswith(f"{step}/"):
                    assert child in ended, f"{step} ended before its child {child}"
            ended[step] = i
        elif step is not None:
            assert step in started and step not in ended, f"{kind} outside its step {step}"
            slot = (step, e["data"].get("index"))
            if kind == "effect_start":
                assert slot not in effects
                effects[slot] = "start"
            elif kind == "token":
                assert effects.get(slot) == "start", f"token outside its effect {slot}"
            elif kind == "effect":
                assert effects.get(slot) in ("start", None)  # a served effect has no start
                effects[slot] = "done"
    assert set(started) <= set(ended), set(started) - set(ended)
    result = events[-1][1]
    end = events[-2][1]
    assert result["run_id"] == end["run_id"] == events[0][1]["run_id"]
    assert end["data"]["status"] == result["status"]
    assert end["data"]["root_hash"] == result["root_hash"]
    return result


def tokens_of(events: list[Event]) -> str:
    return "".join(e["data"]["text"] for k, e in events if k == "token")


async def run_info(client: httpx2.AsyncClient, run_id: str) -> dict[str, Any]:
    r = await client.get(f"/runs/{run_id}")
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()
    return info


async def test_one_message_streams_in_causal_order_and_verifies(
    client: httpx2.AsyncClient, model_server: ScriptedServer
) -> None:
    events = await post_sse(client, "/sessions/one/messages", {"text": QUESTION})
    result = check_causal(events)
    assert result["status"] == "ok", result
    assert result["reply"] == REPLY
    assert tokens_of(events) == REPLY  # the model's chunks, as they came
    kinds = [k for k, _ in events]
    for kind in ("step_start", "decision", "effect_start", "token", "effect", "step_end"):
        assert kind in kinds, kind
    (model,) = [e for k, e in events if k == "effect" and e["data"]["kind"] == "model"]
    assert model["data"]["usage"] == {"input_tokens": 5, "output_tokens": len(PARTS)}
    assert model["data"]["cost_usd"] == 0.0
    # Tokens streamed at the transport level, through the openai SDK.
    assert model_server.requests[-1]["json"]["stream"] is True
    info = await run_info(client, result["run_id"])
    assert info["status"] == "ok"
    assert info["root_hash"] == result["root_hash"]
    assert info["thread"] == "one"
    assert info["reply"] == REPLY
    assert info["verify"]["ok"], info["verify"]["problems"]
    assert info["verify"]["complete"]


async def test_100_concurrent_sessions_each_get_their_own_ordered_stream(
    client: httpx2.AsyncClient,
) -> None:
    n = 100
    streams: list[list[Event]] = [[] for _ in range(n)]

    async def one(i: int) -> None:
        streams[i] = await post_sse(
            client, f"/sessions/many-{i}/messages", {"text": f"hi number {i}: {QUESTION}"}
        )

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    results = [check_causal(events) for events in streams]
    assert all(r["status"] == "ok" and r["reply"] == REPLY for r in results)
    assert all(tokens_of(events) == REPLY for events in streams)
    run_ids = [r["run_id"] for r in results]
    assert len(set(run_ids)) == n
    infos: list[dict[str, Any]] = [{} for _ in range(n)]
    limit = anyio.Semaphore(16)

    async def check(i: int) -> None:
        async with limit:
            infos[i] = await run_info(client, run_ids[i])

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(check, i)
    for i, info in enumerate(infos):
        assert info["verify"]["ok"], (run_ids[i], info["verify"]["problems"])
        assert info["thread"] == f"many-{i}"
        assert info["root_hash"] == results[i]["root_hash"]


async def test_a_tool_call_waits_for_approval_then_runs_once(
    client: httpx2.AsyncClient, service: Service, store: ArtifactStore
) -> None:
    events = await post_sse(client, "/sessions/approve/messages", {"text": "save a note: oat milk"})
    waiting = check_causal(events)
    assert waiting["status"] == "waiting", waiting
    (question,) = waiting["questions"]
    assert question["question"] == "Save the note 'oat milk'?"
    assert question["schema"]["required"] == ["approve"]
    assert [e["step"] for k, e in events if k == "ask"] == ["act"]
    assert not service.notes.exists()  # asked before the tool, not after
    run_id = waiting["run_id"]
    assert waiting["answer"] == f"/runs/{run_id}/answer"

    bad = await client.post(
        f"/runs/{run_id}/answer", json={"by": "alice", "values": {"approve": "maybe"}}
    )
    assert bad.status_code == 422
    message = bad.json()["error"]
    assert "'maybe' is not of type 'boolean'" in message and "\n" not in message
    info = await run_info(client, run_id)
    assert info["status"] == "waiting"
    assert [q["id"] for q in info["questions"]] == [question["id"]]
    assert not service.notes.exists()

    resumed = await post_sse(
        client,
        f"/runs/{run_id}/answer",
        {"by": "alice", "values": {"approve": True, "note": "fine"}},
    )
    done = check_causal(resumed)
    assert done["status"] == "ok", done
    assert done["reply"] == "Saved note #1: oat milk"
    tools = [e for k, e in resumed if k == "effect" and e["data"]["kind"] == "tool"]
    assert [t["data"]["target"] for t in tools] == ["notes.save"]
    assert "served_from" not in tools[0]["data"]
    assert [json.loads(line) for line in service.notes.read_text().splitlines()] == [
        {"number": 1, "note": "oat milk"}
    ]
    info = await run_info(client, done["run_id"])
    assert info["verify"]["ok"], info["verify"]["problems"]
    assert info["resumed_from"] == run_id
    assert info["thread"] == "approve"

    # The answer is given once: the resumed run does not wait any more.
    again = await client.post(
        f"/runs/{run_id}/answer", json={"by": "alice", "values": {"approve": True}}
    )
    assert again.status_code == 422
    assert service.notes.read_text().count("\n") == 1
    assert orch.pending_questions(store, run_id) == []


async def test_a_session_is_a_thread_whose_state_carries_the_messages(
    client: httpx2.AsyncClient, model_server: ScriptedServer, service: Service, store: ArtifactStore
) -> None:
    texts = ["hello there", "tell me about tides", "thanks, that helps"]
    run_ids = []
    for text in texts:
        result = check_causal(await post_sse(client, "/sessions/three/messages", {"text": text}))
        assert result["status"] == "ok", result
        run_ids.append(result["run_id"])
    turns = orch.thread_turns(store, "three")
    assert [t.turn for t in turns] == [1, 2, 3]
    assert [t.run_id for t in turns] == run_ids
    assert [t.status for t in turns] == ["ok"] * 3
    session = (await client.get("/sessions/three")).json()
    assert [t["run_id"] for t in session["turns"]] == run_ids
    said = [(m["role"], m["content"]) for m in session["messages"]]
    assert said == [(role, c) for t in texts for role, c in (("user", t), ("assistant", REPLY))]
    # The model saw the conversation so far on the third turn.
    (third,) = [
        r["json"]["messages"]
        for r in model_server.requests
        if r["json"]["messages"][-1]["content"] == texts[2]
    ]
    assert [(m["role"], m["content"]) for m in third[1:]] == [*said[:4], ("user", texts[2])]
    # orch's own check: each turn's input state is the previous turn's output state.
    verified = CliRunner().invoke(
        cli, ["thread", "verify", "three", "--store", str(service.store), "--json"]
    )
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["ok"]


async def test_a_sessions_turns_run_one_at_a_time(
    client: httpx2.AsyncClient, store: ArtifactStore
) -> None:
    texts = ["hello, first", "hello, second"]
    results: dict[str, dict[str, Any]] = {}

    async def say(text: str) -> None:
        events = await post_sse(client, "/sessions/both/messages", {"text": text})
        results[text] = check_causal(events)

    async with anyio.create_task_group() as tg:
        for text in texts:
            tg.start_soon(say, text)
    assert all(r["status"] == "ok" for r in results.values()), results
    turns = orch.thread_turns(store, "both")
    assert [t.status for t in turns] == ["ok", "ok"]
    text_of = {r["run_id"]: text for text, r in results.items()}
    assert {t.run_id for t in turns} == set(text_of)
    # Whichever came second saw the first: the state holds both turns, in their order.
    session = (await client.get("/sessions/both")).json()
    said = [m["content"] for m in session["messages"] if m["role"] == "user"]
    assert said == [text_of[t.run_id] for t in turns]


async def test_bad_requests_are_refused_with_one_line(client: httpx2.AsyncClient) -> None:
    for path, body, status in [
        ("/sessions/s/messages", {"txt": "hi"}, 422),
        ("/sessions/s/messages", {"text": ""}, 422),
        ("/sessions/bad%20id/messages", {"text": "hi"}, 422),
        ("/runs/20990101-000000-00000000/answer", {"by": "a", "values": {}}, 404),
        ("/runs/x/answer", {"values": {}}, 422),
    ]:
        r = await client.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        assert "fix:" in r.json()["error"] and "\n" not in r.json()["error"], r.text
    r = await client.post("/sessions/s/messages", content=b"{not json")
    assert r.status_code == 400
    assert (await client.get("/runs/20990101-000000-00000000")).status_code == 404
    assert (await client.get("/sessions/never-seen")).status_code == 404


@pytest.fixture
def held_model(model_server: ScriptedServer) -> Iterator[ScriptedServer]:
    """The model server answering only after a minute (a run stays mid-way meanwhile)."""
    script = model_server.script
    model_server.script = [Reply(sse=openai_stream(PARTS), delay=60)]
    yield model_server
    model_server.script = script


async def test_a_client_that_disconnects_cancels_its_run(
    client: httpx2.AsyncClient, held_model: ScriptedServer
) -> None:
    held = len(held_model.requests)
    async with client.sse("/sessions/gone/messages", method="POST", json={"text": QUESTION}) as src:
        # One iterator, kept: an abandoned one would close the connection when collected.
        events = aiter(src)
        async for sse in events:
            if sse.event == "effect_start":
                run_id = sse.json()["run_id"]
                break
        # Leave while the model call is in flight (the model server is another thread).
        with anyio.fail_after(60):
            while len(held_model.requests) == held:  # noqa: ASYNC110
                await anyio.sleep(0.02)
    # The service is another process: ask it until the run has ended.
    with anyio.fail_after(60):
        while (info := await run_info(client, run_id))["status"] == "running":  # noqa: ASYNC110
            await anyio.sleep(0.05)
    assert info["status"] == "cancelled"
    assert info["error"] == {"type": "Cancelled", "message": DISCONNECTED}
    assert info["verify"]["ok"], info["verify"]["problems"]
