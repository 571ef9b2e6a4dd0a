"""Runs-list latency against store size: the directory and SQLite stores' runs indexes at
1,000, 10,000 and 100,000 runs, and the scan of every head (ScanIndex) at 1,000 for contrast.

    python tests/benchmarks/runs_list.py                  # 1,000, 10,000, 100,000 runs
    python tests/benchmarks/runs_list.py --sizes 1000,10000 --repeat 5

The stores are synthesised, not run: making 100,000 runs through the engine takes an hour on
this machine, and a runs list reads only heads and records. Each run is written with
:func:`traces.conformance.write_run`: real record types (a RunRecord, a StepRecord per decision,
the Decisions), hashed and stored through the store's API, and a real RunHead, but no event
log (so ``orch verify`` would report the events missing). A run in 20 is still running; the
others hold one or two decisions, "escalated" in about a third of them, one run a word no
other has. Start times are one second apart, with ties.

Per store and size: the time to write the runs, the first query, a count of every run (which
catches up: it reads every run's decisions once, as the first text filter would; a page without
one reads only its own runs', see docs/stores.md), then the median of ``--repeat`` calls of each
query: the first page (50 runs), a deep page (50 runs after a cursor half way down), a text
filter for the common word and for the rare one, and a status filter (failed). The last column
is the ratio of the 100,000-run store to the 1,000-run one. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from traces import DirectoryStore, RunFilter, SQLiteStore
from traces._runindex import IndexedRun, RunIndex, ScanIndex, encode_cursor
from traces._store import ArtifactStore
from traces.conformance import RunSpec, write_run

QUERIES: dict[str, tuple[RunFilter, bool]] = {
    "first page": (RunFilter(), False),
    "deep page": (RunFilter(), True),
    "text (common)": (RunFilter(text="escalated"), False),
    "text (rare)": (RunFilter(text="zanzibar"), False),
    "status=failed": (RunFilter(status="failed"), False),
}


def specs(n: int) -> list[RunSpec]:
    out = []
    for i in range(n):
        status = "running" if i % 20 == 7 else ("failed" if i % 10 == 3 else "ok")
        reason = "sigma 0.41: escalated" if i % 3 == 0 else "all agree"
        if i == n // 3:
            reason = "zanzibar"
        decisions = None
        if status != "running":
            decisions = (("acar", ("large" if i % 3 == 0 else "small",), reason),)
            if i % 4 == 0:
                decisions += (("tcar", ("agent-b",), "highest score"),)
        out.append(
            RunSpec(
                run_id=f"run-{i:06d}",
                pipeline=("qa", "summarise", "route")[i % 3],
                status=status,
                seed=i % 5,
                started_at=1_700_000_000.0 + i // 2,  # pairs of ties
                decisions=decisions,
            )
        )
    return out


def timed(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(index: RunIndex, population: list[RunSpec], repeat: int) -> dict[str, float]:
    ordered = sorted(population, key=lambda s: (s.started_at, s.run_id), reverse=True)
    middle = ordered[len(ordered) // 2]
    cursor = encode_cursor(
        IndexedRun(middle.run_id, "", "", 0, middle.started_at, None, None, None, None, None, 0, "")
    )
    out = {}
    for name, (where, deep) in QUERIES.items():
        out[name] = timed(
            lambda w=where, d=deep: index.page(w, limit=50, after=cursor if d else None), repeat
        )
    return out


def build(kind: str, root: Path, population: list[RunSpec]) -> tuple[ArtifactStore, float]:
    store: ArtifactStore = (
        DirectoryStore(root / "store") if kind == "directory" else SQLiteStore(root / "s.db")
    )
    started = time.perf_counter()
    for spec in population:
        write_run(store, spec)
    store.flush()
    return store, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[str, int], dict[str, float]] = {}
    for kind in ("directory", "sqlite"):
        for n in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                population = specs(n)
                store, wrote = build(kind, Path(tmp), population)
                index = store.run_index()
                assert index is not None
                started = time.perf_counter()
                index.count(RunFilter())
                first = time.perf_counter() - started
                results[(kind, n)] = measure(index, population, args.repeat)
                print(
                    f"{kind:9} n={n:>7,}  wrote {wrote:7.1f} s  first query (catch-up) "
                    f"{first:6.2f} s  "
                    + "  ".join(f"{k} {v:.2f} ms" for k, v in results[(kind, n)].items()),
                    flush=True,
                )
                if n == min(sizes) and kind == "directory":
                    results[("scan", n)] = measure(
                        ScanIndex(store), population, max(3, args.repeat // 5)
                    )
                    print(
                        f"scan      n={n:>7,}  "
                        + "  ".join(f"{k} {v:.2f} ms" for k, v in results[("scan", n)].items()),
                        flush=True,
                    )
                store.close()
    lo, hi = min(sizes), max(sizes)
    print("\nms per page (median of the timed calls)")
    header = "| store | query | " + " | ".join(f"{n:,}" for n in sizes) + f" | {hi:,} / {lo:,} |"
    print(header)
    print("|---|---|" + "---:|" * (len(sizes) + 1))
    for kind in ("directory", "sqlite"):
        for q in QUERIES:
            cells = [results[(kind, n)][q] for n in sizes]
            ratio = results[(kind, hi)][q] / results[(kind, lo)][q]
            print(
                f"| {kind} | {q} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {ratio:.1f}x |"
            )
    for q in QUERIES:
        print(f"| scan (no index) | {q} | {results[('scan', lo)][q]:.2f} |" + " |" * len(sizes))


if __name__ == "__main__":
    sys.exit(main())
