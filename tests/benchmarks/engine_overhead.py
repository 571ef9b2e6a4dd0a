"""Engine overhead: microseconds per no-op node, orch on each store against the asyncio floor.

Shapes at each size N (default 100, 1,000 and 10,000 nodes):

* ``chain``: N nodes, each consuming the previous node's output;
* ``wide``: a source, N parallel nodes, and a sink gathering all N outputs (fan-out/fan-in);
* ``mapped`` (with ``--shapes``): one node whose agent runs ``ctx.map`` over N inputs.

Contenders, all measured in this one process run so that ratios compare like with like on a
noisy machine:

* ``floor``: bare asyncio, ``create_task`` + ``await`` per node, no records at all (the
  floor issue 17 defines: a chain awaits each node's task in turn, a wide shape creates the
  N tasks, then awaits each);
* ``orch-mem``: orch with every record and the event log written to a MemoryStore;
* ``orch-dir``: the same into a DirectoryStore on local disk (the embedded default);
* ``orch-sqlite``: the same into a SQLiteStore file on local disk;
* ``langgraph``: the same shapes as LangGraph StateGraphs, no persistence (optional ``bench``
  extra), measured after the others.

Each timed orch run gets its own input, so that it writes its own records (a run repeating
an earlier one's input would find every artifact already stored, which flatters a store that
skips existing files), and ends with ``store.flush()``, so that a store that batches writes
in a background thread pays for them in its own time, not in the next contender's. The floor
and the three stores run round-robin, each contender's timed runs interleaved with the
others' (the order rotates every round), so that drift on a shared machine hits them alike.
Figures are the median wall time of the timed runs divided by N: at least ``--repeat`` runs,
more for fast cells so that each is timed for about ``--min-time`` seconds. Pipeline
construction and validation are not timed (once per pipeline, not per run); garbage
collection (of the young generations, where a run's garbage is) runs between timed runs, not
inside them.

The report ends with PASS/FAIL lines for the issue's targets: orch-mem at most 2x the floor
at every N and flat within 1.5x from the smallest N to the largest; orch-dir at most 1.5x
orch-mem and orch-sqlite at most 2x orch-mem at 1,000 nodes and more (at every N when none
is that large); LangGraph at least 5x slower than orch-mem where it was measured.

Run: ``python tests/benchmarks/engine_overhead.py`` (``--quick`` for a fast look, ``--json
FILE`` to keep the numbers, ``--strict`` to exit 1 on a missed target).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from _lg_shapes import langgraph_graph
from _shapes import Num, chain, noop, wide
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, agent
from orch._runtime import arun
from traces import ArtifactStore, DirectoryStore, MemoryStore, SQLiteStore

SHAPES = ("chain", "wide", "mapped")
DEFAULT_SHAPES = ("chain", "wide")
STORES = ("orch-mem", "orch-dir", "orch-sqlite")
FLOOR_RATIO = 2.0
"""orch-mem at most this many times the floor per node."""
FLAT_RATIO = 1.5
"""orch-mem per node at its slowest N at most this many times its fastest."""
STORE_RATIOS = {"orch-dir": 1.5, "orch-sqlite": 2.0}
"""A store at most this many times orch-mem per node, at STORE_TARGET_N nodes and more."""
STORE_TARGET_N = 1000
LANGGRAPH_RATIO = 5.0
# A LangGraph shape slower than this at one size is not tried at larger sizes.
LANGGRAPH_BUDGET_S = 60.0
# Each cell is timed for at least this long in total (more runs for fast cells), at most
# MAX_RUNS runs.
MIN_CELL_S = 1.0
MAX_RUNS = 100


# -- orch ------------------------------------------------------------------------------------


class MapIn(BaseModel):
    x: int
    n: int


@agent(name="mapper", version="1")
async def mapper(m: MapIn, ctx: Context) -> Num:
    outs = await ctx.map(noop, [Num(x=m.x + i) for i in range(m.n)])
    return Num(x=len(outs))


def orch_pipeline(shape: str, n: int) -> Pipeline:
    name = f"bench-{shape}-{n}"
    if shape == "chain":
        return chain(name, n, pad=5)
    if shape == "wide":
        return wide(name, n, pad=5)
    p = PipelineBuilder(name)
    p.node("map", mapper, x=p.input("x", int), n=n)
    return p.build()


class OrchRunner:
    """Runs ``pipeline`` into ``store``, a new input each time (so that each run writes its
    own records), then flushes the store: a store that batches its writes in the background
    commits them inside the run's time, not during the next contender's."""

    def __init__(self, pipeline: Pipeline, store: ArtifactStore) -> None:
        self.pipeline = pipeline
        self.store = store
        self.runs = itertools.count(1)
        self.flush: Callable[[], None] | None = getattr(store, "flush", None)

    async def __call__(self) -> None:
        result = await arun(self.pipeline, {"x": next(self.runs)}, store=self.store)
        if self.flush is not None:
            self.flush()
        if not result.ok:
            raise RuntimeError(f"benchmark run failed: {result.error}")


def open_store(contender: str, folder: Path) -> ArtifactStore:
    if contender == "orch-mem":
        return MemoryStore()
    if contender == "orch-dir":
        return DirectoryStore(folder / "dir")
    return SQLiteStore(folder / "store.sqlite")


# -- the floor: bare asyncio tasks ------------------------------------------------------------


async def _noop_value(v: int) -> int:
    return v


async def run_floor(shape: str, n: int) -> None:
    """create_task + await per node, nothing recorded."""
    create_task = asyncio.get_running_loop().create_task
    if shape == "chain":
        v = 1
        for _ in range(n):
            v = await create_task(_noop_value(v))
        return
    src = await create_task(_noop_value(1))
    tasks = [create_task(_noop_value(src + i)) for i in range(n)]
    xs = [await t for t in tasks]
    await create_task(_noop_value(len(xs)))


# -- LangGraph -------------------------------------------------------------------------------


def langgraph_runner(shape: str, n: int) -> Callable[[], Awaitable[Any]] | None:
    try:
        graph = langgraph_graph(shape, n).compile()
    except ImportError:
        return None
    config = {"recursion_limit": n + 10}

    async def go() -> Any:
        return await graph.ainvoke({"x": 1, "xs": []}, config=config)

    return go


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Cell:
    contender: str
    shape: str
    n: int
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def us_per_node(self) -> float:
        return statistics.median(self.wall_s) / self.n * 1e6 if self.wall_s else float("nan")

    @property
    def cpu_us_per_node(self) -> float:
        return statistics.median(self.cpu_s) / self.n * 1e6 if self.cpu_s else float("nan")


async def _timed(cell: Cell, make: Callable[[], Awaitable[Any]]) -> float:
    # The young generations only: what a run leaves is all young (the collector is off while
    # it runs), and a full collection would also empty the interpreter's free lists, which
    # the next run would pay for (about 0.5 ms a run here: 5 µs a node at N=100).
    gc.collect(1)
    gc.disable()  # collect between runs, not inside one: pauses would be noise
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        await make()
        wall = time.perf_counter() - t0
        cell.wall_s.append(wall)
        cell.cpu_s.append(time.process_time() - c0)
        return wall
    finally:
        gc.enable()


def _runs_for(warm: float, repeat: int, min_time: float) -> int:
    # Short cells get more runs (as timeit's autorange does): a 5 ms run is at the mercy of
    # one scheduler hiccup, and the median of many is not.
    return max(repeat, min(MAX_RUNS, math.ceil(min_time / max(warm, 1e-9))))


async def measure_round_robin(
    cells: list[Cell], makes: list[Callable[[], Awaitable[Any]]], repeat: int, min_time: float
) -> None:
    """Warm each contender up once, then time them in turn, the order rotating each round,
    until each has its number of runs."""
    wanted = []
    for cell, make in zip(cells, makes, strict=True):
        warm = await _timed(cell, make)  # imports, caches, first-touch allocation
        cell.wall_s.clear()
        cell.cpu_s.clear()
        wanted.append(_runs_for(warm, repeat, min_time))
    for r in range(max(wanted)):
        k = r % len(cells)
        for i in [*range(k, len(cells)), *range(k)]:
            if len(cells[i].wall_s) < wanted[i]:
                await _timed(cells[i], makes[i])


async def measure_alone(
    cell: Cell,
    make: Callable[[], Awaitable[Any]],
    repeat: int,
    budget_s: float | None,
    min_time: float,
) -> None:
    """Warm up once, then time ``repeat`` runs; with a budget, a slow contender gets fewer."""
    warm = await _timed(cell, make)
    cell.wall_s.clear()
    cell.cpu_s.clear()
    if budget_s is not None and warm * repeat > budget_s:
        # Too slow to repeat within budget: the warm-up run is the one measurement (it
        # over-states a little, which only flatters the others less).
        cell.wall_s.append(warm)
        cell.cpu_s.append(warm)
        cell.note = "1 run (slow)"
        return
    for _ in range(_runs_for(warm, repeat, min_time)):
        await _timed(cell, make)


async def bench(
    shapes: list[str],
    sizes: list[int],
    repeat: int,
    langgraph: bool,
    log: Callable[[str], None],
    min_time: float = MIN_CELL_S,
) -> list[Cell]:
    cells: list[Cell] = []
    lg_slow: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        for shape in shapes:
            for n in sizes:
                pipeline = orch_pipeline(shape, n)
                stores = []
                group = [Cell("floor", shape, n)]
                makes: list[Callable[[], Awaitable[Any]]] = [partial(run_floor, shape, n)]
                for contender in STORES:
                    folder = Path(tmp) / f"{shape}-{n}-{contender}"
                    folder.mkdir()
                    store = open_store(contender, folder)
                    stores.append(store)
                    group.append(Cell(contender, shape, n))
                    makes.append(OrchRunner(pipeline, store))
                await measure_round_robin(group, makes, repeat, min_time)
                for store in stores:
                    store.close()
                cells.extend(group)

                cell = Cell("langgraph", shape, n)
                if not langgraph:
                    cell.note = "skipped (--skip-langgraph or not installed)"
                elif shape in lg_slow:
                    cell.note = f"skipped: a smaller size took over {LANGGRAPH_BUDGET_S:.0f} s"
                else:
                    runner = langgraph_runner(shape, n)
                    assert runner is not None
                    t0 = time.perf_counter()
                    await measure_alone(cell, runner, repeat, LANGGRAPH_BUDGET_S, min_time)
                    if time.perf_counter() - t0 > LANGGRAPH_BUDGET_S:
                        lg_slow.add(shape)
                cells.append(cell)
                log(
                    f"  {shape:6} N={n:<6} "
                    + "  ".join(
                        f"{c.contender} {c.us_per_node:8.1f}"
                        for c in cells
                        if c.shape == shape and c.n == n
                    )
                    + "  µs/node"
                )
    return cells


# -- reporting -------------------------------------------------------------------------------


def _get(cells: list[Cell], contender: str, shape: str, n: int) -> Cell | None:
    for c in cells:
        if (c.contender, c.shape, c.n) == (contender, shape, n):
            return c
    return None


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:,.1f}"  # NaN -> "-"


def _ratio(a: Cell, b: Cell) -> float:
    return a.us_per_node / b.us_per_node if a.wall_s and b.wall_s else float("nan")


def report(cells: list[Cell], shapes: list[str], sizes: list[int]) -> tuple[list[str], list[str]]:
    """Return (table lines, verdict lines)."""
    lines = [
        "| shape | N | floor | orch-mem | orch-dir | orch-sqlite | langgraph "
        "| mem / floor | dir / mem | sqlite / mem | langgraph / mem | orch-mem CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts: list[str] = []
    store_sizes = [n for n in sizes if n >= STORE_TARGET_N] or sizes
    for shape in shapes:
        for n in sizes:
            base, mem, dirs, sql, lg = (
                _get(cells, c, shape, n) for c in ("floor", *STORES, "langgraph")
            )
            assert base and mem and dirs and sql and lg
            lg_text = lg.note
            if lg.wall_s:
                lg_text = _fmt(lg.us_per_node) + (f" ({lg.note})" if lg.note else "")
            lines.append(
                f"| {shape} | {n:,} | {_fmt(base.us_per_node)} | {_fmt(mem.us_per_node)} | "
                f"{_fmt(dirs.us_per_node)} | {_fmt(sql.us_per_node)} | {lg_text} | "
                f"{_fmt(_ratio(mem, base))}x | {_fmt(_ratio(dirs, mem))}x | "
                f"{_fmt(_ratio(sql, mem))}x | "
                f"{_fmt(_ratio(lg, mem)) + 'x' if lg.wall_s else '-'} | "
                f"{_fmt(mem.cpu_us_per_node)} |"
            )
        floor_ratios = {
            n: _ratio(m, b)
            for n in sizes
            if (m := _get(cells, "orch-mem", shape, n)) and (b := _get(cells, "floor", shape, n))
        }
        worst_n = max(floor_ratios, key=lambda k: floor_ratios[k])
        verdicts.append(
            f"{'PASS' if floor_ratios[worst_n] <= FLOOR_RATIO else 'FAIL'} {shape}: orch-mem at "
            f"most {FLOOR_RATIO:.0f}x the asyncio floor per node at every N (worst "
            f"{floor_ratios[worst_n]:.2f}x at N={worst_n:,}; "
            + ", ".join(f"{r:.2f}x" for r in floor_ratios.values())
            + ")"
        )
        per_n = [c.us_per_node for n in sizes if (c := _get(cells, "orch-mem", shape, n))]
        if len(per_n) > 1:
            flat = max(per_n) / min(per_n)
            verdicts.append(
                f"{'PASS' if flat <= FLAT_RATIO else 'FAIL'} {shape}: orch-mem per node flat from "
                f"N={sizes[0]:,} to N={sizes[-1]:,} within {FLAT_RATIO}x (max/min {flat:.2f}x)"
            )
        for contender, limit in STORE_RATIOS.items():
            ratios = {
                n: _ratio(s, m)
                for n in store_sizes
                if (s := _get(cells, contender, shape, n))
                and (m := _get(cells, "orch-mem", shape, n))
            }
            worst = max(ratios.values())
            verdicts.append(
                f"{'PASS' if worst <= limit else 'FAIL'} {shape}: {contender} at most {limit}x "
                f"orch-mem per node at N="
                + ", ".join(f"{n:,}" for n in ratios)
                + " ("
                + ", ".join(f"{r:.2f}x" for r in ratios.values())
                + ")"
            )
        lg_ratios = [
            _ratio(lg, mem)
            for n in sizes
            if (lg := _get(cells, "langgraph", shape, n))
            and lg.wall_s
            and (mem := _get(cells, "orch-mem", shape, n))
        ]
        if lg_ratios:
            verdicts.append(
                f"{'PASS' if min(lg_ratios) >= LANGGRAPH_RATIO else 'FAIL'} {shape}: LangGraph at "
                f"least {LANGGRAPH_RATIO:.0f}x slower than orch-mem at every measured N "
                f"(lowest {min(lg_ratios):.1f}x)"
            )
        else:
            verdicts.append(f"SKIP {shape}: LangGraph not measured")
    return lines, verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated node counts")
    parser.add_argument(
        "--shapes", default=",".join(DEFAULT_SHAPES), help=f"comma-separated, of {SHAPES}"
    )
    parser.add_argument("--repeat", type=int, default=5, help="least timed runs per cell")
    parser.add_argument(
        "--min-time",
        type=float,
        default=MIN_CELL_S,
        help="least total seconds timed per cell (fast cells get more runs); 0 for a smoke run",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 100,1000 and 1 repeat")
    parser.add_argument("--skip-langgraph", action="store_true")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = [100, 1000] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        parser.error(f"unknown shape(s) {unknown}; choose from {list(SHAPES)}")
    repeat = 1 if args.quick else max(1, args.repeat)
    min_time = 0.2 if args.quick else max(0.0, args.min_time)
    langgraph = not args.skip_langgraph
    if langgraph:
        try:
            import langgraph as _lg  # noqa: F401
        except ImportError:
            print("note: langgraph is not installed (pip install -e '.[bench]'); skipping it")
            langgraph = False

    load_before = os.getloadavg()
    print(
        f"engine overhead: shapes {shapes}, sizes {sizes}, at least {repeat} timed run(s) per "
        f"cell, Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {load_before[0]:.2f}"
    )
    cells = anyio.run(bench, shapes, sizes, repeat, langgraph, print, min_time)
    load_after = os.getloadavg()
    lines, verdicts = report(cells, shapes, sizes)
    print()
    print("µs per node (median of the timed runs); ratios from this one run")
    print("\n".join(lines))
    print()
    print("\n".join(verdicts))
    print(f"\nload average (1 min): {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "shapes": shapes,
                    "sizes": sizes,
                    "repeat": repeat,
                    "python": platform.python_version(),
                    "load": [load_before[0], load_after[0]],
                    "cells": [
                        asdict(c)
                        | {"us_per_node": c.us_per_node, "cpu_us_per_node": c.cpu_us_per_node}
                        for c in cells
                    ],
                    "verdicts": verdicts,
                },
                indent=2,
            )
        )
    failed = any(v.startswith("FAIL") for v in verdicts)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
