"""The Dask executor against a real cluster: a scheduler and two worker processes on 127.0.0.1.

Skipped when ``distributed`` is not installed, unless ``ORCH_REQUIRE_DASK=1`` (CI), where a
missing package fails the run instead. The same scenarios on a PostgreSQL store are in
``test_executor_dask_pg.py``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import dask_cluster
import pytest
from batch_checks import (
    BATCH,
    assert_runs_verify,
    kill_a_worker_mid_batch,
    local_reference,
    questions,
)

from orch import BatchSpec, ExecutorError
from orch.batch.dask import DaskExecutor, profiler_can_deadlock
from traces._open import open_store

dask_cluster.require_dask()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with dask_cluster.dask_cluster(2, tmp_path_factory.mktemp("dask")) as c:
        yield c


async def test_200_runs_on_two_workers_have_the_local_root_hashes(
    cluster: Any, tmp_path: Path
) -> None:
    spec = BatchSpec.create(BATCH, questions(200), store=str(tmp_path / "store"), seed=11)
    done: list[int] = []
    result = await DaskExecutor(cluster.address, parallel=8).run_batch(
        spec, progress=lambda n, _total: done.append(n)
    )
    local = await local_reference(spec)
    assert result.ok, result.summary()
    assert [r.index for r in result.items] == list(range(200))
    assert [r.run_id for r in result.items] == [r.run_id for r in local.items]
    assert [r.root_hash for r in result.items] == [r.root_hash for r in local.items]
    assert [r.outputs for r in result.items] == [r.outputs for r in local.items]
    assert done[-1] == 200 and done == sorted(done)
    assert result.store_reconnects is None  # a directory store has no connection to lose
    store = open_store(spec.store)
    assert_runs_verify(store, [r.run_id for r in result.items])
    again = await DaskExecutor(cluster.address, parallel=8).run_batch(spec)
    assert all(r.from_store for r in again.items)
    assert [r.root_hash for r in again.items] == [r.root_hash for r in result.items]
    assert len(store.run_ids()) == 200


async def test_a_worker_refuses_a_batch_it_cannot_run(cluster: Any, tmp_path: Path) -> None:
    spec = BatchSpec.create(BATCH, questions(2), store=str(tmp_path / "store"))
    stale = dataclasses.replace(spec, spec_hash="sha256:" + "1" * 64)
    with pytest.raises(
        ExecutorError, match=r"2 of 2 Dask workers cannot run this batch.*spec hash"
    ):
        await DaskExecutor(cluster.address).run_batch(stale)


def test_the_profiler_can_freeze_cpython_3_11_before_3_11_9() -> None:
    for version in [(3, 11, 0), (3, 11, 7), (3, 11, 8)]:
        assert profiler_can_deadlock(version, "cpython")
    for version in [(3, 11, 9), (3, 11, 14), (3, 12, 1), (3, 13, 0), (3, 10, 13)]:
        assert not profiler_can_deadlock(version, "cpython")
    assert not profiler_can_deadlock((3, 11, 7), "pypy")


async def _profilers_running(address: str) -> list[bool]:
    from distributed import Client

    async with Client(address, asynchronous=True) as client:
        # A lambda travels by value (the workers cannot import this test module).
        answers = await client.run(
            lambda dask_worker: dask_worker.periodic_callbacks["profile"].is_running()
        )
    return [bool(v) for _, v in sorted(answers.items())]


async def test_a_worker_that_its_profiler_could_freeze_has_it_stopped(tmp_path: Path) -> None:
    # A cluster of its own: the guard acts on a worker's first batch, whatever ran before.
    with dask_cluster.dask_cluster(1, tmp_path / "dask") as cluster:
        spec = BatchSpec.create(BATCH, questions(4), store=str(tmp_path / "store"), seed=1)
        result = await DaskExecutor(cluster.address, parallel=2).run_batch(spec)
        assert result.ok, result.summary()
        stopped = [n for n in result.notices if "statistical profiler was stopped" in n]
        if profiler_can_deadlock():  # this interpreter is the workers' too
            assert len(stopped) == 1, result.notices
            assert stopped[0].startswith("Dask's statistical profiler was stopped on ")
            assert "(pid " in stopped[0] and "CPython issue 106883" in stopped[0]
            assert result.summary()["notices"][0] == stopped[0]
            assert await _profilers_running(cluster.address) == [False]
            again = await DaskExecutor(cluster.address, parallel=2).run_batch(spec)
            assert not any("profiler" in n for n in again.notices)  # said once, when stopped
        else:
            assert stopped == [] and await _profilers_running(cluster.address) == [True]


BLOCKING = """
import time
from pathlib import Path
from pydantic import BaseModel
from orch import Context, PipelineBuilder, agent

class Q(BaseModel):
    question: str

@agent
async def hold(x: Q, ctx: Context) -> Q:
    # Blocks its thread without awaiting, as a store retrying a lost connection does.
    Path(STARTED).touch()
    while not Path(GATE).exists():
        time.sleep(0.02)
    return x

p = PipelineBuilder("blocking")
p.output("out", p.node("hold", hold, question=p.input("question", str)))
pipeline = p.build()
"""


async def test_a_chunk_blocking_its_thread_leaves_the_worker_responsive(
    cluster: Any, tmp_path: Path
) -> None:
    """A run that blocks synchronously holds up its chunk's loop only: the worker still
    answers the client meanwhile (its own event loop is free), in the order checked here."""
    from distributed import Client

    started, gate = tmp_path / "started", tmp_path / "gate"
    source = f"STARTED = {str(started)!r}\nGATE = {str(gate)!r}\n" + BLOCKING
    (tmp_path / "blocking.py").write_text(source)
    spec = BatchSpec.create(
        str(tmp_path / "blocking.py"), [{"question": "q"}], store=str(tmp_path / "store")
    )
    events: list[str] = []

    async def batch() -> None:
        result = await DaskExecutor(cluster.address, parallel=1).run_batch(spec)
        assert result.ok, result.summary()
        events.append("batch done")

    async with Client(cluster.address, asynchronous=True) as client:
        with anyio.fail_after(120):  # a guard against a hang, not a measurement
            async with anyio.create_task_group() as tg:
                tg.start_soon(batch)
                while not started.exists():  # noqa: ASYNC110 - set by another process
                    await anyio.sleep(0.05)
                # Every worker answers, the one blocked in the run's agent too.
                with anyio.move_on_after(20):
                    answers = await client.run(os.getpid)
                    events.append(f"{len(answers)} workers answered")
                gate.touch()
    assert events == ["2 workers answered", "batch done"]


async def test_a_worker_killed_mid_batch_loses_nothing_and_reissues_no_effect(
    tmp_path: Path,
) -> None:
    spec = BatchSpec.create(
        BATCH, questions(30), store=f"sqlite://{tmp_path / 'store.db'}", lease_seconds=2
    )
    await kill_a_worker_mid_batch(spec, tmp_path)
