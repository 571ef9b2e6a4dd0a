"""Streaming overhead: what listening to a run's events costs (``on_event``, ``orch.stream``).

One pipeline of N steps (default 1,000: a wide fan-out of no-op agents that each send one
custom event), in a memory store, timed three ways in one process, alternating, R rounds:

* ``quiet``: ``arun`` with no listener;
* ``on_event``: ``arun(on_event=list.append)``, the callback form;
* ``stream``: ``orch.stream`` with a consumer that takes every event as it comes.

Reported: µs per step for each, each one's ratio to ``quiet`` from the same round (median over
rounds), and events per second through ``orch.stream``. The issue's target is an ``on_event``
cost under 10% of a step. Run: ``python tests/benchmarks/stream_overhead.py`` (``--steps N``,
``--repeat R``, ``--json FILE``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

import orch
from orch import Context, Pipeline, PipelineBuilder, RunEvent, agent
from traces import MemoryStore


class Item(BaseModel):
    n: int


@agent(name="noop", version="1")
async def noop(item: Item, ctx: Context) -> Item:
    ctx.emit("progress", n=item.n)
    return item


def fan_out(steps: int) -> Pipeline:
    p = PipelineBuilder("fan")
    n = p.input("n", int)
    for i in range(steps):
        p.node(f"s{i}", noop, n=n)
    return p.build()


async def quiet(pipeline: Pipeline) -> int:
    await orch.arun(pipeline, {"n": 1}, store=MemoryStore())
    return 0


async def callback(pipeline: Pipeline) -> int:
    seen: list[RunEvent] = []
    await orch.arun(pipeline, {"n": 1}, store=MemoryStore(), on_event=seen.append)
    return len(seen)


async def streamed(pipeline: Pipeline) -> int:
    count = 0
    async with orch.stream(pipeline, {"n": 1}, store=MemoryStore()) as events:
        async for _ in events:
            count += 1
    return count


def timed(fn: Callable[[Pipeline], Awaitable[int]], pipeline: Pipeline) -> tuple[float, int]:
    gc.collect()
    start = time.perf_counter()
    events = anyio.run(fn, pipeline)
    return time.perf_counter() - start, events


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    pipeline = fan_out(args.steps)
    ways = {"quiet": quiet, "on_event": callback, "stream": streamed}
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    ratios: dict[str, list[float]] = {w: [] for w in ways if w != "quiet"}
    events = 0
    timed(quiet, pipeline)  # warm up: imports, pydantic schemas
    for _ in range(args.repeat):
        base, _ = timed(quiet, pipeline)
        seconds["quiet"].append(base)
        for way in ("on_event", "stream"):
            took, events = timed(ways[way], pipeline)
            seconds[way].append(took)
            ratios[way].append(took / base)
    figures: dict[str, Any] = {"steps": args.steps, "repeat": args.repeat, "events": events}
    print(f"{args.steps} steps, {events} events a run, median of {args.repeat} rounds")
    for way, values in seconds.items():
        us = statistics.median(values) / args.steps * 1e6
        line = f"  {way:9} {us:8.1f} µs/step"
        figures[way] = {"us_per_step": us}
        if way in ratios:
            r = statistics.median(ratios[way])
            figures[way]["ratio_to_quiet"] = r
            line += f"   x{r:.3f} of quiet ({(r - 1) * 100:+.1f}%)"
        print(line)
    rate = events / statistics.median(seconds["stream"])
    figures["stream"]["events_per_second"] = rate
    print(f"  through orch.stream: {rate:,.0f} events/s")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
