"""Live events of a run, for the app that started it (``orch.stream``, ``arun(on_event=...)``).

Every event the run appends to its hash-chained event log (``run_start``, ``step_start``,
``decision``, ``effect``, ``attempt``, ``ask``, ``step_end``, ``run_end``) reaches the caller
as a :class:`RunEvent` right after it is appended, so the caller sees exactly what the record
holds, in the log's order: causal by construction (a step's start comes before its decisions,
effects and end, a run's start before everything). An agent may add ``custom`` events with
``ctx.emit(name, **data)``; those are for the caller only, never recorded or hashed, and arrive
in order with the step's recorded events. Each effect also sends an ``effect_start`` event when
its call is made or served, and a model call the ``token`` events of its answer as they arrive
(:mod:`orch._deltas`); neither is recorded, and the ``effect`` event that ends them carries the
record's ``usage`` and ``cost_usd``.

Streaming changes nothing that is hashed: the sink is called after the append, with a copy of
what was written, and the run's records are the same whether anyone listens or not. A replay
streams its own events the same way (``areplay(..., on_event=...)``).

Backpressure (:class:`RunStream`): events queue in memory up to ``max_buffer``; while the queue
is full, each step waits before it starts until the consumer has taken some. Memory is bounded
by ``max_buffer`` plus the events of the steps already running (a running step is never
stopped mid-way: its effects are real calls). A consumer that leaves before the run ends (a
client that disconnected) cancels the run, which is recorded as ``cancelled`` with that reason
and can be resumed. This module must never write to a store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from orch._runtime import RunResult

__all__ = ["DEFAULT_BUFFER", "EventSink", "RunEvent", "RunStream", "event_of", "log_tap"]

_NO_DATA: Mapping[str, Any] = {}

DEFAULT_BUFFER = 1000
"""Events a :class:`RunStream` holds before steps wait for the consumer."""


class RunEvent(NamedTuple):
    """One event of a run, as its caller sees it (a tuple: cheap to make, never changed)."""

    kind: str
    """``run_start``, ``step_start``, ``decision``, ``effect``, ``attempt``, ``ask`` (a question
    the run will wait on: data ``id`` and ``question``, its artifact key), ``step_end``,
    ``run_end`` (from the event log), or ``custom`` (``ctx.emit``), ``effect_start`` and
    ``token`` (an effect's call and its text as it arrives), which are not recorded."""
    run_id: str
    step: str | None
    """The step it belongs to (None for the run's own events)."""
    data: Mapping[str, Any]
    """The log event's data (keys, statuses), a custom event's ``name`` and fields, or an
    effect's ``index`` and ``target`` (and ``kind``, or the token's ``text``)."""
    seq: int | None = None
    """Its number in the run's event log; None for an event that is not recorded."""
    hash: str | None = None
    """The log event's hash (what ``orch verify`` checks); None for an unrecorded one."""
    t: float = 0.0
    """Wall-clock time it was written (metadata, as in the log)."""

    @property
    def recorded(self) -> bool:
        """Whether the event is in the run's event log."""
        return self.seq is not None


EventSink = Callable[[RunEvent], None]
"""Called with each event as it happens, inline: it must be quick and must not raise (an
exception in it is the caller's bug and stops the run). An object with an async
``wait_for_room()`` method makes each step wait on it before it starts (backpressure)."""


# tuple.__new__ straight: a NamedTuple's own __new__ is one more Python call per event.
_new_event = cast(Callable[[type[RunEvent], tuple[Any, ...]], RunEvent], tuple.__new__)


def event_of(raw: Mapping[str, Any]) -> RunEvent:
    """The :class:`RunEvent` of an event-log event (a dict as the log writes it)."""
    # The log builds a fresh dict per event and keeps none: no copy is needed.
    return _new_event(
        RunEvent,
        (
            raw["type"],
            raw["run"],
            raw.get("step"),
            raw.get("data", _NO_DATA),
            raw["seq"],
            raw.get("hash"),
            raw.get("t", 0.0),
        ),
    )


def log_tap(sink: EventSink) -> Callable[[Mapping[str, Any]], None]:
    """The event log's tap (``EventLog.tap``) that gives ``sink`` each appended event as a
    :class:`RunEvent`, as :func:`event_of` makes it."""

    def tap(raw: Mapping[str, Any]) -> None:
        sink(event_of(raw))

    return tap


class RunStream:
    """A run's events for an async consumer: ``async for event in run_stream``; after the
    loop, :attr:`result` is the run's :class:`~orch.RunResult`. Made by :func:`stream`."""

    def __init__(self, max_buffer: int = DEFAULT_BUFFER) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer is {max_buffer}; fix: use 1 or more")
        self.max_buffer = max_buffer
        self.result: RunResult | None = None
        """The run's result, once it ended (also for a run that failed or was cancelled)."""
        self.high_water = 0
        """The most events that were ever waiting for the consumer at once."""
        self._queue: deque[RunEvent] = deque()
        self._more = anyio.Event()
        self._room = anyio.Event()
        self._ended = False
        self._left = False
        self._error: BaseException | None = None

    def __call__(self, event: RunEvent) -> None:
        """The run's sink: queue ``event`` for the consumer."""
        self._queue.append(event)
        self.high_water = max(self.high_water, len(self._queue))
        self._more.set()

    async def wait_for_room(self) -> None:
        """Return once the consumer has room (or left): steps call this before they start.
        A cancellation point even when there is room, so that a run whose agents never await
        can still be cancelled between steps (by a consumer that left)."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        while len(self._queue) >= self.max_buffer and not self._left:
            # One event for every waiting step (many wait at once in a fan-out): a new one
            # only once the last was set, so that no waiter is left on an event never set.
            if self._room.is_set():
                self._room = anyio.Event()
            await self._room.wait()

    def _end(self, error: BaseException | None = None) -> None:
        self._ended, self._error = True, error
        self._more.set()

    def _leave(self) -> None:
        self._left = True
        self._room.set()

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> RunEvent:
        while not self._queue and not self._ended:
            self._more = anyio.Event()
            await self._more.wait()
        if self._queue:
            event = self._queue.popleft()
            if len(self._queue) == self.max_buffer - 1:  # from full to not: wake the steps
                self._room.set()
            return event
        if self._error is not None:
            raise self._error
        raise StopAsyncIteration
