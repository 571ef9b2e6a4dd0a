"""A tampered store shows what verification finds, never a traceback: an altered artifact
turns the run's badge red and names the record; a head that no longer parses, or a torn
event log, gives the run a page saying so in one line; the runs list still answers."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from conftest import Elements, MakeClient

from traces import DirectoryStore, RunRecord, StepRecord, load_run_head


@pytest.fixture
def copy(quick_store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(quick_store, dst)
    return dst


def first_run(root: Path) -> tuple[DirectoryStore, str]:
    store = DirectoryStore(root)
    return store, sorted(store.run_ids())[0]


def test_an_altered_step_record_is_named(copy: Path, make_client: MakeClient) -> None:
    store, run_id = first_run(copy)
    root_hash = load_run_head(store, run_id).root_hash
    assert root_hash is not None
    step_id, key = RunRecord.model_validate(store.get_value(root_hash)).steps[0]
    step = StepRecord.model_validate(store.get_value(key))
    store._tamper(key, orjson.dumps(step.model_dump(mode="json") | {"reason": "forged"}))
    store.close()
    client = make_client(DirectoryStore(copy))
    response = client.get(f"/runs/{run_id}")
    assert "Traceback" not in response.text
    doc = Elements(response.text)
    assert doc.select("span", id="verify-badge", data_ok="0")
    assert step_id in response.text and doc.select("li", "problem")
    verified = client.post("/verify", data={"run": run_id})
    assert Elements(verified.text).select("section", id="verify-result", data_ok="0")
    assert client.get("/").status_code == 200


def test_a_head_that_does_not_parse_is_one_line(copy: Path, make_client: MakeClient) -> None:
    store, run_id = first_run(copy)
    store.close()
    (copy / "runs" / run_id / "head.json").write_text('{"run_id": "not json')
    client = make_client(DirectoryStore(copy))
    response = client.get(f"/runs/{run_id}")
    assert response.status_code in (200, 422)
    assert "Traceback" not in response.text and 'File "' not in response.text
    doc = Elements(response.text)
    assert doc.select("p", id="unreadable") or doc.select("p", id="error-line")
    listing = client.get("/")
    assert listing.status_code == 200 and "Traceback" not in listing.text
    assert client.get(f"/runs/{run_id}.json").json()["status"] in (404, 422)
    assert client.get(f"/runs/{run_id}/live.json").json()["status"] in (404, 422)
