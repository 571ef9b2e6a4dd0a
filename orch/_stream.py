"""``orch.stream``: run a pipeline and read its events as they happen (see :mod:`orch._events`
for what the events are, their order and the backpressure). This module must never write to a
store itself; the run it starts records as any run does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from orch._events import DEFAULT_BUFFER, RunStream
from orch._pipeline import Pipeline
from orch._runtime import RunControl, arun
from orch.errors import own_error

__all__ = ["stream"]


@asynccontextmanager
async def stream(
    pipeline: Pipeline,
    inputs: Mapping[str, Any] | None = None,
    *,
    max_buffer: int = DEFAULT_BUFFER,
    **run_options: Any,
) -> AsyncIterator[RunStream]:
    """Run ``pipeline`` and stream its events, as httpx streams a response::

        async with orch.stream(pipeline, {"question": q}, store=store) as events:
            async for event in events:
                ...
        result = events.result

    ``run_options`` are :func:`orch.arun`'s. Leaving the block before the run ended cancels
    the run (recorded as cancelled, with the reason); an error of the run (bad inputs, say) is
    raised by the loop once the events before it were delivered."""
    events = RunStream(max_buffer)
    control: RunControl = run_options.pop("control", None) or RunControl()

    async def run() -> None:
        try:
            events.result = await arun(
                pipeline, inputs, on_event=events, control=control, **run_options
            )
        except Exception as exc:  # delivered to the consumer, after the events before it
            events._end(exc)
        else:
            events._end()

    with own_error():  # the run's error (or the consumer's) out as itself, not as a group
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield events
            finally:
                if not events._ended:
                    control.cancel("the caller stopped reading the run's events")
                events._leave()
