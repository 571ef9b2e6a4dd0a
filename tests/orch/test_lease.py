"""Leases on batch inputs: one holder at a time, a stale one taken over, a lost one cancels."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import orjson
import pytest
from batch_checks import submit_twice_while_held

from orch.lease import LeaseLostError, holding, take
from traces import MemoryStore

ROOT = Path(__file__).parents[2]


async def test_a_second_taker_waits_until_the_holder_releases() -> None:
    store = MemoryStore()
    order: list[str] = []

    async def worker(name: str, hold: float) -> None:
        async with holding(store, "in-1", seconds=5):
            order.append(f"{name} in")
            await anyio.sleep(hold)
            order.append(f"{name} out")

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "a", 0.3)
        await anyio.sleep(0.05)
        tg.start_soon(worker, "b", 0)
    assert order == ["a in", "a out", "b in", "b out"]  # never both inside
    assert store.read_claim("in-1") is None  # released


async def test_a_renewed_lease_is_kept_and_a_stale_one_taken_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    order: list[str] = []

    async def second() -> None:
        lease = await take(store, "in-1", seconds=0.3)
        assert lease is not None and lease.took_over is None  # released, not taken over
        order.append("second took it")
        lease.release()

    # A live holder renews every 0.1 s: a waiter does not take over while it lives, though
    # the holder works for four lease times.
    async with anyio.create_task_group() as tg:

        async def holder() -> None:
            async with holding(store, "in-1", seconds=0.3):
                await anyio.sleep(1.2)
                order.append("holder done")

        tg.start_soon(holder)
        await anyio.sleep(0.05)
        tg.start_soon(second)
    assert order == ["holder done", "second took it"]
    # A dead holder's claim (never renewed) is taken over after its lease time.
    dead = orjson.dumps({"holder": "host pid 1 dead", "seconds": 0.3, "seq": 0})
    assert store.swap_claim("in-2", None, dead)
    with caplog.at_level(logging.WARNING, logger="orch.lease"):
        lease = await take(store, "in-2", seconds=5)
    assert lease is not None and lease.took_over == "host pid 1 dead"
    assert "took over the lease on in-2 from host pid 1 dead" in caplog.text
    # An unreadable claim counts as stale at once.
    assert store.swap_claim("in-3", None, b"garbage")
    assert await take(store, "in-3") is not None


async def test_a_lease_taken_over_cancels_the_work_and_says_so() -> None:
    store = MemoryStore()
    reached_end = False

    async def work() -> None:
        nonlocal reached_end
        async with holding(store, "in-1", seconds=0.3) as lease:
            assert lease is not None
            # Another process, finding this one's claim stale, takes it over.
            assert store.swap_claim("in-1", lease.document, b'{"holder": "other"}')
            await anyio.sleep(5)  # cancelled at the next renewal, 0.1 s in
            reached_end = True

    with pytest.raises(LeaseLostError, match="another process took over the lease on in-1"):
        await work()
    assert not reached_end
    assert store.read_claim("in-1") == b'{"holder": "other"}'  # not released: not ours


async def test_a_store_without_claims_runs_without_leases_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Plain(MemoryStore):
        supports_claims = False

    store = Plain()
    store.location = "plain-test-store"
    with caplog.at_level(logging.WARNING, logger="orch.lease"):
        async with holding(store, "in-1") as lease:
            assert lease is None
        async with holding(store, "in-2") as lease:
            assert lease is None
    assert caplog.text.count("keeps no claims") == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "directory"])
def test_the_same_batch_submitted_again_while_it_runs_shares_it_and_runs_nothing_twice(
    kind: str, tmp_path: Path
) -> None:
    # On PostgreSQL: test_executor_pg.py.
    store = f"sqlite:///{tmp_path / 'runs.db'}" if kind == "sqlite" else str(tmp_path / "runs")
    submit_twice_while_held(store, tmp_path)


async def test_a_lease_left_by_a_failed_release_is_taken_back_at_once() -> None:
    class Flaky(MemoryStore):
        fail = False

        def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
            if self.fail:
                raise OSError("store unreachable")
            return super().swap_claim(name, expected, new)

    store = Flaky()
    async with holding(store, "in-1", seconds=60):
        store.fail = True  # the release fails: the claim stays, but this process knows it
    store.fail = False
    assert store.read_claim("in-1") is not None
    with anyio.fail_after(120):  # a guard against a hang, not a measurement
        lease = await take(store, "in-1", seconds=60)
    assert lease is not None and lease.took_over is None  # taken back, not waited out
