"""Effects overhead: what recording a call costs, and how fast a recorded run replays.

One pipeline of N steps (default 1,000: a wide fan-out), each step making one call to an
in-process stand-in model. Three timings in one process run:

* ``unrecorded``: the agents call the model directly (the engine still records steps);
* ``recorded``: the same calls through ``ctx.effect`` (request hash, response artifact, effect
  record and event per call);
* ``replay``: the recorded run replayed, every call served from the record.

Reported: µs per step for each, the recording overhead per effect (recorded - unrecorded) and
replay's speed relative to recording. Run: ``python tests/benchmarks/effects_overhead.py``
(``--steps N``, ``--repeat R``, ``--json FILE``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, agent
from orch._replay import areplay
from orch._runtime import arun
from traces import MemoryStore


class Q(BaseModel):
    question: str


class A(BaseModel):
    text: str


async def model(request: dict[str, Any]) -> dict[str, Any]:
    prompt = request["prompt"]
    return {"text": prompt[::-1], "usage": {"input_tokens": len(prompt), "output_tokens": 4}}


def _meter(r: dict[str, Any]) -> tuple[dict[str, int], float]:
    return r["usage"], 0.0


@agent(name="direct", version="1")
async def direct(q: Q, ctx: Context) -> A:
    request = {"model": "m", "prompt": q.question}
    return A(text=(await model(request))["text"])


@agent(name="recorded", version="1")
async def recorded(q: Q, ctx: Context) -> A:
    request = {"model": "m", "prompt": q.question}
    r = await ctx.effect("model", "m", request, lambda: model(request), meter=_meter)
    return A(text=r["text"])


def build(step: Any, n: int) -> Pipeline:
    p = PipelineBuilder(f"effects-{n}")
    q = p.input("question", str)
    for i in range(n):
        p.node(f"s{i:05d}", step, question=q if i % 2 else f"question number {i}")
    return p.build()


async def _time(make: Callable[[], Awaitable[Any]], repeat: int) -> tuple[list[float], Any]:
    await make()  # warm-up
    times = []
    last = None
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            last = await make()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return times, last


async def bench(n: int, repeat: int) -> dict[str, Any]:
    plain, with_effects = build(direct, n), build(recorded, n)
    store = MemoryStore()
    t_plain, _ = await _time(lambda: arun(plain, {"question": "q"}, store=store), repeat)
    t_rec, last = await _time(lambda: arun(with_effects, {"question": "q"}, store=store), repeat)
    run_id = last.run_id
    t_replay, report = await _time(lambda: areplay(with_effects, run_id, store), repeat)
    assert report.clean, report.first_divergence
    med = {
        k: statistics.median(v) / n * 1e6
        for k, v in (("unrecorded", t_plain), ("recorded", t_rec), ("replay", t_replay))
    }
    return {
        "steps": n,
        "repeat": repeat,
        "us_per_step": med,
        "recording_overhead_us_per_effect": med["recorded"] - med["unrecorded"],
        "replay_vs_recorded": med["replay"] / med["recorded"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = anyio.run(bench, args.steps, args.repeat)
    us = result["us_per_step"]
    print(f"effects overhead: {result['steps']} steps, one effect each, median of {args.repeat}")
    print("| mode | µs per step |")
    print("|---|---:|")
    for k in ("unrecorded", "recorded", "replay"):
        print(f"| {k} | {us[k]:.1f} |")
    print(f"recording overhead per effect: {result['recording_overhead_us_per_effect']:.1f} µs")
    print(f"replay / recorded time: {result['replay_vs_recorded']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
