"""Tool broker overhead: µs per call through all six stages, against a direct MCP client call.

One MCP server definition (``bench_mcp_server.py``: a tool ``add(a, b)``) is reached two ways,
in-process and over stdio (the same file run as a subprocess with this interpreter), and a
local Python tool with the same signature shows the broker's own cost with no MCP at all.
For each, in one process run:

* ``direct``: N calls with an ``mcp.Client`` connected to the server (for the local tool, N
  plain calls of the function);
* ``broker``: the same N calls through ``ToolBroker.call(ctx, ...)`` inside one step of a real
  run (``orch.arun``, services ``tools`` and ``principal``): identity, authorisation,
  resolution and validation, budget, invocation, audit, each call one recorded effect, into
  a ``MemoryStore`` and into a ``DirectoryStore`` in a temporary directory. The floor (a run
  whose step makes the same loop with no calls, into the same store) is subtracted, so what
  remains is the cost per call.

Every cell makes N calls per repeat; the cells of a repeat run in a shuffled order, each
broker cell paired with the floor of the same repeat, and the figures are medians over the
repeats (the machine may be shared). Overhead is broker - direct, in µs and as a percentage
of the direct stdio call's latency; the report ends with PASS/FAIL lines for the issue's
target: overhead under 10% of the stdio call. ``cpu`` columns count this process's CPU time
only (a stdio server's own work is in another process).

Run: ``python tests/benchmarks/tool_broker_overhead.py`` (``--calls N``, ``--repeat R``,
``--quick`` for a fast look, ``--json FILE`` to keep the numbers, ``--strict`` to exit 1 on a
missed target; ``--calls 5 --repeat 1`` is a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from pydantic import BaseModel

from agents.tools import McpSource, MemoryAuditLog, Principal, ToolBroker, tool, verify_anchored
from orch import Context, Pipeline, PipelineBuilder, agent
from orch._runtime import arun
from traces import ArtifactStore, DirectoryStore, MemoryStore

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_mcp_server import server  # noqa: E402

SERVER_SCRIPT = HERE / "bench_mcp_server.py"
TARGET_PCT = 10.0
TRANSPORTS = ("local", "in-process", "stdio")
STORES = ("memory", "directory")
TOOL_NAME = {"local": "add", "in-process": "inproc.add", "stdio": "stdio.add"}
LABEL = {"local": "local Python tool", "in-process": "MCP in-process", "stdio": "MCP stdio"}
SCOPE = "bench:call"


@tool(scopes={SCOPE})
def add(a: int, b: int) -> int:
    """The sum of two integers (the local twin of the server's tool)."""
    return a + b


class Job(BaseModel):
    tool: str
    """The broker's name of the tool; empty for the floor (the same loop, no calls)."""
    direct: str = ""
    """Instead of the broker: call this transport's client (or the local function) directly
    from the step, unrecorded: what an agent would do without the broker."""
    calls: int
    offset: int
    """Makes every call's arguments distinct, so no run rewrites records of an earlier one."""


class Done(BaseModel):
    calls: int


@agent(name="tool-loop", version="1")
async def tool_loop(job: Job, ctx: Context) -> Done:
    broker: ToolBroker = ctx.service("tools")
    made = 0
    if job.direct == "local":
        for i in range(job.calls):
            add.fn(job.offset + i, 1)
        return Done(calls=0)
    if job.direct:
        client: Client = ctx.service("clients")[job.direct]
        for i in range(job.calls):
            result = await client.call_tool("add", {"a": job.offset + i, "b": 1})
            if result.is_error:
                raise RuntimeError(f"direct {job.direct} call failed: {result.content}")
        return Done(calls=0)
    for i in range(job.calls):
        if job.tool:
            await broker.call(ctx, job.tool, {"a": job.offset + i, "b": 1})
            made += 1
    return Done(calls=made)


def pipeline() -> Pipeline:
    p = PipelineBuilder("tool-broker-overhead")
    p.node(
        "loop",
        tool_loop,
        tool=p.input("tool", str),
        direct=p.input("direct", str),
        calls=p.input("calls", int),
        offset=p.input("offset", int),
    )
    return p.build()


Timing = tuple[float, float]  # (wall s, cpu s of this process)


def _freeze() -> None:
    # Everything alive now (modules, servers, warm caches) leaves the collector's view, so the
    # collection before each timed cell costs little (the imports alone make it ~0.1 s).
    gc.collect()
    gc.freeze()


async def _timed(fn: Callable[[], Awaitable[Any]]) -> tuple[Timing, Any]:
    gc.collect()
    gc.disable()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        value = await fn()
        return (time.perf_counter() - w0, time.process_time() - c0), value
    finally:
        gc.enable()


class Bench:
    def __init__(self, calls: int, stack: AsyncExitStack, tmp: Path) -> None:
        self.calls = calls
        self.stack = stack
        self.pipeline = pipeline()
        self.stores: dict[str, ArtifactStore] = {
            "memory": MemoryStore(),
            "directory": DirectoryStore(tmp / "store"),
        }
        self.broker = ToolBroker(
            [
                add,
                McpSource("inproc", server=server, scopes=[SCOPE]),
                McpSource("stdio", command=[sys.executable, str(SERVER_SCRIPT)], scopes=[SCOPE]),
            ]
        )
        self.services = {
            "tools": self.broker,
            # A wildcard scope, so that authorisation does real work.
            "principal": Principal(id="bench", tenant="bench", scopes=("bench:*",)),
        }
        self.clients: dict[str, Client] = {}
        self.services["clients"] = self.clients
        self.offset = 0
        self.broker_calls = 0

    async def open(self) -> None:
        self.stack.push_async_callback(self.broker.aclose)
        # The broker connects on its first call: make one now, so that its stdio server
        # starts while the direct client starts its own (a plain task: the clients' contexts
        # must not be nested in a task group's).
        first = asyncio.get_running_loop().create_task(self.run("memory", "stdio", 1))
        try:
            stdio = StdioServerParameters(command=sys.executable, args=[str(SERVER_SCRIPT)])
            # cache=None, as the broker's own clients (tools/call is never cached anyway).
            for name, target in (("in-process", server), ("stdio", stdio)):
                client = Client(target, cache=None)
                self.clients[name] = await self.stack.enter_async_context(client)
        finally:
            await first

    def _offset(self) -> int:
        self.offset += self.calls
        return self.offset

    async def direct_in_step(self, transport: str, calls: int) -> Timing:
        """The direct calls made from inside a step of a run (the floor not subtracted)."""
        inputs = {"tool": "", "direct": transport, "calls": calls, "offset": self._offset()}
        timing, result = await _timed(
            lambda: arun(self.pipeline, inputs, store=self.stores["memory"], services=self.services)
        )
        if not result.ok:
            raise SystemExit(f"direct run ({transport}) failed: {result.error}")
        return timing

    async def direct(self, transport: str, calls: int) -> Timing:
        offset = self._offset()
        if transport == "local":
            fn = add.fn

            async def loop() -> None:
                for i in range(calls):
                    fn(offset + i, 1)

        else:
            client = self.clients[transport]

            async def loop() -> None:
                for i in range(calls):
                    result = await client.call_tool("add", {"a": offset + i, "b": 1})
                    if result.is_error:
                        raise SystemExit(f"direct {transport} call failed: {result.content}")

        timing, _ = await _timed(loop)
        return timing

    async def run(self, store: str, transport: str | None, calls: int) -> Timing:
        """One run whose step makes ``calls`` broker calls (none for the floor)."""
        inputs = {
            "tool": TOOL_NAME[transport] if transport else "",
            "direct": "",
            "calls": calls,
            "offset": self._offset(),
        }
        timing, result = await _timed(
            lambda: arun(self.pipeline, inputs, store=self.stores[store], services=self.services)
        )
        if not result.ok:
            raise SystemExit(f"broker run ({transport}, {store}) failed: {result.error}")
        self.broker_calls += result.outputs["loop"].calls
        return timing

    def audit_check(self) -> str:
        """Every broker call left one audit entry, ok, in an intact hash chain, which agrees
        with the anchors in each store's ledger and with the tool calls its runs recorded."""
        audit = self.broker.audit
        if not isinstance(audit, MemoryAuditLog):
            raise SystemExit(f"expected the broker's default MemoryAuditLog, got {audit!r}")
        entries = audit.entries("bench")
        bad = [e for e in entries if e.outcome != "ok"]
        broken = audit.verify("bench")
        for name, store in self.stores.items():
            broken += [f"{name} store: {p}" for p in verify_anchored(entries, "bench", store)]
        if len(entries) != self.broker_calls or bad or broken:
            raise SystemExit(
                f"audit log: {len(entries)} entries for {self.broker_calls} calls, "
                f"{len(bad)} not ok, chain problems: {broken[:3]}"
            )
        return (
            f"audit log: {len(entries)} entries, one per broker call, all ok, chain intact and "
            "in agreement with both stores' anchors and records"
        )


async def measure(calls: int, repeat: int, progress: Callable[[str], None]) -> dict[str, Any]:
    direct: dict[str, list[Timing]] = {t: [] for t in TRANSPORTS}
    in_step: dict[str, list[Timing]] = {t: [] for t in TRANSPORTS}
    floor: dict[str, list[Timing]] = {s: [] for s in STORES}
    broker: dict[tuple[str, str], list[Timing]] = {(t, s): [] for t in TRANSPORTS for s in STORES}
    with tempfile.TemporaryDirectory(prefix="orch-tool-bench-") as tmp:
        async with AsyncExitStack() as stack:
            bench = Bench(calls, stack, Path(tmp))
            started = time.perf_counter()
            _freeze()
            await bench.open()
            # Warm-up: connect the broker's sources, compile validators, fill caches.
            warm = max(1, min(calls, 20))
            for t in TRANSPORTS:
                await bench.direct(t, warm)
                await bench.direct_in_step(t, warm)
                for s in STORES:
                    await bench.run(s, t, warm)
            for s in STORES:
                await bench.run(s, None, warm)
            _freeze()
            progress(f"servers connected and warmed up in {time.perf_counter() - started:.1f} s")
            cells: list[tuple[str, str, str]] = (
                [("direct", t, "") for t in TRANSPORTS]
                + [("in-step", t, "") for t in TRANSPORTS]
                + [("floor", "", s) for s in STORES]
                + [("broker", t, s) for t in TRANSPORTS for s in STORES]
            )
            rng = random.Random(0)
            for _ in range(repeat):
                order = list(cells)
                rng.shuffle(order)
                for what, t, s in order:
                    if what == "direct":
                        direct[t].append(await bench.direct(t, calls))
                    elif what == "in-step":
                        in_step[t].append(await bench.direct_in_step(t, calls))
                    elif what == "floor":
                        floor[s].append(await bench.run(s, None, calls))
                    else:
                        broker[t, s].append(await bench.run(s, t, calls))
            audit = bench.audit_check()
    # The stdio servers are closed here (the exit stack closed the clients and the broker).
    progress(audit)
    return summarise(calls, repeat, direct, in_step, floor, broker) | {"audit": audit}


def _us(samples: list[float], calls: int) -> float:
    return statistics.median(samples) / calls * 1e6


def summarise(
    calls: int,
    repeat: int,
    bare: dict[str, list[Timing]],
    in_step: dict[str, list[Timing]],
    floor: dict[str, list[Timing]],
    broker: dict[tuple[str, str], list[Timing]],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "calls": calls,
        "repeat": repeat,
        "bare": {},
        "direct": {},
        "floor": {},
        "rows": [],
    }
    for t, samples in bare.items():
        out["bare"][t] = {
            "us_per_call": _us([w for w, _ in samples], calls),
            "cpu_us_per_call": _us([c for _, c in samples], calls),
        }
    # The baseline: the same direct calls made from inside a step, less the step's floor
    # (paired by round), so that both sides pay the same engine around the call.
    for t, samples in in_step.items():
        wall = [w - fw for (w, _), (fw, _) in zip(samples, floor["memory"], strict=True)]
        cpu = [c - fc for (_, c), (_, fc) in zip(samples, floor["memory"], strict=True)]
        out["direct"][t] = {"us_per_call": _us(wall, calls), "cpu_us_per_call": _us(cpu, calls)}
    for s, samples in floor.items():
        out["floor"][s] = {
            "us_per_run": statistics.median(w for w, _ in samples) * 1e6,
            "cpu_us_per_run": statistics.median(c for _, c in samples) * 1e6,
        }
    stdio_us = out["direct"]["stdio"]["us_per_call"]
    for (t, s), samples in broker.items():
        # Paired with the floor of the same repeat, which ran in the same shuffled round.
        wall = [w - fw for (w, _), (fw, _) in zip(samples, floor[s], strict=True)]
        cpu = [c - fc for (_, c), (_, fc) in zip(samples, floor[s], strict=True)]
        us, cpu_us = _us(wall, calls), _us(cpu, calls)
        d = out["direct"][t]
        overhead = us - d["us_per_call"]
        out["rows"].append(
            {
                "transport": t,
                "store": s,
                "direct_us": d["us_per_call"],
                "broker_us": us,
                "overhead_us": overhead,
                "overhead_pct_of_stdio": overhead / stdio_us * 100,
                "direct_cpu_us": d["cpu_us_per_call"],
                "broker_cpu_us": cpu_us,
                "overhead_cpu_us": cpu_us - d["cpu_us_per_call"],
            }
        )
    return out


def report(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    stdio_us = result["direct"]["stdio"]["us_per_call"]
    fl = result["floor"]
    lines = [
        f"floors (one run, the same loop, no calls): {fl['memory']['us_per_run']:.0f} µs with a "
        f"MemoryStore, {fl['directory']['us_per_run']:.0f} µs with a DirectoryStore; "
        "subtracted from every broker run",
        f"reference: a direct stdio call takes {stdio_us:.0f} µs from inside a step "
        f"({result['bare']['stdio']['us_per_call']:.0f} µs from a bare loop; in-process "
        f"{result['direct']['in-process']['us_per_call']:.0f} µs in a step, "
        f"{result['bare']['in-process']['us_per_call']:.0f} µs bare)",
        "direct = the same SDK call made by the agent itself, unrecorded, inside a step",
        "",
        "| tool | store | direct µs/call | broker µs/call | overhead µs | % of stdio call "
        "| direct cpu µs | broker cpu µs | overhead cpu µs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {LABEL[row['transport']]} | {row['store']} | {row['direct_us']:.1f} "
            f"| {row['broker_us']:.1f} | {row['overhead_us']:.1f} "
            f"| {row['overhead_pct_of_stdio']:.1f}% | {row['direct_cpu_us']:.1f} "
            f"| {row['broker_cpu_us']:.1f} | {row['overhead_cpu_us']:.1f} |"
        )
    verdicts = []
    for row in result["rows"]:
        if row["transport"] != "stdio":
            continue
        pct = row["overhead_pct_of_stdio"]
        cpu_pct = row["overhead_cpu_us"] / stdio_us * 100
        verdicts.append(
            f"{'PASS' if pct < TARGET_PCT else 'FAIL'} stdio, {row['store']} store: broker "
            f"overhead {row['overhead_us']:.0f} µs per call = {pct:.1f}% of the stdio call "
            f"({stdio_us:.0f} µs); target < {TARGET_PCT:.0f}% (in CPU time of this process: "
            f"{row['overhead_cpu_us']:.0f} µs = {cpu_pct:.1f}%)"
        )
    return lines, verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per cell per repeat")
    parser.add_argument("--repeat", type=int, default=9, help="interleaved repeats (medians)")
    parser.add_argument("--quick", action="store_true", help="50 calls, 3 repeats")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    calls = 50 if args.quick else max(1, args.calls)
    repeat = 3 if args.quick else max(1, args.repeat)
    print(
        f"tool broker overhead: {calls} calls per cell, median of {repeat} interleaved "
        f"repeat(s), Python {platform.python_version()} on {platform.machine()}"
    )
    result = anyio.run(measure, calls, repeat, lambda m: print(f"  {m}", flush=True))
    lines, verdicts = report(result)
    print()
    print("\n".join(lines))
    print()
    print("\n".join(verdicts))
    if args.json:
        args.json.write_text(
            json.dumps(
                result | {"python": platform.python_version(), "verdicts": verdicts}, indent=2
            )
        )
    failed = any(v.startswith("FAIL") for v in verdicts)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
