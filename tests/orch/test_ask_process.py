"""Human in the loop across processes: a run pauses for an answer and its process is
SIGKILLed; a new process answers (``orch answer``) and is SIGKILLed mid-way; a third resumes
it. The run ends with the root hash of an uninterrupted run given the same answer, and no
effect ran twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import ask_pipelines
import pytest
from ask_pipelines import APPROVAL

import orch
from traces import MemoryStore, open_store, verify_run

DRIVER = """
import sys, anyio, orch
from ask_pipelines import APPROVAL
from traces import open_store

async def main():
    result = await orch.arun(APPROVAL, {"text": "hi"}, store=open_store(sys.argv[1]))
    print(result.run_id, result.status, flush=True)
    await anyio.sleep_forever()  # an app that keeps running after the run paused

anyio.run(main)
"""


def _env(log: Path, **extra: str) -> dict[str, str]:
    fixtures = str(Path(ask_pipelines.__file__).parent)
    path = os.pathsep.join([fixtures, os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "ORCH_TEST_EFFECT_LOG": str(log), **extra}


def _until_line(proc: subprocess.Popen[str], wanted: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if wanted in line:
            return line
    raise AssertionError(f"the process ended before printing {wanted!r}: {proc.wait()}")


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.slow
def test_pause_kill_answer_kill_resume(tmp_path: Path) -> None:
    where = str(tmp_path / "store")
    log = tmp_path / "effects.log"
    orch_bin = [sys.executable, "-m", "orch.cli"]
    target = f"{ask_pipelines.__file__}:APPROVAL"

    # 1. The run pauses; its process lives on, then is killed.
    first = subprocess.Popen(
        [sys.executable, "-c", DRIVER, where], env=_env(log), stdout=subprocess.PIPE, text=True
    )
    run_id, status = _until_line(first, "waiting").split()
    _kill(first)
    assert status == "waiting"
    st = open_store(where)
    assert [q.id for q in orch.pending_questions(st, run_id)] == ["send#0"]

    # A wrong answer from a new process: one line, exit 2, the run still waits.
    bad = subprocess.run(
        [*orch_bin, "answer", run_id, "approve=perhaps", "--as", "alice", "--store", where],
        env=_env(log),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "is refused" in bad.stderr
    assert orch.pending_questions(open_store(where), run_id)

    # 2. A new process answers; it is killed after the approved tool call, mid-run.
    answering = subprocess.Popen(
        # The driver, not `orch run`, started the run: --pipeline names its file.
        [
            *orch_bin,
            "answer",
            run_id,
            "approve=true",
            "--as",
            "alice",
            "--store",
            where,
            "--pipeline",
            target,
        ],
        env=_env(log, ORCH_TEST_BLOCK_REPORT="1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    _until_line(answering, "blocked in report")
    _kill(answering)
    st = open_store(where)
    heads = [json.loads(st.read_run_head(r) or b"{}") for r in st.run_ids()]
    resumed = next(h["run_id"] for h in heads if h.get("resumed_from") == run_id)

    # 3. A third process resumes the killed resume: the answer was kept, not asked again.
    done = subprocess.run(
        [*orch_bin, "run", target, "--resume", resumed, "--wait", "--store", where, "--json"],
        env=_env(log),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["status"] == "ok" and result["outputs"] == {"sent": True, "side": "side(hi)"}

    answers = {"send#0": orch.Answer(question="send#0", value={"approve": True}, by="alice")}
    reference = orch.run(APPROVAL, {"text": "hi"}, store=MemoryStore(), answers=answers)
    assert result["root_hash"] == reference.root_hash
    made = log.read_text().splitlines()
    assert sorted(made) == ["draft:writer", "send:checker", "send:send", "side:side"]
    assert verify_run(open_store(where), result["run_id"]).ok
