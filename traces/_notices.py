"""Notices: warnings that also go back to whoever asked for the work.

A store that lost its connection and retried, or a batch worker that took over a dead
worker's lease, logs a warning where it runs, which on a cluster is a worker's log that the
person who submitted the batch may never read. :func:`notice` logs it as usual and also adds
it to the notices being collected for the current task (a :mod:`contextvars` variable, so
concurrent chunks of runs on one event loop each collect their own), and an executor returns
what :func:`collecting` gathered with the batch's results. Nothing here is part of a record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["collecting", "notice"]

_SINK: ContextVar[list[str] | None] = ContextVar("traces_notices", default=None)


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
