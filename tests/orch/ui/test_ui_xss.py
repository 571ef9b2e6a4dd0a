"""Recorded text is untrusted on every page: a run whose model answer, decision reason,
candidates, scores, evidence, model name and pipeline name hold ``<script>``, a
``javascript:`` URL and an attribute breakout renders them as inert text, never as markup or
a link, and a 1 MB string is cut with a way to open its start. (test_ui_browser.py checks in
a real browser that no script runs.)"""

from __future__ import annotations

from pathlib import Path

from conftest import BREAKOUT, HUGE, JS_URL, PROBES, SCRIPT, Elements, MakeClient
from starlette.testclient import TestClient

from orch.ui._values import FULL_LIMIT
from traces import DirectoryStore

URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "srcset", "poster", "data"}


def pages(client: TestClient, run_id: str) -> dict[str, str]:
    get = client.get
    return {
        "list": get("/").text,
        "search": get("/?q=" + "escalating").text,
        "run": get(f"/runs/{run_id}").text,
        "compare": get(f"/compare?a={run_id}&b={run_id}").text,
    }


def test_hostile_text_is_inert(xss_store: tuple[Path, str], make_client: MakeClient) -> None:
    root, run_id = xss_store
    client = make_client(DirectoryStore(root))
    for name, text in pages(client, run_id).items():
        assert SCRIPT not in text, name
        assert BREAKOUT not in text, name
        assert "<img" not in text, name
        lowered = text.lower()
        assert 'href="javascript:' not in lowered and "href='javascript:" not in lowered, name
        doc = Elements(text)
        scripts = [a for t, a in doc.found if t == "script"]
        assert scripts == [{"src": "/static/ui.js", "defer": ""}], name  # ours only
        for _tag, attrs in doc.found:
            for key, value in attrs.items():
                assert not key.startswith("on"), (name, key)
                if key in URL_ATTRS:  # data-* may hold it as text; a URL never
                    assert not value.strip().lower().startswith("javascript:"), (name, key)
    run = pages(client, run_id)["run"]
    shown = "".join(Elements(run).text)
    for probe in PROBES:
        assert probe in shown  # shown as text (so escaped in the source)
    assert Elements(run).select("li", "candidate", data_candidate=JS_URL)


def test_huge_text_is_cut_and_folds(xss_store: tuple[Path, str], make_client: MakeClient) -> None:
    root, run_id = xss_store
    client = make_client(DirectoryStore(root))
    run = client.get(f"/runs/{run_id}").text
    # The answer, the reason and the evidence each hold 1 MB; the page holds a few cuts.
    assert len(run) < 12 * FULL_LIMIT + 100_000
    assert HUGE[: FULL_LIMIT + 1] not in run
    assert "more characters not shown" in run
    assert Elements(run).select("details", "long")
    listed = client.get("/").text
    assert len(listed) < 50_000  # the decisions' text in the list folds too
    data = client.get(f"/runs/{run_id}.json")
    assert data.headers["content-type"] == "application/json"
