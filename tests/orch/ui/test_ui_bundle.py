"""A run's evidence bundle from its page: the file ``orch export`` writes, with a checkpoint
already stored (the app never signs), verified as an auditor would; without a checkpoint that
covers the run, one line naming the command that signs one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import Elements, MakeClient

from traces import DirectoryStore, Signer, ledger_of, verify_bundle


@pytest.fixture
def copy(quick_store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(quick_store, dst)
    return dst


def test_the_bundle_of_a_checkpointed_run_downloads_and_verifies(
    copy: Path, make_client: MakeClient
) -> None:
    store = DirectoryStore(copy)
    run_id = sorted(store.run_ids())[0]
    signer = Signer.generate("ui.test/audit")
    ledger_of(store).checkpoint([signer])
    client = make_client(store)
    page = Elements(client.get(f"/runs/{run_id}").text)
    [link] = page.select("a", id="bundle-link")
    assert link["href"] == f"/runs/{run_id}/evidence.orchpack"
    response = client.get(link["href"])
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="{run_id}.orchpack"'
    report = verify_bundle(response.content, [signer.verifier()])
    assert report.ok, report.problems


def test_without_a_checkpoint_it_is_one_line_and_nothing_is_signed(
    copy: Path, make_client: MakeClient
) -> None:
    store = DirectoryStore(copy)
    run_id = sorted(store.run_ids())[0]
    before = sorted(p.name for p in (copy / "ledger").rglob("*"))
    response = make_client(store).get(f"/runs/{run_id}/evidence.orchpack")
    assert response.status_code == 409
    assert "orch checkpoint --key NAME" in response.text and "Traceback" not in response.text
    assert sorted(p.name for p in (copy / "ledger").rglob("*")) == before


def test_a_bad_run_id_is_refused(quick_store: Path, make_client: MakeClient) -> None:
    client = make_client(DirectoryStore(quick_store))
    assert client.get("/runs/.hidden/evidence.orchpack").status_code == 400
    assert client.get("/runs/no-such-run/evidence.orchpack").status_code == 404
