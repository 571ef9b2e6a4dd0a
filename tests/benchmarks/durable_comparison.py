"""Durable runs: µs per no-op node of orch on disk against LangGraph with its SQLite checkpointer.

The same two shapes as ``engine_overhead.py``, at each size N (default 100 and 1,000 nodes;
``--sizes 100 1000 10000`` for the largest):

* ``chain``: N nodes, each consuming the previous node's output;
* ``wide``: a source, N parallel nodes, and a sink gathering all N outputs.

Contenders, all in this one process run so that ratios compare like with like:

* ``orch-dir``: orch with every record and event written to a ``DirectoryStore`` (the
  embedded default, ``.orch/``), ``orch-sqlite`` the same into a ``SQLiteStore``, and
  ``orch-mem`` into a ``MemoryStore`` (not durable: the reference for what the store costs);
* ``lg-sqlite``: the same shapes as LangGraph ``StateGraph``\\ s compiled with
  ``langgraph.checkpoint.sqlite.SqliteSaver`` and run with ``invoke``, and ``lg-aiosqlite``
  with ``AsyncSqliteSaver`` and ``ainvoke`` (the ``langgraph-checkpoint-sqlite`` package, the
  ``bench`` extra), each run a new ``thread_id``, LangGraph's default durability (``async``:
  a step's checkpoint is written while the next step runs). The ratio uses the faster of the
  two for each cell, so LangGraph is never shown slower than it can be.

Durability as each comes: orch's stores keep a killed process's finished steps (SQLite: WAL,
``synchronous=NORMAL``, writes committed by the step or every few ms, heads and ledger
entries when written; directory: no fsync), LangGraph keeps each step's checkpoint.

Figures are the median wall time of the timed runs divided by N: at least ``--repeat`` runs,
more for fast cells (each timed for about ``--min-time`` seconds). The orch contenders of one
shape and size run round-robin, so drift on a shared machine hits them alike; a LangGraph cell
slower than ``LANGGRAPH_BUDGET_S`` is measured once and larger sizes of its shape are skipped.
The report ends with PASS/FAIL lines for the issue's target: orch on its default store at
least 20x faster per node than LangGraph with its SQLite checkpointer. Without the package
the LangGraph columns say so and no ratio is printed.

Run: ``python tests/benchmarks/durable_comparison.py`` (``--sizes``, ``--repeat``,
``--json FILE``, ``--strict`` to exit 1 on a missed target; ``--smoke`` runs in seconds).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from _lg_shapes import langgraph_graph
from _shapes import chain, wide

from orch import Pipeline
from orch._runtime import arun
from traces import ArtifactStore, DirectoryStore, MemoryStore, SQLiteStore

SHAPES = ("chain", "wide")
ORCH = ("orch-mem", "orch-dir", "orch-sqlite")
LANGGRAPH = ("lg-sqlite", "lg-aiosqlite")
TARGET_RATIO = 20.0
LANGGRAPH_BUDGET_S = 60.0
MIN_CELL_S = 1.0
MAX_RUNS = 50


# -- orch ------------------------------------------------------------------------------------


def orch_pipeline(shape: str, n: int) -> Pipeline:
    return (chain if shape == "chain" else wide)(f"durable-{shape}-{n}", n, pad=5)


def orch_runner(pipeline: Pipeline, store: ArtifactStore) -> Callable[[], Awaitable[None]]:
    async def go() -> None:
        result = await arun(pipeline, {"x": 1}, store=store)
        if not result.ok:
            raise RuntimeError(f"benchmark run failed: {result.error}")

    return go


# -- LangGraph -------------------------------------------------------------------------------


def langgraph_missing() -> str | None:
    """None when LangGraph and its SQLite checkpointer import, else why not."""
    try:
        import langgraph.checkpoint.sqlite.aio  # noqa: F401
        from langgraph.graph import StateGraph  # noqa: F401
    except ImportError as exc:
        return (
            f"LangGraph with its SQLite checkpointer is not installed ({exc}); fix: pip install "
            "-e '.[bench]' (langgraph, langgraph-checkpoint-sqlite)"
        )
    return None


async def langgraph_runner(
    contender: str, shape: str, n: int, db: Path, stack: AsyncExitStack
) -> Callable[[], Awaitable[Any]]:
    """A function that runs the shape once, checkpointing every step into ``db``."""
    counter = itertools.count()
    config: dict[str, Any] = {"recursion_limit": n + 10}

    def next_config() -> dict[str, Any]:
        return {**config, "configurable": {"thread_id": f"{shape}-{n}-{next(counter)}"}}

    if contender == "lg-sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(db, check_same_thread=False)
        stack.callback(conn.close)
        graph = langgraph_graph(shape, n).compile(checkpointer=SqliteSaver(conn))

        async def go_sync() -> Any:
            return graph.invoke({"x": 1, "xs": []}, config=next_config())

        return go_sync
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(str(db)))
    agraph = langgraph_graph(shape, n).compile(checkpointer=saver)

    async def go_async() -> Any:
        return await agraph.ainvoke({"x": 1, "xs": []}, config=next_config())

    return go_async


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Cell:
    contender: str
    shape: str
    n: int
    wall_s: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def us_per_node(self) -> float:
        return statistics.median(self.wall_s) / self.n * 1e6 if self.wall_s else math.nan


async def _timed(make: Callable[[], Awaitable[Any]]) -> float:
    gc.collect()
    gc.disable()  # collect between runs, not inside one
    try:
        t0 = time.perf_counter()
        await make()
        return time.perf_counter() - t0
    finally:
        gc.enable()


async def measure_round_robin(
    cells: list[Cell], makes: list[Callable[[], Awaitable[Any]]], repeat: int, min_time: float
) -> None:
    """Warm each up once, then time them in turn until each has its runs."""
    warm = [await _timed(make) for make in makes]
    runs = max(repeat, min(MAX_RUNS, math.ceil(min_time / max(max(warm), 1e-9))))
    for _ in range(runs):
        for cell, make in zip(cells, makes, strict=True):
            cell.wall_s.append(await _timed(make))


async def measure_alone(
    cell: Cell, make: Callable[[], Awaitable[Any]], repeat: int, min_time: float
) -> None:
    warm = await _timed(make)
    if warm * repeat > LANGGRAPH_BUDGET_S:
        cell.wall_s.append(warm)  # over budget: the warm-up run is the one measurement
        cell.note = "1 run (slow)"
        return
    runs = max(repeat, min(MAX_RUNS, math.ceil(min_time / max(warm, 1e-9))))
    for _ in range(runs):
        cell.wall_s.append(await _timed(make))


def open_orch_store(contender: str, folder: Path) -> ArtifactStore:
    if contender == "orch-mem":
        return MemoryStore()
    if contender == "orch-dir":
        return DirectoryStore(folder / "store")
    return SQLiteStore(folder / "store.db")


async def bench(
    sizes: list[int],
    repeat: int,
    min_time: float,
    langgraph_note: str | None,
    log: Callable[[str], None],
) -> list[Cell]:
    cells: list[Cell] = []
    slow: set[tuple[str, str]] = set()
    with tempfile.TemporaryDirectory(prefix="orch-durable-") as tmp:
        for shape in SHAPES:
            for n in sizes:
                pipeline = orch_pipeline(shape, n)
                group = [Cell(c, shape, n) for c in ORCH]
                stores = []
                for cell in group:
                    folder = Path(tmp) / f"{shape}-{n}-{cell.contender}"
                    folder.mkdir()
                    stores.append(open_orch_store(cell.contender, folder))
                await measure_round_robin(
                    group, [orch_runner(pipeline, s) for s in stores], repeat, min_time
                )
                for store in stores:
                    store.close()
                cells.extend(group)
                for contender in LANGGRAPH:
                    cell = Cell(contender, shape, n)
                    cells.append(cell)
                    if langgraph_note is not None:
                        cell.note = "skipped" if "--skip" in langgraph_note else "not installed"
                        continue
                    if (contender, shape) in slow:
                        cell.note = f"skipped: a smaller N took over {LANGGRAPH_BUDGET_S:.0f} s"
                        continue
                    async with AsyncExitStack() as stack:
                        db = Path(tmp) / f"{shape}-{n}-{contender}.db"
                        runner = await langgraph_runner(contender, shape, n, db, stack)
                        t0 = time.perf_counter()
                        await measure_alone(cell, runner, repeat, min_time)
                        if time.perf_counter() - t0 > LANGGRAPH_BUDGET_S:
                            slow.add((contender, shape))
                log(
                    f"  {shape:5} N={n:<6} "
                    + "  ".join(
                        f"{c.contender} {_fmt(c.us_per_node)}"
                        for c in cells
                        if c.shape == shape and c.n == n
                    )
                    + "  µs/node"
                )
    return cells


# -- reporting -------------------------------------------------------------------------------


def _get(cells: list[Cell], contender: str, shape: str, n: int) -> Cell:
    return next(c for c in cells if (c.contender, c.shape, c.n) == (contender, shape, n))


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:,.1f}"  # NaN -> "-"


def best_langgraph(cells: list[Cell], shape: str, n: int) -> Cell | None:
    measured = [c for c in (_get(cells, lg, shape, n) for lg in LANGGRAPH) if c.wall_s]
    return min(measured, key=lambda c: c.us_per_node) if measured else None


def report(cells: list[Cell], sizes: list[int], note: str | None) -> tuple[list[str], list[str]]:
    """(table lines, verdict lines)."""
    lines = [
        "| shape | N | orch-mem | orch-dir | orch-sqlite | lg-sqlite | lg-aiosqlite "
        "| lg / orch-dir | lg / orch-sqlite | orch-dir / mem | orch-sqlite / mem |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts: list[str] = []
    for shape in SHAPES:
        for n in sizes:
            mem, dirs, sql = (_get(cells, c, shape, n) for c in ORCH)
            lg_cells = [_get(cells, c, shape, n) for c in LANGGRAPH]
            lg_text = [
                (_fmt(c.us_per_node) + (f" ({c.note})" if c.note else "")) if c.wall_s else c.note
                for c in lg_cells
            ]
            best = best_langgraph(cells, shape, n)
            r_dir = best.us_per_node / dirs.us_per_node if best else math.nan
            r_sql = best.us_per_node / sql.us_per_node if best else math.nan
            lines.append(
                f"| {shape} | {n:,} | {_fmt(mem.us_per_node)} | {_fmt(dirs.us_per_node)} | "
                f"{_fmt(sql.us_per_node)} | {lg_text[0]} | {lg_text[1]} | "
                f"{_fmt(r_dir)}x | {_fmt(r_sql)}x | "
                f"{dirs.us_per_node / mem.us_per_node:.2f}x | "
                f"{sql.us_per_node / mem.us_per_node:.2f}x |"
            )
            if best is None:
                verdicts.append(
                    f"SKIP {shape} N={n:,}: no LangGraph figure ({note or 'not measured'})"
                )
                continue
            for name, r in (("orch-dir (the default)", r_dir), ("orch-sqlite", r_sql)):
                verdicts.append(
                    f"{'PASS' if r >= TARGET_RATIO else 'FAIL'} {shape} N={n:,}: {name} at "
                    f"least {TARGET_RATIO:.0f}x faster per node than LangGraph with its SQLite "
                    f"checkpointer ({best.contender}): {r:.1f}x"
                )
    return lines, verdicts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per cell, at least")
    ap.add_argument("--min-time", type=float, default=MIN_CELL_S, help="seconds per cell")
    ap.add_argument("--skip-langgraph", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="N=10, one run: proves it works")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.repeat, args.min_time = [10], 1, 0.0
    note = "skipped (--skip-langgraph)" if args.skip_langgraph else langgraph_missing()
    if note:
        print(f"LangGraph columns: {note}", file=sys.stderr)
    load_before = (
        Path("/proc/loadavg").read_text().split()[:3] if os.path.exists("/proc/loadavg") else []
    )

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    cells = anyio.run(bench, args.sizes, args.repeat, args.min_time, note, log)
    load_after = Path("/proc/loadavg").read_text().split()[:3] if load_before else []
    lines, verdicts = report(cells, args.sizes, note)
    print("durable runs: µs per no-op node (median), every record and event written")
    if load_before:
        print(f"load average before {' '.join(load_before)}, after {' '.join(load_after)}")
    print("\n".join(lines))
    print()
    print("\n".join(verdicts))
    if args.json:
        meta = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
            "langgraph": note or "measured",
        }
        args.json.write_text(
            json.dumps({"meta": meta, "cells": [asdict(c) for c in cells]}, indent=2)
        )
    return 1 if args.strict and any(v.startswith("FAIL") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
