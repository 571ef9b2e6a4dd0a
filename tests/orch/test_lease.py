"""Leases on batch inputs: one holder at a time, a stale one taken over, a lost one cancels.

Lease timing runs on a :class:`~orch.testing.ManualClock`: the tests move time themselves
and wait until the code under test is asleep on the clock, so none of them sleeps. The last
tests use the real clock, which on asyncio renews from the event loop's timer, with short
leases.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import orjson
import pytest
from batch_checks import submit_twice_while_held

from orch._lease import Lease, holding, take
from orch.errors import LeaseHeld, LeaseLostError
from orch.testing import ManualClock
from traces import MemoryStore

ROOT = Path(__file__).parents[2]
HANG_GUARD = 60.0
"""Seconds after which a lease test that waits on its clock fails: a guard against a hang (a
lease that is never released, a waiter that never wakes), not a measurement."""


async def test_a_second_taker_waits_until_the_holder_releases() -> None:
    store = MemoryStore()
    clock = ManualClock()
    order: list[str] = []
    a_in, a_may_leave, a_left = anyio.Event(), anyio.Event(), anyio.Event()

    async def a() -> None:
        async with holding(store, "in-1", seconds=6, clock=clock):
            order.append("a in")
            a_in.set()
            await a_may_leave.wait()
            order.append("a out")
        a_left.set()

    async def b() -> None:
        async with holding(store, "in-1", seconds=6, clock=clock) as lease:
            assert order == ["a in", "a out"], "b went in while a was inside"
            assert lease is not None and lease.took_over is None  # released, not taken over
            order.append("b in")
        order.append("b out")

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(a)
            await a_in.wait()
            tg.start_soon(b)
            for _ in range(3):  # b finds the lease held, looks again later, finds it held ...
                await clock.wait_for_sleepers(2)  # a's renewer, and b waiting for its next look
                clock.advance(1)
            await clock.wait_for_sleepers(2)
            assert order == ["a in"]
            a_may_leave.set()
            await a_left.wait()  # a released the lease
            clock.advance(1)  # b's next look finds it free
    assert order == ["a in", "a out", "b in", "b out"]  # never both inside
    assert store.read_claim("in-1") is None  # released


async def test_a_renewed_lease_is_kept_and_a_stale_one_taken_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    clock = ManualClock()
    order: list[str] = []
    holder_in, holder_may_end, holder_ended = anyio.Event(), anyio.Event(), anyio.Event()

    async def second() -> None:
        lease = await take(store, "in-1", seconds=6, clock=clock)
        assert order == ["holder done"], "took the lease over from a live holder"
        assert lease is not None and lease.took_over is None  # released, not taken over
        order.append("second took it")
        lease.release()

    async def holder() -> None:
        async with holding(store, "in-1", seconds=6, clock=clock):
            holder_in.set()
            await holder_may_end.wait()
            order.append("holder done")
        holder_ended.set()

    # A live holder renews every 2 s: a waiter (looking every 1 s) does not take over while
    # it lives, though the holder works for four lease times.
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await holder_in.wait()
            tg.start_soon(second)
            for _ in range(4 * 6):
                await clock.wait_for_sleepers(2)  # the holder's renewer, and the waiter
                clock.advance(1)
            await clock.wait_for_sleepers(2)
            assert order == []
            holder_may_end.set()
            await holder_ended.wait()  # released
            clock.advance(1)  # the waiter's next look finds it free
    assert order == ["holder done", "second took it"]
    # A dead holder's claim (never renewed) is taken over after its lease time, not before.
    dead = orjson.dumps({"holder": "host pid 1 dead", "seconds": 6, "seq": 0})
    assert store.swap_claim("in-2", None, dead)
    clock = ManualClock()
    taken: list[Lease | None] = []

    async def waiter() -> None:
        taken.append(await take(store, "in-2", seconds=30, clock=clock))
        assert clock.now() >= 6, "took over a lease before its lease time"

    with caplog.at_level(logging.WARNING, logger="orch.lease"), anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await clock.wait_for_sleepers(1)
            clock.advance(5)
            await clock.wait_for_sleepers(1)  # looked again: not stale yet
            assert taken == []
            clock.advance(1)
    (lease,) = taken
    assert lease is not None and lease.took_over == "host pid 1 dead"
    assert "took over the lease on in-2 from host pid 1 dead" in caplog.text
    # An unreadable claim counts as stale at once.
    assert store.swap_claim("in-3", None, b"garbage")
    assert await take(store, "in-3") is not None


async def test_a_lease_taken_over_cancels_the_work_and_says_so() -> None:
    store = MemoryStore()
    clock = ManualClock()
    reached_end = False
    renewed = anyio.Event()

    async def work() -> None:
        nonlocal reached_end
        async with holding(store, "in-1", seconds=6, clock=clock) as lease:
            assert lease is not None
            # Another process, finding this one's claim stale, takes it over.
            assert store.swap_claim("in-1", lease.document, b'{"holder": "other"}')
            await renewed.wait()  # cancelled at the next renewal, which finds the lease lost
            reached_end = True

    async def next_renewal() -> None:
        await clock.wait_for_sleepers(1)  # the renewer, until a third of the lease time
        clock.advance(2)
        await clock.wait_for_sleepers(1)  # asleep again only if it renewed the lease
        renewed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(next_renewal)
        with pytest.raises(LeaseLostError, match="another process took over the lease on in-1"):
            await work()
        tg.cancel_scope.cancel()
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


# -- the real clock: on asyncio a lease is renewed from the event loop's timer ---------------
# These use real time with short leases (a renewal every 0.05 s): each waits for what it
# checks to happen, under HANG_GUARD, and never measures how long it took.


async def test_the_real_clock_renews_from_the_loops_timer_and_keeps_the_lease() -> None:
    store = MemoryStore()
    with anyio.fail_after(HANG_GUARD):
        async with holding(store, "in-1", seconds=0.15) as lease:
            assert lease is not None
            while lease.seq < 3:  # renewed three times while the body works
                await anyio.sleep(0.01)
                with pytest.raises(LeaseHeld):  # held all along: never taken over
                    await take(store, "in-1", seconds=0.15, wait=False)
            assert not lease.lost
    assert store.read_claim("in-1") is None  # released


async def test_the_real_clock_cancels_the_work_when_the_lease_is_taken_over() -> None:
    store = MemoryStore()
    reached_end = False

    async def work() -> None:
        nonlocal reached_end
        async with holding(store, "in-1", seconds=0.15) as lease:
            assert lease is not None
            assert store.swap_claim("in-1", lease.document, b'{"holder": "other"}')
            await anyio.sleep(HANG_GUARD)  # cancelled at the next renewal
            reached_end = True

    with anyio.fail_after(HANG_GUARD):
        with pytest.raises(LeaseLostError, match="another process took over the lease on in-1"):
            await work()
    assert not reached_end
    assert store.read_claim("in-1") == b'{"holder": "other"}'  # not released: not ours


async def test_the_real_clock_raises_what_a_failed_renewal_raised() -> None:
    class Failing(MemoryStore):
        fail = False

        def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
            if self.fail:
                self.fail = False  # the release after it goes through
                raise OSError("store unreachable")
            return super().swap_claim(name, expected, new)

    store = Failing()
    reached_end = False

    async def work() -> None:
        nonlocal reached_end
        async with holding(store, "in-1", seconds=0.15):
            store.fail = True  # the next renewal fails
            await anyio.sleep(HANG_GUARD)
            reached_end = True

    with anyio.fail_after(HANG_GUARD):
        with pytest.raises(OSError, match="store unreachable"):
            await work()
    assert not reached_end
    assert store.read_claim("in-1") is None  # released after the failure
