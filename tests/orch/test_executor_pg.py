"""The local executor on a real PostgreSQL server: connections lost mid-batch are retried and
reported; a database that stops taking connections mid-batch fails the runs it hits with
the store's error in the summary, then a resubmitted batch completes them; and a batch
submitted twice at once is shared between the two by the leases in the store.

The server is started for this module by :mod:`pg_server` (``tests/fixtures``). Without the
binaries or psycopg these tests skip, unless ``ORCH_REQUIRE_POSTGRES=1`` (CI), when they fail.
The connections are cut from the batch's ``progress`` callback, which the executor calls on
its event loop between store calls: each cut lands between two operations, at a known point.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from batch_checks import (
    BATCH,
    assert_runs_verify,
    local_reference,
    questions,
    submit_twice_while_held,
)
from pg_server import postgres_server, store_url, terminate_backends

from orch import BatchSpec, LocalExecutor
from traces._open import open_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


def _password(dsn: str) -> str:
    return dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


async def test_connections_lost_mid_batch_are_retried_and_reported(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = BatchSpec.create(BATCH, questions(24), store=store_url(pg_dsn, "lost"), seed=5)
    killed: list[int] = []

    def cut(done: int, _total: int) -> None:
        if done in (4, 10, 16):
            killed.append(terminate_backends(pg_dsn))  # every connection but this one

    with caplog.at_level(logging.WARNING, logger="traces.pgstore"):
        result = await LocalExecutor(parallel=4).run_batch(spec, progress=cut)
    assert killed == [1, 1, 1]  # the executor's one connection, each time
    # Every run finished, as the same batch does with nothing cut.
    assert result.ok, result.summary()
    local = await local_reference(spec)
    assert [r.root_hash for r in result.items] == [r.root_hash for r in local.items]
    # ... and the lost connections are reported: in the summary, and as a warning per retry.
    assert result.store_reconnects == 3 and result.summary()["store_reconnects"] == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "traces.pgstore"]
    assert len(warnings) == 3, warnings
    assert all("retrying" in w and "attempt 1 of 6" in w for w in warnings), warnings
    assert list(result.notices) == warnings  # the same, with the batch's result
    assert not any(_password(pg_dsn) in w for w in warnings)
    store = open_store(spec.store)
    try:
        assert_runs_verify(store, [r.run_id for r in result.items])
    finally:
        store.close()


async def test_a_database_gone_mid_batch_fails_the_runs_it_hit_then_a_resubmit_completes(
    pg_dsn: str,
) -> None:
    import psycopg  # here: without it the module must still load, and its tests skip

    from traces.pgstore import PostgresStore

    database, app = f"gone_{secrets.token_hex(4)}", f"orch-gone-{secrets.token_hex(4)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    location = store_url(pg_dsn.rsplit("/", 1)[0] + "/" + database, application_name=app)
    spec = BatchSpec.create(BATCH, questions(12), store=location, seed=5)

    def allow_connections(allowed: bool) -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS {str(allowed).lower()}")

    def shut_at_3(done: int, _total: int) -> None:
        if done == 3:
            allow_connections(False)
            assert terminate_backends(pg_dsn, app) == 1

    # Few, short retries keep the test quick; the defaults (6 tries over about 3 s) bound it
    # the same way.
    store = PostgresStore(location, attempts=3, max_wait=0.05)
    try:
        with anyio.fail_after(120):  # a guard against a hang, not a measurement
            executor = LocalExecutor(parallel=4, store=store)
            result = await executor.run_batch(spec, progress=shut_at_3)
    finally:
        store.close()
    # Nothing dropped: a result for every input, three ok (those that ended before the cut;
    # a fourth may have written its last record just before), the rest errors that say why
    # (the store's own error, after its retries) and what to do.
    assert [r.index for r in result.items] == list(range(12))
    ok = [r for r in result.items if r.status == "ok"]
    errors = [r for r in result.items if r.status != "ok"]
    assert len(ok) in (3, 4) and all(r.status == "error" and r.error for r in errors)
    assert result.summary()["error"] == 12 - len(ok) and not result.ok
    assert result.store_reconnects == 0  # tried, never connected again
    assert result.summary()["failed_runs"] == [r.run_id for r in errors]
    hit = [r for r in errors if not (r.error or "").startswith("not started")]
    assert hit, "no run reported the store's error"
    for message in (r.error or "" for r in hit):
        assert message.startswith("StoreLocationError: PostgreSQL store"), message
        assert "after 3 attempts" in message and "not currently accepting connections" in message
        assert "fix:" in message
    skipped = [r.error or "" for r in errors if (r.error or "").startswith("not started")]
    assert len(hit) + len(skipped) == 12 - len(ok)
    assert all("run the batch again once the store is reachable" in m for m in skipped)
    assert not any(_password(pg_dsn) in (r.error or "") for r in result.items)
    assert _password(pg_dsn) not in result.store and "***" in result.store

    # Once the database is back, the same batch completes: the three finished runs are found,
    # the interrupted ones resumed, the others run; the runs are those of an uncut batch.
    allow_connections(True)
    with anyio.fail_after(120):  # a guard against a hang, not a measurement
        again = await LocalExecutor(parallel=4).run_batch(spec)
    # The leases it could not release were taken back at once, not waited out as stale.
    assert not any("took over the lease" in n for n in again.notices), again.notices
    assert again.ok, again.summary()
    assert [r.index for r in again.items if r.from_store] == [r.index for r in ok]
    assert {r.index for r in again.retried} <= {r.index for r in hit}
    assert all(r.resumed_from == r.run_id.partition(".r")[0] for r in again.retried)
    local = await local_reference(spec)
    assert [r.root_hash for r in again.items] == [r.root_hash for r in local.items]


def test_the_same_batch_submitted_again_while_it_runs_is_shared_on_postgres(
    pg_dsn: str, tmp_path: Path
) -> None:
    # The scenario and its checks: batch_checks.submit_twice_while_held (and test_lease.py,
    # on SQLite and a directory store).
    submit_twice_while_held(store_url(pg_dsn, "twice"), tmp_path)
