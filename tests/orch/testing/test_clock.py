"""ManualClock: time moves only by advance, sleepers wake exactly when their time has come,
and an installed clock is the one every lease of the context reads."""

from __future__ import annotations

import anyio
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch._lease import MonotonicClock, holding, lease_clock
from orch.testing import ManualClock
from traces import MemoryStore


async def test_a_sleeper_wakes_when_its_time_has_come_and_not_before() -> None:
    clock = ManualClock(start=100.0)
    woke: list[str] = []
    short_woke = anyio.Event()

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(f"{name} at {clock.now():g}")
        if name == "short":
            short_woke.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "short", 1)
        tg.start_soon(sleeper, "long", 3)
        await clock.wait_for_sleepers(2)
        clock.advance(0.5)
        await clock.wait_for_sleepers(2)  # nobody woke: both still asleep
        assert woke == []
        clock.advance(0.5)
        assert clock.sleepers == 1  # "short" is woken at once; it runs when the test waits
        await short_woke.wait()
        assert woke == ["short at 101"]
        await clock.sleep(0)  # a checkpoint only: nothing to advance
        clock.advance(10)  # far past "long"'s time: it wakes, at the clock's time then
    assert woke == ["short at 101", "long at 111"]
    assert clock.now() == 111.0 and clock.sleepers == 0


async def test_a_cancelled_sleeper_is_no_longer_asleep() -> None:
    clock = ManualClock()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await clock.sleep(5)
    assert scope.cancelled_caught and clock.sleepers == 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.sleep, 5)
        await clock.wait_for_sleepers(1)
        tg.cancel_scope.cancel()
    assert clock.sleepers == 0


def test_the_clock_never_goes_back() -> None:
    clock = ManualClock(start=2.0)
    with pytest.raises(ValueError, match=r"never goes back; fix: advance by 0 or more"):
        clock.advance(-1)
    clock.advance(0)
    assert clock.now() == 2.0


def _seq(document: bytes | None) -> int:
    assert document is not None
    seq = orjson.loads(document)["seq"]
    assert isinstance(seq, int)
    return seq


async def test_an_installed_clock_is_the_lease_clock_of_its_context_and_tasks() -> None:
    clock = ManualClock()
    assert isinstance(lease_clock(), MonotonicClock)
    store = MemoryStore()
    with clock.installed():
        assert lease_clock() is clock
        async with anyio.create_task_group() as tg:

            async def hold() -> None:
                async with holding(store, "in-1", seconds=6):  # no clock given: the context's
                    await anyio.sleep_forever()

            tg.start_soon(hold)
            await clock.wait_for_sleepers(1)  # the lease's renewer sleeps on the manual clock
            seq = _seq(store.read_claim("in-1"))
            clock.advance(2)  # a third of the lease time: the renewal is due
            await clock.wait_for_sleepers(1)  # renewed, and asleep until the next one
            assert _seq(store.read_claim("in-1")) == seq + 1
            tg.cancel_scope.cancel()
    assert isinstance(lease_clock(), MonotonicClock)  # the real clock again after
    assert store.read_claim("in-1") is None  # released


@settings(max_examples=50, deadline=None)
@given(
    sleeps=st.lists(st.floats(min_value=0.001, max_value=50), min_size=1, max_size=6),
    steps=st.lists(st.floats(min_value=0, max_value=20), max_size=8),
)
def test_after_every_advance_exactly_the_sleepers_whose_time_came_have_woken(
    sleeps: list[float], steps: list[float]
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        woke = [anyio.Event() for _ in sleeps]

        async def sleeper(i: int) -> None:
            await clock.sleep(sleeps[i])
            woke[i].set()

        async with anyio.create_task_group() as tg:
            for i in range(len(sleeps)):
                tg.start_soon(sleeper, i)
            await clock.wait_for_sleepers(len(sleeps))
            for step in steps:
                clock.advance(step)
                due = {i for i, s in enumerate(sleeps) if s <= clock.now()}
                assert clock.sleepers == len(sleeps) - len(due)
                for i in due:
                    await woke[i].wait()
                assert {i for i, e in enumerate(woke) if e.is_set()} == due
            tg.cancel_scope.cancel()

    anyio.run(scenario)
