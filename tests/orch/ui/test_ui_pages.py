"""Every page of ``orch ui`` over a store of real quickstart runs, in process (Starlette's
TestClient): the runs list with each filter and its pages, a run, compare, verify, the JSON
forms, and a running run's page that changes as its steps finish.

Expected figures are read from the store itself (heads, run views, diff_runs), never typed in.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Elements, MakeClient
from pydantic import BaseModel

import orch
from orch import Context, PipelineBuilder, agent
from orch.render import DAG_CSS
from orch.ui._verify_jobs import VerifyJobs
from traces import (
    DirectoryStore,
    MemoryStore,
    RunHead,
    diff_runs,
    load_run_head,
    load_run_view,
)


def heads(store: DirectoryStore) -> list[RunHead]:
    found = [load_run_head(store, r) for r in store.run_ids()]
    return sorted(found, key=lambda h: (h.started_at, h.run_id), reverse=True)


def listed(client: Any, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    return [r["data-run"] for r in Elements(response.text).select("tr", "run")]


def escalated(store: DirectoryStore, run_id: str) -> bool:
    view = load_run_view(store, run_id)
    return any("escalat" in d.reason for s in view.steps.values() for d in s.decisions)


def test_runs_list_shows_every_run_newest_first(quick_store: Path, make_client: MakeClient) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    assert listed(client, "/") == [h.run_id for h in heads(store)]
    page = Elements(client.get("/").text)
    links = {a["href"] for a in page.select("a", "run-link")}
    assert links == {f"/runs/{h.run_id}" for h in heads(store)}
    options = [o["value"] for o in page.select("option") if o["value"]]
    assert "quickstart-ensemble" in options and "ok" in options


def test_runs_list_filters(quick_store: Path, make_client: MakeClient) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    all_heads = heads(store)
    esc = [h.run_id for h in all_heads if escalated(store, h.run_id)]
    calm = [h.run_id for h in all_heads if not escalated(store, h.run_id)]
    assert esc and calm  # the store has both kinds, so the text filter can be wrong
    assert listed(client, "/?q=escalat") == esc
    assert listed(client, "/?q=ESCALAT") == esc  # case-insensitive
    assert listed(client, "/?q=all+3+models+answered") == calm
    assert listed(client, "/?seed=11") == [h.run_id for h in all_heads if h.seed == 11] != []
    assert listed(client, "/?status=failed") == []
    assert listed(client, "/?status=ok&pipeline=quickstart-ensemble") == [
        h.run_id for h in all_heads
    ]
    assert listed(client, "/?pipeline=nope") == []
    day = dt.datetime.fromtimestamp(all_heads[0].started_at, dt.UTC).date()
    assert listed(client, f"/?from={day}&to={day}") == [
        h.run_id for h in all_heads if dt.datetime.fromtimestamp(h.started_at, dt.UTC).date() == day
    ]
    assert listed(client, f"/?from={day + dt.timedelta(days=1)}") == []
    assert listed(client, f"/?to={day - dt.timedelta(days=1)}") == []


def test_runs_list_pages_through_every_run(quick_store: Path, make_client: MakeClient) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    seen: list[str] = []
    url: str | None = "/?limit=2&q=agreement"
    pages = 0
    while url is not None:
        response = client.get(url)
        page = Elements(response.text)
        seen += [r["data-run"] for r in page.select("tr", "run")]
        nexts = page.select("a", id="next-page")
        url = nexts[0]["href"] if nexts else None
        if pages:
            assert page.select("a", id="first-page")
        pages += 1
    assert seen == [h.run_id for h in heads(store)]
    assert pages == -(-len(seen) // 2)
    data = client.get("/runs.json?limit=3").json()
    assert [r["run_id"] for r in data["runs"]] == seen[:3] and data["next"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("seed=abc", "seed"),
        ("seed=-1", "seed"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("status=bogus", "status"),
        ("from=yesterday", "from"),
        ("after=notacursor", "cursor"),
    ],
)
def test_a_bad_filter_is_one_line(
    quick_store: Path, make_client: MakeClient, query: str, names: str
) -> None:
    client = make_client(DirectoryStore(quick_store))
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    line = Elements(response.text).select("p", id="error-line")
    assert line and names in response.text and "Traceback" not in response.text
    assert client.get(f"/runs.json?{query}").json()["status"] == 400


def test_run_page_shows_what_the_store_holds(quick_store: Path, make_client: MakeClient) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    run_id = next(h.run_id for h in heads(store) if escalated(store, h.run_id))
    view = load_run_view(store, run_id)
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200
    page = Elements(response.text)
    text = response.text
    assert view.head.root_hash and view.head.root_hash in text
    assert page.select("span", "badge", id="verify-badge", data_ok="1")
    boxes = page.select("g", "dag-node")
    assert {b["data-step"]: b["data-status"] for b in boxes} == view.statuses()
    assert len(page.select("tr", "step")) == len(view.steps)
    effects = [e for s in view.steps.values() for e in s.effects]
    assert len(page.select("tr", "effect")) == len(effects) == 3
    decisions = [(s.record.step_id, d) for s in view.steps.values() for d in s.decisions]
    shown = page.select("details", "decision")
    assert sorted(d["data-step"] for d in shown) == sorted(s for s, _ in decisions)
    for _, d in decisions:
        assert d.reason.replace("σ", "σ") in text
        for c in d.candidates:
            assert page.select("li", "candidate", data_candidate=c)
    # Each timeline bar is SVG geometry, not an inline style (the CSP forbids those).
    assert page.select("svg", "timeline") and 'style="' not in text
    data = client.get(f"/runs/{run_id}.json").json()
    assert data["head"]["root_hash"] == view.head.root_hash and data["verified"] is True
    assert len(data["decisions"]) == len(decisions)
    live = client.get(f"/runs/{run_id}/live.json").json()
    assert live == {"version": data["version"], "status": "ok", "live": False}


def test_a_run_prefix_redirects_and_bad_ids_are_one_line(
    quick_store: Path, make_client: MakeClient
) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    run_id = heads(store)[0].run_id
    response = client.get(f"/runs/{run_id[:-4]}", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == f"/runs/{run_id}"
    for bad, status in [
        ("%2E%2E", 400),
        (".hidden", 400),
        ("a%00b", 400),
        ("..%2F..%2Fetc%2Fpasswd", 404),
        ("%2E%2E%2F%2E%2E%2Fetc", 404),
        ("x" * 200, 400),
        ("nope-no-such-run", 404),
    ]:
        response = client.get(f"/runs/{bad}")
        assert response.status_code == status, bad
        assert len(Elements(response.text).select("p", id="error-line")) == 1
        assert "Traceback" not in response.text and "passwd" not in response.text.split("<h1")[0]
    assert client.get("/runs/..%2F..%2Fetc.json").status_code == 404
    assert client.get("/static/..%2F_app.py").status_code == 404
    assert client.get("/compare?a=..&b=x").status_code == 400


def test_compare_shows_diff_runs(quick_store: Path, make_client: MakeClient) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    a, b = (h.run_id for h in heads(store)[:2])
    diff = diff_runs(store, a, b)
    response = client.get(f"/compare?run={a}&run={b}")
    assert response.status_code == 200
    page = Elements(response.text)
    rows = page.select("tr", "diff-step")
    assert [(r["data-step"], r["data-change"]) for r in rows] == [
        (s.step_id, s.change) for s in diff.steps
    ]
    assert page.select("p", id="compare-verdict", data_identical="0")
    same = Elements(client.get(f"/compare?a={a}&b={a}").text)
    assert same.select("p", id="compare-verdict", data_identical="1")
    assert client.get(f"/compare.json?a={a}&b={b}").json()["steps"] == [
        s.model_dump(mode="json") for s in diff.steps
    ]
    assert client.get("/compare").status_code == 200  # the form
    assert client.get(f"/compare?a={a}").status_code == 400
    assert client.get(f"/compare?run={a}&run={b}&run={a}").status_code == 400


def test_verify_a_run_and_the_store(quick_store: Path, make_client: MakeClient) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    run_id = heads(store)[0].run_id
    form = Elements(client.get("/verify").text)
    assert form.select("form", id="verify-form", method="post")
    one = Elements(client.post("/verify", data={"run": run_id[:-3]}).text)
    assert one.select("section", id="verify-result", data_ok="1")
    # The whole store is a background job; the post waits for it (this store is small, but the
    # wait is made long so a loaded machine still gets the report, not the progress page).
    client.app.state.verify_jobs = VerifyJobs(quick=120)  # type: ignore[attr-defined]
    whole = client.post("/verify", data={"run": ""})
    assert Elements(whole.text).select("section", id="verify-result", data_ok="1")
    assert f"{len(store.run_ids())} runs" in whole.text
    assert client.post("/verify", data={"run": "../x"}).status_code == 400


def test_an_empty_store_and_the_static_assets(make_client: MakeClient) -> None:
    client = make_client(MemoryStore())
    page = client.get("/")
    assert page.status_code == 200 and 'id="no-runs"' in page.text
    css, js = client.get("/static/ui.css"), client.get("/static/ui.js")
    assert css.status_code == js.status_code == 200
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    # The DAG's style is the run report's own rules, served from orch.render, not a copy.
    dag = client.get("/dag.css")
    assert dag.status_code == 200 and dag.headers["content-type"].startswith("text/css")
    assert dag.text == DAG_CSS and "svg.dag .dag-node.status-ok rect" in dag.text
    assert Elements(page.text).select("link", rel="stylesheet", href="/dag.css")
    assert client.get("/nowhere").status_code == 404


# -- a running run's page --------------------------------------------------------------------


class N(BaseModel):
    n: int


class M(BaseModel):
    m: N


@pytest.mark.anyio
async def test_a_running_runs_page_is_live_and_changes_as_steps_finish(
    make_client: MakeClient,
) -> None:
    gate = anyio.Event()
    started = anyio.Event()

    @agent(name="first", version="1")
    async def first(x: N, ctx: Context) -> N:
        return N(n=x.n + 1)

    @agent(name="held", version="1")
    async def held(x: M, ctx: Context) -> N:
        started.set()
        await gate.wait()
        return N(n=x.m.n * 2)

    p = PipelineBuilder("held")
    a = p.node("first", first, n=p.input("n", int))
    p.output("y", p.node("held", held, m=a))
    store = MemoryStore()
    client = make_client(store)
    outcome: dict[str, Any] = {}

    async def run() -> None:
        outcome["result"] = await orch.arun(p.build(), {"n": 1}, store=store, seed=0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await started.wait()
        run_id = store.run_ids()[0]
        page = await anyio.to_thread.run_sync(client.get, f"/runs/{run_id}")
        doc = Elements(page.text)
        body = doc.select("body", data_page="run")[0]
        assert body["data-live"] == "1"
        assert {r["data-step"]: r["data-status"] for r in doc.select("tr", "step")} == {
            "first": "ok",
            "held": "running",
        }
        assert doc.select("g", "dag-node", data_step="held", data_status="running")
        live = (await anyio.to_thread.run_sync(client.get, f"/runs/{run_id}/live.json")).json()
        assert live["live"] is True and live["version"] == body["data-version"]
        gate.set()
    assert outcome["result"].ok
    after = (await anyio.to_thread.run_sync(client.get, f"/runs/{run_id}/live.json")).json()
    assert after["live"] is False and after["status"] == "ok"
    assert after["version"] != live["version"]  # what the page's script compares
    final = Elements((await anyio.to_thread.run_sync(client.get, f"/runs/{run_id}")).text)
    assert final.select("body", data_page="run")[0]["data-live"] == "0"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}:\d+", after["version"])
