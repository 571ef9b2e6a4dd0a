"""Resumable evaluations: the journal keeps every finished task, a rerun skips them, a
journal of another evaluation is refused, and a SIGKILLed evaluation resumes to the same
results and root hashes as one never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orch import PipelineBuilder
from routers import baselines
from routers.eval import Dataset, DatasetError, Sample, Task
from routers.eval.harness import evaluate
from traces import MemoryStore
from traces.dirstore import DirectoryStore

ROOT = Path(__file__).resolve().parents[3]


def pipe() -> object:
    p = PipelineBuilder("random")
    agent = baselines.random_router.with_config(models=["cheap", "dear"])
    p.output("answer", p.node("r", agent, question=p.input("question", str)))
    return p.build()


def dataset(n: int = 10) -> Dataset:
    return Dataset(
        name="journal-test",
        tasks=[
            Task(
                id=f"t{i}",
                question=f"Question {i}: pick A or B.",
                gold="A",
                responses={
                    "cheap": [Sample(text="AB"[i % 2], score=float(i % 2 == 0), cost_usd=0.001)],
                    "dear": [Sample(text="A", score=1.0, cost_usd=0.01)],
                },
            )
            for i in range(n)
        ],
    )


def runs_in(store: MemoryStore) -> int:
    return len(store.run_ids())


async def test_a_rerun_with_the_journal_reuses_every_finished_task(tmp_path: Path) -> None:
    store, journal = MemoryStore(), tmp_path / "eval.journal"
    first = await evaluate(pipe(), dataset(), store, split="all", journal=journal)
    assert first.resumed == 0 and runs_in(store) == 10
    lines = journal.read_bytes().splitlines()
    assert len(lines) == 11  # the header, then one line per task
    again = await evaluate(pipe(), dataset(), store, split="all", journal=journal)
    assert again.resumed == 10 and runs_in(store) == 10  # nothing ran again
    assert again.results == first.results


async def test_a_torn_last_line_is_dropped_and_its_task_runs_again(tmp_path: Path) -> None:
    store, journal = MemoryStore(), tmp_path / "eval.journal"
    first = await evaluate(pipe(), dataset(), store, split="all", journal=journal)
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 25])  # cut the last line short, as a kill would
    again = await evaluate(pipe(), dataset(), store, split="all", journal=journal)
    assert again.resumed == 9 and runs_in(store) == 11
    assert [r.root_hash for r in again.results] == [r.root_hash for r in first.results]
    assert [r.score for r in again.results] == [r.score for r in first.results]
    assert len(journal.read_bytes().splitlines()) == 11  # repaired, whole again


async def test_results_whose_runs_are_not_in_the_store_run_again(tmp_path: Path) -> None:
    journal = tmp_path / "eval.journal"
    await evaluate(pipe(), dataset(), MemoryStore(), split="all", journal=journal)
    other = MemoryStore()
    again = await evaluate(pipe(), dataset(), other, split="all", journal=journal)
    assert again.resumed == 0 and runs_in(other) == 10


async def test_a_journal_of_another_evaluation_is_refused(tmp_path: Path) -> None:
    store, journal = MemoryStore(), tmp_path / "eval.journal"
    await evaluate(pipe(), dataset(), store, split="all", journal=journal)
    with pytest.raises(DatasetError, match=r"another evaluation \(differs in: seed\).*fresh"):
        await evaluate(pipe(), dataset(), store, split="all", journal=journal, seed=1)
    fresh = await evaluate(
        pipe(), dataset(), store, split="all", journal=journal, seed=1, fresh=True
    )
    assert fresh.resumed == 0
    not_journal = tmp_path / "notes.txt"
    not_journal.write_text("hello\nworld\n")
    with pytest.raises(DatasetError, match="not an evaluation journal"):
        await evaluate(pipe(), dataset(), store, split="all", journal=not_journal)


SCRIPT = """
import sys
import anyio
sys.path.insert(0, {tests!r})
from test_eval_journal import dataset, pipe
from routers.eval.harness import evaluate
from traces.dirstore import DirectoryStore

async def main():
    store = DirectoryStore({store!r})
    await evaluate(pipe(), dataset({n}), store, split="all", parallel=4, journal={journal!r})

anyio.run(main)
"""


def kill_midway(script: Path, journal: Path, lines: int) -> None:
    """Start the evaluation in its own process and SIGKILL it once the journal has
    ``lines`` finished tasks."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") > lines:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the evaluation ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)


async def test_sigkill_mid_evaluation_then_resume(tmp_path: Path) -> None:
    n = 400
    journal, where = tmp_path / "eval.journal", tmp_path / "store"
    script = tmp_path / "evaluate.py"
    script.write_text(
        textwrap.dedent(SCRIPT).format(
            tests=str(Path(__file__).parent), store=str(where), n=n, journal=str(journal)
        )
    )
    kill_midway(script, journal, 40)
    finished = journal.read_bytes().count(b"\n") - 1
    assert 0 < finished < n
    store = DirectoryStore(where)
    resumed = await evaluate(pipe(), dataset(n), store, split="all", parallel=4, journal=journal)
    assert resumed.resumed >= finished - 1  # at most the torn line is lost
    assert [r.task for r in resumed.results] == [f"t{i}" for i in range(n)]
    whole = await evaluate(pipe(), dataset(n), MemoryStore(), split="all", parallel=4)
    assert [r.root_hash for r in resumed.results] == [r.root_hash for r in whole.results]
    assert [r.score for r in resumed.results] == [r.score for r in whole.results]
    # One journal line per task: none lost, none twice.
    rows = journal.read_bytes().splitlines()[1:]
    assert len(rows) == n
