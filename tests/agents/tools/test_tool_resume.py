"""Tool effects are resumable: ``orch run`` killed with SIGKILL in the middle of a step's tool
calls, then ``orch run --resume``.

The pipeline (``tests/fixtures/tool_pipelines.py``) has a warm-up step with one tool call and
a step with four in sequence (a local tool, an in-process MCP server's tool, the local tool
again, whose call blocks until the test says go, and the MCP tool again). The process is
killed while the third call is in flight. On resume the warm-up step is reused whole, the
two finished calls are served from the record and not made again (each tool invocation adds
a line to a counter file), the call in flight is made again, and the resumed run is ok with
the root hash of an uninterrupted run of the same pipeline, inputs and seed. The same holds
when a call before the kill failed once and succeeded on the broker's retry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from agents.tools import SQLiteAuditLog
from orch.cli import app
from traces import open_store, verify_run

FIXTURE = str(Path(__file__).parents[2] / "fixtures" / "tool_pipelines.py")
BLOCK_AT = "x-3"


def _tool_env(home: Path, *, go: bool) -> dict[str, str]:
    """The fixture's environment variables, with their files under ``home``."""
    home.mkdir()
    if go:
        (home / "go").touch()
    return {
        "ORCH_TEST_TOOL_COUNTER": str(home / "counter"),
        "ORCH_TEST_TOOL_FLAKY": str(home / "flaky-is-ready"),
        "ORCH_TEST_TOOL_BLOCK_AT": BLOCK_AT,
        "ORCH_TEST_TOOL_GO": str(home / "go"),
        "ORCH_TEST_TOOL_AUDIT": str(home / "audit.db"),
    }


def _orch_run(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "orch.cli", "run", f"{FIXTURE}:{name}", *args]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@dataclass
class Crash:
    home: Path
    store: str
    run_id: str
    before: list[str]
    """The counter when the process was killed."""
    resumed: dict[str, Any]
    after: list[str]
    """The counter after the resumed run."""
    fresh: dict[str, Any]
    fresh_counter: list[str]


def crash_and_resume(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Crash:
    """Start a run that is killed while call ``BLOCK_AT`` is in flight; meanwhile make an
    uninterrupted run (in this process, in its own store); then resume the killed one."""
    args = ("-i", "prefix=x", "--seed", "7")
    home = tmp_path / "crash"
    env = os.environ | _tool_env(home, go=False)
    store_loc = str(home / "store")
    proc = subprocess.Popen(
        _orch_run(name, *args, "--store", store_loc),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # While the subprocess starts up: the uninterrupted run, through the same CLI.
        fresh_home = tmp_path / "fresh"
        for var, value in _tool_env(fresh_home, go=True).items():
            monkeypatch.setenv(var, value)
        fresh_store = str(fresh_home / "store")
        done = CliRunner().invoke(
            app, ["run", f"{FIXTURE}:{name}", *args, "--store", fresh_store, "--json"]
        )
        assert done.exit_code == 0, done.output
        fresh = json.loads(done.stdout)

        counter = home / "counter"
        deadline = time.monotonic() + 120
        while BLOCK_AT not in _lines(counter):
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()!r}")
            if time.monotonic() > deadline:
                pytest.fail(f"the blocking call did not start; counter: {_lines(counter)}")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = _lines(counter)

    store = open_store(store_loc)
    try:
        (run_id,) = store.run_ids()
        killed = verify_run(store, run_id)
        assert killed.ok, killed.problems
        assert killed.complete is False and killed.status == "running"
    finally:
        store.close()

    (home / "go").touch()
    resumed = subprocess.run(
        _orch_run(name, "--resume", run_id, "--store", store_loc, "--json"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    resumed_json = json.loads(resumed.stdout) if resumed.stdout.strip() else {}
    return Crash(
        home=home,
        store=store_loc,
        run_id=run_id,
        before=before,
        resumed=resumed_json | {"stderr": resumed.stderr, "returncode": resumed.returncode},
        after=_lines(counter),
        fresh=fresh,
        fresh_counter=_lines(fresh_home / "counter"),
    )


def _events(store_loc: str, run_id: str) -> list[dict[str, Any]]:
    store = open_store(store_loc)
    try:
        return [orjson.loads(line) for line in store.read_events(run_id)]
    finally:
        store.close()


def _served_calls(
    events: list[dict[str, Any]], run_id: str, *, with_status: bool = False
) -> list[tuple[str, str]]:
    """The tool call attempts a resumed run took from run ``run_id``'s record: (step, tool),
    or (tool, status)."""
    served = [
        e
        for e in events
        if e["type"] == "effect"
        and e["data"]["kind"] == "tool"
        and e["data"].get("served_from") == run_id
    ]
    if with_status:
        return [(e["data"]["target"], e["data"]["status"]) for e in served]
    return [(e["step"], e["data"]["target"]) for e in served]


@pytest.mark.slow
def test_finished_tool_calls_are_not_made_again_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = crash_and_resume(tmp_path, "chain", monkeypatch)
    every_call = ["x-w", "x-1", "demo x-2", "x-3", "demo x-4"]
    assert crash.fresh_counter == every_call
    assert crash.fresh["status"] == "ok"
    # Killed in the third call of step 'calls', after the warm-up step had finished.
    assert crash.before == ["x-w", "x-1", "demo x-2", "x-3"]

    assert crash.resumed["returncode"] == 0, crash.resumed["stderr"]
    assert crash.resumed["status"] == "ok"
    # Only the call in flight at the kill was made again (once), and the one after it.
    assert crash.after == [*crash.before, "x-3", "demo x-4"]
    assert crash.resumed["root_hash"] == crash.fresh["root_hash"]
    assert crash.resumed["outputs"] == crash.fresh["outputs"]
    assert crash.resumed["outputs"]["results"]["results"] == [
        "counted x-1",
        "tallied x-2",
        "counted x-3",
        "tallied x-4",
    ]

    resumed_id = crash.resumed["run_id"]
    store = open_store(crash.store)
    try:
        report = verify_run(store, resumed_id)
        assert report.ok, report.problems
        assert report.complete and report.root_hash == crash.fresh["root_hash"]
    finally:
        store.close()
    events = _events(crash.store, resumed_id)
    reused = [e["step"] for e in events if e["type"] == "step_end" and e["data"].get("reused")]
    assert reused == ["warmup"]
    assert _served_calls(events, crash.run_id) == [("calls", "count"), ("calls", "demo.tally")]

    # One audit log for both processes: every call that finished, in order, chained; the
    # call in flight at the kill was never audited by the killed process.
    audit = SQLiteAuditLog(crash.home / "audit.db")
    try:
        entries = audit.entries("acme")
        assert [(e.run_id, e.step_id, e.tool, e.outcome) for e in entries] == [
            (crash.run_id, "warmup", "count", "ok"),
            (crash.run_id, "calls", "count", "ok"),
            (crash.run_id, "calls", "demo.tally", "ok"),
            (resumed_id, "calls", "count", "ok"),
            (resumed_id, "calls", "demo.tally", "ok"),
        ]
        calls = [e.effect for e in entries if e.step_id == "calls"]
        assert calls == sorted(set(calls))  # each at its own effect, in call order
        assert audit.verify("acme") == []
    finally:
        audit.close()


@pytest.mark.slow
def test_a_call_retried_before_the_kill_resumes_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call fails once (retryably) and its retry succeeds before the kill: on
    resume the failed attempt is served as recorded (the step moved past it), not made again,
    so the later calls find their own records at their indexes."""
    crash = crash_and_resume(tmp_path, "flaky_chain", monkeypatch)
    every_call = ["x-w", "flaky x-1 failed", "flaky x-1", "demo x-2", "x-3", "demo x-4"]
    assert crash.fresh_counter == every_call
    assert crash.before == every_call[:5]
    assert crash.resumed["returncode"] == 0, crash.resumed["stderr"]
    assert crash.resumed["status"] == "ok"
    assert crash.after == [*crash.before, "x-3", "demo x-4"]
    assert crash.resumed["root_hash"] == crash.fresh["root_hash"]
    events = _events(crash.store, crash.resumed["run_id"])
    served = _served_calls(events, crash.run_id, with_status=True)
    assert served == [("flaky", "failed"), ("flaky", "ok"), ("demo.tally", "ok")]


def test_the_json_of_a_resumed_run_names_its_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orch
    from orch._loader import load_pipeline, load_services

    for name, value in _tool_env(tmp_path / "home", go=True).items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    args = ["run", f"{FIXTURE}:chain", "--json"]
    fresh = runner.invoke(
        app, [*args, "--store", str(tmp_path / "fresh"), "-i", "prefix=x", "--seed", "7"]
    )
    assert fresh.exit_code == 0, fresh.output
    # A run with seed 7 stopped before its first step (what Ctrl-C leaves), then resumed.
    store = str(tmp_path / "store")
    stop = orch.RunControl()
    stop.cancel("stopped by the test")
    target = f"{FIXTURE}:chain"
    cancelled = orch.run(
        load_pipeline(target),
        {"prefix": "x"},
        seed=7,
        store=open_store(store),
        control=stop,
        services=load_services(target),
    )
    assert cancelled.status == "cancelled"
    again = runner.invoke(app, [*args, "--store", store, "--resume", cancelled.run_id])
    assert again.exit_code == 0, again.output
    resumed = json.loads(again.stdout)
    assert resumed["root_hash"] == json.loads(fresh.stdout)["root_hash"]  # seed 7 was used
    assert resumed["seed"] == 7
