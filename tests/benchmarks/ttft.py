"""Time to first token: what orch adds to a streaming model call, against the bare SDK.

A local OpenAI-compatible server (``tests/agents/wire_servers.py``) answers every request with
a stream whose first text chunk is sent at once, so that the time to the first token is the
client's own work plus one local round trip. Timed interleaved in one process, N calls each:

* ``bare``: the ``openai`` SDK itself (``AsyncOpenAI``, ``stream=True``), from the call to the
  first chunk with text;
* ``orch call``: a one-step pipeline through ``orch.stream`` whose agent calls
  ``ModelHub.chat`` (no ``stream`` in the request: the adapter streams because someone
  listens), from the agent's call to the first ``token`` event in the consumer's loop;
* ``orch run``: the same run, from entering ``orch.stream`` (run start, records, the step's
  scheduling included) to that first ``token`` event.

Reported per way: median and p90 TTFT in ms, and orch's added ms (orch - bare, medians and
p90s over the same run). The issue's target is under 2 ms added. Run: ``python
tests/benchmarks/ttft.py`` (``--calls N``, ``--json FILE``; ``--smoke`` runs in seconds and
proves only that the script works).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import openai
from pydantic import BaseModel

import orch
from agents.models import ChatMessage, ChatRequest, ModelHub, ModelRegistry
from orch import Context, Pipeline, PipelineBuilder, agent
from traces import MemoryStore

# The adapter tests' wire server: one definition of the OpenAI stream for tests and here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from wire_servers import Reply, ScriptedServer, openai_stream

TARGET_MS = 2.0
PARTS = ["The ", "answer ", "is ", "forty-two."]


class Q(BaseModel):
    question: str


class A(BaseModel):
    text: str


CALL_START: list[float] = []
"""When the agent called the hub, per run (perf_counter)."""


@agent(name="asker", version="1")
async def asker(q: Q, ctx: Context) -> A:
    hub: ModelHub = ctx.service("models")
    request = ChatRequest(model="mini", messages=[ChatMessage(role="user", content=q.question)])
    CALL_START.append(time.perf_counter())
    return A(text=(await hub.chat(ctx, request)).text)


def pipeline() -> Pipeline:
    p = PipelineBuilder("ttft")
    p.node("ask", asker, question=p.input("question", str))
    return p.build()


async def bare_ttft(client: openai.AsyncOpenAI) -> float:
    started = time.perf_counter()
    first = 0.0
    stream = await client.chat.completions.create(
        model="gpt-mini",
        messages=[{"role": "user", "content": "q"}],
        max_tokens=64,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:  # read to the end, as the adapter does
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    return first - started


async def orch_ttft(p: Pipeline, hub: ModelHub) -> tuple[float, float]:
    """(from the agent's call, from entering orch.stream) to the first token event."""
    started = time.perf_counter()
    first = 0.0
    async with orch.stream(
        p, {"question": "q"}, store=MemoryStore(), services={"models": hub}
    ) as events:
        async for event in events:
            if not first and event.kind == "token":
                first = time.perf_counter()
    assert events.result is not None and events.result.ok, events.result
    return first - CALL_START[-1], first - started


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(calls: int, url: str) -> dict[str, list[float]]:
    registry = ModelRegistry.from_dict(
        {
            "providers": {"oa": {"kind": "openai", "base_url": url + "/v1", "max_retries": 0}},
            "models": {"mini": {"provider": "oa", "name": "gpt-mini"}},
        }
    )
    hub = ModelHub(registry)
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url + "/v1", max_retries=0)
    p = pipeline()
    seconds: dict[str, list[float]] = {"bare": [], "orch call": [], "orch run": []}
    try:
        for _ in range(3):  # warm up: imports, pydantic schemas, the SDK's client
            await bare_ttft(client)
            await orch_ttft(p, hub)
        gc.collect()
        for i in range(calls):
            # Alternate which goes first, so that drift hits both alike.
            if i % 2:
                call, run = await orch_ttft(p, hub)
                bare = await bare_ttft(client)
            else:
                bare = await bare_ttft(client)
                call, run = await orch_ttft(p, hub)
            seconds["bare"].append(bare)
            seconds["orch call"].append(call)
            seconds["orch run"].append(run)
    finally:
        await client.close()
        await hub.aclose()
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--smoke", action="store_true", help="10 calls: proves the script works")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    calls = 10 if args.smoke else args.calls
    with ScriptedServer(Reply(sse=openai_stream(PARTS))) as server:
        seconds = anyio.run(measure, calls, server.url)
    ms = {way: [s * 1000 for s in values] for way, values in seconds.items()}
    bare_med, bare_p90 = statistics.median(ms["bare"]), quantile(ms["bare"], 0.9)
    figures: dict[str, Any] = {"calls": calls, "target_ms": TARGET_MS}
    print(f"time to first token, {calls} calls each, interleaved (ms)")
    print(f"  {'way':10} {'median':>8} {'p90':>8} {'added median':>13} {'added p90':>10}")
    for way, values in ms.items():
        med, p90 = statistics.median(values), quantile(values, 0.9)
        figures[way] = {"median_ms": med, "p90_ms": p90}
        line = f"  {way:10} {med:8.3f} {p90:8.3f}"
        if way != "bare":
            figures[way] |= {"added_median_ms": med - bare_med, "added_p90_ms": p90 - bare_p90}
            line += f" {med - bare_med:13.3f} {p90 - bare_p90:10.3f}"
        print(line)
    added = figures["orch call"]["added_median_ms"]
    verdict = "PASS" if added < TARGET_MS else "FAIL"
    print(
        f"  orch adds {added:.3f} ms to a call's first token (target < {TARGET_MS} ms): {verdict}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
