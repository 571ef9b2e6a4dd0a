"""Running a pipeline under a terminal's signals: Ctrl-C stops it cleanly, twice stops it now.

The first SIGINT (Ctrl-C) or SIGTERM cancels the run through its :class:`~orch.RunControl`:
every unfinished step is recorded as cancelled, the run ends with status ``cancelled`` and a
root hash, and the command prints the run id and how to resume it. A second signal while that
happens exits at once (the run then stays ``running`` until a resume takes it over; nothing
it finished is lost).

Only for a process's main thread (signal handlers live there); the library never installs
handlers of its own. This module must never write a record.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from orch._runtime import RunControl
from orch.errors import own_error

__all__ = ["EXIT_CODES", "under_signals"]

T = TypeVar("T")

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
"""The shell's convention for a process stopped by a signal: 128 + its number."""


def signal_reason(signum: int) -> str:
    name = signal.Signals(signum).name
    return f"interrupted by {name}" + (" (Ctrl-C)" if signum == signal.SIGINT else "")


async def under_signals(
    work: Callable[[RunControl], Awaitable[T]],
    *,
    first: Callable[[int], None],
    again: Callable[[int], None],
) -> tuple[T, int | None]:
    """Await ``work(control)`` with SIGINT and SIGTERM cancelling ``control``; return its
    result and the signal that stopped it (None when none did). ``first`` is called on the
    first signal, ``again`` on a second one, just before the process exits at once. An error
    of ``work`` comes out as itself, not wrapped in the watcher's task group."""
    control = RunControl()
    stopped_by: int | None = None

    async def watch() -> None:
        nonlocal stopped_by
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if stopped_by is None:
                    stopped_by = signum
                    first(signum)
                    control.cancel(signal_reason(signum))
                else:
                    again(signum)
                    # At once, as promised: no cleanup that could hang on a stuck call.
                    os._exit(EXIT_CODES.get(signal.Signals(signum), 128 + signum))

    with own_error():
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            result = await work(control)
            tg.cancel_scope.cancel()
    return result, stopped_by
