"""A server warms its store reads as it starts (orch.ui._warm): the runs index caught up and
every run's decisions read before anyone asks, the ledger read once; pages answer the same
with it; a failing warm-up is one line in the log and nothing on a page."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import Elements, MakeClient

from orch.ui._warm import WarmUp
from traces import DirectoryStore, RunFilter
from traces import _sqlindex as sqlindex

WAIT = 120.0  # seconds: a guard against a hang, never a measurement


def _pending(store_root: Path) -> int:
    db = sqlite3.connect(store_root / "index" / "runs.sqlite")
    try:
        sql = f"SELECT count(*) FROM run_index WHERE {sqlindex.PENDING}"
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def test_a_starting_server_reads_what_its_first_pages_would(
    quick_store: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    shutil.copytree(quick_store, root)
    store = DirectoryStore(root)
    try:
        index = store.run_index()
        assert index is not None
        index.page(RunFilter(), limit=1)  # the sidecar exists, most decisions unread
        assert _pending(root) > 0
        client = make_client(store)
        with client:  # the app's lifespan: the warm-up starts
            warm: WarmUp = client.app.state.warm  # type: ignore[attr-defined]
            assert warm.done.wait(WAIT) and warm.error is None
            assert _pending(root) == 0
            assert client.app.state.ui.verify._ledger is not None  # type: ignore[attr-defined]
            page = client.get("/?text=escalat")
            assert page.status_code == 200 and Elements(page.text).select("tr", "run")
    finally:
        store.close()


def test_a_failing_warm_up_is_one_log_line_and_pages_still_answer(
    quick_store: Path, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    with caplog.at_level(logging.WARNING, logger="orch.ui"):
        warm: WarmUp = client.app.state.warm  # type: ignore[attr-defined]
        warm.store = _Broken(store)  # type: ignore[assignment]
        with client:
            assert warm.done.wait(WAIT)
            assert warm.error == "OSError: disk went away"
            assert client.get("/").status_code == 200
    lines = [r.getMessage() for r in caplog.records if "warming up" in r.getMessage()]
    assert lines == ["orch ui: warming up the store's reads failed: OSError: disk went away"]
    store.close()


class _Broken:
    """A store whose runs index cannot be opened (a disk gone, say)."""

    def __init__(self, store: DirectoryStore) -> None:
        self.store = store

    def run_index(self) -> None:
        raise OSError("disk went away")
