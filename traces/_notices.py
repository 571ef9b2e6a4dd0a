"""Notices: warnings that also go back to whoever asked for the work.

A store that lost its connection and retried, or a batch worker that took over a dead
worker's lease, logs a warning where it runs, which on a cluster is a worker's log that the
person who submitted the batch may never read. :func:`notice` logs it as usual and also adds
it to the notices being collected for the current task (a :mod:`contextvars` variable, so
concurrent chunks of runs on one event loop each collect their own), and an executor returns
what :func:`collecting` gathered with the batch's results. Nothing here is part of a record.

Work done on behalf of several askers, out of their context (a store's background commit of
writes that several runs made), runs under :func:`forwarding` with the sinks of the askers
it serves (:data:`current_sink` read when each asked), so that its notices reach each of
them: a retry the submitter of a batch never hears of is a retry hidden from them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["collecting", "current_sink", "forwarding", "notice"]

_SINK: ContextVar[list[str] | None] = ContextVar("traces_notices", default=None)

#: The list collecting the current context's notices, or None: a writer's, read when it
#: hands work to another thread (a bound method, as it is read on the write path).
current_sink = _SINK.get


def notice(logger: logging.Logger, message: str, *args: object) -> None:
    """Log ``message % args`` as a warning on ``logger``, and collect it if collecting."""
    logger.warning(message, *args)
    sink = _SINK.get()
    if sink is not None:
        sink.append(message % args if args else message)


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect the notices of the code run inside (and of the tasks it starts) into a list."""
    sink: list[str] = []
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


@contextmanager
def forwarding(sinks: Sequence[list[str]]) -> Iterator[None]:
    """Deliver the notices of the code run inside to each of ``sinks`` and to the current
    context's own sink (each list once), when the block ends, whether or not it raised."""
    own = _SINK.get()
    targets = list(sinks) if own is None else [own, *sinks]
    collected: list[str] = []
    token = _SINK.set(collected)
    try:
        yield
    finally:
        _SINK.reset(token)
        if collected:
            seen: set[int] = set()
            for sink in targets:
                if id(sink) not in seen:
                    seen.add(id(sink))
                    sink.extend(collected)
