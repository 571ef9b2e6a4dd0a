"""The Dask executor on a shared PostgreSQL store: a real server, a real Dask scheduler and two
worker processes, all started here on 127.0.0.1.

* 200 runs submitted with ``orch batch --executor dask --store postgresql://...`` are, run by
  run, the runs the local executor makes into a directory store (the same root hashes), and
  every run verifies in PostgreSQL;
* a worker SIGKILLed mid-batch loses nothing, duplicates nothing, and issues no recorded
  effect twice (:func:`batch_checks.kill_a_worker_mid_batch`, as on SQLite in
  ``test_executor_dask.py``);
* the workers' connections cut mid-batch are retried: every run finishes, the summary counts
  the reconnects, and each retry is a warning in the worker's log.

Skipped without ``distributed``, or without PostgreSQL (server binaries, psycopg), unless
``ORCH_REQUIRE_DASK=1`` or ``ORCH_REQUIRE_POSTGRES=1`` (CI sets both), when they fail.
"""

from __future__ import annotations

import json
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
from pg_server import postgres_server, store_url, terminate_backends
from typer.testing import CliRunner

from orch import BatchSpec, LocalExecutor
from orch.batch.dask import DaskExecutor
from orch.cli import app
from traces._open import open_store

dask_cluster.require_dask()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def cluster(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # After the server (a skip without PostgreSQL starts no cluster), stopped before it.
    # Each model call takes 10-40 ms (records do not depend on it): the workers are still at
    # work when the client hears a chunk came back, and cuts their connections.
    env = {"ORCH_BATCH_LATENCY_MS": "10,40"}
    with dask_cluster.dask_cluster(2, tmp_path_factory.mktemp("dask"), env=env) as c:
        yield c


def test_200_runs_through_orch_batch_on_postgres_are_the_local_runs(
    cluster: Any, pg_dsn: str, tmp_path: Path
) -> None:
    location = store_url(pg_dsn, "dask")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(q) + "\n" for q in questions(200)))
    args = ["batch", BATCH, "--inputs", str(tasks), "--seed", "11", "--store", location]
    dask = ["--executor", "dask", "--scheduler", cluster.address, "--parallel", "8"]
    out = CliRunner().invoke(app, [*args, *dask, "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    password = pg_dsn.split("@", 1)[0].rsplit(":", 1)[1]
    assert password not in out.output and "***" in report["store"]
    assert report["executor"] == "dask" and report["summary"]["store_reconnects"] == 0

    spec = BatchSpec.create(BATCH, questions(200), store=str(tmp_path / "local"), seed=11)
    local = anyio.run(LocalExecutor(parallel=16).run_batch, spec)
    assert report["batch_id"] == spec.batch_id
    # Run ids, root hashes, outputs, attempts: run by run what the local executor made.
    assert report["runs"] == [r.to_json() for r in local.items]
    store = open_store(location)
    try:
        assert_runs_verify(store, [r.run_id for r in local.items])
    finally:
        store.close()
    # Submitted again, from here this time: every run is found in the shared store.
    again = CliRunner().invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["summary"]["from_store"] == 200


async def test_a_worker_killed_mid_batch_on_postgres_loses_nothing_and_reissues_no_effect(
    pg_dsn: str, tmp_path: Path
) -> None:
    spec = BatchSpec.create(BATCH, questions(30), store=store_url(pg_dsn, "kill"), lease_seconds=2)
    await kill_a_worker_mid_batch(spec, tmp_path)


async def test_worker_connections_cut_mid_batch_are_retried_and_counted(
    cluster: Any, pg_dsn: str
) -> None:
    spec = BatchSpec.create(BATCH, questions(40), store=store_url(pg_dsn, "cut"), seed=3)
    killed: list[int] = []

    def cut(done: int, _total: int) -> None:
        if done in (4, 20):  # a chunk of 4 came back: 36, then 20, inputs to go
            killed.append(terminate_backends(pg_dsn))  # every worker's connections

    executor = DaskExecutor(cluster.address, parallel=4, chunk_size=4)
    result = await executor.run_batch(spec, progress=cut)
    # Both workers' connections the first time; the second cut may find a worker between a
    # lost connection and its next statement (it reconnects lazily), so it counts no minimum.
    assert len(killed) == 2 and killed[0] >= 2, killed
    assert result.ok, result.summary()
    local = await local_reference(spec)
    assert [r.root_hash for r in result.items] == [r.root_hash for r in local.items]
    reconnects = result.store_reconnects
    assert reconnects is not None and reconnects >= 1, result.summary()
    logs = cluster.worker_log(0) + cluster.worker_log(1)
    assert logs.count("; retrying") >= reconnects, "a worker's retry was not logged"
    # ... and the retries come back to the client, each naming the worker process.
    retries = [n for n in result.notices if "; retrying" in n]
    assert len(retries) >= reconnects, result.notices
    assert all(n.startswith("on ") and "(pid " in n for n in retries)
    assert result.summary()["notices"] == list(result.notices)
    store = open_store(spec.store)
    try:
        assert_runs_verify(store, [r.run_id for r in result.items])
    finally:
        store.close()
