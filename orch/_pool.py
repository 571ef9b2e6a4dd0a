"""A bounded pool of worker tasks inside an anyio task group.

Items are handled as soon as they are submitted, by an idle worker or a new one while fewer
than ``limit`` exist; workers are started lazily, so a small pipeline pays for few tasks. This
is how the runtime runs nodes and child calls: a task per item would cost more than the step
itself (anyio's task spawn is the single largest per-node overhead), and a pool is also the
concurrency limit. The pool never decides order: handlers see items in submission order,
and completion order never reaches a record.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

__all__ = ["WorkerPool"]

T = TypeVar("T")


class WorkerPool(Generic[T]):
    """Run ``handler(item)`` for each submitted item with at most ``limit`` at once.

    A handler may return follow-up items (the nodes its step made ready): the worker takes
    the first itself, straight away, and queues the rest. A chain of steps then runs on one
    worker with no queue traffic and no new tasks.

    Type Parameters:
        T: the item type.
    """

    def __init__(
        self,
        tg: TaskGroup,
        handler: Callable[[T], Awaitable[Iterable[T] | None]],
        limit: int,
    ) -> None:
        self._send, self._recv = anyio.create_memory_object_stream[T](math.inf)
        self._tg = tg
        self._handler = handler
        self._limit = limit
        self._workers = 0
        self._idle = 0
        self._queued = 0
        self._starting = False

    def submit(self, item: T) -> None:
        """Queue ``item``; start a worker if every existing one is busy."""
        self._send.send_nowait(item)
        self._queued += 1
        self._grow()

    def _grow(self) -> None:
        # One new worker at a time: it starts on the next loop iteration, takes an item, and
        # only then starts another if work is still waiting. Steps that never block are all
        # run by the first worker (no task spawned for them); steps that block ramp the pool
        # up one worker per blocked step, to the limit.
        if not self._starting and self._queued > self._idle and self._workers < self._limit:
            self._workers += 1
            self._starting = True
            self._tg.start_soon(self._work)

    def close(self) -> None:
        """No more items: workers exit once the queue is drained."""
        self._send.close()

    async def _work(self) -> None:
        self._starting = False
        receive, receive_nowait = self._recv.receive, self._recv.receive_nowait
        handler = self._handler
        while True:
            # Take queued work without a trip through the event loop; only an empty queue
            # waits. (Handlers await as they work, so cancellation is still seen promptly.)
            try:
                item = receive_nowait()
            except anyio.WouldBlock:
                self._idle += 1
                try:
                    item = await receive()
                except anyio.EndOfStream:
                    return
                finally:
                    self._idle -= 1
            except anyio.EndOfStream:
                return
            self._queued -= 1
            self._grow()
            follow = await handler(item)
            while follow:
                it = iter(follow)
                first = next(it, None)
                for other in it:
                    self.submit(other)
                if first is None:
                    break
                follow = await handler(first)
