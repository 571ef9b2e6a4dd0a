"""The verify page states the store's ledger: its size, and its latest stored checkpoint with
who signed it (keys the server trusts, and others, unchecked); and a verification's warnings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import Elements, MakeClient

from traces import DirectoryStore, Signer, ledger_of


@pytest.fixture
def copy(quick_store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(quick_store, dst)
    return dst


def test_the_ledger_and_its_latest_checkpoint_are_stated(
    copy: Path, make_client: MakeClient
) -> None:
    store = DirectoryStore(copy)
    size = store.ledger_size()
    page = make_client(store).get("/verify").text
    assert "No signed checkpoint is stored yet" in page
    assert "".join(Elements(page).text).count(f"{size} entries") == 1
    auditor, other = Signer.generate("ui.test/audit"), Signer.generate("elsewhere/key")
    ledger_of(store).checkpoint([auditor, other])
    client = make_client(store, trusted=(auditor.verifier(),))
    text = " ".join("".join(Elements(client.get("/verify").text).text).split())
    assert f"Latest checkpoint: tree size {size}" in text
    assert "signed by ui.test/audit (trusted here); also by elsewhere/key (not checked" in text
    untrusted = " ".join("".join(Elements(make_client(store).get("/verify").text).text).split())
    # Signature lines in the note's order (as signed: the auditor, then the other key).
    assert "signed by no key trusted here; also by ui.test/audit, elsewhere/key" in untrusted
