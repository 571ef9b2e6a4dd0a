"""The Evaluations pages over a real evaluation file (routers' harness, through the engine,
saved by routers.eval's own writer): the list, an evaluation's tables and its server-drawn
plot (a point per configuration with its title, a link to exactly its runs), the runs list
scoped to one configuration, and the folder rule (no name outside it is read).

Expected figures come from the file itself (read with routers.eval.load), never typed in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import Elements, MakeClient

from orch.render import fmt_usd
from orch.ui._eval_plot import hull
from routers.eval import DatasetError, Point, ndch
from routers.eval import _evalfile as ef
from traces import DirectoryStore


def client_for(make_client: MakeClient, eval_folder: tuple[Path, Path, str]) -> object:
    folder, root, _ = eval_folder
    return make_client(DirectoryStore(root), evals_dir=folder)


def test_the_list_shows_evaluation_files_and_says_why_others_are_not(
    eval_folder: tuple[Path, Path, str], make_client: MakeClient
) -> None:
    folder, _, name = eval_folder
    client = client_for(make_client, eval_folder)
    page = Elements(client.get("/evals").text)  # type: ignore[attr-defined]
    assert [a["href"] for a in page.select("a", "eval-link")] == [f"/evals/{name}"]
    assert [r["data-name"] for r in page.select("tr", "eval-problem")] == ["other.json"]
    listed = client.get("/evals.json").json()  # type: ignore[attr-defined]
    ev = ef.load(folder / name)
    (good,) = [e for e in listed["evaluations"] if e["problem"] is None]
    assert good["configs"] == [c.label for c in ev.configs] and good["title"] == ev.title


def test_without_a_folder_the_page_says_how_to_give_one(
    eval_folder: tuple[Path, Path, str], make_client: MakeClient
) -> None:
    client = make_client(DirectoryStore(eval_folder[1]))
    page = client.get("/evals")
    assert page.status_code == 200 and "orch ui --evals DIR" in page.text
    assert client.get("/?eval=tiny.json&config=x").status_code == 404


def test_an_evaluation_shows_its_tables_and_plot(
    eval_folder: tuple[Path, Path, str], make_client: MakeClient
) -> None:
    folder, _, name = eval_folder
    ev = ef.load(folder / name)
    client = client_for(make_client, eval_folder)
    response = client.get(f"/evals/{name}")  # type: ignore[attr-defined]
    assert response.status_code == 200
    page = Elements(response.text)
    rows = page.select("tr", "config")
    assert [r["data-label"] for r in rows] == [c.label for c in ev.configs]
    text = "".join(page.text)
    for c in ev.configs:
        assert f"{c.summary['accuracy']:.4f}" in text
        assert fmt_usd(c.summary["cost_per_task_usd"], 8) in text
    for p in ev.references.single_models:
        assert f"{p.quality:.4f}" in text
    assert "<script>" not in response.text.replace(
        '<script src="/static/ui.js" defer></script>', ""
    )
    assert "x<script>" in text  # the file's own table, as text

    points = page.select("g", "pt-config")
    assert len(points) == len(ev.configs)
    for point, c in zip(points, ev.configs, strict=True):
        assert point["data-label"] == c.label
        cost, quality = c.summary["cost_per_task_usd"], c.summary["accuracy"]
        assert point["data-tip"].startswith(f"{c.label} (configuration, {len(c.runs)} runs)")
        assert f"quality {quality:.4f}, cost per task {fmt_usd(cost, 8)}" in point["data-tip"]
        assert float(point["data-cost"]) == cost and float(point["data-quality"]) == quality
    links = [a["href"] for a in page.select("a", "pt-link")]
    assert [parse_qs(urlsplit(h).query) for h in links] == [
        {"eval": [name], "config": [c.label]} for c in ev.configs
    ]
    assert len(page.select("g", "pt-single")) == len(ev.references.single_models)
    assert len(page.select("g", "pt-oracle")) == (ev.references.oracle is not None)


def test_a_file_with_fields_this_version_does_not_know_still_opens(
    eval_folder: tuple[Path, Path, str], make_client: MakeClient, tmp_path: Path
) -> None:
    """A newer writer may add fields anywhere: the page reads past them and shows what it
    knows exactly as before, while routers' writer, strict, refuses them."""
    folder, root, name = eval_folder
    raw = json.loads((folder / name).read_bytes())
    raw["added_later"] = {"x": 1}
    raw["references"]["added"] = 1
    raw["references"]["single_models"][0]["added"] = [1]
    raw["configs"][0]["added"] = None
    raw["configs"][0]["runs"][0]["added"] = "text"
    raw["curves"][0]["added"] = 1
    raw["curves"][0]["points"][0]["added"] = 1
    raw["tables"][0]["added"] = 1
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / name).write_text(json.dumps(raw))
    original = client_for(make_client, eval_folder).get(f"/evals/{name}")  # type: ignore[attr-defined]
    response = make_client(DirectoryStore(root), evals_dir=newer).get(f"/evals/{name}")
    assert response.status_code == 200
    assert response.text == original.text
    with pytest.raises(DatasetError, match="added: Extra inputs are not permitted"):
        ef.load(newer / name)


def test_a_configuration_link_lists_exactly_its_runs(
    eval_folder: tuple[Path, Path, str], make_client: MakeClient
) -> None:
    folder, _, name = eval_folder
    ev = ef.load(folder / name)
    client = client_for(make_client, eval_folder)
    cheap, dear = ev.config("single cheap"), ev.config("single dear")
    assert cheap.router == dear.router  # one pipeline name: its filter cannot tell them apart
    page = Elements(client.get(f"/evals/{name}").text)  # type: ignore[attr-defined]
    for c, href in zip(ev.configs, [a["href"] for a in page.select("a", "pt-link")], strict=True):
        listed = client.get(href)  # type: ignore[attr-defined]
        assert listed.status_code == 200
        shown = Elements(listed.text)
        assert sorted(r["data-run"] for r in shown.select("tr", "run")) == sorted(
            r.run_id for r in c.runs
        )
        assert shown.select("p", "scope", data_config=c.label)
    # Paged like the list, and filters combine with the scope.
    first = client.get("/runs.json", params={"eval": name, "config": "single dear", "limit": 3})  # type: ignore[attr-defined]
    seen = [r["run_id"] for r in first.json()["runs"]]
    after = first.json()["next"]
    while after:
        more = client.get(  # type: ignore[attr-defined]
            "/runs.json",
            params={"eval": name, "config": "single dear", "limit": 3, "after": after},
        ).json()
        seen += [r["run_id"] for r in more["runs"]]
        after = more["next"]
    assert sorted(seen) == sorted(r.run_id for r in dear.runs) and len(seen) == len(set(seen))
    failed = client.get(
        "/runs.json", params={"eval": name, "config": "single dear", "status": "failed"}
    )  # type: ignore[attr-defined]
    assert failed.json()["runs"] == []
    unknown = client.get("/", params={"eval": name, "config": "no such"})  # type: ignore[attr-defined]
    assert unknown.status_code == 404 and "no configuration" in unknown.text


@pytest.mark.parametrize(
    "bad",
    ["../store", "..%2Fstore", "%2Fetc%2Fpasswd.json", ".hidden.json", "a/b.json", "tiny.txt"],
)
def test_names_outside_the_folder_are_refused(
    bad: str, eval_folder: tuple[Path, Path, str], make_client: MakeClient
) -> None:
    client = client_for(make_client, eval_folder)
    response = client.get(f"/evals/{bad}")  # type: ignore[attr-defined]
    assert response.status_code in (400, 404), response.text[:300]
    assert "Traceback" not in response.text
    scoped = client.get("/", params={"eval": bad, "config": "x"})  # type: ignore[attr-defined]
    assert scoped.status_code in (400, 404)


def test_a_link_in_the_folder_is_never_followed(
    eval_folder: tuple[Path, Path, str], make_client: MakeClient, tmp_path: Path
) -> None:
    folder, _, name = eval_folder
    outside = tmp_path / "secret.json"
    outside.write_bytes((folder / name).read_bytes())
    link = folder / "linked.json"
    os.symlink(outside, link)
    try:
        client = client_for(make_client, eval_folder)
        assert client.get("/evals/linked.json").status_code == 404  # type: ignore[attr-defined]
        names = [e["name"] for e in client.get("/evals.json").json()["evaluations"]]  # type: ignore[attr-defined]
        assert "linked.json" not in names
    finally:
        link.unlink()


def test_the_hull_is_routers_ndch() -> None:
    pts = [(0.001, 0.5), (0.003, 0.75), (0.002, 0.4), (0.01, 1.0), (0.004, 0.7), (0.02, 0.9)]
    ours = hull(pts)
    theirs = ndch([Point(c, q) for c, q in pts])
    assert ours == [(p.cost, p.quality) for p in theirs]
