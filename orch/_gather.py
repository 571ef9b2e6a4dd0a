"""Concurrent calls inside one step (:meth:`orch.Context.gather`), numbered in call order.

A step that makes several model calls at once must record them as if it had made them one
after another: effect ``i`` is the ``i``-th call given, whichever answers first, or replay
(which serves effects by index) would pair requests with the wrong responses. So each call
runs in its own task (a *lane*), and the lanes start one at a time, in argument order: the
next lane starts only once the one before has reached its first real wait. Everything a call
numbers before that wait (its effect index, taken as ``ctx.effect`` starts; a child step id)
is therefore numbered in argument order, on any event loop.

What a lane numbers *after* its first wait would be numbered in completion order, so it is
refused with an :class:`~orch.errors.OrchError` naming the fix (each awaitable given to
``gather`` makes one call; several calls in turn are awaited outside it). The end of a
lane's opening is seen exactly, by stepping its awaitable until it first yields to the event
loop (:class:`_Opening`), with no help from the event loop. The first effect or child call
a lane made also ends its numbering as it ends, waited or not (:func:`call_ended`): a
served effect (replay, resume) answers without waiting, so a rule about real waits alone
would let a replayed call number what the live call, which did wait, was refused.

Failures. The record of a failed gathered step must be the same whatever order its calls ended
in, and a replay must make it again. Stopping the other calls at the first failure gives
neither: which of them had ended (kept in the record) or were still running (cancelled, left
out, their slots holes) is timing, and whether a later call had started at all depends on
whether the failed call failed before or after its first wait, which differs between a live
call and a served one (which never waits). Cutting the record at the failed call (dropping
what the later calls did, ended or not) would hide calls the world did see, and child steps
already recorded. So a failure stops nothing: every call given starts, in argument order as
always, and runs to its end; then the failure of the earliest call given is raised as it was
(its own type and traceback; never an ``ExceptionGroup``), the later calls' failures added to
it as notes (those of effects are in the record too). The record of a failed gathered step is
thus that of the calls made in turn, each one's failure caught, followed by the earliest
failure raised: independent of completion order, and what a replay, serving every call from
the record, makes again. The price is paid on failure only: the calls beside a failed one are
still made (and recorded, and paid for), and the step fails once its slowest call has ended (a
step timeout still bounds that). A call waiting for an answer (``ctx.ask``) counts as one that
failed. A cancellation from outside (the step's timeout, the run stopping) cancels every lane,
and the record keeps the calls that had ended: that record is a matter of timing, as any
cancelled step's is.

This module must never choose what is numbered or recorded by timing, and never swallow a
failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator, Sequence
from contextvars import ContextVar
from typing import Any, Generic, TypeVar, cast

import anyio

from orch._ask import AwaitingAnswer
from orch.errors import OrchError

__all__ = ["LANE", "Lane", "call_ended", "gather_calls"]

R = TypeVar("R")


class Lane:
    """One call of a ``gather``: the step log it numbers in, and whether it has waited yet."""

    __slots__ = ("log", "opened")

    def __init__(self, log: object) -> None:
        self.log = log
        """The :class:`~orch._context.StepLog` of the step that gathered (a child step's own
        numbering is not this lane's business)."""
        self.opened = False
        """True once the call first waited or ended, or an effect or child call it made
        ended (:func:`call_ended`): from then on it may number nothing."""


LANE: ContextVar[Lane | None] = ContextVar("orch_gather_lane", default=None)
"""The lane the running task is, if any (each lane's task sets it in its own context)."""


def call_ended(log: object) -> None:
    """An effect or child call of the step whose log is ``log`` ended: when the running task
    is a lane of that step's ``gather``, it may number nothing more, as after a wait (a
    served effect never waits; see the module docstring)."""
    lane = LANE.get()
    if lane is not None and lane.log is log:
        lane.opened = True


def _until_first_wait(
    steps: Generator[Any, Any, R], lane: Lane, opened: anyio.Event
) -> Generator[Any, Any, R]:
    """``yield from steps``, marking ``lane`` opened as ``steps`` first yields or ends."""
    try:
        try:
            pending = steps.send(None)
        finally:
            lane.opened = True
            opened.set()
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # cancellation too: the awaitable must see it
                pending = steps.throw(exc)
            else:
                pending = steps.send(sent)
    except StopIteration as stop:
        return cast(R, stop.value)


class _Opening(Generic[R]):
    """Awaits ``call``, telling ``lane`` and ``opened`` when it first waits.

    Type Parameters:
        R: the call's result type.
    """

    __slots__ = ("_call", "_lane", "_opened")

    def __init__(self, call: Awaitable[R], lane: Lane, opened: anyio.Event) -> None:
        self._call, self._lane, self._opened = call, lane, opened

    def __await__(self) -> Generator[Any, Any, R]:
        return _until_first_wait(self._call.__await__(), self._lane, self._opened)


def _close(call: Awaitable[Any]) -> None:
    # A coroutine that never started would warn that it was never awaited.
    close = getattr(call, "close", None)
    if callable(close):
        close()


async def gather_calls(
    log: object, step_id: str, calls: Sequence[Awaitable[R]], limit: int
) -> list[R]:
    """Run ``calls`` concurrently for the step whose log is ``log``; see the module
    docstring. At most ``limit`` run at once."""
    current = LANE.get()
    if current is not None and current.log is log:
        for call in calls:
            _close(call)
        raise OrchError(
            f"step {step_id!r}: ctx.gather() was called inside a call of another "
            "ctx.gather() of the same step, whose lanes would then start in timing order; "
            "fix: give all the calls to one ctx.gather()"
        )
    if limit < 1:
        for call in calls:
            _close(call)
        raise OrchError(f"step {step_id!r}: ctx.gather() limit is {limit}; fix: use 1 or more")
    n = len(calls)
    results: list[Any] = [None] * n
    failures: dict[int, BaseException] = {}
    slots = anyio.Semaphore(limit) if limit < n else None
    began = [False] * n

    async def run(i: int, opened: anyio.Event) -> None:
        began[i] = True
        lane = Lane(log)
        LANE.set(lane)  # this task's own context: the parent and the siblings never see it
        try:
            results[i] = await _Opening(calls[i], lane, opened)
        except (Exception, AwaitingAnswer) as exc:
            failures[i] = exc  # the others go on: what they record must not follow timing
        finally:
            if slots is not None:
                slots.release()

    try:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                if slots is not None:
                    await slots.acquire()
                opened = anyio.Event()
                tg.start_soon(run, i, opened)
                if i + 1 < n:
                    await opened.wait()  # the next lane starts once this one has waited
    finally:
        for call, ran in zip(calls, began, strict=True):
            if not ran:  # cancelled from outside before it started
                _close(call)
    if failures:
        raise _earliest(failures, n)
    return results


def _earliest(failures: dict[int, BaseException], n: int) -> BaseException:
    """The failure of the earliest call given, the others noted on it (never swallowed)."""
    first = min(failures)
    exc = failures[first]
    for i in sorted(failures):
        other = failures[i]
        if other is not exc:
            exc.add_note(
                f"ctx.gather(): call {i} (from 0) of {n} failed too: "
                f"{type(other).__name__}: {other}"
            )
    return exc
