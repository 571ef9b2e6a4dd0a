"""Many runs in one process: 1,000 concurrent runs of a 5-node pipeline, against bare calls.

An agent app serving requests runs many pipelines at once in one event loop. Here a burst of
``--runs`` (default 1,000) requests arrives at once; each is a run of a 5-node chain whose
every node makes one effect, a simulated model call of ``--latency-ms`` (default 50 ms,
``anyio.sleep``), with every record and event written. The same burst made **bare** is the
same 5 calls per request, in sequence, with no orch at all. Per store (memory, the directory
store that is the default, SQLite) and for bare:

* runs per second: requests / (time from the burst to the last run's end);
* latency of each request from the burst, at p50 and p99, and what orch adds to it (orch's
  percentile minus bare's, in ms and as a percentage of bare's);
* peak RSS of the process (``resource.getrusage``), minus its RSS before the burst.

Then peak RSS of one 10,000-node chain of no-op nodes (``--chain``), memory and directory
store. Each memory figure is set against the bytes the memory store holds at the end
(artifacts, event lines, heads): what the process keeps beyond the record itself.

Every cell runs in a fresh process (``sys.executable`` on this file), so peak RSS is the
cell's own; cells of one round run in a shuffled order, and latency figures are medians over
``--repeat`` rounds (RSS: the largest). Compare ratios within one run, not absolute numbers
across machines; the suite never asserts on time.

Run: ``python tests/benchmarks/many_runs.py`` (``--runs``, ``--latency-ms``, ``--repeat``,
``--chain``, ``--stores``, ``--json FILE``; ``--smoke`` runs in seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from _shapes import chain
from pydantic import BaseModel

from orch import Context, PipelineBuilder, agent
from orch._runtime import arun
from traces import DirectoryStore, MemoryStore, SQLiteStore

STORES = ("memory", "directory", "sqlite")
NODES = 5


def _rss_now_kib() -> int:
    """The current resident set size in KiB (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def _memory_bytes(store: Any) -> int:
    """What a MemoryStore holds: artifact bytes, event lines and heads."""
    blobs = sum(len(b) for b in store._blobs.values())
    lines = sum(len(line) for lines in store._events.values() for line in lines)
    heads = sum(len(h) for h in store._heads.values())
    return int(blobs + lines + heads)


# -- one cell, in its own process --------------------------------------------------------------


LATENCY_S = 0.05
"""Each simulated model call's latency (set from ``--latency-ms`` in the cell's process)."""


async def model(prompt: str) -> dict[str, Any]:
    """The simulated model: waits, then answers from the prompt."""
    await anyio.sleep(LATENCY_S)
    return {"text": prompt[-24:] + "+"}


class Text(BaseModel):
    text: str


@agent(name="call", version="1")
async def call(item: Text, ctx: Context) -> Text:
    request = {"model": "simulated", "prompt": item.text}
    answer = await ctx.effect("model", "simulated", request, lambda: model(item.text))
    return Text(text=answer["text"])


def _cell(spec: dict[str, Any]) -> dict[str, Any]:
    global LATENCY_S
    LATENCY_S = spec["latency_ms"] / 1000

    kind, store_kind = spec["kind"], spec.get("store")
    tmp = tempfile.mkdtemp(prefix="orch-many-")
    store: Any = None
    if store_kind == "memory":
        store = MemoryStore()
    elif store_kind == "directory":
        store = DirectoryStore(Path(tmp) / "store")
    elif store_kind == "sqlite":
        store = SQLiteStore(Path(tmp) / "store.db")

    if kind == "chain":
        pipeline = chain("many-runs-chain", spec["chain"], pad=5)
    else:
        p = PipelineBuilder("many-runs")
        prev = p.node("s0", call, text=p.input("question", str))
        for i in range(1, NODES):
            prev = p.node(f"s{i}", call, text=prev.field("text"))
        pipeline = p.build()

    ends: list[float] = []
    failed: list[str] = []

    async def one_orch(i: int) -> None:
        result = await arun(pipeline, {"question": f"request {i}"}, store=store)
        if not result.ok:
            failed.append(str(result.error))
        ends.append(time.perf_counter())

    async def one_bare(i: int) -> None:
        text = f"request {i}"
        for _ in range(NODES):
            text = (await model(text))["text"]
        ends.append(time.perf_counter())

    async def burst() -> float:
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(spec["runs"]):
                tg.start_soon(one_bare if kind == "bare" else one_orch, i)
        return t0

    async def one_chain() -> None:
        result = await arun(pipeline, {"x": 1}, store=store)
        if not result.ok:
            failed.append(str(result.error))

    rss_before = _rss_now_kib()
    out: dict[str, Any] = {"rss_before_kib": rss_before}
    if kind == "chain":
        t0 = time.perf_counter()
        anyio.run(one_chain)
        out["wall_s"] = time.perf_counter() - t0
    else:
        t0 = anyio.run(burst)
        lat = sorted((e - t0) * 1000 for e in ends)
        out["wall_s"] = (max(ends) - t0) if ends else math.nan
        out["p50_ms"] = statistics.median(lat)
        out["p99_ms"] = lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)]
    out["peak_rss_kib"] = _peak_rss_kib()
    out["failed"] = failed[:3]
    out["stored_bytes"] = _memory_bytes(store) if store_kind == "memory" else None
    if store is not None:
        store.close()
    return out


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--cell", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cell {spec} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["failed"]:
        raise RuntimeError(f"cell {spec}: runs failed: {result['failed']}")
    return result


# -- the report --------------------------------------------------------------------------------


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.1f}"


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000, help="concurrent runs in the burst")
    ap.add_argument("--latency-ms", type=float, default=50.0, help="each simulated call")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; latency: median of them")
    ap.add_argument("--chain", type=int, default=10_000, help="nodes of the RSS chain run")
    ap.add_argument("--stores", nargs="+", default=list(STORES), choices=STORES)
    ap.add_argument("--smoke", action="store_true", help="20 runs, 1 round, chain of 100")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cell:
        print(json.dumps(_cell(json.loads(args.cell))))
        return 0
    if args.smoke:
        args.runs, args.repeat, args.chain = 20, 1, 100

    load_before = _loadavg()
    base = {"runs": args.runs, "latency_ms": args.latency_ms, "chain": args.chain}
    kinds = ["bare", *args.stores]
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    order = random.Random(17)
    for r in range(args.repeat):
        todo = list(kinds)
        order.shuffle(todo)  # drift on a shared machine hits every cell alike
        for k in todo:
            spec = {**base, "kind": "bare" if k == "bare" else "burst", "store": k}
            results[k].append(run_cell(spec))
            print(f"  round {r + 1}: {k} done", file=sys.stderr, flush=True)
    chains: dict[str, dict[str, Any]] = {}
    for k in ("memory", "directory"):
        if k in args.stores:
            chains[k] = run_cell({**base, "kind": "chain", "store": k})
    load_after = _loadavg()

    def med(k: str, field: str) -> float:
        return statistics.median(c[field] for c in results[k])

    bare_p50, bare_p99 = med("bare", "p50_ms"), med("bare", "p99_ms")
    mem_bytes = (
        statistics.median(c["stored_bytes"] for c in results.get("memory", []))
        if ("memory" in results)
        else None
    )
    print(
        f"many runs: {args.runs} concurrent runs of a {NODES}-node chain, one "
        f"{args.latency_ms:g} ms call per node; median of {args.repeat} round(s), each cell in "
        f"a fresh process; load average before {load_before}, after {load_after}"
    )
    print(
        "| store | runs/s | p50 ms | p99 ms | added p50 | added p99 | peak RSS MiB "
        "(over start) | RSS / memory store bytes |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows: list[dict[str, Any]] = []
    for k in kinds:
        runs_s = args.runs / med(k, "wall_s")
        p50, p99 = med(k, "p50_ms"), med(k, "p99_ms")
        peak = max(c["peak_rss_kib"] for c in results[k])
        grown = max(c["peak_rss_kib"] - c["rss_before_kib"] for c in results[k])
        add50, add99 = p50 - bare_p50, p99 - bare_p99
        ratio = f"{grown * 1024 / mem_bytes:.1f}x" if mem_bytes and k != "bare" else "-"
        added = (
            ("-", "-")
            if k == "bare"
            else (
                f"{add50:+.1f} ({add50 / bare_p50:+.1%})",
                f"{add99:+.1f} ({add99 / bare_p99:+.1%})",
            )
        )
        print(
            f"| {k} | {runs_s:,.0f} | {p50:,.1f} | {p99:,.1f} | {added[0]} | {added[1]} | "
            f"{_mib(peak)} ({_mib(grown)}) | {ratio} |"
        )
        rows.append(
            {
                "store": k,
                "runs_per_s": runs_s,
                "p50_ms": p50,
                "p99_ms": p99,
                "added_p50_ms": None if k == "bare" else add50,
                "added_p99_ms": None if k == "bare" else add99,
                "peak_rss_kib": peak,
                "rss_growth_kib": grown,
            }
        )
    if mem_bytes:
        print(f"memory store holds {mem_bytes / 1024 / 1024:,.2f} MiB after the burst")
    if chains:
        print()
        print(f"one {args.chain:,}-node chain of no-op nodes:")
        print("| store | wall s | peak RSS MiB (over start) | stored MiB (memory) | RSS / stored |")
        print("|---|---:|---:|---:|---:|")
        stored = chains["memory"]["stored_bytes"] if "memory" in chains else None
        for k, c in chains.items():
            grown = c["peak_rss_kib"] - c["rss_before_kib"]
            ratio = f"{grown * 1024 / stored:.1f}x" if stored else "-"
            print(
                f"| {k} | {c['wall_s']:.2f} | {_mib(c['peak_rss_kib'])} ({_mib(grown)}) | "
                f"{stored / 1024 / 1024 if stored else math.nan:,.2f} | {ratio} |"
            )
    if args.json:
        meta = {
            "runs": args.runs,
            "latency_ms": args.latency_ms,
            "repeat": args.repeat,
            "chain": args.chain,
            "load_before": load_before,
            "load_after": load_after,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
        args.json.write_text(
            json.dumps({"meta": meta, "rows": rows, "cells": results, "chains": chains}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
