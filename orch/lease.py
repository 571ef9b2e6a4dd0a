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
  cannot expire a live lease.
* **Renewing**: the holder swaps its document for a new one (the next sequence number) every
  third of the lease time. A renewal that fails means another process took the lease over
  (this one was paused longer than the lease time): the work is cancelled, and the input is
  reported as an error here, since the new holder is finishing it.
* **Releasing**: swapping the holder's document for nothing, when the work ends however it
  ends; a waiter then takes it at once and finds the finished run. When the store fails just
  then, the process remembers the lease it left, and takes it back at once next time; other
  processes wait it out.

A lease is coordination only: its documents are never part of a record or a hash. With a
store that keeps no claims (``supports_claims`` False, a third-party backend say) work goes on
without leases, with one warning per store. This module must never import ``agents`` or
``routers``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import orjson

from traces import ArtifactStore
from traces.notices import notice

from .errors import LeaseLostError

__all__ = ["DEFAULT_LEASE_SECONDS", "Lease", "LeaseHeld", "LeaseLostError", "holding", "take"]

DEFAULT_LEASE_SECONDS = 30.0
"""How long a holder may go without renewing before others take its lease over."""

log = logging.getLogger(__name__)
_WARNED: set[str] = set()
# Leases this process finished with but could not release (the store failed): (store
# location, name) -> the document left in the claim. This process may take such a claim back
# at once, rather than wait out a lease that it knows is nobody's.
_ABANDONED: dict[tuple[str, str], bytes] = {}


def _holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(4)}"


def _document(holder: str, seconds: float, seq: int) -> bytes:
    return orjson.dumps({"holder": holder, "seconds": seconds, "seq": seq})


def _holder_of(document: bytes) -> tuple[str, float]:
    """(who holds it, its lease time); an unreadable document counts as stale at once."""
    try:
        doc = orjson.loads(document)
        return str(doc["holder"]), float(doc["seconds"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "an unreadable claim", 0.0


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

    def renew(self) -> bool:
        """Swap in the next document; False (and ``lost``) when another holds it now."""
        new = _document(self.holder, self.seconds, self.seq + 1)
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


class LeaseHeld(Exception):
    """Raised by :func:`take` with ``wait=False`` when another process holds the lease."""


async def take(
    store: ArtifactStore, name: str, seconds: float = DEFAULT_LEASE_SECONDS, *, wait: bool = True
) -> Lease | None:
    """Wait for and take the lease on ``name``; None when ``store`` keeps no claims. With
    ``wait=False``, raise :class:`LeaseHeld` instead of waiting when another holds it (a
    stale holder is only recognised by waiting)."""
    if not store.supports_claims:
        if store.location not in _WARNED:
            _WARNED.add(store.location)
            log.warning(
                "store %s keeps no claims, so batch inputs run without leases: two processes "
                "may work on one input at once if a batch is submitted twice concurrently",
                store.location,
            )
        return None
    holder = _holder()
    mine = _document(holder, seconds, 0)
    seen: bytes | None = None
    seen_since = 0.0
    poll = min(1.0, seconds / 6)
    while True:
        # Swapped first, read only when held: an input nobody holds costs one round trip.
        if store.swap_claim(name, None, mine):
            return Lease(store, name, holder, seconds, mine)
        current = store.read_claim(name)
        if current is None:
            continue  # released between the swap and the read: try again
        if _ABANDONED.get((store.location, name)) == current:
            if store.swap_claim(name, current, mine):  # this process's own, finished with
                del _ABANDONED[(store.location, name)]
                return Lease(store, name, holder, seconds, mine)
            continue
        if not wait:
            raise LeaseHeld(name)
        if current != seen:
            seen, seen_since = current, time.monotonic()
        other, their_seconds = _holder_of(current)
        if time.monotonic() - seen_since >= their_seconds:
            if store.swap_claim(name, current, mine):
                notice(
                    log,
                    "took over the lease on %s from %s, which had not renewed it for %.0fs",
                    name,
                    other,
                    their_seconds,
                )
                return Lease(store, name, holder, seconds, mine, took_over=other)
            continue
        await anyio.sleep(poll)


@asynccontextmanager
async def holding(
    store: ArtifactStore, name: str, seconds: float = DEFAULT_LEASE_SECONDS, *, wait: bool = True
) -> AsyncIterator[Lease | None]:
    """Take the lease on ``name`` (see :func:`take` for ``wait``), keep it renewed while the
    body runs, release it after.

    When a renewal finds the lease taken over, the body is cancelled and
    :class:`LeaseLostError` raised."""
    lease = await take(store, name, seconds, wait=wait)
    if lease is None:
        yield None
        return
    try:
        async with anyio.create_task_group() as tg:

            async def keep() -> None:
                while True:
                    await anyio.sleep(seconds / 3)
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
