"""The HTML report of a run: made from real recorded runs, it shows the DAG with each step's
status, timings from the event log, cost, every decision's evidence and the verification
result; it escapes everything and is the same bytes every time."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
from example_modules import disagreeing_run, load_example
from pydantic import BaseModel

import orch
from orch import Context, PipelineBuilder, RetryableError, RetryPolicy, Selection, agent
from orch.render._run_report import render_run_report
from traces import DirectoryStore, MemoryStore, RunHead
from traces._runview import load_run_view


@pytest.fixture(scope="module")
def quickstart() -> ModuleType:
    return load_example("quickstart", "quickstart_for_run_report")


@pytest.fixture
def store_and_run(quickstart: ModuleType, tmp_path: Path) -> tuple[DirectoryStore, str]:
    store = DirectoryStore(tmp_path / "store")
    return store, disagreeing_run(quickstart, store)


def test_report_shows_run_dag_steps_costs_and_decisions(
    store_and_run: tuple[DirectoryStore, str],
) -> None:
    store, run_id = store_and_run
    page = render_run_report(store, run_id[:20])  # a unique prefix is enough
    view = load_run_view(store, run_id)
    assert page.startswith("<!DOCTYPE html>")
    assert f"<h1>Run {run_id}</h1>" in page
    assert view.head.root_hash is not None and view.head.root_hash in page
    assert "✔ verified" in page and "quickstart-ensemble" in page
    # One box per pipeline node, coloured by the step's status.
    boxes = dict(
        re.findall(r'<g class="dag-node status-\w+" data-step="([^"]+)" data-status="(\w+)"', page)
    )
    assert boxes == {n["id"]: view.steps[n["id"]].record.status for n in view.spec["nodes"]}
    assert page.count('class="dag-io" data-input=') == 1
    assert page.count('class="dag-io" data-output=') == 1
    assert 'class="edge cond"' in page  # the judge runs only when the vote says so
    # Every step in the steps table with its timing from the event log; total cost shown.
    rows = re.findall(r'<tr class="step" data-step="([^"]+)"', page)
    assert sorted(rows) == sorted(view.steps)
    haiku = view.steps["haiku"]
    assert haiku.duration is not None
    assert f"{haiku.duration * 1000:.1f} ms" in page
    assert f"${view.cost_usd:.6f}" in page and f"${haiku.cost_usd:.6f}" in page
    assert page.count('<tr class="step"') == len(view.steps)
    # Both decisions with their candidates, the chosen one marked, scores, reason, evidence.
    decisions = re.findall(r'<tr class="decision" data-step="([^"]+)"', page)
    assert decisions == ["vote", "judge"]  # in pipeline order
    vote = view.steps["vote"].decisions[0]
    assert vote.reason in page
    assert '<li class="chosen">disagree ✔</li>' in page
    assert "n_models" in page and "sigma" in page and "answers" in page
    # Inputs and outputs with their artifact keys.
    assert view.record is not None
    assert view.record.outputs["answer"] in page and view.record.inputs["question"] in page


def test_report_is_the_same_bytes_every_time(
    store_and_run: tuple[DirectoryStore, str], tmp_path: Path
) -> None:
    store, run_id = store_and_run
    first = render_run_report(store, run_id)
    again = render_run_report(DirectoryStore(tmp_path / "store"), run_id)  # a fresh reader
    assert first == again


def test_tampering_shows_in_the_report(store_and_run: tuple[DirectoryStore, str]) -> None:
    store, run_id = store_and_run
    log = Path(store.location) / "runs" / run_id / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    # A step's status edited in the log, still valid JSON: only the hash chain can tell.
    target = next(i for i, line in enumerate(lines) if b'"status":"ok"' in line)
    lines[target] = lines[target].replace(b'"ok"', b'"ko"', 1)
    log.write_bytes(b"".join(lines))
    page = render_run_report(store, run_id)
    assert "✘ verification failed" in page and "✔ verified" not in page
    assert 'id="verify-problems"' in page and f"event #{target}" in page


class Num(BaseModel):
    x: int


class Pick(Selection):
    pass


@agent(name="hostile-router", version="1")
async def hostile(n: Num, ctx: Context) -> Pick:
    ctx.decide(
        candidates=["<b>bold</b>", "y&z"],
        chosen="y&z",
        scores={"<b>bold</b>": 0.1, "y&z": 0.9, "margin": 0.8},
        reason="<script>alert('reason')</script>",
        evidence={"<img src=x onerror=alert(1)>": '"quoted"'},
    )
    return Pick(branches=["go"])


@agent(name="inc", version="1")
async def inc(n: Num, ctx: Context) -> Num:
    return Num(x=n.x + 1)


@agent(name="parent", version="1")
async def parent(n: Num, ctx: Context) -> Num:
    a = await ctx.call(inc, n)
    return await ctx.call(inc, a)


@agent(name="bad", version="1")
async def bad(n: Num, ctx: Context) -> Num:
    raise ValueError("<i>not allowed</i>")


def hostile_pipeline() -> orch.Pipeline:
    p = PipelineBuilder("hostile")
    x = p.input("x", int)
    r = p.node("route", hostile, x=x)
    p.node("kids", parent, x=x, when=r.selects("go"), retry=RetryPolicy(max_attempts=3))
    p.node("broken", bad, x=x, optional=True)
    p.output("y", p.node("skipped", inc, x=x, when=r.selects("stop")))
    return p.build()


def test_everything_from_the_record_is_escaped_and_children_are_indented() -> None:
    store = MemoryStore()
    result = orch.run(hostile_pipeline(), {"x": 1}, store=store)
    page = render_run_report(store, result.run_id)
    body = page.split("<body", 1)[1]
    assert "<script" not in body and "<img" not in body and "<b>bold" not in body
    assert "<i>not" not in body
    assert "&lt;script&gt;alert(&#x27;reason&#x27;)&lt;/script&gt;" in body
    assert "&lt;b&gt;bold&lt;/b&gt; — 0.1" in body and "y&amp;z — 0.9 ✔" in body
    assert "&lt;i&gt;not allowed&lt;/i&gt;" in body
    # Child calls sit under their parent.
    assert re.findall(r'data-step="(kids[^"]*)" data-depth="(\d)"', body) == [
        ("kids", "0"),
        ("kids/0", "1"),
        ("kids/1", "1"),
    ]
    statuses = dict(re.findall(r'data-step="(\w+)" data-status="(\w+)"', body))
    assert statuses == {"route": "ok", "kids": "ok", "broken": "failed", "skipped": "skipped"}


FLAKY: list[int] = []


@agent(name="flaky", version="1")
async def flaky(n: Num, ctx: Context) -> Num:
    FLAKY.append(n.x)
    if len(FLAKY) < 3:
        raise RetryableError("not yet")
    return Num(x=n.x)


def test_attempts_are_what_the_event_log_says() -> None:
    FLAKY.clear()
    p = PipelineBuilder("flaky")
    p.output(
        "y",
        p.node("f", flaky, x=p.input("x", int), retry=RetryPolicy(max_attempts=5, initial_wait=0)),
    )
    store = MemoryStore()
    result = orch.run(p.build(), {"x": 1}, store=store)
    assert result.ok and len(FLAKY) == 3
    assert load_run_view(store, result.run_id).steps["f"].attempts == 3
    body = render_run_report(store, result.run_id).split("<body", 1)[1]
    row = re.search(r'<tr class="step" data-step="f".*?</tr>', body, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
    assert cells[3] == "3"  # the attempts column


def test_a_run_without_decisions_or_effects_says_so() -> None:
    p = PipelineBuilder("plain")
    p.output("y", p.node("inc", inc, x=p.input("x", int)))
    store = MemoryStore()
    result = orch.run(p.build(), {"x": 1}, store=store)
    page = render_run_report(store, result.run_id)
    assert "No routing decisions were recorded" in page
    assert "No effects" in page
    assert "{&quot;x&quot;:2}" in page  # the output value


def test_an_unfinished_run_shows_what_it_finished(
    store_and_run: tuple[DirectoryStore, str],
) -> None:
    store, run_id = store_and_run
    run_dir = Path(store.location) / "runs" / run_id
    # What a kill leaves: the head still says running, the log stops after a few steps.
    head = RunHead.model_validate_json((run_dir / "head.json").read_bytes())
    head = head.model_copy(
        update={"status": "running", "root_hash": None, "finished_at": None, "event_count": 0}
    )
    (run_dir / "head.json").write_bytes(head.to_bytes())
    lines = (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
    ends = [i for i, line in enumerate(lines) if b'"type":"step_end"' in line]
    (run_dir / "events.jsonl").write_bytes(b"".join(lines[: ends[1] + 1]))
    store._tamper_truncate_ledger(store.ledger_size() - 1)  # it never sealed the run either
    page = render_run_report(store, run_id)
    assert "incomplete: the run did not finish" in page and "✔ verified" in page
    assert "(run did not finish)" in page
    assert page.count('<tr class="step"') == 2
    assert page.count('data-status="none"') == len(load_run_view(store, run_id).spec["nodes"]) - 2
    assert "question" in page  # the inputs come from the log's run_start event


def test_an_altered_output_is_reported_not_raised(
    store_and_run: tuple[DirectoryStore, str],
) -> None:
    store, run_id = store_and_run
    view = load_run_view(store, run_id)
    assert view.record is not None
    key = view.record.outputs["answer"]
    store._tamper(key, store.get(key).replace(b'"answer"', b'"ANSWER"'))
    page = render_run_report(store, run_id)
    assert "✘ verification failed" in page and "cannot read it" in page
