"""Verifying the whole store from the page is a background job: the post goes to the job's
page, which shows each phase's count while it runs (and its JSON form, what verify.js polls),
then the same report the verify page shows; one job at a time (asking again goes to the
running one), a few kept, a failure one line (the traceback in the log only), a job stopped
when the server shuts down, and the job's script on its page only; in chromium, the job's
page following the job with its own script, then showing the report.

The store is real (quickstart runs); to see a job mid-way, the test's store holds the
verification thread at its first run until the test lets it go. Expected figures come from
the store and from ``verify_store`` itself, never typed in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_ui_browser
from conftest import SCRIPT, Elements, MakeClient
from test_ui_browser import wait_for

from orch.ui._verify_jobs import VerifyJobs
from traces import DirectoryStore, MemoryStore, verify_store

chromium = test_ui_browser.driver  # the browser tests' chromium (it skips without one)
DEADLINE = 120.0  # seconds a condition may take to come true (a bound, never a measure)


def wait_until(condition: Any, what: str) -> Any:
    end = time.monotonic() + DEADLINE
    while not (found := condition()):
        assert time.monotonic() < end, f"not within {DEADLINE} s: {what}"
        time.sleep(0.02)
    return found


class HeldStore(DirectoryStore):
    """A directory store whose verification thread waits at the first run head it reads
    until the test lets it go (other threads read as usual)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.held = threading.Event()
        self.go = threading.Event()

    def read_run_head(self, run_id: str) -> bytes | None:
        if threading.current_thread().name.startswith("orch-ui-verify-"):
            self.held.set()
            self.go.wait(DEADLINE)
        return super().read_run_head(run_id)


@pytest.fixture
def held(quick_store: Path) -> Iterator[HeldStore]:
    store = HeldStore(quick_store)
    yield store
    store.go.set()


def jobs_of(client: Any, **kw: Any) -> VerifyJobs:
    jobs = VerifyJobs(**kw)
    client.app.state.verify_jobs = jobs
    return jobs


def finished(client: Any, number: int) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        state: dict[str, Any] = client.get(f"/verify/jobs/{number}.json").json()
        return state if state["finished"] else None

    found: dict[str, Any] = wait_until(ended, f"verification #{number} ended")
    return found


def scripts(text: str) -> list[str]:
    return [a.get("src", "") for t, a in Elements(text).found if t == "script"]


def test_the_store_is_verified_in_the_background_with_progress(
    held: HeldStore, make_client: MakeClient
) -> None:
    client = make_client(held)
    jobs_of(client, quick=0)
    started = client.post("/verify", data={"run": ""}, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"] == "/verify/jobs/1"
    assert held.held.wait(DEADLINE)

    # Mid-way: the artifacts and the ledger are done, the runs begun.
    artifacts = len(list(held.keys()))
    runs = len(held.run_ids())
    state = client.get("/verify/jobs/1.json").json()
    assert (state["state"], state["finished"], state["phase"]) == ("running", False, "runs")
    assert state["phases"]["artifacts"] == {"done": artifacts, "total": artifacts}
    assert state["phases"]["runs"] == {"done": 0, "total": runs}
    assert state["report"] is None
    page = client.get("/verify/jobs/1")
    assert page.status_code == 200
    doc = Elements(page.text)
    assert doc.select("body", data_page="verify-job", data_job="1", data_running="1")
    assert doc.select("li", id="phase-artifacts", data_state="done")
    assert doc.select("li", id="phase-runs", data_state="running")
    text = " ".join("".join(doc.text).split())
    assert f"artifacts re-hashed: {artifacts} of {artifacts}" in text
    assert f"runs verified: 0 of {runs}" in text
    assert doc.select("progress", id="verify-bar", value="0", max=str(runs))
    assert not doc.select("section", id="verify-result")
    assert scripts(page.text) == ["/static/ui.js", "/static/verify.js"]

    # Asking again while it runs goes to the running job, starting none.
    again = client.post("/verify", data={"run": ""}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/verify/jobs/1"

    held.go.set()
    done = finished(client, 1)
    expected = verify_store(held).model_dump(mode="json")
    assert done["state"] == "done" and done["ok"] is True and done["phase"] == "done"
    assert {k: v for k, v in done["report"].items() if k != "ok"} == expected
    assert done["phases"]["runs"] == {"done": runs, "total": runs}
    shown = client.get("/verify/jobs/1")
    doc = Elements(shown.text)
    assert doc.select("body", data_running="0")
    assert doc.select("section", id="verify-result", data_ok="1")
    assert doc.select("section", id="ledger-state", data_kept="1")
    assert f"{runs} runs" in shown.text
    assert doc.select("li", id="phase-runs", data_state="done")
    # A new verification once that one ended.
    assert client.post("/verify", data={"run": ""}).url.path == "/verify/jobs/2"


def test_a_small_store_shows_its_report_straight_away(
    quick_store: Path, make_client: MakeClient
) -> None:
    store = DirectoryStore(quick_store)
    client = make_client(store)
    jobs_of(client, quick=DEADLINE)  # the post waits for the job (it ends well before)
    whole = client.post("/verify", data={"run": ""})
    assert whole.url.path == "/verify/jobs/1"
    doc = Elements(whole.text)
    assert doc.select("section", id="verify-result", data_ok="1")
    assert doc.select("body", data_running="0")
    # The report verify_store gives: what it checked, figure by figure.
    report = verify_store(store)
    assert report.ok
    for k, n in report.checked.items():
        assert f"{n} {k}" in whole.text
    # One run stays within the request, as before.
    run_id = store.run_ids()[0]
    one = client.post("/verify", data={"run": run_id}, follow_redirects=False)
    assert one.status_code == 200
    assert Elements(one.text).select("section", id="verify-result", data_ok="1")
    assert len(client.app.state.verify_jobs) == 1  # type: ignore[attr-defined]


def test_a_tampered_store_names_the_record_on_the_job_page(
    quick_store: Path, tmp_path: Path, make_client: MakeClient
) -> None:
    import shutil

    root = tmp_path / "store"
    shutil.copytree(quick_store, root)
    store = DirectoryStore(root)
    key = sorted(store.keys())[3]
    store._tamper(key, b"altered " + SCRIPT.encode())
    store.close()
    client = make_client(DirectoryStore(root))
    jobs_of(client, quick=DEADLINE)
    page = client.post("/verify", data={"run": ""})
    doc = Elements(page.text)
    assert doc.select("section", id="verify-result", data_ok="0")
    expected = verify_store(DirectoryStore(root))
    named = [p.subject for p in expected.problems]
    assert f"artifact {key}" in named  # the store's own listing names it, then its runs
    assert len(doc.select("li", "problem")) == len(expected.problems)
    text = "".join(doc.text)
    assert all(subject in text for subject in named)


class BrokenStore(MemoryStore):
    """A store whose listing fails, with a message that is hostile text on two lines."""

    def keys(self) -> Iterator[str]:
        raise RuntimeError(f"the disk is on fire {SCRIPT}\nsecond line")


def test_a_failure_is_one_line_and_the_traceback_goes_to_the_log(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(BrokenStore())
    jobs_of(client, quick=DEADLINE)
    with caplog.at_level(logging.ERROR, logger="orch.ui"):
        page = client.post("/verify", data={"run": ""})
        state = finished(client, 1)
    assert state["state"] == "failed" and state["report"] is None
    assert state["line"] == f"RuntimeError: the disk is on fire {SCRIPT}"
    doc = Elements(page.text)
    assert doc.select("section", id="verify-job", data_state="failed")
    assert len(doc.select("p", id="verify-line")) == 1
    assert f"RuntimeError: the disk is on fire {SCRIPT}" in "".join(doc.text)
    assert (
        "Traceback" not in page.text and SCRIPT not in page.text and "second line" not in page.text
    )
    assert any(r.exc_info and "verification job 1 failed" in r.getMessage() for r in caplog.records)


def test_a_job_stops_when_the_server_shuts_down(held: HeldStore, make_client: MakeClient) -> None:
    client = make_client(held)
    jobs = jobs_of(client, quick=0)
    client.post("/verify", data={"run": ""}, follow_redirects=False)
    assert held.held.wait(DEADLINE)
    jobs.close()
    held.go.set()
    state = finished(client, 1)
    assert (state["state"], state["line"]) == ("stopped", "the server shut down while it ran")
    refused = client.post("/verify", data={"run": ""})
    assert "the server is shutting down" in refused.text


def test_jobs_kept_are_bounded_and_an_unknown_one_is_one_line(make_client: MakeClient) -> None:
    client = make_client(MemoryStore())
    jobs_of(client, kept=2, quick=DEADLINE)
    for n in range(1, 6):
        assert client.post("/verify", data={"run": ""}).url.path == f"/verify/jobs/{n}"
        finished(client, n)
    assert len(client.app.state.verify_jobs) == 2  # type: ignore[attr-defined]
    for url in ("/verify/jobs/1", "/verify/jobs/1.json", "/verify/jobs/99"):
        gone = client.get(url)
        assert gone.status_code == 404
        assert "fix: verify again from /verify" in gone.text and "Traceback" not in gone.text
    assert client.get("/verify/jobs/1.json").json()["status"] == 404
    assert client.get("/verify/jobs/5").status_code == 200
    assert client.get("/verify/jobs/x").status_code == 404


def test_the_job_script_is_served_and_only_on_the_job_page(make_client: MakeClient) -> None:
    client = make_client(MemoryStore())
    js = client.get("/static/verify.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "innerHTML" not in js.text  # counts are set as text, never as HTML
    for url in ("/", "/verify", "/compare"):
        assert scripts(client.get(url).text) == ["/static/ui.js"], url
    from orch.ui._templating import STATIC_DIR

    assert (STATIC_DIR / "verify.js").read_text() == js.text  # from the package, as shipped


@pytest.mark.slow
def test_the_job_page_follows_the_job_in_a_browser(held: HeldStore, chromium: object) -> None:
    """In chromium: the verify form posts, the job's page shows the counts its script polls
    (the script runs under the page's CSP), then reloads itself with the report."""
    import uvicorn
    from selenium.webdriver.common.by import By

    from orch.ui import UiSettings, bind, create_app

    app = create_app(UiSettings(store=held))
    app.state.verify_jobs = VerifyJobs(quick=0)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "the server listens")
        d: Any = chromium
        d.get(f"http://127.0.0.1:{port}/verify")
        wait_for(d, "form#verify-form")
        d.find_element(By.ID, "verify-submit").click()
        wait_for(d, "body[data-page='verify-job'][data-polled]")  # its script asked
        runs = len(held.run_ids())
        assert d.find_element(By.ID, "phase-runs-count").text == f"0 of {runs}"
        assert d.find_element(By.ID, "phase-runs").get_attribute("data-state") == "running"
        held.go.set()
        result = wait_for(d, "section#verify-result")  # the page reloaded itself once it ended
        assert result.get_attribute("data-ok") == "1"  # type: ignore[attr-defined]
        assert d.find_element(By.ID, "phase-runs-count").text == f"{runs} of {runs}"
        assert d.current_url == f"http://127.0.0.1:{port}/verify/jobs/1"
    finally:
        held.go.set()
        server.should_exit = True
        thread.join(DEADLINE)
        sock.close()
