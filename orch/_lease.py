"""Leases: one process at a time works on a batch input, whatever submits it.

Two processes may reach the same input of a batch at once: the same batch submitted twice
while the first still runs, or a Dask task rescheduled after its worker was presumed dead
while that worker still runs (a network partition, a long pause). Without coordination both
would make the same run id, interleave its event log and issue its effects twice. A lease
prevents that: before an input's run is looked up, resumed or made, the process takes the
store's claim named after the input (:meth:`~traces.ArtifactStore.swap_claim`, a
compare-and-swap in the shared store), renews it while it works and releases it when done.

* **Taking** a lease: when nobody holds the claim, swap it from nothing to this holder's
  document. When another holds it, a batch first goes on with its other inputs
  (``wait=False``), then comes back to this one and waits: a released claim is taken at
  once; a claim whose document has not changed for the holder's lease time, as *this*
  process's monotonic clock measures it, is stale (its holder died) and is taken over by
  swapping from that document. No wall clock is compared between machines, so clock skew
  cannot expire a live lease. A holder of this very machine (same boot, same PID namespace)
  whose process is no longer running, told by its pid and that process's start time, is
  taken over at once: a resume right after a kill need not wait out the lease.
* **Renewing**: the holder swaps its document for a new one (the next sequence number) every
  third of the lease time (on asyncio with the real clock, from the event loop's timer: no
  task beside the work). A renewal that fails means another process took the lease over
  (this one was paused longer than the lease time): the work is cancelled, and the input is
  reported as an error here, since the new holder is finishing it.
* **Releasing**: swapping the holder's document for nothing, when the work ends however it
  ends; a waiter then takes it at once and finds the finished run. When the store fails just
  then, the process remembers the lease it left, and takes it back at once next time; other
  processes wait it out.

How this process reads time and waits for a lease goes through one seam, a
:class:`LeaseClock`: :func:`take` and :func:`holding` take one, and otherwise use the one of
the current context (:func:`use_lease_clock`), by default :class:`MonotonicClock`. A test
installs ``orch.testing.ManualClock`` there and moves time itself, so that waiting out a
lease or a renewal takes no real time. The clock never reaches a claim's document: what other
processes read from the store is the same whatever clock this one uses.

A lease is coordination only: its documents are never part of a record or a hash. With a
store that keeps no claims (``supports_claims`` False, a third-party backend say) work goes on
without leases, with one warning per store. This module must never import ``agents`` or
``routers``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import orjson
from anyio import sleep as _sleep  # bound here: see MonotonicClock.sleep

from orch.errors import LeaseHeld, LeaseLostError, own_error
from traces import ArtifactStore, notice

__all__ = [
    # leases
    "DEFAULT_LEASE_SECONDS",
    "Lease",
    "describe_holder",
    "holder_is_gone",
    "holding",
    "take",
    # the clock seam
    "LeaseClock",
    "MonotonicClock",
    "lease_clock",
    "use_lease_clock",
]

DEFAULT_LEASE_SECONDS = 30.0
"""How long a holder may go without renewing before others take its lease over."""


class LeaseClock(Protocol):
    """How this process reads time and waits, for its leases: when a claim it watches went
    stale, when to look at it again, when to renew its own. Only differences of :meth:`now`
    are used, never its value: it is not compared with any other process's clock."""

    def now(self) -> float:
        """Seconds on this clock, from any fixed point."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until :meth:`now` has moved on by ``seconds``."""
        ...


class MonotonicClock:
    """The real lease clock: this process's monotonic clock (no wall clock, so that setting
    the system time cannot expire a live lease), and anyio's sleep."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        # anyio.sleep as bound at import: a test that fakes anyio.sleep for the code under
        # test (a rate limiter's waits) must not turn renewals and polls into a busy loop.
        await _sleep(seconds)


_MONOTONIC = MonotonicClock()
_CLOCK: ContextVar[LeaseClock | None] = ContextVar("orch_lease_clock", default=None)


def lease_clock() -> LeaseClock:
    """The lease clock of the current context (see :func:`use_lease_clock`): by default the
    real one, :class:`MonotonicClock`."""
    clock = _CLOCK.get()
    return _MONOTONIC if clock is None else clock


@contextmanager
def use_lease_clock(clock: LeaseClock) -> Iterator[LeaseClock]:
    """Leases taken in this context, and in the tasks started from it, use ``clock``: for a
    test that drives time for leases it does not take itself (those :func:`orch.arun` takes
    for a run's lineage, a batch's for its inputs)."""
    token = _CLOCK.set(clock)
    try:
        yield clock
    finally:
        _CLOCK.reset(token)


log = logging.getLogger("orch.lease")  # a public name: logging is configured by it
_WARNED: set[str] = set()
# Leases this process finished with but could not release (the store failed): (store
# location, name) -> the document left in the claim. This process may take such a claim back
# at once, rather than wait out a lease that it knows is nobody's.
_ABANDONED: dict[tuple[str, str], bytes] = {}


def _holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(4)}"


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _process_identity(pid: int) -> dict[str, object] | None:
    """What tells process ``pid`` of this machine apart from any other, ever: the boot, the
    PID namespace and the process's start time (so that a reused pid is not taken for it).
    None where /proc does not tell (not Linux), which turns the fast check off."""
    boot = _read_text("/proc/sys/kernel/random/boot_id")
    stat = _read_text(f"/proc/{pid}/stat")
    try:
        pidns = os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None
    if boot is None or stat is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None  # a zombie has stopped for good: its parent just has not reaped it
    return {"boot": boot, "pidns": pidns, "pid": pid, "started": int(fields[19])}


_SELF: dict[str, object] | None = None


def _self_identity() -> dict[str, object] | None:
    global _SELF
    if _SELF is None or _SELF.get("pid") != os.getpid():  # looked up again after a fork
        _SELF = _process_identity(os.getpid())
    return _SELF


def _document(holder: str, seconds: float, seq: int, work: str = "") -> bytes:
    doc: dict[str, object] = {"holder": holder, "seconds": seconds, "seq": seq}
    ident = _self_identity()
    if ident is not None:
        doc["host"] = socket.gethostname()
        doc["process"] = ident
    if work:
        doc["work"] = work
    return orjson.dumps(doc)


def _holder_of(document: bytes) -> tuple[str, float]:
    """(who holds it, its lease time); an unreadable document counts as stale at once."""
    try:
        doc = orjson.loads(document)
        return str(doc["holder"]), float(doc["seconds"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "an unreadable claim", 0.0


def describe_holder(document: bytes) -> str:
    """Who holds a claim and what for, in words, for messages."""
    holder, _ = _holder_of(document)
    try:
        work = orjson.loads(document).get("work")
    except (orjson.JSONDecodeError, AttributeError):
        work = None
    return f"{holder} ({work})" if isinstance(work, str) and work else holder


def holder_is_gone(document: bytes) -> bool:
    """True when the claim's holder was a process of this machine that no longer runs.

    Only a holder on the same boot of the same host, in the same PID namespace, can be
    checked; its pid must be running with the start time it had. Anything else (another
    machine, another container, no /proc) is left to the lease time."""
    try:
        doc = orjson.loads(document)
        ident = doc["process"]
        host = doc["host"]
        pid = int(ident["pid"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return False
    me = _self_identity()
    if me is None or host != socket.gethostname():
        return False
    if ident.get("boot") != me["boot"] or ident.get("pidns") != me["pidns"]:
        return False
    now = _process_identity(pid)
    return now is None or now.get("started") != ident.get("started")


@dataclass
class Lease:
    """A held lease on claim ``name`` (see :func:`take`)."""

    store: ArtifactStore
    name: str
    holder: str
    seconds: float
    document: bytes
    seq: int = 0
    took_over: str | None = None
    """The holder whose stale lease this one took over, if any."""
    lost: bool = field(default=False)

    work: str = ""
    """What the holder does under the lease (e.g. ``run R``), for others' messages."""

    def renew(self) -> bool:
        """Swap in the next document; False (and ``lost``) when another holds it now."""
        new = _document(self.holder, self.seconds, self.seq + 1, self.work)
        if not self.store.swap_claim(self.name, self.document, new):
            self.lost = True
            return False
        self.document, self.seq = new, self.seq + 1
        return True

    def release(self) -> None:
        """Give the lease up. A store that fails here is logged, never raised: the work is
        over either way, and an unreleased lease only makes the next taker wait it out."""
        if self.lost:
            return
        try:
            self.store.swap_claim(self.name, self.document, None)
        except Exception as exc:
            _ABANDONED[(self.store.location, self.name)] = self.document
            notice(
                log,
                "could not release the lease on %s (%s: %s); another process that takes it "
                "waits %.0fs first",
                self.name,
                type(exc).__name__,
                exc,
                self.seconds,
            )


async def take(
    store: ArtifactStore,
    name: str,
    seconds: float = DEFAULT_LEASE_SECONDS,
    *,
    wait: bool = True,
    work: str = "",
    clock: LeaseClock | None = None,
) -> Lease | None:
    """Wait for and take the lease on ``name``; None when ``store`` keeps no claims. With
    ``wait=False``, raise :class:`~orch.errors.LeaseHeld` instead of waiting when another
    holds it (a holder on another machine is only recognised as stale by waiting; one of this
    machine whose process is gone is taken over at once). ``work`` says what the lease is held
    for (``run R``), for the messages of processes that find it held. ``clock`` measures the
    wait (default: :func:`lease_clock`)."""
    if not store.supports_claims:
        if store.location not in _WARNED:
            _WARNED.add(store.location)
            log.warning(
                "store %s keeps no claims, so batch inputs run without leases: two processes "
                "may work on one input at once if a batch is submitted twice concurrently",
                store.location,
            )
        return None
    clock = lease_clock() if clock is None else clock
    holder = _holder()
    mine = _document(holder, seconds, 0, work)
    seen: bytes | None = None
    seen_since = 0.0
    poll = min(1.0, seconds / 6)
    while True:
        # Swapped first, read only when held: an input nobody holds costs one round trip.
        if store.swap_claim(name, None, mine):
            return Lease(store, name, holder, seconds, mine, work=work)
        current = store.read_claim(name)
        if current is None:
            continue  # released between the swap and the read: try again
        if _ABANDONED.get((store.location, name)) == current:
            if store.swap_claim(name, current, mine):  # this process's own, finished with
                del _ABANDONED[(store.location, name)]
                return Lease(store, name, holder, seconds, mine, work=work)
            continue
        if holder_is_gone(current):
            # Its process is gone from this machine: nobody will renew it, no need to wait.
            other = describe_holder(current)
            if store.swap_claim(name, current, mine):
                notice(log, "took over the lease on %s from %s, whose process is gone", name, other)
                return Lease(store, name, holder, seconds, mine, took_over=other, work=work)
            continue
        if not wait:
            raise LeaseHeld(name, describe_holder(current))
        if current != seen:
            seen, seen_since = current, clock.now()
        other, their_seconds = _holder_of(current)
        if clock.now() - seen_since >= their_seconds:
            if store.swap_claim(name, current, mine):
                notice(
                    log,
                    "took over the lease on %s from %s, which had not renewed it for %.0fs",
                    name,
                    other,
                    their_seconds,
                )
                return Lease(store, name, holder, seconds, mine, took_over=other, work=work)
            continue
        await clock.sleep(poll)


class _TimerRenewer:
    """Renews a lease from the event loop's timer, with no task: what :func:`holding` uses
    on asyncio with the real clock. A task beside the work costs a task group, a task and a
    cancellation per lease (about 0.2 ms, as much as a short run itself); a timer costs a
    callback per renewal and nothing at the end. A renewal that finds the lease lost, or
    that fails, cancels the work's scope from the callback, as the renewer task would."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, lease: Lease, period: float, scope: anyio.CancelScope
    ) -> None:
        self._loop, self._lease, self._period, self._scope = loop, lease, period, scope
        self.error: Exception | None = None
        """What a renewal raised (a store that failed), raised again after the work."""
        self._handle: asyncio.TimerHandle | None = loop.call_later(period, self._tick)

    def _tick(self) -> None:
        self._handle = None
        try:
            renewed = self._lease.renew()
        except Exception as exc:  # the callback has no caller: hand it to holding()
            self.error = exc
            renewed = False
        if renewed:
            self._handle = self._loop.call_later(self._period, self._tick)
        else:
            self._scope.cancel()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None under another backend (trio runs none)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@asynccontextmanager
async def holding(
    store: ArtifactStore,
    name: str,
    seconds: float = DEFAULT_LEASE_SECONDS,
    *,
    wait: bool = True,
    work: str = "",
    clock: LeaseClock | None = None,
) -> AsyncIterator[Lease | None]:
    """Take the lease on ``name`` (see :func:`take` for ``wait``), keep it renewed while the
    body runs (every third of ``seconds`` on ``clock``, default :func:`lease_clock`), release
    it after.

    When a renewal finds the lease taken over, the body is cancelled and
    :class:`LeaseLostError` raised."""
    clock = lease_clock() if clock is None else clock
    lease = await take(store, name, seconds, wait=wait, work=work, clock=clock)
    if lease is None:
        yield None
        return
    loop = _running_asyncio_loop() if clock is _MONOTONIC else None
    try:
        if loop is not None:
            # The real clock is the loop's own monotonic time: renew from its timer.
            with anyio.CancelScope() as scope:
                renewer = _TimerRenewer(loop, lease, seconds / 3, scope)
                try:
                    yield lease
                finally:
                    renewer.stop()
            if renewer.error is not None:
                raise renewer.error
        else:
            with own_error():  # the body's own error, not the renewer's task group
                async with anyio.create_task_group() as tg:

                    async def keep() -> None:
                        while True:
                            await clock.sleep(seconds / 3)
                            if not lease.renew():
                                tg.cancel_scope.cancel()
                                return

                    tg.start_soon(keep)
                    try:
                        yield lease
                    finally:
                        tg.cancel_scope.cancel()
    finally:
        lease.release()
    if lease.lost:
        raise LeaseLostError(
            f"another process took over the lease on {name} (this one had not renewed it "
            f"for {seconds:g}s: paused or cut off from the store); it finishes that input"
        )
