"""Replay from a run's page: a clean replay of a quickstart run, a divergent one (the pipeline
file edited after the run), refused without --allow-replay, the progress endpoint, one replay
per run at a time, and a bounded number of jobs kept; a replay that hangs stopped at the
time limit (``--replay-timeout``), and replays stopped with the server (jobs closed, and a
real ``orch ui`` process sent SIGTERM), their processes and what they started gone.

The replays are real: the app starts the replay process (:mod:`orch.ui._replay_worker`) over
the store, which imports the recorded pipeline file and replays the run offline. Expected
figures come from the store (root hashes, step counts), never typed in.
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import Elements, MakeClient, orch_ui, record_with_origin
from typer.testing import CliRunner

from orch._replay import check_recorded_pipeline
from orch.cli import app
from orch.ui._replay_jobs import ReplayJob, ReplayJobs, ReplayRequest
from orch.ui._replay_page import ENABLE
from traces import DirectoryStore, load_run_head, load_run_view

POLLS = 600  # a bound on how often a test asks (each a short sleep), never a measure


def wait_done(client: Any, run_id: str) -> dict[str, Any]:
    """The replay's JSON once it ended (asked again and again; fails after POLLS asks)."""
    seen: list[dict[str, Any]] = []
    for _ in range(POLLS):
        state = client.get(f"/runs/{run_id}/replay.json").json()
        seen.append(state)
        if state["job"] is not None and state["job"]["finished"]:
            return dict(state["job"])
        time.sleep(0.1)
    raise AssertionError(f"the replay did not end: {seen[-1]}")


def test_clean_replay_of_a_quickstart_run_changes_nothing(
    replayable_store: tuple[Path, list[str]], make_client: MakeClient
) -> None:
    root, ids = replayable_store
    run_id = ids[0]
    store = DirectoryStore(root)
    before = sorted(store.run_ids())
    client = make_client(store, allow_replay=True, store_location=str(root))
    page = Elements(client.get(f"/runs/{run_id}").text)
    (form,) = page.select("form", id="replay-form")
    assert form["action"] == f"/runs/{run_id}/replay" and form["method"] == "post"
    plan = client.get(f"/runs/{run_id}/replay")
    found = check_recorded_pipeline(store, run_id)
    assert found is not None and found.sources is not None and not found.changes
    assert f"all {len(found.sources.files)} as recorded" in plan.text
    assert "Not recorded unless ticked" in plan.text

    started = client.post(f"/runs/{run_id}/replay", data={}, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"] == f"/runs/{run_id}/replay"
    job = wait_done(client, run_id)
    steps = len(load_run_view(store, run_id).steps)
    assert job["state"] == "clean", job
    assert (job["done"], job["total"]) == (steps, steps)
    report = job["report"]
    assert (
        report["root_hash"]
        == report["expected_root_hash"]
        == load_run_head(store, run_id).root_hash
    )
    assert report["recorded"] is False
    assert sorted(store.run_ids()) == before  # not recorded: the store did not change

    shown = client.get(f"/runs/{run_id}/replay")
    result = Elements(shown.text)
    assert result.select("p", id="replay-verdict", data_clean="1")
    assert "Not recorded: nothing was written to the store." in shown.text
    assert "Traceback" not in shown.text


def test_a_recorded_replay_is_a_new_run(
    replayable_store: tuple[Path, list[str]], make_client: MakeClient
) -> None:
    root, ids = replayable_store
    store = DirectoryStore(root)
    before = set(store.run_ids())
    client = make_client(store, allow_replay=True, store_location=str(root))
    client.post(f"/runs/{ids[1]}/replay", data={"record": "1"})
    job = wait_done(client, ids[1])
    assert job["state"] == "clean" and job["report"]["recorded"] is True
    new = set(DirectoryStore(root).run_ids()) - before
    assert new == {job["report"]["replay_run_id"]}
    head = load_run_head(DirectoryStore(root), job["report"]["replay_run_id"])
    assert head.root_hash == load_run_head(store, ids[1]).root_hash


def test_a_changed_pipeline_is_refused_then_diverges_field_by_field(
    changed_project: tuple[Path, str, Path], make_client: MakeClient
) -> None:
    root, run_id, _flow = changed_project
    store = DirectoryStore(root)
    client = make_client(store, allow_replay=True, store_location=str(root))
    plan = Elements(client.get(f"/runs/{run_id}/replay").text)
    assert len(plan.select("li", "changed-file")) == 1
    assert plan.select("input", id="replay-accept")

    # Without consent the changed file is not imported: refused, naming it.
    client.post(f"/runs/{run_id}/replay", data={})
    refused = wait_done(client, run_id)
    assert refused["state"] == "refused"
    assert [c["path"] for c in refused["changes"]] == ["flow.py"]

    # With the code as it is now: step b's prompt differs, shown field by field.
    client.post(f"/runs/{run_id}/replay", data={"accept_changed": "1"})
    job = wait_done(client, run_id)
    assert job["state"] == "diverged", job
    first = job["report"]["first_divergence"]
    assert (first["step_id"], first["index"], first["kind"]) == ("b", 0, "request-changed")
    (change,) = first["changes"]
    assert change["path"] == "$.prompt"
    assert change["expected"].startswith("Rephrase: ") and change["actual"].startswith("Reword: ")
    page = client.get(f"/runs/{run_id}/replay")
    shown = Elements(page.text)
    assert shown.select("p", id="replay-verdict", data_clean="0")
    assert shown.select("tr", "divergence", data_step="b", data_index="0")
    assert shown.select("tr", "field-change", data_path="$.prompt")
    text = "".join(shown.text)
    assert change["expected"] in text and change["actual"] in text


def test_replay_is_refused_without_allow_replay(
    replayable_store: tuple[Path, list[str]], make_client: MakeClient
) -> None:
    root, ids = replayable_store
    client = make_client(DirectoryStore(root), store_location=str(root))
    refused = client.post(f"/runs/{ids[0]}/replay", data={})
    assert refused.status_code == 403
    page_text = "".join(Elements(refused.text).text)
    assert ENABLE in page_text  # the one line, naming the fix
    assert "Traceback" not in refused.text
    page = client.get(f"/runs/{ids[0]}/replay")
    assert page.status_code == 200 and "--allow-replay" in page.text
    assert Elements(page.text).select("p", id="replay-disabled")
    assert not Elements(client.get(f"/runs/{ids[0]}").text).select("form", id="replay-form")
    assert client.get(f"/runs/{ids[0]}/replay.json").json() == {"allowed": False, "job": None}
    # A post from another site never reaches the page, replay allowed or not.
    other = make_client(DirectoryStore(root), allow_replay=True, store_location=str(root))
    foreign = other.post(
        f"/runs/{ids[0]}/replay", data={}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403 and "another site" in foreign.text
    # Chromium posts a page's form with `Origin: null` under `Referrer-Policy: no-referrer`;
    # only the browser's own Sec-Fetch-Site then says whether it came from this server.
    for site, status in (("cross-site", 403), ("same-site", 403), ("same-origin", 403)):
        opaque = client.post(
            f"/runs/{ids[0]}/replay",
            data={},
            headers={"Origin": "null", "Sec-Fetch-Site": site},
        )
        # Past the guard (same-origin), this server refuses the replay itself: read-only.
        assert opaque.status_code == status
        assert ("another site" in opaque.text) == (site != "same-origin")


def test_bad_run_ids_and_a_store_in_memory(
    replayable_store: tuple[Path, list[str]], make_client: MakeClient
) -> None:
    root, _ = replayable_store
    client = make_client(DirectoryStore(root), allow_replay=True, store_location=str(root))
    assert client.post("/runs/..%2F..%2Fetc/replay", data={}).status_code in (400, 404)
    assert client.post("/runs/nope-nope/replay", data={}).status_code == 404
    from traces import MemoryStore

    memory = make_client(MemoryStore(), allow_replay=True)
    assert memory.get("/runs/x/replay").status_code == 404


class Gate:
    """A runner that says how far it got, then waits until the test lets it end."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = threading.Event()

    def __call__(self, job: ReplayJob, hear: Any) -> None:
        hear({"event": "plan", "target": "x.py:pipeline", "total": 3, "changed": []})
        hear({"event": "progress", "done": 1})
        self.started.set()
        self.go.wait(60)
        hear({"event": "report", "done": 3, "report": {"clean": True}})


def test_progress_endpoint_and_one_replay_per_run(
    replayable_store: tuple[Path, list[str]], make_client: MakeClient
) -> None:
    root, ids = replayable_store
    client = make_client(DirectoryStore(root), allow_replay=True, store_location=str(root))
    gate = Gate()
    client.app.state.replays = ReplayJobs(gate)  # type: ignore[attr-defined]
    assert client.post(f"/runs/{ids[0]}/replay", data={}).status_code == 200
    assert gate.started.wait(60)
    state = client.get(f"/runs/{ids[0]}/replay.json").json()["job"]
    assert (state["state"], state["done"], state["total"], state["finished"]) == (
        "running",
        1,
        3,
        False,
    )
    page = Elements(client.get(f"/runs/{ids[0]}/replay").text)
    assert page.select("body", data_running="1")
    assert page.select("progress", id="replay-bar", value="1", max="3")
    again = client.post(f"/runs/{ids[0]}/replay", data={})
    assert again.status_code == 409 and "already running" in again.text
    gate.go.set()
    done = wait_done(client, ids[0])
    assert (done["state"], done["done"]) == ("clean", 3)


def test_jobs_kept_are_bounded() -> None:
    jobs = ReplayJobs(lambda job, hear: hear({"event": "error", "line": "x"}), kept=3)
    made = []
    for i in range(8):
        made.append(jobs.start(ReplayRequest("s", f"run-{i}")))
        for _ in range(POLLS):
            if made[-1].finished:
                break
            time.sleep(0.01)
    assert len(jobs) <= 3
    assert jobs.latest("run-7") is made[-1] and jobs.latest("run-0") is None


# -- the replay time limit, and replays stopped with the server -----------------------------

HANG_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "ui_hang_pipeline.py"
DEADLINE = 120.0  # seconds a condition may take to come true (a bound, never a measure)


def running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: Any, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"not within {DEADLINE} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def hanging_run(tmp_path: Path) -> tuple[Path, str, Path]:
    """(store dir, run id, project folder): a run of tests/fixtures/ui_hang_pipeline.py
    recorded while its gate file was there; gone now, so a replay of it waits forever."""
    project = tmp_path / "project"
    project.mkdir()
    flow = project / "flow.py"
    flow.write_text(HANG_FILE.read_text())
    (project / "go").write_text("")
    root = tmp_path / "store"
    store = DirectoryStore(root)
    run_id = record_with_origin(store, str(flow), {"question": "hi"})
    store.close()
    (project / "go").unlink()
    return root, run_id, project


class Recording(subprocess.Popen):  # type: ignore[type-arg]
    """subprocess.Popen, noting the pid of each process started (the replay worker's)."""

    pids: ClassVar[list[int]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Recording.pids.append(self.pid)


def test_a_hung_replay_is_stopped_at_the_time_limit(
    hanging_run: tuple[Path, str, Path], make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, run_id, project = hanging_run
    monkeypatch.setattr(Recording, "pids", [])
    monkeypatch.setattr(subprocess, "Popen", Recording)
    client = make_client(
        DirectoryStore(root), allow_replay=True, store_location=str(root), replay_timeout=1
    )
    client.post(f"/runs/{run_id}/replay", data={})
    job = wait_done(client, run_id)
    assert job["state"] == "failed"
    assert job["line"] == (
        "the replay took longer than 1 s and was stopped; fix: replay it from a shell, where "
        f"it has no time limit (orch replay {run_id} --no-record), or start orch ui with a "
        "larger --replay-timeout"
    )
    page = client.get(f"/runs/{run_id}/replay")
    assert "took longer than 1 s and was stopped" in "".join(Elements(page.text).text)
    assert "Traceback" not in page.text
    (worker,) = Recording.pids
    # The worker was reaped once stopped; what it started (if it got that far before the
    # limit) was in its process group, stopped with it.
    assert not running(worker)
    if (project / "pids").exists():
        for pid in map(int, (project / "pids").read_text().split()):
            wait_until(lambda pid=pid: not running(pid), f"process {pid} ended")


def test_closing_the_jobs_stops_the_replay_and_what_it_started(
    hanging_run: tuple[Path, str, Path], make_client: MakeClient
) -> None:
    root, run_id, project = hanging_run
    client = make_client(DirectoryStore(root), allow_replay=True, store_location=str(root))
    client.post(f"/runs/{run_id}/replay", data={})
    pids_file = project / "pids"
    wait_until(pids_file.exists, "the replay waits on its gate")
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(running(p) for p in pids)
    jobs: ReplayJobs = client.app.state.replays  # type: ignore[attr-defined]
    jobs.close()  # what the server does as it shuts down; returns once the worker ended
    assert not running(pids[0])
    wait_until(lambda: not running(pids[1]), "the worker's own child ended")
    job = wait_done(client, run_id)
    assert (job["state"], job["line"]) == ("failed", "the server shut down while the replay ran")
    refused = client.post(f"/runs/{run_id}/replay", data={})
    assert refused.status_code == 503 and "shutting down" in refused.text


def test_a_server_stopped_with_sigterm_stops_its_replays(
    hanging_run: tuple[Path, str, Path],
) -> None:
    root, run_id, project = hanging_run
    pids_file = project / "pids"
    with orch_ui(root, "--allow-replay") as (url, _port):
        request = urllib.request.Request(f"{url}runs/{run_id}/replay", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        wait_until(pids_file.exists, "the replay waits on its gate")
        pids = [int(p) for p in pids_file.read_text().split()]
        assert all(running(p) for p in pids)
    # orch_ui sent SIGTERM and waited for the server to exit (with no traceback).
    for pid in pids:
        wait_until(lambda pid=pid: not running(pid), f"process {pid} ended with the server")


@pytest.mark.parametrize("given", ["0", "-5", "abc", "nan", "inf", ""])
def test_a_bad_replay_timeout_is_one_line(quick_store: Path, given: str) -> None:
    done = CliRunner().invoke(app, ["ui", "--store", str(quick_store), "--replay-timeout", given])
    assert done.exit_code == 2, done.output
    assert done.stderr.count("\n") == 1
    assert f"--replay-timeout {given!r} is not a positive number of seconds" in done.stderr
    assert "fix: give seconds" in done.stderr
