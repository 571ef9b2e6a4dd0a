"""A run killed with SIGKILL mid-way leaves a store whose finished steps all verify."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from traces._open import open_store
from traces._verify import verify_run

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "pipelines.py")


def _finished_steps(store_loc: str) -> tuple[str | None, int]:
    store = open_store(store_loc)
    try:
        ids = store.run_ids()
        if not ids:
            return None, 0
        lines = store.read_events(ids[0])
        ends = 0
        for line in lines:
            with contextlib.suppress(orjson.JSONDecodeError):  # a torn tail while it writes
                ends += orjson.loads(line).get("type") == "step_end"
        return ids[0], ends
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dir", "sqlite"])
def test_sigkill_mid_run_leaves_verifiable_store(tmp_path: Path, kind: str) -> None:
    store_loc = str(tmp_path / ("store" if kind == "dir" else "store.db"))
    env = dict(os.environ, ORCH_TEST_STEP_SECONDS="0.05")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orch.cli",
            "run",
            FIXTURE + ":long_chain",
            "-i",
            "x=0",
            "--store",
            store_loc,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    run_id, finished = None, 0
    while time.monotonic() < deadline:
        if Path(store_loc).exists():
            run_id, finished = _finished_steps(store_loc)
            if finished >= 5:
                break
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()!r}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert run_id is not None and finished >= 5

    store = open_store(store_loc)
    report = verify_run(store, run_id)
    assert report.ok, report.problems
    assert report.complete is False
    assert report.status == "running"
    assert report.checked["steps"] >= finished
    assert report.checked["steps"] < 40  # it really was killed mid-way
    store.close()
