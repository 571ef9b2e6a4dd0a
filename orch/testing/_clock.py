"""A lease clock that moves only when the test moves it: :class:`ManualClock`.

Leases wait: a process that finds a claim held looks again a little later and takes it over
once it went stale; a holder renews its claim every third of its lease time. On the real clock
a test of that waits for real. On a :class:`ManualClock` the same code waits on this object
instead, and the test says when time passes (:meth:`ManualClock.advance`) and can wait until
the code under test is asleep on it (:meth:`ManualClock.wait_for_sleepers`): no test sleeps,
and none depends on how fast the machine is.

A manual clock must never be used by a real run: leases on it never go stale and are never
renewed unless someone advances it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel

from orch._lease import use_lease_clock

__all__ = ["ManualClock"]


@dataclass(eq=False)
class _Sleeper:
    until: float
    woken: anyio.Event = field(default_factory=anyio.Event)


class ManualClock:
    """A :class:`~orch._lease.LeaseClock` whose time moves only by :meth:`advance`.

    Pass it to the lease functions, or install it for every lease taken in a context,
    ``arun``'s included, with :meth:`installed`::

        clock = ManualClock()
        with clock.installed():
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)              # finds the lease held, sleeps on the clock
                await clock.wait_for_sleepers(1)
                clock.advance(30)                  # the holder's lease time passes
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[_Sleeper] = []
        # Made on first use: an anyio event belongs to the event loop that is running.
        self._fell_asleep: anyio.Event | None = None

    def now(self) -> float:
        """The clock's time: ``start`` plus every :meth:`advance` so far."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds`` from now (0 or less: only a
        checkpoint, as ``anyio.sleep(0)``). Cancellable."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        sleeper = _Sleeper(self._now + seconds)
        self._sleepers.append(sleeper)
        if self._fell_asleep is not None:
            self._fell_asleep.set()
            self._fell_asleep = None
        try:
            await sleeper.woken.wait()
        finally:
            if sleeper in self._sleepers:  # cancelled before its time came
                self._sleepers.remove(sleeper)

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` and wake every sleeper whose time has come. The
        woken tasks run once the caller next waits (``wait_for_sleepers``, an event...)."""
        if seconds < 0:
            raise ValueError(
                f"ManualClock.advance({seconds!r}): a clock never goes back; fix: advance by "
                "0 or more seconds"
            )
        self._now += seconds
        due = [s for s in self._sleepers if s.until <= self._now]
        self._sleepers = [s for s in self._sleepers if s.until > self._now]
        for sleeper in due:
            sleeper.woken.set()

    @property
    def sleepers(self) -> int:
        """How many tasks are asleep on this clock now."""
        return len(self._sleepers)

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Wait until at least ``count`` tasks are asleep on this clock: the code under test
        has done all it can before time moves. Tasks woken by :meth:`advance` are no longer
        asleep until they sleep again, so after an advance this waits for them to."""
        while len(self._sleepers) < count:
            if self._fell_asleep is None:
                self._fell_asleep = anyio.Event()
            await self._fell_asleep.wait()

    @contextmanager
    def installed(self) -> Iterator[ManualClock]:
        """Every lease taken in this context, and in the tasks started from it, uses this
        clock (see :func:`orch._lease.use_lease_clock`); the previous clock after."""
        with use_lease_clock(self):
            yield self
