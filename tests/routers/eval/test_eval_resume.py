"""Resuming an evaluation: its runs have fixed ids named by the evaluation, so a rerun with the
same store finds every finished run, resumes an interrupted one from its finished steps, and
a SIGKILLed evaluation resumes to the results and root hashes of one never interrupted; what
the evaluation's name cannot include (service objects) or asks not to (``fresh``) runs anew."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from pydantic import BaseModel

from orch import Context, ExecutorError, Pipeline, PipelineBuilder, agent, arun
from routers import baselines
from routers.eval import Dataset, Sample, Task, recorded_hub
from routers.eval._harness import evaluate
from traces import MemoryStore
from traces._dirstore import DirectoryStore

ROOT = Path(__file__).resolve().parents[3]


def pipe() -> Pipeline:
    p = PipelineBuilder("random")
    agent_ = baselines.random_router.with_config(models=["cheap", "dear"])
    p.output("answer", p.node("r", agent_, question=p.input("question", str)))
    return p.build()


def dataset(n: int = 10) -> Dataset:
    return Dataset(
        name="resume-test",
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


async def test_a_rerun_finds_every_finished_run_and_runs_nothing() -> None:
    store = MemoryStore()
    first = await evaluate(pipe(), dataset(), store, split="all")
    assert (first.resumed, first.retried, runs_in(store)) == (0, 0, 10)
    assert [r.run_id for r in first.results] == [f"{first.batch_id}-{i:05d}" for i in range(10)]
    again = await evaluate(pipe(), dataset(), store, split="all")
    assert (again.resumed, again.batch_id, runs_in(store)) == (10, first.batch_id, 10)
    assert again.results == first.results


async def test_fresh_and_service_objects_run_every_task_again() -> None:
    store = MemoryStore()
    first = await evaluate(pipe(), dataset(), store, split="all")
    fresh = await evaluate(pipe(), dataset(), store, split="all", fresh=True)
    assert (fresh.batch_id, fresh.resumed) == (f"{first.batch_id}-f2", 0)
    assert [r.root_hash for r in fresh.results] == [r.root_hash for r in first.results]
    # Services the caller made (a hub, an agent registry) may differ from an earlier
    # evaluation's under the same name: they are never taken for it.
    served = {"models": recorded_hub(dataset())}
    other = await evaluate(pipe(), dataset(), store, split="all", services=served)
    assert (other.batch_id, other.resumed, runs_in(store)) == (f"{first.batch_id}-f3", 0, 30)


async def test_runs_in_another_store_are_not_found() -> None:
    await evaluate(pipe(), dataset(), MemoryStore(), split="all")
    other = MemoryStore()
    again = await evaluate(pipe(), dataset(), other, split="all")
    assert again.resumed == 0 and runs_in(other) == 10


async def test_a_run_under_the_evaluations_id_made_for_something_else_is_refused() -> None:
    named = await evaluate(pipe(), dataset(1), MemoryStore(), split="all")
    store = MemoryStore()
    await arun(
        pipe(), {"question": "another question"}, store=store, run_id=named.results[0].run_id
    )
    with pytest.raises(ExecutorError, match=r"was not made for input #0.*fix: pass fresh=True"):
        await evaluate(pipe(), dataset(1), store, split="all")
    fresh = await evaluate(pipe(), dataset(1), store, split="all", fresh=True)
    assert fresh.results[0].score == named.results[0].score


class Question(BaseModel):
    question: str


HELD: dict[str, str | None] = {"question": None}
"""The question whose run waits (until cancelled) at the gate; None lets every run through."""


@agent(name="gate", version="1")
async def gate(q: Question, ctx: Context) -> Question:
    if q.question == HELD["question"]:
        await anyio.sleep_forever()
    return q


def gated() -> Pipeline:
    p = PipelineBuilder("gated-cheap")
    opened = p.node("gate", gate, question=p.input("question", str))
    single = baselines.single.with_config(model="cheap")
    p.output("answer", p.node("r", single, question=opened.field("question")))
    return p.build()


async def test_a_cancelled_run_resumes_under_the_next_attempt_id() -> None:
    store, data = MemoryStore(), dataset(6)
    HELD["question"] = data.tasks[2].question
    try:
        with anyio.CancelScope() as scope:

            def progress(done: int, total: int) -> None:
                if done == total - 1:  # every run but the held one has ended
                    scope.cancel()

            await evaluate(gated(), data, store, split="all", parallel=2, progress=progress)
    finally:
        HELD["question"] = None
    assert scope.cancelled_caught and runs_in(store) == 6
    resumed = await evaluate(gated(), data, store, split="all", parallel=2)
    assert (resumed.resumed, resumed.retried, runs_in(store)) == (5, 1, 7)
    held = resumed.results[2]
    assert held.run_id == f"{resumed.batch_id}-00002.r2" and held.ok
    whole = await evaluate(gated(), data, MemoryStore(), split="all")
    assert [r.root_hash for r in resumed.results] == [r.root_hash for r in whole.results]
    assert [r.score for r in resumed.results] == [r.score for r in whole.results]


SCRIPT = """
import sys
import anyio
sys.path.insert(0, {tests!r})
from test_eval_resume import dataset, pipe
from routers.eval._harness import evaluate
from traces._dirstore import DirectoryStore

def progress(done, total):
    print(done, flush=True)

async def main():
    store = DirectoryStore({store!r})
    await evaluate(pipe(), dataset({n}), store, split="all", parallel=4, progress=progress)

anyio.run(main)
"""


def kill_midway(script: Path, finished: int) -> None:
    """Start the evaluation in its own process and SIGKILL it once it reports ``finished``
    tasks done."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if int(line) >= finished:
                break
        assert proc.poll() is None, "the evaluation ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()


async def test_sigkill_mid_evaluation_then_resume(tmp_path: Path) -> None:
    n, where = 400, tmp_path / "store"
    script = tmp_path / "evaluate.py"
    script.write_text(
        textwrap.dedent(SCRIPT).format(tests=str(Path(__file__).parent), store=str(where), n=n)
    )
    kill_midway(script, 40)
    store = DirectoryStore(where)
    before = len(store.run_ids())
    assert 40 <= before < n
    resumed = await evaluate(pipe(), dataset(n), store, split="all", parallel=4)
    assert resumed.resumed >= 40 and resumed.resumed + resumed.retried <= before
    assert [r.task for r in resumed.results] == [f"t{i}" for i in range(n)]
    whole = await evaluate(pipe(), dataset(n), MemoryStore(), split="all", parallel=4)
    assert [r.root_hash for r in resumed.results] == [r.root_hash for r in whole.results]
    assert [r.score for r in resumed.results] == [r.score for r in whole.results]
    # Every task is one lineage: its first run id, and a resume of it for each interrupted run.
    firsts = [r for r in store.run_ids() if ".r" not in r]
    assert sorted(firsts) == sorted(r.run_id for r in whole.results)
    retried = [r for r in resumed.results if r.run_id.endswith(".r2")]
    assert len(retried) == resumed.retried
